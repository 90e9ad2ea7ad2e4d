//! Playback tokens: HS256 JWTs with their own key and audience, scoped to one stream and
//! valid for `auth.playback_ttl`. They ride in the URL path (`/s/{token}/…`) so players that
//! cannot send headers, and relative HLS URLs, carry them. Revocation is by stream lookup:
//! a deleted stream's tokens name a stream that no longer exists.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{now_secs, AuthError};

const AUDIENCE: &str = "magnetar-playback";

#[derive(Debug, Serialize, Deserialize)]
struct PlaybackClaims {
    sub: String,
    sid: String,
    aud: String,
    exp: u64,
    iat: u64,
}

/// What a valid playback token grants: one user's one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaybackGrant {
    pub user: String,
    pub stream_id: String,
}

/// A freshly issued token and when it expires.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_at: SystemTime,
}

/// Keys and rules for playback tokens.
pub struct PlaybackKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl PlaybackKeys {
    pub fn new(secret: &[u8], ttl: Duration, leeway: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway.as_secs();
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            ttl,
        }
    }

    /// A token for `user`'s stream `stream_id`.
    pub fn issue(&self, user: &str, stream_id: &str) -> Result<IssuedToken, AuthError> {
        let now = now_secs();
        let exp = now + self.ttl.as_secs();
        let claims = PlaybackClaims {
            sub: user.to_owned(),
            sid: stream_id.to_owned(),
            aud: AUDIENCE.to_owned(),
            exp,
            iat: now,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid)?;
        Ok(IssuedToken {
            token,
            expires_at: UNIX_EPOCH + Duration::from_secs(exp),
        })
    }

    /// Checks signature (constant-time HMAC comparison in `jsonwebtoken`), audience and
    /// expiry; expiry is told apart so clients know to refresh.
    pub fn verify(&self, token: &str) -> Result<PlaybackGrant, AuthError> {
        if token.len() > 2048 {
            return Err(AuthError::Invalid);
        }
        let data = jsonwebtoken::decode::<PlaybackClaims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        Ok(PlaybackGrant {
            user: data.claims.sub,
            stream_id: data.claims.sid,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ttl: u64) -> PlaybackKeys {
        PlaybackKeys::new(b"k", Duration::from_secs(ttl), Duration::ZERO)
    }

    #[test]
    fn a_token_grants_its_stream() {
        let k = keys(60);
        let issued = k.issue("alice", "st_1").unwrap();
        let grant = k.verify(&issued.token).unwrap();
        assert_eq!(grant.user, "alice");
        assert_eq!(grant.stream_id, "st_1");
    }

    #[test]
    fn tampered_tokens_fail() {
        let k = keys(60);
        let token = k.issue("alice", "st_1").unwrap().token;
        let mut bytes = token.into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(k.verify(&tampered), Err(AuthError::Invalid));
        let api = super::super::ApiKeys::hs256(b"k", Duration::ZERO);
        let api_token = api
            .issue("alice", crate::auth::Role::User, Duration::from_secs(60))
            .unwrap();
        assert_eq!(k.verify(&api_token), Err(AuthError::Invalid));
    }
}

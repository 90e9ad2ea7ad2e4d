//! API bearer tokens: HS256 JWTs with `sub` (the user) and `exp`, verified with a small
//! leeway; `magnetar token` issues them with the same key.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{now_secs, AuthError};

/// The claims Magnetar reads from an API token.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiClaims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
}

/// Keys and rules for API tokens.
pub struct ApiKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// Longest accepted user id (`sub`).
const MAX_USER_LEN: usize = 128;

impl ApiKeys {
    /// HS256 keys from a shared secret.
    pub fn hs256(secret: &[u8], leeway: std::time::Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = leeway.as_secs();
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Verifies a bearer token.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let data = jsonwebtoken::decode::<ApiClaims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::Invalid,
            })?;
        let user = data.claims.sub;
        if user.is_empty() || user.len() > MAX_USER_LEN || user.chars().any(char::is_control) {
            return Err(AuthError::Invalid);
        }
        Ok(Caller { user })
    }

    /// Issues a token for `user` valid for `ttl`.
    pub fn issue(
        &self,
        user: &str,
        ttl: std::time::Duration,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let now = now_secs();
        let claims = ApiClaims {
            sub: user.to_owned(),
            exp: now + ttl.as_secs(),
            iat: Some(now),
            role: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let keys = ApiKeys::hs256(b"secret", Duration::from_secs(0));
        let token = keys.issue("alice", Duration::from_secs(60)).unwrap();
        assert_eq!(keys.verify(&token).unwrap().user, "alice");
        let other = ApiKeys::hs256(b"other", Duration::from_secs(0));
        assert_eq!(other.verify(&token), Err(AuthError::Invalid));
        assert_eq!(keys.verify("not.a.jwt"), Err(AuthError::Invalid));
    }
}

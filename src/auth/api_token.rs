//! API bearer tokens: JWTs with `sub` (the user), `exp`, optional `nbf`, `role`, `iss` and
//! `aud`. The header's `alg` must be on the configured allow-list and picks the key —
//! HS256 with the shared secret, RS256/EdDSA with the configured public key — so a token can
//! never choose how it is checked (no `none`, no HS/RS confusion). `magnetar token` issues
//! them with the secret (or the configured private key).

use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::{now_secs, AuthError};

/// The claims Magnetar reads from an API token.
#[derive(Debug, Serialize, Deserialize)]
pub struct ApiClaims {
    pub sub: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// What a caller may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Admin,
}

impl Role {
    /// `role` claim: absent or `user` → user, `admin` → admin, anything else refused.
    pub fn from_claim(claim: Option<&str>) -> Option<Self> {
        match claim {
            None | Some("user") => Some(Role::User),
            Some("admin") => Some(Role::Admin),
            Some(_) => None,
        }
    }

    pub fn as_claim(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    pub role: Role,
}

/// How API tokens are checked (and, for `magnetar token`, signed).
pub struct ApiKeys {
    /// Allowed algorithms, each with its verifying key.
    verifiers: Vec<(Algorithm, DecodingKey)>,
    signer: Option<(Algorithm, EncodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
}

/// Key material for [`ApiKeys::new`].
#[derive(Default)]
pub struct KeyMaterial {
    /// HS256 secret (when HS256 is allowed).
    pub secret: Option<Vec<u8>>,
    /// PEM public key for RS256/EdDSA.
    pub public_pem: Option<Vec<u8>>,
    /// PEM private key for signing with RS256/EdDSA (`magnetar token` only).
    pub private_pem: Option<Vec<u8>>,
}

/// Token rules from `[auth]`.
pub struct TokenRules<'a> {
    pub algorithms: &'a [String],
    pub issuer: &'a str,
    pub audience: &'a str,
    pub leeway: std::time::Duration,
}

/// Longest accepted user id (`sub`).
const MAX_USER_LEN: usize = 128;

impl ApiKeys {
    /// Keys for the allowed algorithms; an algorithm without usable key material is an error
    /// naming it.
    pub fn new(rules: &TokenRules<'_>, keys: KeyMaterial) -> Result<Self, String> {
        let mut verifiers = Vec::new();
        let mut signer = None;
        for name in rules.algorithms {
            let alg = match name.as_str() {
                "HS256" => Algorithm::HS256,
                "RS256" => Algorithm::RS256,
                "EdDSA" => Algorithm::EdDSA,
                other => return Err(format!("algorithm {other:?} is not supported")),
            };
            let (decoding, encoding) = match alg {
                Algorithm::HS256 => {
                    let secret = keys.secret.as_deref().ok_or("HS256 needs a secret")?;
                    (
                        DecodingKey::from_secret(secret),
                        Some(EncodingKey::from_secret(secret)),
                    )
                }
                _ => {
                    let public = keys
                        .public_pem
                        .as_deref()
                        .ok_or(format!("{name} needs auth.public_key_file"))?;
                    let wrong = |e: jsonwebtoken::errors::Error| {
                        format!("auth.public_key_file is not a {name} public key: {e}")
                    };
                    let decoding = if alg == Algorithm::RS256 {
                        DecodingKey::from_rsa_pem(public).map_err(wrong)?
                    } else {
                        DecodingKey::from_ed_pem(public).map_err(wrong)?
                    };
                    let encoding = match keys.private_pem.as_deref() {
                        Some(private) if alg == Algorithm::RS256 => {
                            EncodingKey::from_rsa_pem(private).ok()
                        }
                        Some(private) => EncodingKey::from_ed_pem(private).ok(),
                        None => None,
                    };
                    (decoding, encoding)
                }
            };
            if signer.is_none() {
                signer = encoding.map(|key| (alg, key));
            }
            verifiers.push((alg, decoding));
        }
        let configured = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_owned());
        Ok(Self {
            verifiers,
            signer,
            issuer: configured(rules.issuer),
            audience: configured(rules.audience),
            leeway: rules.leeway.as_secs(),
        })
    }

    /// HS256 keys from a shared secret, no issuer or audience.
    pub fn hs256(secret: &[u8], leeway: std::time::Duration) -> Self {
        let rules = TokenRules {
            algorithms: &["HS256".to_owned()],
            issuer: "",
            audience: "",
            leeway,
        };
        let keys = KeyMaterial {
            secret: Some(secret.to_vec()),
            ..KeyMaterial::default()
        };
        Self::new(&rules, keys).expect("HS256 with a secret is always valid")
    }

    /// Verifies a bearer token.
    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let (alg, key) = self
            .verifiers
            .iter()
            .find(|(alg, _)| *alg == header.alg)
            .ok_or(AuthError::Refused("token algorithm not allowed"))?;
        let mut validation = Validation::new(*alg);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        // A configured `iss`/`aud` must be present, not only right when present.
        validation.set_required_spec_claims(&required);
        let data =
            jsonwebtoken::decode::<ApiClaims>(token, key, &validation).map_err(|err| match err
                .kind()
            {
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::Refused("token not valid yet"),
                ErrorKind::InvalidIssuer => AuthError::Refused("wrong token issuer"),
                ErrorKind::InvalidAudience => AuthError::Refused("wrong token audience"),
                ErrorKind::MissingRequiredClaim(_) => AuthError::Refused("missing claim"),
                _ => AuthError::Invalid,
            })?;
        let claims = data.claims;
        let role =
            Role::from_claim(claims.role.as_deref()).ok_or(AuthError::Refused("unknown role"))?;
        let user = claims.sub;
        if user.is_empty() || user.len() > MAX_USER_LEN || user.chars().any(char::is_control) {
            return Err(AuthError::Invalid);
        }
        Ok(Caller { user, role })
    }

    /// Issues a token for `user` valid for `ttl`, with the configured issuer and audience.
    pub fn issue(
        &self,
        user: &str,
        role: Role,
        ttl: std::time::Duration,
    ) -> Result<String, IssueError> {
        let (alg, key) = self.signer.as_ref().ok_or(IssueError::NoSigningKey)?;
        let now = now_secs();
        let claims = ApiClaims {
            sub: user.to_owned(),
            exp: now + ttl.as_secs(),
            nbf: None,
            iat: Some(now),
            role: (role == Role::Admin).then(|| role.as_claim().to_owned()),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        Ok(jsonwebtoken::encode(&Header::new(*alg), &claims, key)?)
    }
}

/// Why `magnetar token` cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("no signing key: allow HS256, or set auth.private_key_file for RS256/EdDSA")]
    NoSigningKey,
    #[error("cannot sign: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn issued_tokens_verify_and_others_do_not() {
        let keys = ApiKeys::hs256(b"secret", Duration::from_secs(0));
        let token = keys
            .issue("alice", Role::User, Duration::from_secs(60))
            .unwrap();
        let caller = keys.verify(&token).unwrap();
        assert_eq!((caller.user.as_str(), caller.role), ("alice", Role::User));
        let admin = keys
            .issue("root", Role::Admin, Duration::from_secs(60))
            .unwrap();
        assert_eq!(keys.verify(&admin).unwrap().role, Role::Admin);
        let other = ApiKeys::hs256(b"other", Duration::from_secs(0));
        assert_eq!(other.verify(&token), Err(AuthError::Invalid));
        assert_eq!(keys.verify("not.a.jwt"), Err(AuthError::Invalid));
    }

    #[test]
    fn roles_are_user_admin_or_refused() {
        assert_eq!(Role::from_claim(None), Some(Role::User));
        assert_eq!(Role::from_claim(Some("user")), Some(Role::User));
        assert_eq!(Role::from_claim(Some("admin")), Some(Role::Admin));
        assert_eq!(Role::from_claim(Some("Admin")), None);
        assert_eq!(Role::from_claim(Some("root")), None);
    }
}

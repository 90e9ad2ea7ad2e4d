//! Credentials: API bearer JWTs (who the caller is) and playback tokens (a short-lived,
//! stream-scoped credential carried in `/s/{token}/…` paths), plus the secrets behind them.
//! Ownership checks live with the streams; this module only says who and which stream.

pub mod api_token;
pub mod playback;
pub mod secrets;

pub use api_token::{ApiKeys, Caller, Role};
pub use playback::{PlaybackGrant, PlaybackKeys};

/// Why a credential was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing credentials")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
    /// A well-formed credential refused by a rule (algorithm, audience, issuer, `nbf`, role).
    #[error("{0}")]
    Refused(&'static str),
    #[error("the credential has expired")]
    Expired,
}

/// Seconds since the Unix epoch.
pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

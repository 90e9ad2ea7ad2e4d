//! Library errors → API error codes, in one place.

use crate::{
    auth::AuthError,
    engine::{files::SelectError, source::SourceError, EngineError},
    error::{AppError, ErrorCode},
    streams::{PlaybackError, StreamError},
};

/// The API code for an engine error.
pub fn engine_code(err: &EngineError) -> ErrorCode {
    match err {
        EngineError::Source(SourceError::InvalidMagnet(_)) => ErrorCode::InvalidMagnet,
        EngineError::Source(SourceError::InvalidTorrent(_)) => ErrorCode::InvalidTorrent,
        EngineError::Source(SourceError::TooLarge(_)) => ErrorCode::TorrentTooLarge,
        EngineError::Select(SelectError::NoVideo) => ErrorCode::NoVideoFile,
        EngineError::Select(SelectError::NotFound(_)) => ErrorCode::FileNotFound,
        EngineError::MetadataTimeout | EngineError::MetadataUnavailable => {
            ErrorCode::MetadataTimeout
        }
        EngineError::NotActive => ErrorCode::StreamNotFound,
        EngineError::Busy => ErrorCode::RateLimited,
        EngineError::Stalled => ErrorCode::StreamStalled,
        EngineError::InsufficientStorage(_) => ErrorCode::InsufficientStorage,
        EngineError::Internal(_) => ErrorCode::Internal,
    }
}

impl From<EngineError> for AppError {
    fn from(err: EngineError) -> Self {
        match engine_code(&err) {
            ErrorCode::Internal => AppError::internal(format!("{err:#}")),
            ErrorCode::RateLimited => {
                AppError::new(ErrorCode::RateLimited, err.to_string()).retry_after(1)
            }
            code => AppError::new(code, err.to_string()),
        }
    }
}

impl From<SourceError> for AppError {
    fn from(err: SourceError) -> Self {
        EngineError::from(err).into()
    }
}

impl From<StreamError> for AppError {
    fn from(err: StreamError) -> Self {
        match err {
            StreamError::NotFound => AppError::new(ErrorCode::StreamNotFound, "stream not found"),
            StreamError::StillResolving => AppError::new(
                ErrorCode::MetadataTimeout,
                "the torrent's metadata is still resolving; poll the stream",
            ),
            StreamError::Failed(failure) => {
                let code = ErrorCode::from_wire(&failure.code).unwrap_or(ErrorCode::Internal);
                AppError::new(code, failure.message)
            }
            StreamError::Engine(err) => err.into(),
            StreamError::UserQuota(_) | StreamError::ServerQuota(_) => {
                AppError::new(ErrorCode::TooManyStreams, err.to_string())
            }
            StreamError::Token | StreamError::Store(_) => AppError::internal(err),
        }
    }
}

impl From<AuthError> for AppError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::Missing => {
                AppError::new(ErrorCode::AuthRequired, "a bearer token is required")
            }
            AuthError::Invalid => AppError::new(ErrorCode::AuthFailed, "invalid token"),
            AuthError::Refused(why) => AppError::new(ErrorCode::AuthFailed, why),
            AuthError::Expired => AppError::new(ErrorCode::AuthFailed, "the token has expired"),
        }
    }
}

impl From<PlaybackError> for AppError {
    fn from(err: PlaybackError) -> Self {
        match err {
            PlaybackError::Auth(AuthError::Expired) => AppError::new(
                ErrorCode::UrlExpired,
                "this playback URL has expired; refresh the stream",
            ),
            PlaybackError::Auth(_) => AppError::new(ErrorCode::AuthFailed, "invalid playback URL"),
            PlaybackError::Stream(err) => err.into(),
        }
    }
}

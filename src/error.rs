//! The HTTP error contract: stable codes from `API.md`, their statuses, and the JSON body
//! `{"error":{"code","message"}}`. Library errors convert into [`AppError`] once, at the edge;
//! 5xx answers carry a generic message and the cause goes to the log.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

/// The stable error codes of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    InvalidMagnet,
    InvalidTorrent,
    TorrentTooLarge,
    NoVideoFile,
    FileNotFound,
    StreamNotFound,
    AuthRequired,
    AuthFailed,
    UrlExpired,
    Forbidden,
    RateLimited,
    TooManyStreams,
    MetadataTimeout,
    RangeNotSatisfiable,
    UnsupportedMedia,
    PlaylistNotReady,
    TranscoderUnavailable,
    StreamStalled,
    InsufficientStorage,
    /// Not in the API table: the server is at its connection bound (an addition, see README).
    ServerBusy,
    /// Not in the API table: an unknown route (an addition, see README).
    NotFound,
    /// Not in the API table: a known route with the wrong method.
    MethodNotAllowed,
    Internal,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "BAD_REQUEST",
            InvalidMagnet => "INVALID_MAGNET",
            InvalidTorrent => "INVALID_TORRENT",
            TorrentTooLarge => "TORRENT_TOO_LARGE",
            NoVideoFile => "NO_VIDEO_FILE",
            FileNotFound => "FILE_NOT_FOUND",
            StreamNotFound => "STREAM_NOT_FOUND",
            AuthRequired => "AUTH_REQUIRED",
            AuthFailed => "AUTH_FAILED",
            UrlExpired => "URL_EXPIRED",
            Forbidden => "FORBIDDEN",
            RateLimited => "RATE_LIMITED",
            TooManyStreams => "TOO_MANY_STREAMS",
            MetadataTimeout => "METADATA_TIMEOUT",
            RangeNotSatisfiable => "RANGE_NOT_SATISFIABLE",
            UnsupportedMedia => "UNSUPPORTED_MEDIA",
            PlaylistNotReady => "PLAYLIST_NOT_READY",
            TranscoderUnavailable => "TRANSCODER_UNAVAILABLE",
            StreamStalled => "STREAM_STALLED",
            InsufficientStorage => "INSUFFICIENT_STORAGE",
            ServerBusy => "SERVER_BUSY",
            NotFound => "NOT_FOUND",
            MethodNotAllowed => "METHOD_NOT_ALLOWED",
            Internal => "INTERNAL",
        }
    }

    /// The code for its wire form.
    pub fn from_wire(text: &str) -> Option<Self> {
        use ErrorCode::*;
        [
            BadRequest,
            InvalidMagnet,
            InvalidTorrent,
            TorrentTooLarge,
            NoVideoFile,
            FileNotFound,
            StreamNotFound,
            AuthRequired,
            AuthFailed,
            UrlExpired,
            Forbidden,
            RateLimited,
            TooManyStreams,
            MetadataTimeout,
            RangeNotSatisfiable,
            UnsupportedMedia,
            PlaylistNotReady,
            TranscoderUnavailable,
            StreamStalled,
            InsufficientStorage,
            ServerBusy,
            NotFound,
            MethodNotAllowed,
            Internal,
        ]
        .into_iter()
        .find(|code| code.as_str() == text)
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        use ErrorCode::*;
        match self {
            BadRequest | InvalidMagnet | InvalidTorrent => StatusCode::BAD_REQUEST,
            TorrentTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NoVideoFile => StatusCode::UNPROCESSABLE_ENTITY,
            FileNotFound | StreamNotFound | NotFound => StatusCode::NOT_FOUND,
            AuthRequired | AuthFailed | UrlExpired => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            RateLimited | TooManyStreams => StatusCode::TOO_MANY_REQUESTS,
            MetadataTimeout | StreamStalled => StatusCode::GATEWAY_TIMEOUT,
            RangeNotSatisfiable => StatusCode::RANGE_NOT_SATISFIABLE,
            UnsupportedMedia => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            PlaylistNotReady | TranscoderUnavailable | ServerBusy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: a code, a client-safe message, and optional extra headers.
#[derive(Debug, Clone)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// For 416: the full length, sent as `Content-Range: bytes */LEN`.
    pub unsatisfied_len: Option<u64>,
}

impl AppError {
    /// An error with a message safe to show the client.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after_secs: None,
            unsatisfied_len: None,
        }
    }

    /// A 500 whose cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::Internal, "internal server error")
    }

    /// Adds `Retry-After`.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs.max(1));
        self
    }

    /// 416 for a file of `len` bytes.
    pub fn unsatisfiable(len: u64) -> Self {
        let mut err = Self::new(
            ErrorCode::RangeNotSatisfiable,
            format!("range not satisfiable for a file of {len} bytes"),
        );
        err.unsatisfied_len = Some(len);
        err
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'static str,
    message: &'a str,
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.as_str(),
                message: &self.message,
            },
        };
        let mut response = (self.code.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(secs) = self.retry_after_secs {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(len) = self.unsatisfied_len {
            if let Ok(value) = HeaderValue::from_str(&format!("bytes */{len}")) {
                headers.insert(header::CONTENT_RANGE, value);
            }
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

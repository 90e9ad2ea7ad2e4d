//! The HTTP surface: the router, shared state, and the layers every request passes
//! (tracing with tokens redacted, panics turned into 500 JSON, JSON 404/405, CORS and
//! security headers).

pub mod admin;
pub mod admission;
pub mod api;
pub mod body;
pub mod errors;
pub mod events;
pub mod extract;
pub mod hls;
pub mod media;
pub mod metrics;
pub mod playback;
pub mod prepare;
pub mod range;
pub mod security;
pub mod serve;
pub mod subtitles;

use std::sync::Arc;

use axum::{
    http::Request,
    routing::{delete, get, post},
    Json, Router,
};
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

use extract::Anonymous;

use crate::{
    auth::ApiKeys,
    config::Config,
    error::{AppError, ErrorCode},
    limits::Limits,
    media::Media,
    streams::Streams,
};

/// Handles shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub streams: Arc<Streams>,
    pub api_keys: Arc<ApiKeys>,
    pub limits: Arc<Limits>,
    pub media: Arc<Media>,
    pub hls: Arc<crate::media::hls::HlsSessions>,
    /// `http://<loopback>:<port>`: how the server's own tools reach it.
    pub internal_base: String,
    /// The Prometheus recorder's handle (`None` when `metrics.enabled` is off).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Who may read `/metrics` without a token (`metrics.allow`).
    pub metrics_allow: crate::limits::client_ip::TrustedProxies,
    /// Process figures (CPU, memory, descriptors) for `/metrics`.
    pub process_metrics: Arc<metrics_process::Collector>,
    /// Every open connection (the admin summary counts them).
    pub connections: Arc<admission::Connections>,
    /// When the server started.
    pub started: std::time::Instant,
    pub config: Arc<Config>,
    pub shutdown: CancellationToken,
}

/// The whole router, built by a plain function so tests can drive it.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics::metrics))
        .route("/api/v1/openapi.yaml", get(openapi))
        .route(
            "/api/v1/streams",
            post(api::create_stream).get(api::list_streams),
        )
        .route(
            "/api/v1/streams/{id}",
            get(api::get_stream).delete(api::delete_stream),
        )
        .route("/api/v1/streams/{id}/refresh", post(api::refresh_stream))
        .route("/api/v1/torrents/parse", post(api::parse_torrent))
        .route("/api/v1/events", get(events::events))
        .route("/api/v1/admin/streams", get(admin::list_streams))
        .route("/api/v1/admin/streams/{id}", delete(admin::delete_stream))
        .route("/api/v1/admin/stats", get(admin::stats))
        .route(
            "/s/{token}/{*rest}",
            get(playback::playback).head(playback::playback),
        )
        .route_layer(axum::middleware::from_fn(metrics::count_requests))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(AppError::internal("handler panicked"))
        }))
        .layer(axum::middleware::from_fn(security::headers))
        .layer(tower::util::option_layer(security::cors(
            &state.config.server.cors_origins,
        )))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            tracing::info_span!("http", method = %req.method(), path = %redact(req.uri().path()))
        }))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

/// `GET /ready`: 200 when the engine runs and ffmpeg/ffprobe work; 503 naming what is missing
/// (direct play still works then).
async fn ready(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> (axum::http::StatusCode, Json<serde_json::Value>) {
    let media = state.media.readiness().await;
    let status = if media.ok() {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    // Names only: the reasons (paths, OS errors) go to the log, not to anonymous callers.
    let missing: Vec<&str> = [("ffmpeg", &media.ffmpeg), ("ffprobe", &media.ffprobe)]
        .into_iter()
        .filter(|(_, err)| err.is_some())
        .map(|(name, _)| name)
        .collect();
    let body = serde_json::json!({
        "status": if media.ok() { "ready" } else { "degraded" },
        "engine": true,
        "media": media.ok(),
        "missing": missing,
    });
    (status, Json(body))
}

/// The API description, kept next to the router.
pub const OPENAPI: &str = include_str!("openapi.yaml");

async fn openapi(_: Anonymous) -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        OPENAPI,
    )
}

async fn not_found(_: Anonymous) -> AppError {
    metrics::count_unmatched(404);
    AppError::new(ErrorCode::NotFound, "no such route")
}

async fn method_not_allowed(_: Anonymous) -> AppError {
    metrics::count_unmatched(405);
    AppError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}

/// A path safe to log: playback tokens replaced.
pub fn redact(path: &str) -> String {
    match path.strip_prefix("/s/") {
        Some(rest) => match rest.split_once('/') {
            Some((_, tail)) => format!("/s/<token>/{tail}"),
            None => "/s/<token>".to_owned(),
        },
        None => path.to_owned(),
    }
}

//! `GET /metrics` (Prometheus text format) and the layer that counts every request.
//!
//! Who may scrape: a client in `metrics.allow` (default: loopback), or an admin API token;
//! everyone else gets `403 FORBIDDEN`. A request that came through an untrusted reverse proxy
//! (it carries `X-Forwarded-For`) is never taken to be from the proxy's own network. Gauges that
//! describe the whole server (streams, torrents, peers, sessions, cache) are read at scrape
//! time; counters and histograms are recorded where things happen.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    http::{header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics::{counter, gauge};

use super::{extract::ClientIp, AppState};
use crate::{
    auth::{Caller, Role},
    error::{AppError, ErrorCode},
    limits::client_ip::TrustedProxies,
    telemetry::{self, names},
};

/// Counts the request and times it to its response headers, by route template.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let Some(hot) = telemetry::hot() else {
        return next.run(request).await;
    };
    let started = Instant::now();
    let route = telemetry::route_index(
        request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str),
        request.uri().path(),
    );
    let method = telemetry::method_index(request.method().as_str());
    let response = next.run(request).await;
    let status = telemetry::status_index(response.status().as_u16());
    hot.request(route, method, status, started.elapsed().as_secs_f64());
    response
}

/// Counts a request no route matched (the fallbacks run outside the routes' layer).
pub fn count_unmatched(status: u16) {
    if let Some(hot) = telemetry::hot() {
        let route = telemetry::route_index(None, "");
        let method = telemetry::method_index("other");
        hot.request(route, method, telemetry::status_index(status), 0.0);
    }
}

/// `GET /metrics`
pub async fn metrics(State(state): State<AppState>, parts: Parts) -> Result<Response, AppError> {
    let Some(handle) = state.metrics.clone() else {
        return Err(AppError::new(ErrorCode::NotFound, "metrics are turned off"));
    };
    let mut parts = parts;
    allowed(&state, &mut parts).await?;
    collect(&state).await;
    handle.run_upkeep();
    let text = handle.render();
    let content_type = "text/plain; version=0.0.4; charset=utf-8";
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// From an allowed network (not through an untrusted proxy), or with an admin token.
async fn allowed(state: &AppState, parts: &mut Parts) -> Result<(), AppError> {
    use axum::extract::FromRequestParts;
    let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
    let proxied = parts.headers.contains_key("x-forwarded-for")
        || parts.headers.contains_key(header::FORWARDED);
    let peer_trusted = state.limits.proxies.trusts(peer_of(parts));
    if (!proxied || peer_trusted) && state.metrics_allow.trusts(ip) {
        return Ok(());
    }
    if parts.headers.contains_key(header::AUTHORIZATION) {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role == Role::Admin {
            return Ok(());
        }
    }
    Err(AppError::new(
        ErrorCode::Forbidden,
        "metrics are for the allowed networks (metrics.allow) or an admin token",
    ))
}

fn peer_of(parts: &Parts) -> std::net::IpAddr {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |info| info.0.ip())
}

/// Sets the gauges that describe the whole server.
async fn collect(state: &AppState) {
    let streams = state.streams.figures();
    for (phase, count) in [
        ("resolving", streams.resolving),
        ("ready", streams.ready),
        ("failed", streams.failed),
    ] {
        gauge!(names::STREAMS, "state" => phase).set(count as f64);
    }
    gauge!(names::USERS).set(streams.users as f64);
    let engine = state.streams.engine();
    let figures = engine.figures();
    gauge!(names::TORRENTS).set(figures.torrents as f64);
    gauge!(names::PEERS).set(figures.peers as f64);
    counter!(names::DOWNLOADED).absolute(figures.downloaded_bytes);
    counter!(names::UPLOADED).absolute(figures.uploaded_bytes);
    let (cache_bytes, _) = engine.read_cache_usage().await;
    gauge!(names::CACHE_BYTES).set(cache_bytes as f64);
    gauge!(names::HLS_SESSIONS).set(state.hls.count() as f64);
    let (running, paused) = state.hls.jobs();
    gauge!(names::FFMPEG_JOBS, "state" => "running").set(running as f64);
    gauge!(names::FFMPEG_JOBS, "state" => "paused").set(paused as f64);
    let slots = state.media.config.max_transcodes;
    let in_use = slots.saturating_sub(state.media.transcodes.available_permits());
    gauge!(names::TRANSCODE_SLOTS).set(in_use as f64);
    state.process_metrics.collect();
}

/// The networks of `metrics.allow`, parsed once.
pub fn allow_list(config: &crate::config::Config) -> TrustedProxies {
    TrustedProxies::parse(&config.metrics.allow).unwrap_or_default()
}

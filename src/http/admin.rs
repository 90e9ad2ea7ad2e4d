//! `/api/v1/admin`: every user's streams and the server's figures, for callers whose token says
//! `role: admin`. Each admin action is logged with the actor.

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

use super::{
    api::view,
    extract::{Admin, PathParam},
    AppState,
};
use crate::{error::AppError, streams::view::StreamView};

/// A stream with its owner.
#[derive(Serialize)]
pub struct OwnedStream {
    user: String,
    #[serde(flatten)]
    stream: StreamView,
}

#[derive(Serialize)]
pub struct AllStreams {
    streams: Vec<OwnedStream>,
}

/// `GET /api/v1/admin/streams`
pub async fn list_streams(State(state): State<AppState>, Admin(actor): Admin) -> Json<AllStreams> {
    let mut streams = Vec::new();
    for snapshot in state.streams.list_all().await {
        streams.push(OwnedStream {
            user: snapshot.record.user.clone(),
            stream: view(&state, &snapshot).await,
        });
    }
    tracing::info!(actor = %actor.user, count = streams.len(), "admin listed all streams");
    Json(AllStreams { streams })
}

/// `DELETE /api/v1/admin/streams/{id}`
pub async fn delete_stream(
    State(state): State<AppState>,
    Admin(actor): Admin,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, AppError> {
    let owner = state.streams.delete_any(&id).await?;
    state.hls.end_stream(&id).await;
    tracing::warn!(actor = %actor.user, stream = %id, owner = %owner, "admin deleted a stream");
    Ok(StatusCode::NO_CONTENT)
}

/// The server at a glance (`GET /api/v1/admin/stats`).
#[derive(Serialize)]
pub struct ServerStats {
    version: &'static str,
    uptime_seconds: u64,
    users: usize,
    streams: crate::streams::StreamFigures,
    engine: crate::engine::EngineFigures,
    hls: HlsFigures,
    disk: DiskFigures,
    read_cache: CacheFigures,
    connections: usize,
}

#[derive(Serialize)]
struct HlsFigures {
    sessions: u64,
    ffmpeg_running: usize,
    ffmpeg_paused: usize,
    transcodes_in_use: usize,
    max_transcodes: usize,
}

#[derive(Serialize)]
struct DiskFigures {
    used_bytes: u64,
    quota_bytes: u64,
    free_bytes: Option<u64>,
}

#[derive(Serialize)]
struct CacheFigures {
    bytes: u64,
    blocks: u64,
    max_bytes: u64,
}

/// `GET /api/v1/admin/stats`
pub async fn stats(State(state): State<AppState>, Admin(_): Admin) -> Json<ServerStats> {
    let streams = state.streams.figures();
    let engine = state.streams.engine();
    let (used, quota) = engine.disk();
    let (cache_bytes, blocks) = engine.read_cache_usage().await;
    let (running, paused) = state.hls.jobs();
    let slots = state.media.config.max_transcodes;
    let downloads = state.config.storage.data_dir.join("downloads");
    Json(ServerStats {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        users: streams.users,
        streams,
        engine: engine.figures(),
        hls: HlsFigures {
            sessions: state.hls.count(),
            ffmpeg_running: running,
            ffmpeg_paused: paused,
            transcodes_in_use: slots.saturating_sub(state.media.transcodes.available_permits()),
            max_transcodes: slots,
        },
        disk: DiskFigures {
            used_bytes: used,
            quota_bytes: quota,
            free_bytes: crate::engine::usage::available(&downloads),
        },
        read_cache: CacheFigures {
            bytes: cache_bytes,
            blocks,
            max_bytes: state.config.storage.read_cache_bytes,
        },
        connections: state.connections.count(),
    })
}

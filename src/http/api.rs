//! `/api/v1` handlers: thin adapters from requests to the `Streams` facade and back.

use axum::{extract::State, http::StatusCode, response::IntoResponse, Json};
use serde::Serialize;

use super::{
    extract::{limited, PathParam, TorrentRequest},
    AppState,
};
use crate::{
    auth::Caller,
    engine::{quality::parse_quality, quality::Quality, source::TorrentFile},
    error::AppError,
    streams::{
        view::{render, StreamView},
        Created, Phase, StreamSnapshot,
    },
};

/// `POST /api/v1/streams`
pub async fn create_stream(
    State(state): State<AppState>,
    caller: Caller,
    request: TorrentRequest,
) -> Result<impl IntoResponse, AppError> {
    state
        .limits
        .rate
        .creations
        .check(&caller.user)
        .map_err(limited)?;
    let (snapshot, created) = state
        .streams
        .create(&caller.user, request.source, request.file, request.peers)
        .await?;
    if let Some(client) = request.prepare {
        let (state, id) = (state.clone(), snapshot.record.id.clone());
        tokio::spawn(
            async move { super::prepare::prepare(&state, &caller.user, &id, client).await },
        );
    }
    let status = match (&snapshot.phase, created) {
        (Phase::Resolving, _) => StatusCode::ACCEPTED,
        (_, Created::New) => StatusCode::CREATED,
        (_, Created::Existing) => StatusCode::OK,
    };
    Ok((status, Json(view(&state, &snapshot).await)))
}

#[derive(Serialize)]
pub struct StreamList {
    streams: Vec<StreamView>,
}

/// `GET /api/v1/streams`
pub async fn list_streams(State(state): State<AppState>, caller: Caller) -> Json<StreamList> {
    let mut streams = Vec::new();
    for snapshot in state.streams.list(&caller.user).await {
        streams.push(view(&state, &snapshot).await);
    }
    Json(StreamList { streams })
}

/// `GET /api/v1/streams/{id}`
pub async fn get_stream(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<StreamView>, AppError> {
    let snapshot = state.streams.get(&caller.user, &id).await?;
    Ok(Json(view(&state, &snapshot).await))
}

/// `POST /api/v1/streams/{id}/refresh`
pub async fn refresh_stream(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<Json<StreamView>, AppError> {
    let snapshot = state.streams.refresh(&caller.user, &id).await?;
    Ok(Json(view(&state, &snapshot).await))
}

/// `DELETE /api/v1/streams/{id}`
pub async fn delete_stream(
    State(state): State<AppState>,
    caller: Caller,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, AppError> {
    state.streams.delete(&caller.user, &id).await?;
    state.hls.end_stream(&id).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
pub struct ParsedTorrent {
    info_hash: String,
    name: Option<String>,
    trackers: Vec<String>,
    peers: Vec<std::net::SocketAddr>,
    files: Option<Vec<ParsedFile>>,
}

#[derive(Serialize)]
pub struct ParsedFile {
    #[serde(flatten)]
    file: TorrentFile,
    quality: Quality,
}

/// `POST /api/v1/torrents/parse` — validates and describes without starting anything.
pub async fn parse_torrent(_caller: Caller, request: TorrentRequest) -> Json<ParsedTorrent> {
    let source = request.source;
    let files = source.files.map(|files| {
        files
            .into_iter()
            .map(|file| ParsedFile {
                quality: parse_quality(&file.path),
                file,
            })
            .collect()
    });
    let mut peers = source.peers;
    peers.extend(request.peers);
    Json(ParsedTorrent {
        info_hash: source.info_hash,
        name: source.name,
        trackers: source.trackers,
        peers,
        files,
    })
}

/// The Stream object, with live status and, once the file was probed, its embedded subtitles.
pub(super) async fn view(state: &AppState, snapshot: &StreamSnapshot) -> StreamView {
    let (status, probe) = match (&snapshot.phase, snapshot.record.file_index) {
        (Phase::Ready(meta), Some(file)) => (
            Some(state.streams.engine().file_status(meta, file)),
            state
                .media
                .cached_probe(&(meta.info_hash.clone(), file))
                .await,
        ),
        _ => (None, None),
    };
    let base = &state.config.server.public_url;
    render(snapshot, status.as_ref(), probe.as_deref(), base)
}

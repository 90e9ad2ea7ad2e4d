//! `/s/{token}/probe`: what the file contains and how this client would play it. ffprobe
//! reads the file through the server's own loopback playback URL with the caller's token.

use axum::{
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Json,
};
use serde::Serialize;

use super::AppState;
use crate::{
    engine::TorrentMeta,
    error::{AppError, ErrorCode},
    media::{
        client::Client,
        plan::{plan, Plan},
        probe::Probe,
        subtitles::{tracks, SubtitleTrack},
        tool::ToolError,
        MediaError,
    },
    streams::view::url_file_name,
};

/// The client from `?client=`, else from the User-Agent.
pub fn client_of(query: Option<&str>, headers: &HeaderMap) -> Client {
    let asked = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .find(|(k, _)| k == "client")
        .and_then(|(_, v)| Client::from_name(&v));
    asked.unwrap_or_else(|| {
        let agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Client::from_user_agent(agent)
    })
}

#[derive(Serialize)]
struct ProbeAnswer<'a> {
    client: Client,
    probe: &'a Probe,
    #[serde(skip_serializing_if = "Option::is_none")]
    plan: Option<Plan>,
    /// Why nothing plays it for this client (`plan` is absent then).
    #[serde(skip_serializing_if = "Option::is_none")]
    unsupported: Option<String>,
    /// External and embedded subtitle tracks; text ones are at `subs/{id}.vtt`.
    subtitles: Vec<SubtitleTrack>,
}

/// `GET /s/{token}/probe[?client=…]`
pub async fn probe(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
    client: Client,
) -> Result<Response, AppError> {
    let probed = probe_file(state, token, meta, file).await?;
    let decided = plan(&probed, client, state.media.config.allow_video_transcode);
    let (plan, unsupported) = match decided {
        Ok(plan) => (Some(plan), None),
        Err(why) => (None, Some(why.0)),
    };
    let answer = ProbeAnswer {
        client,
        probe: &probed,
        plan,
        unsupported,
        subtitles: tracks(&meta.files, file, Some(&probed)),
    };
    Ok(Json(answer).into_response())
}

/// Probes (or recalls) the stream's file.
pub async fn probe_file(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
) -> Result<std::sync::Arc<Probe>, AppError> {
    let entry = meta
        .file(file)
        .ok_or_else(|| AppError::new(ErrorCode::FileNotFound, "file not found"))?;
    let name = url_file_name(&entry.path);
    let url = format!("{}/s/{token}/{name}", state.internal_base);
    let key = (meta.info_hash.clone(), file);
    state
        .media
        .probe(key, &url, &entry.path)
        .await
        .map_err(|err| media_error(&err))
}

/// A media failure as the client sees it; details go to the log.
pub fn media_error(err: &MediaError) -> AppError {
    tracing::warn!(error = %err, "media work failed");
    match err {
        MediaError::Tool(ToolError::Missing { .. }) => AppError::new(
            ErrorCode::TranscoderUnavailable,
            "ffmpeg/ffprobe is not available on this server; direct play still works",
        )
        .retry_after(30),
        MediaError::Tool(ToolError::Timeout { .. }) => AppError::new(
            ErrorCode::StreamStalled,
            "reading the file took too long; retry",
        )
        .retry_after(1),
        MediaError::Tool(ToolError::Failed { .. }) | MediaError::Parse(_) => AppError::new(
            ErrorCode::UnsupportedMedia,
            "this file could not be read as audio or video",
        ),
    }
}

//! `/s/{token}/subs/{id}.vtt`: one of the stream's subtitle tracks as UTF-8 WebVTT — an
//! external file read from the torrent (its pieces are fetched first) and converted, or an
//! embedded text stream extracted by ffmpeg on first request. Image tracks answer 415.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

use super::{
    media::{media_error, probe_file},
    AppState,
};
use crate::{
    engine::TorrentMeta,
    error::{AppError, ErrorCode},
    media::{
        hls::source::TorrentRange,
        index::RangeRead,
        subtitles::{
            external_to_vtt, tracks, SubtitleSource, SubtitleTrack, TextFormat, MAX_SUBTITLE_BYTES,
        },
        tool::ToolError,
        MediaError,
    },
    streams::view::url_file_name,
};

/// `subs/{id}.vtt` for the stream's `file`.
pub async fn serve(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
    name: &str,
) -> Result<Response, AppError> {
    let id = name.strip_suffix(".vtt").ok_or_else(missing)?;
    let text = webvtt(state, token, meta, file, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/vtt; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        text,
    )
        .into_response())
}

/// Track `id` as WebVTT.
pub async fn webvtt(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
    id: &str,
) -> Result<String, AppError> {
    let track = track(state, token, meta, file, id).await?;
    match track.source {
        SubtitleSource::External { file, format } => external(state, meta, file, format).await,
        SubtitleSource::Embedded { stream } => embedded(state, token, meta, file, stream).await,
        SubtitleSource::None => Err(AppError::new(
            ErrorCode::UnsupportedMedia,
            format!(
                "{} subtitles are pictures and cannot be shown as WebVTT; a player such as \
                 mpv or VLC shows them from the direct URL",
                track.format
            ),
        )),
    }
}

/// Track `id`; the file is probed first for embedded tracks (`e{n}`).
pub async fn track(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
    id: &str,
) -> Result<SubtitleTrack, AppError> {
    let probe = match id.starts_with('e') {
        true => Some(probe_file(state, token, meta, file).await?),
        false => None,
    };
    tracks(&meta.files, file, probe.as_deref())
        .into_iter()
        .find(|t| t.id == id)
        .ok_or_else(missing)
}

/// Every track, the embedded ones included (the file is probed).
pub async fn all_tracks(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
) -> Result<Vec<SubtitleTrack>, AppError> {
    let probe = probe_file(state, token, meta, file).await?;
    Ok(tracks(&meta.files, file, Some(&probe)))
}

fn missing() -> AppError {
    AppError::new(ErrorCode::FileNotFound, "no such subtitle track")
}

/// An external file, read from the torrent and converted.
async fn external(
    state: &AppState,
    meta: &TorrentMeta,
    index: usize,
    format: TextFormat,
) -> Result<String, AppError> {
    let entry = meta.file(index).ok_or_else(missing)?;
    if entry.size > MAX_SUBTITLE_BYTES {
        return Err(AppError::new(
            ErrorCode::UnsupportedMedia,
            "subtitle file too large",
        ));
    }
    let range = TorrentRange {
        engine: state.streams.engine().clone(),
        info_hash: meta.info_hash.clone(),
        file: index,
        len: entry.size,
        timeout: state.media.config.probe_timeout,
    };
    let bytes = range.read(0, entry.size).await.map_err(|err| {
        tracing::warn!(error = %err, "subtitle read failed");
        AppError::new(
            ErrorCode::StreamStalled,
            "the subtitle file did not arrive in time; retry",
        )
        .retry_after(1)
    })?;
    Ok(external_to_vtt(format, &bytes))
}

/// An embedded text stream, extracted by ffmpeg. The extraction runs on its own task, so it
/// goes on after this request gives up (503 + `Retry-After` past `media.hls_wait`) and the
/// retry finds it done or still running.
async fn embedded(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
    stream: u32,
) -> Result<String, AppError> {
    let entry = meta.file(file).ok_or_else(missing)?;
    let url = format!(
        "{}/s/{token}/{}",
        state.internal_base,
        url_file_name(&entry.path)
    );
    let media = state.media.clone();
    let key = (meta.info_hash.clone(), file, stream);
    let extraction = tokio::spawn(async move { media.embedded_vtt(key, &url).await });
    match tokio::time::timeout(state.media.config.hls_wait, extraction).await {
        Ok(Ok(Ok(text))) => Ok(text.to_string()),
        // ffmpeg stopped before the end of the file: most often the swarm stalled or the
        // stream went away; a later request starts a fresh run.
        Ok(Ok(Err(err))) if matches!(*err, MediaError::Tool(ToolError::Failed { .. })) => {
            tracing::warn!(error = %err, "subtitle extraction failed");
            Err(AppError::new(
                ErrorCode::StreamStalled,
                "the subtitle track could not be read to the end of the file; retry",
            )
            .retry_after(5))
        }
        Ok(Ok(Err(err))) => Err(media_error(&err)),
        Ok(Err(join)) => Err(AppError::internal(join)),
        Err(_) => Err(AppError::new(
            ErrorCode::PlaylistNotReady,
            "this subtitle track is being extracted (ffmpeg reads the whole file); retry",
        )
        .retry_after(5)),
    }
}

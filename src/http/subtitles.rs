//! `/s/{token}/subs/{k}.vtt`: the k-th external subtitle file next to the stream's video,
//! read from the torrent (its pieces are fetched first) and served as UTF-8 WebVTT.

use axum::{
    http::header,
    response::{IntoResponse, Response},
};

use super::AppState;
use crate::{
    engine::{files::companions, TorrentMeta},
    error::{AppError, ErrorCode},
    media::{
        hls::source::TorrentRange,
        index::RangeRead,
        subtitles::{decode_text, srt_to_vtt, vtt, MAX_SUBTITLE_BYTES},
    },
};

/// `subs/{name}` for the stream's `file`.
pub async fn serve(
    state: &AppState,
    meta: &TorrentMeta,
    file: usize,
    name: &str,
) -> Result<Response, AppError> {
    let missing = || AppError::new(ErrorCode::FileNotFound, "no such subtitle track");
    let k: usize = name
        .strip_suffix(".vtt")
        .and_then(|k| k.parse().ok())
        .ok_or_else(missing)?;
    let index = *companions(&meta.files, file).get(k).ok_or_else(missing)?;
    let entry = meta.file(index).ok_or_else(missing)?;
    if entry.size > MAX_SUBTITLE_BYTES {
        return Err(AppError::new(
            ErrorCode::UnsupportedMedia,
            "subtitle file too large",
        ));
    }
    let extension = entry
        .path
        .rsplit('.')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let convert: fn(&str) -> String = match extension.as_str() {
        "srt" => srt_to_vtt,
        "vtt" => vtt,
        _ => {
            return Err(AppError::new(
                ErrorCode::UnsupportedMedia,
                format!(".{extension} subtitles are not converted to WebVTT yet"),
            ))
        }
    };
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
    let text = convert(&decode_text(&bytes));
    Ok((
        [
            (header::CONTENT_TYPE, "text/vtt; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        text,
    )
        .into_response())
}

//! `/s/{token}/hls/…`: the master playlist, each rendition's full VOD playlist (cut at the
//! container's keyframes), its init segment and its segments, produced by the session's
//! ffmpeg jobs. A rendition is named after the client rules it follows (`browser`, `safari`).
//! Not ready yet → 503 `PLAYLIST_NOT_READY` with `Retry-After`.

use std::sync::Arc;

use axum::{
    body::Body,
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};

use futures::StreamExt;

use super::{
    media::{client_of, probe_file},
    AppState,
};
use crate::{
    engine::TorrentMeta,
    error::{AppError, ErrorCode},
    media::{
        client::Client,
        hls::{source::TorrentRange, HlsSession, JobTemplate, SegmentState, Timeline},
        index::{self, IndexError},
        plan::plan,
        probe::Container,
        segments,
        subtitles::{SubtitleKind, SubtitleTrack},
        INTERNAL_HEADER,
    },
    streams::{record::StreamRecord, view::url_file_name},
};

/// Routes `hls/{rest}`.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    state: &AppState,
    token: &str,
    record: &StreamRecord,
    meta: &TorrentMeta,
    file: usize,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    observer: &super::body::Observer,
) -> Result<Response, AppError> {
    if !state.media.readiness().await.ok() {
        return Err(AppError::new(
            ErrorCode::TranscoderUnavailable,
            "ffmpeg/ffprobe is not available on this server; direct play still works",
        )
        .retry_after(30));
    }
    if rest == "master.m3u8" {
        let client = client_of(query, headers);
        let tracks = super::subtitles::all_tracks(state, token, meta, file).await?;
        return Ok(playlist(master(&tracks, rendition_of(client))));
    }
    if let Some(name) = rest.strip_prefix("subs/") {
        return subtitle_rendition(state, token, meta, file, name).await;
    }
    let (rendition, name) = rest.split_once('/').ok_or_else(not_found)?;
    let client = Client::from_name(rendition)
        .filter(|c| !c.plays_anything())
        .ok_or_else(not_found)?;
    let session = session(state, token, record, meta, file, client).await?;
    let answer = match name {
        "index.m3u8" => wait_for(state, &session, |s| s.playlist(|n| format!("{n}.m4s")))
            .await
            .map(playlist),
        "init.mp4" => init(state, &session).await,
        _ => {
            let n = name
                .strip_suffix(".m4s")
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(not_found)?;
            segment(state, &session, n, observer).await
        }
    };
    if let Err(err) = &answer {
        if err.code == ErrorCode::TranscoderUnavailable {
            let events = state.streams.events();
            events.emit(
                &record.user,
                &record.id,
                "hls.failed",
                Some(err.code.as_str()),
            );
        }
    }
    answer
}

/// Makes the HLS session of `client` for a stream and waits until its first segment is
/// written (at most `within`): `"prepare"` on stream creation.
pub async fn first_segment(
    state: &AppState,
    playable: &crate::streams::Playable,
    client: Client,
    within: std::time::Duration,
) -> Result<(), AppError> {
    let record = &playable.record;
    let token = &record.token;
    let session = session(state, token, record, &playable.meta, playable.file, client).await?;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let found = wait_for(state, &session, |s| match s.segment(0)? {
            SegmentState::Pending => Ok(None),
            SegmentState::Ready(_) | SegmentState::Missing => Ok(Some(())),
        })
        .await;
        match found {
            Err(err)
                if err.code == ErrorCode::PlaylistNotReady
                    && tokio::time::Instant::now() < deadline => {}
            other => return other,
        }
    }
}

/// The master playlist: one video rendition, and each text subtitle track (external files,
/// then embedded streams) as a `SUBTITLES` rendition.
fn master(tracks: &[SubtitleTrack], rendition: &str) -> String {
    let mut text = String::from("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let text_tracks: Vec<&SubtitleTrack> = tracks
        .iter()
        .filter(|t| t.kind == SubtitleKind::Text)
        .collect();
    for track in &text_tracks {
        let id = &track.id;
        let lang = track.lang.clone().unwrap_or_else(|| format!("sub{id}"));
        let name = match &track.title {
            Some(title) => format!("{lang} ({title})"),
            None => lang.clone(),
        };
        let name = quoted(&name);
        let lang = quoted(&lang);
        text.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\",NAME=\"{name}\",LANGUAGE=\"{lang}\",DEFAULT=NO,AUTOSELECT=YES,URI=\"subs/{id}.m3u8\"\n"
        ));
    }
    let subtitles = if text_tracks.is_empty() {
        ""
    } else {
        ",SUBTITLES=\"subs\""
    };
    text.push_str(&format!(
        "#EXT-X-STREAM-INF:BANDWIDTH=8000000{subtitles}\n{rendition}/index.m3u8\n"
    ));
    text
}

/// A value safe inside an HLS quoted string (no `"`, no line breaks).
fn quoted(value: &str) -> String {
    value
        .chars()
        .map(|c| if c == '"' || c.is_control() { '\'' } else { c })
        .collect()
}

/// `hls/subs/{id}.m3u8` (one WebVTT file covering the whole duration) and `hls/subs/{id}.vtt`
/// (the WebVTT with `X-TIMESTAMP-MAP=MPEGTS:0`, as fMP4 renditions want).
async fn subtitle_rendition(
    state: &AppState,
    token: &str,
    meta: &TorrentMeta,
    file: usize,
    name: &str,
) -> Result<Response, AppError> {
    if let Some(id) = name.strip_suffix(".m3u8") {
        super::subtitles::track(state, token, meta, file, id)
            .await
            .map_err(|_| not_found())?;
        let duration = probe_file(state, token, meta, file)
            .await?
            .duration
            .unwrap_or(86_400.0);
        let text = format!(
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n#EXTINF:{duration:.3},\n{id}.vtt\n#EXT-X-ENDLIST\n",
            duration.ceil() as u64
        );
        return Ok(playlist(text));
    }
    let id = name.strip_suffix(".vtt").ok_or_else(not_found)?;
    let text = super::subtitles::webvtt(state, token, meta, file, id).await?;
    let rest = text.strip_prefix("WEBVTT").unwrap_or(&text);
    let mapped = format!("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000{rest}");
    Ok((
        [
            (header::CONTENT_TYPE, "text/vtt; charset=utf-8"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        mapped,
    )
        .into_response())
}

fn rendition_of(client: Client) -> &'static str {
    match client {
        Client::Safari => "safari",
        _ => "browser",
    }
}

fn not_found() -> AppError {
    AppError::new(ErrorCode::NotFound, "no such HLS resource")
}

fn not_ready() -> AppError {
    AppError::new(
        ErrorCode::PlaylistNotReady,
        "the transcoder is still preparing this; retry",
    )
    .retry_after(1)
}

fn playlist(text: String) -> Response {
    let mut response = text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        "application/vnd.apple.mpegurl".parse().expect("mime"),
    );
    headers.insert(header::CACHE_CONTROL, "no-cache".parse().expect("cache"));
    response
}

/// The session of this stream and rendition, made on first use: probe, plan, keyframe index.
async fn session(
    state: &AppState,
    token: &str,
    record: &StreamRecord,
    meta: &TorrentMeta,
    file: usize,
    client: Client,
) -> Result<Arc<HlsSession>, AppError> {
    let key = format!("{}/{}", record.id, rendition_of(client));
    let make = async {
        let probed = probe_file(state, token, meta, file).await?;
        let decided = plan(&probed, client, state.media.config.allow_video_transcode)
            .map_err(|why| AppError::new(ErrorCode::UnsupportedMedia, why.0))?;
        let entry = meta.file(file).ok_or_else(not_found)?;
        let range = TorrentRange {
            engine: state.streams.engine().clone(),
            info_hash: meta.info_hash.clone(),
            file,
            len: entry.size,
            timeout: state.media.config.probe_timeout,
        };
        let keyframes = match probed.container {
            Container::Mp4 => index::mp4::keyframes(&range).await,
            Container::Matroska | Container::WebM => index::mkv::keyframes(&range).await,
            _ => Err(IndexError::NoIndex),
        };
        let timeline = match keyframes {
            Ok(keyframes) => Timeline::Vod(segments::cut(&keyframes, segments::TARGET)),
            // The index did not arrive in time: the swarm is slow, not the file wrong.
            Err(IndexError::Io(err)) => {
                tracing::warn!(error = %err, "keyframe index read failed");
                return Err(AppError::new(
                    ErrorCode::StreamStalled,
                    "the file's index did not arrive in time; retry",
                )
                .retry_after(2));
            }
            Err(err) => {
                tracing::info!(error = %err, "no keyframe index: event playlist");
                Timeline::Event
            }
        };
        let transcoded = decided
            .video
            .as_ref()
            .filter(|v| v.action == crate::media::plan::Action::H264);
        let template = JobTemplate {
            ffmpeg: state.media.config.ffmpeg_path.clone(),
            ffprobe: state.media.config.ffprobe_path.clone(),
            url: format!(
                "{}/s/{token}/{}",
                state.internal_base,
                url_file_name(&entry.path)
            ),
            header: format!("{INTERNAL_HEADER}: {}\r\n", state.media.internal_key()),
            transcodes: transcoded.map(|_| state.media.transcodes.clone()),
            tolerance: crate::media::hls::session::tolerance(transcoded.and_then(|video| {
                let track = probed.tracks.iter().find(|t| t.index == video.index)?;
                track.frame_rate
            })),
            plan: decided.clone(),
        };
        let dir = state
            .config
            .storage
            .data_dir
            .join("hls")
            .join(key.replace('/', "-"));
        let events = state.streams.events();
        let mut detail = serde_json::Map::new();
        detail.insert("rendition".into(), rendition_of(client).into());
        events.emit_with(&record.user, &record.id, "hls.started", None, detail);
        Ok::<_, AppError>(Arc::new(HlsSession::new(
            key.clone(),
            timeline,
            dir,
            template,
        )))
    };
    state
        .hls
        .get_or_create(&key, make)
        .await
        .map_err(|err| AppError::clone(&err))
}

/// Waits (up to `media.hls_wait`) for `check` to give a value.
async fn wait_for<T: Send + 'static>(
    state: &AppState,
    session: &Arc<HlsSession>,
    check: impl Fn(&HlsSession) -> Result<Option<T>, String> + Send + Sync + Clone + 'static,
) -> Result<T, AppError> {
    let deadline = tokio::time::Instant::now() + state.media.config.hls_wait;
    loop {
        let (session_, check_) = (session.clone(), check.clone());
        let found = tokio::task::spawn_blocking(move || check_(&session_))
            .await
            .map_err(AppError::internal)?;
        match found {
            Ok(Some(value)) => return Ok(value),
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Ok(None) => return Err(not_ready()),
            Err(error) => {
                tracing::warn!(session = %session.id, %error, "ffmpeg failed");
                return Err(AppError::new(
                    ErrorCode::TranscoderUnavailable,
                    "the transcoder failed; retry",
                )
                .retry_after(2));
            }
        }
        session.touch();
    }
}

async fn init(state: &AppState, session: &Arc<HlsSession>) -> Result<Response, AppError> {
    let path = wait_for(state, session, |s| {
        if let Some(path) = s.init() {
            return Ok(Some(path));
        }
        s.segment(0).map(|_| None)
    })
    .await?;
    file_response(&[path]).await
}

async fn segment(
    state: &AppState,
    session: &Arc<HlsSession>,
    n: usize,
    observer: &super::body::Observer,
) -> Result<Response, AppError> {
    let asked = std::time::Instant::now();
    let found = wait_for(state, session, move |s| match s.segment(n)? {
        SegmentState::Ready(files) => Ok(Some(Ok(files))),
        SegmentState::Pending => Ok(None),
        SegmentState::Missing => Ok(Some(Err(()))),
    })
    .await;
    metrics::histogram!(crate::telemetry::names::SEGMENT_WAIT)
        .record(asked.elapsed().as_secs_f64());
    let files = found?.map_err(|()| not_found())?;
    let response = file_response(&files).await?;
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0);
    observer.served(bytes);
    Ok(response)
}

/// The files streamed one after the other (a segment is a few MB of GOP fragments; they are
/// never held in memory whole). A job evicted meanwhile may delete a file: opened first, it
/// stays readable.
async fn file_response(files: &[std::path::PathBuf]) -> Result<Response, AppError> {
    let mut opened = Vec::with_capacity(files.len());
    let mut length = 0;
    for path in files {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(AppError::internal)?;
        length += file.metadata().await.map_err(AppError::internal)?.len();
        opened.push(tokio_util::io::ReaderStream::new(file));
    }
    let body = Body::from_stream(futures::stream::iter(opened).flatten());
    let mut response = (StatusCode::OK, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, length.into());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, "video/mp4".parse().expect("mime"));
    headers.insert(
        header::CACHE_CONTROL,
        "private, max-age=31536000, immutable"
            .parse()
            .expect("cache"),
    );
    Ok(response)
}

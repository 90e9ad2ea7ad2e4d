//! `/s/{token}/…`: the signed playback routes. The token is the credential; every request
//! looks its stream up, so a deleted stream's URLs stop at once. Files are served with
//! RFC 9110 range semantics through the same handler players and ffmpeg use.

use axum::{
    body::Body,
    extract::{RawQuery, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
};

use super::{
    body::{torrent_body, BodyError, BodyTiming, Observer, Wait, Waits},
    extract::{count_refusal, limited, ClientIp, PathParam},
    range::{decide, RangeDecision},
    AppState,
};
use crate::{
    engine::{files::mime_for, TorrentMeta},
    error::{AppError, ErrorCode},
    streams::{record::StreamRecord, view::url_file_name, PlaybackError},
};

/// `GET|HEAD /s/{token}/{*rest}`
pub async fn playback(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PathParam((token, rest)): PathParam<(String, String)>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, AppError> {
    let rate = &state.limits.rate;
    let requested_at = std::time::Instant::now();
    let playable = match state.streams.for_playback(&token).await {
        Ok(found) => found,
        Err(PlaybackError::Auth(err)) => {
            let blocked = count_refusal(&state, ip, &err);
            return Err(blocked.unwrap_or_else(|| PlaybackError::Auth(err).into()));
        }
        Err(err) => return Err(err.into()),
    };
    // One budget per URL (the token's signature names it); the server's own tools reading
    // through loopback are not counted, in the limits or in the stream's statistics.
    let internal = is_internal(&state, ip, &headers);
    if !internal {
        let url_key = token.rsplit('.').next().unwrap_or(&token).to_owned();
        rate.content.check(&url_key).map_err(limited)?;
        playable.stats.request();
    }
    let observer = Observer {
        requested_at,
        stream: (!internal).then(|| playable.stats.clone()),
        waits: (!internal).then(|| waits(&state, &playable)),
    };
    let (record, meta, file) = (&playable.record, &*playable.meta, playable.file);
    match rest.as_str() {
        "probe" => {
            let client = super::media::client_of(query.as_deref(), &headers);
            super::media::probe(&state, &token, meta, file, client).await
        }
        "playlist.m3u" => Ok(m3u(&state, &headers, record, meta, file)),
        subs if subs.starts_with("subs/") => {
            let name = &subs["subs/".len()..];
            super::subtitles::serve(&state, &token, meta, file, name).await
        }
        hls if hls.starts_with("hls/") => {
            let rest = &hls["hls/".len()..];
            let query = query.as_deref();
            let observer = &observer;
            super::hls::serve(
                &state, &token, record, meta, file, rest, query, &headers, observer,
            )
            .await
        }
        "play" => {
            let client = super::media::client_of(query.as_deref(), &headers);
            play(&state, &token, record, meta, file, client).await
        }
        name => {
            let file = FileRequest {
                record,
                meta,
                file,
                name,
                observer,
            };
            serve_file(&state, &method, &headers, file).await
        }
    }
}

/// How a player's body reports its waits: the engine counts it as waiting (it looks for
/// peers), the stream's owner hears of underruns, stalls and recoveries.
fn waits(state: &AppState, playable: &crate::streams::Playable) -> Waits {
    let (streams, user, id) = (
        state.streams.clone(),
        playable.record.user.clone(),
        playable.record.id.clone(),
    );
    let stats = playable.stats.clone();
    Waits {
        engine: state.streams.engine().clone(),
        info_hash: playable.meta.info_hash.clone(),
        notify: std::sync::Arc::new(move |wait| {
            let events = streams.events();
            match wait {
                Wait::Underrun(waited) => {
                    let mut detail = serde_json::Map::new();
                    detail.insert("waited_ms".into(), (waited.as_millis() as u64).into());
                    events.emit_with(&user, &id, "playback.underrun", None, detail);
                }
                Wait::Stalled => {
                    if stats.stall() {
                        events.emit(&user, &id, "stream.stalled", Some("STREAM_STALLED"));
                    }
                }
                Wait::Flowing => {
                    if stats.flowing() {
                        events.emit(&user, &id, "stream.resumed", None);
                    }
                }
            }
        }),
    }
}

/// A request from ffprobe/ffmpeg started by this server: loopback, with the process's key.
fn is_internal(state: &AppState, ip: std::net::IpAddr, headers: &HeaderMap) -> bool {
    let key = headers.get(crate::media::INTERNAL_HEADER);
    ip.is_loopback() && key.is_some_and(|k| state.media.is_internal(k.as_bytes()))
}

/// A file of a stream asked for by name, and how its body is measured.
struct FileRequest<'a> {
    record: &'a StreamRecord,
    meta: &'a TorrentMeta,
    file: usize,
    name: &'a str,
    observer: Observer,
}

async fn serve_file(
    state: &AppState,
    method: &Method,
    headers: &HeaderMap,
    request: FileRequest<'_>,
) -> Result<Response, AppError> {
    let FileRequest {
        record,
        meta,
        file,
        name,
        observer,
    } = request;
    let entry = meta
        .file(file)
        .ok_or_else(|| AppError::new(ErrorCode::FileNotFound, "file not found"))?;
    let base_name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
    if name != base_name {
        return Err(AppError::new(
            ErrorCode::FileNotFound,
            "no such file in this stream",
        ));
    }
    let len = entry.size;
    let etag = format!("\"{}-{}\"", meta.info_hash, file);
    if matches_none_match(headers, &etag) {
        let mut response = StatusCode::NOT_MODIFIED.into_response();
        set(&mut response, header::ETAG, &etag);
        return Ok(response);
    }
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let decision = decide(text(header::RANGE), text(header::IF_RANGE), &etag, len);
    let (status, start, count) = match decision {
        RangeDecision::Unsatisfiable => return Err(AppError::unsatisfiable(len)),
        RangeDecision::Full => (StatusCode::OK, 0, len),
        RangeDecision::Partial { start, end } => {
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    let body = if method == Method::HEAD || count == 0 {
        Body::empty()
    } else {
        open_body(state, record, meta, file, (start, count), observer).await?
    };
    let mut response = (status, body).into_response();
    set(&mut response, header::CONTENT_TYPE, &mime_for(&entry.path));
    set(&mut response, header::ACCEPT_RANGES, "bytes");
    set(&mut response, header::ETAG, &etag);
    set(&mut response, header::CONTENT_LENGTH, &count.to_string());
    set(
        &mut response,
        header::CACHE_CONTROL,
        "private, no-transform",
    );
    if status == StatusCode::PARTIAL_CONTENT {
        let range = format!("bytes {start}-{}/{len}", start + count - 1);
        set(&mut response, header::CONTENT_RANGE, &range);
    }
    Ok(response)
}

async fn open_body(
    state: &AppState,
    record: &StreamRecord,
    meta: &TorrentMeta,
    file: usize,
    (start, count): (u64, u64),
    observer: Observer,
) -> Result<Body, AppError> {
    let engine = state.streams.engine();
    let source = engine.open_reader(&meta.info_hash, file, start).await?;
    let timing = BodyTiming {
        first_byte_wait: state.config.engine.first_byte_wait,
        stall: state.config.engine.stall_timeout,
    };
    let has_peers = || engine.live_peers(&meta.info_hash) > 0;
    torrent_body(
        source,
        start,
        count,
        timing,
        has_peers,
        state.limits.egress.pacer(&record.user),
        observer,
        state.shutdown.clone(),
    )
    .await
    .map_err(|err| match err {
        BodyError::Stalled => AppError::new(
            ErrorCode::StreamStalled,
            "no data arrived from the swarm in time; retry",
        )
        .retry_after(1),
        BodyError::Io(err) => AppError::internal(err),
    })
}

fn matches_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn set(response: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn direct_path(record: &StreamRecord, meta: &TorrentMeta, file: usize) -> String {
    let name = meta
        .file(file)
        .map(|f| url_file_name(&f.path))
        .unwrap_or_default();
    format!("/s/{}/{name}", record.token)
}

/// `play`: 302 to the file or to the HLS master playlist, as the plan for this client says.
/// Without ffmpeg/ffprobe it is always the file.
async fn play(
    state: &AppState,
    token: &str,
    record: &StreamRecord,
    meta: &TorrentMeta,
    file: usize,
    client: crate::media::client::Client,
) -> Result<Response, AppError> {
    if client.plays_anything() || !state.media.readiness().await.ok() {
        return Ok(redirect_direct(state, record, meta, file));
    }
    // A file ffprobe cannot read goes to the player as it is: it may know better.
    let Ok(probed) = super::media::probe_file(state, token, meta, file).await else {
        return Ok(redirect_direct(state, record, meta, file));
    };
    let allow = state.media.config.allow_video_transcode;
    let decided = crate::media::plan::plan(&probed, client, allow)
        .map_err(|why| AppError::new(ErrorCode::UnsupportedMedia, why.0))?;
    if decided.mode == crate::media::plan::Mode::Direct {
        return Ok(redirect_direct(state, record, meta, file));
    }
    let client = serde_json::to_value(client).unwrap_or_default();
    let location = format!(
        "{}/s/{}/hls/master.m3u8?client={}",
        state.config.server.public_url,
        record.token,
        client.as_str().unwrap_or("browser")
    );
    let mut response = StatusCode::FOUND.into_response();
    set(&mut response, header::LOCATION, &location);
    Ok(response)
}

fn redirect_direct(
    state: &AppState,
    record: &StreamRecord,
    meta: &TorrentMeta,
    file: usize,
) -> Response {
    let location = format!(
        "{}{}",
        state.config.server.public_url,
        direct_path(record, meta, file)
    );
    let mut response = StatusCode::FOUND.into_response();
    set(&mut response, header::LOCATION, &location);
    response
}

/// `playlist.m3u`: absolute URLs for VLC/mpv.
fn m3u(
    state: &AppState,
    headers: &HeaderMap,
    record: &StreamRecord,
    meta: &TorrentMeta,
    file: usize,
) -> Response {
    let base = absolute_base(state, headers);
    let title = meta
        .file(file)
        .map(|f| f.path.as_str())
        .unwrap_or(&meta.name);
    let title = title.replace(['\r', '\n'], " ");
    let body = format!(
        "#EXTM3U\n#EXTINF:-1,{title}\n{base}{}\n",
        direct_path(record, meta, file)
    );
    let mut response = (StatusCode::OK, body).into_response();
    set(
        &mut response,
        header::CONTENT_TYPE,
        "audio/x-mpegurl; charset=utf-8",
    );
    set(&mut response, header::CACHE_CONTROL, "no-cache");
    response
}

fn absolute_base(state: &AppState, headers: &HeaderMap) -> String {
    let public = &state.config.server.public_url;
    if !public.is_empty() {
        return public.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.server.listen.to_string());
    format!("http://{host}")
}

//! The Stream object of the API (`API.md`): a pure rendering of a stream snapshot, the live
//! file status, the file's probe (when known) and the server's public base URL.

use serde::Serialize;

use super::{record::Failure, Phase, StreamSnapshot};
use crate::{
    engine::{
        files::mime_for,
        health::Condition,
        quality::{parse_quality, Quality},
        source::TorrentFile,
        status::{FileStatus, TorrentState},
    },
    media::{
        probe::Probe,
        subtitles::{tracks, SubtitleKind},
    },
};

/// The JSON Stream object.
#[derive(Debug, Serialize)]
pub struct StreamView {
    pub id: String,
    pub info_hash: String,
    pub name: Option<String>,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Failure>,
    pub file: Option<FileView>,
    pub files: Vec<TorrentFile>,
    pub progress: ProgressView,
    pub urls: UrlsView,
    pub expires_at: String,
    pub created_at: String,
    /// What the stream has served (bytes, player requests, stalls, first byte, seconds watched).
    pub stats: super::store::StreamStats,
}

/// The chosen file.
#[derive(Debug, Serialize)]
pub struct FileView {
    pub index: usize,
    pub path: String,
    pub size: u64,
    pub mime: String,
    pub quality: Quality,
}

/// Download progress of the chosen file.
#[derive(Debug, Serialize, Default)]
pub struct ProgressView {
    pub bytes: u64,
    pub total: u64,
    pub download_bps: u64,
    pub peers: u32,
    pub buffered: Vec<[u64; 2]>,
    /// A player waits for data the swarm does not send (`stream.stalled` was sent; cleared
    /// with `stream.resumed`).
    pub stalled: bool,
}

/// Playback URLs (relative unless `server.public_url` is set).
#[derive(Debug, Serialize)]
pub struct UrlsView {
    pub direct: Option<String>,
    pub play: String,
    /// HLS master playlist (remuxed/transcoded for browsers).
    pub hls: Option<String>,
    pub m3u: String,
    pub subtitles: Vec<SubtitleView>,
}

/// A subtitle track: external files beside the video, and (once the file is probed) the
/// streams inside it. Image tracks have no URL.
#[derive(Debug, Serialize)]
pub struct SubtitleView {
    pub id: String,
    pub lang: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub kind: SubtitleKind,
    pub format: String,
    pub url: Option<String>,
}

/// Renders one stream. `status` is the engine's view of the chosen file, when resolved;
/// `probe` its probe, when one has run (it adds the embedded subtitle tracks).
pub fn render(
    snapshot: &StreamSnapshot,
    status: Option<&FileStatus>,
    probe: Option<&Probe>,
    base: &str,
) -> StreamView {
    let record = &snapshot.record;
    let prefix = format!("{base}/s/{}", record.token);
    let (meta, failure) = match &snapshot.phase {
        Phase::Ready(meta) => (Some(meta), None),
        Phase::Failed(failure) => (None, Some(failure.clone())),
        Phase::Resolving => (None, None),
    };
    let chosen = meta.zip(record.file_index).and_then(|(m, i)| m.file(i));
    // A torrent the engine stopped (a full disk, another error) is this stream's error too.
    let failure = failure.or_else(|| {
        status
            .filter(|s| s.state == TorrentState::Error)
            .and_then(engine_failure)
    });
    let state = match (&snapshot.phase, status.map(|s| s.state)) {
        (Phase::Resolving, _) => "resolving",
        (Phase::Failed(_), _) | (_, Some(TorrentState::Error)) => "error",
        (_, Some(TorrentState::Complete)) => "ready",
        (_, Some(TorrentState::Paused)) => "paused",
        _ => "downloading",
    };
    StreamView {
        id: record.id.clone(),
        info_hash: record.info_hash.clone(),
        name: meta.map(|m| m.name.clone()).or_else(|| record.name.clone()),
        state,
        error: failure,
        file: chosen.map(|f| FileView {
            index: f.index,
            path: f.path.clone(),
            size: f.size,
            mime: mime_for(&f.path),
            quality: parse_quality(&f.path),
        }),
        files: meta.map(|m| m.files.clone()).unwrap_or_default(),
        progress: ProgressView {
            stalled: snapshot.stalled,
            ..status.map(progress).unwrap_or_default()
        },
        urls: UrlsView {
            direct: chosen.map(|f| format!("{prefix}/{}", url_file_name(&f.path))),
            play: format!("{prefix}/play"),
            hls: chosen.map(|_| format!("{prefix}/hls/master.m3u8")),
            m3u: format!("{prefix}/playlist.m3u"),
            subtitles: meta
                .zip(chosen)
                .map(|(m, f)| subtitle_views(m, f.index, probe, &prefix))
                .unwrap_or_default(),
        },
        expires_at: rfc3339(record.token_expires_at),
        created_at: rfc3339(record.created_at),
        stats: snapshot.stats.clone(),
    }
}

/// The subtitle tracks, served at `subs/{id}.vtt`.
fn subtitle_views(
    meta: &crate::engine::TorrentMeta,
    video: usize,
    probe: Option<&Probe>,
    prefix: &str,
) -> Vec<SubtitleView> {
    tracks(&meta.files, video, probe)
        .into_iter()
        .map(|track| SubtitleView {
            url: (track.kind == SubtitleKind::Text)
                .then(|| format!("{prefix}/subs/{}.vtt", track.id)),
            id: track.id,
            lang: track.lang,
            title: track.title,
            kind: track.kind,
            format: track.format,
        })
        .collect()
}

/// The error a torrent's condition means for its streams.
fn engine_failure(status: &FileStatus) -> Option<Failure> {
    let (code, message) = match status.condition.as_ref()? {
        Condition::StorageFull(message) => ("INSUFFICIENT_STORAGE", message),
        Condition::Failed(message) => ("INTERNAL", message),
        Condition::Evicted => return None,
    };
    Some(Failure {
        code: code.into(),
        message: message.clone(),
    })
}

fn progress(status: &FileStatus) -> ProgressView {
    ProgressView {
        bytes: status.bytes,
        total: status.total,
        download_bps: status.download_bps,
        peers: status.peers,
        buffered: status.buffered.clone(),
        stalled: false,
    }
}

/// The last path component, percent-encoded for a URL path segment.
pub fn url_file_name(path: &str) -> String {
    let name = path.rsplit('/').next().unwrap_or(path);
    url::form_urlencoded::byte_serialize(name.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

fn rfc3339(unix_secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_encoded_for_paths() {
        assert_eq!(
            url_file_name("Show/My Movie [1080p].mkv"),
            "My%20Movie%20%5B1080p%5D.mkv"
        );
        assert_eq!(url_file_name("a+b.mp4"), "a%2Bb.mp4");
    }
}

//! No drift across ffmpeg jobs: a 20-minute H.264 (B-frames) + AC-3 MKV with irregular
//! keyframes, generated at test time, is played over HLS out of order — a seek to the middle,
//! a jump far ahead (a second job), the segments around that job's start (another job), an
//! early segment (an eviction), the last segment — and every served segment must start at
//! its playlist time and last its EXTINF, so no GOP is missing or repeated at a join.
//!
//! Which job wrote a segment is read from the fMP4 itself: ffmpeg numbers each job's
//! fragments 1, 2, 3… (`mfhd`), so adjacent segments from one job have consecutive numbers
//! and a join between jobs shows as a break.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use reqwest::StatusCode;

use crate::support::*;

/// Fixture length (seconds): over 20 minutes.
const LENGTH: f64 = 1230.0;
/// Fixture frame rate: one frame is 0.1 s.
const FPS: f64 = 10.0;
/// A segment's first video timestamp may differ from its playlist start by less than this.
const MAX_DRIFT: f64 = 0.1;
/// A segment's video span may differ from its EXTINF minus one frame by less than this.
const MAX_SPAN_ERROR: f64 = 0.2;
/// Tries of one segment request (each waits up to `media.hls_wait` before a 503).
const TRIES: usize = 3;

/// Keyframe times with irregular gaps of 1.3–9.7 s (a fixed xorshift), on the frame grid.
fn irregular_keyframes() -> Vec<f64> {
    let (mut state, mut time, mut times) = (0x9e37_79b9_7f4a_7c15_u64, 0.0, Vec::new());
    while time < LENGTH {
        times.push(time);
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let gap = 1.3 + (state % 1000) as f64 / 999.0 * (9.7 - 1.3);
        time = ((time + gap) * FPS).round() / FPS;
    }
    times
}

/// Encodes the fixture into `dir` (tiny and fast: 96x54 at 10 fps); returns its folder.
async fn long_movie(dir: &Path) -> PathBuf {
    let folder = dir.join("Drift.Test.2021.720p.x264");
    std::fs::create_dir_all(&folder).unwrap();
    let keyframes: Vec<String> = irregular_keyframes()
        .iter()
        .map(|t| format!("{t:.1}"))
        .collect();
    let mut command = test_pattern(LENGTH, FPS);
    command
        .args([
            "-x264-params",
            "keyint=300:min-keyint=20:scenecut=0:bframes=2",
        ])
        .args(["-force_key_frames", &keyframes.join(",")])
        .args(["-threads", "2", "-c:a", "ac3", "-b:a", "64k", "-ac", "1"])
        .arg(folder.join("Drift.Test.2021.720p.x264.mkv"));
    let (status, log) = run_tool(command, 120).await;
    assert!(status.success(), "ffmpeg could not make the fixture: {log}");
    folder
}

/// Waits until the stream's file is fully downloaded, so ffmpeg never waits for pieces.
pub(crate) async fn wait_complete(server: &TestServer, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stream) = server
            .get_api("alice", &format!("/api/v1/streams/{id}"))
            .await;
        let total = stream["progress"]["total"].as_u64().unwrap_or(0);
        if total > 0 && stream["progress"]["bytes"] == total {
            return;
        }
        assert!(Instant::now() < deadline, "download stalled: {stream}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A media playlist's segments: (URI, start, EXTINF), starts summed from 0.
pub(crate) fn segments_of(playlist: &str) -> Vec<(String, f64, f64)> {
    let (mut start, mut extinf, mut out) = (0.0, None, Vec::new());
    for line in playlist.lines() {
        if let Some(value) = line.strip_prefix("#EXTINF:") {
            extinf = value.trim_end_matches(',').parse::<f64>().ok();
        } else if !line.is_empty() && !line.starts_with('#') {
            let length = extinf.take().expect("an EXTINF before every URI");
            out.push((line.to_owned(), start, length));
            start += length;
        }
    }
    out
}

/// GETs a URL, retrying `503 PLAYLIST_NOT_READY` as its `Retry-After` says; panics on
/// anything else or when still not ready after [`TRIES`].
pub(crate) async fn get_ready(url: &str) -> Vec<u8> {
    for _ in 0..TRIES {
        let (status, headers, body) = fetch(url, None).await;
        let text = String::from_utf8_lossy(&body);
        if status == StatusCode::OK {
            return body;
        }
        assert!(
            status == StatusCode::SERVICE_UNAVAILABLE && text.contains("PLAYLIST_NOT_READY"),
            "{url}: {status} {text}"
        );
        let wait = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .expect("a 503 says when to retry");
        tokio::time::sleep(Duration::from_secs(wait)).await;
    }
    panic!("{url}: still 503 PLAYLIST_NOT_READY after {TRIES} tries");
}

/// The `mfhd` sequence numbers of the `moof` boxes in a run of fMP4 fragments.
fn fragment_numbers(bytes: &[u8]) -> Vec<u32> {
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let (mut at, mut numbers) = (0, Vec::new());
    while at + 8 <= bytes.len() {
        let size = be32(at) as usize;
        if size < 8 || at + size > bytes.len() {
            break;
        }
        if &bytes[at + 4..at + 8] == b"moof" && size >= 24 && &bytes[at + 12..at + 16] == b"mfhd" {
            numbers.push(be32(at + 20));
        }
        at += size;
    }
    numbers
}

/// One served segment, measured.
#[derive(Debug)]
pub(crate) struct Served {
    pub n: usize,
    pub start: f64,
    pub extinf: f64,
    /// Earliest and latest video presentation times (ffprobe on init + segment).
    pub first: f64,
    pub last: f64,
    /// The `mfhd` numbers of its fragments.
    pub fragments: Vec<u32>,
}

impl Served {
    pub fn drift(&self) -> f64 {
        self.first - self.start
    }

    /// Video span minus what the EXTINF promises (its length less the last frame's).
    pub fn span_error(&self) -> f64 {
        (self.last - self.first) - (self.extinf - 1.0 / FPS)
    }
}

/// Measures segment `n` (served as `bytes`) with ffprobe on init + segment.
pub(crate) async fn measure(
    init: &[u8],
    plan: &[(String, f64, f64)],
    n: usize,
    bytes: &[u8],
) -> Served {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), [init, bytes].concat()).unwrap();
    let mut command = tokio::process::Command::new("ffprobe");
    command
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["packet=pts_time", "-of", "csv=p=0"])
        .arg(file.path());
    let (status, log) = run_tool(command, 30).await;
    assert!(status.success(), "segment {n}: ffprobe failed: {log}");
    let times: Vec<f64> = log
        .lines()
        .filter_map(|l| l.trim_end_matches(',').parse().ok())
        .collect();
    assert!(!times.is_empty(), "segment {n} has no video: {log}");
    Served {
        n,
        start: plan[n].1,
        extinf: plan[n].2,
        first: times.iter().copied().fold(f64::INFINITY, f64::min),
        last: times.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        fragments: fragment_numbers(bytes),
    }
}

/// Pairs of adjacent segments served by different jobs (fragment numbers break).
fn joins(served: &[Served]) -> Vec<(usize, usize)> {
    let mut joins = Vec::new();
    for a in served {
        for b in served.iter().filter(|b| b.n == a.n + 1) {
            if a.fragments.last().map(|l| l + 1) != b.fragments.first().copied() {
                joins.push((a.n, b.n));
            }
        }
    }
    joins.sort_unstable();
    joins.dedup();
    joins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_segment_starts_at_its_playlist_time_across_seeks_and_job_joins() {
    require_tool("ffmpeg", "ffmpeg");
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let made = Instant::now();
    let folder = long_movie(root.path()).await;
    let generation = made.elapsed();
    let started = Instant::now();
    let (_seeder, seeded) = seed(&folder, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    wait_complete(&server, stream["id"].as_str().unwrap()).await;
    let hls = format!("{}/hls", server.playback_base(&stream));

    get_ready(&format!("{hls}/master.m3u8?client=browser")).await;
    let playlist =
        String::from_utf8(get_ready(&format!("{hls}/browser/index.m3u8")).await).unwrap();
    let plan = segments_of(&playlist);
    let total: f64 = plan.iter().map(|s| s.2).sum();
    assert!(total >= 20.0 * 60.0, "{total} s: {playlist}");
    let at = |time: f64| plan.iter().rposition(|s| s.1 <= time).unwrap();
    let (mid, far, early, last) = (at(600.0), at(1080.0), at(120.0), plan.len() - 1);

    // A seek to the middle starts a job there; the player reads on, then fetches the init.
    // Then a jump far ahead of that job starts a second; the segments just before its start
    // come from the first if it got there, else from a third (evicting the least recently
    // used); an early seek evicts again; the last segment is complete only once its job has
    // ended. Requests go back to back, ffprobe after, so the first job stays far behind.
    let url = |n: usize| format!("{hls}/browser/{}", plan[n].0);
    let mut fetched = Vec::new();
    for n in [mid, mid + 1, mid + 2, mid + 3] {
        fetched.push((n, get_ready(&url(n)).await));
    }
    let init = get_ready(&format!("{hls}/browser/init.mp4")).await;
    for n in [
        far,
        far + 1,
        far - 2,
        far - 1,
        far + 2,
        early,
        early + 1,
        last,
    ] {
        fetched.push((n, get_ready(&url(n)).await));
    }
    let mut served = Vec::new();
    for (n, bytes) in &fetched {
        served.push(measure(&init, &plan, *n, bytes).await);
    }
    let checking = started.elapsed();

    let max_drift = served.iter().map(|s| s.drift().abs()).fold(0.0, f64::max);
    for s in &served {
        println!(
            "segment {:>3} at {:>8.3} s: video {:>8.3}–{:>8.3} (Δ {:>+6.1} ms, span {:>+6.1} ms), fragments {:?}",
            s.n, s.start, s.first, s.last, s.drift() * 1e3, s.span_error() * 1e3, s.fragments
        );
    }
    let joins = joins(&served);
    println!(
        "drift: {} segments checked, max |Δ| = {:.1} ms; joins between jobs at {joins:?}; \
         generation {generation:.1?}, test {checking:.1?}",
        served.len(),
        max_drift * 1e3
    );
    for s in &served {
        assert!(s.drift().abs() < MAX_DRIFT, "segment {} drifts: {s:?}", s.n);
        assert!(
            s.span_error().abs() < MAX_SPAN_ERROR,
            "segment {} misses or repeats a GOP: {s:?}",
            s.n
        );
        assert!(
            s.fragments.windows(2).all(|w| w[1] == w[0] + 1),
            "segment {} is not one run of fragments: {s:?}",
            s.n
        );
    }
    assert!(
        joins.contains(&(far - 1, far)),
        "segments {} and {far} should come from different jobs: {joins:?}",
        far - 1
    );
    server.stop().await;
}

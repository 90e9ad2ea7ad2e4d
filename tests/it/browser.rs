//! A real browser: Debian's Chromium, driven by playwright-core (`tests/browser/play.mjs`),
//! plays the HLS remux of the H.264 + AC-3 MKV with hls.js from a page on another origin, then
//! seeks to a far segment and plays on. Chromium fails silently on codecs it can't decode, so the
//! proof is decoded video frames and decoded audio bytes, not `currentTime`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support::*;

/// The page's seek target: inside segment 2 (12.005–18.005 s) of the 20 s fixture.
const SEEK_TO: f64 = 15.0;
/// Seconds the page plays, from the start and again from the seek target.
const PLAY_FOR: f64 = 0.5;

/// Fails (never skips) when Chromium, node or the npm packages are missing.
pub(crate) fn require_browser() -> (PathBuf, PathBuf) {
    let node = require_tool("node", "nodejs npm");
    assert!(
        Path::new("/usr/bin/chromium").is_file(),
        "`/usr/bin/chromium` is required for this test: install it with \
         `apt-get install -y chromium` (or run scripts/deps)"
    );
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir()
            && dir.join("node_modules/hls.js/dist/hls.min.js").is_file(),
        "playwright-core and hls.js are required for this test: run \
         `npm ci --prefix tests/browser` (or scripts/deps)"
    );
    (node, dir.join("play.mjs"))
}

/// Runs the driver on `master`; returns its result JSON and its whole log.
async fn play_in_chromium(node: &Path, script: &Path, master: &str) -> (Value, String) {
    play_and_seek(node, script, master, SEEK_TO, PLAY_FOR).await
}

/// Runs the driver on `master`: play `play_for` seconds, seek to `seek_to`, play `play_for`
/// more; returns its result JSON and its whole log.
pub(crate) async fn play_and_seek(
    node: &Path,
    script: &Path,
    master: &str,
    seek_to: f64,
    play_for: f64,
) -> (Value, String) {
    play_and_seek_with(node, script, master, seek_to, play_for, None).await
}

/// [`play_and_seek`], keeping a screenshot of the page after the seek at `screenshot`.
pub(crate) async fn play_and_seek_with(
    node: &Path,
    script: &Path,
    master: &str,
    seek_to: f64,
    play_for: f64,
    screenshot: Option<&Path>,
) -> (Value, String) {
    let mut command = tokio::process::Command::new(node);
    if let Some(path) = screenshot {
        command.env("MAGNETAR_BROWSER_SCREENSHOT", path);
    }
    let start_ms = 30_000.0 + play_for * 1000.0;
    command
        .arg(script)
        .arg(master)
        .arg(seek_to.to_string())
        .arg(play_for.to_string())
        .arg(start_ms.to_string());
    let (status, log) = run_tool(command, 120 + 2 * play_for as u64).await;
    let result = log
        .lines()
        .find_map(|l| l.strip_prefix("MAGNETAR_BROWSER_RESULT "))
        .map(|json| serde_json::from_str(json).expect("the driver prints JSON"))
        .unwrap_or_else(|| panic!("the driver printed no result ({status}):\n{log}"));
    assert!(status.success(), "the driver failed ({status}):\n{log}");
    (result, log)
}

/// Seeds `folder`, starts a server (CORS open: the page is served from another origin, as a web
/// player's would be) and returns the stream's master playlist URL for browsers.
pub(crate) async fn serve_for_browser(
    folder: &Path,
    root: &Path,
) -> (magnetar::seeder::Seeder, TestServer, String) {
    let (seeder, seeded) = seed(folder, None).await;
    let server = TestServer::start_with(&root.join("data"), |c| {
        c.server.cors_origins = vec!["*".into()];
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let master = server.browser_master(&stream);
    (seeder, server, master)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_the_hls_remux_with_hls_js_and_seeks_to_a_far_segment() {
    require_tool("ffprobe", "ffmpeg");
    let (node, script) = require_browser();
    let root = tempfile::tempdir().unwrap();
    let (_seeder, server, master) = serve_for_browser(&fixtures().join("mkv"), root.path()).await;
    let (r, log) = play_in_chromium(&node, &script, &master).await;
    assert_played_and_seeked(&r, &log);
    // The seek target was not buffered: the page had to fetch that far segment.
    assert!(
        r["buffered_before_seek"]
            .as_array()
            .unwrap()
            .iter()
            .all(|range| range[1].as_f64().unwrap() < SEEK_TO),
        "the seek went past what was buffered:\n{log}"
    );
    server.stop().await;
}

/// No fatal hls.js error; frames and audio decoded from the start and again after the seek.
fn assert_played_and_seeked(r: &Value, log: &str) {
    assert_played(r, log, SEEK_TO, PLAY_FOR);
}

/// [`assert_played_and_seeked`] for a page told to seek to `seek_to` and play `play_for`.
pub(crate) fn assert_played(r: &Value, log: &str, seek_to: f64, play_for: f64) {
    let n = |key: &str| r[key].as_f64().unwrap_or(0.0);
    assert!(
        !r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["fatal"] == true),
        "no fatal hls.js error:\n{log}"
    );
    // From the start: a picture, decoded frames and decoded (AAC) audio while the clock ran.
    assert!(n("width") > 0.0, "a picture:\n{log}");
    assert!(n("frames_before") > 0.0, "decoded video frames:\n{log}");
    assert!(n("audio_bytes_before") > 0.0, "decoded audio:\n{log}");
    assert!(n("time_before") >= play_for, "the clock ran:\n{log}");
    // From the seek: playing on, with more frames and more audio decoded.
    assert!(
        n("time_after_seek") >= seek_to + play_for,
        "played on from the seek:\n{log}"
    );
    assert!(
        n("frames_after_seek") > n("frames_at_seek"),
        "decoded frames after the seek:\n{log}"
    );
    assert!(
        n("audio_bytes_after_seek") > n("audio_bytes_at_seek"),
        "decoded audio after the seek:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_the_event_playlist_of_a_file_without_an_index() {
    require_tool("ffprobe", "ffmpeg");
    let (node, script) = require_browser();
    let root = tempfile::tempdir().unwrap();
    // MPEG-TS has no index Magnetar reads: the playlist is an EVENT one, grown by ffmpeg.
    let folder = clip(root.path(), "No.Index.2020.ts", "ts", 30, "ac3").await;
    let (_seeder, server, master) = serve_for_browser(&folder, root.path()).await;
    let (r, log) = play_in_chromium(&node, &script, &master).await;
    assert_played_and_seeked(&r, &log);
    server.stop().await;
}

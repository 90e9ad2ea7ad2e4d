//! Real players on the signed URL: mpv seeks into a moov-at-end MP4; ffprobe reads an MKV;
//! VLC plays the M3U playlist; mpv plays the HLS master playlist, VOD (indexed MKV) and EVENT
//! (MPEG-TS without an index).

use std::time::Duration;

use crate::support::*;

/// Runs mpv headless on `url` for 50 frames (plus `extra` options); returns its exit status
/// and log.
async fn mpv_on(url: &str, extra: &[&str]) -> (std::process::ExitStatus, String) {
    let mpv = require_tool("mpv", "mpv");
    let mut mpv = tokio::process::Command::new(mpv);
    mpv.args([
        "--no-config",
        "--ytdl=no",
        "--vo=null",
        "--ao=null",
        "--frames=50",
    ])
    .args(["--msg-level=all=info"])
    .args(extra)
    .arg(url);
    run_tool(mpv, 90).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mpv_plays_a_moov_at_end_mp4_from_a_seek() {
    require_tool("mpv", "mpv");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("moov-at-end.mp4"), None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let (status, log) = mpv_on(&server.direct(&stream), &["--start=30"]).await;
    assert_eq!(status.code(), Some(0), "mpv failed:\n{log}");
    assert!(
        log.contains("Video --vid=1") && log.contains("h264"),
        "mpv saw the H.264 track:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ffprobe_reads_an_mkv_through_the_signed_url() {
    let ffprobe = require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    assert!(stream["file"]["path"].as_str().unwrap().ends_with(".mkv"));
    let run = tokio::process::Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "json",
        ])
        .arg(server.direct(&stream))
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("ffprobe finishes")
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codecs: Vec<_> = probe["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["codec_name"].clone())
        .collect();
    assert_eq!(codecs, vec!["h264", "ac3"]);
    let duration: f64 = probe["format"]["duration"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((duration - 20.0).abs() < 0.5, "duration {duration}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn vlc_plays_the_m3u_playlist() {
    let cvlc = require_tool("cvlc", "vlc-bin vlc-plugin-base");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("faststart.mp4"), None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let m3u = server.url(stream["urls"]["m3u"].as_str().unwrap());
    // VLC refuses to run as root, and exits 0 even when playback fails: run it as `nobody`
    // when we are root, and read its log.
    let mut command = if running_as_root() {
        let mut c = tokio::process::Command::new("runuser");
        c.args(["-u", "nobody", "--"]).arg(cvlc);
        c
    } else {
        tokio::process::Command::new(cvlc)
    };
    command
        .args([
            "-vv", "--intf", "dummy", "--vout", "dummy", "--aout", "dummy",
        ])
        .args([
            "--play-and-exit",
            "--run-time",
            "2",
            "--no-sub-autodetect-file",
        ])
        .arg(&m3u)
        .env("HOME", "/tmp");
    let (_, log) = run_tool(command, 60).await;
    assert!(
        log.contains("HTTP/1.1 206 Partial Content"),
        "VLC fetched the file by range:\n{log}"
    );
    assert!(
        log.contains("mp4 demux debug: found 2 tracks"),
        "VLC demuxed the MP4:\n{log}"
    );
    assert!(
        log.contains("codec (h264) started"),
        "VLC decoded H.264:\n{log}"
    );
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// mpv plays the HLS master playlist from the start. (No `--start`: libavformat 5.1's HLS
/// demuxer cannot seek in fMP4 playlists at all — ffmpeg's own `-hls_segment_type fmp4`
/// output fails the same way — so seeking is shown with hls.js instead.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mpv_plays_the_hls_master_playlist() {
    let root = tempfile::tempdir().unwrap();
    let log = mpv_on_hls(&fixtures().join("mkv"), root.path()).await;
    assert!(
        log.contains("h264") && log.contains("aac"),
        "mpv saw H.264 video and AAC audio (remuxed from AC-3):\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mpv_plays_the_event_playlist_of_a_file_without_an_index() {
    let root = tempfile::tempdir().unwrap();
    let folder = clip(root.path(), "No.Index.2020.ts", "ts", 20, "ac3").await;
    let log = mpv_on_hls(&folder, root.path()).await;
    assert!(
        log.contains("h264") && log.contains("aac"),
        "mpv saw H.264 video and AAC audio from the EVENT playlist:\n{log}"
    );
}

/// Seeds `folder`, serves it, plays its HLS master playlist in mpv (which must succeed) and
/// returns mpv's log.
async fn mpv_on_hls(folder: &std::path::Path, root: &std::path::Path) -> String {
    require_tool("mpv", "mpv");
    let (_seeder, seeded) = seed(folder, None).await;
    let server = TestServer::start(&root.join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let (status, log) = mpv_on(&server.browser_master(&stream), &[]).await;
    assert_eq!(status.code(), Some(0), "mpv failed:\n{log}");
    server.stop().await;
    log
}

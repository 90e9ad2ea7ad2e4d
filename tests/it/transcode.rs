//! Video transcodes (the `transcode` plan: HEVC in Chromium) cut where the playlist says: an
//! HEVC + AAC MKV with irregular keyframes, made at test time, is played over HLS — the
//! segments from 70 % on first (a seek), its ffmpeg job killed midway (a restart), then every
//! earlier segment — and every served segment must be H.264 starting at its playlist time and
//! lasting its EXTINF. Then Chromium with hls.js plays it through past where it used to stall
//! (~20 s), seeks to 70 % and plays on (decoded frames and audio asserted).

use std::path::Path;

use crate::{
    browser::{assert_played, play_and_seek_with, require_browser, serve_for_browser},
    drift::{get_ready, measure, segments_of, wait_complete},
    hls_jobs::until_stopped,
    support::*,
};

/// Fixture length (seconds) and frame rate (one frame is 0.1 s, as in the drift fixture).
const LENGTH: u32 = 600;
const FPS: u32 = 10;

/// An HEVC (x265) + AAC MKV with keyframes at irregular times, as releases have them.
async fn hevc_movie(dir: &Path) -> std::path::PathBuf {
    let name = "Hevc.Test.2023.1080p.x265";
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let keyframes: Vec<String> = (0..LENGTH * FPS)
        .filter(|frame| frame % 37 == 0 || frame % 53 == 0)
        .map(|frame| format!("{:.1}", f64::from(frame) / f64::from(FPS)))
        .collect();
    let mut command = tokio::process::Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=160x96:rate={FPS}:duration={LENGTH}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=330:sample_rate=48000:duration={LENGTH}"
        ))
        .args([
            "-c:v",
            "libx265",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args([
            "-x265-params",
            "keyint=120:min-keyint=10:scenecut=0:log-level=error",
        ])
        .args(["-force_key_frames", &keyframes.join(",")])
        .args(["-c:a", "aac", "-b:a", "64k", "-ac", "2"])
        .arg(folder.join(format!("{name}.mkv")));
    let (status, log) = run_tool(command, 120).await;
    assert!(
        status.success(),
        "ffmpeg could not make the HEVC fixture: {log}"
    );
    folder
}

/// The real ffmpeg, reading its input at 20× real time (`-readrate`), so a job is still
/// running (or paused ahead of the player) when the test kills it, however fast the machine.
fn paced_ffmpeg(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let ffmpeg = require_tool("ffmpeg", "ffmpeg");
    let script = dir.join("paced-ffmpeg");
    let text = format!(
        "#!/bin/sh
for a in \"$@\"; do shift; [ \"$a\" = -i ] && set -- \"$@\" -readrate 20; set -- \"$@\" \"$a\"; done
exec {} \"$@\"
",
        ffmpeg.display()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// The video codec of init + segment, by ffprobe.
async fn video_codec(init: &[u8], segment: &[u8]) -> String {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), [init, segment].concat()).unwrap();
    let (codecs, _) = codecs_and_duration(file.path());
    codecs.into_iter().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transcoded_segment_starts_at_its_playlist_time_across_a_seek_and_a_restart() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let folder = hevc_movie(root.path()).await;
    let (_seeder, seeded) = seed(&folder, None).await;
    let ffmpeg = paced_ffmpeg(root.path());
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.media.ffmpeg_path = ffmpeg;
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    wait_complete(&server, stream["id"].as_str().unwrap()).await;
    let base = server.playback_base(&stream);
    let (_, _, probe) = fetch(&format!("{base}/probe?client=browser"), None).await;
    let probe: serde_json::Value = serde_json::from_slice(&probe).unwrap();
    assert_eq!(probe["plan"]["mode"], "transcode", "{probe}");

    let hls = format!("{base}/hls");
    get_ready(&format!("{hls}/master.m3u8?client=browser")).await;
    let playlist =
        String::from_utf8(get_ready(&format!("{hls}/browser/index.m3u8")).await).unwrap();
    let plan = segments_of(&playlist);
    let total: f64 = plan.iter().map(|s| s.2).sum();
    assert!(
        (total - f64::from(LENGTH)).abs() < 1.0,
        "{total}: {playlist}"
    );
    let url = |n: usize| format!("{hls}/browser/{}", plan[n].0);
    let seek = plan.iter().rposition(|s| s.1 <= 0.7 * total).unwrap();

    // A seek to 70 %: a job starts there, runs 120 s of media ahead of the player and pauses;
    // then it is killed, and the segments past what it wrote need a new job.
    let mut fetched = Vec::new();
    for n in [seek, seek + 1] {
        fetched.push((n, get_ready(&url(n)).await));
    }
    let marker = base.rsplit('.').next().unwrap().to_owned();
    until_stopped(&marker, true).await;
    for pid in ffmpeg_pids(&marker) {
        let killed = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }
    for n in (seek + 2..plan.len()).chain(0..seek) {
        fetched.push((n, get_ready(&url(n)).await));
    }
    let init = get_ready(&format!("{hls}/browser/init.mp4")).await;
    let mut worst = (0.0f64, 0usize);
    for (n, bytes) in &fetched {
        let served = measure(&init, &plan, *n, bytes).await;
        assert!(
            served.drift().abs() < 0.1,
            "segment {n} starts at {} instead of {}: {served:?}",
            served.first,
            served.start
        );
        assert!(
            served.span_error().abs() < 0.2,
            "segment {n} misses or repeats frames: {served:?}"
        );
        assert_eq!(video_codec(&init, bytes).await, "h264", "segment {n}");
        if served.drift().abs() >= worst.0 {
            worst = (served.drift().abs(), *n);
        }
    }
    println!(
        "{} transcoded segments, each at its playlist time (worst |Δ| {:.1} ms, segment {})",
        fetched.len(),
        worst.0 * 1e3,
        worst.1
    );
    assert_eq!(fetched.len(), plan.len(), "every segment was checked");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_plays_a_video_transcode_through_and_after_a_seek_to_seventy_percent() {
    require_tool("ffprobe", "ffmpeg");
    let (node, script) = require_browser();
    let root = tempfile::tempdir().unwrap();
    let folder = hevc_movie(root.path()).await;
    let (_seeder, server, master) = serve_for_browser(&folder, root.path()).await;
    // Past the ~20.7 s where hls.js used to stall, then from 70 % on.
    let (seek_to, play_for) = (0.7 * f64::from(LENGTH) - 2.0, 22.0);
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("transcode-after-seek.png");
    let _ = std::fs::remove_file(&shot);
    let (r, log) =
        play_and_seek_with(&node, &script, &master, seek_to, play_for, Some(&shot)).await;
    assert_played(&r, &log, seek_to, play_for);
    let png = std::fs::read(&shot).expect("a screenshot of the page after the seek");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "{} bytes",
        png.len()
    );
    println!("screenshot: {}", shot.display());
    server.stop().await;
}

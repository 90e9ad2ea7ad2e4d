//! HLS jobs beyond the indexed VOD path, with the real ffmpeg: a file without a keyframe index
//! (MPEG-TS) plays from an EVENT playlist that grows as ffmpeg writes and ends with
//! `#EXT-X-ENDLIST`; a job far ahead of the player is paused (SIGSTOP: the process stops, its
//! output stops growing) and resumes when the player catches up; an ffmpeg that keeps crashing
//! is restarted a bounded number of times, then reported as `TRANSCODER_UNAVAILABLE`.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use reqwest::StatusCode;

use crate::support::*;

/// `(EXTINF sum, has ENDLIST)` of a media playlist.
fn extent(playlist: &str) -> (f64, bool) {
    let total = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .filter_map(|v| v.trim_end_matches(',').parse::<f64>().ok())
        .sum();
    (total, playlist.contains("#EXT-X-ENDLIST"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_without_an_index_plays_from_a_growing_event_playlist() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let folder = clip(root.path(), "No.Index.2020.ts", "ts", 40, "ac3").await;
    let (_seeder, seeded) = seed(&folder, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let hls = format!("{}/hls", server.playback_base(&stream));
    let (status, _, master) = fetch(&format!("{hls}/master.m3u8?client=browser"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        uris(&String::from_utf8(master).unwrap()),
        ["browser/index.m3u8"]
    );

    // The playlist grows until ffmpeg is done; it is an EVENT playlist played from the start.
    let deadline = Instant::now() + Duration::from_secs(60);
    let playlist = loop {
        let (status, body, _) = until_ready(&format!("{hls}/browser/index.m3u8"), 100).await;
        assert_eq!(status, StatusCode::OK);
        let text = String::from_utf8(body).unwrap();
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:EVENT\n"), "{text}");
        assert!(text.contains("#EXT-X-START:TIME-OFFSET=0"), "{text}");
        if extent(&text).1 {
            break text;
        }
        assert!(Instant::now() < deadline, "no #EXT-X-ENDLIST yet:\n{text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let (total, _) = extent(&playlist);
    assert!(
        (total - 40.0).abs() < 0.5,
        "EXTINFs sum to {total}:\n{playlist}"
    );
    let names = uris(&playlist);
    assert_eq!(names.len(), 7, "6 s segments of 2 s GOPs:\n{playlist}");

    // init + every segment is one H.264 + AAC stream of the whole length.
    let (status, _, mut joined) = fetch(&format!("{hls}/browser/init.mp4"), None).await;
    assert_eq!(status, StatusCode::OK);
    for name in &names {
        let (status, bytes, _) = until_ready(&format!("{hls}/browser/{name}"), 100).await;
        assert_eq!(status, StatusCode::OK, "{name}");
        joined.extend(bytes);
    }
    let (status, body) = json_of(
        client()
            .get(format!("{hls}/browser/{}.m4s", names.len()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 404, "NOT_FOUND");
    let file = root.path().join("joined.mp4");
    std::fs::write(&file, joined).unwrap();
    let (codecs, duration) = codecs_and_duration(&file);
    assert_eq!(codecs, ["h264", "aac"]);
    assert!((duration - 40.0).abs() < 0.5, "{duration}");
    server.stop().await;
}

/// The state letter of a process (`T` when stopped), from `/proc/{pid}/stat`.
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// Seconds of media written by the session's first job (its ffmpeg playlist).
fn written(data: &Path) -> f64 {
    let sessions = std::fs::read_dir(data.join("hls")).unwrap();
    let session = sessions.filter_map(Result::ok).next().unwrap().path();
    let playlist = std::fs::read_to_string(session.join("job0/index.m3u8")).unwrap_or_default();
    extent(&playlist).0
}

/// Waits (bounded) until the session's ffmpeg is stopped (`true`) or running (`false`).
pub(crate) async fn until_stopped(marker: &str, stopped: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pids = ffmpeg_pids(marker);
        assert_eq!(pids.len(), 1, "one ffmpeg job for the session");
        if (process_state(pids[0]) == Some('T')) == stopped {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "ffmpeg never became {}",
            if stopped { "stopped" } else { "running" }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_far_ahead_of_the_player_is_paused_and_resumes_when_it_catches_up() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    // 10 minutes of H.264 + AAC in MKV (8.6 MB), copied as is from a 160 KB/s swarm: ffmpeg
    // writes about 11 s of media per second, so each pause lands soon after its threshold.
    let folder = clip(root.path(), "Long.Movie.2019", "mkv", 600, "aac").await;
    let seeder = magnetar::seeder::Seeder::start(Some(160_000))
        .await
        .unwrap();
    let seeded = seeder.seed_with(&folder, Some(32 * 1024)).await.unwrap();
    let data = root.path().join("data");
    let server = TestServer::start(&data).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let base = server.playback_base(&stream);
    let marker = base.rsplit('.').next().unwrap().to_owned();
    let hls = format!("{base}/hls/browser");
    let (status, body, _) = until_ready(&format!("{hls}/index.m3u8"), 100).await;
    assert_eq!(status, StatusCode::OK);
    let playlist = String::from_utf8(body).unwrap();
    let starts: Vec<f64> = playlist
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .scan(0.0, |at, v| {
            let start = *at;
            *at += v.trim_end_matches(',').parse::<f64>().unwrap();
            Some(start)
        })
        .collect();

    // The player asks for the first segment; ffmpeg runs on and stops 120 s past it.
    let (status, _, _) = until_ready(&format!("{hls}/0.m4s"), 100).await;
    assert_eq!(status, StatusCode::OK);
    until_stopped(&marker, true).await;
    let paused_at = written(&data);
    assert!(
        (126.0..200.0).contains(&paused_at),
        "paused with {paused_at} s written"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(written(&data), paused_at, "a paused job writes nothing");

    // The player catches up: a segment 20 s before the paused frontier resumes it.
    let near = starts.iter().rposition(|&s| s + 20.0 <= paused_at).unwrap();
    let (status, _, _) = until_ready(&format!("{hls}/{near}.m4s"), 100).await;
    assert_eq!(status, StatusCode::OK);
    let deadline = Instant::now() + Duration::from_secs(30);
    while written(&data) <= paused_at + 10.0 {
        assert!(Instant::now() < deadline, "the job did not resume");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // ... and stops again 120 s past the player.
    until_stopped(&marker, true).await;
    let again = written(&data);
    assert!(
        again > paused_at + 60.0 && again < 600.0,
        "paused again at {again} s (first at {paused_at} s)"
    );
    eprintln!("pacing: paused with {paused_at:.1} s written for a player at 6 s; resumed, paused again at {again:.1} s");
    server.stop().await;
    seeder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ffmpeg_that_keeps_crashing_is_restarted_three_times_then_reported_at_no_cost() {
    use std::os::unix::fs::PermissionsExt;
    let ffmpeg = require_tool("ffmpeg", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    // An ffmpeg that answers `-version` (so /ready is fine) and fails every job at once.
    let launches = root.path().join("launches");
    let script = root.path().join("crashing-ffmpeg");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = -version ] && exec {} -version\necho job >> {}\necho 'simulated crash' >&2\nexit 1\n",
            ffmpeg.display(),
            launches.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.media.ffmpeg_path = script.clone();
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let segment = format!("{}/hls/browser/1.m4s", server.playback_base(&stream));
    let (status, body) = json_of(client().get(&segment).send().await.unwrap()).await;
    assert_error(status, &body, 503, "TRANSCODER_UNAVAILABLE");
    let jobs = std::fs::read_to_string(&launches).unwrap_or_default();
    assert_eq!(jobs.lines().count(), 4, "the first job and 3 restarts");
    // A player retrying (other segments, the init, the playlist) costs no more ffmpeg runs
    // while the session cools down.
    let base = server.playback_base(&stream);
    for path in ["1.m4s", "2.m4s", "0.m4s", "init.mp4", "5.m4s", "1.m4s"] {
        let url = format!("{base}/hls/browser/{path}");
        let (status, body) = json_of(client().get(&url).send().await.unwrap()).await;
        assert_error(status, &body, 503, "TRANSCODER_UNAVAILABLE");
    }
    let jobs = std::fs::read_to_string(&launches).unwrap_or_default();
    assert_eq!(
        jobs.lines().count(),
        4,
        "a failed session stops costing CPU"
    );
    server.stop().await;
}

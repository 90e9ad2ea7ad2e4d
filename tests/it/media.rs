//! Media with the real ffprobe: `/s/{token}/probe` reads the committed H.264 + AC-3 MKV
//! through the server's own loopback URL and plans per client; `/ready`; a server whose
//! ffprobe is missing answers 503 on media routes while direct play keeps working; the
//! server's own reads are not rate-limited.

use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

/// `/s/{token}/probe` with an optional query and User-Agent.
async fn probe(url: &str, query: &str, agent: Option<&str>) -> (StatusCode, Value) {
    let mut request = client().get(format!("{url}/probe{query}"));
    if let Some(agent) = agent {
        request = request.header("User-Agent", agent);
    }
    json_of(request.send().await.unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reads_the_mkv_and_plans_per_client() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        // Every player request counts; ffprobe's own reads must not.
        (c.limits.content_per_second, c.limits.content_burst) = (1, 1);
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let base = server.playback_base(&stream);

    let (status, body) = probe(&base, "?client=browser", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["probe"]["container"], "matroska");
    let codecs: Vec<&str> = body["probe"]["tracks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["codec"].as_str().unwrap())
        .collect();
    assert_eq!(codecs, ["h264", "ac3"], "{body}");
    let duration = body["probe"]["duration"].as_f64().unwrap();
    assert!((19.0..21.0).contains(&duration), "{duration}");
    assert_eq!(body["plan"]["mode"], "remux_audio", "{body}");
    assert_eq!(body["plan"]["video"]["action"], "copy");
    assert_eq!(body["plan"]["audio"]["action"], "aac");

    // Each probe answer is one player request against a budget of one per second.
    for (query, agent, want) in [
        ("?client=mpv", None, "direct"),
        ("", Some("VLC/3.0.18 LibVLC/3.0.18"), "direct"),
        (
            "",
            Some("Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15"),
            "remux",
        ),
    ] {
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (status, body) = probe(&base, query, agent).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["plan"]["mode"], want, "{query} {agent:?}: {body}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_ffprobe_media_answers_503_and_direct_play_still_works() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("faststart.mp4"), None).await;
    let server = TestServer::start(&root.path().join("ok")).await;
    let (status, _, body) = fetch(&server.url("/ready"), None).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    server.stop().await;

    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.media.ffprobe_path = "/nonexistent/ffprobe".into();
    })
    .await;
    let (status, _, body) = fetch(&server.url("/ready"), None).await;
    let ready: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["missing"], serde_json::json!(["ffprobe"]));
    assert!(
        !ready.to_string().contains("nonexistent"),
        "no paths leak: {ready}"
    );

    let stream = server.stream_of("alice", &seeded.magnet).await;
    let (status, body) = probe(&server.playback_base(&stream), "", None).await;
    assert_error(status, &body, 503, "TRANSCODER_UNAVAILABLE");
    let (status, _, bytes) = fetch(&server.direct(&stream), Some("bytes=4-7")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, b"ftyp");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_remuxes_the_mkv_to_segments_ffprobe_reads_as_h264_and_aac() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let hls = format!("{}/hls", server.playback_base(&stream));

    let (status, _, master) = fetch(&format!("{hls}/master.m3u8?client=browser"), None).await;
    assert_eq!(status, StatusCode::OK);
    let master = String::from_utf8(master).unwrap();
    assert_eq!(uris(&master), ["browser/index.m3u8"], "{master}");
    let (status, headers, media) = fetch(&format!("{hls}/browser/index.m3u8"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-cache");
    let media = String::from_utf8(media).unwrap();
    assert!(
        media.contains("#EXT-X-PLAYLIST-TYPE:VOD") && media.contains("#EXT-X-ENDLIST"),
        "{media}"
    );
    let segments = uris(&media);
    // 2 s GOPs from 0.005 s on a 6 s grid: cuts at 6.005, 12.005 and 18.005.
    assert_eq!(segments, ["0.m4s", "1.m4s", "2.m4s", "3.m4s"], "{media}");

    let (status, _, mut joined) = fetch(&format!("{hls}/browser/init.mp4"), None).await;
    assert_eq!(status, StatusCode::OK);
    // ffmpeg creates init.mp4 empty first: it must never be served before it is complete.
    assert!(joined.len() > 500, "init segment of {} bytes", joined.len());
    for name in &segments {
        let (status, headers, bytes) = fetch(&format!("{hls}/browser/{name}"), None).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{name}: {}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(headers["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable"));
        joined.extend(bytes);
    }
    let file = root.path().join("joined.mp4");
    std::fs::write(&file, &joined).unwrap();
    let (codecs, duration) = codecs_and_duration(&file);
    assert_eq!(codecs, ["h264", "aac"]);
    assert!((19.0..21.5).contains(&duration), "{duration}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn play_redirects_each_client_where_it_can_play() {
    require_tool("ffprobe", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let base = server.playback_base(&stream);
    for (query, want) in [
        ("?client=browser", "/hls/master.m3u8?client=browser"),
        ("?client=safari", "/hls/master.m3u8?client=safari"),
        ("?client=vlc", ".mkv"),
        ("?client=mpv", ".mkv"),
    ] {
        let response = client()
            .get(format!("{base}/play{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND, "{query}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.ends_with(want), "{query}: {location}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_faults_not_ready_killed_ffmpeg_idle_end_and_no_ffmpeg() {
    require_tool("ffmpeg", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    // A slow swarm (40 KB/s for a 550 KB file, 16 KiB pieces): ffmpeg waits on it.
    let seeder = magnetar::seeder::Seeder::start(Some(40_000)).await.unwrap();
    let seeded = seeder
        .seed_with(&fixtures().join("mkv"), Some(16 * 1024))
        .await
        .unwrap();
    let data = root.path().join("data");
    let server = TestServer::start_with(&data, |c| {
        c.media.hls_wait = std::time::Duration::from_millis(500);
        c.media.hls_idle_timeout = std::time::Duration::from_secs(2);
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let base = server.playback_base(&stream);
    let marker = base.rsplit('.').next().unwrap().to_owned();
    let hls = format!("{base}/hls/browser");

    // Before ffmpeg has written the segment: 503 PLAYLIST_NOT_READY with Retry-After.
    let first = client().get(format!("{hls}/1.m4s")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(first.headers().contains_key("retry-after"));
    let (status, body) = json_of(first).await;
    assert_error(status, &body, 503, "PLAYLIST_NOT_READY");

    // ffmpeg killed mid-job: the next segment request starts a new one and is served.
    let running = ffmpeg_pids(&marker);
    assert!(!running.is_empty(), "an ffmpeg job runs for the session");
    for pid in &running {
        std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status()
            .unwrap();
    }
    let (status, bytes, _) = until_ready(&format!("{hls}/2.m4s"), 120).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert!(!bytes.is_empty());
    let (status, _, _) = until_ready(&format!("{hls}/init.mp4"), 60).await;
    assert_eq!(status, StatusCode::OK);

    // Idle past media.hls_idle_timeout: ffmpeg gone, folder gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let folder = data.join("hls");
    loop {
        let left = std::fs::read_dir(&folder).map(|d| d.count()).unwrap_or(0);
        if left == 0 && ffmpeg_pids(&marker).is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "idle session still has {left} folders"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    server.stop().await;

    // Without ffmpeg: HLS answers 503 TRANSCODER_UNAVAILABLE; direct play still works.
    let server = TestServer::start_with(&root.path().join("no-ffmpeg"), |c| {
        c.media.ffmpeg_path = "/nonexistent/ffmpeg".into();
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let base = server.playback_base(&stream);
    let (status, body) = json_of(
        client()
            .get(format!("{base}/hls/master.m3u8"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 503, "TRANSCODER_UNAVAILABLE");
    let (status, _, _) = fetch(&server.direct(&stream), Some("bytes=0-3")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    server.stop().await;
    seeder.stop().await;
}

/// Generates `seconds` of MPEG-4 Part 2 video (which browsers cannot decode) in an MKV.
fn mpeg4_clip(dir: &std::path::Path, name: &str, source: &str, seconds: u32) -> std::path::PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let path = folder.join(format!("{name}.mkv"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("{source}=size=320x180:rate=25:duration={seconds}"))
        .args(["-c:v", "mpeg4", "-q:v", "8", "-g", "50"])
        .arg(&path)
        .status()
        .expect("ffmpeg runs (apt-get install -y ffmpeg)");
    assert!(status.success());
    folder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_transcodes_wait_for_a_free_slot() {
    require_tool("ffmpeg", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let seeder = magnetar::seeder::Seeder::start(None).await.unwrap();
    let long = seeder
        .seed(&mpeg4_clip(root.path(), "long", "testsrc2", 180))
        .await
        .unwrap();
    let other = seeder
        .seed(&mpeg4_clip(root.path(), "other", "smptebars", 30))
        .await
        .unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.media.max_transcodes = 1;
        c.media.hls_wait = std::time::Duration::from_millis(300);
    })
    .await;
    let a = server.stream_of("alice", &long.magnet).await;
    let b = server.stream_of("alice", &other.magnet).await;
    let (status, body) = probe(&server.playback_base(&a), "?client=browser", None).await;
    assert_eq!(body["plan"]["mode"], "transcode", "{status} {body}");

    // A's transcode takes the only slot; B's first segment waits for it.
    let a_segment = format!("{}/hls/browser/0.m4s", server.playback_base(&a));
    let (status, _, _) = until_ready(&a_segment, 100).await;
    assert_eq!(status, StatusCode::OK);
    let b_segment = format!("{}/hls/browser/0.m4s", server.playback_base(&b));
    let (status, body) = json_of(client().get(&b_segment).send().await.unwrap()).await;
    assert_error(status, &body, 503, "PLAYLIST_NOT_READY");
    let transcoding = ffmpeg_pids("libx264").len();
    assert_eq!(transcoding, 1, "one video transcode at a time");

    // Deleting A ends its job and frees the slot: B is served.
    assert_eq!(
        server.delete("alice", a["id"].as_str().unwrap()).await,
        StatusCode::NO_CONTENT
    );
    let (status, bytes, _) = until_ready(&b_segment, 100).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    server.stop().await;
    seeder.stop().await;
}

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

/// The `/s/{token}` prefix of a stream's URLs.
fn prefix(server: &TestServer, stream: &Value) -> String {
    let direct = server.direct(stream);
    direct[..direct.rfind('/').unwrap()].to_owned()
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
    let base = prefix(&server, &stream);

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
    let (status, body) = probe(&prefix(&server, &stream), "", None).await;
    assert_error(status, &body, 503, "TRANSCODER_UNAVAILABLE");
    let (status, _, bytes) = fetch(&server.direct(&stream), Some("bytes=4-7")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(bytes, b"ftyp");
    server.stop().await;
}

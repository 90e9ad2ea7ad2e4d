//! `"prepare": "<client>"` on stream creation: the probe, the HLS session and its first
//! segment are made in the background (`stream.prepared` says so), so the player's first
//! requests are answered at once; a client that plays anything needs only the probe; an
//! unknown client is a bad request.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_stream_answers_its_first_hls_requests_at_once() {
    require_tool("ffmpeg", "ffmpeg");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let data = root.path().join("data");
    let server = TestServer::start(&data).await;
    let events = server.events("alice").await;
    let (status, stream) = server
        .post_magnet(
            "alice",
            json!({ "magnet": seeded.magnet, "prepare": "browser" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let seen = read_events(events, "stream.prepared", 1, 120).await;
    let (_, prepared) = seen
        .iter()
        .find(|(kind, _)| kind == "stream.prepared")
        .unwrap_or_else(|| panic!("no stream.prepared: {seen:?}"));
    assert_eq!(prepared["mode"], "remux_audio", "{prepared}");
    assert_eq!(prepared["client"], "browser", "{prepared}");
    assert!(
        seen.iter().any(|(kind, _)| kind == "hls.started"),
        "{seen:?}"
    );
    let session = data
        .join("hls")
        .join(format!("{}-browser", stream["id"].as_str().unwrap()));
    assert!(
        session.join("job0").join("g0.m4s").is_file(),
        "the first fragment is written before any player asks"
    );
    // The player's first requests: every one answered on the first try.
    let master = server.browser_master(&stream);
    let base = master[..master.find("/hls/").unwrap()].to_owned();
    for path in [
        "hls/master.m3u8?client=browser",
        "hls/browser/index.m3u8",
        "hls/browser/init.mp4",
        "hls/browser/0.m4s",
    ] {
        let (status, body, retries) = until_ready(&format!("{base}/{path}"), 1).await;
        assert_eq!((status, retries), (StatusCode::OK, 0), "{path}");
        assert!(!body.is_empty(), "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preparing_for_a_player_that_plays_anything_probes_only_and_unknown_clients_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let data = root.path().join("data");
    let server = TestServer::start(&data).await;
    let (status, body) = server
        .post_magnet(
            "alice",
            json!({ "magnet": seeded.magnet, "prepare": "roku" }),
        )
        .await;
    assert_error(status, &body, 400, "BAD_REQUEST");
    let events = server.events("alice").await;
    let (status, stream) = server
        .post_magnet(
            "alice",
            json!({ "magnet": seeded.magnet, "prepare": "mpv" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    let seen = read_events(events, "stream.prepared", 1, 60).await;
    let (_, prepared) = seen
        .iter()
        .find(|(kind, _)| kind == "stream.prepared")
        .unwrap_or_else(|| panic!("no stream.prepared: {seen:?}"));
    assert_eq!(prepared["mode"], "direct", "{prepared}");
    assert!(
        !data.join("hls").exists()
            || std::fs::read_dir(data.join("hls"))
                .unwrap()
                .next()
                .is_none()
    );
    server.stop().await;
}

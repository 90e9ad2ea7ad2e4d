//! What each stream has served, as the API shows it: bytes, player requests, stalls, time to
//! the first byte, seconds watched — counted for players only (not the server's own ffprobe),
//! kept across a restart, and summed up in `stream.stopped`.

use std::time::Duration;

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_streams_statistics_count_what_players_were_served_and_survive_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let film = pattern(2 << 20, 41);
    let dir = write_tree(root.path(), "Film", &[("film.mp4", film)]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let data = root.path().join("data");
    let server = TestServer::start(&data).await;
    let events = server.events("alice").await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let id = stream["id"].as_str().unwrap().to_owned();
    assert_eq!(stream["stats"]["bytes_served"], 0);
    let direct = server.direct(&stream);
    let (_, _, a) = fetch(&direct, Some("bytes=0-99999")).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (_, _, b) = fetch(&direct, Some("bytes=-50000")).await;
    assert_eq!((a.len(), b.len()), (100_000, 50_000));
    let (_, stream) = server
        .get_api("alice", &format!("/api/v1/streams/{id}"))
        .await;
    let stats = &stream["stats"];
    assert_eq!(stats["bytes_served"], 150_000, "{stream}");
    assert_eq!(stats["requests"], 2);
    assert_eq!(stats["stalls"], 0);
    assert!(stats["first_byte_ms"].as_u64().is_some(), "{stats}");
    let watched = stats["watched_seconds"].as_f64().unwrap();
    assert!(
        (1.0..3.0).contains(&watched),
        "two requests 1.2 s apart: {watched}"
    );
    server.stop().await;

    let server = TestServer::start(&data).await;
    let (_, again) = server
        .get_api("alice", &format!("/api/v1/streams/{id}"))
        .await;
    assert_eq!(again["stats"], *stats, "kept across a restart");
    let events = {
        drop(events);
        server.events("alice").await
    };
    assert_eq!(server.delete("alice", &id).await, StatusCode::NO_CONTENT);
    let seen = read_events(events, "stream.stopped", 1, 10).await;
    let (_, stopped) = seen
        .iter()
        .find(|(kind, _)| kind == "stream.stopped")
        .expect("stream.stopped");
    assert_eq!(stopped["bytes_served"], 150_000, "{stopped}");
    assert!(
        stopped["duration_seconds"].as_u64().unwrap() >= 1,
        "{stopped}"
    );
    server.stop().await;
}

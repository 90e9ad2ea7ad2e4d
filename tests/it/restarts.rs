//! Restarts lose nothing: a torrent resumed after a restart keeps its per-torrent caps; what
//! was downloaded before SIGTERM is all there after it (the log has no flusher error); after
//! kill -9 at most the last moment of verified pieces is fetched again.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{process::*, support::*};

/// Piece length of these tests' torrents.
const PIECE: u32 = 256 * 1024;

/// The stream's JSON from a server process.
async fn stream_of(server: &ServerProcess, id: &str) -> Value {
    let response = client()
        .get(server.url(&format!("/api/v1/streams/{id}")))
        .bearer_auth(server.token("alice"))
        .send()
        .await
        .unwrap();
    json_of(response).await.1
}

/// Polls until the stream has downloaded at least `bytes` (bounded); returns what it has.
async fn until_downloaded(server: &ServerProcess, id: &str, bytes: u64, secs: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let stream = stream_of(server, id).await;
        let have = stream["progress"]["bytes"].as_u64().unwrap_or(0);
        let known = stream["progress"]["total"].as_u64().unwrap_or(0) > 0;
        if known && have >= bytes {
            return have;
        }
        assert!(Instant::now() < deadline, "stuck at {have} bytes: {stream}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A 16 MiB file seeded at 2 MiB/s; the server (a process) has started its stream and
/// downloaded at least 4 MiB. The seeder is stopped before returning, so nothing more comes.
async fn partly_downloaded(root: &std::path::Path) -> (ServerProcess, String, u64) {
    let film = pattern(16 << 20, 17);
    let dir = write_tree(root, "Film", &[("film.mkv", film)]);
    let seeder = magnetar::seeder::Seeder::start(Some(2 << 20))
        .await
        .unwrap();
    let seeded = seeder.seed_with(&dir, Some(PIECE)).await.unwrap();
    let server = ServerProcess::start(&root.join("data"), &[]).await;
    let response = client()
        .post(server.url("/api/v1/streams"))
        .bearer_auth(server.token("alice"))
        .json(&json!({ "magnet": seeded.magnet }))
        .send()
        .await
        .unwrap();
    let (_, stream) = json_of(response).await;
    let id = stream["id"].as_str().expect("a stream").to_owned();
    until_downloaded(&server, &id, 4 << 20, 60).await;
    seeder.stop().await;
    // Pieces still arriving when the seeder stopped are done with.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let have = stream_of(&server, &id).await["progress"]["bytes"]
        .as_u64()
        .unwrap();
    assert!(have < 16 << 20, "still partial: {have}");
    (server, id, have)
}

/// What the restarted server has of the stream once its torrent is back.
async fn after_restart(root: &std::path::Path, id: &str) -> (ServerProcess, u64) {
    let server = ServerProcess::start(&root.join("data"), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stream = stream_of(&server, id).await;
        if stream["progress"]["total"].as_u64().unwrap_or(0) > 0 && stream["state"] != "resolving" {
            // A moment for the resumed torrent's state to settle.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let have = stream_of(&server, id).await["progress"]["bytes"]
                .as_u64()
                .unwrap();
            return (server, have);
        }
        assert!(Instant::now() < deadline, "never resumed: {stream}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_keeps_everything_downloaded() {
    let root = tempfile::tempdir().unwrap();
    let (server, id, before) = partly_downloaded(root.path()).await;
    let log = server.terminate().await;
    assert!(
        !log.contains("flusher task is dead"),
        "the piece state was saved before the engine stopped:\n{log}"
    );
    let (server, after) = after_restart(root.path(), &id).await;
    println!("SIGTERM: {before} bytes before, {after} after the restart");
    assert_eq!(after, before, "nothing downloaded is fetched again");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_costs_at_most_the_last_moment_of_download() {
    let root = tempfile::tempdir().unwrap();
    let (server, id, before) = partly_downloaded(root.path()).await;
    let pid = server.pid();
    server.kill9();
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let (server, after) = after_restart(root.path(), &id).await;
    println!("kill -9: {before} bytes before, {after} after the restart");
    assert!(
        after + 2 * u64::from(PIECE) >= before,
        "at most two pieces are fetched again: {before} before, {after} after"
    );
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_resumed_torrent_keeps_its_download_cap() {
    let root = tempfile::tempdir().unwrap();
    let film = pattern(24 << 20, 23);
    let dir = write_tree(root.path(), "Film", &[("film.mkv", film)]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let data = root.path().join("data");
    let cap = 1 << 20;
    let capped = |c: &mut magnetar::config::Config| c.limits.torrent_download_bps = cap;
    let server = TestServer::start_with(&data, capped).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let id = stream["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.stop().await;

    let server = TestServer::start_with(&data, capped).await;
    let progress = |stream: &Value| stream["progress"]["bytes"].as_u64().unwrap_or(0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let (start, from) = loop {
        let stream = server.wait_state("alice", &id, "downloading", 20).await;
        if progress(&stream) > 0 {
            break (Instant::now(), progress(&stream));
        }
        assert!(Instant::now() < deadline, "never resumed: {stream}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (_, stream) = server
        .get_api("alice", &format!("/api/v1/streams/{id}"))
        .await;
    let rate = (progress(&stream) - from) as f64 / start.elapsed().as_secs_f64();
    println!("after a restart: {rate:.0} B/s with a cap of {cap} B/s");
    assert!(
        rate < 1.5 * f64::from(cap),
        "the cap holds after a restart: {rate:.0} B/s"
    );
    server.stop().await;
}

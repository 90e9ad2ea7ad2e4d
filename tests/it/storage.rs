//! Storage: what the server keeps in memory and on disk for torrents, and when it lets go.

use reqwest::StatusCode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_deleted_torrents_blocks_leave_the_read_cache() {
    let root = tempfile::tempdir().unwrap();
    let film = pattern(6 << 20, 31);
    let dir = write_tree(root.path(), "Film", &[("film.mp4", film.clone())]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let id = stream["id"].as_str().unwrap();
    let (_, _, body) = fetch(&server.direct(&stream), None).await;
    assert!(body == film);
    server.wait_state("alice", id, "ready", 30).await;
    let (_, _, body) = fetch(&server.direct(&stream), None).await;
    assert!(body == film, "read again, through the cache");
    let engine = server.state.streams.engine();
    let (bytes, blocks) = engine.read_cache_usage().await;
    assert_eq!((bytes, blocks), (6 << 20, 6), "the complete file is cached");
    assert_eq!(server.delete("alice", id).await, StatusCode::NO_CONTENT);
    assert_eq!(
        engine.read_cache_usage().await,
        (0, 0),
        "nobody can ask for those blocks again"
    );
    server.stop().await;
}

/// Bytes allocated under `dir` (what the disk quota counts), 0 when it is gone.
fn allocated(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(dir) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| allocated(&e.path())).sum())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_quota_holds_while_three_large_torrents_are_played_one_after_another() {
    let root = tempfile::tempdir().unwrap();
    let quota: u64 = 24 << 20;
    let seeder = magnetar::seeder::Seeder::start(None).await.unwrap();
    let mut films = Vec::new();
    for (n, name) in ["Alpha", "Beta", "Gamma"].iter().enumerate() {
        let bytes = pattern(14 << 20, 100 + n as u64);
        let dir = write_tree(root.path(), name, &[("film.mkv", bytes.clone())]);
        let seeded = seeder.seed_with(&dir, Some(256 * 1024)).await.unwrap();
        films.push((seeded, bytes));
    }
    let big = write_tree(root.path(), "Huge", &[("film.mkv", pattern(30 << 20, 9))]);
    let huge = seeder.seed(&big).await.unwrap();
    let data = root.path().join("data");
    let server = TestServer::start_with(&data, |c| c.storage.max_disk_bytes = quota).await;
    let events = server.events("alice").await;

    // Sampled every 50 ms for the whole test.
    let downloads = data.join("downloads");
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (downloads, sampling) = (downloads.clone(), sampling.clone());
        tokio::task::spawn_blocking(move || {
            let (mut most, mut samples) = (0, 0);
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(allocated(&downloads));
                samples += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            (most, samples)
        })
    };

    let mut ids = Vec::new();
    for (seeded, bytes) in &films {
        let stream = server.stream_of("alice", &seeded.magnet).await;
        let (status, _, body) = fetch(&server.direct(&stream), None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body == *bytes, "every byte of the film");
        let id = stream["id"].as_str().unwrap().to_owned();
        server.wait_state("alice", &id, "ready", 30).await;
        ids.push(id);
        // Past the grace a player reconnecting for a seek gets.
        tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    }
    // The first film went to make room; played again, it comes back.
    let (_, first) = server
        .get_api("alice", &format!("/api/v1/streams/{}", ids[0]))
        .await;
    assert_eq!(
        first["state"], "paused",
        "evicted, waiting to be played: {first}"
    );
    let (status, _, body) = fetch(&server.direct(&first), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == films[0].1, "downloaded again, every byte");

    // A file that alone exceeds the quota is refused with the sizes.
    let (status, body) = server
        .post_magnet("alice", serde_json::json!({ "magnet": huge.magnet }))
        .await;
    assert_error(status, &body, 507, "INSUFFICIENT_STORAGE");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("34.0 MiB") && message.contains("24.0 MiB"),
        "the file and its boundary pieces, and the quota: {message}"
    );

    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let (most, samples) = sampler.await.unwrap();
    println!("disk quota {quota} B: at most {most} B used over {samples} samples");
    assert!(most <= quota, "over the quota: {most} > {quota}");
    let seen = read_events(events, "storage.evicted", 3, 5).await;
    let evicted: Vec<&str> = seen
        .iter()
        .filter(|(kind, _)| kind == "storage.evicted")
        .map(|(_, data)| data["stream"].as_str().unwrap())
        .collect();
    assert!(
        evicted.len() >= 3,
        "Alpha, Beta, then Gamma or Beta again: {seen:?}"
    );
    assert_eq!(evicted[0], ids[0], "least recently played first");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_nobody_plays_are_released_after_the_idle_ttl() {
    let root = tempfile::tempdir().unwrap();
    let played = write_tree(root.path(), "Played", &[("a.mkv", pattern(1 << 20, 1))]);
    let forgotten = write_tree(root.path(), "Forgotten", &[("b.mkv", pattern(1 << 20, 2))]);
    let seeder = magnetar::seeder::Seeder::start(None).await.unwrap();
    let (played, forgotten) = (
        seeder.seed(&played).await.unwrap(),
        seeder.seed(&forgotten).await.unwrap(),
    );
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.storage.stream_idle_ttl = std::time::Duration::from_secs(3);
    })
    .await;
    let events = server.events("alice").await;
    let kept = server.stream_of("alice", &played.magnet).await;
    let gone = server.stream_of("alice", &forgotten.magnet).await;
    for _ in 0..6 {
        let (status, _, _) = fetch(&server.direct(&kept), Some("bytes=0-99")).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let (status, body) = server
        .get_api(
            "alice",
            &format!("/api/v1/streams/{}", gone["id"].as_str().unwrap()),
        )
        .await;
    assert_error(status, &body, 404, "STREAM_NOT_FOUND");
    let (status, _) = server
        .get_api(
            "alice",
            &format!("/api/v1/streams/{}", kept["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "played within the time-to-live");
    let seen = read_events(events, "stream.stopped", 1, 5).await;
    let stopped = seen
        .iter()
        .find(|(kind, _)| kind == "stream.stopped")
        .map(|(_, data)| data.clone())
        .expect("stream.stopped");
    assert_eq!(stopped["stream"], gone["id"]);
    assert_eq!(stopped["reason"], "idle", "{stopped}");
    server.stop().await;
}

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

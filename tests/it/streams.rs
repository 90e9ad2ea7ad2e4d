//! Stream lifecycle over the API: adds by magnet and .torrent, file choice, reuse,
//! isolation between users, refresh, delete, restart, metadata timeout, parse.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::*;

fn movie_pack(root: &std::path::Path) -> (std::path::PathBuf, Vec<u8>, Vec<u8>) {
    let big = pattern(3 * 1024 * 1024 + 123, 1);
    let small = pattern(200 * 1024, 2);
    let dir = write_tree(
        root,
        "Pack",
        &[
            ("Movie.2019.1080p.BluRay.x264.mkv", big.clone()),
            (
                "Movie.2019.1080p.BluRay.x264.en.srt",
                b"1\n00:00:01,000 --> 00:00:02,000\nhi\n".to_vec(),
            ),
            ("Extras/trailer.mp4", small.clone()),
            ("notes.txt", b"hello".to_vec()),
        ],
    );
    (dir, big, small)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_magnet_plays_the_largest_video_file_byte_for_byte() {
    let root = tempfile::tempdir().unwrap();
    let (dir, big, _) = movie_pack(root.path());
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;

    let stream = server.stream_of("alice", &seeded.magnet).await;
    assert_eq!(stream["info_hash"], seeded.info_hash);
    assert_eq!(stream["file"]["path"], "Movie.2019.1080p.BluRay.x264.mkv");
    assert_eq!(stream["file"]["mime"], "video/x-matroska");
    assert_eq!(stream["file"]["quality"]["resolution"], "1080p");
    assert_eq!(stream["files"].as_array().unwrap().len(), 4);
    assert!(stream["id"].as_str().unwrap().starts_with("st_"));

    let (status, headers, body) = fetch(&server.direct(&stream), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-length"], big.len().to_string());
    assert!(body == big, "served bytes differ from the source file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_torrent_upload_can_choose_a_file_by_index() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, small) = movie_pack(root.path());
    let (seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let (_, parsed) = json_of(
        client()
            .post(server.url("/api/v1/torrents/parse"))
            .bearer_auth(server.token("alice"))
            .header("Content-Type", "application/x-bittorrent")
            .body(seeded.torrent_bytes.clone())
            .send()
            .await
            .unwrap(),
    )
    .await;
    let trailer = parsed["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "Extras/trailer.mp4")
        .expect("trailer listed")["index"]
        .as_u64()
        .unwrap();

    // A .torrent carries no peer: name the seeder in the query.
    let url = server.url(&format!(
        "/api/v1/streams?file={trailer}&peers={}",
        seeder.addr
    ));
    let response = client()
        .post(url)
        .bearer_auth(server.token("alice"))
        .header("Content-Type", "application/x-bittorrent")
        .body(seeded.torrent_bytes.clone())
        .send()
        .await
        .unwrap();
    let (status, stream) = json_of(response).await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    assert_eq!(stream["file"]["index"], trailer);
    let hinted = json!({"magnet": seeded.magnet, "file": trailer});
    let (status, again) = server.post_magnet("alice", hinted).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "same torrent+file is the same stream: {again}"
    );
    assert_eq!(again["id"], stream["id"]);
    let (status, _, body) = fetch(&server.direct(&stream), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == small);
    drop(seeder);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_file_can_be_chosen_by_path_and_missing_choices_fail() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, small) = movie_pack(root.path());
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let body = json!({"magnet": seeded.magnet, "file": "Extras/trailer.mp4"});
    let (status, stream) = server.post_magnet("alice", body).await;
    assert_eq!(status, StatusCode::CREATED, "{stream}");
    assert_eq!(stream["file"]["path"], "Extras/trailer.mp4");
    let (_, _, bytes) = fetch(&server.direct(&stream), None).await;
    assert!(bytes == small);

    let (status, body) = server
        .post_magnet("alice", json!({"magnet": seeded.magnet, "file": 42}))
        .await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
    let (status, body) = server
        .post_magnet(
            "alice",
            json!({"magnet": seeded.magnet, "file": "../../etc/passwd"}),
        )
        .await;
    assert_error(status, &body, 404, "FILE_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_torrent_without_video_answers_no_video_file() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_tree(
        root.path(),
        "Docs",
        &[("a.txt", pattern(5000, 3)), ("b.pdf", pattern(5000, 4))],
    );
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let (status, body) = server
        .post_magnet("alice", json!({"magnet": seeded.magnet}))
        .await;
    assert_error(status, &body, 422, "NO_VIDEO_FILE");
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(
        list["streams"].as_array().unwrap().len(),
        0,
        "failed adds leave nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn users_never_see_or_touch_each_others_streams() {
    let root = tempfile::tempdir().unwrap();
    let (dir, big, _) = movie_pack(root.path());
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let alice = server.stream_of("alice", &seeded.magnet).await;
    let id = alice["id"].as_str().unwrap();

    let (_, list) = server.get_api("bob", "/api/v1/streams").await;
    assert_eq!(list["streams"], json!([]));
    for (method, path) in [
        ("GET", format!("/api/v1/streams/{id}")),
        ("POST", format!("/api/v1/streams/{id}/refresh")),
        ("DELETE", format!("/api/v1/streams/{id}")),
    ] {
        let request = client()
            .request(method.parse().unwrap(), server.url(&path))
            .bearer_auth(server.token("bob"));
        let (status, body) = json_of(request.send().await.unwrap()).await;
        assert_error(status, &body, 404, "STREAM_NOT_FOUND");
    }
    // Bob streaming the same torrent gets his own stream, sharing the download.
    let bob = server.stream_of("bob", &seeded.magnet).await;
    assert_ne!(bob["id"], alice["id"]);
    assert_ne!(bob["urls"]["direct"], alice["urls"]["direct"]);
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(list["streams"].as_array().unwrap().len(), 1);
    // Deleting Bob's stream leaves Alice playing.
    let bob_id = bob["id"].as_str().unwrap();
    assert_eq!(server.delete("bob", bob_id).await, StatusCode::NO_CONTENT);
    let (status, _, body) = fetch(&server.direct(&alice), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn delete_revokes_playback_urls_at_once() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, _) = movie_pack(root.path());
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let direct = server.direct(&stream);
    assert_eq!(
        fetch(&direct, Some("bytes=0-9")).await.0,
        StatusCode::PARTIAL_CONTENT
    );

    let id = stream["id"].as_str().unwrap();
    assert_eq!(server.delete("alice", id).await, StatusCode::NO_CONTENT);
    let (status, body) = json_of(client().get(&direct).send().await.unwrap()).await;
    assert_error(status, &body, 404, "STREAM_NOT_FOUND");
    let (status, body) = server
        .get_api("alice", &format!("/api/v1/streams/{id}"))
        .await;
    assert_error(status, &body, 404, "STREAM_NOT_FOUND");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_owners_and_urls_survive_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let (dir, big, _) = movie_pack(root.path());
    let (_seeder, seeded) = seed(&dir, None).await;
    let data = root.path().join("data");
    let server = TestServer::start(&data).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let direct = server.direct(&stream);
    let (_, _, body) = fetch(&direct, None).await;
    assert!(body == big);
    server.stop().await;

    let server = TestServer::start(&data).await;
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    let streams = list["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 1, "{list}");
    assert_eq!(streams[0]["id"], stream["id"]);
    let (_, bob) = server.get_api("bob", "/api/v1/streams").await;
    assert_eq!(bob["streams"], json!([]));
    let old_url = direct.replace(&direct[..direct.find("/s/").unwrap()], &server.base);
    let (status, _, body) = fetch(&old_url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == big, "the saved URL keeps playing after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_magnet_nobody_seeds_resolves_then_times_out() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.engine.metadata_wait = Duration::from_millis(500);
        c.engine.metadata_timeout = Duration::from_secs(2);
    })
    .await;
    // A tracker nobody answers on: resolution keeps trying until the timeout.
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=Lost.Film&tr=http%3A%2F%2F127.0.0.1%3A9%2Fannounce",
        "c".repeat(40)
    );
    let (status, stream) = server.post_magnet("alice", json!({"magnet": magnet})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{stream}");
    assert_eq!(stream["state"], "resolving");
    assert_eq!(
        stream["name"], "Lost.Film",
        "the magnet's dn names it while resolving"
    );
    let play = server.url(stream["urls"]["play"].as_str().unwrap());

    tokio::time::sleep(Duration::from_secs(3)).await;
    let id = stream["id"].as_str().unwrap();
    let (_, polled) = server
        .get_api("alice", &format!("/api/v1/streams/{id}"))
        .await;
    assert_eq!(polled["state"], "error", "{polled}");
    assert_eq!(polled["error"]["code"], "METADATA_TIMEOUT");
    let (status, body) = json_of(client().get(play).send().await.unwrap()).await;
    assert_error(status, &body, 504, "METADATA_TIMEOUT");
    // Asking again retries: a new stream, resolving again.
    let (status, retry) = server.post_magnet("alice", json!({"magnet": magnet})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retry}");
    assert_ne!(retry["id"], stream["id"]);
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(
        list["streams"].as_array().unwrap().len(),
        1,
        "the failed stream is replaced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refresh_issues_a_new_url_and_the_old_one_keeps_working() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, _) = movie_pack(root.path());
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let id = stream["id"].as_str().unwrap();
    let response = client()
        .post(server.url(&format!("/api/v1/streams/{id}/refresh")))
        .bearer_auth(server.token("alice"))
        .send()
        .await
        .unwrap();
    let (status, refreshed) = json_of(response).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(refreshed["urls"]["direct"], stream["urls"]["direct"]);
    for url in [server.direct(&stream), server.direct(&refreshed)] {
        assert_eq!(
            fetch(&url, Some("bytes=0-0")).await.0,
            StatusCode::PARTIAL_CONTENT
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parse_describes_a_magnet_without_starting_it() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(&root.path().join("data")).await;
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=Show.S01E01.2160p.WEB-DL.HDR.x265&tr=udp%3A%2F%2Ft.example%3A1337&x.pe=127.0.0.1:7000",
        "AB".repeat(20)
    );
    let response = client()
        .post(server.url("/api/v1/torrents/parse"))
        .bearer_auth(server.token("alice"))
        .json(&json!({"magnet": magnet}))
        .send()
        .await
        .unwrap();
    let (status, parsed): (_, Value) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{parsed}");
    assert_eq!(parsed["info_hash"], "ab".repeat(20));
    assert_eq!(parsed["name"], "Show.S01E01.2160p.WEB-DL.HDR.x265");
    assert_eq!(parsed["trackers"], json!(["udp://t.example:1337"]));
    assert_eq!(parsed["peers"], json!(["127.0.0.1:7000"]));
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(list["streams"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_reach_only_the_streams_owner() {
    let root = tempfile::tempdir().unwrap();
    let (dir, _, _) = movie_pack(root.path());
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let subscribe = |user: &str| {
        client()
            .get(server.url("/api/v1/events"))
            .bearer_auth(server.token(user))
            .send()
    };
    let (alice_events, bob_events) = (
        subscribe("alice").await.unwrap(),
        subscribe("bob").await.unwrap(),
    );
    assert_eq!(alice_events.status(), StatusCode::OK);
    assert!(alice_events.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));

    let stream = server.stream_of("alice", &seeded.magnet).await;
    let id = stream["id"].as_str().unwrap();
    assert_eq!(server.delete("alice", id).await, StatusCode::NO_CONTENT);
    let seen = read_events(alice_events, "stream.stopped", 1, 20).await;
    let kinds: Vec<&str> = seen.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["stream.started", "stream.ready", "stream.stopped"],
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .all(|(_, data)| data["stream"] == id && data.get("user").is_none()));

    // Bob's connection saw none of it: his first event is about his own stream.
    let bobs = server.stream_of("bob", &seeded.magnet).await;
    let seen = read_events(bob_events, "stream.ready", 1, 20).await;
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(_, data)| data["stream"] == bobs["id"]),
        "{seen:?}"
    );

    let (status, body) = json_of(
        client()
            .get(server.url("/api/v1/events"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 401, "AUTH_REQUIRED");
    server.stop().await;
}

//! Bad input gets the error JSON with the right status and stable code, and nothing leaks.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_errors_have_stable_codes() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.limits.max_torrent_bytes = 10_000;
    })
    .await;
    let streams = server.url("/api/v1/streams");
    let token = server.token("alice");

    let (s, b) = json_of(client().get(&streams).send().await.unwrap()).await;
    assert_error(s, &b, 401, "AUTH_REQUIRED");
    let (s, b) = json_of(
        client()
            .get(&streams)
            .bearer_auth("garbage")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 401, "AUTH_FAILED");
    let forged = magnetar::auth::ApiKeys::hs256(b"not-the-secret", Duration::ZERO)
        .issue("alice", magnetar::auth::Role::User, Duration::from_secs(60))
        .unwrap();
    let (s, b) = json_of(
        client()
            .get(&streams)
            .bearer_auth(forged)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 401, "AUTH_FAILED");
    let expired = magnetar::api_keys(&server.config)
        .unwrap()
        .issue("alice", magnetar::auth::Role::User, Duration::ZERO)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (s, b) = json_of(
        client()
            .get(&streams)
            .bearer_auth(expired)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 401, "AUTH_FAILED");

    let bad_bodies: [(reqwest::Body, &str, u16, &str); 7] = [
        ("{not json".into(), "application/json", 400, "BAD_REQUEST"),
        (
            "{\"file\": 1}".into(),
            "application/json",
            400,
            "BAD_REQUEST",
        ),
        (
            "{\"magnet\": 7}".into(),
            "application/json",
            400,
            "BAD_REQUEST",
        ),
        ("x".into(), "text/plain", 400, "BAD_REQUEST"),
        (
            "d4:spam".into(),
            "application/x-bittorrent",
            400,
            "INVALID_TORRENT",
        ),
        (
            vec![b'x'; 20_000].into(),
            "application/x-bittorrent",
            413,
            "TORRENT_TOO_LARGE",
        ),
        (
            vec![b' '; 70_000].into(),
            "application/json",
            400,
            "BAD_REQUEST",
        ),
    ];
    for (body, content_type, status, code) in bad_bodies {
        let request = client()
            .post(&streams)
            .bearer_auth(&token)
            .header("Content-Type", content_type)
            .body(body);
        let (s, b) = json_of(request.send().await.unwrap()).await;
        assert_error(s, &b, status, code);
    }
    for magnet in ["http://x", "magnet:?xt=urn:btih:123", "magnet:?dn=x"] {
        let (s, b) = server.post_magnet("alice", json!({"magnet": magnet})).await;
        assert_error(s, &b, 400, "INVALID_MAGNET");
    }
    let bad_peer =
        json!({"magnet": format!("magnet:?xt=urn:btih:{}", "a".repeat(40)), "peers": ["nope"]});
    let (s, b) = server.post_magnet("alice", bad_peer).await;
    assert_error(s, &b, 400, "BAD_REQUEST");

    let (s, b) = server.get_api("alice", "/api/v1/streams/st_nope").await;
    assert_error(s, &b, 404, "STREAM_NOT_FOUND");
    let (s, b) = server.get_api("alice", "/api/v1/nothing-here").await;
    assert_error(s, &b, 404, "NOT_FOUND");
    let (s, b) = json_of(
        client()
            .put(&streams)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 405, "METHOD_NOT_ALLOWED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tampered_and_expired_playback_urls_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = pattern(50_000, 9);
    let dir = write_tree(root.path(), "Short", &[("short.mp4", data.clone())]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.auth.playback_ttl = Duration::from_secs(2);
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let url = server.direct(&stream);
    assert_eq!(fetch(&url, None).await.0, StatusCode::OK);

    let token_start = url.find("/s/").unwrap() + 3;
    let mut tampered = url.clone().into_bytes();
    let at = token_start + 60;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (s, b) = json_of(client().get(&tampered).send().await.unwrap()).await;
    assert_error(s, &b, 401, "AUTH_FAILED");
    let (s, b) = json_of(
        client()
            .get(server.url("/s/not-a-token/short.mp4"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(s, &b, 401, "AUTH_FAILED");
    let wrong_name = url.replace("short.mp4", "other.mp4");
    let (s, b) = json_of(client().get(&wrong_name).send().await.unwrap()).await;
    assert_error(s, &b, 404, "FILE_NOT_FOUND");
    let traversal = format!("{}/..%2F..%2Fetc%2Fpasswd", &url[..url.rfind('/').unwrap()]);
    let (s, b) = json_of(client().get(&traversal).send().await.unwrap()).await;
    assert_error(s, &b, 404, "FILE_NOT_FOUND");

    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (s, b) = json_of(client().get(&url).send().await.unwrap()).await;
    assert_error(s, &b, 401, "URL_EXPIRED");
    // Fetching the stream again hands out a fresh URL that plays.
    let id = stream["id"].as_str().unwrap();
    let (_, fresh) = server
        .get_api("alice", &format!("/api/v1/streams/{id}"))
        .await;
    let (status, _, body) = fetch(&server.direct(&fresh), None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swarm_that_goes_silent_answers_stream_stalled() {
    let root = tempfile::tempdir().unwrap();
    let data = pattern(8 * 1024 * 1024, 11);
    let dir = write_tree(root.path(), "Gone", &[("gone.mkv", data)]);
    // 64 KiB/s: the head and tail pins take seconds; the middle is far from done.
    let (seeder, seeded) = seed(&dir, Some(64 * 1024)).await;
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.engine.stall_timeout = Duration::from_secs(2);
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    seeder.stop().await;
    let id = stream["id"].as_str().unwrap();
    for _ in 0..100 {
        let (_, now) = server
            .get_api("alice", &format!("/api/v1/streams/{id}"))
            .await;
        if now["progress"]["peers"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = client()
        .get(server.direct(&stream))
        .header("Range", "bytes=5000000-5000099")
        .send()
        .await
        .unwrap();
    let (s, b) = json_of(response).await;
    assert_error(s, &b, 504, "STREAM_STALLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_and_the_api_description_answer_without_auth() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(&root.path().join("data")).await;
    let (status, body) = json_of(client().get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    let (status, _, spec) = fetch(&server.url("/api/v1/openapi.yaml"), None).await;
    assert_eq!(status, StatusCode::OK);
    let spec = String::from_utf8(spec).unwrap();
    for path in [
        "/api/v1/streams:",
        "/api/v1/streams/{id}:",
        "/api/v1/streams/{id}/refresh:",
        "/api/v1/torrents/parse:",
        "/s/{token}/{file}:",
        "/s/{token}/playlist.m3u:",
    ] {
        assert!(spec.contains(path), "the OpenAPI document lists {path}");
    }
}

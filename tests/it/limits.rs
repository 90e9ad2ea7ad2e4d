//! Limits under load: every rate limit answers 429 `RATE_LIMITED` with `Retry-After` and
//! lets the caller through again after that wait; stream quotas; a per-user egress cap
//! measured against a second user; X-Forwarded-For only from trusted proxies; CORS and
//! security headers.

use std::time::{Duration, Instant};

use magnetar::config::Config;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

/// Every rate limit off; a test turns on the one it exercises.
fn no_limits(config: &mut Config) {
    let limits = &mut config.limits;
    limits.api_per_minute = 0;
    limits.streams_per_minute = 0;
    limits.content_per_second = 0;
    limits.unauthenticated_per_minute = 0;
    limits.auth_failures_per_minute = 0;
}

/// Sends `make()` until it answers 429, at most `max` times; returns the 429's body and
/// `Retry-After` seconds, and how many requests passed before it.
async fn until_limited(max: usize, make: impl Fn() -> RequestBuilder) -> (usize, Value, u64) {
    for sent in 0..max {
        let response = make().send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            let retry = response
                .headers()
                .get("retry-after")
                .expect("429 carries Retry-After")
                .to_str()
                .unwrap()
                .parse::<u64>()
                .expect("Retry-After is whole seconds");
            let (status, body) = json_of(response).await;
            assert_error(status, &body, 429, "RATE_LIMITED");
            return (sent, body, retry);
        }
    }
    panic!("no 429 within {max} requests");
}

async fn status_of(request: RequestBuilder) -> StatusCode {
    request.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_rate_limit_answers_429_then_lets_the_caller_back_after_retry_after() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_tree(root.path(), "Clip", &[("clip.mp4", pattern(64 * 1024, 9))]);
    let (_seeder, seeded) = seed(&dir, None).await;
    // 60 per minute: a burst of 60, then one more each second.
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        no_limits(c);
        c.limits.streams_per_minute = 60;
    })
    .await;
    server.stream_of("alice", &seeded.magnet).await;
    let token = server.token("alice");
    let create = || {
        client()
            .post(server.url("/api/v1/streams"))
            .bearer_auth(&token)
            .json(&json!({ "magnet": seeded.magnet }))
    };
    let (passed, _, retry) = until_limited(100, create).await;
    assert_eq!(
        passed, 59,
        "the first creation and 59 repeats fit the burst of 60"
    );
    assert_eq!(retry, 1);
    assert_eq!(
        status_of(
            client()
                .get(server.url("/api/v1/streams"))
                .bearer_auth(&token)
        )
        .await,
        StatusCode::OK,
        "other API calls are not stream creations"
    );
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(
        status_of(create()).await,
        StatusCode::OK,
        "back after Retry-After"
    );
    server.stop().await;

    let server = TestServer::start_with(&root.path().join("data2"), |c| {
        no_limits(c);
        (c.limits.api_per_minute, c.limits.api_burst) = (60, 5);
    })
    .await;
    let token = server.token("alice");
    let list = || {
        client()
            .get(server.url("/api/v1/streams"))
            .bearer_auth(&token)
    };
    let (passed, _, retry) = until_limited(100, list).await;
    assert_eq!((passed, retry), (5, 1), "api_burst 5");
    let bob = server.token("bob");
    assert_eq!(
        status_of(
            client()
                .get(server.url("/api/v1/streams"))
                .bearer_auth(&bob)
        )
        .await,
        StatusCode::OK,
        "another user has their own budget"
    );
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(status_of(list()).await, StatusCode::OK);
    server.stop().await;

    let server = TestServer::start_with(&root.path().join("data3"), |c| {
        no_limits(c);
        (c.limits.content_per_second, c.limits.content_burst) = (2, 4);
    })
    .await;
    let stream_b = server.stream_of("alice", &seeded.magnet).await;
    let url = server.direct(&stream_b);
    let range = || client().get(&url).header("Range", "bytes=0-99");
    let (passed, _, retry) = until_limited(100, range).await;
    assert_eq!((passed, retry), (4, 1), "content_burst 4");
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(status_of(range()).await, StatusCode::PARTIAL_CONTENT);
    server.stop().await;

    let server = TestServer::start_with(&root.path().join("data4"), |c| {
        no_limits(c);
        c.limits.unauthenticated_per_minute = 60;
    })
    .await;
    let anonymous = || client().get(server.url("/api/v1/streams"));
    let (passed, _, retry) = until_limited(100, anonymous).await;
    assert_eq!(passed, 60);
    assert_eq!(
        status_of(client().get(server.url("/health"))).await,
        StatusCode::OK,
        "/health is never limited"
    );
    let valid = server.token("alice");
    assert_eq!(
        status_of(
            client()
                .get(server.url("/api/v1/streams"))
                .bearer_auth(&valid)
        )
        .await,
        StatusCode::OK,
        "credentials are not anonymous"
    );
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, body) = json_of(anonymous().send().await.unwrap()).await;
    assert_error(status, &body, 401, "AUTH_REQUIRED");
    server.stop().await;

    let server = TestServer::start_with(&root.path().join("data5"), |c| {
        no_limits(c);
        c.limits.auth_failures_per_minute = 60;
    })
    .await;
    let stream_c = server.stream_of("alice", &seeded.magnet).await;
    let forged = || {
        client()
            .get(server.url("/api/v1/streams"))
            .bearer_auth("e30.e30.forged")
    };
    let (passed, _, retry) = until_limited(100, forged).await;
    assert_eq!(passed, 60);
    // The block answers failing credentials only: a valid token and a valid playback URL
    // from the same address pass, a forged playback URL gets the cheap 429.
    let valid = server.token("alice");
    assert_eq!(
        status_of(
            client()
                .get(server.url("/api/v1/streams"))
                .bearer_auth(&valid)
        )
        .await,
        StatusCode::OK,
        "a token that verifies is never refused by the block"
    );
    let url = server.direct(&stream_c);
    let (status, _, body) = fetch(&url, Some("bytes=0-9")).await;
    assert_eq!(
        status,
        StatusCode::PARTIAL_CONTENT,
        "a valid playback URL plays"
    );
    assert_eq!(body.len(), 10);
    let tampered = url.replacen("/s/", "/s/x", 1);
    assert_eq!(
        status_of(client().get(&tampered)).await,
        StatusCode::TOO_MANY_REQUESTS,
        "a failing playback URL from a blocked address"
    );
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let (status, body) = json_of(forged().send().await.unwrap()).await;
    assert_error(status, &body, 401, "AUTH_FAILED");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_quotas_answer_too_many_streams() {
    let root = tempfile::tempdir().unwrap();
    let seeder = magnetar::seeder::Seeder::start(None).await.unwrap();
    let mut magnets = Vec::new();
    for k in 0..4u64 {
        let dir = write_tree(
            root.path(),
            &format!("T{k}"),
            &[("movie.mkv", pattern(32 * 1024, 20 + k))],
        );
        magnets.push(seeder.seed(&dir).await.unwrap().magnet);
    }
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        no_limits(c);
        (c.limits.max_streams_per_user, c.limits.max_streams) = (2, 3);
    })
    .await;
    let first = server.stream_of("alice", &magnets[0]).await;
    server.stream_of("alice", &magnets[1]).await;
    let (status, _) = server
        .post_magnet("alice", json!({ "magnet": magnets[0] }))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "asking again for a stream one has is not a new stream"
    );
    let (status, body) = server
        .post_magnet("alice", json!({ "magnet": magnets[2] }))
        .await;
    assert_error(status, &body, 429, "TOO_MANY_STREAMS");
    server.stream_of("bob", &magnets[2]).await;
    let (status, body) = server
        .post_magnet("carol", json!({ "magnet": magnets[3] }))
        .await;
    assert_error(status, &body, 429, "TOO_MANY_STREAMS");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("server"),
        "{body}"
    );
    assert_eq!(
        server.delete("alice", first["id"].as_str().unwrap()).await,
        StatusCode::NO_CONTENT
    );
    server.stream_of("alice", &magnets[2]).await;
    server.stop().await;
    seeder.stop().await;
}

/// Downloads `url` whole on one connection; returns the byte count.
async fn drain(url: String) -> usize {
    let (status, _, body) = fetch(&url, None).await;
    assert_eq!(status, StatusCode::OK);
    body.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_egress_cap_holds_across_a_users_connections_and_spares_other_users() {
    const CAP: u64 = 2 * 1024 * 1024;
    let root = tempfile::tempdir().unwrap();
    let data = pattern(6 * 1024 * 1024, 31);
    let dir = write_tree(root.path(), "Big", &[("big.mkv", data.clone())]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        no_limits(c);
        c.limits.user_egress_bps = CAP;
    })
    .await;
    let alice = server.stream_of("alice", &seeded.magnet).await;
    let bob = server.stream_of("bob", &seeded.magnet).await;
    // Wait until the file is complete, so only the cap sets the pace.
    let id = alice["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, stream) = server
            .get_api("alice", &format!("/api/v1/streams/{id}"))
            .await;
        if stream["progress"]["bytes"] == stream["progress"]["total"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "download did not finish: {stream}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    let (alice_url, bob_url) = (server.direct(&alice), server.direct(&bob));
    let alice_run = async {
        let (a, b) = tokio::join!(drain(alice_url.clone()), drain(alice_url.clone()));
        (a + b, started.elapsed())
    };
    let bob_run = async { (drain(bob_url).await, started.elapsed()) };
    let ((alice_bytes, alice_secs), (bob_bytes, bob_secs)) = tokio::join!(alice_run, bob_run);
    let rate = |bytes: usize, took: Duration| bytes as f64 / took.as_secs_f64();
    let (alice_rate, bob_rate) = (rate(alice_bytes, alice_secs), rate(bob_bytes, bob_secs));
    println!(
        "egress cap {CAP} B/s: alice (2 connections) {alice_rate:.0} B/s, bob {bob_rate:.0} B/s"
    );
    for (who, got) in [("alice", alice_rate), ("bob", bob_rate)] {
        let ratio = got / CAP as f64;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "{who}: {got:.0} B/s is {ratio:.2}× the cap"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_counts_only_behind_a_trusted_proxy() {
    let root = tempfile::tempdir().unwrap();
    for (trusted, separate) in [(vec!["127.0.0.1".to_owned()], true), (vec![], false)] {
        let data = root.path().join(format!("data-{separate}"));
        let server = TestServer::start_with(&data, |c| {
            no_limits(c);
            c.limits.unauthenticated_per_minute = 60;
            c.server.trusted_proxies = trusted.clone();
        })
        .await;
        let from = |ip: &'static str| {
            let url = server.url("/api/v1/streams");
            move || client().get(&url).header("X-Forwarded-For", ip)
        };
        until_limited(100, from("198.51.100.1")).await;
        let other = status_of(from("198.51.100.2")()).await;
        let want = if separate {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(other, want, "trusted proxies {trusted:?}");
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_allows_configured_origins_and_api_answers_carry_security_headers() {
    let root = tempfile::tempdir().unwrap();
    let dir = write_tree(root.path(), "Clip", &[("clip.mp4", pattern(64 * 1024, 5))]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let origin = "https://player.example";
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.server.cors_origins = vec![origin.to_owned()];
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let url = server.direct(&stream);

    let preflight = client()
        .request(reqwest::Method::OPTIONS, &url)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "range")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], origin);
    assert!(headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .contains("range"));

    let ranged = client()
        .get(&url)
        .header("Origin", origin)
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
    let exposed = ranged.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["content-range", "accept-ranges", "content-length"] {
        assert!(exposed.contains(name), "{name} not exposed: {exposed}");
    }
    assert_eq!(ranged.headers()["referrer-policy"], "no-referrer");

    let foreign = client()
        .get(&url)
        .header("Origin", "https://evil.example")
        .header("Range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert!(foreign
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    let api = client()
        .get(server.url("/api/v1/streams"))
        .bearer_auth(server.token("alice"))
        .send()
        .await
        .unwrap();
    let headers = api.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("default-src 'none'"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_metadata_over_the_size_limit_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let files: Vec<(String, Vec<u8>)> = (0..60)
        .map(|k| (format!("extras/clip-number-{k:03}.mkv"), pattern(1024, k)))
        .collect();
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let dir = write_tree(root.path(), "Many", &borrowed);
    let (_seeder, seeded) = seed(&dir, None).await;
    assert!(
        seeded.torrent_bytes.len() > 2048,
        "the metadata is bigger than the limit below"
    );
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.limits.max_torrent_bytes = 2048;
    })
    .await;
    let (status, body) = server
        .post_magnet("alice", json!({ "magnet": seeded.magnet }))
        .await;
    assert_error(status, &body, 413, "TORRENT_TOO_LARGE");
    server.stop().await;
}

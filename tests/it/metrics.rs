//! `/metrics`: after real traffic (a stream, ranges read through the swarm and the cache, an
//! HLS segment, refused credentials), the Prometheus text passes `promtool check metrics`, has
//! the series an operator needs, and carries no user, stream, info-hash or token. Who may read
//! it: the allowed networks, or an admin token; nobody through an untrusted proxy.

use std::io::Write;

use magnetar::auth::Role;
use reqwest::StatusCode;

use crate::support::*;

async fn scrape(server: &TestServer, token: Option<&str>, forwarded: bool) -> (StatusCode, String) {
    let mut request = client().get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if forwarded {
        request = request.header("x-forwarded-for", "203.0.113.9");
    }
    let response = request.send().await.unwrap();
    (response.status(), response.text().await.unwrap())
}

/// The value of the first sample of `series` (a name with its labels, as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_scrape_after_real_traffic_passes_promtool_and_names_no_one() {
    let promtool = require_tool("promtool", "prometheus");
    let root = tempfile::tempdir().unwrap();
    let (_seeder, seeded) = seed(&fixtures().join("mkv"), None).await;
    let server = TestServer::start(&root.path().join("data")).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let direct = server.direct(&stream);
    for range in ["bytes=0-99999", "bytes=100000-", "bytes=0-99999"] {
        let (status, _, _) = fetch(&direct, Some(range)).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    }
    let segment = format!("{}/hls/browser/0.m4s", server.playback_base(&stream));
    let (status, _, _) = until_ready(&segment, 100).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = fetch(&server.url("/s/forged.token.x/file.mkv"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, text) = scrape(&server, None, false).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    let verdict = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool: {verdict}\n{text}");

    let series = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .count();
    println!(
        "/metrics: {} bytes, {series} series; promtool: ok",
        text.len()
    );
    for needed in [
        r#"magnetar_http_requests_total{route="/s/{token}/{file}",method="GET",status="2xx"}"#,
        r#"magnetar_http_requests_total{route="/s/{token}/{file}",method="GET",status="4xx"}"#,
        r#"magnetar_http_request_duration_seconds_bucket{route="/api/v1/streams""#,
        "magnetar_first_byte_seconds_bucket",
        "magnetar_reader_wait_seconds_bucket",
        "magnetar_hls_segment_wait_seconds_bucket",
        "magnetar_served_bytes_total",
        r#"magnetar_streams{state="ready"}"#,
        "magnetar_users",
        "magnetar_torrents",
        "magnetar_peers",
        "magnetar_torrent_downloaded_bytes_total",
        "magnetar_hls_sessions",
        r#"magnetar_ffmpeg_jobs{state="running"}"#,
        "magnetar_transcode_slots_in_use",
        "magnetar_read_cache_bytes",
        "magnetar_connections",
        r#"magnetar_auth_failures_total{reason="invalid"}"#,
        "magnetar_build_info{version=",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    ] {
        assert!(text.contains(needed), "{needed} missing:\n{text}");
    }
    assert!(sample(&text, "magnetar_served_bytes_total").unwrap() > 200_000.0);
    assert_eq!(
        sample(&text, r#"magnetar_streams{state="ready"}"#),
        Some(1.0)
    );
    let token = direct
        .split("/s/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    for secret in [
        stream["info_hash"].as_str().unwrap(),
        stream["id"].as_str().unwrap(),
        "alice",
        token,
        "Sample.Movie",
    ] {
        assert!(!text.contains(secret), "{secret:?} leaked into /metrics");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_for_allowed_networks_or_admins_only() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start(&root.path().join("data")).await;
    let (status, _) = scrape(&server, None, false).await;
    assert_eq!(status, StatusCode::OK, "loopback is allowed by default");
    let (status, body) = scrape(&server, None, true).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "through an untrusted proxy: {body}"
    );
    assert!(body.contains("FORBIDDEN"), "{body}");
    server.stop().await;

    let server = TestServer::start_with(&root.path().join("data2"), |c| {
        c.metrics.allow = vec!["10.0.0.0/8".into()];
    })
    .await;
    let (status, body) = scrape(&server, None, false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let user = server.token("bob");
    let (status, _) = scrape(&server, Some(&user), false).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user token is not enough");
    let admin = magnetar::api_keys(&server.config)
        .unwrap()
        .issue("root", Role::Admin, std::time::Duration::from_secs(60))
        .unwrap();
    let (status, text) = scrape(&server, Some(&admin), false).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("magnetar_build_info"));
    server.stop().await;

    let server = TestServer::start_with(&root.path().join("data3"), |c| {
        c.metrics.enabled = false;
    })
    .await;
    let (status, _) = scrape(&server, None, false).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "turned off");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_summary_counts_users_streams_disk_and_cache() {
    let root = tempfile::tempdir().unwrap();
    let film = pattern(3 << 20, 8);
    let dir = write_tree(root.path(), "Film", &[("film.mkv", film.clone())]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.storage.max_disk_bytes = 1 << 30;
    })
    .await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    server.stream_of("bob", &seeded.magnet).await;
    let (_, _, body) = fetch(&server.direct(&stream), None).await;
    assert!(body == film);
    server
        .wait_state("alice", stream["id"].as_str().unwrap(), "ready", 30)
        .await;
    fetch(&server.direct(&stream), None).await;
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;

    let admin = magnetar::api_keys(&server.config)
        .unwrap()
        .issue("root", Role::Admin, std::time::Duration::from_secs(60))
        .unwrap();
    let response = client()
        .get(server.url("/api/v1/admin/stats"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (status, stats) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{stats}");
    assert_eq!(stats["users"], 2, "{stats}");
    assert_eq!(stats["streams"]["ready"], 2, "{stats}");
    assert_eq!(stats["engine"]["torrents"], 1, "{stats}");
    assert_eq!(stats["disk"]["quota_bytes"], 1u64 << 30);
    let used = stats["disk"]["used_bytes"].as_u64().unwrap();
    assert!((3 << 20..4 << 20).contains(&used), "{stats}");
    assert!(
        stats["read_cache"]["bytes"].as_u64().unwrap() >= 3 << 20,
        "{stats}"
    );
    assert!(stats["connections"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["hls"]["max_transcodes"].as_u64().is_some(), "{stats}");
    let (status, body) = server.get_api("alice", "/api/v1/admin/stats").await;
    assert_error(status, &body, 403, "FORBIDDEN");
    server.stop().await;
}

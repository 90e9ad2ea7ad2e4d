//! A disk that fills anyway (the quota set higher than the disk, another program writing):
//! the data folder is a 48 MiB tmpfs (in the server's own mount namespace), a film downloads
//! into it while another file takes the room. The film's stream turns to `error` with
//! `INSUFFICIENT_STORAGE` (state, playback, events), its reader ends at once instead of
//! hanging, a complete film keeps playing, the server stays up, a new stream is refused with
//! the sizes — and once the room is back the film downloads again by itself.

use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{process::*, support::*};

async fn api(server: &ServerProcess, path: &str) -> (StatusCode, Value) {
    let response = client()
        .get(server.url(path))
        .bearer_auth(server.token("alice"))
        .send()
        .await
        .unwrap();
    json_of(response).await
}

async fn create(server: &ServerProcess, magnet: &str) -> (StatusCode, Value) {
    let response = client()
        .post(server.url("/api/v1/streams"))
        .bearer_auth(server.token("alice"))
        .json(&json!({ "magnet": magnet }))
        .send()
        .await
        .unwrap();
    json_of(response).await
}

/// Polls the stream until `done(stream)` (bounded).
async fn until(
    server: &ServerProcess,
    id: &str,
    secs: u64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (_, stream) = api(server, &format!("/api/v1/streams/{id}")).await;
        if done(&stream) {
            return stream;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {stream}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_disk_is_a_clear_error_others_keep_playing_and_it_recovers_by_itself() {
    let root = tempfile::tempdir().unwrap();
    let small = pattern(4 << 20, 3);
    let large = pattern(36 << 20, 4);
    let small_dir = write_tree(root.path(), "Small", &[("small.mkv", small.clone())]);
    let large_dir = write_tree(root.path(), "Large", &[("large.mkv", large.clone())]);
    let seeder = magnetar::seeder::Seeder::start(Some(3 << 20))
        .await
        .unwrap();
    let small_seed = seeder
        .seed_with(&small_dir, Some(256 * 1024))
        .await
        .unwrap();
    let large_seed = seeder
        .seed_with(&large_dir, Some(256 * 1024))
        .await
        .unwrap();
    let data = root.path().join("data");
    let quota = (1u64 << 30).to_string();
    let env = [
        ("MAGNETAR__STORAGE__MAX_DISK_BYTES", quota.as_str()),
        ("MAGNETAR__AUTH__JWT_SECRET", "full-disk-test-secret"),
    ];
    let server = ServerProcess::start_on_tmpfs(&data, "48m", &env).await;

    let (status, small_stream) = create(&server, &small_seed.magnet).await;
    assert_eq!(status, StatusCode::CREATED, "{small_stream}");
    let small_url = server.url(small_stream["urls"]["direct"].as_str().unwrap());
    let small_id = small_stream["id"].as_str().unwrap();
    until(&server, small_id, 30, |s| s["state"] == "ready").await;

    let events = client()
        .get(server.url("/api/v1/events"))
        .bearer_auth(server.token("alice"))
        .send()
        .await
        .unwrap();
    let (status, large_stream) = create(&server, &large_seed.magnet).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "room for it at first: {large_stream}"
    );
    let large_id = large_stream["id"].as_str().unwrap().to_owned();
    let large_url = server.url(large_stream["urls"]["direct"].as_str().unwrap());
    // A player reading the film from its start while it downloads.
    let reading = client().get(&large_url).send().await.unwrap();
    assert_eq!(reading.status(), StatusCode::OK);
    let reader = tokio::spawn(async move {
        let mut body = reading.bytes_stream();
        let mut read = 0usize;
        while let Some(chunk) = body.next().await {
            match chunk {
                Ok(chunk) => read += chunk.len(),
                Err(_) => return (read, true),
            }
        }
        (read, false)
    });
    until(&server, &large_id, 30, |s| {
        s["progress"]["bytes"].as_u64().unwrap_or(0) >= 4 << 20
    })
    .await;
    // Another program takes the room left.
    let filled = server.in_namespace(
        "sh",
        &[
            "-c",
            &format!(
                "dd if=/dev/zero of={}/filler bs=1M count=48 2>/dev/null; true",
                data.display()
            ),
        ],
    );
    assert!(filled.status.success());
    let full_at = Instant::now();

    let failed = until(&server, &large_id, 60, |s| s["state"] == "error").await;
    assert_eq!(failed["error"]["code"], "INSUFFICIENT_STORAGE", "{failed}");
    assert!(
        failed["error"]["message"]
            .as_str()
            .unwrap()
            .contains("full"),
        "{failed}"
    );
    let (read, cut) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .expect("the reader ends instead of hanging")
        .unwrap();
    println!(
        "disk full: stream in error after {:?}; the reader ended after {read} bytes",
        full_at.elapsed()
    );
    assert!(
        cut && read < large.len(),
        "the body ended early with an error ({read} bytes)"
    );
    let (status, body) = json_of(
        client()
            .get(&large_url)
            .header("Range", "bytes=30000000-30000999")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 507, "INSUFFICIENT_STORAGE");
    let (status, _, bytes) = fetch(&small_url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes == small, "the complete film keeps playing");
    let (status, _, _) = fetch(&server.url("/health"), None).await;
    assert_eq!(status, StatusCode::OK);
    let other = write_tree(root.path(), "Other", &[("other.mkv", pattern(8 << 20, 5))]);
    let other_seed = seeder.seed_with(&other, Some(256 * 1024)).await.unwrap();
    let (status, refused) = create(&server, &other_seed.magnet).await;
    assert_error(status, &refused, 507, "INSUFFICIENT_STORAGE");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("free"),
        "{refused}"
    );
    let seen = read_events(events, "stream.error", 1, 10).await;
    assert!(
        seen.iter().any(|(kind, e)| kind == "stream.error"
            && e["stream"] == large_id.as_str()
            && e["code"] == "INSUFFICIENT_STORAGE"),
        "{seen:?}"
    );

    // The room comes back: the film goes on by itself and plays whole.
    let freed = server.in_namespace("rm", &[&format!("{}/filler", data.display())]);
    assert!(freed.status.success());
    let back = until(&server, &large_id, 120, |s| s["state"] == "ready").await;
    assert!(back.get("error").is_none(), "{back}");
    let (status, _, bytes) = fetch(&large_url, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bytes == large, "every byte, after the disk had room again");
    let log = server.kill9();
    assert!(!log.contains("panicked"), "{log}");
}

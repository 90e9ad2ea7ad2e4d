//! The stream registry (SQLite in `data_dir/registry.db`): kill -9 in the middle of a burst of
//! creations and deletions loses nothing that was acknowledged; the old `streams.json` is
//! imported once; a damaged registry stops startup with a message naming the file, its backup
//! and what to do; a missing registry never costs downloaded data.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::{process::*, support::*};

/// Limits off (the burst would hit them) and a short metadata wait (nobody seeds the magnets).
const BURST_ENV: &[(&str, &str)] = &[
    ("MAGNETAR__ENGINE__METADATA_WAIT", "20ms"),
    ("MAGNETAR__LIMITS__STREAMS_PER_MINUTE", "0"),
    ("MAGNETAR__LIMITS__API_PER_MINUTE", "0"),
    ("MAGNETAR__LIMITS__MAX_STREAMS_PER_USER", "0"),
    ("MAGNETAR__LIMITS__MAX_STREAMS", "0"),
];

/// A magnet nobody seeds, distinct per `n`, whose tracker (at `tracker`) never answers: the
/// stream stays resolving.
fn magnet(n: u64, tracker: u16) -> String {
    format!(
        "magnet:?xt=urn:btih:{:040x}&dn=burst{n}&tr=http%3A%2F%2F127.0.0.1%3A{tracker}%2Fannounce",
        n * 0x9e37_79b9 + 1
    )
}

/// A tracker that accepts connections and never answers (held until the test ends).
fn silent_tracker() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    port
}

#[derive(Default)]
struct Acknowledged {
    created: BTreeSet<(String, String)>,
    deleted: BTreeSet<(String, String)>,
    /// Deletions sent: those without an answer (in flight at the kill) may have happened.
    deleting: BTreeSet<(String, String)>,
}

/// One client of the burst: creates streams and deletes every third one it created, recording
/// only what the server acknowledged.
async fn burst(
    base: String,
    user: String,
    token: String,
    seed: u64,
    tracker: u16,
    acked: Arc<Mutex<Acknowledged>>,
) {
    let http = client();
    let mut mine = Vec::new();
    for n in 0.. {
        let body = json!({ "magnet": magnet(seed * 10_000 + n, tracker) });
        let created = http
            .post(format!("{base}/api/v1/streams"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await;
        let Ok(response) = created else { return };
        if matches!(response.status().as_u16(), 201 | 202) {
            let Ok(stream) = response.json::<Value>().await else {
                return;
            };
            let id = stream["id"].as_str().unwrap().to_owned();
            acked
                .lock()
                .unwrap()
                .created
                .insert((user.clone(), id.clone()));
            mine.push(id);
        }
        if n % 3 == 2 && !mine.is_empty() {
            let id = mine.remove(0);
            acked
                .lock()
                .unwrap()
                .deleting
                .insert((user.clone(), id.clone()));
            let deleted = http
                .delete(format!("{base}/api/v1/streams/{id}"))
                .bearer_auth(&token)
                .send()
                .await;
            let Ok(response) = deleted else { return };
            if response.status() == StatusCode::NO_CONTENT {
                acked.lock().unwrap().deleted.insert((user.clone(), id));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_nine_during_a_burst_of_creations_and_deletions_loses_nothing_acknowledged() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let server = ServerProcess::start(&data, BURST_ENV).await;
    let users: Vec<String> = (0..6).map(|u| format!("user{u}")).collect();
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let tracker = silent_tracker();
    let mut clients = Vec::new();
    for (seed, user) in users.iter().enumerate() {
        let task = burst(
            server.base.clone(),
            user.clone(),
            server.token(user),
            seed as u64,
            tracker,
            acked.clone(),
        );
        clients.push(tokio::spawn(task));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // Killed with requests in flight: those were never acknowledged either way.
    let log = server.kill9();
    for client in &clients {
        client.abort();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.created.len() > 30 && acked.deleted.len() > 10,
        "a real burst: {} created, {} deleted\n{log}",
        acked.created.len(),
        acked.deleted.len()
    );

    let server = ServerProcess::start(&data, BURST_ENV).await;
    let mut found = BTreeSet::new();
    for user in &users {
        let response = client()
            .get(server.url("/api/v1/streams"))
            .bearer_auth(server.token(user))
            .send()
            .await
            .unwrap();
        let (status, list) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "{list}");
        for stream in list["streams"].as_array().unwrap() {
            found.insert((user.clone(), stream["id"].as_str().unwrap().to_owned()));
        }
    }
    // Acknowledged and never asked to go (a deletion in flight at the kill may or may not
    // have happened: it was not acknowledged either way).
    let kept: BTreeSet<_> = acked.created.difference(&acked.deleting).cloned().collect();
    let lost: Vec<_> = kept.difference(&found).collect();
    let back: Vec<_> = acked.deleted.intersection(&found).collect();
    println!(
        "kill -9 after {} acknowledged creations and {} deletions: {} streams after restart",
        acked.created.len(),
        acked.deleted.len(),
        found.len()
    );
    assert!(lost.is_empty(), "acknowledged streams lost: {lost:?}");
    assert!(back.is_empty(), "acknowledged deletions undone: {back:?}");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_streams_json_is_imported_once() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let legacy = json!({"version": 1, "streams": [{
        "id": "st_0123456789abcdef0123", "user": "alice",
        "info_hash": "0123456789abcdef0123456789abcdef01234567", "name": "Old.Movie",
        "magnet": "magnet:?xt=urn:btih:0123456789abcdef0123456789abcdef01234567",
        "requested": null, "peers": [], "file_index": null, "created_at": 1_700_000_000u64,
        "token": "old-token", "token_expires_at": 1_700_003_600u64, "failure": null
    }]});
    std::fs::write(data.join("streams.json"), legacy.to_string()).unwrap();
    let server = TestServer::start_with(&data, |c| {
        c.engine.metadata_wait = Duration::from_millis(50);
    })
    .await;
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(
        list["streams"][0]["id"], "st_0123456789abcdef0123",
        "{list}"
    );
    assert_eq!(list["streams"][0]["name"], "Old.Movie");
    assert!(!data.join("streams.json").exists());
    assert!(data.join("streams.json.migrated").exists(), "kept, renamed");
    server.stop().await;
    let server = TestServer::start(&data).await;
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(
        list["streams"].as_array().unwrap().len(),
        1,
        "imported once"
    );
    server.stop().await;
}

#[test]
fn a_damaged_registry_stops_startup_naming_the_file_its_backup_and_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("registry.db"),
        b"this is not a database, just garbage",
    )
    .unwrap();
    let (status, log) = failed_start(&data, &[]);
    assert!(!status.success());
    let registry = data.join("registry.db");
    for needle in [
        registry.to_str().unwrap(),
        "registry.db.bak",
        "move",
        "downloaded data is kept",
    ] {
        assert!(log.contains(needle), "{needle:?} not in: {log}");
    }

    // The old registry cut short (as a crash or a full disk leaves it) is named, not deleted.
    std::fs::remove_file(&registry).unwrap();
    let text = r#"{"version": 1, "streams": [{"id": "st_1", "user": "alice","#;
    std::fs::write(data.join("streams.json"), text).unwrap();
    let (status, log) = failed_start(&data, &[]);
    assert!(!status.success());
    let legacy = data.join("streams.json");
    assert!(log.contains(legacy.to_str().unwrap()), "{log}");
    assert!(log.contains("move it aside"), "{log}");
    assert!(legacy.exists(), "never deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_registry_never_costs_downloaded_data() {
    let root = tempfile::tempdir().unwrap();
    let film = pattern(3 << 20, 5);
    let dir = write_tree(root.path(), "Film", &[("film.mkv", film.clone())]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let data = root.path().join("data");
    let server = TestServer::start(&data).await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let (_, _, body) = fetch(&server.direct(&stream), None).await;
    assert!(body == film);
    server
        .wait_state("alice", stream["id"].as_str().unwrap(), "ready", 30)
        .await;
    server.stop().await;
    let downloaded = data
        .join("downloads")
        .join(stream["info_hash"].as_str().unwrap());
    let file = find_file(&downloaded, "film.mkv").expect("the downloaded file");
    assert_eq!(std::fs::read(&file).unwrap(), film);

    // The registry is removed (lost, or moved aside after damage): the data stays.
    for name in [
        "registry.db",
        "registry.db-wal",
        "registry.db-shm",
        "registry.db.bak",
    ] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let server = TestServer::start(&data).await;
    let (_, list) = server.get_api("alice", "/api/v1/streams").await;
    assert_eq!(list["streams"], json!([]), "an empty registry");
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        film,
        "downloaded data is never deleted because the registry is empty"
    );
    // Asking for it again plays it from what is on disk.
    let again = server.stream_of("alice", &seeded.magnet).await;
    let (_, _, body) = fetch(&server.direct(&again), None).await;
    assert!(body == film);
    server.stop().await;
}

/// The path of the file named `name` somewhere under `dir`.
fn find_file(dir: &std::path::Path, name: &str) -> Option<std::path::PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
    }
    None
}

//! A swarm that goes away and comes back: the only seeder stops for 20 s in the middle of a
//! film. A player (retrying with ranges, as players do) gets the rest within seconds of the
//! seeder's return — the engine looks for peers at once while a reader waits with none
//! connected, instead of waiting out librqbit's back-off (measured before: 85 s) — and the
//! stream says so as it happens: `stream.stalled`, `progress.stalled`, `playback.underrun`,
//! then `stream.resumed`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt;

use crate::support::*;

/// How long the seeder stays away.
const OUTAGE: Duration = Duration::from_secs(20);

/// A player reading `url` from the start to `len`, reconnecting with a range after any error;
/// returns the bytes and when each chunk arrived.
async fn player(url: String, len: usize, arrivals: Arc<Mutex<Vec<Instant>>>) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len);
    let deadline = Instant::now() + Duration::from_secs(180);
    while bytes.len() < len && Instant::now() < deadline {
        let request = client()
            .get(&url)
            .header("Range", format!("bytes={}-", bytes.len()))
            .send()
            .await;
        let Ok(response) = request else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        if !response.status().is_success() {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        let mut body = response.bytes_stream();
        while let Some(Ok(chunk)) = body.next().await {
            arrivals.lock().unwrap().push(Instant::now());
            bytes.extend_from_slice(&chunk);
        }
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_swarm_that_comes_back_is_noticed_at_once_and_the_stall_is_reported() {
    let root = tempfile::tempdir().unwrap();
    let film = pattern(20 << 20, 61);
    let dir = write_tree(root.path(), "Film", &[("film.mkv", film.clone())]);
    let rate = Some(2 << 20);
    let seeder = magnetar::seeder::Seeder::start(rate).await.unwrap();
    let seeded = seeder.seed_with(&dir, Some(256 * 1024)).await.unwrap();
    let addr = seeder.addr;
    let server = TestServer::start(&root.path().join("data")).await;
    let events = server.events("alice").await;
    let stream = server.stream_of("alice", &seeded.magnet).await;
    let id = stream["id"].as_str().unwrap().to_owned();
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let playing = tokio::spawn(player(server.direct(&stream), film.len(), arrivals.clone()));
    let stream_path = format!("/api/v1/streams/{id}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while server.get_api("alice", &stream_path).await.1["progress"]["bytes"]
        .as_u64()
        .unwrap_or(0)
        < 4 << 20
    {
        assert!(Instant::now() < deadline, "never got going");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    seeder.stop().await;
    drop(seeder);
    tokio::time::sleep(OUTAGE / 2).await;
    let (_, during) = server.get_api("alice", &stream_path).await;
    assert_eq!(during["progress"]["stalled"], true, "{during}");
    assert!(during["stats"]["stalls"].as_u64().unwrap() >= 1, "{during}");
    tokio::time::sleep(OUTAGE / 2).await;

    // The seeder comes back where it was, with the same torrent.
    let back = Instant::now();
    let seeder = loop {
        match magnetar::seeder::Seeder::start_at(addr, rate).await {
            Ok(seeder) => break seeder,
            Err(_) if back.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(err) => panic!("the seeder cannot listen on {addr} again: {err:#}"),
        }
    };
    let again = seeder.seed_with(&dir, Some(256 * 1024)).await.unwrap();
    assert_eq!(again.info_hash, seeded.info_hash);
    let bytes = tokio::time::timeout(Duration::from_secs(120), playing)
        .await
        .expect("the film finishes")
        .unwrap();
    assert!(bytes == film, "every byte, across the outage");
    let first_after = arrivals
        .lock()
        .unwrap()
        .iter()
        .copied()
        .find(|at| *at > back)
        .expect("data after the seeder came back");
    let noticed = first_after - back;
    println!("the seeder came back; data flowed again after {noticed:?}");
    assert!(
        noticed < Duration::from_secs(15),
        "noticed {noticed:?} after the swarm came back"
    );

    let seen = read_events(events, "stream.resumed", 1, 10).await;
    let kinds: Vec<&str> = seen.iter().map(|(kind, _)| kind.as_str()).collect();
    let stalled = kinds.iter().position(|k| *k == "stream.stalled");
    let resumed = kinds.iter().position(|k| *k == "stream.resumed");
    assert!(
        matches!((stalled, resumed), (Some(s), Some(r)) if s < r),
        "stalled, then resumed: {kinds:?}"
    );
    assert!(kinds.contains(&"playback.underrun"), "{kinds:?}");
    let (_, after) = server.get_api("alice", &stream_path).await;
    assert_eq!(after["progress"]["stalled"], false, "{after}");
    server.stop().await;
    seeder.stop().await;
}

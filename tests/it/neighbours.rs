//! Households share one address: a neighbour's stale client retrying expired and forged
//! credentials (an old playback secret, a URL cut short, a token from another server) for two
//! minutes, five times a second, costs another user on the same address nothing — every one
//! of their range requests (bytes compared) and API calls passes — while the stale client's
//! failures are answered by the brute-force block's cheap 429.

use std::time::{Duration, Instant};

use magnetar::auth::{PlaybackKeys, Role};
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::*;

const PLAYBACK_SECRET: &str = "household-playback-secret";
/// How long the neighbour keeps retrying (the issue's measurement: 2 minutes).
const RETRYING: Duration = Duration::from_secs(120);

/// The neighbour's stale requests, tried in turn.
struct Stale {
    forged_api: String,
    expired_api: String,
    old_secret_url: String,
    cut_url: String,
    expired_url: String,
}

impl Stale {
    fn request(&self, base: &str, n: usize) -> reqwest::RequestBuilder {
        let api = |token: &str| {
            client()
                .get(format!("{base}/api/v1/streams"))
                .bearer_auth(token)
        };
        match n % 5 {
            0 => api(&self.forged_api),
            1 => api(&self.expired_api),
            2 => client().get(&self.old_secret_url),
            3 => client().get(&self.cut_url),
            _ => client().get(&self.expired_url),
        }
    }
}

/// `direct` with its token replaced by `token`.
fn with_token(direct: &str, token: &str) -> String {
    let (before, after) = direct.split_once("/s/").unwrap();
    let rest = &after[after.find('/').unwrap()..];
    format!("{before}/s/{token}{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stale_client_on_a_shared_address_never_locks_out_another_user() {
    let root = tempfile::tempdir().unwrap();
    let film = pattern(8 << 20, 77);
    let dir = write_tree(root.path(), "Film", &[("film.mp4", film.clone())]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start_with(&root.path().join("data"), |c| {
        c.auth.playback_secret = PLAYBACK_SECRET.into();
    })
    .await;
    let alice = server.stream_of("alice", &seeded.magnet).await;
    let bob = server.stream_of("bob", &seeded.magnet).await;
    let bob_id = bob["id"].as_str().unwrap();
    let bob_direct = server.direct(&bob);
    let keys = magnetar::api_keys(&server.config).unwrap();
    let short =
        |secret: &str| PlaybackKeys::new(secret.as_bytes(), Duration::from_secs(1), Duration::ZERO);
    let stale = Stale {
        forged_api: hs_forged("bob"),
        expired_api: keys
            .issue("bob", Role::User, Duration::from_secs(1))
            .unwrap(),
        old_secret_url: with_token(
            &bob_direct,
            &short("an-older-secret").issue("bob", bob_id).unwrap().token,
        ),
        cut_url: with_token(&bob_direct, &bob_direct.split("/s/").nth(1).unwrap()[..40]),
        expired_url: with_token(
            &bob_direct,
            &short(PLAYBACK_SECRET).issue("bob", bob_id).unwrap().token,
        ),
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    let deadline = Instant::now() + RETRYING;
    let neighbour = {
        let base = server.base.clone();
        tokio::spawn(async move {
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let status = stale.request(&base, n).send().await.unwrap().status();
                *statuses.entry(status.as_u16()).or_default() += 1;
                n += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            statuses
        })
    };

    let (alice_id, alice_direct) = (alice["id"].as_str().unwrap(), server.direct(&alice));
    let (mut ranges, mut calls, mut refused) = (0, 0, Vec::new());
    let mut offset: usize = 12_345;
    let mut last_call = Instant::now() - Duration::from_secs(2);
    while Instant::now() < deadline {
        offset = (offset * 7 + 1_048_573) % (film.len() - 65_536);
        let range = format!("bytes={offset}-{}", offset + 65_535);
        let (status, _, body) = fetch(&alice_direct, Some(&range)).await;
        ranges += 1;
        if status != StatusCode::PARTIAL_CONTENT || body != film[offset..offset + 65_536] {
            refused.push(format!("range {range}: {status}"));
        }
        if last_call.elapsed() >= Duration::from_secs(1) {
            last_call = Instant::now();
            let (status, body) = server
                .get_api("alice", &format!("/api/v1/streams/{alice_id}"))
                .await;
            calls += 1;
            if status != StatusCode::OK {
                refused.push(format!("API call: {status} {body}"));
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let statuses = neighbour.await.unwrap();
    println!("alice: {ranges} ranges, {calls} API calls; neighbour's answers: {statuses:?}");
    assert!(
        ranges > 500 && calls > 60,
        "alice kept playing: {ranges} ranges, {calls} calls"
    );
    assert!(
        refused.is_empty(),
        "alice was refused {} times: {:?}",
        refused.len(),
        &refused[..refused.len().min(5)]
    );
    assert!(
        statuses.get(&429).copied().unwrap_or(0) > 100,
        "the block still makes the neighbour's failures cheap: {statuses:?}"
    );
    assert!(
        statuses.keys().all(|s| [401, 429].contains(s)),
        "every stale request is refused: {statuses:?}"
    );
    server.stop().await;
}

/// An HS256 API token for `user` signed with a secret the server does not have.
fn hs_forged(user: &str) -> String {
    let claims: Value = serde_json::json!({"sub": user, "exp": 4_000_000_000u64});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"another server's secret"),
    )
    .unwrap()
}

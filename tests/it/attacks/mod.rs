//! The attack battery: hostile requests against real servers — forged, expired and
//! algorithm-confused API tokens, tampered and foreign playback URLs, other users' streams,
//! admin routes without the role, path traversal, unsafe, garbage and oversized .torrent
//! files, oversize and malformed JSON — each expecting its status and stable code from
//! `API.md` in our error JSON. Only the cases marked as controls may succeed.
//!
//! The servers turn the per-IP brute-force block and the per-user API rate limits off (the
//! battery fires hundreds of failing requests from 127.0.0.1; the limits have their own tests).
//! Traversal paths go over a raw socket, because an HTTP client normalises `..` and `%2e%2e`
//! before sending. Every mismatch is collected, so one run reports all of them. A body that
//! could crash the server process is sent from a child process running an ignored test.
//!
//! This module owns the runner (`Battery`, `Want`, `Row`), the helpers the attacks share
//! (token forging, server configs, playback URL parts) and the tests. The attacks live in
//! `tokens` (API, key-confusion and playback tokens), `inputs` (traversal paths, .torrent and
//! JSON bodies) and `access` (other users' streams, admin routes).

mod access;
mod inputs;
mod tokens;

use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use magnetar::config::Config;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

use access::{admin_attacks, isolation_attacks};
use inputs::{json_attacks, torrent_attacks, traversal_attacks};
use tokens::{api_token_attacks, key_confusion_attacks, playback_attacks};

const SECRET: &str = "attack-battery-api-secret";
const PLAYBACK_SECRET: &str = "attack-battery-playback-secret";
const ISSUER: &str = "https://idp.magnetar.test";
const AUDIENCE: &str = "magnetar-api";
const HEX: &str = "08ada5a7a6183aae1e09d831df6748d566095a10";
const BITTORRENT: &str = "application/x-bittorrent";
const MAX_TORRENT_BYTES: usize = 64 * 1024;
const MAX_FILES: usize = 1000;
/// Nesting depth of the bencode bomb: 30 KB, under every size limit.
const NEST_DEPTH: usize = 30_000;
const RSA_PRIVATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa-private.pem");
const RSA_PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/rsa-public.pem");
const ED_PRIVATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/keys/ed25519-private.pem"
);
const ED_PUBLIC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys/ed25519-public.pem");

// ---------------------------------------------------------------------------------------------
// The battery: runs cases, judges them, tallies

/// What a case must get.
#[derive(Debug, Clone, Copy)]
enum Want {
    /// An error answer: status and code, in our JSON shape.
    Refused(u16, &'static str),
    /// A refusal to `HEAD`: the status only, as HEAD answers carry no body.
    RefusedHead(u16),
    /// A control case that must succeed with this status.
    Control(u16),
}

const AUTH_FAILED: Want = Want::Refused(401, "AUTH_FAILED");
const BAD_REQUEST: Want = Want::Refused(400, "BAD_REQUEST");
const INVALID_TORRENT: Want = Want::Refused(400, "INVALID_TORRENT");
const INVALID_MAGNET: Want = Want::Refused(400, "INVALID_MAGNET");
const STREAM_NOT_FOUND: Want = Want::Refused(404, "STREAM_NOT_FOUND");
const FILE_NOT_FOUND: Want = Want::Refused(404, "FILE_NOT_FOUND");
const FORBIDDEN: Want = Want::Refused(403, "FORBIDDEN");
const AUTH_REQUIRED: Want = Want::Refused(401, "AUTH_REQUIRED");

/// A table row: the case's name, what varies, and the expected answer.
type Row<T> = (&'static str, T, Want);

#[derive(Default)]
struct Battery {
    cases: usize,
    accepted: Vec<String>,
    failures: Vec<String>,
}

impl Battery {
    /// Runs a table: each row's value is turned into a request by `request`.
    async fn run<T>(
        &mut self,
        prefix: &str,
        table: Vec<Row<T>>,
        request: impl Fn(T) -> RequestBuilder,
    ) {
        for (name, value, want) in table {
            self.send(&format!("{prefix}{name}"), request(value), want)
                .await;
        }
    }

    /// Sends one request and judges the answer; returns the body as JSON (or a string).
    async fn send(&mut self, name: &str, request: RequestBuilder, want: Want) -> Value {
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        self.judge(name, status, &text, want)
    }

    /// Sends `method path` verbatim over a socket (no client-side path normalisation).
    async fn raw(&mut self, server: &TestServer, method: &str, path: &str, want: Want) {
        let (status, text) = raw_request(server, method, path).await;
        self.judge(&format!("{method} {path}"), status, &text, want);
    }

    fn judge(&mut self, name: &str, status: StatusCode, text: &str, want: Want) -> Value {
        self.cases += 1;
        let body = serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        let verdict = std::panic::catch_unwind(AssertUnwindSafe(|| match want {
            Want::Refused(code_status, code) => assert_error(status, &body, code_status, code),
            Want::RefusedHead(expected) | Want::Control(expected) => {
                assert_eq!(status.as_u16(), expected, "{body}")
            }
        }));
        if status.is_success() && !matches!(want, Want::Control(..)) {
            self.accepted.push(name.to_owned());
        }
        let leaked = text.contains("root:x:") || text.contains("[package]");
        if verdict.is_err() || leaked {
            let shown: String = text.chars().take(300).collect();
            let shown = if leaked {
                "FILE CONTENTS LEAKED"
            } else {
                &shown
            };
            self.failures
                .push(format!("{name}: want {want:?}, got {status} {shown}"));
        }
        body
    }

    /// A check that is not an HTTP answer (a property of a control answer, a child process).
    fn require(&mut self, what: &str, ok: bool, detail: impl std::fmt::Display) {
        if !ok {
            self.failures.push(format!("{what}: {detail}"));
        }
    }

    fn finish(self) {
        println!(
            "attack battery: {} cases, {} accepted",
            self.cases,
            self.accepted.len()
        );
        assert!(
            self.accepted.is_empty() && self.failures.is_empty(),
            "accepted attacks: {:#?}\nfailed cases: {:#?}",
            self.accepted,
            self.failures
        );
    }
}

/// One HTTP/1.1 request with the path exactly as given; status and body text.
async fn raw_request(server: &TestServer, method: &str, path: &str) -> (StatusCode, String) {
    let addr = server.base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer))
        .await
        .expect("the server answers in time")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .unwrap_or_else(|| panic!("no HTTP status line in {head:?}"));
    (status, body.to_owned())
}

// ---------------------------------------------------------------------------------------------
// Forging tokens

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Valid API claims for `sub` on the main server (configured issuer and audience).
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "iat": now(), "iss": ISSUER, "aud": AUDIENCE})
}

/// `claims` with `key` set to `value`, or removed when `value` is null.
fn with(mut claims: Value, key: &str, value: Value) -> Value {
    let map = claims.as_object_mut().unwrap();
    if value.is_null() {
        map.remove(key);
    } else {
        map.insert(key.to_owned(), value);
    }
    claims
}

fn sign(alg: Algorithm, key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, key).unwrap()
}

fn hs(secret: &[u8], claims: &Value) -> String {
    sign(Algorithm::HS256, &EncodingKey::from_secret(secret), claims)
}

fn pem(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

fn rsa(alg: Algorithm, claims: &Value) -> String {
    sign(
        alg,
        &EncodingKey::from_rsa_pem(&pem(RSA_PRIVATE)).unwrap(),
        claims,
    )
}

fn ed(claims: &Value) -> String {
    let key = EncodingKey::from_ed_pem(&pem(ED_PRIVATE)).unwrap();
    sign(Algorithm::EdDSA, &key, claims)
}

/// An unsigned token: `alg: none`, empty signature.
fn unsigned(claims: &Value) -> String {
    let header = json!({"alg": "none", "typ": "JWT"}).to_string();
    let payload = claims.to_string();
    format!(
        "{}.{}.",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    )
}

/// Base64url without padding (the `base64` crate is not a dependency of the tests).
fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
        }
    }
    out
}

/// `token` with one base64url character changed in its payload (`part` 1) or signature (2).
fn tamper(token: &str, part: usize) -> String {
    let at = token.match_indices('.').nth(part - 1).unwrap().0 + 10;
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// `signed`'s header and signature around `other`'s payload.
fn swap_payload(signed: &str, other: &str) -> String {
    let parts: Vec<&str> = signed.split('.').collect();
    let payload = other.split('.').nth(1).unwrap();
    format!("{}.{payload}.{}", parts[0], parts[2])
}

// ---------------------------------------------------------------------------------------------
// Servers

fn open_limits(c: &mut Config) {
    c.limits.auth_failures_per_minute = 0;
    c.limits.unauthenticated_per_minute = 0;
    c.limits.api_per_minute = 0;
    c.limits.streams_per_minute = 0;
}

/// The main target: HS256 with known secrets, issuer and audience required, small limits.
fn main_config(c: &mut Config) {
    open_limits(c);
    c.auth.jwt_secret = SECRET.into();
    c.auth.playback_secret = PLAYBACK_SECRET.into();
    c.auth.issuer = ISSUER.into();
    c.auth.audience = AUDIENCE.into();
    c.limits.max_torrent_bytes = MAX_TORRENT_BYTES;
    c.limits.max_files = MAX_FILES;
}

/// A server that only accepts `alg` tokens verified with the public key at `public`.
async fn key_server(dir: &Path, alg: &str, public: &str) -> TestServer {
    TestServer::start_with(dir, |c| {
        open_limits(c);
        c.auth.algorithms = vec![alg.to_owned()];
        c.auth.public_key_file = PathBuf::from(public);
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// The tests: the battery, and the child-process probe it runs

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_attack_battery_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let data = pattern(50_000, 21);
    let dir = write_tree(root.path(), "Target", &[("target.mp4", data.clone())]);
    let (_seeder, seeded) = seed(&dir, None).await;
    let server = TestServer::start_with(&root.path().join("data"), main_config).await;
    let mut battery = Battery::default();

    api_token_attacks(&mut battery, &server).await;
    key_confusion_attacks(&mut battery, root.path()).await;
    let alice = server.stream_of("alice", &seeded.magnet).await;
    playback_attacks(&mut battery, &server, &alice).await;
    traversal_attacks(&mut battery, &server, &alice).await;
    let bob = server.stream_of("bob", &seeded.magnet).await;
    isolation_attacks(&mut battery, &server, &alice, &data).await;
    torrent_attacks(&mut battery, &server, &seeded.torrent_bytes).await;
    json_attacks(&mut battery, &server).await;
    admin_attacks(&mut battery, &server, &alice, &bob).await;
    bencode_bomb(&mut battery).await;

    server.stop().await;
    battery.finish();
}

/// The token part and file name of a stream's direct URL.
fn playback_parts(stream: &Value) -> (String, String) {
    let direct = stream["urls"]["direct"].as_str().unwrap();
    let rest = &direct[direct.find("/s/").unwrap() + 3..];
    let (token, name) = rest.split_once('/').unwrap();
    (token.to_owned(), name.to_owned())
}

/// A deeply nested .torrent body, sent by a child process: a parser that recurses without a
/// bound overflows the stack and aborts the whole process, which must not be this one.
async fn bencode_bomb(battery: &mut Battery) {
    let mut command = tokio::process::Command::new(std::env::current_exe().unwrap());
    let probe = "attacks::a_deeply_nested_torrent_is_refused";
    command.args(["--ignored", "--exact", probe, "--nocapture"]);
    let (status, log) = run_tool(command, 120).await;
    battery.cases += 1;
    let tail: Vec<&str> = log.lines().rev().take(6).collect();
    battery.require(
        &format!("streams: .torrent nested {NEST_DEPTH} deep, want {INVALID_TORRENT:?}"),
        status.success() && log.contains("1 passed"),
        format!("child process {status}: {}", tail.join(" | ")),
    );
}

/// Run by the battery in a child process; crashes the process running it if the server does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by the attack battery in a child process: a crash must not end the suite"]
async fn a_deeply_nested_torrent_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(root.path(), open_limits).await;
    let response = client()
        .post(server.url("/api/v1/streams"))
        .bearer_auth(server.token("alice"))
        .header("Content-Type", BITTORRENT)
        .body("l".repeat(NEST_DEPTH))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_error(status, &body, 400, "INVALID_TORRENT");
    server.stop().await;
}

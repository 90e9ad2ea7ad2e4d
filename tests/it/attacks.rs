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

use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use magnetar::{auth::Role, config::Config};
use reqwest::{header::HeaderValue, Method, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

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
// Hand-made .torrent files

/// A bencode value; dictionary keys are sorted when encoded, as the format requires.
enum Ben {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Ben>),
    Dict(Vec<(&'static str, Ben)>),
}

impl Ben {
    fn str(text: &str) -> Self {
        Ben::Bytes(text.as_bytes().to_vec())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Ben::Int(n) => out.extend(format!("i{n}e").bytes()),
            Ben::Bytes(bytes) => {
                out.extend(format!("{}:", bytes.len()).bytes());
                out.extend(bytes);
            }
            Ben::List(items) => {
                out.push(b'l');
                items.iter().for_each(|item| item.encode(out));
                out.push(b'e');
            }
            Ben::Dict(entries) => {
                let mut sorted: Vec<_> = entries.iter().collect();
                sorted.sort_by_key(|(key, _)| *key);
                out.push(b'd');
                for (key, value) in sorted {
                    Ben::str(key).encode(out);
                    value.encode(out);
                }
                out.push(b'e');
            }
        }
    }
}

/// A .torrent around `info`, with one piece hash and a piece length added when missing. The
/// hash bytes must not be UTF-8: lava_torrent reads UTF-8 byte strings as text.
fn torrent_of(mut info: Vec<(&'static str, Ben)>) -> Vec<u8> {
    if !info.iter().any(|(key, _)| *key == "pieces") {
        info.push(("pieces", Ben::Bytes(vec![0xff; 20])));
    }
    if !info.iter().any(|(key, _)| *key == "piece length") {
        info.push(("piece length", Ben::Int(16384)));
    }
    let mut out = Vec::new();
    Ben::Dict(vec![("info", Ben::Dict(info))]).encode(&mut out);
    out
}

/// A single-file torrent named `name`, `length` bytes long.
fn single(name: &str, length: i64) -> Vec<u8> {
    torrent_of(vec![("name", Ben::str(name)), ("length", Ben::Int(length))])
}

/// A multi-file torrent `evil` whose files (one byte each) have these path components.
fn multi<S: AsRef<str>>(paths: &[&[S]]) -> Vec<u8> {
    let files = paths
        .iter()
        .map(|path| {
            let parts = path.iter().map(|part| Ben::str(part.as_ref())).collect();
            Ben::Dict(vec![("length", Ben::Int(1)), ("path", Ben::List(parts))])
        })
        .collect();
    torrent_of(vec![
        ("name", Ben::str("evil")),
        ("files", Ben::List(files)),
    ])
}

/// A one-byte torrent with a raw `pieces` value or `piece length`.
fn pieces(hashes: Vec<u8>, piece_length: i64) -> Vec<u8> {
    torrent_of(vec![
        ("name", Ben::str("x.mkv")),
        ("length", Ben::Int(1)),
        ("pieces", Ben::Bytes(hashes)),
        ("piece length", Ben::Int(piece_length)),
    ])
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
// The attacks

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

/// Authorization headers and bearer tokens against `GET /api/v1/streams` (HS256 server).
async fn api_token_attacks(battery: &mut Battery, server: &TestServer) {
    let list = server.url("/api/v1/streams");
    let good = claims("alice");
    let secret = SECRET.as_bytes();
    let signed = hs(secret, &good);
    let set = |key: &str, value: Value| hs(secret, &with(good.clone(), key, value));
    let token_scheme = HeaderValue::from_str(&format!("Token {signed}")).unwrap();
    let non_utf8 = HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
    #[rustfmt::skip]
    let headers: Vec<Row<Option<HeaderValue>>> = vec![
        ("no Authorization", None, AUTH_REQUIRED),
        ("Basic scheme", Some(HeaderValue::from_static("Basic YTpi")), AUTH_FAILED),
        ("Bearer with no token", Some(HeaderValue::from_static("Bearer")), AUTH_FAILED),
        ("Token scheme", Some(token_scheme), AUTH_FAILED),
        ("non-UTF-8 header", Some(non_utf8), AUTH_FAILED),
    ];
    battery
        .run("", headers, |value| match value {
            Some(value) => client().get(&list).header("Authorization", value),
            None => client().get(&list),
        })
        .await;
    let other = hs(b"x", &claims("bob"));
    let stripped = signed[..=signed.rfind('.').unwrap()].to_owned();
    let hs512 = sign(Algorithm::HS512, &EncodingKey::from_secret(secret), &good);
    let playback_key = hs(PLAYBACK_SECRET.as_bytes(), &good);
    #[rustfmt::skip]
    let tokens: Vec<Row<String>> = vec![
        ("valid HS256 token (control)", signed.clone(), Want::Control(200)),
        ("garbage token", "garbage".into(), AUTH_FAILED),
        ("empty segments", "..".into(), AUTH_FAILED),
        ("four segments", format!("{signed}.AAAA"), AUTH_FAILED),
        ("8 KiB token", "a".repeat(8192), AUTH_FAILED),
        ("wrong signature", hs(b"not-the-secret", &good), AUTH_FAILED),
        ("tampered payload", tamper(&signed, 1), AUTH_FAILED),
        ("tampered signature", tamper(&signed, 2), AUTH_FAILED),
        ("bob's payload, alice's signature", swap_payload(&signed, &other), AUTH_FAILED),
        ("signature stripped", stripped, AUTH_FAILED),
        ("alg none", unsigned(&good), AUTH_FAILED),
        ("HS512 with the right secret", hs512, AUTH_FAILED),
        ("signed with the playback secret", playback_key, AUTH_FAILED),
        ("expired", set("exp", json!(now() - 120)), AUTH_FAILED),
        ("not yet valid (nbf)", set("nbf", json!(now() + 3600)), AUTH_FAILED),
        ("wrong aud", set("aud", json!("someone-else")), AUTH_FAILED),
        ("no aud", set("aud", Value::Null), AUTH_FAILED),
        ("wrong iss", set("iss", json!("https://evil.example")), AUTH_FAILED),
        ("no iss", set("iss", Value::Null), AUTH_FAILED),
        ("no sub", set("sub", Value::Null), AUTH_FAILED),
        ("empty sub", set("sub", json!("")), AUTH_FAILED),
        ("sub with a control character", set("sub", json!("ali\u{1}ce")), AUTH_FAILED),
        ("sub of 300 characters", set("sub", json!("a".repeat(300))), AUTH_FAILED),
        ("sub not a string", set("sub", json!(42)), AUTH_FAILED),
        ("no exp", set("exp", Value::Null), AUTH_FAILED),
        ("exp as a string", set("exp", json!("9999999999")), AUTH_FAILED),
        ("unknown role root", set("role", json!("root")), AUTH_FAILED),
        ("role Admin (wrong case)", set("role", json!("Admin")), AUTH_FAILED),
        ("role as a list", set("role", json!(["admin"])), AUTH_FAILED),
    ];
    battery
        .run("", tokens, |token| client().get(&list).bearer_auth(token))
        .await;
}

/// HS/RS confusion and algorithm allow-lists on an RS256-only and an EdDSA-only server.
async fn key_confusion_attacks(battery: &mut Battery, root: &Path) {
    let good = claims("alice");
    let expired = with(good.clone(), "exp", json!(now() - 120));
    let rs256 = rsa(Algorithm::RS256, &good);
    let to_bob = swap_payload(&rs256, &rsa(Algorithm::RS256, &claims("bob")));
    #[rustfmt::skip]
    let rs_table: Vec<Row<String>> = vec![
        ("genuine RS256 (control)", rs256.clone(), Want::Control(200)),
        ("HS256 keyed with the RSA public PEM", hs(&pem(RSA_PUBLIC), &good), AUTH_FAILED),
        ("alg none", unsigned(&good), AUTH_FAILED),
        ("PS256 with the same RSA key", rsa(Algorithm::PS256, &good), AUTH_FAILED),
        ("genuine EdDSA", ed(&good), AUTH_FAILED),
        ("expired RS256", rsa(Algorithm::RS256, &expired), AUTH_FAILED),
        ("RS256 with bob's payload", to_bob, AUTH_FAILED),
    ];
    #[rustfmt::skip]
    let ed_table: Vec<Row<String>> = vec![
        ("genuine EdDSA (control)", ed(&good), Want::Control(200)),
        ("genuine RS256", rs256, AUTH_FAILED),
        ("HS256 keyed with the Ed25519 public PEM", hs(&pem(ED_PUBLIC), &good), AUTH_FAILED),
        ("alg none", unsigned(&good), AUTH_FAILED),
        ("expired EdDSA", ed(&expired), AUTH_FAILED),
    ];
    let servers = [
        ("RS256", RSA_PUBLIC, rs_table),
        ("EdDSA", ED_PUBLIC, ed_table),
    ];
    for (alg, public, table) in servers {
        let server = key_server(&root.join(alg), alg, public).await;
        let list = server.url("/api/v1/streams");
        let prefix = format!("{alg} server: ");
        battery
            .run(&prefix, table, |token| {
                client().get(&list).bearer_auth(token)
            })
            .await;
        server.stop().await;
    }
}

/// The token part and file name of a stream's direct URL.
fn playback_parts(stream: &Value) -> (String, String) {
    let direct = stream["urls"]["direct"].as_str().unwrap();
    let rest = &direct[direct.find("/s/").unwrap() + 3..];
    let (token, name) = rest.split_once('/').unwrap();
    (token.to_owned(), name.to_owned())
}

/// Forged, foreign, expired and misused playback tokens on alice's file.
async fn playback_attacks(battery: &mut Battery, server: &TestServer, alice: &Value) {
    let (token, name) = playback_parts(alice);
    let id = alice["id"].as_str().unwrap();
    let genuine = json!({"sub": "alice", "sid": id, "aud": "magnetar-playback",
                         "exp": now() + 3600, "iat": now()});
    let secret = PLAYBACK_SECRET.as_bytes();
    let set = |key: &str, value: Value| hs(secret, &with(genuine.clone(), key, value));
    let other_keys =
        magnetar::auth::PlaybackKeys::new(b"other", Duration::from_secs(60), Duration::ZERO);
    let other_key = other_keys.issue("alice", id).unwrap().token;
    #[rustfmt::skip]
    let table: Vec<Row<String>> = vec![
        ("alice's playback URL (control)", token.clone(), Want::Control(200)),
        ("tampered payload", tamper(&token, 1), AUTH_FAILED),
        ("tampered signature", tamper(&token, 2), AUTH_FAILED),
        ("signed by another key", other_key, AUTH_FAILED),
        ("expired", set("exp", json!(now() - 120)), Want::Refused(401, "URL_EXPIRED")),
        ("garbage token", "not-a-token".into(), AUTH_FAILED),
        ("alice's API token", server.token("alice"), AUTH_FAILED),
        ("API claims under the playback key", hs(secret, &claims("alice")), AUTH_FAILED),
        ("no aud", set("aud", Value::Null), AUTH_FAILED),
        ("alg none", unsigned(&genuine), AUTH_FAILED),
        ("3000-character token", "a".repeat(3000), AUTH_FAILED),
        ("genuine key, bob named on alice's stream", set("sub", json!("bob")), STREAM_NOT_FOUND),
        ("genuine key, unknown stream", set("sid", json!("st_nope")), STREAM_NOT_FOUND),
    ];
    battery
        .run("playback: ", table, |token| {
            client().get(server.url(&format!("/s/{token}/{name}")))
        })
        .await;
}

/// Paths that try to leave the stream's file, sent verbatim.
async fn traversal_attacks(battery: &mut Battery, server: &TestServer, alice: &Value) {
    let (token, name) = playback_parts(alice);
    let tails = [
        "../../etc/passwd".to_owned(),
        "%2e%2e%2fetc%2fpasswd".to_owned(),
        "%2e%2e/%2e%2e/etc/passwd".to_owned(),
        "..%2f..%2fCargo.toml".to_owned(),
        "..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd".to_owned(),
        "..%5c..%5cCargo.toml".to_owned(),
        "/etc/passwd".to_owned(),
        "%2Fetc%2Fpasswd".to_owned(),
        "%00".to_owned(),
        format!("{name}%00.txt"),
        format!("{name}/../../../etc/passwd"),
        "playlist.m3u/../../Cargo.toml".to_owned(),
    ];
    for tail in &tails {
        let path = format!("/s/{token}/{tail}");
        battery.raw(server, "GET", &path, FILE_NOT_FOUND).await;
    }
    let head = format!("/s/{token}/../../etc/passwd");
    battery
        .raw(server, "HEAD", &head, Want::RefusedHead(404))
        .await;
    let invalid_utf8 = format!("/s/{token}/%ff%fe");
    battery.raw(server, "GET", &invalid_utf8, BAD_REQUEST).await;
    let as_token = "/s/..%2f..%2fetc%2fpasswd/passwd";
    battery.raw(server, "GET", as_token, AUTH_FAILED).await;
}

/// Bob, with a valid token, against every route of alice's stream.
async fn isolation_attacks(battery: &mut Battery, server: &TestServer, alice: &Value, data: &[u8]) {
    let id = alice["id"].as_str().unwrap();
    #[rustfmt::skip]
    let table: Vec<Row<(Method, String)>> = vec![
        ("GET alice's stream", (Method::GET, id.to_owned()), STREAM_NOT_FOUND),
        ("refresh alice's stream", (Method::POST, format!("{id}/refresh")), STREAM_NOT_FOUND),
        ("DELETE alice's stream", (Method::DELETE, id.to_owned()), STREAM_NOT_FOUND),
        ("GET alice's id with a NUL", (Method::GET, format!("{id}%00")), STREAM_NOT_FOUND),
        ("GET alice's id behind ..%2f", (Method::GET, format!("..%2f{id}")), STREAM_NOT_FOUND),
        ("list (control)", (Method::GET, String::new()), Want::Control(200)),
    ];
    battery
        .run("bob: ", table, |(method, tail)| {
            let path = format!("/api/v1/streams/{tail}");
            client()
                .request(method, server.url(path.trim_end_matches('/')))
                .bearer_auth(server.token("bob"))
        })
        .await;
    let (_, list) = server.get_api("bob", "/api/v1/streams").await;
    let ids: Vec<&Value> = list["streams"]
        .as_array()
        .map_or(vec![], |all| all.iter().map(|s| &s["id"]).collect());
    let hidden = !ids.contains(&&alice["id"]);
    battery.require("bob's list leaves out alice's stream", hidden, &list);
    let (status, _, body) = fetch(&server.direct(alice), None).await;
    let plays = status == StatusCode::OK && body == data;
    battery.require(
        "alice's stream still plays after bob's attempts",
        plays,
        status,
    );
}

/// Unsafe, garbage and oversized .torrent bodies on both endpoints that take them.
async fn torrent_attacks(battery: &mut Battery, server: &TestServer, genuine: &[u8]) {
    let many: Vec<[String; 1]> = (0..2 * MAX_FILES).map(|i| [format!("f{i:04}")]).collect();
    let many: Vec<&[String]> = many.iter().map(|path| &path[..]).collect();
    let truncated = genuine[..genuine.len() / 2].to_vec();
    let oversize = vec![b'd'; MAX_TORRENT_BYTES + 4096];
    #[rustfmt::skip]
    let table: Vec<Row<Vec<u8>>> = vec![
        ("`..` component", multi(&[&["..", "passwd"]]), INVALID_TORRENT),
        ("`.` component", multi(&[&[".", "x.mkv"]]), INVALID_TORRENT),
        ("absolute component", multi(&[&["/etc/passwd"]]), INVALID_TORRENT),
        ("separator inside a component", multi(&[&["a/../../b.mkv"]]), INVALID_TORRENT),
        ("backslash traversal", multi(&[&["..\\..\\x.mkv"]]), INVALID_TORRENT),
        ("two files on one path once empty components go", multi(&[&["a", "", "b.mkv"], &["a", "b.mkv"]]), INVALID_TORRENT),
        ("empty path", multi::<&str>(&[&[]]), INVALID_TORRENT),
        ("NUL in a component", multi(&[&["x\0.mkv"]]), INVALID_TORRENT),
        ("name `..`", single("..", 1), INVALID_TORRENT),
        ("name with `../`", single("../../evil.mkv", 1), INVALID_TORRENT),
        ("absolute name", single("/etc/passwd", 1), INVALID_TORRENT),
        ("negative length", single("x.mkv", -5), INVALID_TORRENT),
        ("piece hashes not 20 bytes", pieces(vec![0xff; 19], 16384), INVALID_TORRENT),
        ("piece length 0", pieces(vec![0xff; 20], 0), INVALID_TORRENT),
        ("random bytes", pattern(4096, 5), INVALID_TORRENT),
        ("empty body", vec![], INVALID_TORRENT),
        ("genuine torrent truncated", truncated, INVALID_TORRENT),
        ("a list, not a dict", b"li1ei2ee".to_vec(), INVALID_TORRENT),
        ("info is an integer", b"d4:infoi42ee".to_vec(), INVALID_TORRENT),
        ("info without pieces", b"d4:infod4:name3:abcee".to_vec(), INVALID_TORRENT),
        ("string length past the end", b"d4:infod4:name999:abcee".to_vec(), INVALID_TORRENT),
        ("more files than limits.max_files", multi(&many), INVALID_TORRENT),
        ("over limits.max_torrent_bytes", oversize, Want::Refused(413, "TORRENT_TOO_LARGE")),
    ];
    let post = |path: &str, body: Vec<u8>| {
        client()
            .post(server.url(path))
            .bearer_auth(server.token("alice"))
            .header("Content-Type", BITTORRENT)
            .body(body)
    };
    let parse = |body| post("/api/v1/torrents/parse", body);
    let control = vec![
        (
            "well-formed (control)",
            single("ok.mkv", 1),
            Want::Control(200),
        ),
        // Empty components are dropped, as librqbit does: ["", "passwd"] is `passwd`.
        (
            "empty component dropped (control)",
            multi(&[&["", "passwd"]]),
            Want::Control(200),
        ),
    ];
    battery.run("torrents/parse: ", control, parse).await;
    let (status, parsed) = json_of(parse(multi(&[&["", "passwd"]])).send().await.unwrap()).await;
    let path = parsed["files"][0]["path"].clone();
    battery.require(
        "empty component: path is `passwd`",
        status == 200 && path == "passwd",
        &parsed,
    );
    battery.run("torrents/parse: ", table.clone(), parse).await;
    battery
        .run("streams: ", table, |body| post("/api/v1/streams", body))
        .await;
}

fn to_body(value: Value) -> Vec<u8> {
    value.to_string().into_bytes()
}

/// Malformed, mistyped, oversize and mislabelled JSON bodies on both endpoints.
async fn json_attacks(battery: &mut Battery, server: &TestServer) {
    let magnet = format!("magnet:?xt=urn:btih:{HEX}");
    let valid = to_body(json!({ "magnet": magnet }));
    let field = |key: &str, value: Value| to_body(with(json!({ "magnet": magnet }), key, value));
    let long = |len: usize| field("magnet", json!(format!("{magnet}&dn={}", "a".repeat(len))));
    let peers: Vec<String> = (0..65).map(|i| format!("127.0.0.1:{}", 1000 + i)).collect();
    let twice = format!(r#"{{"magnet": "{magnet}", "magnet": "{magnet}"}}"#).into_bytes();
    let xl = format!("{magnet}&xl=99999999999999999999999");
    #[rustfmt::skip]
    let json_bodies: Vec<Row<Vec<u8>>> = vec![
        ("truncated JSON", br#"{"magnet": "magn"#.to_vec(), BAD_REQUEST),
        ("not JSON", b"{not json".to_vec(), BAD_REQUEST),
        ("a list", b"[]".to_vec(), BAD_REQUEST),
        ("null", b"null".to_vec(), BAD_REQUEST),
        ("a bare string", to_body(json!(magnet)), BAD_REQUEST),
        ("missing magnet", br#"{"file": 1}"#.to_vec(), BAD_REQUEST),
        ("magnet is a number", field("magnet", json!(7)), BAD_REQUEST),
        ("magnet is null", br#"{"magnet": null}"#.to_vec(), BAD_REQUEST),
        ("magnet twice", twice, BAD_REQUEST),
        ("file is an object", field("file", json!({"a": 1})), BAD_REQUEST),
        ("peers is a string", field("peers", json!("1.2.3.4:5")), BAD_REQUEST),
        ("65 peers", field("peers", json!(peers)), BAD_REQUEST),
        ("invalid UTF-8", b"{\"magnet\": \"\xff\xfe\"}".to_vec(), BAD_REQUEST),
        ("nested 10000 deep", "[".repeat(10_000).into_bytes(), BAD_REQUEST),
        ("over limits.max_json_bytes", long(70_000), BAD_REQUEST),
        ("magnet over limits.max_magnet_len", long(9000), INVALID_MAGNET),
        ("javascript: URI", field("magnet", json!("javascript:alert(1)")), INVALID_MAGNET),
        ("magnet with a NUL", field("magnet", json!(format!("{magnet}\0"))), INVALID_MAGNET),
        ("xl overflow", field("magnet", json!(xl)), INVALID_MAGNET),
    ];
    let mut table: Vec<Row<(&str, Vec<u8>)>> = json_bodies
        .into_iter()
        .map(|(name, body, want)| (name, ("application/json", body), want))
        .collect();
    #[rustfmt::skip]
    table.extend([
        ("no body, no content type", ("", vec![]), BAD_REQUEST),
        ("text/plain", ("text/plain", valid.clone()), BAD_REQUEST),
        ("application/xml", ("application/xml", b"<magnet/>".to_vec()), BAD_REQUEST),
        ("multipart", ("multipart/form-data; boundary=x", b"--x--".to_vec()), BAD_REQUEST),
    ]);
    let post = |path: &str, (content_type, body): (&str, Vec<u8>)| {
        let request = client()
            .post(server.url(path))
            .bearer_auth(server.token("alice"));
        match content_type {
            "" => request.body(body),
            _ => request.header("Content-Type", content_type).body(body),
        }
    };
    let parse = |body| post("/api/v1/torrents/parse", body);
    let control = vec![(
        "a magnet (control)",
        ("application/json", valid),
        Want::Control(200),
    )];
    battery.run("torrents/parse: ", control, parse).await;
    battery.run("torrents/parse: ", table.clone(), parse).await;
    battery
        .run("streams: ", table, |body| post("/api/v1/streams", body))
        .await;
}

/// Admin routes without the role, then an admin listing and deleting alice's stream.
async fn admin_attacks(battery: &mut Battery, server: &TestServer, alice: &Value, bob: &Value) {
    let id = alice["id"].as_str().unwrap();
    let admin = magnetar::api_keys(&server.config)
        .unwrap()
        .issue("root", Role::Admin, Duration::from_secs(600))
        .unwrap();
    let role_user = hs(
        SECRET.as_bytes(),
        &with(claims("alice"), "role", json!("user")),
    );
    let forged = hs(
        b"not-the-secret",
        &with(claims("root"), "role", json!("admin")),
    );
    let list = "/api/v1/admin/streams";
    let one = format!("{list}/{id}");
    let unknown = format!("{list}/st_nope");
    let as_admin = Some(admin.clone());
    #[rustfmt::skip]
    let table: Vec<Row<(Method, &str, Option<String>)>> = vec![
        ("list, no role claim", (Method::GET, list, Some(server.token("alice"))), FORBIDDEN),
        ("list, role user", (Method::GET, list, Some(role_user.clone())), FORBIDDEN),
        ("delete, no role claim", (Method::DELETE, &one, Some(server.token("bob"))), FORBIDDEN),
        ("delete, role user", (Method::DELETE, &one, Some(role_user)), FORBIDDEN),
        ("list, no token", (Method::GET, list, None), AUTH_REQUIRED),
        ("list, forged admin token", (Method::GET, list, Some(forged)), AUTH_FAILED),
        ("delete unknown stream", (Method::DELETE, &unknown, as_admin.clone()), STREAM_NOT_FOUND),
        ("list every stream (control)", (Method::GET, list, as_admin), Want::Control(200)),
    ];
    battery
        .run("admin: ", table, |(method, path, token)| {
            let request = client().request(method, server.url(path));
            match token {
                Some(token) => request.bearer_auth(token),
                None => request,
            }
        })
        .await;
    let (_, all) = json_of(
        client()
            .get(server.url(list))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let owners: Vec<(Value, Value)> = all["streams"].as_array().map_or(vec![], |all| {
        all.iter()
            .map(|s| (s["id"].clone(), s["user"].clone()))
            .collect()
    });
    for (stream, user) in [(alice, "alice"), (bob, "bob")] {
        let listed = owners.contains(&(stream["id"].clone(), json!(user)));
        let what = format!("the admin list shows {user}'s stream as {user}'s");
        battery.require(&what, listed, &all);
    }
    let deletion = client().delete(server.url(&one)).bearer_auth(&admin);
    let control = Want::Control(204);
    battery
        .send("admin: delete alice's stream (control)", deletion, control)
        .await;
    let after = client().get(server.direct(alice));
    battery
        .send(
            "alice's URL after the admin delete",
            after,
            STREAM_NOT_FOUND,
        )
        .await;
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

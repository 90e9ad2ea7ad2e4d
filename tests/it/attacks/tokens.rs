//! Token attacks: malformed Authorization headers, forged, expired and mis-claimed API
//! tokens, HS/RS/EdDSA key confusion, and forged or foreign playback tokens.

use std::{path::Path, time::Duration};

use jsonwebtoken::{Algorithm, EncodingKey};
use reqwest::header::HeaderValue;
use serde_json::{json, Value};

use super::{
    claims, ed, hs, key_server, now, pem, playback_parts, rsa, sign, swap_payload, tamper,
    unsigned, with, Battery, Row, Want, AUTH_FAILED, AUTH_REQUIRED, ED_PUBLIC, PLAYBACK_SECRET,
    RSA_PUBLIC, SECRET, STREAM_NOT_FOUND,
};
use crate::support::*;

/// Authorization headers and bearer tokens against `GET /api/v1/streams` (HS256 server).
pub(super) async fn api_token_attacks(battery: &mut Battery, server: &TestServer) {
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
pub(super) async fn key_confusion_attacks(battery: &mut Battery, root: &Path) {
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

/// Forged, foreign, expired and misused playback tokens on alice's file.
pub(super) async fn playback_attacks(battery: &mut Battery, server: &TestServer, alice: &Value) {
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

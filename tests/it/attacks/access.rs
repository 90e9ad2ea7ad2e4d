//! Access attacks: bob against alice's stream, and admin routes without (and with) the role.

use std::time::Duration;

use magnetar::auth::Role;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use super::{
    claims, hs, with, Battery, Row, Want, AUTH_FAILED, AUTH_REQUIRED, FORBIDDEN, SECRET,
    STREAM_NOT_FOUND,
};
use crate::support::*;

/// Bob, with a valid token, against every route of alice's stream.
pub(super) async fn isolation_attacks(
    battery: &mut Battery,
    server: &TestServer,
    alice: &Value,
    data: &[u8],
) {
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

/// Admin routes without the role, then an admin listing and deleting alice's stream.
pub(super) async fn admin_attacks(
    battery: &mut Battery,
    server: &TestServer,
    alice: &Value,
    bob: &Value,
) {
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

//! Input attacks: traversal paths sent verbatim, unsafe, garbage and oversized .torrent files
//! (and the bencode builder that makes them), and malformed or oversize JSON bodies.

use serde_json::{json, Value};

use super::{
    playback_parts, with, Battery, Row, Want, AUTH_FAILED, BAD_REQUEST, BITTORRENT, FILE_NOT_FOUND,
    HEX, INVALID_MAGNET, INVALID_TORRENT, MAX_FILES, MAX_TORRENT_BYTES,
};
use crate::support::*;

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

/// Paths that try to leave the stream's file, sent verbatim.
pub(super) async fn traversal_attacks(battery: &mut Battery, server: &TestServer, alice: &Value) {
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

/// Unsafe, garbage and oversized .torrent bodies on both endpoints that take them.
pub(super) async fn torrent_attacks(battery: &mut Battery, server: &TestServer, genuine: &[u8]) {
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
pub(super) async fn json_attacks(battery: &mut Battery, server: &TestServer) {
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

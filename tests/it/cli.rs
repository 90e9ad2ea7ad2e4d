//! The `magnetar` binary: token, config (redacted), invalid config, and the demo's playable URL.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::*;

fn magnetar(data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_magnetar"));
    command.env("MAGNETAR__STORAGE__DATA_DIR", data_dir);
    command
}

#[test]
fn token_prints_a_jwt_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let out = magnetar(dir.path())
        .args(["token", "--user", "carol", "--ttl", "1h"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap();
    let mut config = test_config(dir.path());
    config.storage.data_dir = dir.path().to_owned();
    let caller = magnetar::api_keys(&config)
        .unwrap()
        .verify(token.trim())
        .unwrap();
    assert_eq!(caller.user, "carol");
    let secret = dir.path().join("jwt.secret");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(secret).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn token_signs_admin_tokens_with_a_configured_eddsa_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");
    let out = magnetar(dir.path())
        .args(["token", "--user", "root", "--role", "admin"])
        .env("MAGNETAR__AUTH__ALGORITHMS", "[\"EdDSA\"]")
        .env(
            "MAGNETAR__AUTH__PUBLIC_KEY_FILE",
            format!("{keys}/ed25519-public.pem"),
        )
        .env(
            "MAGNETAR__AUTH__PRIVATE_KEY_FILE",
            format!("{keys}/ed25519-private.pem"),
        )
        .env("MAGNETAR__AUTH__ISSUER", "https://id.example")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let token = String::from_utf8(out.stdout).unwrap();
    let mut config = test_config(dir.path());
    config.auth.algorithms = vec!["EdDSA".into()];
    config.auth.public_key_file = format!("{keys}/ed25519-public.pem").into();
    config.auth.issuer = "https://id.example".into();
    let caller = magnetar::api_keys(&config)
        .unwrap()
        .verify(token.trim())
        .unwrap();
    assert_eq!(caller.user, "root");
    assert_eq!(caller.role, magnetar::auth::Role::Admin);
    assert!(
        !dir.path().join("jwt.secret").exists(),
        "no HS256 secret when HS256 is off"
    );

    let out = magnetar(dir.path())
        .args(["token", "--user", "root"])
        .env("MAGNETAR__AUTH__ALGORITHMS", "[\"EdDSA\"]")
        .env(
            "MAGNETAR__AUTH__PUBLIC_KEY_FILE",
            format!("{keys}/ed25519-public.pem"),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("private_key_file"));
}

#[test]
fn config_prints_effective_values_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let out = magnetar(dir.path())
        .arg("config")
        .env("MAGNETAR__AUTH__JWT_SECRET", "super-secret-value")
        .env("MAGNETAR__SERVER__LISTEN", "127.0.0.1:9999")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(!text.contains("super-secret-value"), "{text}");
    assert!(text.contains("<redacted>"));
}

#[test]
fn invalid_config_names_the_key_and_exits_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    for (key, value, named) in [
        (
            "MAGNETAR__ENGINE__METADATA_WAIT",
            "soonish",
            "metadata_wait",
        ),
        ("MAGNETAR__SERVER__LISTEN", "not-an-address", "listen"),
        ("MAGNETAR__ENGINE__MAX_READERS", "10", "engine.max_readers"),
    ] {
        let out = magnetar(dir.path())
            .arg("config")
            .env(key, value)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}={value} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.to_lowercase().contains(named), "{key}: {err}");
    }
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[engine]\nno_such_key = 1\n").unwrap();
    let out = magnetar(dir.path())
        .args(["config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_key"));
}

/// Kills the child when the test ends, however it ends.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_prints_a_url_that_plays() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child(
        magnetar(dir.path())
            .arg("demo")
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("MAGNETAR__SERVER__LISTEN", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("demo.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut url = None;
    while url.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            url = line.trim().strip_prefix("mpv ").map(str::to_owned);
        }
    }
    let log = || std::fs::read_to_string(dir.path().join("demo.log")).unwrap_or_default();
    let url = url.unwrap_or_else(|| panic!("the demo prints an mpv URL within 60 s:\n{}", log()));
    let response = client().get(&url).header("Range", "bytes=0-7").send().await;
    let response = response.unwrap_or_else(|e| panic!("{url}: {e}\ndemo log:\n{}", log()));
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap();
    assert_eq!(status.as_u16(), 206, "{url}");
    assert_eq!(headers["content-type"], "video/mp4");
    assert_eq!(&body[4..8], b"ftyp", "an MP4 starts with its ftyp box");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_health_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Child(
        magnetar(dir.path())
            .arg("serve")
            .env("MAGNETAR__SERVER__LISTEN", format!("127.0.0.1:{port}"))
            .env("MAGNETAR__ENGINE__DHT", "false")
            .env("MAGNETAR__ENGINE__PEER_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let health = format!("http://127.0.0.1:{port}/health");
    let mut healthy = false;
    for _ in 0..100 {
        if let Ok(response) = client().get(&health).send().await {
            healthy = response.status().is_success();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(healthy, "`magnetar serve` answers /health");
    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve stops within 20 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut log = String::new();
    use std::io::Read;
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(
        status.success(),
        "clean exit after SIGTERM: {status}\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
}

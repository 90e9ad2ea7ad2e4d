//! The `magnetar` binary as a separate process, for what only a real process shows: kill -9,
//! SIGTERM, startup errors and exit codes, resource limits.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::*;

/// A `magnetar serve` process on loopback (DHT off), killed when dropped.
pub struct ServerProcess {
    pub base: String,
    pub data: PathBuf,
    child: Child,
    log: PathBuf,
}

/// The command for `magnetar serve` on `data` with `env` added (`MAGNETAR__…` pairs).
pub fn serve_command(data: &Path, port: u16, env: &[(&str, &str)], log: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_magnetar"));
    command
        .arg("serve")
        .env("MAGNETAR__STORAGE__DATA_DIR", data)
        .env("MAGNETAR__SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("MAGNETAR__ENGINE__DHT", "false")
        .env("MAGNETAR__ENGINE__PEER_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl ServerProcess {
    /// Starts `magnetar serve` on `data` and waits (bounded) for `/health`.
    pub async fn start(data: &Path, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        std::fs::create_dir_all(data).unwrap();
        let log = data.with_extension(format!("log.{port}"));
        let child = serve_command(data, port, env, &log).spawn().unwrap();
        let mut server = Self {
            base: format!("http://127.0.0.1:{port}"),
            data: data.to_owned(),
            child,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(response) = client().get(server.url("/health")).send().await {
                if response.status().is_success() {
                    return server;
                }
            }
            if let Some(status) = server.child.try_wait().unwrap() {
                panic!("magnetar exited at start ({status}):\n{}", server.log());
            }
            assert!(Instant::now() < deadline, "no /health:\n{}", server.log());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// An API token for `user`, signed with the secret the server generated.
    pub fn token(&self, user: &str) -> String {
        let config = test_config(&self.data);
        magnetar::api_keys(&config)
            .unwrap()
            .issue(user, magnetar::auth::Role::User, Duration::from_secs(3600))
            .unwrap()
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kill -9, and waits for the process to be gone.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }

    /// SIGTERM, and waits (bounded) for a clean exit; returns the log.
    pub async fn terminate(mut self) -> String {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let log = self.log();
        assert!(
            status.success(),
            "clean exit after SIGTERM ({status}):\n{log}"
        );
        log
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `magnetar serve` on `data` expecting it to refuse to start; returns its exit status
/// and what it printed.
pub fn failed_start(data: &Path, env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let log = data.with_extension("failed.log");
    let mut child = serve_command(data, free_port(), env, &log).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "magnetar kept running:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

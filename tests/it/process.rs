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
    /// The API secret when given (a tmpfs data folder is not visible from here).
    jwt_secret: Option<String>,
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
        Self::start_wrapped(data, env, None).await
    }

    /// Starts `magnetar serve` with `data` on a tmpfs of `size` (e.g. `48m`) mounted in a mount
    /// namespace of its own (`unshare -m`, root only): the mount goes with the process. `env`
    /// must set `MAGNETAR__AUTH__JWT_SECRET` (the generated one would be out of sight).
    pub async fn start_on_tmpfs(data: &Path, size: &str, env: &[(&str, &str)]) -> Self {
        require_tool("unshare", "util-linux");
        Self::start_wrapped(data, env, Some(size)).await
    }

    async fn start_wrapped(data: &Path, env: &[(&str, &str)], tmpfs: Option<&str>) -> Self {
        let port = free_port();
        std::fs::create_dir_all(data).unwrap();
        let log = data.with_extension(format!("log.{port}"));
        let mut command = serve_command(data, port, env, &log);
        if let Some(size) = tmpfs {
            let inner = command;
            command = Command::new("unshare");
            command.args(["-m", "--propagation", "private", "sh", "-c"]);
            command.arg(format!(
                "mount -t tmpfs -o size={size} tmpfs \"$1\" && exec \"$0\" serve"
            ));
            command.arg(inner.get_program()).arg(data);
            for (key, value) in inner.get_envs() {
                match value {
                    Some(value) => command.env(key, value),
                    None => command.env_remove(key),
                };
            }
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap());
        }
        let child = command.spawn().unwrap();
        let jwt_secret = env
            .iter()
            .find(|(key, _)| *key == "MAGNETAR__AUTH__JWT_SECRET")
            .map(|(_, value)| value.to_string());
        let mut server = Self {
            base: format!("http://127.0.0.1:{port}"),
            data: data.to_owned(),
            child,
            log,
            jwt_secret,
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
        let mut config = test_config(&self.data);
        if let Some(secret) = &self.jwt_secret {
            config.auth.jwt_secret = secret.clone();
        }
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

    /// Runs `program args…` in the server's mount namespace (sees its tmpfs); root only.
    pub fn in_namespace(&self, program: &str, args: &[&str]) -> std::process::Output {
        require_tool("nsenter", "util-linux");
        Command::new("nsenter")
            .args(["-t", &self.child.id().to_string(), "-m", "--", program])
            .args(args)
            .output()
            .unwrap()
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

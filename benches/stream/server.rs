//! The server under test: `magnetar serve` as a child process with a fresh data folder
//! (loopback, DHT off, the configured rate limits off, or other [`Settings`]; warnings only in
//! its log unless `BENCH_SERVER_LOG` says otherwise), the API calls
//! the figures make on it, and its memory as `/proc` reports it. The range requests are
//! [`crate::client`]'s.

use std::{path::Path, process::Output, sync::OnceLock, time::Duration};

use anyhow::{bail, Context, Result};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{json, Value};
use tokio::process::Command;
use tokio::time::{sleep, timeout};

use crate::process::{free_port, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_magnetar");
const LIMIT_KEYS: [&str; 3] = ["api_per_minute", "streams_per_minute", "content_per_second"];
static LIMITS_OFF: OnceLock<Vec<String>> = OnceLock::new();

/// Turns off, for every server started after, those of [`LIMIT_KEYS`] that the server's
/// configuration has; returns them (none if `magnetar config` fails).
pub async fn turn_limits_off() -> Vec<String> {
    let off = limits_present().await.unwrap_or_default();
    let _ = LIMITS_OFF.set(off.clone());
    off
}

/// What a server runs with besides loopback, its own data folder and DHT off.
pub enum Settings {
    /// The limits [`turn_limits_off`] picked turned off (figures a–d).
    Bench,
    /// The configuration as it is, plus these `MAGNETAR__…` variables (figure e).
    With(Vec<(String, String)>),
    /// [`Settings::Bench`] plus these `MAGNETAR__…` variables (figure g: CORS).
    BenchWith(Vec<(String, String)>),
}

/// Starts a server with [`Settings::Bench`], runs `work` on it, then stops it; an error (the
/// start's or the work's) gets the end of the server's log attached.
pub async fn with_server<T>(work: impl AsyncFnOnce(&Server) -> Result<T>) -> Result<T> {
    with_server_as(Settings::Bench, work).await
}

/// [`with_server`] with other [`Settings`].
pub async fn with_server_as<T>(
    settings: Settings,
    work: impl AsyncFnOnce(&Server) -> Result<T>,
) -> Result<T> {
    let server = Server::start(settings).await?;
    let result = work(&server).await;
    server.finish(result).await
}

/// `magnetar serve` as a child process with its own data folder.
pub struct Server {
    proc: Proc,
    pub pid: u32,
    base: String,
    token: String,
    env: Vec<(String, String)>,
    pub client: Client,
}

impl Server {
    /// Starts the server, waits until it is healthy, and mints an API token for it.
    async fn start(settings: Settings) -> Result<Self> {
        let (port, dir) = (free_port()?, tempfile::tempdir()?);
        let env = server_env(port, &dir.path().join("data"), settings);
        let proc = Proc::spawn(dir, BIN, &["serve"], &env)?;
        let pid = proc.id().context("no pid")?;
        let base = format!("http://127.0.0.1:{port}");
        let (client, token) = (crate::client::client()?, String::new());
        let mut server = Server {
            proc,
            pid,
            base,
            token,
            env,
            client,
        };
        let ready = match server.wait_healthy().await {
            Ok(()) => token_for(&server.env, "bench").await,
            Err(err) => Err(err),
        };
        match ready {
            Ok(token) => server.token = token,
            Err(err) => return server.finish(Err(err)).await,
        }
        Ok(server)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let url = format!("{}/health", self.base);
        for _ in 0..400 {
            if let Some(status) = self.proc.exited() {
                bail!("magnetar serve exited early: {status}");
            }
            let answer = self.client.get(&url).send().await;
            if answer.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            sleep(Duration::from_millis(50)).await;
        }
        bail!("magnetar serve not healthy within 20 s")
    }

    /// `http://127.0.0.1:{port}`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// An API token for `user` (`magnetar token`).
    pub async fn token(&self, user: &str) -> Result<String> {
        token_for(&self.env, user).await
    }

    /// Everything the server wrote to its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.proc.path("log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        match path.starts_with('/') {
            true => format!("{}{path}", self.base),
            false => path.to_owned(),
        }
    }

    /// Sends `request` with the API token; the status and the body.
    async fn call(&self, request: RequestBuilder) -> Result<(StatusCode, String)> {
        self.call_as(&self.token, request).await
    }

    /// Sends `request` with `token`; the status and the body.
    async fn call_as(&self, token: &str, request: RequestBuilder) -> Result<(StatusCode, String)> {
        let response = request.bearer_auth(token).send().await?;
        Ok((response.status(), response.text().await?))
    }

    /// POST /api/v1/streams; returns the stream id and the absolute direct URL.
    pub async fn create(&self, magnet: &str) -> Result<(String, String)> {
        self.create_as(&self.token, magnet).await
    }

    /// [`Server::create`] as the user of `token`.
    pub async fn create_as(&self, token: &str, magnet: &str) -> Result<(String, String)> {
        let stream = self.stream_as(token, magnet).await?;
        let id = stream["id"].as_str().context("no id")?.to_owned();
        let direct = stream["urls"]["direct"]
            .as_str()
            .context("no urls.direct")?;
        Ok((id, self.url(direct)))
    }

    /// POST /api/v1/streams; the Stream object.
    pub async fn stream(&self, magnet: &str) -> Result<Value> {
        self.stream_as(&self.token, magnet).await
    }

    /// [`Server::stream`] as the user of `token`.
    pub async fn stream_as(&self, token: &str, magnet: &str) -> Result<Value> {
        let request = self.client.post(self.url("/api/v1/streams"));
        let request = request.json(&json!({ "magnet": magnet }));
        let (status, body) = self.call_as(token, request).await?;
        if status != 201 && status != 200 {
            bail!("POST /api/v1/streams answered {status}: {body}");
        }
        Ok(serde_json::from_str(&body)?)
    }

    /// A stream's absolute HLS master playlist URL for a browser (`?client=browser`).
    pub fn master_url(&self, stream: &Value) -> Result<String> {
        let hls = stream["urls"]["hls"].as_str().context("no urls.hls")?;
        Ok(format!("{}?client=browser", self.url(hls)))
    }

    /// DELETE /api/v1/streams/{id} (its HLS jobs end).
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.delete_as(&self.token, id).await
    }

    /// [`Server::delete`] as the user of `token`.
    pub async fn delete_as(&self, token: &str, id: &str) -> Result<()> {
        let request = self
            .client
            .delete(self.url(&format!("/api/v1/streams/{id}")));
        let (status, body) = self.call_as(token, request).await?;
        match status.as_u16() {
            204 => Ok(()),
            _ => bail!("DELETE /api/v1/streams/{id} answered {status}: {body}"),
        }
    }

    /// GET /api/v1/streams/{id}: the stream as JSON.
    pub async fn get_stream(&self, id: &str) -> Result<Value> {
        let request = self.client.get(self.url(&format!("/api/v1/streams/{id}")));
        let (status, body) = self.call(request).await?;
        match status.as_u16() {
            200 => Ok(serde_json::from_str(&body)?),
            _ => bail!("GET /api/v1/streams/{id} answered {status}: {body}"),
        }
    }

    /// Polls the stream until its `state` is "ready" (3 minutes at most).
    pub async fn wait_ready(&self, id: &str) -> Result<()> {
        for _ in 0..720 {
            let stream = self.get_stream(id).await?;
            match stream["state"].as_str() {
                Some("ready") => return Ok(()),
                Some("error") => bail!("stream failed: {stream}"),
                _ => sleep(Duration::from_millis(250)).await,
            }
        }
        bail!("stream not ready within 3 minutes")
    }

    /// Stops the child; an error gets the end of the server's log attached.
    async fn finish<T>(self, result: Result<T>) -> Result<T> {
        let result = result.map_err(|err| {
            let tail = self.proc.log_tail();
            err.context(format!("server log (last lines):\n{tail}\n"))
        });
        self.proc.stop().await;
        result
    }
}

/// The server's environment: loopback, its own data folder, DHT off, then `settings`.
fn server_env(port: u16, data: &Path, settings: Settings) -> Vec<(String, String)> {
    let data = data.display();
    let env = [
        format!("MAGNETAR__SERVER__LISTEN=127.0.0.1:{port}"),
        format!("MAGNETAR__STORAGE__DATA_DIR={data}"),
        "MAGNETAR__ENGINE__DHT=false".into(),
        "MAGNETAR__ENGINE__PEER_LISTEN=127.0.0.1:0".into(),
    ];
    let pair = |kv: &String| kv.split_once('=').map(|(k, v)| (k.into(), v.into()));
    let mut env: Vec<(String, String)> = env.iter().filter_map(pair).collect();
    // The server logs warnings only, unless `BENCH_SERVER_LOG` names a filter (with
    // `BENCH_LOGS=DIR` keeping the logs).
    let log = std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into());
    env.push(("RUST_LOG".into(), log));
    let limits_off = LIMITS_OFF.get().into_iter().flatten().map(|key| {
        let name = format!("MAGNETAR__LIMITS__{}", key.to_uppercase());
        (name, "0".to_owned())
    });
    match settings {
        Settings::Bench => env.extend(limits_off),
        Settings::With(more) => env.extend(more),
        Settings::BenchWith(more) => env.extend(limits_off.chain(more)),
    }
    env
}

/// Which of [`LIMIT_KEYS`] the server's configuration has (`magnetar config`).
async fn limits_present() -> Result<Vec<String>> {
    let output = magnetar(&["config"], &[]).await?;
    let config: toml::Value = toml::from_str(&String::from_utf8_lossy(&output.stdout))?;
    let limits = config.get("limits").context("no [limits]")?;
    let present = LIMIT_KEYS.iter().filter(|k| limits.get(**k).is_some());
    Ok(present.map(|k| k.to_string()).collect())
}

/// `magnetar token --user {user}` with the server's environment.
async fn token_for(env: &[(String, String)], user: &str) -> Result<String> {
    let output = magnetar(&["token", "--user", user], env).await?;
    let (out, err) = (&output.stdout, &output.stderr);
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(out).trim().to_owned()),
        false => bail!("magnetar token: {}", String::from_utf8_lossy(err)),
    }
}

/// `magnetar args` with `env` added, to the end (30 s at most).
async fn magnetar(args: &[&str], env: &[(String, String)]) -> Result<Output> {
    let mut command = Command::new(BIN);
    command.args(args).envs(env.iter().cloned());
    let output = command.kill_on_drop(true).output();
    Ok(timeout(Duration::from_secs(30), output).await??)
}

/// A `/proc/{pid}/status` field given in kB (`VmRSS`, `VmHWM`), in MiB; 0 if unreadable.
pub fn proc_mib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    kib / 1024
}

/// CPU time (user + system) the process has used, from `/proc/{pid}/stat` in clock ticks of
/// 10 ms (`CLK_TCK` is 100 on Linux); zero if unreadable.
pub fn proc_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces:
    // state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let field = |n: usize| -> u64 {
        let value = after.split_whitespace().nth(n - 3);
        value.and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    Duration::from_millis((field(14) + field(15)) * 10)
}

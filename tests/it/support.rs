//! Shared helpers: a real seeder session, the real server on 127.0.0.1:0 with a temporary
//! data folder (DHT off), real HTTP with reqwest, generated test data, and external tools
//! that must be installed (a missing tool fails the test with the install command).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use magnetar::{config::Config, seeder::Seeder};
use reqwest::{Response, StatusCode};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A running Magnetar on loopback.
pub struct TestServer {
    pub base: String,
    pub config: Config,
    /// The app's handles, for what only the inside can see (cache and disk figures).
    pub state: magnetar::http::AppState,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// The test configuration: loopback only, DHT off, short waits.
pub fn test_config(data_dir: &Path) -> Config {
    let mut config = Config::defaults().expect("defaults");
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.storage.data_dir = data_dir.to_owned();
    config.engine.dht = false;
    config.engine.peer_listen = "127.0.0.1:0".into();
    config.engine.metadata_wait = Duration::from_secs(10);
    config.engine.stall_timeout = Duration::from_secs(20);
    config.auth.leeway = Duration::ZERO;
    config
}

impl TestServer {
    /// Starts a server on `data_dir` with `tweak` applied to the test configuration.
    pub async fn start_with(data_dir: &Path, tweak: impl FnOnce(&mut Config)) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
        let mut config = test_config(data_dir);
        tweak(&mut config);
        let shutdown = CancellationToken::new();
        let running = magnetar::start(config.clone(), shutdown.clone())
            .await
            .expect("server starts");
        let base = format!("http://{}", running.addr);
        let state = running.state.clone();
        let task = tokio::spawn(running.wait());
        Self {
            base,
            config,
            state,
            shutdown,
            task,
        }
    }

    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, |_| {}).await
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server ran cleanly");
    }

    /// An API token for `user`.
    pub fn token(&self, user: &str) -> String {
        magnetar::api_keys(&self.config)
            .unwrap()
            .issue(user, magnetar::auth::Role::User, Duration::from_secs(3600))
            .unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// POSTs a magnet (and optional extra JSON fields) as `user`.
    pub async fn post_magnet(&self, user: &str, body: Value) -> (StatusCode, Value) {
        let response = client()
            .post(self.url("/api/v1/streams"))
            .bearer_auth(self.token(user))
            .json(&body)
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// GETs an API path as `user`.
    pub async fn get_api(&self, user: &str, path: &str) -> (StatusCode, Value) {
        let response = client()
            .get(self.url(path))
            .bearer_auth(self.token(user))
            .send()
            .await
            .unwrap();
        json_of(response).await
    }

    /// Polls the stream until `state` is `want` (at most `secs` seconds); returns its JSON.
    pub async fn wait_state(&self, user: &str, id: &str, want: &str, secs: u64) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let (_, stream) = self.get_api(user, &format!("/api/v1/streams/{id}")).await;
            if stream["state"] == want {
                return stream;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "stream never reached {want}: {stream}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `user`'s server-sent event stream (`GET /api/v1/events`), open.
    pub async fn events(&self, user: &str) -> Response {
        let response = client()
            .get(self.url("/api/v1/events"))
            .bearer_auth(self.token(user))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response
    }

    /// Creates a stream from a magnet and returns its JSON (asserting 201).
    pub async fn stream_of(&self, user: &str, magnet: &str) -> Value {
        let (status, body) = self
            .post_magnet(user, serde_json::json!({ "magnet": magnet }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// DELETEs a stream as `user`; returns the status.
    pub async fn delete(&self, user: &str, id: &str) -> StatusCode {
        client()
            .delete(self.url(&format!("/api/v1/streams/{id}")))
            .bearer_auth(self.token(user))
            .send()
            .await
            .unwrap()
            .status()
    }

    /// The absolute direct URL of a stream JSON.
    pub fn direct(&self, stream: &Value) -> String {
        self.url(stream["urls"]["direct"].as_str().expect("direct url"))
    }

    /// The absolute `/s/{token}` prefix of a stream's playback URLs.
    pub fn playback_base(&self, stream: &Value) -> String {
        let direct = self.direct(stream);
        direct[..direct.rfind('/').expect("a file name")].to_owned()
    }

    /// The stream's HLS master playlist URL for browsers.
    pub fn browser_master(&self, stream: &Value) -> String {
        format!(
            "{}/hls/master.m3u8?client=browser",
            self.playback_base(stream)
        )
    }
}

/// A client with bounded timeouts.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Status and JSON body of a response.
pub async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Asserts an error answer: status and code.
pub fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"]["code"], want_code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Pids of ffmpeg processes whose command line contains `marker`.
pub fn ffmpeg_pids(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let text = String::from_utf8_lossy(&cmdline);
            text.contains("ffmpeg") && text.contains(marker)
        })
        .collect()
}

/// GETs `url` until it is not a 503 (honouring `Retry-After`), at most `tries` times.
pub async fn until_ready(url: &str, tries: usize) -> (StatusCode, Vec<u8>, usize) {
    for attempt in 0..tries {
        let response = client().get(url).send().await.unwrap();
        let status = response.status();
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return (status, response.bytes().await.unwrap().to_vec(), attempt);
        }
        let (status, body) = json_of(response).await;
        assert_error(status, &body, 503, "PLAYLIST_NOT_READY");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    panic!("{url} still not ready after {tries} tries");
}

/// An ffmpeg command with a 96x54 test pattern at `fps` and a sine tone as inputs, both
/// `seconds` long, video encoded as fast H.264; the caller adds keyframes, audio and output.
pub fn test_pattern(
    seconds: impl std::fmt::Display,
    fps: impl std::fmt::Display,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new("ffmpeg");
    command
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=96x54:rate={fps}:duration={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!(
            "sine=frequency=440:sample_rate=48000:duration={seconds}"
        ))
        .args(["-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-pix_fmt", "yuv420p"]);
    command
}

/// Encodes `seconds` of small H.264 (a keyframe every 2 s) with `audio` into `dir/name/name.ext`.
pub async fn clip(dir: &Path, name: &str, ext: &str, seconds: u32, audio: &str) -> PathBuf {
    require_tool("ffmpeg", "ffmpeg");
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let mut command = test_pattern(seconds, 10);
    command
        .args(["-g", "20", "-keyint_min", "20", "-sc_threshold", "0"])
        .args(["-threads", "2", "-c:a", audio, "-b:a", "64k", "-ac", "1"])
        .arg(folder.join(format!("{name}.{ext}")));
    let (status, log) = run_tool(command, 120).await;
    assert!(status.success(), "ffmpeg could not make the clip: {log}");
    folder
}

/// The codecs (in stream order) and the duration of a media file, by ffprobe.
pub fn codecs_and_duration(file: &Path) -> (Vec<String>, f64) {
    let ffprobe = require_tool("ffprobe", "ffmpeg");
    let out = std::process::Command::new(ffprobe)
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
        ])
        .args(["-of", "json"])
        .arg(file)
        .output()
        .unwrap();
    let probe: Value = serde_json::from_slice(&out.stdout).unwrap();
    let codecs = probe["streams"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s["codec_name"].as_str().unwrap_or("").to_owned())
        .collect();
    let duration = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or(0.0);
    (codecs, duration)
}

/// A playlist's non-comment lines.
pub fn uris(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Deterministic pseudo-random bytes (xorshift), so every byte position is distinctive.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `files` (relative path, bytes) under a new folder `name` in `root`.
pub fn write_tree(root: &Path, name: &str, files: &[(&str, Vec<u8>)]) -> PathBuf {
    let dir = root.join(name);
    for (path, bytes) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    dir
}

/// The committed fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Fails (never skips) when an external tool is missing.
pub fn require_tool(tool: &str, package: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("`{tool}` is required for this test: install it with `apt-get install -y {package}`")
    })
}

/// Starts a seeder and seeds `path`.
pub async fn seed(path: &Path, upload_bps: Option<u32>) -> (Seeder, magnetar::seeder::Seeded) {
    let seeder = Seeder::start(upload_bps).await.expect("seeder starts");
    let seeded = seeder.seed(path).await.expect("seeding");
    (seeder, seeded)
}

/// GETs a URL with an optional Range header; returns status, headers and body.
pub async fn fetch(
    url: &str,
    range: Option<&str>,
) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = client().get(url);
    if let Some(range) = range {
        request = request.header("Range", range);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.unwrap().to_vec();
    (status, headers, body)
}

/// Runs an external tool to completion within `secs`; returns its exit status and its
/// stdout + stderr as one log.
pub async fn run_tool(
    mut command: tokio::process::Command,
    secs: u64,
) -> (std::process::ExitStatus, String) {
    command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(secs), command.output())
        .await
        .expect("the tool finishes in time")
        .expect("the tool runs");
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, log)
}

/// Reads server-sent events from `response` until `want` events of type `until` have come
/// (or `secs` pass); returns every `(type, data)` seen.
pub async fn read_events(
    response: reqwest::Response,
    until: &str,
    want: usize,
    secs: u64,
) -> Vec<(String, Value)> {
    use futures::StreamExt;
    let mut body = response.bytes_stream();
    let (mut text, mut events) = (String::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while events
        .iter()
        .filter(|(t, _): &&(String, Value)| t == until)
        .count()
        < want
    {
        let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, body.next()).await else {
            break;
        };
        text.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let field = |name: &str| {
                block
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned()))
            };
            if let (Some(kind), Some(data)) = (field("event:"), field("data:")) {
                events.push((kind, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

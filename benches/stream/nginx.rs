//! The nginx baseline: nginx on 127.0.0.1 serving a folder at full speed and, under
//! `/capped/`, at [`SLOW_BPS`] per connection, with an access log of the bytes and ranges
//! it sent, answering any origin (CORS). Figure (c) compares throughput with it; (b′) counts
//! what mpv asks it for; (g) plays a static HLS from it.

use std::{path::Path, time::Duration};

use anyhow::{bail, Context, Result};
use tokio::time::sleep;

use crate::process::{free_port, install, mpv, Proc};
use crate::SLOW_BPS;

/// A running nginx: the process and its base URL.
pub struct Nginx(Proc, String);

/// What nginx served to one mpv run: the ranges (start, body bytes), all bytes sent
/// (headers included), and mpv's wall time.
pub type Served = (Vec<(u64, u64)>, u64, Duration);

impl Nginx {
    /// Starts nginx on a free port serving `root` at `/`, and at `/capped/` at [`SLOW_BPS`].
    pub async fn start(root: &Path) -> Result<Self> {
        let (port, root) = (free_port()?, root.display());
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; user root;
            error_log {d}/error.log warn; pid {d}/nginx.pid;
            events {{ worker_connections 1024; }}
            http {{ log_format sent '$bytes_sent $body_bytes_sent $http_range';
                access_log {d}/access.log sent; client_body_temp_path {d}/body; sendfile on;
                types {{ video/mp4 mp4 m4s; video/x-matroska mkv;
                    application/vnd.apple.mpegurl m3u8; }}
                server {{ listen 127.0.0.1:{port}; root {root};
                    add_header Access-Control-Allow-Origin * always;
                    location /capped/ {{ alias {root}/; limit_rate {SLOW_BPS}; }} }} }}"
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let (prefix, conf_path) = (d.to_string(), conf_path.display().to_string());
        let args = ["-e", "stderr", "-p", &prefix, "-c", &conf_path];
        let proc = Proc::spawn(dir, "nginx", &args, &[]);
        let mut proc = proc.context(install("nginx", "nginx-light"))?;
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Ok(Nginx(proc, format!("http://127.0.0.1:{port}")));
            }
            if let Some(status) = proc.exited() {
                bail!("nginx exited {status}: {}", proc.log_tail());
            }
            sleep(Duration::from_millis(50)).await;
        }
        proc.stop().await;
        bail!("nginx did not listen within 5 s")
    }

    /// The nginx process's id (0 if it is gone).
    pub fn pid(&self) -> u32 {
        self.0.id().unwrap_or(0)
    }

    /// The URL of `path` (relative to the served folder; `capped/…` for the slow one).
    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.1)
    }

    /// Runs mpv against `path`: what nginx served it (see [`Served`]).
    pub async fn mpv(&self, path: &str) -> Result<Served> {
        let log = self.0.path("access.log");
        std::fs::write(&log, "")?;
        let wall = mpv(&self.url(path)).await?;
        // nginx logs a request once it notices the closed connection (a capped one may be
        // sleeping on its rate timer).
        sleep(Duration::from_millis(1500)).await;
        let (mut ranges, mut sent) = (Vec::new(), 0);
        for line in std::fs::read_to_string(&log)?.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let number = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            let range = fields.get(2).and_then(|r| r.strip_prefix("bytes="));
            let start = range.and_then(|r| r.split('-').next()?.parse().ok());
            ranges.push((start.unwrap_or(0), number(1).unwrap_or(0)));
            sent += number(0).unwrap_or(0);
        }
        Ok((ranges, sent, wall))
    }

    pub async fn stop(self) {
        self.0.stop().await;
    }
}

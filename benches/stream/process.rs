//! Child processes: [`Proc`], a long-running child (the server, nginx) with its own folder
//! and log, and the one-shot tools (mpv, ffmpeg, node, wrk), each bounded by a timeout and
//! killed on drop. What the children are for belongs to the figures and to [`crate::server`]
//! and [`crate::nginx`].

use std::{
    path::{Path, PathBuf},
    process::{Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::timeout;

use crate::STEP;

/// A child process with its own temporary folder (its files, logs); killed on drop too.
pub struct Proc {
    child: Child,
    dir: TempDir,
    program: String,
}

impl Proc {
    /// Starts `program args` with `env`, stdout and stderr to `dir/log`.
    pub fn spawn(
        dir: TempDir,
        program: &str,
        args: &[&str],
        env: &[(String, String)],
    ) -> Result<Self> {
        let log = std::fs::File::create(dir.path().join("log"))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .envs(env.iter().cloned())
            .stdin(Stdio::null());
        command
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        let name = Path::new(program).file_name().unwrap_or_default();
        Ok(Proc {
            child: command.spawn()?,
            dir,
            program: name.to_string_lossy().into_owned(),
        })
    }

    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// `name` in the child's folder.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the child's output.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Kills the child; with `BENCH_LOGS=DIR` set, its log is kept as `DIR/{program}-{pid}.log`.
    pub async fn stop(mut self) {
        let pid = self.id().unwrap_or(0);
        let _ = self.child.start_kill();
        crate::wait_stopped(self.child.wait()).await;
        if let Some(dir) = std::env::var_os("BENCH_LOGS") {
            let _ = std::fs::create_dir_all(&dir);
            let kept = Path::new(&dir).join(format!("{}-{pid}.log", self.program));
            let _ = std::fs::copy(self.path("log"), kept);
        }
    }
}

/// `mpv --start=60 --frames=1` wall time (exit 0 required, 120 s at most).
pub async fn mpv(url: &str) -> Result<Duration> {
    let args = "--no-config --ytdl=no --vo=null --ao=null --frames=1 --start=60";
    let mut command = Command::new("mpv");
    command.args(args.split(' ')).arg(url);
    let started = Instant::now();
    let output = tool_output(command, STEP, ("mpv", "mpv")).await?;
    let wall = started.elapsed();
    if !output.status.success() {
        let out = String::from_utf8_lossy(&output.stdout);
        bail!("mpv {url} exited {}: {}", output.status, out.trim());
    }
    Ok(wall)
}

/// A 120 s H.264/AAC MP4 (25 fps, GOP 2 s) with its moov after the mdat, about 7 MB.
pub async fn make_mp4(root: &Path) -> Result<PathBuf> {
    let out = root.join("clip.mp4");
    let args =
        "-f lavfi -i testsrc2=size=640x360:rate=25:duration=120 -f lavfi -i sine=duration=120 \
        -c:v libx264 -preset veryfast -g 50 -b:v 400k -c:a aac -b:a 64k";
    let mut args: Vec<String> = args.split_whitespace().map(str::to_owned).collect();
    args.push(out.display().to_string());
    ffmpeg(&args, Duration::from_secs(300)).await?;
    // The first "moov" after the box header "mdat" at the start: either the real box or a
    // chance match inside the media data; both mean the moov is not before the mdat.
    let bytes = std::fs::read(&out)?;
    let at = |kind: &[u8]| bytes.windows(4).position(|w| w == kind);
    match (at(b"mdat"), at(b"moov")) {
        (Some(mdat), Some(moov)) if moov > mdat => Ok(out),
        _ => bail!("ffmpeg wrote the moov before the mdat"),
    }
}

/// `ffmpeg -nostdin -y -loglevel error args` to the end within `limit` (exit 0 required).
pub async fn ffmpeg(args: &[String], limit: Duration) -> Result<()> {
    let mut command = Command::new("ffmpeg");
    command
        .args(["-nostdin", "-y", "-loglevel", "error"])
        .args(args);
    let output = tool_output(command, limit, ("ffmpeg", "ffmpeg")).await?;
    match output.status.success() {
        true => Ok(()),
        false => bail!("ffmpeg: {}", String::from_utf8_lossy(&output.stderr)),
    }
}

/// `node args` to the end within `limit`; the exit status is the caller's.
pub async fn node(args: &[String], limit: Duration) -> Result<Output> {
    let mut command = Command::new("node");
    command.args(args).stdin(Stdio::null());
    tool_output(command, limit, ("node", "nodejs")).await
}

/// `wrk args` to the end within `limit` (exit 0 required); its standard output.
pub async fn wrk(args: &[String], limit: Duration) -> Result<String> {
    let mut command = Command::new("wrk");
    command.args(args).stdin(Stdio::null());
    let output = tool_output(command, limit, ("wrk", "wrk")).await?;
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr);
    // A script that fails to load is only reported on stderr: wrk then runs without it.
    if !output.status.success() || !err.trim().is_empty() {
        bail!(
            "wrk exited {}: {}\n{}",
            output.status,
            err.trim(),
            out.trim()
        );
    }
    Ok(out)
}

/// Runs `command` to the end within `limit` (killed on drop); `(tool, package)` names the
/// tool in the errors and the package that provides it. The exit status is the caller's.
async fn tool_output(
    mut command: Command,
    limit: Duration,
    (tool, package): (&str, &str),
) -> Result<Output> {
    let output = timeout(limit, command.kill_on_drop(true).output()).await;
    output
        .with_context(|| format!("{tool} timed out"))?
        .context(install(tool, package))
}

/// The error text for a tool that cannot be run.
pub fn install(tool: &str, package: &str) -> String {
    format!("cannot run {tool}: install it with `apt-get install -y {package}`")
}

pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

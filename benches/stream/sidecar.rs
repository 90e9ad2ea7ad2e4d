//! ffmpeg as the server runs it, and the same ffmpeg alone. The server's ffmpeg HLS jobs as
//! `/proc` shows them (which, their memory, their command line); and [`Alone`]: that command
//! line run by itself on the local file (the baseline of figures f and h), watched through the
//! playlist it writes. Which jobs the server starts, and when, is the server's business.

use std::{
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use tempfile::TempDir;
use tokio::process::{Child, Command};
use tokio::time::sleep;

use crate::server::proc_mib;

/// The playlist the server's jobs write (their last argument), relative to their folder.
const PLAYLIST: &str = "index.m3u8";

/// The server's (`pid`'s) running ffmpeg HLS jobs: child processes named `ffmpeg` writing
/// [`PLAYLIST`] (not its short `ffmpeg -version` availability checks).
pub fn ffmpeg_jobs(pid: u32) -> Vec<u32> {
    let children = ffmpeg_children(pid).into_iter();
    let job = |child: &u32| cmdline(*child).last().map(String::as_str) == Some(PLAYLIST);
    children.filter(job).collect()
}

/// A process's arguments, its program first (empty once it has gone).
fn cmdline(pid: u32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args = raw.split(|b| *b == 0).filter(|a| !a.is_empty());
    args.map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// The server's (`pid`'s) child processes named `ffmpeg`, but zombies (they have exited).
fn ffmpeg_children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok());
    let child = |p: &u32| {
        let stat = stat_fields(*p);
        let ppid = stat.get(1).and_then(|f| f.parse::<u32>().ok());
        let state = stat.first().map(String::as_str);
        comm(*p) == "ffmpeg" && ppid == Some(pid) && state != Some("Z")
    };
    pids.filter(child).collect()
}

/// A process's name (`/proc/{pid}/comm`).
fn comm(pid: u32) -> String {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    comm.trim_end().to_owned()
}

/// The fields of `/proc/{pid}/stat` after the name (which is in parentheses and may hold
/// spaces): state first, then the parent's pid, …; empty if unreadable.
fn stat_fields(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after.split_whitespace().map(str::to_owned).collect()
}

/// What the server's ffmpeg jobs hold at one moment.
#[derive(Default, Clone, Copy)]
pub struct JobUsage {
    pub jobs: usize,
    /// Jobs stopped (SIGSTOP: paused by the server).
    pub paused: usize,
    /// Resident memory together, in MiB: RSS (shared libraries counted in each) and PSS
    /// (shared pages split between the processes sharing them).
    pub rss: u64,
    pub pss: u64,
}

/// The server's ffmpeg jobs now.
pub fn ffmpeg_usage(pid: u32) -> JobUsage {
    let jobs = ffmpeg_jobs(pid);
    let stopped = |job: &&u32| stat_fields(**job).first().is_some_and(|s| s == "T");
    JobUsage {
        jobs: jobs.len(),
        paused: jobs.iter().filter(stopped).count(),
        rss: jobs.iter().map(|j| proc_mib(*j, "VmRSS")).sum(),
        pss: jobs.iter().map(|j| pss_mib(*j)).sum(),
    }
}

/// `Pss` from `/proc/{pid}/smaps_rollup`, in MiB; 0 if unreadable.
fn pss_mib(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let line = text.lines().find(|l| l.starts_with("Pss:")).unwrap_or("");
    let kib = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

/// Waits up to `limit` for the server to run no ffmpeg job (after its streams were deleted).
pub async fn wait_no_ffmpeg(pid: u32, limit: Duration) -> Result<()> {
    let started = Instant::now();
    while !ffmpeg_jobs(pid).is_empty() {
        if started.elapsed() > limit {
            bail!(
                "the server still runs ffmpeg {} s after its streams ended",
                limit.as_secs()
            );
        }
        sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// The arguments of one of the server's ffmpeg jobs (waits up to 5 s for one).
pub async fn server_command(pid: u32) -> Result<Vec<String>> {
    for _ in 0..100 {
        if let Some(job) = ffmpeg_jobs(pid).first() {
            let args = cmdline(*job);
            if args.len() > 1 {
                return Ok(args[1..].to_vec());
            }
        }
        sleep(Duration::from_millis(50)).await;
    }
    bail!("the server runs no ffmpeg job")
}

/// The server's ffmpeg `args` with the input (its loopback URL) replaced by `file` and the
/// internal header (meant for the server) left out: the same command, alone.
fn alone_args(args: &[String], file: &Path) -> Result<Vec<String>> {
    let (mut out, mut args) = (Vec::new(), args.iter());
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-headers" => {
                args.next();
            }
            "-i" => {
                args.next().context("-i without an input")?;
                out.extend(["-i".to_owned(), file.display().to_string()]);
            }
            _ => out.push(arg.clone()),
        }
    }
    match out.last().map(String::as_str) {
        Some(PLAYLIST) => Ok(out),
        _ => bail!("the server's ffmpeg does not write {PLAYLIST}: {args:?}"),
    }
}

/// The server's ffmpeg command run alone in a folder of its own, as the server runs it (no
/// stdin; its output is not read).
pub struct Alone {
    child: Child,
    dir: TempDir,
    started: Instant,
}

impl Alone {
    /// Starts the server's ffmpeg `args` on the local `file` instead of the server's URL.
    pub fn spawn(args: &[String], file: &Path) -> Result<Self> {
        let (args, dir) = (alone_args(args, file)?, tempfile::tempdir()?);
        let mut command = Command::new("ffmpeg");
        command
            .args(&args)
            .current_dir(dir.path())
            .kill_on_drop(true);
        command.stdin(Stdio::null()).stdout(Stdio::null());
        let child = command.stderr(Stdio::null()).spawn()?;
        let started = Instant::now();
        Ok(Alone {
            child,
            dir,
            started,
        })
    }

    /// The GOP fragments its playlist lists so far: (duration, file name).
    fn listed(&self) -> Vec<(f64, String)> {
        let text = std::fs::read_to_string(self.dir.path().join(PLAYLIST)).unwrap_or_default();
        fragments(&text)
    }

    /// The bytes of the listed fragments that start before `secs`, in order: what a server
    /// serves as a segment `[0, secs)`.
    pub fn first_fragments(&self, secs: f64) -> Result<Vec<u8>> {
        let (mut start, mut bytes) = (0.0, Vec::new());
        for (duration, name) in self.listed() {
            if start >= secs - 0.02 {
                break;
            }
            bytes.extend(std::fs::read(self.dir.path().join(name))?);
            start += duration;
        }
        Ok(bytes)
    }

    /// From the start to its first fragment file, and to the fragments covering `secs`
    /// (polled every 5 ms; 60 s at most).
    pub async fn until_covered(&mut self, secs: f64) -> Result<(Duration, Duration)> {
        let mut first = None;
        while self.started.elapsed() < Duration::from_secs(60) {
            let elapsed = self.started.elapsed();
            if first.is_none() && self.dir.path().join("g0.m4s").is_file() {
                first = Some(elapsed);
            }
            let listed: f64 = self.listed().iter().map(|(d, _)| d).sum();
            if listed >= secs - 0.02 {
                return Ok((first.unwrap_or(elapsed), elapsed));
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("ffmpeg alone exited {status} before {secs} s were written");
            }
            sleep(Duration::from_millis(5)).await;
        }
        bail!("ffmpeg alone: {secs} s not written within 60 s")
    }

    /// Waits for it to end (exit 0 required, `limit` at most): its wall time and the bytes it
    /// wrote (init segment and fragments).
    pub async fn finish(mut self, limit: Duration) -> Result<(Duration, u64)> {
        let status = tokio::time::timeout(limit, self.child.wait()).await;
        let status = status.context("ffmpeg alone timed out")??;
        let wall = self.started.elapsed();
        if !status.success() {
            bail!("ffmpeg alone exited {status}");
        }
        let mut bytes = 0;
        for entry in std::fs::read_dir(self.dir.path())? {
            let (entry, name) = (entry?, String::new());
            let name = entry.file_name().to_str().map_or(name, str::to_owned);
            if name.ends_with(".m4s") || name.ends_with(".mp4") {
                bytes += entry.metadata()?.len();
            }
        }
        Ok((wall, bytes))
    }
}

/// The segments a media playlist lists: (`#EXTINF` duration, URI).
fn fragments(playlist: &str) -> Vec<(f64, String)> {
    let (mut duration, mut out) = (None, Vec::new());
    for line in playlist.lines().map(str::trim) {
        if let Some(value) = line.strip_prefix("#EXTINF:") {
            duration = value.split(',').next().and_then(|d| d.trim().parse().ok());
        } else if !line.is_empty() && !line.starts_with('#') {
            out.extend(duration.take().map(|d| (d, line.to_owned())));
        }
    }
    out
}

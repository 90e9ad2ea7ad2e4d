//! Streaming benchmark: Magnetar against baselines measured in the same run, on 127.0.0.1.
//!
//! Run: `scripts/bench` (checks nginx, mpv, ffmpeg, wrk, node and Chromium first) or
//! `cargo bench --bench stream`; `-- a b b2 c d e f g h i j k` picks figures. It prints a line
//! per run, then a table: each figure, its baseline, its goal. Nothing is asserted: a missed
//! goal reads `MISS`, a figure that broke reads `ERROR` (and the exit status is 1). A full run
//! takes about 10 minutes once built, plus about 5 minutes the first time to make the media
//! fixtures ([`fixtures`], cached in `~/.cache/magnetar-bench/`).
//!
//! The server under test is the real binary (`magnetar serve`, a child process with a fresh
//! data folder, DHT off); the swarm is an in-process [`Seeder`] of files generated here
//! (deterministic bytes; every byte read is checked).
//! - (a) POST magnet → first byte of the direct URL (`Range: bytes=0-`), 64 MiB file, 5 runs;
//!   baseline: rqbit alone (`add_torrent` with `initial_peers`, `stream`, first read).
//! - (b) seeder at 2 MB/s: read from the start for 3 s (so the seeder's one-second burst
//!   allowance is spent, as when someone watches, then seeks), then a new request at 70% of
//!   the file → first byte; baseline: the same on one rqbit `FileStream` (seek, read).
//!   A reader gets only verified pieces, so this runs with librqbit's default 2 MiB pieces
//!   and again with 256 KiB pieces.
//! - (b′) `mpv --start=60` into a moov-at-end MP4 (made by ffmpeg) from a 256 KiB/s seeder,
//!   2 MiB and 256 KiB pieces. Baseline: the bytes mpv needs, counted by nginx serving the
//!   same file at 256 KiB/s, as time at that rate; also the whole pieces covering those
//!   ranges (the floor for any torrent client), and nginx's own times (capped / full speed).
//! - (c) warm random 1 MiB ranges over 16 connections against nginx on the same file,
//!   3 alternating rounds.
//! - (d) 200 concurrent 2 MiB readers across 4 fresh torrents: completion, bytes, RSS.
//! - (e) 200 users at once under the default limits, driven by wrk for 20 s: each user's
//!   random 256 KiB ranges and API calls, plus strangers with forged or no credentials;
//!   answers by kind, 429s, errors (goal: none), latency, RSS. Baseline: the same load with
//!   every rate limit off.
//!
//! The media figures play the HLS remux (`?client=browser`: H.264 copied, AC-3 to AAC) of a
//! 2-hour 320x180 MKV, downloaded from the seeder; the server's ffmpeg command line (read from
//! `/proc`) is also run alone on the local file as the baseline.
//! - (f) master playlist request → first bytes of segment 0 (playlists, init segment, segment
//!   0, as a player asks), on a fresh torrent and a downloaded one, 5 runs; baseline: that
//!   ffmpeg alone until its playlist lists the GOP fragments segment 0 is made of.
//! - (g) hls.js in Chromium plays from 0, seeks to 40:00, until playing again (a frame from
//!   there presented, frames and audio decoded, the clock moving), 3 runs; baseline: the same
//!   page on a static HLS of the same content made by ffmpeg, served by nginx.
//! - (h) every segment of a 10-minute cut, in order, to the last byte, 3 rounds; baseline: that
//!   ffmpeg alone to its end on the same file; ratio of the times (goal ≥ 0.9×).
//! - (i) server RSS and ffmpeg processes with 1, 2 and 4 sessions playing, then after each
//!   seeked to 40:00; baseline: the same server idle.
//!
//! What `/metrics` costs (the server's Prometheus endpoint):
//! - (j) warm random 64 KiB ranges over 16 connections (file complete, read cache on) on two
//!   servers of the same binary, metrics on (the default) and off (`metrics.enabled = false`),
//!   5 alternating rounds each: server CPU time per request (`/proc/{pid}/stat`, the median
//!   round), requests per second, RSS; goal: at most 3% more CPU per request with metrics on.
//! - (k) one server with 500 streams over 50 users (magnets whose only tracker never answers,
//!   so they stay resolving, and 4 torrents from the seeder being played), `/metrics` read 20
//!   times: median and max latency (goal ≤ 10 ms) and the series (goal ≤ 500); baseline: the
//!   same server before any stream.
//!
//! Rate limits present in the server's configuration are turned off (a note says which):
//! this measures the engine, not the policy. Figure (e) alone keeps them: it measures them.
//!
//! This file owns the entry point, the figure list and the knobs the figures share; the
//! modules:
//! - [`first_byte`]: figures (a) and (b); [`player`]: (b′); [`load`]: (c) and (d);
//!   [`crowd`]: (e), with its wrk script `crowd.lua`; [`remux`]: (f) and (h); [`seek`]: (g),
//!   with its page `tests/browser/seek.mjs`; [`sessions`]: (i); [`metrics`]: (j) and (k).
//! - [`fixtures`]: the media files; [`hls`]: the HLS client; [`sidecar`]: the server's ffmpeg
//!   children, and their command alone.
//! - [`server`]: `magnetar serve` as a child process and the API calls on it.
//! - [`swarm`]: generated data, the in-process seeder, and rqbit alone as the baseline.
//! - [`nginx`]: the nginx baseline; [`process`]: child processes and one-shot tools.
//! - [`client`]: range requests whose bodies are checked; [`report`]: rows and the table.
//!
//! [`Seeder`]: magnetar::seeder::Seeder

mod client;
mod crowd;
mod first_byte;
mod fixtures;
mod hls;
mod load;
mod metrics;
mod nginx;
mod player;
mod process;
mod remux;
mod report;
mod seek;
mod server;
mod sessions;
mod sidecar;
mod swarm;

use std::{
    future::Future,
    pin::Pin,
    process::ExitCode,
    time::{Duration, Instant},
};

use anyhow::{anyhow, Result};
use tokio::time::timeout;

use report::{row, secs, Row};

const MIB: u64 = 1 << 20;
/// The seeder's rate in (b′), and nginx's on `/capped/`.
const SLOW_BPS: u32 = 256 * 1024;
/// The small piece length that (b) and (b′) run with besides librqbit's default.
const SMALL_PIECE: u32 = 256 * 1024;
/// How long (b) reads from the start before it seeks.
const PLAY: Duration = Duration::from_secs(3);
/// The bound on one step: a run's measurement, an HTTP request, an mpv run.
const STEP: Duration = Duration::from_secs(120);

type Figure = Pin<Box<dyn Future<Output = Result<Vec<Row>>>>>;

fn main() -> ExitCode {
    let args = std::env::args().skip(1);
    let keys: Vec<String> = args.filter(|a| !a.starts_with('-')).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    match runtime.map(|runtime| runtime.block_on(run_all(&keys))) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("bench: no tokio runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the figures picked by `keys` (all when empty) and prints the table; false if any
/// figure broke.
async fn run_all(keys: &[String]) -> bool {
    let off = server::turn_limits_off().await;
    if !off.is_empty() {
        println!("note: server limits off for the benchmark: {off:?}");
    }
    let figures: [(&str, Figure); 12] = [
        ("a", Box::pin(first_byte::figure_a())),
        ("b", Box::pin(first_byte::figure_b())),
        ("b2", Box::pin(player::figure_b2())),
        ("c", Box::pin(load::figure_c())),
        ("d", Box::pin(load::figure_d())),
        ("e", Box::pin(crowd::figure_e())),
        ("f", Box::pin(remux::figure_f())),
        ("g", Box::pin(seek::figure_g())),
        ("h", Box::pin(remux::figure_h())),
        ("i", Box::pin(sessions::figure_i())),
        ("j", Box::pin(metrics::figure_j())),
        ("k", Box::pin(metrics::figure_k())),
    ];
    let (mut rows, mut ok) = (Vec::new(), true);
    for (key, figure) in figures {
        if !keys.is_empty() && !keys.iter().any(|k| k == key) {
            continue;
        }
        let started = Instant::now();
        let limit = Duration::from_secs(900);
        let result = within(limit, "figure timed out (15 min)", figure).await;
        println!("({key}) done in {:.0} s", secs(started.elapsed()));
        match result {
            Ok(more) => rows.extend(more),
            Err(err) => {
                println!("({key}) ERROR: {err:#}");
                rows.push(row(&format!("({key})"), "ERROR", "-", "-", None));
                ok = false;
            }
        }
    }
    println!();
    report::print_table(&rows);
    ok
}

/// `work`'s result, or an error saying `timed_out` once `limit` has passed.
async fn within<T>(
    limit: Duration,
    timed_out: &str,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    let result = timeout(limit, work).await;
    result.unwrap_or_else(|_| Err(anyhow!("{timed_out}")))
}

/// Waits up to 10 s for a stop (a seeder's, a session's, a child's); a slow one is left.
async fn wait_stopped(stopping: impl Future) {
    let _ = timeout(Duration::from_secs(10), stopping).await;
}

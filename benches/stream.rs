//! Streaming benchmark: Magnetar against baselines measured in the same run, on 127.0.0.1.
//!
//! Run: `scripts/bench` (checks nginx, mpv and ffmpeg first) or `cargo bench --bench stream`;
//! `-- a b b2 c d` picks figures. It prints a line per run, then a table: each figure, its
//! baseline, its goal. Nothing is asserted: a missed goal reads `MISS`, a figure that broke
//! reads `ERROR` (and the exit status is 1). A full run takes about 4 minutes once built.
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
//!
//! Rate limits present in the server's configuration are turned off (a note says which):
//! this measures the engine, not the policy.

use std::{
    collections::BTreeSet,
    future::Future,
    io::SeekFrom,
    net::SocketAddr,
    path::{Path, PathBuf},
    pin::Pin,
    process::{ExitCode, Stdio},
    sync::{atomic::AtomicU64, atomic::Ordering::Relaxed, Arc, OnceLock},
    time::{Duration, Instant},
};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use librqbit::{AddTorrent, AddTorrentOptions, Session, SessionOptions};
use magnetar::seeder::{Seeded, Seeder};
use reqwest::{Client, Response};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::process::{Child, Command};
use tokio::time::{sleep, timeout, timeout_at};

const BIN: &str = env!("CARGO_BIN_EXE_magnetar");
const MIB: u64 = 1 << 20;
const SLOW_BPS: u32 = 256 * 1024;
const SMALL_PIECE: u32 = 256 * 1024;
const DEFAULT_PIECE: u64 = 2 * MIB; // librqbit's `create_torrent` default
const PLAY: Duration = Duration::from_secs(3);
const STEP: Duration = Duration::from_secs(120);
const LIMIT_KEYS: [&str; 3] = ["api_per_minute", "streams_per_minute", "content_per_second"];
static LIMITS_OFF: OnceLock<Vec<String>> = OnceLock::new();

type Row = [String; 5];
type Figure = Pin<Box<dyn Future<Output = Result<Vec<Row>>>>>;
type Times = (Duration, Option<Duration>);

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

async fn run_all(keys: &[String]) -> bool {
    let off = limits_present().await.unwrap_or_default();
    if !off.is_empty() {
        println!("note: server limits off for the benchmark: {off:?}");
    }
    let _ = LIMITS_OFF.set(off);
    let figures: [(&str, Figure); 5] = [
        ("a", Box::pin(figure_a())),
        ("b", Box::pin(figure_b())),
        ("b2", Box::pin(figure_b2())),
        ("c", Box::pin(figure_c())),
        ("d", Box::pin(figure_d())),
    ];
    let (mut rows, mut ok) = (Vec::new(), true);
    for (key, figure) in figures {
        if !keys.is_empty() && !keys.iter().any(|k| k == key) {
            continue;
        }
        let started = Instant::now();
        let result = timeout(Duration::from_secs(900), figure).await;
        let result = result.unwrap_or_else(|_| Err(anyhow!("figure timed out (15 min)")));
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
    let head = row("figure", "magnetar", "baseline", "goal", None);
    for [figure, ours, base, goal, verdict] in std::iter::once(&head).chain(&rows) {
        println!("{figure:<46} {ours:<32} {base:<44} {goal:<10} {verdict}");
    }
    ok
}

/// A table line: figure, Magnetar's figure, baseline, goal, verdict (`None`: no verdict).
fn row(figure: &str, ours: &str, base: &str, goal: &str, met: Option<bool>) -> Row {
    let verdict = match met {
        Some(true) => "ok",
        Some(false) => "MISS",
        None if ours == "ERROR" => "ERROR",
        None if figure == "figure" => "verdict",
        None => "-",
    };
    [figure, ours, base, goal, verdict].map(String::from)
}

// ---------------------------------------------------------------- (a) and (b)

/// (a) POST magnet → first byte, against rqbit alone; 5 fresh 64 MiB torrents.
async fn figure_a() -> Result<Vec<Row>> {
    let [ours, base] = runs("a", None, None).await?;
    let base = format!("rqbit alone {}", med_max(&base));
    let met = median(&ours) <= Duration::from_millis(300);
    let figure = "(a) POST → first byte, median / max";
    Ok(vec![row(
        figure,
        &med_max(&ours),
        &base,
        "≤ 300 ms",
        Some(met),
    )])
}

/// (b) seek to 70% → first byte, seeder at 2 MB/s, with 2 MiB and 256 KiB pieces.
async fn figure_b() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for (piece, label) in [(None, "2 MiB"), (Some(SMALL_PIECE), "256 KiB")] {
        let [ours, base] = runs("b", Some(2_000_000), piece).await?;
        let base = format!("rqbit FileStream {}", med_max(&base));
        let figure = format!("(b) seek 70% @2 MB/s, {label} pieces, med/max");
        let met = median(&ours) <= Duration::from_millis(500);
        rows.push(row(&figure, &med_max(&ours), &base, "≤ 500 ms", Some(met)));
    }
    Ok(rows)
}

/// Five runs on fresh torrents; with a cap, the times are the seek's, else the first byte's.
async fn runs(key: &str, cap: Option<u32>, piece: Option<u32>) -> Result<[Vec<Duration>; 2]> {
    let seeder = Seeder::start(cap).await?;
    let root = tempfile::tempdir()?;
    let mut times = [Vec::new(), Vec::new()];
    for run in 0..5 {
        let name = format!("{key}-{}-{run}.mkv", piece.unwrap_or(0));
        let seed = u64::from(piece.unwrap_or(1)) + run;
        let data = generate(root.path(), &name, 64 * MIB, seed)?;
        let seeded = seeder.seed_with(&root.path().join(&name), piece).await?;
        let seek = cap.map(|_| data.len() as u64 * 7 / 10);
        let (r0, r1) = rqbit_times(&seeded, seeder.addr, seek, &data).await?;
        let (m0, m1) = magnetar_times(&seeded, seek, &data).await?;
        let (m, r) = (m1.unwrap_or(m0), r1.unwrap_or(r0));
        let what = if cap.is_some() { "seek" } else { "first byte" };
        let (m_text, r_text, m0, r0) = (ms(m), ms(r), ms(m0), ms(r0));
        println!(
            "({key}) run {run}, {what}: magnetar {m_text} (first byte {m0}), \
             rqbit {r_text} (first byte {r0})"
        );
        times[0].push(m);
        times[1].push(r);
    }
    let _ = timeout(Duration::from_secs(10), seeder.stop()).await;
    Ok(times)
}

/// Through a fresh server: POST → first byte; then (with `seek`) read for [`PLAY`], drop that
/// response like a player does, and time a new request at `seek` to its first byte.
async fn magnetar_times(seeded: &Seeded, seek: Option<u64>, data: &[u8]) -> Result<Times> {
    let server = Server::start().await?;
    let result = timeout(STEP, async {
        let started = Instant::now();
        let (_, url) = server.create(&seeded.magnet).await?;
        let mut playing = first_byte(&server.client, &url, 0, data).await?;
        let (first, Some(offset)) = (started.elapsed(), seek) else {
            return Ok((started.elapsed(), None));
        };
        let deadline = tokio::time::Instant::now() + PLAY;
        while let Ok(Ok(Some(_))) = timeout_at(deadline, playing.chunk()).await {}
        drop(playing);
        let started = Instant::now();
        first_byte(&server.client, &url, offset, data).await?;
        Ok((first, Some(started.elapsed())))
    });
    let result = result.await.unwrap_or_else(|_| Err(anyhow!("timed out")));
    server.finish(result).await
}

/// rqbit alone: magnet + `initial_peers` → `stream(0)` → first read; then (with `seek`) read
/// for [`PLAY`], seek, read.
async fn rqbit_times(
    seeded: &Seeded,
    peer: SocketAddr,
    seek: Option<u64>,
    data: &[u8],
) -> Result<Times> {
    let dir = tempfile::tempdir()?;
    let opts = SessionOptions {
        dht: None,
        disable_trackers: true,
        disable_local_service_discovery: true,
        ..Default::default()
    };
    let session = Session::new_with_opts(dir.path().to_owned(), opts).await?;
    let result = timeout(STEP, async {
        let started = Instant::now();
        let peers = Some(vec![peer]);
        let opts = AddTorrentOptions {
            initial_peers: peers,
            ..Default::default()
        };
        let added = session.add_torrent(AddTorrent::from_url(&seeded.magnet), Some(opts));
        let handle = added.await?.into_handle().context("no handle")?;
        let mut stream = handle.stream(0).await?;
        let mut buf = vec![0u8; 256 * 1024];
        let n = stream.read(&mut buf).await?;
        check(&buf[..n], data, 0)?;
        let (first, Some(offset)) = (started.elapsed(), seek) else {
            return Ok((started.elapsed(), None));
        };
        let deadline = tokio::time::Instant::now() + PLAY;
        while let Ok(Ok(1..)) = timeout_at(deadline, stream.read(&mut buf)).await {}
        let started = Instant::now();
        stream.seek(SeekFrom::Start(offset)).await?;
        let n = stream.read(&mut buf).await?;
        check(&buf[..n], data, offset)?;
        Ok((first, Some(started.elapsed())))
    });
    let result = result.await.unwrap_or_else(|_| Err(anyhow!("timed out")));
    let _ = timeout(Duration::from_secs(10), session.stop()).await;
    result.context("rqbit baseline")
}

// ---------------------------------------------------------------- (b′) mpv

/// (b′) mpv --start=60 into a moov-at-end MP4 from a 256 KiB/s seeder: 3 runs per piece size.
async fn figure_b2() -> Result<Vec<Row>> {
    let root = tempfile::tempdir()?;
    let mp4 = make_mp4(root.path()).await?;
    let len = std::fs::metadata(&mp4)?.len();
    println!("(b') clip.mp4: {len} B, moov after mdat");
    let copy = root.path().join("small/clip.mp4");
    std::fs::create_dir(root.path().join("small"))?;
    std::fs::copy(&mp4, &copy)?;
    let seeder = Seeder::start(Some(SLOW_BPS)).await?;
    let big = seeder.seed(&mp4).await?;
    let small = seeder.seed_with(&copy, Some(SMALL_PIECE)).await?;
    let torrents = [(big, DEFAULT_PIECE), (small, SMALL_PIECE.into())];
    let nginx = Nginx::start(root.path()).await?;
    let result = mpv_runs(&nginx, &torrents, len).await;
    nginx.0.stop().await;
    let _ = timeout(Duration::from_secs(10), seeder.stop()).await;
    result
}

async fn mpv_runs(nginx: &Nginx, torrents: &[(Seeded, u64)], len: u64) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let at_rate = |bytes: u64| bytes as f64 / f64::from(SLOW_BPS);
    for run in 0..3 {
        let (ranges, sent, wall) = nginx.mpv("capped/clip.mp4").await?;
        let (_, free_sent, free_wall) = nginx.mpv("clip.mp4").await?;
        let (needed, wall, free_wall) = (at_rate(sent), secs(wall), secs(free_wall));
        println!(
            "(b') run {run}: mpv via nginx @256 KiB/s {wall:.1} s, {sent} B sent = {needed:.1} s \
             at 256 KiB/s, ranges (start, bytes) {ranges:?}; nginx full speed {free_wall:.1} s, \
             {free_sent} B sent"
        );
        for (seeded, piece) in torrents {
            let (floor, kib) = (piece_cover(&ranges, *piece, len), piece / 1024);
            let floor_secs = at_rate(floor);
            let label = format!("(b') mpv --start=60, {kib} KiB pieces, run {run}");
            let base = format!("needs {needed:.1}s; pieces {floor_secs:.1}s; nginx {wall:.1}s");
            let goal = format!("≤ {:.1} s", 2.0 * needed);
            let (text, met) = match mpv_via_magnetar(seeded).await {
                Ok((ours, fetched, have)) => {
                    let ours = secs(ours);
                    println!(
                        "(b') run {run}, {kib} KiB pieces: magnetar {ours:.1} s, {fetched} B \
                         fetched by then: {have} (pieces covering mpv's reads: {floor} B = \
                         {floor_secs:.1} s)"
                    );
                    let text = format!("{ours:.1} s ({} KB fetched)", fetched / 1000);
                    (text, Some(ours <= 2.0 * needed))
                }
                Err(err) => {
                    println!("(b') run {run}: magnetar ERROR {err:#}");
                    ("ERROR".into(), None)
                }
            };
            rows.push(row(&label, &text, &base, &goal, met));
        }
    }
    Ok(rows)
}

/// mpv against a fresh stream's direct URL: wall time, and the bytes and ranges the server
/// had by then.
async fn mpv_via_magnetar(seeded: &Seeded) -> Result<(Duration, u64, String)> {
    let server = Server::start().await?;
    let result = async {
        let (id, url) = server.create(&seeded.magnet).await?;
        let wall = mpv(&url).await?;
        let stream = server.get_stream(&id).await?;
        let progress = &stream["progress"];
        let bytes = progress["bytes"].as_u64().unwrap_or(0);
        Ok((wall, bytes, progress["buffered"].to_string()))
    };
    let result = result.await;
    server.finish(result).await
}

/// Bytes of the whole pieces that cover `ranges` (start, length) in a file of `len` bytes.
fn piece_cover(ranges: &[(u64, u64)], piece: u64, len: u64) -> u64 {
    let ranges = ranges.iter().filter(|(_, n)| *n > 0);
    let last = |start: u64, n: u64| (start + n - 1).min(len - 1) / piece;
    let pieces: BTreeSet<u64> = ranges.flat_map(|&(s, n)| s / piece..=last(s, n)).collect();
    pieces.iter().map(|p| piece.min(len - p * piece)).sum()
}

/// `mpv --start=60 --frames=1` wall time (exit 0 required, 120 s at most).
async fn mpv(url: &str) -> Result<Duration> {
    let args = "--no-config --ytdl=no --vo=null --ao=null --frames=1 --start=60";
    let mut command = Command::new("mpv");
    command.args(args.split(' ')).arg(url).kill_on_drop(true);
    let started = Instant::now();
    let output = timeout(STEP, command.output()).await;
    let output = output
        .context("mpv timed out")?
        .context(install("mpv", "mpv"))?;
    let wall = started.elapsed();
    if !output.status.success() {
        let out = String::from_utf8_lossy(&output.stdout);
        bail!("mpv {url} exited {}: {}", output.status, out.trim());
    }
    Ok(wall)
}

/// A 120 s H.264/AAC MP4 (25 fps, GOP 2 s) with its moov after the mdat, about 7 MB.
async fn make_mp4(root: &Path) -> Result<PathBuf> {
    let out = root.join("clip.mp4");
    let args = "-nostdin -y -loglevel error \
        -f lavfi -i testsrc2=size=640x360:rate=25:duration=120 -f lavfi -i sine=duration=120 \
        -c:v libx264 -preset veryfast -g 50 -b:v 400k -c:a aac -b:a 64k";
    let mut command = Command::new("ffmpeg");
    command
        .args(args.split_whitespace())
        .arg(&out)
        .kill_on_drop(true);
    let output = timeout(Duration::from_secs(300), command.output()).await;
    let output = output
        .context("ffmpeg timed out")?
        .context(install("ffmpeg", "ffmpeg"))?;
    if !output.status.success() {
        bail!("ffmpeg: {}", String::from_utf8_lossy(&output.stderr));
    }
    // The first "moov" after the box header "mdat" at the start: either the real box or a
    // chance match inside the media data; both mean the moov is not before the mdat.
    let bytes = std::fs::read(&out)?;
    let at = |kind: &[u8]| bytes.windows(4).position(|w| w == kind);
    match (at(b"mdat"), at(b"moov")) {
        (Some(mdat), Some(moov)) if moov > mdat => Ok(out),
        _ => bail!("ffmpeg wrote the moov before the mdat"),
    }
}

// ---------------------------------------------------------------- (c) and (d)

/// (c) warm random 1 MiB ranges over 16 connections, Magnetar against nginx.
async fn figure_c() -> Result<Vec<Row>> {
    let root = tempfile::tempdir()?;
    let data = Arc::new(generate(root.path(), "warm.mkv", 64 * MIB, 7)?);
    let seeder = Seeder::start(None).await?;
    let seeded = seeder.seed(&root.path().join("warm.mkv")).await?;
    let nginx = Nginx::start(root.path()).await?;
    let server = Server::start().await?;
    let result = async {
        let (id, url) = server.create(&seeded.magnet).await?;
        server.wait_ready(&id).await?;
        let nginx_url = format!("{}/warm.mkv", nginx.1);
        let (mut ours, mut theirs) = (Rate::default(), Rate::default());
        hammer(&url, &data, 100).await?; // warm-up: connections, page cache
        for _ in 0..3 {
            theirs.add(hammer(&nginx_url, &data, 2000).await?);
            ours.add(hammer(&url, &data, 2000).await?);
        }
        Ok((ours, theirs))
    };
    let result = result.await;
    let result = server.finish(result).await;
    nginx.0.stop().await;
    let _ = timeout(Duration::from_secs(10), seeder.stop()).await;
    let (ours, theirs) = result?;
    println!("(c) magnetar {}; nginx {}", ours.text(), theirs.text());
    let ratio = ours.mbps() / theirs.mbps();
    let text = format!("{} (×{ratio:.2})", ours.text());
    let (base, met) = (
        format!("nginx {}", theirs.text()),
        ratio >= 0.9 && ours.errors == 0,
    );
    let figure = "(c) warm 1 MiB ranges, 16 connections";
    Ok(vec![row(figure, &text, &base, "≥ 0.9×", Some(met))])
}

/// Totals of load runs.
#[derive(Default)]
struct Rate {
    bytes: u64,
    requests: u64,
    errors: u64,
    secs: f64,
}

impl Rate {
    fn add(&mut self, other: Rate) {
        (self.bytes, self.requests) = (self.bytes + other.bytes, self.requests + other.requests);
        (self.errors, self.secs) = (self.errors + other.errors, self.secs + other.secs);
    }

    fn mbps(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs.max(1e-9)
    }

    fn text(&self) -> String {
        let rps = self.requests as f64 / self.secs.max(1e-9);
        let errors = match self.errors {
            0 => String::new(),
            n => format!(", {n} errors"),
        };
        format!("{:.0} MB/s, {rps:.0} req/s{errors}", self.mbps())
    }
}

/// 16 connections of random 1 MiB ranges (every other one MiB-aligned), at most `total`
/// requests or 10 s; every body is checked against `data`.
async fn hammer(url: &str, data: &Arc<Vec<u8>>, total: u64) -> Result<Rate> {
    let (client, issued) = (client()?, Arc::new(AtomicU64::new(0)));
    let (started, limit) = (Instant::now(), Duration::from_secs(10));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, url, data) = (client.clone(), url.to_owned(), data.clone());
        let issued = issued.clone();
        tasks.spawn(async move {
            let mut rate = Rate::default();
            loop {
                let i = issued.fetch_add(1, Relaxed);
                if i >= total || started.elapsed() >= limit {
                    return rate;
                }
                let offset = random_offset(i, data.len() as u64);
                let body = fetch_range(&client, &url, offset, MIB).await;
                match body.and_then(|b| check(&b, &data, offset)) {
                    Ok(()) => (rate.bytes, rate.requests) = (rate.bytes + MIB, rate.requests + 1),
                    Err(_) => rate.errors += 1,
                }
            }
        });
    }
    let mut sum = Rate::default();
    while let Some(rate) = tasks.join_next().await {
        sum.add(rate?);
    }
    sum.secs = secs(started.elapsed());
    Ok(sum)
}

fn random_offset(i: u64, len: u64) -> u64 {
    let z = (i ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let span = len - MIB;
    match i.is_multiple_of(2) {
        true => (z % (span / MIB + 1)) * MIB,
        false => z % (span + 1),
    }
}

/// (d) 200 concurrent 2 MiB readers across 4 fresh 32 MiB torrents.
async fn figure_d() -> Result<Vec<Row>> {
    let root = tempfile::tempdir()?;
    let seeder = Seeder::start(None).await?;
    let (mut datas, mut seeds) = (Vec::new(), Vec::new());
    for k in 0..4 {
        let name = format!("many-{k}.mkv");
        datas.push(Arc::new(generate(root.path(), &name, 32 * MIB, 40 + k)?));
        seeds.push(seeder.seed(&root.path().join(name)).await?);
    }
    let server = Server::start().await?;
    let result = async {
        let mut urls = Vec::new();
        for seeded in &seeds {
            urls.push(server.create(&seeded.magnet).await?.1);
        }
        let before = proc_mib(server.pid, "VmRSS");
        let started = Instant::now();
        let done = readers(&server.client, &urls, &datas).await;
        Ok((
            done,
            started.elapsed(),
            before,
            proc_mib(server.pid, "VmHWM"),
        ))
    };
    let result = result.await;
    let result = server.finish(result).await;
    let _ = timeout(Duration::from_secs(10), seeder.stop()).await;
    let (done, took, before, peak) = result?;
    let all = if done == 200 { "yes" } else { "no" };
    let took = secs(took);
    let text = format!("{all} ({done}/200) {took:.1} s, {} MiB ok", done * 2);
    println!("(d) all complete: {text}; server RSS before {before} MiB, peak {peak} MiB");
    let rss = format!("{before} MiB / {peak} MiB");
    let figure = "(d) 200 readers × 2 MiB, 4 torrents";
    Ok(vec![
        row(figure, &text, "-", "all done", Some(done == 200)),
        row("(d) server RSS before / peak (VmHWM)", &rss, "-", "-", None),
    ])
}

/// Starts the 200 readers at once; returns how many completed with the right bytes.
async fn readers(client: &Client, urls: &[String], datas: &[Arc<Vec<u8>>]) -> u64 {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..200u64 {
        let k = (t % 4) as usize;
        let (client, url, data) = (client.clone(), urls[k].clone(), datas[k].clone());
        let offset = ((t / 4) * 613 * 1024 + t * 4099) % (data.len() as u64 - 2 * MIB);
        tasks.spawn(async move {
            let body = fetch_range(&client, &url, offset, 2 * MIB).await?;
            check(&body, &data, offset)
        });
    }
    let (mut done, deadline) = (0, tokio::time::Instant::now() + Duration::from_secs(300));
    while let Ok(Some(joined)) = timeout_at(deadline, tasks.join_next()).await {
        match joined.map_err(anyhow::Error::from).and_then(|r| r) {
            Ok(()) => done += 1,
            Err(err) => println!("(d) reader failed: {err:#}"),
        }
    }
    tasks.abort_all();
    done
}

// ---------------------------------------------------------------- child processes

/// A child process with its own temporary folder (its files, logs); killed on drop too.
struct Proc {
    child: Child,
    dir: TempDir,
}

impl Proc {
    /// Starts `program args` with `env`, stdout and stderr to `dir/log`.
    fn spawn(dir: TempDir, program: &str, args: &[&str], env: &[(String, String)]) -> Result<Self> {
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
        Ok(Proc {
            child: command.spawn()?,
            dir,
        })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last lines of the child's output.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.path("log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// `magnetar serve` as a child process with its own data folder.
struct Server {
    proc: Proc,
    pid: u32,
    base: String,
    token: String,
    client: Client,
}

impl Server {
    async fn start() -> Result<Self> {
        let (port, dir) = (free_port()?, tempfile::tempdir()?);
        let env = server_env(port, &dir.path().join("data"));
        let proc = Proc::spawn(dir, BIN, &["serve"], &env)?;
        let pid = proc.child.id().context("no pid")?;
        let base = format!("http://127.0.0.1:{port}");
        let (client, token) = (client()?, String::new());
        let mut server = Server {
            proc,
            pid,
            base,
            token,
            client,
        };
        let ready = match server.wait_healthy().await {
            Ok(()) => token_for(&env).await,
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

    fn url(&self, path: &str) -> String {
        match path.starts_with('/') {
            true => format!("{}{path}", self.base),
            false => path.to_owned(),
        }
    }

    /// POST /api/v1/streams; returns the stream id and the absolute direct URL.
    async fn create(&self, magnet: &str) -> Result<(String, String)> {
        let url = self.url("/api/v1/streams");
        let request = self.client.post(url).bearer_auth(&self.token);
        let response = request.json(&json!({ "magnet": magnet })).send().await?;
        let (status, body) = (response.status(), response.text().await?);
        if status != 201 && status != 200 {
            bail!("POST /api/v1/streams answered {status}: {body}");
        }
        let stream: Value = serde_json::from_str(&body)?;
        let id = stream["id"].as_str().context("no id")?.to_owned();
        let direct = stream["urls"]["direct"]
            .as_str()
            .context("no urls.direct")?;
        Ok((id, self.url(direct)))
    }

    async fn get_stream(&self, id: &str) -> Result<Value> {
        let url = self.url(&format!("/api/v1/streams/{id}"));
        let response = self.client.get(url).bearer_auth(&self.token).send().await?;
        let (status, body) = (response.status(), response.text().await?);
        match status.as_u16() {
            200 => Ok(serde_json::from_str(&body)?),
            _ => bail!("GET /api/v1/streams/{id} answered {status}: {body}"),
        }
    }

    /// Polls the stream until its `state` is "ready" (3 minutes at most).
    async fn wait_ready(&self, id: &str) -> Result<()> {
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

/// The server's environment: loopback, its own data folder, DHT off, limits off.
fn server_env(port: u16, data: &Path) -> Vec<(String, String)> {
    let data = data.display();
    let mut env = vec![
        format!("MAGNETAR__SERVER__LISTEN=127.0.0.1:{port}"),
        format!("MAGNETAR__STORAGE__DATA_DIR={data}"),
        "MAGNETAR__ENGINE__DHT=false".into(),
        "MAGNETAR__ENGINE__PEER_LISTEN=127.0.0.1:0".into(),
        "RUST_LOG=warn".into(),
    ];
    for key in LIMITS_OFF.get().into_iter().flatten() {
        env.push(format!("MAGNETAR__LIMITS__{}=0", key.to_uppercase()));
    }
    let pair = |kv: &String| kv.split_once('=').map(|(k, v)| (k.into(), v.into()));
    env.iter().filter_map(pair).collect()
}

/// Which of [`LIMIT_KEYS`] the server's configuration has (`magnetar config`).
async fn limits_present() -> Result<Vec<String>> {
    let output = Command::new(BIN).arg("config").kill_on_drop(true).output();
    let output = timeout(Duration::from_secs(30), output).await??;
    let config: toml::Value = toml::from_str(&String::from_utf8_lossy(&output.stdout))?;
    let limits = config.get("limits").context("no [limits]")?;
    let present = LIMIT_KEYS.iter().filter(|k| limits.get(**k).is_some());
    Ok(present.map(|k| k.to_string()).collect())
}

/// `magnetar token --user bench` with the server's environment.
async fn token_for(env: &[(String, String)]) -> Result<String> {
    let mut command = Command::new(BIN);
    command
        .args(["token", "--user", "bench"])
        .envs(env.iter().cloned());
    let output = command.kill_on_drop(true).output();
    let output = timeout(Duration::from_secs(30), output).await??;
    let (out, err) = (&output.stdout, &output.stderr);
    match output.status.success() {
        true => Ok(String::from_utf8_lossy(out).trim().to_owned()),
        false => bail!("magnetar token: {}", String::from_utf8_lossy(err)),
    }
}

fn proc_mib(pid: u32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with(key)).unwrap_or("");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    kib / 1024
}

/// nginx on 127.0.0.1 serving `root` at `/`, and at `/capped/` at 256 KiB/s per connection:
/// the process and its base URL.
struct Nginx(Proc, String);

impl Nginx {
    async fn start(root: &Path) -> Result<Self> {
        let (port, root) = (free_port()?, root.display());
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; user root;
            error_log {d}/error.log warn; pid {d}/nginx.pid;
            events {{ worker_connections 1024; }}
            http {{ log_format sent '$bytes_sent $body_bytes_sent $http_range';
                access_log {d}/access.log sent; client_body_temp_path {d}/body; sendfile on;
                types {{ video/mp4 mp4; video/x-matroska mkv; }}
                server {{ listen 127.0.0.1:{port}; root {root};
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

    /// Runs mpv against `path`: the ranges nginx served (start, body bytes), all bytes sent
    /// (headers included), and mpv's wall time.
    async fn mpv(&self, path: &str) -> Result<(Vec<(u64, u64)>, u64, Duration)> {
        let log = self.0.path("access.log");
        std::fs::write(&log, "")?;
        let wall = mpv(&format!("{}/{path}", self.1)).await?;
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
}

// ---------------------------------------------------------------- small helpers

fn client() -> Result<Client> {
    let builder = Client::builder().timeout(STEP);
    let builder = builder.connect_timeout(Duration::from_secs(5));
    Ok(builder
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// GET `len` bytes at `offset` (206 and the full length required).
async fn fetch_range(client: &Client, url: &str, offset: u64, len: u64) -> Result<Bytes> {
    let range = format!("bytes={offset}-{}", offset + len - 1);
    let response = client.get(url).header("Range", &range).send().await?;
    let status = response.status();
    if status != 206 {
        bail!("GET {range} answered {status}: {}", response.text().await?);
    }
    let body = response.bytes().await.context("body")?;
    match body.len() as u64 == len {
        true => Ok(body),
        false => bail!("GET {range}: {} bytes", body.len()),
    }
}

/// GET from `offset` to the end; returns the response once its first bytes arrived (checked).
async fn first_byte(client: &Client, url: &str, offset: u64, data: &[u8]) -> Result<Response> {
    let range = format!("bytes={offset}-");
    let mut response = client.get(url).header("Range", &range).send().await?;
    let status = response.status();
    if status != 206 {
        bail!("GET {range} answered {status}: {}", response.text().await?);
    }
    let chunk = response.chunk().await?.context("empty body")?;
    check(&chunk, data, offset)?;
    Ok(response)
}

/// Writes `len` deterministic pseudo-random bytes (xorshift) to `root/name`; returns them.
fn generate(root: &Path, name: &str, len: u64, seed: u64) -> Result<Vec<u8>> {
    let mut state = seed.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let mut out = Vec::with_capacity(len as usize + 8);
    while (out.len() as u64) < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len as usize);
    std::fs::write(root.join(name), &out)?;
    Ok(out)
}

fn check(got: &[u8], data: &[u8], offset: u64) -> Result<()> {
    let start = offset as usize;
    match !got.is_empty() && data.get(start..start + got.len()) == Some(got) {
        true => Ok(()),
        false => bail!("{} bytes at {offset} differ from the data", got.len()),
    }
}

fn install(tool: &str, package: &str) -> String {
    format!("cannot run {tool}: install it with `apt-get install -y {package}`")
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn med_max(v: &[Duration]) -> String {
    let max = v.iter().max().copied().unwrap_or_default();
    format!("{} / {}", ms(median(v)), ms(max))
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1e3)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

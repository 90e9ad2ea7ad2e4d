//! Figures (j) and (k): what `/metrics` costs.
//!
//! (j) the hot path: warm random 64 KiB ranges over 16 connections (file complete, read cache
//! on) on two servers of the same binary, one with metrics on (the default) and one with
//! `metrics.enabled = false`, 5 alternating rounds of 60 000 requests each; the server's CPU
//! time per request (`/proc/{pid}/stat`, the median round on each side), requests per second,
//! RSS, and the first scrapes after the rounds (nothing scraped meanwhile).
//!
//! (k) the scrape: one server with 500 streams over 50 users (magnets nobody seeds, kept
//! resolving by a tracker that never answers, and a few torrents from the seeder being
//! played), `/metrics` read 20 times: latency, series, and the families with the most series
//! (with `BENCH_LOGS=DIR`, the last text is kept there); baseline: the same server before any
//! stream. Every body is checked.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering::Relaxed},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use futures::future::try_join_all;
use reqwest::Client;
use serde_json::{json, Value};
use tokio::{io::AsyncReadExt, net::TcpListener, task::JoinHandle, time::sleep};

use crate::client::{client, fetch_range};
use crate::report::{row, secs, Row};
use crate::server::{proc_cpu, proc_mib, with_server, with_server_as, Server, Settings};
use crate::swarm::{check, Swarm};
use crate::MIB;

/// (j): the range size (small, so the per-request work dominates the byte copying), the
/// connections, the requests per round and its time bound, the rounds per side (about 5 s
/// each: CPU time comes in 10 ms ticks).
const RANGE: u64 = 64 * 1024;
const CONNECTIONS: usize = 16;
const PER_ROUND: u64 = 60_000;
const ROUND_LIMIT: Duration = Duration::from_secs(30);
const ROUNDS: usize = 5;
/// (j) goal: CPU per request with metrics on at most this much above off, in percent.
const OVERHEAD_GOAL: f64 = 3.0;

/// (k): streams, the users they are spread over, how many are torrents being played, scrapes.
const STREAMS: usize = 500;
const USERS: usize = 50;
const PLAYING: usize = 4;
const SCRAPES: usize = 20;
/// (k) goals: every scrape within this, at most this many series.
const SCRAPE_GOAL: Duration = Duration::from_millis(10);
const SERIES_GOAL: usize = 500;

/// (j) CPU per request with metrics on and off, alternating rounds on two servers.
pub async fn figure_j() -> Result<Vec<Row>> {
    let swarm = Swarm::start(None).await?;
    let result = async {
        let (data, seeded) = swarm.seed_generated("hot.mkv", 64 * MIB, 11, None).await?;
        let data = Arc::new(data);
        let metrics_off = vec![("MAGNETAR__METRICS__ENABLED".into(), "false".into())];
        with_server(async |on: &Server| {
            with_server_as(Settings::BenchWith(metrics_off), async |off: &Server| {
                compare(on, off, &seeded.magnet, &data).await
            })
            .await
        })
        .await
    }
    .await;
    swarm.stop().await;
    let (on, off) = result?;
    let (on_total, off_total) = (on.total(), off.total());
    let overhead = (on.cpu_us() / off.cpu_us().max(1e-9) - 1.0) * 100.0;
    let overall = (on_total.cpu_us() / off_total.cpu_us().max(1e-9) - 1.0) * 100.0;
    println!(
        "(j) metrics on: {}; metrics off: {}; CPU per request {overhead:+.1}% (median rounds), \
         {overall:+.1}% (totals)",
        on_total.text(),
        off_total.text()
    );
    let ours = format!(
        "on {:.1} µs CPU/req ({overhead:+.1}%), {:.0} req/s",
        on.cpu_us(),
        on_total.rps()
    );
    let base = format!(
        "off {:.1} µs CPU/req, {:.0} req/s",
        off.cpu_us(),
        off_total.rps()
    );
    let met = overhead <= OVERHEAD_GOAL && on_total.errors == 0 && off_total.errors == 0;
    let goal = format!("≤ +{OVERHEAD_GOAL:.0}%");
    let figure = "(j) metrics on vs off: 64 KiB ranges, 16 conns";
    let rss = |side: &Side| format!("{} → {} MiB", side.rss.0, side.rss.1);
    let (ours_rss, base_rss) = (format!("on {}", rss(&on)), format!("off {}", rss(&off)));
    let figure_rss = "(j) server RSS before → after the rounds";
    let (first, second, rss_scraped) = on.scrapes;
    println!(
        "(j) metrics on, no scrape during the rounds: RSS {}; then /metrics {} ms, again {} ms, \
         RSS {rss_scraped} MiB",
        rss(&on),
        ms1(first),
        ms1(second)
    );
    let scraped = format!("{} ms, then {} ms", ms1(first), ms1(second));
    let figure_scrape = "(j) first /metrics after the rounds (on)";
    Ok(vec![
        row(figure, &ours, &base, &goal, Some(met)),
        row(figure_rss, &ours_rss, &base_rss, "-", None),
        row(figure_scrape, &scraped, "-", "-", None),
    ])
}

/// One side of (j): its rounds, its server's RSS (MiB) before and after them, and (metrics
/// on) the first two scrapes after them with the RSS after those.
#[derive(Default)]
struct Side {
    rounds: Vec<Load>,
    rss: (u64, u64),
    scrapes: (Duration, Duration, u64),
}

impl Side {
    fn total(&self) -> Load {
        let mut sum = Load::default();
        self.rounds.iter().for_each(|round| sum.add(*round));
        sum
    }

    /// The median round's CPU microseconds per request (a round that machine noise hit
    /// does not move it).
    fn cpu_us(&self) -> f64 {
        let mut each: Vec<f64> = self.rounds.iter().map(Load::cpu_us).collect();
        each.sort_by(f64::total_cmp);
        each.get(each.len() / 2).copied().unwrap_or_default()
    }
}

/// One stream per server, its file complete and in the read cache; then [`ROUNDS`] rounds on
/// each, alternating which goes first. Returns the rounds with metrics on and off.
async fn compare(
    on: &Server,
    off: &Server,
    magnet: &str,
    data: &Arc<Vec<u8>>,
) -> Result<(Side, Side)> {
    let http = client()?;
    let mut urls = Vec::new();
    for server in [on, off] {
        let (id, url) = server.create(magnet).await?;
        server.wait_ready(&id).await?;
        // The whole file once (it is then complete, and in the read cache), then warm-up.
        let body = fetch_range(&http, &url, 0, data.len() as u64).await?;
        check(&body, data, 0)?;
        wait_complete(server, &id).await?;
        hammer(&url, data, 2000, server.pid).await?;
        urls.push(url);
    }
    // The switch took: /metrics answers on the one server and is gone on the other.
    for (server, want) in [(on, 200), (off, 404)] {
        let url = format!("{}/metrics", server.base());
        let status = http.get(url).send().await?.status();
        if status != want {
            bail!("GET /metrics answered {status}, not {want}");
        }
    }
    let (mut with, mut without) = (Side::default(), Side::default());
    with.rss.0 = proc_mib(on.pid, "VmRSS");
    without.rss.0 = proc_mib(off.pid, "VmRSS");
    for round in 0..ROUNDS {
        let order = match round % 2 {
            0 => [true, false],
            _ => [false, true],
        };
        for metrics in order {
            let (server, url, side) = match metrics {
                true => (on, &urls[0], &mut with),
                false => (off, &urls[1], &mut without),
            };
            let load = hammer(url, data, PER_ROUND, server.pid).await?;
            let name = if metrics { "on" } else { "off" };
            println!("(j) round {} metrics {name}: {}", round + 1, load.text());
            side.rounds.push(load);
        }
    }
    with.rss.1 = proc_mib(on.pid, "VmRSS");
    without.rss.1 = proc_mib(off.pid, "VmRSS");
    // Nothing scraped the server meanwhile: the first scrape drains what piled up.
    let (first, _) = scrape(&http, on.base()).await?;
    let (second, _) = scrape(&http, on.base()).await?;
    with.scrapes = (first, second, proc_mib(on.pid, "VmRSS"));
    Ok((with, without))
}

/// Polls the stream until all of its file is downloaded (1 minute at most).
async fn wait_complete(server: &Server, id: &str) -> Result<()> {
    for _ in 0..240 {
        let stream = server.get_stream(id).await?;
        let (bytes, total) = (&stream["progress"]["bytes"], &stream["progress"]["total"]);
        if total.as_u64().is_some_and(|t| t > 0) && bytes == total {
            return Ok(());
        }
        sleep(Duration::from_millis(250)).await;
    }
    bail!("stream {id} not complete within 1 minute")
}

/// Totals of load rounds.
#[derive(Default, Clone, Copy)]
struct Load {
    requests: u64,
    errors: u64,
    secs: f64,
    /// CPU time (user + system) the server used meanwhile.
    cpu: f64,
}

impl Load {
    fn add(&mut self, other: Load) {
        (self.requests, self.errors) = (self.requests + other.requests, self.errors + other.errors);
        (self.secs, self.cpu) = (self.secs + other.secs, self.cpu + other.cpu);
    }

    fn rps(&self) -> f64 {
        self.requests as f64 / self.secs.max(1e-9)
    }

    /// Server CPU microseconds per request.
    fn cpu_us(&self) -> f64 {
        self.cpu * 1e6 / self.requests.max(1) as f64
    }

    fn text(&self) -> String {
        let errors = match self.errors {
            0 => String::new(),
            n => format!(", {n} errors"),
        };
        format!(
            "{} requests in {:.1} s, {:.0} req/s, {:.2} CPU-s, {:.1} µs CPU/req{errors}",
            self.requests,
            self.secs,
            self.rps(),
            self.cpu,
            self.cpu_us()
        )
    }
}

/// [`CONNECTIONS`] connections of random [`RANGE`] ranges (every other one aligned), at most
/// `total` requests or [`ROUND_LIMIT`]; every body is checked against `data`. `pid` is the
/// server's, whose CPU time is measured.
async fn hammer(url: &str, data: &Arc<Vec<u8>>, total: u64, pid: u32) -> Result<Load> {
    let (http, issued) = (client()?, Arc::new(AtomicU64::new(0)));
    let cpu_before = proc_cpu(pid);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (http, url, data) = (http.clone(), url.to_owned(), data.clone());
        let issued = issued.clone();
        tasks.spawn(async move {
            let mut load = Load::default();
            loop {
                let i = issued.fetch_add(1, Relaxed);
                if i >= total || started.elapsed() >= ROUND_LIMIT {
                    return load;
                }
                let offset = crate::load::random_offset(i, data.len() as u64, RANGE);
                let body = fetch_range(&http, &url, offset, RANGE).await;
                match body.and_then(|b| check(&b, &data, offset)) {
                    Ok(()) => load.requests += 1,
                    Err(_) => load.errors += 1,
                }
            }
        });
    }
    let mut sum = Load::default();
    while let Some(load) = tasks.join_next().await {
        sum.add(load?);
    }
    sum.secs = secs(started.elapsed());
    sum.cpu = secs(proc_cpu(pid).saturating_sub(cpu_before));
    Ok(sum)
}

/// (k) `/metrics` with 500 streams, against the same server with none.
pub async fn figure_k() -> Result<Vec<Row>> {
    let swarm = Swarm::start(None).await?;
    let tracker = SilentTracker::start().await?;
    let result = async {
        let mut played = Vec::new();
        for k in 0..PLAYING {
            let name = format!("played-{k}.mkv");
            let seed = 60 + k as u64;
            let (data, seeded) = swarm.seed_generated(&name, 16 * MIB, seed, None).await?;
            played.push((Arc::new(data), seeded.magnet));
        }
        let settings = Settings::BenchWith(crowded_env());
        with_server_as(settings, async |server: &Server| {
            scrapes_with_streams(server, &played, tracker.port).await
        })
        .await
    }
    .await;
    let connections = tracker.stop();
    swarm.stop().await;
    let (empty, full, states) = result?;
    println!(
        "(k) 0 streams: {}; {STREAMS} streams ({states}): {}; the silent tracker had \
         {connections} connections",
        empty.text(),
        full.text()
    );
    println!("(k) largest metric families: {}", full.largest(6));
    let (ours, base) = (full.latency(), format!("0 streams: {}", empty.latency()));
    let met = full.max() <= SCRAPE_GOAL;
    let goal = format!("≤ {} ms", SCRAPE_GOAL.as_millis());
    let figure = format!("(k) scrape median / max, {STREAMS} streams");
    let mut rows = vec![row(&figure, &ours, &base, &goal, Some(met))];
    let series = format!("{} series, {} KiB", full.series, full.bytes / 1024);
    let base = format!("0 streams: {} series", empty.series);
    let figure = format!("(k) series in /metrics, {STREAMS} streams");
    let goal = format!("≤ {SERIES_GOAL}");
    let met = full.series <= SERIES_GOAL;
    rows.push(row(&figure, &series, &base, &goal, Some(met)));
    Ok(rows)
}

/// Quotas and rate limits off (one user would hit them, and so would the burst of creations),
/// and a short metadata wait: nobody seeds most magnets, so creations answer 202 at once.
fn crowded_env() -> Vec<(String, String)> {
    [
        ("MAGNETAR__LIMITS__MAX_STREAMS_PER_USER", "0"),
        ("MAGNETAR__LIMITS__MAX_STREAMS", "0"),
        ("MAGNETAR__LIMITS__STREAMS_PER_MINUTE", "0"),
        ("MAGNETAR__LIMITS__API_PER_MINUTE", "0"),
        ("MAGNETAR__ENGINE__METADATA_WAIT", "20ms"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into()
}

/// The baseline scrapes (no stream), then the streams created, the torrents played, and the
/// scrapes with the players still reading. Returns both sets and the streams' states.
async fn scrapes_with_streams(
    server: &Server,
    played: &[(Arc<Vec<u8>>, String)],
    tracker: u16,
) -> Result<(Scrapes, Scrapes, String)> {
    let empty = scrape_n(server).await?;
    let names: Vec<String> = (0..USERS).map(|u| format!("crowd-{u:02}")).collect();
    let tokens = try_join_all(names.iter().map(|user| server.token(user))).await?;
    // Each user creates its share, one after the other; the first PLAYING users start with a
    // torrent the seeder has.
    let per_user = STREAMS / USERS;
    let creations = tokens.iter().enumerate().map(|(u, token)| async move {
        let mut first = None;
        for n in 0..per_user {
            let magnet = match (n, played.get(u)) {
                (0, Some((_, magnet))) => magnet.clone(),
                _ => silent_magnet((u * per_user + n) as u64, tracker),
            };
            let stream = post_stream(server, token, &magnet).await?;
            if n == 0 && u < played.len() {
                first = Some(stream["id"].as_str().context("no id")?.to_owned());
            }
        }
        anyhow::Ok(first)
    });
    let started = Instant::now();
    let firsts = try_join_all(creations).await?;
    println!(
        "(k) {STREAMS} streams created by {USERS} users in {:.1} s",
        secs(started.elapsed())
    );
    // The torrents played: each read whole once, then read on in the background.
    let mut urls = Vec::new();
    for (u, id) in firsts.into_iter().enumerate().take(played.len()) {
        let id = id.context("no stream of the seeder")?;
        let url = wait_direct(server, &tokens[u], &id).await?;
        let data = &played[u].0;
        for offset in (0..data.len() as u64).step_by(MIB as usize) {
            let body = fetch_range(&server.client, &url, offset, MIB).await?;
            check(&body, data, offset)?;
        }
        urls.push(url);
    }
    let players = Players::start(&server.client, &urls, played);
    let states = stream_states(&scrape(&server.client, server.base()).await?.1);
    let full = scrape_n(server).await;
    let (requests, errors) = players.stop().await;
    let full = full?;
    let states = format!("{states}; {requests} ranges played during the scrapes");
    if errors > 0 {
        bail!("{errors} of the players' ranges failed");
    }
    Ok((empty, full, states))
}

/// A magnet nobody seeds, distinct per `n`, whose only tracker (on `tracker`) never answers:
/// its stream stays resolving.
fn silent_magnet(n: u64, tracker: u16) -> String {
    format!(
        "magnet:?xt=urn:btih:{:040x}&dn=crowd{n}&tr=http%3A%2F%2F127.0.0.1%3A{tracker}%2Fannounce",
        n.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
    )
}

/// POST /api/v1/streams as the user of `token` (200, 201 or 202); the Stream object.
async fn post_stream(server: &Server, token: &str, magnet: &str) -> Result<Value> {
    let url = format!("{}/api/v1/streams", server.base());
    let request = server.client.post(url).bearer_auth(token);
    let response = request.json(&json!({ "magnet": magnet })).send().await?;
    let (status, body) = (response.status(), response.text().await?);
    if !matches!(status.as_u16(), 200..=202) {
        bail!("POST /api/v1/streams answered {status}: {body}");
    }
    Ok(serde_json::from_str(&body)?)
}

/// Polls the user's stream until it is ready (2 minutes at most); its absolute direct URL.
async fn wait_direct(server: &Server, token: &str, id: &str) -> Result<String> {
    let url = format!("{}/api/v1/streams/{id}", server.base());
    for _ in 0..480 {
        let response = server.client.get(&url).bearer_auth(token).send().await?;
        let (status, body) = (response.status(), response.text().await?);
        if status != 200 {
            bail!("GET /api/v1/streams/{id} answered {status}: {body}");
        }
        let stream: Value = serde_json::from_str(&body)?;
        match stream["state"].as_str() {
            Some("ready") => {
                let direct = stream["urls"]["direct"].as_str().context("no direct URL")?;
                return Ok(format!("{}{direct}", server.base()));
            }
            Some("error") => bail!("stream failed: {stream}"),
            _ => sleep(Duration::from_millis(250)).await,
        }
    }
    bail!("stream {id} not ready within 2 minutes")
}

/// Readers of the played torrents: sequential 256 KiB ranges (checked), 10 a second each,
/// from the start again at the end, until stopped.
struct Players {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<(u64, u64)>>,
}

impl Players {
    fn start(http: &Client, urls: &[String], played: &[(Arc<Vec<u8>>, String)]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = urls.iter().zip(played).map(|(url, (data, _))| {
            let (http, url, data, stop) = (http.clone(), url.clone(), data.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut offset, len, mut done) = (0, 256 * 1024, (0, 0));
                while !stop.load(Relaxed) {
                    let body = fetch_range(&http, &url, offset, len).await;
                    match body.and_then(|b| check(&b, &data, offset)) {
                        Ok(()) => done.0 += 1,
                        Err(_) => done.1 += 1,
                    }
                    offset = (offset + len) % data.len() as u64;
                    sleep(Duration::from_millis(100)).await;
                }
                done
            })
        });
        let tasks = tasks.collect();
        Players { stop, tasks }
    }

    /// Stops the readers; the ranges they read and those that failed.
    async fn stop(self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        let mut sum = (0, 0);
        for task in self.tasks {
            let (done, failed) = task.await.unwrap_or((0, 1));
            sum = (sum.0 + done, sum.1 + failed);
        }
        sum
    }
}

/// The scrapes of one server state: their times, and the series and size of the last.
struct Scrapes {
    times: Vec<Duration>,
    series: usize,
    bytes: usize,
    /// Series by metric family (histogram suffixes folded in).
    families: BTreeMap<String, usize>,
}

impl Scrapes {
    fn max(&self) -> Duration {
        self.times.iter().max().copied().unwrap_or_default()
    }

    /// "median / max" in milliseconds with a decimal.
    fn latency(&self) -> String {
        let median = crate::report::median(&self.times);
        format!("{} / {} ms", ms1(median), ms1(self.max()))
    }

    fn text(&self) -> String {
        let times: Vec<String> = self.times.iter().map(|t| ms1(*t)).collect();
        format!(
            "scrapes {} ms ({} series, {} bytes)",
            times.join(" "),
            self.series,
            self.bytes
        )
    }

    /// The `n` families with the most series, as "name count, …".
    fn largest(&self, n: usize) -> String {
        let mut families: Vec<(&String, &usize)> = self.families.iter().collect();
        families.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let named = |(family, count): &(&String, &usize)| format!("{family} {count}");
        let top: Vec<String> = families.iter().take(n).map(named).collect();
        top.join(", ")
    }
}

/// [`SCRAPES`] reads of `/metrics`, one after the other, 50 ms apart.
async fn scrape_n(server: &Server) -> Result<Scrapes> {
    let mut times = Vec::new();
    let mut last = String::new();
    for _ in 0..SCRAPES {
        let (took, text) = scrape(&server.client, server.base()).await?;
        times.push(took);
        last = text;
        sleep(Duration::from_millis(50)).await;
    }
    let kept = format!("metrics-{}-streams.txt", server_streams(&last));
    keep(&kept, &last);
    let is_series = |l: &&str| !l.is_empty() && !l.starts_with('#');
    let mut families = BTreeMap::new();
    let mut series = 0;
    for line in last.lines().filter(is_series) {
        series += 1;
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .unwrap_or(name);
        *families.entry(family.to_owned()).or_insert(0) += 1;
    }
    Ok(Scrapes {
        times,
        series,
        bytes: last.len(),
        families,
    })
}

/// GET /metrics from loopback: the time to the whole body, and the body (200 required).
async fn scrape(http: &Client, base: &str) -> Result<(Duration, String)> {
    let started = Instant::now();
    let response = http.get(format!("{base}/metrics")).send().await?;
    let status = response.status();
    let text = response.text().await?;
    let took = started.elapsed();
    match status.as_u16() {
        200 => Ok((took, text)),
        _ => bail!("GET /metrics answered {status}: {text}"),
    }
}

/// With `BENCH_LOGS=DIR`, writes `text` to `DIR/{name}`.
fn keep(name: &str, text: &str) {
    if let Some(dir) = std::env::var_os("BENCH_LOGS") {
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(std::path::Path::new(&dir).join(name), text);
    }
}

/// The streams a scrape counts (all states of `magnetar_streams`).
fn server_streams(text: &str) -> u64 {
    let values = text.lines().filter(|l| l.starts_with("magnetar_streams{"));
    let counts = values.filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok());
    counts.sum::<f64>() as u64
}

/// "N resolving, N ready, N failed" from `magnetar_streams` in a scrape.
fn stream_states(text: &str) -> String {
    let states = ["resolving", "ready", "failed"].map(|state| {
        let prefix = format!("magnetar_streams{{state=\"{state}\"}} ");
        let line = text.lines().find_map(|l| l.strip_prefix(&prefix));
        format!("{} {state}", line.unwrap_or("?"))
    });
    states.join(", ")
}

/// A tracker that accepts connections and never answers; each is held until its client
/// closes it (or the tracker stops).
struct SilentTracker {
    port: u16,
    accepted: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl SilentTracker {
    async fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let accepted = Arc::new(AtomicU64::new(0));
        let counted = accepted.clone();
        let task = tokio::spawn(async move {
            let mut held = tokio::task::JoinSet::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                counted.fetch_add(1, Relaxed);
                held.spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(1..) = socket.read(&mut buf).await {}
                });
                while held.try_join_next().is_some() {}
            }
        });
        Ok(SilentTracker {
            port,
            accepted,
            task,
        })
    }

    /// Stops it (its connections close); how many it accepted.
    fn stop(self) -> u64 {
        self.task.abort();
        self.accepted.load(Relaxed)
    }
}

/// A duration in milliseconds with one decimal.
fn ms1(d: Duration) -> String {
    format!("{:.1}", secs(d) * 1e3)
}

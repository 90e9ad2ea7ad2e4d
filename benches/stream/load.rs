//! Figures (c) and (d): load on a warm and on fresh torrents. (c) random 1 MiB ranges over
//! 16 connections, Magnetar against nginx on the same file; (d) 200 concurrent 2 MiB readers
//! across 4 fresh torrents, with the server's memory. Every body is checked.

use std::{
    sync::{atomic::AtomicU64, atomic::Ordering::Relaxed, Arc},
    time::{Duration, Instant},
};

use anyhow::Result;
use reqwest::Client;
use tokio::time::timeout_at;

use crate::client::{client, fetch_range};
use crate::nginx::Nginx;
use crate::report::{row, secs, Row};
use crate::server::{proc_cpu, proc_mib, with_server, with_server_as, Server, Settings};
use crate::swarm::{check, Swarm};
use crate::MIB;

/// (c) warm random 1 MiB ranges over 16 connections, Magnetar against nginx, with the read
/// cache on (the default) and off; with each side's CPU time per GB served.
pub async fn figure_c() -> Result<Vec<Row>> {
    let swarm = Swarm::start(None).await?;
    let (data, seeded) = swarm.seed_generated("warm.mkv", 64 * MIB, 7, None).await?;
    let data = Arc::new(data);
    let nginx = Nginx::start(swarm.root()).await?;
    let nginx_pid = nginx.pid();
    let mut rows = Vec::new();
    let off = ("MAGNETAR__STORAGE__READ_CACHE_BYTES".into(), "0".into());
    for (cache, settings) in [
        ("on", Settings::Bench),
        ("off", Settings::BenchWith(vec![off])),
    ] {
        let result = with_server_as(settings, async |server: &Server| {
            let (id, url) = server.create(&seeded.magnet).await?;
            server.wait_ready(&id).await?;
            let nginx_url = nginx.url("warm.mkv");
            let (mut ours, mut theirs) = (Rate::default(), Rate::default());
            hammer(&url, &data, 100, server.pid).await?; // warm-up: connections, caches
            for _ in 0..3 {
                theirs.add(hammer(&nginx_url, &data, 2000, nginx_pid).await?);
                ours.add(hammer(&url, &data, 2000, server.pid).await?);
            }
            Ok((ours, theirs))
        })
        .await;
        let (ours, theirs) = match result {
            Ok(rates) => rates,
            Err(err) => {
                nginx.stop().await;
                swarm.stop().await;
                return Err(err);
            }
        };
        println!(
            "(c) cache {cache}: magnetar {}; nginx {}",
            ours.text(),
            theirs.text()
        );
        let ratio = ours.mbps() / theirs.mbps();
        let text = format!("{} (×{ratio:.2})", ours.text());
        let (base, met) = (
            format!("nginx {}", theirs.text()),
            ratio >= 0.9 && ours.errors == 0,
        );
        let figure = format!("(c) warm 1 MiB ranges, 16 conns, read cache {cache}");
        // The goal is the product's: the default configuration (cache on).
        let verdict = (cache == "on").then_some(met);
        rows.push(row(&figure, &text, &base, "≥ 0.9×", verdict));
    }
    nginx.stop().await;
    swarm.stop().await;
    Ok(rows)
}

/// Totals of load runs.
#[derive(Default)]
struct Rate {
    bytes: u64,
    requests: u64,
    errors: u64,
    secs: f64,
    /// CPU time the server used meanwhile.
    cpu: f64,
}

impl Rate {
    fn add(&mut self, other: Rate) {
        (self.bytes, self.requests) = (self.bytes + other.bytes, self.requests + other.requests);
        (self.errors, self.secs) = (self.errors + other.errors, self.secs + other.secs);
        self.cpu += other.cpu;
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
        let cpu = self.cpu / (self.bytes as f64 / 1e9).max(1e-9);
        format!(
            "{:.0} MB/s, {rps:.0} req/s, {cpu:.2} CPU-s/GB{errors}",
            self.mbps()
        )
    }
}

/// 16 connections of random 1 MiB ranges (every other one MiB-aligned), at most `total`
/// requests or 10 s; every body is checked against `data`. `pid` is the server's, whose CPU
/// time is measured.
async fn hammer(url: &str, data: &Arc<Vec<u8>>, total: u64, pid: u32) -> Result<Rate> {
    let (client, issued) = (client()?, Arc::new(AtomicU64::new(0)));
    let cpu_before = proc_cpu(pid);
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
                let offset = random_offset(i, data.len() as u64, MIB);
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
    sum.cpu = secs(proc_cpu(pid).saturating_sub(cpu_before));
    Ok(sum)
}

/// The `i`th request's offset for a `range`-byte read in a file of `len` bytes (splitmix64 of
/// `i`); even `i` are aligned to `range`.
pub(crate) fn random_offset(i: u64, len: u64, range: u64) -> u64 {
    let z = (i ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let z = (z ^ (z >> 31)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let span = len - range;
    match i.is_multiple_of(2) {
        true => (z % (span / range + 1)) * range,
        false => z % (span + 1),
    }
}

/// (d) 200 concurrent 2 MiB readers across 4 fresh 32 MiB torrents.
pub async fn figure_d() -> Result<Vec<Row>> {
    let swarm = Swarm::start(None).await?;
    let (mut datas, mut seeds) = (Vec::new(), Vec::new());
    for k in 0..4 {
        let name = format!("many-{k}.mkv");
        let (data, seeded) = swarm.seed_generated(&name, 32 * MIB, 40 + k, None).await?;
        datas.push(Arc::new(data));
        seeds.push(seeded);
    }
    let result = with_server(async |server: &Server| {
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
    })
    .await;
    swarm.stop().await;
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

//! Figure (i): what active HLS sessions cost. 1, 2 and 4 viewers (each a stream of the
//! downloaded 2-hour MKV, so each its own session) start playing (init segment, segments 0
//! and 1), then seek to 40:00 (two segments there); after each step the server's RSS and its
//! ffmpeg jobs (how many, how many paused, their RSS and PSS) are sampled for 3 s, the highest
//! kept. Baseline: the
//! same server idle, with the torrent downloaded and no session. A fresh server per count.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::future::try_join_all;
use magnetar::seeder::{Seeded, Seeder};

use crate::fixtures::long_mkv;
use crate::hls::Rendition;
use crate::report::{row, Row};
use crate::server::{proc_mib, with_server, Server};
use crate::sidecar::{ffmpeg_usage, wait_no_ffmpeg, JobUsage};
use crate::wait_stopped;

/// 40:00, where the viewers seek.
const SEEK_TO: f64 = 2400.0;
/// ffmpeg jobs a session may run (DESIGN.md: at most 2).
const JOBS_PER_SESSION: usize = 2;

/// The highest of the samples: server RSS (MiB) and its ffmpeg jobs.
#[derive(Default, Clone, Copy)]
struct Usage {
    server: u64,
    jobs: JobUsage,
}

/// (i) server RSS and ffmpeg processes with 1, 2, 4 sessions playing, then after a seek.
pub async fn figure_i() -> Result<Vec<Row>> {
    let file = long_mkv().await?;
    let seeder = Seeder::start(None).await?;
    let result = async {
        let seeded = seeder.seed(&file).await?;
        let mut rows = Vec::new();
        for n in [1, 2, 4] {
            let [idle, playing, seeked] =
                with_server(async |server: &Server| sessions(server, &seeded, n).await).await?;
            let base = format!("idle server {} MiB, {} ffmpeg", idle.server, idle.jobs.jobs);
            for (what, usage) in [("playing", playing), ("after a seek", seeked)] {
                let jobs = usage.jobs;
                println!(
                    "(i) {n} session(s) {what}: server RSS {} MiB (idle {} MiB); {} ffmpeg jobs \
                     ({} paused), RSS {} MiB, PSS {} MiB together",
                    usage.server, idle.server, jobs.jobs, jobs.paused, jobs.rss, jobs.pss
                );
                let figure = format!("(i) {n} session(s) {what}, per session");
                let met = jobs.jobs <= JOBS_PER_SESSION * n;
                let goal = format!("≤ {JOBS_PER_SESSION} ffmpeg");
                rows.push(row(&figure, &text(usage, idle, n), &base, &goal, Some(met)));
            }
        }
        anyhow::Ok(rows)
    }
    .await;
    wait_stopped(seeder.stop()).await;
    result
}

/// Per session: "+X MiB, Y ffmpeg × Z MiB (PSS W)", server growth over idle and the jobs.
fn text(usage: Usage, idle: Usage, n: usize) -> String {
    let per = |v: f64| v / n as f64;
    let grown = per(usage.server as f64 - idle.server as f64);
    let jobs = usage.jobs;
    let each = |mib: u64| mib as f64 / jobs.jobs.max(1) as f64;
    let (rss, pss) = (each(jobs.rss), each(jobs.pss));
    let count = per(jobs.jobs as f64);
    format!("+{grown:.1} MiB, {count:.1} ffmpeg × {rss:.0} MiB (PSS {pss:.0})")
}

/// `n` viewers on `server`: usage idle, playing, after the seek. Their streams are deleted
/// at the end (their ffmpeg jobs end).
async fn sessions(server: &Server, seeded: &Seeded, n: usize) -> Result<[Usage; 3]> {
    let keep = server.stream(&seeded.magnet).await?;
    server
        .wait_ready(keep["id"].as_str().context("no id")?)
        .await?;
    let mut viewers = Vec::new();
    for k in 0..n {
        let token = server.token(&format!("viewer{k}")).await?;
        let stream = server.stream_as(&token, &seeded.magnet).await?;
        let id = stream["id"].as_str().context("no id")?.to_owned();
        viewers.push((token, id, server.master_url(&stream)?));
    }
    let idle = sample(server.pid).await;
    let open = viewers.iter().map(|(_, _, master)| start(server, master));
    let renditions = try_join_all(open).await?;
    let playing = sample(server.pid).await;
    try_join_all(renditions.iter().map(seek)).await?;
    let seeked = sample(server.pid).await;
    for (token, id, _) in &viewers {
        server.delete_as(token, id).await?;
    }
    wait_no_ffmpeg(server.pid, Duration::from_secs(15)).await?;
    Ok([idle, playing, seeked])
}

/// A player starting: playlists, init segment, segments 0 and 1.
async fn start(server: &Server, master: &str) -> Result<Rendition> {
    let rendition = Rendition::open(&server.client, master).await?;
    rendition.get(&rendition.init).await?.bytes().await?;
    for n in 0..2 {
        rendition.segment(n).await?;
    }
    Ok(rendition)
}

/// A player seeking to [`SEEK_TO`]: the segment there and the next.
async fn seek(rendition: &Rendition) -> Result<()> {
    let at = rendition.segment_at(SEEK_TO);
    for n in at..at + 2 {
        rendition.segment(n).await?;
    }
    Ok(())
}

/// The highest usage over 3 s, sampled every 100 ms.
async fn sample(pid: u32) -> Usage {
    let mut high = Usage::default();
    for _ in 0..30 {
        let jobs = ffmpeg_usage(pid);
        high.server = high.server.max(proc_mib(pid, "VmRSS"));
        high.jobs.jobs = high.jobs.jobs.max(jobs.jobs);
        high.jobs.paused = high.jobs.paused.max(jobs.paused);
        high.jobs.rss = high.jobs.rss.max(jobs.rss);
        high.jobs.pss = high.jobs.pss.max(jobs.pss);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    high
}

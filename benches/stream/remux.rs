//! Figures (f) and (h): the HLS remux of an H.264 + AC-3 MKV (video copied, audio to AAC)
//! against the server's own ffmpeg command run alone on the same local file.
//! - (f) master playlist request → first bytes of segment 0, on a fresh torrent and on a
//!   downloaded one; baseline: that ffmpeg alone until its playlist lists the GOP fragments
//!   that make segment 0 (and, printed, until its first fragment file exists). Segment 0's
//!   bytes are compared with those fragments.
//! - (h) every segment of a 10-minute file requested in order, to the last byte; baseline: that
//!   ffmpeg alone to its end. The ratio is ffmpeg alone's time over Magnetar's.

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use magnetar::seeder::{Seeded, Seeder};
use serde_json::Value;

use crate::fixtures::{long_mkv, short_mkv, SHORT_SECS};
use crate::hls::Rendition;
use crate::report::{med_max, median, ms, row, secs, Row};
use crate::server::{with_server, Server};
use crate::sidecar::{ffmpeg_jobs, server_command, wait_no_ffmpeg, Alone};
use crate::{wait_stopped, within, STEP};

/// How long the server may take to end its ffmpeg jobs once their streams are deleted.
const JOBS_END: Duration = Duration::from_secs(15);

/// (f) master playlist → segment 0's first bytes, 5 runs on a fresh server each.
pub async fn figure_f() -> Result<Vec<Row>> {
    let file = long_mkv().await?;
    let seeder = Seeder::start(None).await?;
    let seeded = seeder.seed(&file).await;
    let mut times: [Vec<Duration>; 3] = Default::default();
    let result = async {
        let seeded = seeded?;
        for run in 0..5 {
            let (cold, warm, command) = first_segment_run(&seeded).await?;
            let mut alone = Alone::spawn(&command, &file)?;
            let (gop, covered) = alone.until_covered(cold.seconds).await?;
            let same = alone.first_fragments(cold.seconds)?;
            let same = [&cold, &warm].map(|s| if s.body == same { "same" } else { "DIFFERENT" });
            println!(
                "(f) run {run}: fresh torrent {}; downloaded {}; ffmpeg alone: first GOP file \
                 {}, segment 0's {:.1} s of GOPs {}; segment 0 bytes vs ffmpeg alone's: {}, {}",
                cold.text(),
                warm.text(),
                ms(gop),
                cold.seconds,
                ms(covered),
                same[0],
                same[1]
            );
            times[0].push(cold.first_bytes);
            times[1].push(warm.first_bytes);
            times[2].push(covered);
        }
        anyhow::Ok(())
    }
    .await;
    wait_stopped(seeder.stop()).await;
    result?;
    let base = format!("ffmpeg alone {}", med_max(&times[2]));
    let goal = Duration::from_secs(1);
    let rows = [("fresh torrent", &times[0]), ("downloaded", &times[1])].map(|(what, t)| {
        let figure = format!("(f) master → seg 0, {what}, med/max");
        row(
            &figure,
            &med_max(t),
            &base,
            "≤ 1 s",
            Some(median(t) <= goal),
        )
    });
    Ok(rows.to_vec())
}

/// What a player waits for before its first segment.
struct FirstSegment {
    /// Master and rendition playlists, the init segment, segment 0's first bytes: each from
    /// the master playlist request.
    playlists: Duration,
    init: Duration,
    first_bytes: Duration,
    /// Segment 0's duration and body.
    seconds: f64,
    body: Vec<u8>,
}

impl FirstSegment {
    fn text(&self) -> String {
        let (playlists, init, first) = (ms(self.playlists), ms(self.init), ms(self.first_bytes));
        let bytes = self.body.len();
        format!("playlists {playlists}, init {init}, segment 0 first bytes {first} ({bytes} B)")
    }
}

/// On a fresh server: a fresh torrent's first segment, then (once the torrent is downloaded)
/// another user's stream of it, each alone on the server; and the server's ffmpeg command.
async fn first_segment_run(seeded: &Seeded) -> Result<(FirstSegment, FirstSegment, Vec<String>)> {
    with_server(async |server: &Server| {
        let viewer = server.token("viewer").await?;
        let stream = server.stream(&seeded.magnet).await?;
        let cold = first_segment(server, &stream).await?;
        let command = server_command(server.pid).await?;
        let id = id_of(&stream)?;
        server.wait_ready(id).await?;
        let other = server.stream_as(&viewer, &seeded.magnet).await?;
        server.delete(id).await?;
        wait_no_ffmpeg(server.pid, JOBS_END).await?;
        let warm = first_segment(server, &other).await?;
        server.delete_as(&viewer, id_of(&other)?).await?;
        wait_no_ffmpeg(server.pid, JOBS_END).await?;
        Ok((cold, warm, command))
    })
    .await
}

/// Master playlist → rendition playlist → init segment → segment 0 to its end, as a player
/// asks for them; the times are from the master playlist request.
async fn first_segment(server: &Server, stream: &Value) -> Result<FirstSegment> {
    let master = server.master_url(stream)?;
    within(STEP, "timed out", async {
        let started = Instant::now();
        let rendition = Rendition::open(&server.client, &master).await?;
        let playlists = started.elapsed();
        rendition.get(&rendition.init).await?.bytes().await?;
        let init = started.elapsed();
        let (seconds, uri) = rendition.segments.first().context("no segment")?;
        let mut response = rendition.get(uri).await?;
        let chunk = response.chunk().await?.context("segment 0 is empty")?;
        let first_bytes = started.elapsed();
        let mut body = chunk.to_vec();
        while let Some(more) = response.chunk().await? {
            body.extend_from_slice(&more);
        }
        Ok(FirstSegment {
            playlists,
            init,
            first_bytes,
            seconds: *seconds,
            body,
        })
    })
    .await
}

fn id_of(stream: &Value) -> Result<&str> {
    stream["id"].as_str().context("a stream without an id")
}

/// (h) every segment of the 10-minute file in order, against the server's ffmpeg command
/// alone on the same file: 3 rounds on one server, a new stream (and HLS session) each.
pub async fn figure_h() -> Result<Vec<Row>> {
    let file = short_mkv().await?;
    let seeder = Seeder::start(None).await?;
    let seeded = seeder.seed(&file).await;
    let result = match seeded {
        Ok(seeded) => {
            with_server(async |server: &Server| rounds(server, &seeded, &file).await).await
        }
        Err(err) => Err(err),
    };
    wait_stopped(seeder.stop()).await;
    let [ours, alone] = result?;
    let ratio = secs(median(&alone)) / secs(median(&ours));
    let speed = |t: &[Duration]| f64::from(SHORT_SECS) / secs(median(t));
    let text = format!("{:.0}× real time (×{ratio:.2})", speed(&ours));
    let base = format!("ffmpeg alone {:.0}× real time", speed(&alone));
    let figure = "(h) remux 10 min MKV, all segments, median";
    Ok(vec![row(
        figure,
        &text,
        &base,
        "≥ 0.9×",
        Some(ratio >= 0.9),
    )])
}

/// Three rounds of: every segment through Magnetar (a fresh stream), then ffmpeg alone.
async fn rounds(server: &Server, seeded: &Seeded, file: &Path) -> Result<[Vec<Duration>; 2]> {
    // The bench user's stream keeps the torrent while the viewers' streams come and go.
    let keep = server.stream(&seeded.magnet).await?;
    server.wait_ready(id_of(&keep)?).await?;
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..3 {
        let viewer = server.token(&format!("viewer{round}")).await?;
        let stream = server.stream_as(&viewer, &seeded.magnet).await?;
        let (took, bytes, jobs, command) = every_segment(server, &stream).await?;
        server.delete_as(&viewer, id_of(&stream)?).await?;
        wait_no_ffmpeg(server.pid, JOBS_END).await?;
        let (alone, alone_bytes) = Alone::spawn(&command, file)?.finish(STEP).await?;
        println!(
            "(h) round {round}: magnetar {:.1} s, {bytes} B, {jobs} ffmpeg job(s); ffmpeg alone \
             {:.1} s, {alone_bytes} B",
            secs(took),
            secs(alone)
        );
        times[0].push(took);
        times[1].push(alone);
    }
    Ok(times)
}

/// Master playlist → every segment in order, each to its end: the time, the bytes (init
/// segment included), how many ffmpeg jobs the server ran meanwhile, and their command.
async fn every_segment(
    server: &Server,
    stream: &Value,
) -> Result<(Duration, u64, usize, Vec<String>)> {
    let master = server.master_url(stream)?;
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let watch = tokio::spawn(watch_ffmpeg(server.pid, seen.clone()));
    let result = within(STEP, "timed out", async {
        let started = Instant::now();
        let rendition = Rendition::open(&server.client, &master).await?;
        let mut bytes = rendition.get(&rendition.init).await?.bytes().await?.len() as u64;
        bytes += rendition.segment(0).await?.len() as u64;
        let command = server_command(server.pid).await?;
        for n in 1..rendition.segments.len() {
            bytes += rendition.segment(n).await?.len() as u64;
        }
        Ok((started.elapsed(), bytes, command))
    })
    .await;
    watch.abort();
    let (took, bytes, command) = result?;
    let jobs = seen.lock().map(|s| s.len()).unwrap_or(0);
    if jobs == 0 {
        bail!("no ffmpeg job seen");
    }
    Ok((took, bytes, jobs, command))
}

/// Adds the server's ffmpeg jobs to `seen` every 100 ms, until aborted.
async fn watch_ffmpeg(pid: u32, seen: Arc<Mutex<BTreeSet<u32>>>) {
    loop {
        let children = ffmpeg_jobs(pid);
        if let Ok(mut seen) = seen.lock() {
            seen.extend(children);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

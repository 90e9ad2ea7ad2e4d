//! Figures (a) and (b): time to the first byte after POSTing a magnet, and after a seek to
//! 70% of a file being watched from a 2 MB/s seeder; each against rqbit alone on the same
//! torrent ([`crate::swarm::rqbit_times`]), five fresh 64 MiB torrents per figure.

use std::time::{Duration, Instant};

use anyhow::Result;
use magnetar::seeder::Seeded;
use tokio::time::timeout_at;

use crate::client::first_byte;
use crate::report::{med_max, median, ms, row, Row};
use crate::server::{with_server, Server};
use crate::swarm::{rqbit_times, Swarm, Times};
use crate::{within, MIB, PLAY, SMALL_PIECE, STEP};

/// (a) POST magnet → first byte, against rqbit alone; 5 fresh 64 MiB torrents.
pub async fn figure_a() -> Result<Vec<Row>> {
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
pub async fn figure_b() -> Result<Vec<Row>> {
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
    let swarm = Swarm::start(cap).await?;
    let mut times = [Vec::new(), Vec::new()];
    for run in 0..5 {
        let name = format!("{key}-{}-{run}.mkv", piece.unwrap_or(0));
        let seed = u64::from(piece.unwrap_or(1)) + run;
        let (data, seeded) = swarm.seed_generated(&name, 64 * MIB, seed, piece).await?;
        let seek = cap.map(|_| data.len() as u64 * 7 / 10);
        let (r0, r1) = rqbit_times(&seeded, swarm.seeder.addr, seek, &data).await?;
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
    swarm.stop().await;
    Ok(times)
}

/// Through a fresh server, within [`STEP`]: see [`play_and_seek`].
async fn magnetar_times(seeded: &Seeded, seek: Option<u64>, data: &[u8]) -> Result<Times> {
    with_server(async |server: &Server| {
        let run = play_and_seek(server, &seeded.magnet, seek, data);
        within(STEP, "timed out", run).await
    })
    .await
}

/// POST → first byte; then (with `seek`) read for [`PLAY`], drop that response like a player
/// does, and time a new request at `seek` to its first byte.
async fn play_and_seek(
    server: &Server,
    magnet: &str,
    seek: Option<u64>,
    data: &[u8],
) -> Result<Times> {
    let started = Instant::now();
    let (_, url) = server.create(magnet).await?;
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
}

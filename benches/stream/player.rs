//! Figure (b′): a real player seeking. `mpv --start=60` into a moov-at-end MP4 (made by
//! ffmpeg) from a 256 KiB/s seeder, with 2 MiB and 256 KiB pieces, against what mpv needs
//! from nginx serving the same file, and the whole pieces covering those bytes.

use std::{collections::BTreeSet, time::Duration};

use anyhow::Result;
use magnetar::seeder::{Seeded, Seeder};

use crate::nginx::Nginx;
use crate::process::{make_mp4, mpv};
use crate::report::{row, secs, Row};
use crate::server::{with_server, Server};
use crate::{wait_stopped, MIB, SLOW_BPS, SMALL_PIECE};

/// librqbit's `create_torrent` default piece length.
const DEFAULT_PIECE: u64 = 2 * MIB;

/// (b′) mpv --start=60 into a moov-at-end MP4 from a 256 KiB/s seeder: 3 runs per piece size.
pub async fn figure_b2() -> Result<Vec<Row>> {
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
    nginx.stop().await;
    wait_stopped(seeder.stop()).await;
    result
}

/// Three rounds: mpv through nginx (capped, then full speed), then through Magnetar on each
/// torrent; a row per torrent and round.
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
    with_server(async |server: &Server| {
        let (id, url) = server.create(&seeded.magnet).await?;
        let wall = mpv(&url).await?;
        let stream = server.get_stream(&id).await?;
        let progress = &stream["progress"];
        let bytes = progress["bytes"].as_u64().unwrap_or(0);
        Ok((wall, bytes, progress["buffered"].to_string()))
    })
    .await
}

/// Bytes of the whole pieces that cover `ranges` (start, length) in a file of `len` bytes.
fn piece_cover(ranges: &[(u64, u64)], piece: u64, len: u64) -> u64 {
    let ranges = ranges.iter().filter(|(_, n)| *n > 0);
    let last = |start: u64, n: u64| (start + n - 1).min(len - 1) / piece;
    let pieces: BTreeSet<u64> = ranges.flat_map(|&(s, n)| s / piece..=last(s, n)).collect();
    pieces.iter().map(|p| piece.min(len - p * piece)).sum()
}

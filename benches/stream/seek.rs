//! Figure (g): hls.js in Chromium (`tests/browser/seek.mjs` and `seek.html`) plays the 2-hour
//! MKV's HLS from the start, seeks to 40:00 and is timed until it plays again (the page's rule:
//! a frame from there presented, more frames and audio decoded, the clock moving). Baseline:
//! the same page and seek on a static HLS of the same content, made beforehand by ffmpeg and
//! served by nginx, so the player's own floor is visible. The torrent is downloaded before the
//! runs: this times the HLS path, (b) times the pieces.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use magnetar::seeder::{Seeded, Seeder};
use serde_json::Value;

use crate::fixtures::{long_mkv, static_hls};
use crate::nginx::Nginx;
use crate::process::node;
use crate::report::{med_max, median, row, Row};
use crate::server::{with_server_as, Server, Settings};
use crate::sidecar::wait_no_ffmpeg;
use crate::wait_stopped;

/// 40:00.
const SEEK_TO: u32 = 2400;
const CHROMIUM: &str = "/usr/bin/chromium";
const BROWSER_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser");

/// (g) hls.js seek to 40:00 → playing: 3 alternating runs, static HLS via nginx then Magnetar.
pub async fn figure_g() -> Result<Vec<Row>> {
    require_browser()?;
    let (file, hls) = (long_mkv().await?, static_hls().await?);
    let nginx = Nginx::start(hls.parent().context("no cache folder")?).await?;
    let static_master = nginx.url("static-hls/master.m3u8");
    let seeder = Seeder::start(None).await?;
    let result = match seeder.seed(&file).await {
        Ok(seeded) => runs(&seeded, &static_master).await,
        Err(err) => Err(err),
    };
    wait_stopped(seeder.stop()).await;
    nginx.stop().await;
    let [start, seek, start_base, seek_base] = result?;
    let (goal, met) = ("≤ 1.5 s", median(&seek) <= Duration::from_millis(1500));
    let base = format!("static HLS via nginx {}", med_max(&seek_base));
    let figure = "(g) hls.js seek to 40:00 → playing, med/max";
    let seek_row = row(figure, &med_max(&seek), &base, goal, Some(met));
    let base = format!("static HLS via nginx {}", med_max(&start_base));
    let figure = "(g) hls.js load → playing at 0, med/max";
    Ok(vec![
        seek_row,
        row(figure, &med_max(&start), &base, "-", None),
    ])
}

/// Fails with what to install when Chromium, node or the npm packages are missing.
fn require_browser() -> Result<()> {
    if !Path::new(CHROMIUM).is_file() {
        bail!("{CHROMIUM} is required: install it with `apt-get install -y chromium`");
    }
    let modules = Path::new(BROWSER_DIR).join("node_modules");
    if !modules.join("playwright-core").is_dir() || !modules.join("hls.js").is_dir() {
        bail!("playwright-core and hls.js are required: run `npm ci --prefix tests/browser`");
    }
    Ok(())
}

/// Three rounds on one server (CORS open for the page's origin): the static HLS, then a new
/// stream's HLS session. Times to playing from 0 and after the seek, Magnetar's then nginx's.
async fn runs(seeded: &Seeded, static_master: &str) -> Result<[Vec<Duration>; 4]> {
    let cors = ("MAGNETAR__SERVER__CORS_ORIGINS".into(), r#"["*"]"#.into());
    with_server_as(Settings::BenchWith(vec![cors]), async |server: &Server| {
        let keep = server.stream(&seeded.magnet).await?;
        server
            .wait_ready(keep["id"].as_str().context("no id")?)
            .await?;
        let mut times: [Vec<Duration>; 4] = Default::default();
        for run in 0..3 {
            let (start, seek) = seek_in_chromium(static_master, &format!("{run}, nginx")).await?;
            times[2].push(start);
            times[3].push(seek);
            let viewer = server.token(&format!("viewer{run}")).await?;
            let stream = server.stream_as(&viewer, &seeded.magnet).await?;
            let master = server.master_url(&stream)?;
            let ours = seek_in_chromium(&master, &format!("{run}, magnetar")).await;
            let id = stream["id"].as_str().context("no id")?;
            server.delete_as(&viewer, id).await?;
            wait_no_ffmpeg(server.pid, Duration::from_secs(15)).await?;
            let (start, seek) = ours?;
            times[0].push(start);
            times[1].push(seek);
        }
        Ok(times)
    })
    .await
}

/// Runs the page on `master`: time to playing from 0, and from the seek to playing again.
async fn seek_in_chromium(master: &str, label: &str) -> Result<(Duration, Duration)> {
    let script = format!("{BROWSER_DIR}/seek.mjs");
    let args = [script, master.to_owned(), SEEK_TO.to_string()];
    let output = node(&args, Duration::from_secs(120)).await?;
    let log = String::from_utf8_lossy(&output.stdout);
    let json = log
        .lines()
        .find_map(|l| l.strip_prefix("MAGNETAR_SEEK_RESULT "));
    let Some(json) = json else {
        let err = String::from_utf8_lossy(&output.stderr);
        bail!("seek.mjs printed no result ({}): {log}{err}", output.status);
    };
    let result: Value = serde_json::from_str(json)?;
    let page = &result["page"];
    let number = |key: &str| page[key].as_u64().map(Duration::from_millis);
    let (start, seek) = match (number("start_ms"), number("playing_ms")) {
        (Some(start), Some(seek)) if page["started"] == true => (start, seek),
        _ => bail!("({label}) hls.js did not play on after the seek: {result}"),
    };
    println!(
        "(g) run {label}: load → playing at 0 {} ms; seek → seeked {} ms, first frame {} ms, \
         playing {} ms; fragments after the seek {}; errors {}",
        start.as_millis(),
        page["seeked_ms"],
        page["first_frame_ms"],
        seek.as_millis(),
        page["fragments"],
        page["errors"]
    );
    Ok((start, seek))
}

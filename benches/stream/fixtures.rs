//! The media figures' fixtures, made by ffmpeg into `~/.cache/magnetar-bench/` on first use and
//! reused after (one that is missing is made again; each is written under a temporary name and
//! renamed when complete, so a half-made one never counts):
//! - a 2-hour 320x180 H.264 + AC-3 MKV, 10 fps, a keyframe every 2 s, about 160 MB: the common
//!   torrent case, which a browser gets as `remux_audio` (video copied, audio to AAC);
//! - its first 10 minutes (a stream copy), for the throughput figure;
//! - a static HLS of the 2-hour file (video copied, AAC audio, 6 s fMP4 segments, a master
//!   playlist naming `browser/index.m3u8`), for the player baseline.
//!
//! About 80 s for the MKV and 4 minutes for the static HLS on 2 cores, once. It measures nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::process::ffmpeg;

/// The 2-hour file's length.
pub const LONG_SECS: u32 = 7200;
/// The cut's length.
pub const SHORT_SECS: u32 = 600;
const LONG: &str = "Long.Movie.2019.180p.x264.AC3.mkv";
const SHORT: &str = "Short.Movie.2019.180p.x264.AC3.mkv";
const STATIC_HLS: &str = "static-hls";

/// The cache folder (`$HOME/.cache/magnetar-bench`), created when missing.
fn cache() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("no HOME for the fixture cache")?;
    let dir = Path::new(&home).join(".cache/magnetar-bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The 2-hour H.264 + AC-3 MKV.
pub async fn long_mkv() -> Result<PathBuf> {
    let out = cache()?.join(LONG);
    if !out.is_file() {
        println!("fixtures: making {} (about 80 s, once)", out.display());
        let (video, audio) = (
            format!("testsrc2=size=320x180:rate=10:duration={LONG_SECS}"),
            format!("sine=frequency=440:sample_rate=48000:duration={LONG_SECS}"),
        );
        let args = "-f lavfi -i {video} -f lavfi -i {audio} -c:v libx264 -preset ultrafast \
            -pix_fmt yuv420p -g 20 -keyint_min 20 -sc_threshold 0 -b:v 80k -maxrate 120k \
            -bufsize 240k -c:a ac3 -b:a 96k -ac 2 -f matroska";
        let args = words(args).into_iter();
        let args = args.map(|a| a.replace("{video}", &video).replace("{audio}", &audio));
        make(&out, args.collect(), Duration::from_secs(600)).await?;
    }
    Ok(out)
}

/// The first [`SHORT_SECS`] of [`long_mkv`], stream-copied.
pub async fn short_mkv() -> Result<PathBuf> {
    let long = long_mkv().await?;
    let out = cache()?.join(SHORT);
    if !out.is_file() {
        let mut args = vec!["-i".into(), long.display().to_string()];
        args.extend(words(&format!(
            "-t {SHORT_SECS} -map 0 -c copy -f matroska"
        )));
        make(&out, args, Duration::from_secs(120)).await?;
    }
    Ok(out)
}

/// The folder of the static HLS of [`long_mkv`]: `master.m3u8`, `browser/index.m3u8`,
/// `browser/init.mp4`, `browser/{n}.m4s`.
pub async fn static_hls() -> Result<PathBuf> {
    let long = long_mkv().await?;
    let out = cache()?.join(STATIC_HLS);
    if out.join("master.m3u8").is_file() {
        return Ok(out);
    }
    println!("fixtures: making {} (about 4 minutes, once)", out.display());
    let part = cache()?.join(format!("{STATIC_HLS}.part"));
    let _ = std::fs::remove_dir_all(&part);
    std::fs::create_dir_all(part.join("browser"))?;
    let rendition = part.join("browser").display().to_string();
    let mut args = vec!["-i".into(), long.display().to_string()];
    args.extend(words(
        "-map 0:v:0 -map 0:a:0 -c:v copy -c:a aac -ac 2 -b:a 192k -f hls -hls_time 6 \
         -hls_playlist_type vod -hls_segment_type fmp4 -hls_fmp4_init_filename init.mp4 \
         -hls_segment_filename",
    ));
    args.extend([
        format!("{rendition}/%d.m4s"),
        format!("{rendition}/index.m3u8"),
    ]);
    ffmpeg(&args, Duration::from_secs(900)).await?;
    let master = "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-INDEPENDENT-SEGMENTS\n\
        #EXT-X-STREAM-INF:BANDWIDTH=8000000\nbrowser/index.m3u8\n";
    std::fs::write(part.join("master.m3u8"), master)?;
    let _ = std::fs::remove_dir_all(&out);
    std::fs::rename(&part, &out)?;
    Ok(out)
}

/// Runs ffmpeg with `args` then `out.part`, and renames that to `out` once ffmpeg succeeded.
async fn make(out: &Path, mut args: Vec<String>, limit: Duration) -> Result<()> {
    let part = out.with_extension("part");
    args.push(part.display().to_string());
    ffmpeg(&args, limit).await?;
    std::fs::rename(&part, out)?;
    Ok(())
}

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

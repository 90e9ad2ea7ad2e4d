//! The HLS client of figures (f), (h) and (i): a stream's master playlist, its rendition's
//! playlist, init segment and segments, asked for as a player does, with `503
//! PLAYLIST_NOT_READY` retried as its `Retry-After` says (a bounded number of times). The
//! browser's own HLS client is hls.js, in [`crate::seek`].

use std::time::Duration;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use reqwest::{Client, Response, Url};
use tokio::time::sleep;

/// Tries of one request: each waits up to `media.hls_wait` in the server before a 503.
const TRIES: u32 = 10;

/// A rendition whose playlist has been read.
pub struct Rendition {
    client: Client,
    playlist: Url,
    /// The init segment's URI and each segment's (duration, URI), as listed.
    pub init: String,
    pub segments: Vec<(f64, String)>,
}

impl Rendition {
    /// GET the master playlist `master`, then the first rendition's playlist it names.
    pub async fn open(client: &Client, master: &str) -> Result<Self> {
        let master = Url::parse(master)?;
        let text = get(client, master.as_str()).await?.text().await?;
        let uri = uris(&text)
            .next()
            .context("a master playlist without a rendition")?;
        Self::open_rendition(client, master.join(uri)?).await
    }

    async fn open_rendition(client: &Client, playlist: Url) -> Result<Self> {
        let text = get(client, playlist.as_str()).await?.text().await?;
        let map = text
            .lines()
            .find_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""));
        let init = map
            .and_then(|m| m.split('"').next())
            .context("no #EXT-X-MAP")?;
        let mut durations = text.lines().filter_map(|l| l.strip_prefix("#EXTINF:"));
        let mut segments = Vec::new();
        for uri in uris(&text) {
            let duration = durations
                .next()
                .and_then(|d| d.split(',').next()?.parse().ok());
            segments.push((
                duration.context("a segment without #EXTINF")?,
                uri.to_owned(),
            ));
        }
        Ok(Rendition {
            client: client.clone(),
            playlist,
            init: init.to_owned(),
            segments,
        })
    }

    /// GET the init segment or a segment by URI: the response once its status is 200.
    pub async fn get(&self, uri: &str) -> Result<Response> {
        get(&self.client, self.playlist.join(uri)?.as_str()).await
    }

    /// Segment `n`'s whole body (not empty).
    pub async fn segment(&self, n: usize) -> Result<Bytes> {
        let (_, uri) = self.segments.get(n).context("no such segment")?;
        let body = self.get(uri).await?.bytes().await?;
        match body.is_empty() {
            true => bail!("segment {n} is empty"),
            false => Ok(body),
        }
    }

    /// The segment at `secs` into the playlist (the last one past the end).
    pub fn segment_at(&self, secs: f64) -> usize {
        let mut end = 0.0;
        for (n, (duration, _)) in self.segments.iter().enumerate() {
            end += duration;
            if end > secs {
                return n;
            }
        }
        self.segments.len().saturating_sub(1)
    }
}

/// The URI lines of a playlist.
fn uris(text: &str) -> impl Iterator<Item = &str> {
    let lines = text.lines().map(str::trim);
    lines.filter(|l| !l.is_empty() && !l.starts_with('#'))
}

/// GET `url`, retrying `503 PLAYLIST_NOT_READY` after its `Retry-After`; anything else but
/// 200 is an error carrying the body.
async fn get(client: &Client, url: &str) -> Result<Response> {
    for _ in 0..TRIES {
        let response = client.get(url).send().await?;
        let status = response.status();
        if status == 200 {
            return Ok(response);
        }
        let retry = response.headers().get("retry-after").cloned();
        let body = response.text().await.unwrap_or_default();
        if status != 503 || !body.contains("PLAYLIST_NOT_READY") {
            bail!("GET {} answered {status}: {body}", redact(url));
        }
        let secs = retry
            .and_then(|r| r.to_str().ok()?.parse().ok())
            .unwrap_or(1);
        println!("note: {} not ready, retrying in {secs} s", redact(url));
        sleep(Duration::from_secs(secs)).await;
    }
    bail!("GET {}: still 503 after {TRIES} tries", redact(url))
}

/// A URL with the playback token (a credential) left out.
fn redact(url: &str) -> String {
    let Some((before, after)) = url.split_once("/s/") else {
        return url.to_owned();
    };
    let rest = after.split_once('/').map_or("", |(_, rest)| rest);
    format!("{before}/s/…/{rest}")
}

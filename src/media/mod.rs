//! Media: what a file contains (ffprobe, cached per torrent file) and how each client should
//! play it ([`plan`]). ffprobe reads the stream through the server's own loopback playback URL
//! — the same range handler players use, so piece priority has one code path — marked as
//! internal so rate limits do not count it.

pub mod client;
pub mod hls;
pub mod index;
pub mod job;
pub mod plan;
pub mod probe;
pub mod segments;
pub mod subtitles;
pub mod tool;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::config::MediaConfig;
use probe::Probe;
use tool::{Tool, ToolError};

/// Header that marks the server's own requests (ffprobe, ffmpeg) to its playback routes.
pub const INTERNAL_HEADER: &str = "x-magnetar-internal";

/// Probes kept in memory (one per torrent file).
const PROBE_CACHE: u64 = 4096;
/// Bytes of extracted WebVTT kept in memory.
const SUBTITLE_CACHE_BYTES: u64 = 64 << 20;
/// ffmpeg subtitle extractions at once (each reads a whole file).
const MAX_EXTRACTIONS: usize = 2;
/// How long a tool availability check is trusted.
const READY_TTL: Duration = Duration::from_secs(30);

/// Why media work failed.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error(transparent)]
    Tool(#[from] ToolError),
    #[error(transparent)]
    Parse(#[from] probe::ProbeParseError),
}

/// Which tools work, for `/ready`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Readiness {
    pub ffmpeg: Option<String>,
    pub ffprobe: Option<String>,
}

impl Readiness {
    pub fn ok(&self) -> bool {
        self.ffmpeg.is_none() && self.ffprobe.is_none()
    }
}

/// The media facade, shared as `Arc<Media>`.
pub struct Media {
    pub config: MediaConfig,
    ffprobe: Tool,
    ffmpeg: Tool,
    /// ffmpeg for subtitle extraction: its own slots, so long runs never starve the others.
    extractor: Tool,
    probes: moka::future::Cache<(String, usize), Arc<Probe>>,
    /// Extracted WebVTT per (info-hash, file, stream).
    subtitles: moka::future::Cache<(String, usize, u32), Arc<str>>,
    internal_key: String,
    ready: Mutex<Option<(Instant, Readiness)>>,
    /// Video-transcode slots (`media.max_transcodes`).
    pub transcodes: Arc<tokio::sync::Semaphore>,
}

impl Media {
    pub fn new(config: &MediaConfig) -> Arc<Self> {
        use rand::RngCore;
        let mut key = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut key);
        Arc::new(Self {
            ffprobe: Tool::new(config.ffprobe_path.clone(), config.max_probes),
            ffmpeg: Tool::new(config.ffmpeg_path.clone(), 2),
            extractor: Tool::new(config.ffmpeg_path.clone(), MAX_EXTRACTIONS),
            subtitles: moka::future::Cache::builder()
                .weigher(|_, text: &Arc<str>| u32::try_from(text.len()).unwrap_or(u32::MAX))
                .max_capacity(SUBTITLE_CACHE_BYTES)
                .build(),
            probes: moka::future::Cache::builder()
                .max_capacity(PROBE_CACHE)
                .build(),
            internal_key: hex::encode(key),
            config: config.clone(),
            ready: Mutex::new(None),
            transcodes: Arc::new(tokio::sync::Semaphore::new(config.max_transcodes)),
        })
    }

    /// The secret value of [`INTERNAL_HEADER`] for this process.
    pub fn internal_key(&self) -> &str {
        &self.internal_key
    }

    /// Whether ffmpeg and ffprobe run (checked at most every 30 s).
    pub async fn readiness(&self) -> Readiness {
        if let Some((at, known)) = self.ready.lock().expect("ready lock").clone() {
            if at.elapsed() < READY_TTL {
                return known;
            }
        }
        let (ffmpeg, ffprobe) = tokio::join!(self.ffmpeg.available(), self.ffprobe.available());
        let known = Readiness {
            ffmpeg: ffmpeg.err().map(|e| e.to_string()),
            ffprobe: ffprobe.err().map(|e| e.to_string()),
        };
        *self.ready.lock().expect("ready lock") = Some((Instant::now(), known.clone()));
        known
    }

    /// Probes the file at `url` (a loopback playback URL), once per `(info_hash, file)`;
    /// concurrent callers share one run. Failures are not cached.
    pub async fn probe(
        &self,
        key: (String, usize),
        url: &str,
        file_name: &str,
    ) -> Result<Arc<Probe>, Arc<MediaError>> {
        self.probes
            .try_get_with(key, async {
                let header = format!("{INTERNAL_HEADER}: {}\r\n", self.internal_key);
                let args = [
                    "-v",
                    "error",
                    "-probesize",
                    "5M",
                    "-analyzeduration",
                    "5M",
                    "-headers",
                    &header,
                    "-show_format",
                    "-show_streams",
                    "-of",
                    "json",
                    url,
                ];
                let json = self.ffprobe.run(&args, self.config.probe_timeout).await?;
                Ok(Arc::new(Probe::from_json(&json, file_name)?))
            })
            .await
    }

    /// The probe of `(info_hash, file)` if one has run already.
    pub async fn cached_probe(&self, key: &(String, usize)) -> Option<Arc<Probe>> {
        self.probes.get(key).await
    }

    /// Embedded subtitle stream `stream` of the file at `url` as WebVTT, extracted by ffmpeg
    /// once per `(info_hash, file, stream)` (concurrent callers share one run; failures are
    /// not kept). ffmpeg reads the whole file, so this takes as long as the download.
    pub async fn embedded_vtt(
        &self,
        key: (String, usize, u32),
        url: &str,
    ) -> Result<Arc<str>, Arc<MediaError>> {
        let stream = key.2;
        self.subtitles
            .try_get_with(key, async {
                let header = format!("{INTERNAL_HEADER}: {}\r\n", self.internal_key);
                let map = format!("0:{stream}");
                // `-xerror`: an input that ends early (the stream was deleted, the swarm
                // stalled) fails the run instead of leaving a cut track in the cache.
                let args = [
                    "-v", "error", "-xerror", "-nostdin", "-headers", &header, "-i", url, "-map",
                    &map, "-c:s", "webvtt", "-f", "webvtt", "pipe:1",
                ];
                let out = self
                    .extractor
                    .run(&args, self.config.subtitle_timeout)
                    .await?;
                Ok(Arc::from(subtitles::vtt(&String::from_utf8_lossy(&out))))
            })
            .await
    }

    /// Whether a request carrying `value` in [`INTERNAL_HEADER`] is the server's own.
    pub fn is_internal(&self, value: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        value.ct_eq(self.internal_key.as_bytes()).into()
    }
}

//! The torrent engine facade over one librqbit `Session`: validate sources, resolve
//! metadata (cached in memory and in `data_dir/torrents/`), share torrents between streams,
//! open capped readers, and report per-file progress. HTTP and stream bookkeeping live
//! elsewhere; this module knows torrents, files and bytes.

pub mod activity;
pub mod bencode;
pub mod blocks;
pub mod disk;
pub mod files;
pub mod health;
mod metadata;
mod monitor;
pub mod pins;
pub mod quality;
pub mod quota;
pub mod reader;
pub mod session;
pub mod source;
pub mod status;
mod torrents;
pub mod usage;

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use bytes::Bytes;
use librqbit::{api::TorrentIdOrHash, Session};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use reader::{Source, TorrentReader};
use source::{SourceError, SourceLimits, TorrentFile};

/// A torrent inside the librqbit session.
pub type TorrentHandle = Arc<librqbit::ManagedTorrent>;

/// Engine failures; converted to API errors at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Select(#[from] files::SelectError),
    #[error("the torrent's metadata was not found in time")]
    MetadataTimeout,
    #[error("no peer could supply the torrent's metadata")]
    MetadataUnavailable,
    #[error("the torrent is not active")]
    NotActive,
    #[error("all torrent readers are busy")]
    Busy,
    #[error("no data arrived from the swarm in time")]
    Stalled,
    /// The disk quota or the disk itself has no room (the message says the sizes).
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("engine: {0:#}")]
    Internal(anyhow::Error),
}

/// A torrent's resolved metadata, validated like an uploaded .torrent.
#[derive(Debug, Clone)]
pub struct TorrentMeta {
    pub info_hash: String,
    pub name: String,
    pub files: Vec<TorrentFile>,
    pub piece_length: u64,
    pub torrent_bytes: Bytes,
    pub trackers: Vec<String>,
    pub seen_peers: Vec<SocketAddr>,
}

impl TorrentMeta {
    /// The file with this index (files are stored in index order).
    pub fn file(&self, index: usize) -> Option<&TorrentFile> {
        self.files.get(index).filter(|f| f.index == index)
    }

    /// Where the file with this index starts in the torrent's bytes (the files before it,
    /// padding files included, laid end to end).
    pub fn file_offset(&self, index: usize) -> u64 {
        self.files.iter().take(index).map(|f| f.size).sum()
    }
}

/// What happened to a torrent, for the streams on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineEvent {
    /// Its data was removed to stay under the disk quota (`bytes` it held).
    Evicted { info_hash: String, bytes: u64 },
    /// librqbit stopped it (a full disk, or another error).
    Failed {
        info_hash: String,
        condition: health::Condition,
    },
    /// It runs again after a failure.
    Recovered { info_hash: String },
}

/// The engine in figures.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct EngineFigures {
    pub torrents: usize,
    pub peers: u64,
    pub downloaded_bytes: u64,
    pub uploaded_bytes: u64,
    pub download_bps: u64,
    pub upload_bps: u64,
    /// Player readers open (of `engine.max_readers`).
    pub open_readers: usize,
}

/// librqbit's speeds are in MiB/s.
fn mbps_to_bps(mbps: f64) -> u64 {
    (mbps.max(0.0) * 1024.0 * 1024.0) as u64
}

/// How a file's running pins are ended: `stop` at once, `wind_down` after their current step.
struct Pinning {
    stop: CancellationToken,
    wind_down: CancellationToken,
}

/// The engine: one per process, shared as `Arc<Engine>`.
pub struct Engine {
    session: Arc<Session>,
    api: librqbit::Api,
    torrents: torrents::Torrents,
    /// Players' readers per torrent (the disk quota evicts only what nobody reads).
    activity: Arc<activity::Activity>,
    health: Arc<health::Health>,
    events: tokio::sync::broadcast::Sender<EngineEvent>,
    metas: moka::sync::Cache<String, Arc<TorrentMeta>>,
    /// Recently read blocks of complete files (`storage.read_cache_bytes`).
    blocks: Arc<blocks::BlockCache>,
    readers: Arc<Semaphore>,
    /// Pin readers have their own, smaller pool so they never take a player's slot.
    pins: Arc<Semaphore>,
    /// Running pins per (info-hash, file): a player's reader ends them (see [`pins`]), since
    /// from then on its own position steers librqbit and pins would compete with its target.
    pinning: std::sync::Mutex<std::collections::HashMap<(String, usize), Pinning>>,
    config: Arc<Config>,
    cancel: CancellationToken,
}

impl Engine {
    /// Starts the librqbit session.
    pub async fn start(config: Arc<Config>, cancel: CancellationToken) -> anyhow::Result<Self> {
        std::fs::create_dir_all(config.storage.data_dir.join("torrents"))?;
        let session = session::build_session(&config, &cancel).await?;
        let data_dir = &config.storage.data_dir;
        let downloads = data_dir.join(session::DOWNLOADS_DIR);
        std::fs::create_dir_all(&downloads)?;
        let activity = Arc::new(activity::Activity::default());
        let limit = quota::Quota::limit_for(config.storage.max_disk_bytes, &downloads);
        let quota = quota::Quota::new(limit, activity.clone(), downloads.clone());
        let measured = quota.measure();
        tracing::info!(
            quota = %usage::human(limit),
            used = %usage::human(measured),
            "disk quota for torrents"
        );
        let template = torrents::AddTemplate {
            downloads,
            session_dir: data_dir.join(session::SESSION_DIR),
            peer_opts: session::peer_options(&config),
            ratelimits: session::torrent_ratelimits(&config),
        };
        let events = tokio::sync::broadcast::channel(256).0;
        let health = Arc::new(health::Health::default());
        Ok(Self {
            api: librqbit::Api::new(session.clone(), None),
            session,
            torrents: torrents::Torrents::new(template, quota, events.clone(), health.clone()),
            activity,
            health,
            events,
            metas: moka::sync::Cache::new(4096),
            blocks: Arc::new(blocks::BlockCache::new(config.storage.read_cache_bytes)),
            readers: Arc::new(Semaphore::new(config.engine.max_readers)),
            pins: Arc::new(Semaphore::new(session::pin_slots(&config))),
            pinning: Default::default(),
            config,
            cancel,
        })
    }

    /// Starts the engine's housekeeping (disk quota, torrent health) until shutdown.
    pub fn spawn_monitor(self: &Arc<Self>) {
        monitor::spawn(Arc::downgrade(self), self.cancel.child_token());
    }

    /// A player's reader on the torrent waits for data: counted until the guard drops (the
    /// engine looks for peers at once while it waits with none connected).
    pub fn waiting(&self, info_hash: &str) -> activity::Waiting {
        self.activity.waiting(info_hash)
    }

    /// What is wrong with a torrent, if anything (evicted, stopped by a full disk, failed).
    pub fn condition(&self, info_hash: &str) -> Option<health::Condition> {
        self.health.condition(info_hash)
    }

    /// The input limits from `[limits]`.
    pub fn limits(&self) -> SourceLimits {
        let limits = &self.config.limits;
        SourceLimits {
            max_torrent_bytes: limits.max_torrent_bytes,
            max_files: limits.max_files,
            max_magnet_len: limits.max_magnet_len,
        }
    }

    /// Starts (or shares) the torrent for `file` — once it fits the disk quota — and pins the
    /// file's head and tail.
    pub async fn acquire(
        self: &Arc<Self>,
        meta: &Arc<TorrentMeta>,
        file: usize,
        peers: &[SocketAddr],
    ) -> Result<(), EngineError> {
        self.activity.touch(&meta.info_hash);
        let started = self
            .torrents
            .acquire(&self.session, meta, file, peers)
            .await?;
        if let Some(cancel) = started {
            self.pin_head_and_tail(meta, file, cancel);
        }
        Ok(())
    }

    /// What happens to torrents (evictions), for the streams on them.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// Remembers when a torrent was last played before a restart (least recently read goes
    /// first when the disk quota needs room).
    pub fn remember_play(&self, info_hash: &str, unix_secs: u64) {
        self.activity.remember(info_hash, unix_secs);
    }

    /// Drops a stream's reference on the torrent.
    pub async fn release(&self, meta: &TorrentMeta, file: usize) -> Result<(), EngineError> {
        let key = (meta.info_hash.clone(), file);
        self.pinning.lock().expect("pinning lock").remove(&key);
        let delete = self.config.storage.delete_data_on_release;
        let gone = self
            .torrents
            .release(&self.session, &meta.info_hash, file, delete)
            .await?;
        if gone {
            // Nobody can read this torrent's blocks again until it is added anew.
            self.blocks.forget(&meta.info_hash).await;
        }
        Ok(())
    }

    /// Whether the torrent's data was evicted (it comes back when played).
    pub async fn evicted(&self, info_hash: &str) -> bool {
        self.torrents.evicted(info_hash).await
    }

    /// Bytes and blocks held by the read cache.
    pub async fn read_cache_usage(&self) -> (u64, u64) {
        self.blocks.usage().await
    }

    /// Bytes torrents occupy (as last measured) and the quota.
    pub fn disk(&self) -> (u64, u64) {
        let quota = &self.torrents.quota;
        (quota.used(), quota.limit)
    }

    /// Opens a player's reader on a file of an active torrent, for reading from `start`,
    /// waiting up to `engine.reader_wait` for a free slot. The file's pins end (the player
    /// steers now): at once, or after their current step for a reader at byte 0 (see [`pins`]).
    /// A file already complete on disk is read from there directly ([`disk`]).
    pub async fn open_reader(
        self: &Arc<Self>,
        info_hash: &str,
        file: usize,
        start: u64,
    ) -> Result<Source, EngineError> {
        if let Some(cancel) = self
            .torrents
            .ensure_active(&self.session, info_hash)
            .await?
        {
            if let Some(meta) = self.known_meta(info_hash) {
                self.pin_head_and_tail(&meta, file, cancel);
            }
        }
        match self.health.condition(info_hash) {
            Some(health::Condition::StorageFull(message)) => {
                return Err(EngineError::InsufficientStorage(message))
            }
            Some(health::Condition::Failed(message)) => {
                return Err(EngineError::Internal(anyhow::anyhow!(message)))
            }
            _ => {}
        }
        self.end_pins(info_hash, file, start);
        let wait = self.config.engine.reader_wait;
        let permit = tokio::time::timeout(wait, self.readers.clone().acquire_owned())
            .await
            .ok()
            .and_then(Result::ok)
            .ok_or_else(|| {
                crate::limits::rate::refused("readers");
                EngineError::Busy
            })?;
        let slot = reader::Slot::new(permit, Some(self.activity.reading(info_hash)));
        if let Some((path, id)) = self.complete_file(info_hash, file) {
            match std::fs::File::open(&path) {
                Ok(opened) => {
                    let disk = disk::DiskFile::new(opened, id, self.blocks.clone(), slot);
                    return Ok(Source::Disk(disk));
                }
                Err(err) => {
                    tracing::warn!(path = %path.display(), error = %err, "complete file unreadable; reading through the torrent")
                }
            }
        }
        self.open_with(slot, info_hash, file)
            .await
            .map(Source::Swarm)
    }

    /// Where a file lives on disk, if every piece of it is verified.
    fn complete_file(&self, info_hash: &str, file: usize) -> Option<(PathBuf, disk::FileId)> {
        let handle = self.handle(info_hash)?;
        let (len, relative) = handle
            .with_metadata(|m| {
                let info = m.file_infos.get(file)?;
                Some((info.len, info.relative_filename.clone()))
            })
            .ok()??;
        let done = handle.stats().file_progress.get(file).copied();
        let id = disk::FileId {
            info_hash: info_hash.into(),
            index: file,
            len,
        };
        (done == Some(len)).then(|| (handle.output_folder().join(relative), id))
    }

    async fn open_with(
        &self,
        slot: reader::Slot,
        info_hash: &str,
        file: usize,
    ) -> Result<TorrentReader, EngineError> {
        let handle = self.handle(info_hash).ok_or(EngineError::NotActive)?;
        let stall = self.config.engine.stall_timeout;
        let stream = tokio::time::timeout(stall, handle.clone().stream(file))
            .await
            .map_err(|_| EngineError::Stalled)?;
        let stream = match stream {
            Ok(stream) => stream,
            Err(err) => return Err(self.stream_refused(info_hash, &handle, err)),
        };
        let failing = self.health.failing(info_hash);
        Ok(TorrentReader::new(Box::new(stream), slot, failing))
    }

    /// Why librqbit would not open a reader: a torrent it stopped (noted now, before the
    /// monitor's next look, so the answer says why), or an internal error.
    fn stream_refused(
        &self,
        info_hash: &str,
        handle: &TorrentHandle,
        err: anyhow::Error,
    ) -> EngineError {
        let stats = handle.stats();
        if !matches!(stats.state, librqbit::TorrentStatsState::Error) {
            return EngineError::Internal(err);
        }
        let condition = health::classify(stats.error.as_deref().unwrap_or(""));
        self.note(info_hash, Some(condition.clone()));
        match condition {
            health::Condition::StorageFull(message) => EngineError::InsufficientStorage(message),
            _ => EngineError::Internal(err),
        }
    }

    pub(crate) fn handle(&self, info_hash: &str) -> Option<TorrentHandle> {
        let id = info_hash.parse().ok()?;
        self.session.get(TorrentIdOrHash::Hash(id))
    }

    /// Peers connected to the torrent right now.
    pub fn live_peers(&self, info_hash: &str) -> u32 {
        self.handle(info_hash)
            .and_then(|h| h.live())
            .map(|live| live.stats_snapshot().peer_stats.live)
            .unwrap_or(0)
    }

    /// Live progress of one file.
    pub fn file_status(&self, meta: &TorrentMeta, file: usize) -> status::FileStatus {
        let hash = &meta.info_hash;
        let condition = self.health.condition(hash);
        status::file_status(&self.api, self.handle(hash).as_ref(), meta, file, condition)
    }

    /// Stops the session: torrents first (librqbit pauses each and lets its tasks end),
    /// then the rest of the engine's tasks.
    pub async fn shutdown(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.stop()).await;
        self.cancel.cancel();
    }
}

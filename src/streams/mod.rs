//! Streams: one user's playback of one file of one torrent. This facade owns the registry
//! (who owns which stream), the playback tokens issued for each stream, and persistence
//! across restarts through [`store`] (every acknowledged change is committed before the API
//! answers). Resolution is [`resolve`]'s; torrent work is the engine's; HTTP shapes are
//! `view`'s.

pub mod events;
mod lookup;
mod playback;
pub mod record;
mod resolve;
pub mod stats;
pub mod store;
mod upkeep;
pub mod view;

pub use playback::{Playable, PlaybackError};

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{now_secs, PlaybackKeys},
    engine::{
        files::{select_file, FileSelector},
        source::{parse_stored_magnet, TorrentSource},
        Engine, EngineError, TorrentMeta,
    },
    error::ErrorCode,
};
use record::{Failure, StreamRecord};

/// Stream failures; mapped to API codes at the HTTP edge.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("stream not found")]
    NotFound,
    #[error("the stream's metadata is still resolving")]
    StillResolving,
    #[error("{}", .0.message)]
    Failed(Failure),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot issue a playback token")]
    Token,
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("you already have {0} streams, the most allowed; delete one first")]
    UserQuota(usize),
    #[error("the server is at its limit of {0} streams; try again later")]
    ServerQuota(usize),
}

/// Concurrent stream quotas (0: no limit).
#[derive(Debug, Clone, Copy)]
struct Quotas {
    per_user: usize,
    total: usize,
}

/// Where a stream is in its life.
#[derive(Debug, Clone)]
pub enum Phase {
    Resolving,
    Ready(Arc<TorrentMeta>),
    Failed(Failure),
}

/// A snapshot of one stream for views and playback.
#[derive(Debug, Clone)]
pub struct StreamSnapshot {
    pub record: StreamRecord,
    pub phase: Phase,
    pub stats: store::StreamStats,
    /// A player waits for data the swarm does not send (since [`stats::LiveStats::stall`]).
    pub stalled: bool,
}

/// The registry in figures.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct StreamFigures {
    pub resolving: usize,
    pub ready: usize,
    pub failed: usize,
    pub users: usize,
}

/// Why a stream stopped (the `reason` of `stream.stopped`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Its owner deleted it.
    Deleted,
    /// An admin deleted it.
    ByAdmin,
    /// Nobody played it for `storage.stream_idle_ttl`.
    Idle,
    /// It failed while its creation waited; or it had failed and is being created again.
    Failed,
    Retried,
}

impl Stopped {
    pub fn as_str(self) -> &'static str {
        match self {
            Stopped::Deleted => "deleted",
            Stopped::ByAdmin => "admin",
            Stopped::Idle => "idle",
            Stopped::Failed => "failed",
            Stopped::Retried => "retried",
        }
    }
}

/// How `create` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

struct Entry {
    record: StreamRecord,
    phase: watch::Receiver<Phase>,
    cancel: CancellationToken,
    stats: Arc<stats::LiveStats>,
    /// `record.last_played_at` changed since it was last written.
    played_unsaved: bool,
}

/// The registry of all streams.
pub struct Streams {
    engine: Arc<Engine>,
    keys: Arc<PlaybackKeys>,
    entries: Mutex<HashMap<String, Entry>>,
    store: Arc<dyn store::Store>,
    /// Where the registry lives (a full disk there is reported with what is free).
    data_dir: std::path::PathBuf,
    metadata_wait: Duration,
    metadata_timeout: Duration,
    quotas: Quotas,
    events: events::Events,
}

impl Streams {
    /// Opens the registry (`data_dir/registry.db`; a damaged one stops startup with a message
    /// naming it) and resumes every stream in the background.
    pub async fn load(
        engine: Arc<Engine>,
        keys: Arc<PlaybackKeys>,
        config: &crate::config::Config,
    ) -> Result<Arc<Self>, store::StoreError> {
        let store = store::open(&config.storage.data_dir).await?;
        let stored = store::Store::load(&store).await?;
        let streams = Arc::new(Self {
            engine,
            keys,
            entries: Mutex::new(HashMap::new()),
            store: Arc::new(store),
            data_dir: config.storage.data_dir.clone(),
            metadata_wait: config.engine.metadata_wait,
            metadata_timeout: config.engine.metadata_timeout,
            quotas: Quotas {
                per_user: config.limits.max_streams_per_user,
                total: config.limits.max_streams,
            },
            events: events::Events::default(),
        });
        tracing::info!(streams = stored.len(), "stream registry loaded");
        for stored in stored {
            let live = Arc::new(stats::LiveStats::from_stored(&stored.stats));
            let record = stored.record;
            let played = record.last_played_at.unwrap_or(record.created_at);
            streams.engine.remember_play(&record.info_hash, played);
            let limits = streams.engine.limits();
            match parse_stored_magnet(&record.magnet, &limits) {
                Ok(mut source) => {
                    source.peers = record.peers.clone();
                    // Streams that existed before a restart keep their place, quota or not.
                    if let Ok(started) = streams.register(record, live, None) {
                        streams.spawn_resolve(started, source);
                    }
                }
                Err(err) => {
                    tracing::warn!(stream = %record.id, error = %err, "cannot resume stream")
                }
            }
        }
        Ok(streams)
    }

    /// The caller's existing stream of this torrent+file, or a new one. Waits up to
    /// `engine.metadata_wait` for metadata; a failure within the wait is returned (and the
    /// stream forgotten), a longer resolution answers with the stream still resolving.
    #[tracing::instrument(skip_all, fields(user = %user, info_hash = %source.info_hash))]
    pub async fn create(
        self: &Arc<Self>,
        user: &str,
        mut source: TorrentSource,
        requested: Option<FileSelector>,
        peers: Vec<std::net::SocketAddr>,
    ) -> Result<(StreamSnapshot, Created), StreamError> {
        source.peers.extend(peers);
        let known = self.engine.known_meta(&source.info_hash);
        let chosen = match &known {
            Some(meta) => {
                Some(select_file(&meta.files, requested.as_ref()).map_err(EngineError::from)?)
            }
            None => None,
        };
        if let Some(existing) = self.find_existing(user, &source.info_hash, chosen, &requested) {
            if !matches!(existing.phase, Phase::Failed(_)) {
                return Ok((existing, Created::Existing));
            }
            // Asking again after a failure is a retry.
            self.forget(&existing.record.id, Stopped::Retried).await;
        }
        let id = record::new_stream_id();
        let token = self.keys.issue(user, &id).map_err(|_| StreamError::Token)?;
        let mut record = StreamRecord {
            id: id.clone(),
            user: user.to_owned(),
            info_hash: source.info_hash.clone(),
            name: source.name.clone(),
            magnet: format!("magnet:?xt=urn:btih:{}", source.info_hash),
            requested,
            peers: source.peers.clone(),
            file_index: chosen,
            created_at: now_secs(),
            token: token.token,
            token_expires_at: unix(token.expires_at),
            failure: None,
            last_played_at: None,
        };
        if let crate::engine::source::SourceKind::Magnet(magnet) = &source.kind {
            record.magnet = magnet.clone();
        }
        // Committed before anything starts: an acknowledged stream survives any crash.
        let live = Arc::new(stats::LiveStats::default());
        let started = self.register(record.clone(), live, Some(self.quotas))?;
        if let Err(err) = self.store.insert(&record).await {
            self.entries.lock().expect("streams lock").remove(&id);
            return Err(self.store_error(err));
        }
        let mut phase = started.phase.clone();
        self.spawn_resolve(started, source);
        self.events.emit(user, &id, "stream.started", None);
        let wait = tokio::time::timeout(
            self.metadata_wait,
            phase.wait_for(|p| !matches!(p, Phase::Resolving)),
        );
        let settled = wait.await.ok().and_then(|r| r.ok()).map(|p| p.clone());
        if let Some(Phase::Failed(failure)) = settled {
            self.forget(&id, Stopped::Failed).await;
            return Err(StreamError::Failed(failure));
        }
        let snapshot = self.snapshot(user, &id)?;
        Ok((snapshot, Created::New))
    }

    fn find_existing(
        &self,
        user: &str,
        info_hash: &str,
        chosen: Option<usize>,
        requested: &Option<FileSelector>,
    ) -> Option<StreamSnapshot> {
        let entries = self.entries.lock().expect("streams lock");
        entries
            .values()
            .filter(|e| e.record.user == user && e.record.info_hash == info_hash)
            .find(|e| match (chosen, e.record.file_index) {
                (Some(a), Some(b)) => a == b,
                _ => &e.record.requested == requested,
            })
            .map(|e| StreamSnapshot {
                record: e.record.clone(),
                phase: e.phase.borrow().clone(),
                stats: e.stats.snapshot(),
                stalled: e.stats.is_stalled(),
            })
    }

    /// Registers a stream (resolving, or failed as it was saved). With `quotas`, the check
    /// and the insert happen under one lock, so concurrent creations cannot overshoot.
    fn register(
        &self,
        record: StreamRecord,
        stats: Arc<stats::LiveStats>,
        quotas: Option<Quotas>,
    ) -> Result<resolve::Started, StreamError> {
        let (tx, rx) = watch::channel(match &record.failure {
            Some(failure) => Phase::Failed(failure.clone()),
            None => Phase::Resolving,
        });
        let cancel = CancellationToken::new();
        let id = record.id.clone();
        let already_failed = record.failure.is_some();
        let mut entries = self.entries.lock().expect("streams lock");
        if let Some(quotas) = quotas {
            let total = entries.len();
            if quotas.total > 0 && total >= quotas.total {
                crate::limits::rate::refused("streams_total");
                return Err(StreamError::ServerQuota(quotas.total));
            }
            let mine = entries
                .values()
                .filter(|e| e.record.user == record.user)
                .count();
            if quotas.per_user > 0 && mine >= quotas.per_user {
                crate::limits::rate::refused("streams_per_user");
                return Err(StreamError::UserQuota(quotas.per_user));
            }
        }
        let entry = Entry {
            record,
            phase: rx.clone(),
            cancel: cancel.clone(),
            stats,
            played_unsaved: false,
        };
        entries.insert(id.clone(), entry);
        Ok(resolve::Started {
            id,
            phase: rx,
            tx: (!already_failed).then_some(tx),
            cancel,
        })
    }

    /// Stops and forgets the stream; its tokens stop working at once.
    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, user: &str, id: &str) -> Result<(), StreamError> {
        self.snapshot(user, id)?;
        self.forget(id, Stopped::Deleted).await;
        Ok(())
    }

    pub(super) async fn forget(&self, id: &str, why: Stopped) {
        let removed = self.entries.lock().expect("streams lock").remove(id);
        let Some(entry) = removed else { return };
        entry.cancel.cancel();
        let deleted = self.store.delete(id).await;
        let served = entry.stats.snapshot();
        let mut detail = serde_json::Map::new();
        let lived = now_secs().saturating_sub(entry.record.created_at);
        detail.insert("duration_seconds".into(), lived.into());
        detail.insert("bytes_served".into(), served.bytes_served.into());
        detail.insert("reason".into(), why.as_str().into());
        self.events
            .emit_with(&entry.record.user, id, "stream.stopped", None, detail);
        let phase = entry.phase.borrow().clone();
        if let (Phase::Ready(meta), Some(file)) = (phase, entry.record.file_index) {
            if let Err(err) = self.engine.release(&meta, file).await {
                tracing::warn!(stream = %id, error = %err, "release failed");
            }
        }
        // On a full disk the registry may not write until the stream's data is gone.
        if deleted.is_err() {
            if let Err(err) = self.store.delete(id).await {
                tracing::error!(stream = %id, error = %err, "cannot delete the stream from the registry");
            }
        }
    }

    /// A registry error for the API: a full disk says what is free.
    fn store_error(&self, err: store::StoreError) -> StreamError {
        match err {
            store::StoreError::Full => {
                let free = crate::engine::usage::available(&self.data_dir).unwrap_or(0);
                let message = format!(
                    "the server's disk is full ({} free); try again once there is room",
                    crate::engine::usage::human(free)
                );
                StreamError::Engine(EngineError::InsufficientStorage(message))
            }
            other => StreamError::Store(other),
        }
    }

    /// The event bus (`GET /api/v1/events`).
    pub fn events(&self) -> &events::Events {
        &self.events
    }

    /// The engine, for readers and status.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Waits (up to `engine.metadata_wait`) until no stream is resolving.
    pub async fn wait_settled(&self) {
        let phases: Vec<_> = {
            let entries = self.entries.lock().expect("streams lock");
            entries.values().map(|e| e.phase.clone()).collect()
        };
        let all = futures::future::join_all(phases.into_iter().map(|mut rx| async move {
            let _ = rx.wait_for(|p| !matches!(p, Phase::Resolving)).await;
        }));
        let _ = tokio::time::timeout(self.metadata_wait, all).await;
    }

    /// Cancels every resolution, writes the last statistics and closes the registry
    /// (shutdown).
    pub async fn shutdown(&self) {
        for entry in self.entries.lock().expect("streams lock").values() {
            entry.cancel.cancel();
        }
        self.save_stats().await;
        self.store.close().await;
    }
}

/// The failure recorded for an engine error.
pub fn failure_of(err: &EngineError) -> Failure {
    let code = crate::http::errors::engine_code(err);
    let message = match code {
        ErrorCode::Internal => "the torrent could not be started".to_owned(),
        _ => err.to_string(),
    };
    Failure {
        code: code.as_str().to_owned(),
        message,
    }
}

fn unix(time: std::time::SystemTime) -> u64 {
    time.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

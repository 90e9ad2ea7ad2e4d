//! Streams: one user's playback of one file of one torrent. This facade owns the registry
//! (who owns which stream), the background resolution of magnets, the playback tokens
//! issued for each stream, and persistence across restarts. Torrent work is the engine's;
//! HTTP shapes are `view`'s.

pub mod events;
mod playback;
pub mod record;
pub mod view;

pub use playback::PlaybackError;

use std::{
    collections::HashMap,
    path::PathBuf,
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
    #[error("cannot save the stream registry: {0}")]
    Store(std::io::Error),
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
}

/// The registry of all streams.
pub struct Streams {
    engine: Arc<Engine>,
    keys: Arc<PlaybackKeys>,
    entries: Mutex<HashMap<String, Entry>>,
    /// Held while a snapshot is taken and written, so saves never interleave and the last
    /// one written is the newest.
    save_lock: Mutex<()>,
    path: PathBuf,
    metadata_wait: Duration,
    metadata_timeout: Duration,
    quotas: Quotas,
    events: events::Events,
}

impl Streams {
    /// Loads the registry and resumes every stream in the background.
    pub fn load(
        engine: Arc<Engine>,
        keys: Arc<PlaybackKeys>,
        config: &crate::config::Config,
    ) -> anyhow::Result<Arc<Self>> {
        let path = config.storage.data_dir.join("streams.json");
        let records = record::load(&path)?;
        let streams = Arc::new(Self {
            engine,
            keys,
            entries: Mutex::new(HashMap::new()),
            save_lock: Mutex::new(()),
            path,
            metadata_wait: config.engine.metadata_wait,
            metadata_timeout: config.engine.metadata_timeout,
            quotas: Quotas {
                per_user: config.limits.max_streams_per_user,
                total: config.limits.max_streams,
            },
            events: events::Events::default(),
        });
        for record in records {
            let limits = streams.engine.limits();
            match parse_stored_magnet(&record.magnet, &limits) {
                Ok(mut source) => {
                    source.peers = record.peers.clone();
                    // Streams that existed before a restart keep their place, quota or not.
                    let _ = streams.start(record, source, None);
                }
                Err(err) => tracing::warn!(stream = %record.id, error = %err, "dropping stream"),
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
            self.forget(&existing.record.id).await;
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
        };
        if let crate::engine::source::SourceKind::Magnet(magnet) = &source.kind {
            record.magnet = magnet.clone();
        }
        let mut phase = self.start(record, source, Some(self.quotas))?;
        self.events.emit(user, &id, "stream.started", None);
        self.persist()?;
        let wait = tokio::time::timeout(
            self.metadata_wait,
            phase.wait_for(|p| !matches!(p, Phase::Resolving)),
        );
        let settled = wait.await.ok().and_then(|r| r.ok()).map(|p| p.clone());
        if let Some(Phase::Failed(failure)) = settled {
            self.forget(&id).await;
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
            })
    }

    /// Registers the entry and spawns its resolution.
    /// Registers a stream and starts resolving it. With `quotas`, the check and the insert
    /// happen under one lock, so concurrent creations cannot overshoot.
    fn start(
        self: &Arc<Self>,
        record: StreamRecord,
        source: TorrentSource,
        quotas: Option<Quotas>,
    ) -> Result<watch::Receiver<Phase>, StreamError> {
        let (tx, rx) = watch::channel(match &record.failure {
            Some(failure) => Phase::Failed(failure.clone()),
            None => Phase::Resolving,
        });
        let cancel = CancellationToken::new();
        let id = record.id.clone();
        let already_failed = record.failure.is_some();
        {
            let mut entries = self.entries.lock().expect("streams lock");
            if let Some(quotas) = quotas {
                let total = entries.len();
                if quotas.total > 0 && total >= quotas.total {
                    return Err(StreamError::ServerQuota(quotas.total));
                }
                let mine = entries
                    .values()
                    .filter(|e| e.record.user == record.user)
                    .count();
                if quotas.per_user > 0 && mine >= quotas.per_user {
                    return Err(StreamError::UserQuota(quotas.per_user));
                }
            }
            let entry = Entry {
                record,
                phase: rx.clone(),
                cancel: cancel.clone(),
            };
            entries.insert(id.clone(), entry);
        }
        if !already_failed {
            let streams = self.clone();
            tokio::spawn(async move { streams.resolve(id, source, tx, cancel).await });
        }
        Ok(rx)
    }

    #[tracing::instrument(skip_all, fields(stream = %id, info_hash = %source.info_hash))]
    async fn resolve(
        self: Arc<Self>,
        id: String,
        source: TorrentSource,
        tx: watch::Sender<Phase>,
        cancel: CancellationToken,
    ) {
        let resolved = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(self.metadata_timeout, self.engine.resolve(&source)) => r,
        };
        let outcome = match resolved {
            Err(_) => Err(EngineError::MetadataTimeout),
            Ok(result) => match result {
                Ok(meta) => self.activate(&id, meta).await,
                Err(err) => Err(err),
            },
        };
        let phase = match outcome {
            Ok(meta) => Phase::Ready(meta),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "stream failed to start");
                Phase::Failed(failure_of(&err))
            }
        };
        self.settle(&id, &phase);
        let _ = tx.send(phase);
    }

    /// Chooses the file, takes a reference on the torrent, records the choice.
    async fn activate(
        &self,
        id: &str,
        meta: Arc<TorrentMeta>,
    ) -> Result<Arc<TorrentMeta>, EngineError> {
        let (requested, peers) = {
            let entries = self.entries.lock().expect("streams lock");
            let Some(entry) = entries.get(id) else {
                return Err(EngineError::NotActive);
            };
            (entry.record.requested.clone(), entry.record.peers.clone())
        };
        let file = select_file(&meta.files, requested.as_ref())?;
        self.engine.acquire(&meta, file, &peers).await?;
        let still_here = {
            let mut entries = self.entries.lock().expect("streams lock");
            entries
                .get_mut(id)
                .map(|e| e.record.file_index = Some(file))
                .is_some()
        };
        if !still_here {
            // Deleted while we were acquiring: give the reference back.
            self.engine.release(&meta, file).await?;
            return Err(EngineError::NotActive);
        }
        Ok(meta)
    }

    fn settle(&self, id: &str, phase: &Phase) {
        {
            let mut entries = self.entries.lock().expect("streams lock");
            if let Some(entry) = entries.get_mut(id) {
                let user = &entry.record.user;
                match phase {
                    Phase::Failed(failure) => {
                        let code = Some(failure.code.as_str());
                        self.events.emit(user, id, "stream.failed", code);
                        entry.record.failure = Some(failure.clone());
                    }
                    Phase::Ready(_) => self.events.emit(user, id, "stream.ready", None),
                    Phase::Resolving => {}
                }
            }
        }
        if let Err(err) = self.persist() {
            tracing::error!(error = %err, "cannot save the stream registry");
        }
    }

    /// A stream of `user` by id (another user's stream is "not found").
    pub fn snapshot(&self, user: &str, id: &str) -> Result<StreamSnapshot, StreamError> {
        let entries = self.entries.lock().expect("streams lock");
        let entry = entries
            .get(id)
            .filter(|e| e.record.user == user)
            .ok_or(StreamError::NotFound)?;
        let phase = entry.phase.borrow().clone();
        Ok(StreamSnapshot {
            record: entry.record.clone(),
            phase,
        })
    }

    /// The user's streams, oldest first; expired tokens are renewed so URLs work.
    pub fn list(&self, user: &str) -> Vec<StreamSnapshot> {
        let ids: Vec<String> = {
            let entries = self.entries.lock().expect("streams lock");
            let mut mine: Vec<_> = entries.values().filter(|e| e.record.user == user).collect();
            mine.sort_by(|a, b| {
                (a.record.created_at, &a.record.id).cmp(&(b.record.created_at, &b.record.id))
            });
            mine.iter().map(|e| e.record.id.clone()).collect()
        };
        ids.iter()
            .filter_map(|id| self.get(user, id).ok())
            .collect()
    }

    /// Every user's streams, oldest first (admin).
    pub fn list_all(&self) -> Vec<StreamSnapshot> {
        let owners: Vec<(String, String)> = {
            let entries = self.entries.lock().expect("streams lock");
            let mut all: Vec<_> = entries.values().collect();
            all.sort_by(|a, b| {
                (a.record.created_at, &a.record.id).cmp(&(b.record.created_at, &b.record.id))
            });
            all.iter()
                .map(|e| (e.record.user.clone(), e.record.id.clone()))
                .collect()
        };
        owners
            .iter()
            .filter_map(|(user, id)| self.get(user, id).ok())
            .collect()
    }

    /// Deletes any user's stream (admin); returns its owner.
    pub async fn delete_any(&self, id: &str) -> Result<String, StreamError> {
        let owner = {
            let entries = self.entries.lock().expect("streams lock");
            entries.get(id).map(|e| e.record.user.clone())
        };
        let owner = owner.ok_or(StreamError::NotFound)?;
        self.forget(id).await;
        Ok(owner)
    }

    /// One stream, with its token renewed if it has expired.
    pub fn get(&self, user: &str, id: &str) -> Result<StreamSnapshot, StreamError> {
        let snapshot = self.snapshot(user, id)?;
        if snapshot.record.token_expires_at > now_secs() {
            return Ok(snapshot);
        }
        self.refresh(user, id)
    }

    /// A new playback token for the stream (older ones stay valid until they expire).
    pub fn refresh(&self, user: &str, id: &str) -> Result<StreamSnapshot, StreamError> {
        let issued = self.keys.issue(user, id).map_err(|_| StreamError::Token)?;
        {
            let mut entries = self.entries.lock().expect("streams lock");
            let entry = entries
                .get_mut(id)
                .filter(|e| e.record.user == user)
                .ok_or(StreamError::NotFound)?;
            entry.record.token = issued.token;
            entry.record.token_expires_at = unix(issued.expires_at);
        }
        self.persist()?;
        self.snapshot(user, id)
    }

    /// Stops and forgets the stream; its tokens stop working at once.
    #[tracing::instrument(skip(self))]
    pub async fn delete(&self, user: &str, id: &str) -> Result<(), StreamError> {
        self.snapshot(user, id)?;
        self.forget(id).await;
        Ok(())
    }

    async fn forget(&self, id: &str) {
        let removed = self.entries.lock().expect("streams lock").remove(id);
        let Some(entry) = removed else { return };
        entry.cancel.cancel();
        self.events
            .emit(&entry.record.user, id, "stream.stopped", None);
        let phase = entry.phase.borrow().clone();
        if let (Phase::Ready(meta), Some(file)) = (phase, entry.record.file_index) {
            if let Err(err) = self.engine.release(&meta, file).await {
                tracing::warn!(stream = %id, error = %err, "release failed");
            }
        }
        if let Err(err) = self.persist() {
            tracing::error!(error = %err, "cannot save the stream registry");
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

    fn persist(&self) -> Result<(), StreamError> {
        let _saving = self.save_lock.lock().expect("save lock");
        let records: Vec<StreamRecord> = {
            let entries = self.entries.lock().expect("streams lock");
            entries.values().map(|e| e.record.clone()).collect()
        };
        record::save(&self.path, records).map_err(StreamError::Store)
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

    /// Cancels every resolution (shutdown).
    pub fn shutdown(&self) {
        for entry in self.entries.lock().expect("streams lock").values() {
            entry.cancel.cancel();
        }
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

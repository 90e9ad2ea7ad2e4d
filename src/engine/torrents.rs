//! Torrents shared by streams: one librqbit torrent per info-hash, reference-counted per
//! file, with `only_files` the union of the files streams use (plus their subtitles), under
//! the disk quota ([`quota`](super::quota)): a torrent is added only once it fits, evicting the
//! data of torrents nobody reads if it must; an evicted torrent keeps its streams and comes
//! back (downloading again) when one is played. The first use of a file reports it so the
//! engine can pin its head and tail. The last release removes the torrent from the session.
//! Pins themselves are `pins`'.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
};

use librqbit::{AddTorrent, AddTorrentOptions, AddTorrentResponse, Session};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{
    files::companions,
    health::{Condition, Health},
    quota::{refusal, reservation, Quota},
    usage::Admission,
    EngineError, EngineEvent, TorrentHandle as ManagedTorrentHandle, TorrentMeta,
};

struct Entry {
    /// `None` while evicted: its data went to stay under the disk quota.
    handle: Option<ManagedTorrentHandle>,
    /// file index → number of streams using it.
    users: HashMap<usize, usize>,
    cancel: CancellationToken,
    meta: Arc<TorrentMeta>,
    peers: Vec<SocketAddr>,
}

impl Entry {
    fn selection(&self) -> HashSet<usize> {
        selection(&self.meta, self.users.keys())
    }

    fn reserved(&self) -> u64 {
        reservation(&self.meta, self.selection())
    }
}

/// How torrents are added (from `[engine]`, `[limits]` and the data folder).
pub(crate) struct AddTemplate {
    pub downloads: PathBuf,
    /// librqbit's folder of saved piece states (`<info-hash>.bitv`).
    pub session_dir: PathBuf,
    pub peer_opts: librqbit::PeerConnectionOptions,
    pub ratelimits: librqbit::limits::LimitsConfig,
}

/// The shared-torrent table. Mutations are serialised by an async mutex (they are rare and
/// await librqbit); readers look handles up in the session directly.
pub(crate) struct Torrents {
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
    template: AddTemplate,
    pub quota: Quota,
    events: broadcast::Sender<EngineEvent>,
    health: Arc<Health>,
}

/// A file newly in use (or a torrent back from eviction): its pins' cancellation.
pub(crate) type Started = Option<CancellationToken>;

impl Torrents {
    pub fn new(
        template: AddTemplate,
        quota: Quota,
        events: broadcast::Sender<EngineEvent>,
        health: Arc<Health>,
    ) -> Self {
        Self {
            entries: tokio::sync::Mutex::new(HashMap::new()),
            template,
            quota,
            events,
            health,
        }
    }

    /// Takes a reference on `file` of the torrent, adding the torrent (once it fits the disk
    /// quota) or widening its selection. Returns the pins' cancellation when the file is
    /// newly used.
    pub async fn acquire(
        &self,
        session: &Arc<Session>,
        meta: &Arc<TorrentMeta>,
        file: usize,
        peers: &[SocketAddr],
    ) -> Result<Started, EngineError> {
        let mut entries = self.entries.lock().await;
        let hash = meta.info_hash.clone();
        let Some(entry) = entries.get_mut(&hash) else {
            let entry = Entry {
                handle: None,
                users: HashMap::from([(file, 1)]),
                cancel: CancellationToken::new(),
                meta: meta.clone(),
                peers: peers.to_vec(),
            };
            entries.insert(hash.clone(), entry);
            let started = self.activate(session, &mut entries, &hash).await;
            if started.is_err() {
                entries.remove(&hash);
            }
            return started;
        };
        let count = entry.users.entry(file).or_insert(0);
        *count += 1;
        if *count > 1 {
            return Ok(None);
        }
        let widened = self.widen(session, &mut entries, &hash, file).await;
        if widened.is_err() {
            if let Some(entry) = entries.get_mut(&hash) {
                entry.users.remove(&file);
            }
        }
        widened
    }

    /// `file` was added to an existing torrent's selection: room for it, then the selection.
    async fn widen(
        &self,
        session: &Arc<Session>,
        entries: &mut HashMap<String, Entry>,
        hash: &str,
        file: usize,
    ) -> Result<Started, EngineError> {
        let entry = &entries[hash];
        if entry.handle.is_none() {
            return self.activate(session, entries, hash).await;
        }
        let others = entry.users.keys().filter(|f| **f != file);
        let before = reservation(&entry.meta, selection(&entry.meta, others));
        let needed = entry.reserved().saturating_sub(before);
        self.make_room(session, entries, hash, needed).await?;
        let entry = &entries[hash];
        let handle = entry.handle.clone().expect("active");
        set_selection(session, &handle, &entry.selection()).await?;
        Ok(Some(entry.cancel.clone()))
    }

    /// Adds an entry's torrent to the session (it was new or evicted), after making room.
    async fn activate(
        &self,
        session: &Arc<Session>,
        entries: &mut HashMap<String, Entry>,
        hash: &str,
    ) -> Result<Started, EngineError> {
        let needed = entries[hash].reserved();
        self.make_room(session, entries, hash, needed).await?;
        self.check_disk(hash, needed)?;
        let entry = entries.get_mut(hash).expect("entry present");
        let handle = add(
            session,
            &entry.meta,
            &entry.selection(),
            &self.template,
            &entry.peers,
        )
        .await?;
        entry.handle = Some(handle);
        entry.cancel = CancellationToken::new();
        self.quota.activity.touch(hash);
        self.health.set(hash, None);
        Ok(Some(entry.cancel.clone()))
    }

    /// Brings an evicted torrent back (a player wants it). `None` when it is active already.
    pub async fn ensure_active(
        &self,
        session: &Arc<Session>,
        info_hash: &str,
    ) -> Result<Started, EngineError> {
        let mut entries = self.entries.lock().await;
        match entries.get(info_hash) {
            Some(entry) if entry.handle.is_none() => {
                tracing::info!(info_hash, "bringing an evicted torrent back");
                self.activate(session, &mut entries, info_hash).await
            }
            _ => Ok(None),
        }
    }

    /// Frees `needed` bytes of quota for `hash` (whose own data is not counted), evicting
    /// torrents nobody reads, least recently read first; refuses with the sizes otherwise.
    async fn make_room(
        &self,
        session: &Arc<Session>,
        entries: &mut HashMap<String, Entry>,
        hash: &str,
        needed: u64,
    ) -> Result<(), EngineError> {
        let held = held(entries);
        let admission = self.quota.admit(needed, &held, hash);
        if let Some(refused) = refusal(&admission) {
            crate::limits::rate::refused("disk_quota");
            return Err(refused);
        }
        if let Admission::Evict(victims) = admission {
            for victim in victims {
                self.evict(session, entries, &victim).await;
            }
        }
        Ok(())
    }

    /// Refuses a torrent the filesystem itself has no room for (the quota may be set higher
    /// than the disk, or another program filled it): `needed` bytes, less what its folder
    /// holds already, must be free.
    fn check_disk(&self, hash: &str, needed: u64) -> Result<(), EngineError> {
        let Some(free) = crate::engine::usage::available(&self.template.downloads) else {
            return Ok(());
        };
        let missing = needed.saturating_sub(self.quota.measured(hash));
        if missing <= free {
            return Ok(());
        }
        crate::limits::rate::refused("disk_full");
        Err(EngineError::InsufficientStorage(format!(
            "the disk is full: this file needs {} more and {} is free",
            crate::engine::usage::human(missing),
            crate::engine::usage::human(free)
        )))
    }

    /// Evicts what the quota says is over (measured sizes past the limit).
    pub async fn enforce(&self, session: &Arc<Session>) {
        let mut entries = self.entries.lock().await;
        if let Admission::Evict(victims) = self.quota.over(&held(&entries)) {
            for victim in victims {
                self.evict(session, &mut entries, &victim).await;
            }
        }
    }

    /// Removes a torrent's data: out of the session if it is there (its streams stay; the
    /// next play brings it back), then its folder and saved piece state.
    async fn evict(
        &self,
        session: &Arc<Session>,
        entries: &mut HashMap<String, Entry>,
        hash: &str,
    ) {
        let bytes = self.quota.measured(hash);
        if let Some(entry) = entries.get_mut(hash) {
            entry.cancel.cancel();
            if let Some(handle) = entry.handle.take() {
                let id = librqbit::api::TorrentIdOrHash::Id(handle.id());
                if let Err(err) = session.delete(id, true).await {
                    tracing::warn!(info_hash = hash, error = %format!("{err:#}"), "cannot evict a torrent");
                }
            }
        }
        remove_data(&self.template, hash).await;
        self.quota.removed(hash);
        if entries.contains_key(hash) {
            self.health.set(hash, Some(Condition::Evicted));
        }
        tracing::info!(
            info_hash = hash,
            bytes,
            "evicted a torrent's data to stay under the disk quota"
        );
        metrics::counter!(crate::telemetry::names::EVICTIONS).increment(1);
        let _ = self.events.send(EngineEvent::Evicted {
            info_hash: hash.to_owned(),
            bytes,
        });
    }

    /// Drops a reference; the last one removes the torrent from the session and, when
    /// `delete_folder` is set, its download folder (under the lock, so a concurrent re-add
    /// never loses its files). Says whether the torrent left the engine.
    pub async fn release(
        &self,
        session: &Arc<Session>,
        info_hash: &str,
        file: usize,
        delete_folder: bool,
    ) -> Result<bool, EngineError> {
        let mut entries = self.entries.lock().await;
        let Some(entry) = entries.get_mut(info_hash) else {
            return Ok(false);
        };
        match entry.users.get_mut(&file) {
            Some(count) if *count > 1 => {
                *count -= 1;
                return Ok(false);
            }
            Some(_) => {
                entry.users.remove(&file);
            }
            None => return Ok(false),
        }
        if !entry.users.is_empty() {
            return match &entry.handle {
                Some(handle) => set_selection(session, handle, &entry.selection())
                    .await
                    .map(|()| false),
                None => Ok(false),
            };
        }
        let entry = entries.remove(info_hash).expect("entry present");
        entry.cancel.cancel();
        self.health.forget(info_hash);
        if let Some(handle) = entry.handle {
            let id = librqbit::api::TorrentIdOrHash::Id(handle.id());
            session
                .delete(id, delete_folder)
                .await
                .map_err(EngineError::Internal)?;
        }
        if delete_folder {
            remove_data(&self.template, info_hash).await;
            self.quota.removed(info_hash);
        }
        Ok(true)
    }

    /// Where downloads go.
    pub fn downloads(&self) -> &std::path::Path {
        &self.template.downloads
    }

    /// Whether the torrent's data was evicted (its streams wait to be played again).
    pub async fn evicted(&self, info_hash: &str) -> bool {
        let entries = self.entries.lock().await;
        entries.get(info_hash).is_some_and(|e| e.handle.is_none())
    }

    /// The torrents in the engine (not evicted), by info-hash.
    pub async fn active(&self) -> Vec<(String, ManagedTorrentHandle)> {
        let entries = self.entries.lock().await;
        entries
            .iter()
            .filter_map(|(hash, e)| Some((hash.clone(), e.handle.clone()?)))
            .collect()
    }
}

/// Bytes each torrent in the engine holds in full.
fn held(entries: &HashMap<String, Entry>) -> HashMap<String, u64> {
    entries
        .iter()
        .filter(|(_, e)| e.handle.is_some())
        .map(|(hash, e)| (hash.clone(), e.reserved()))
        .collect()
}

/// Removes a torrent's download folder and saved piece state: with the data gone, a piece
/// state saying "have" would serve holes.
async fn remove_data(template: &AddTemplate, hash: &str) {
    let folder = template.downloads.join(hash);
    if folder.exists() {
        if let Err(err) = tokio::fs::remove_dir_all(&folder).await {
            tracing::warn!(error = %err, folder = %folder.display(), "cannot remove a torrent's folder");
        }
    }
    let state = template.session_dir.join(format!("{hash}.bitv"));
    let _ = tokio::fs::remove_file(state).await;
}

fn selection<'a>(meta: &TorrentMeta, files: impl Iterator<Item = &'a usize>) -> HashSet<usize> {
    let mut set = HashSet::new();
    for &file in files {
        set.insert(file);
        set.extend(companions(&meta.files, file));
    }
    set
}

async fn add(
    session: &Arc<Session>,
    meta: &TorrentMeta,
    selection: &HashSet<usize>,
    template: &AddTemplate,
    extra_peers: &[SocketAddr],
) -> Result<ManagedTorrentHandle, EngineError> {
    let mut peers = meta.seen_peers.clone();
    peers.extend(extra_peers);
    peers.sort();
    peers.dedup();
    let add_opts = AddTorrentOptions {
        only_files: Some(selection.iter().copied().collect()),
        overwrite: true,
        output_folder: Some(
            template
                .downloads
                .join(&meta.info_hash)
                .to_string_lossy()
                .into_owned(),
        ),
        initial_peers: (!peers.is_empty()).then_some(peers),
        trackers: (!meta.trackers.is_empty()).then(|| meta.trackers.clone()),
        peer_opts: Some(template.peer_opts),
        ratelimits: template.ratelimits,
        ..Default::default()
    };
    let bytes = AddTorrent::TorrentFileBytes(meta.torrent_bytes.clone());
    let response = session
        .add_torrent(bytes, Some(add_opts))
        .await
        .map_err(EngineError::Internal)?;
    let handle = match response {
        AddTorrentResponse::Added(_, handle) => handle,
        AddTorrentResponse::AlreadyManaged(_, handle) => {
            set_selection(session, &handle, selection).await?;
            if handle.is_paused() {
                session
                    .unpause(&handle)
                    .await
                    .map_err(EngineError::Internal)?;
            }
            handle
        }
        AddTorrentResponse::ListOnly(_) => {
            return Err(EngineError::Internal(anyhow::anyhow!(
                "torrent was not added"
            )))
        }
    };
    Ok(handle)
}

/// Sets `only_files` once the torrent has finished initialising (librqbit refuses before).
async fn set_selection(
    session: &Arc<Session>,
    handle: &ManagedTorrentHandle,
    selection: &HashSet<usize>,
) -> Result<(), EngineError> {
    let wait = std::time::Duration::from_secs(600);
    tokio::time::timeout(wait, handle.wait_until_initialized())
        .await
        .map_err(|_| EngineError::Internal(anyhow::anyhow!("torrent initialisation timed out")))?
        .map_err(EngineError::Internal)?;
    session
        .update_only_files(handle, selection)
        .await
        .map_err(EngineError::Internal)
}

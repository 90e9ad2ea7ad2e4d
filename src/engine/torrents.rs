//! Torrents shared by streams: one librqbit torrent per info-hash, reference-counted per
//! file, with `only_files` the union of the files streams use (plus their subtitles). The
//! first use of a file reports it so the engine can pin its head and tail. The last release
//! removes the torrent from the session. Pins themselves are `pins`'.

use std::{collections::HashMap, path::PathBuf, sync::Arc};

use librqbit::{AddTorrent, AddTorrentOptions, AddTorrentResponse, Session};

use super::TorrentHandle as ManagedTorrentHandle;
use tokio_util::sync::CancellationToken;

use super::{files::companions, EngineError, TorrentMeta};

struct Entry {
    handle: ManagedTorrentHandle,
    /// file index → number of streams using it.
    users: HashMap<usize, usize>,
    cancel: CancellationToken,
}

/// The shared-torrent table. Mutations are serialised by an async mutex (they are rare and
/// await librqbit); readers look handles up in the session directly.
pub(crate) struct Torrents {
    entries: tokio::sync::Mutex<HashMap<String, Entry>>,
}

/// What `acquire` needs besides the metadata.
pub(crate) struct AcquireOptions {
    pub output_folder: PathBuf,
    pub extra_peers: Vec<std::net::SocketAddr>,
    pub peer_opts: librqbit::PeerConnectionOptions,
    pub ratelimits: librqbit::limits::LimitsConfig,
}

impl Torrents {
    pub fn new() -> Self {
        Self {
            entries: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    /// Takes a reference on `file` of the torrent, adding the torrent or widening its
    /// selection. Returns the cancellation token of the torrent (for pins) when the file is
    /// newly used.
    pub async fn acquire(
        &self,
        session: &Arc<Session>,
        meta: &TorrentMeta,
        file: usize,
        opts: AcquireOptions,
    ) -> Result<Option<(ManagedTorrentHandle, CancellationToken)>, EngineError> {
        let mut entries = self.entries.lock().await;
        if let Some(entry) = entries.get_mut(&meta.info_hash) {
            let count = entry.users.entry(file).or_insert(0);
            *count += 1;
            if *count > 1 {
                return Ok(None);
            }
            let selection = selection(meta, entry.users.keys());
            if let Err(err) = set_selection(session, &entry.handle, &selection).await {
                entry.users.remove(&file);
                return Err(err);
            }
            return Ok(Some((entry.handle.clone(), entry.cancel.clone())));
        }
        let selection = selection(meta, [file].iter());
        let handle = add(session, meta, &selection, opts).await?;
        let cancel = CancellationToken::new();
        entries.insert(
            meta.info_hash.clone(),
            Entry {
                handle: handle.clone(),
                users: HashMap::from([(file, 1)]),
                cancel: cancel.clone(),
            },
        );
        Ok(Some((handle, cancel)))
    }

    /// Drops a reference; the last one removes the torrent from the session and, when
    /// `delete_folder` is given, its download folder (under the lock, so a concurrent re-add
    /// never loses its files). Says whether the torrent left the session.
    pub async fn release(
        &self,
        session: &Arc<Session>,
        meta: &TorrentMeta,
        file: usize,
        delete_folder: Option<PathBuf>,
    ) -> Result<bool, EngineError> {
        let mut entries = self.entries.lock().await;
        let Some(entry) = entries.get_mut(&meta.info_hash) else {
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
            let selection = selection(meta, entry.users.keys());
            return set_selection(session, &entry.handle, &selection)
                .await
                .map(|()| false);
        }
        let entry = entries.remove(&meta.info_hash).expect("entry present");
        entry.cancel.cancel();
        let id = librqbit::api::TorrentIdOrHash::Id(entry.handle.id());
        session
            .delete(id, delete_folder.is_some())
            .await
            .map_err(EngineError::Internal)?;
        if let Some(folder) = delete_folder.filter(|f| f.exists()) {
            if let Err(err) = tokio::fs::remove_dir_all(&folder).await {
                tracing::warn!(error = %err, "cannot remove a released torrent's folder");
            }
        }
        Ok(true)
    }
}

fn selection<'a>(
    meta: &TorrentMeta,
    files: impl Iterator<Item = &'a usize>,
) -> std::collections::HashSet<usize> {
    let mut set = std::collections::HashSet::new();
    for &file in files {
        set.insert(file);
        set.extend(companions(&meta.files, file));
    }
    set
}

async fn add(
    session: &Arc<Session>,
    meta: &TorrentMeta,
    selection: &std::collections::HashSet<usize>,
    opts: AcquireOptions,
) -> Result<ManagedTorrentHandle, EngineError> {
    let mut peers = meta.seen_peers.clone();
    peers.extend(opts.extra_peers);
    peers.sort();
    peers.dedup();
    let add_opts = AddTorrentOptions {
        only_files: Some(selection.iter().copied().collect()),
        overwrite: true,
        output_folder: Some(opts.output_folder.to_string_lossy().into_owned()),
        initial_peers: (!peers.is_empty()).then_some(peers),
        trackers: (!meta.trackers.is_empty()).then(|| meta.trackers.clone()),
        peer_opts: Some(opts.peer_opts),
        ratelimits: opts.ratelimits,
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
            // Restored by librqbit's persistence with its old selection: set ours.
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
    selection: &std::collections::HashSet<usize>,
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

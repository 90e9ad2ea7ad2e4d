//! Torrent metadata: resolved from the uploaded bytes, the swarm (a magnet, `list_only` with its
//! peer hints), or what is known already (memory, then `data_dir/torrents/<info-hash>.torrent`),
//! and validated like an uploaded .torrent before anything uses it.

use std::{net::SocketAddr, path::PathBuf, sync::Arc};

use bytes::Bytes;
use librqbit::{AddTorrent, AddTorrentOptions, AddTorrentResponse};

use super::{
    session,
    source::{parse_torrent, SourceError, SourceKind, TorrentSource},
    Engine, EngineError, TorrentMeta,
};

impl Engine {
    /// Metadata already known (memory or disk), without touching the network.
    pub fn known_meta(&self, info_hash: &str) -> Option<Arc<TorrentMeta>> {
        if let Some(meta) = self.metas.get(info_hash) {
            return Some(meta);
        }
        let bytes = std::fs::read(self.torrent_file(info_hash)).ok()?;
        let source = parse_torrent(Bytes::from(bytes), &self.limits()).ok()?;
        self.remember(source, Vec::new()).ok()
    }

    /// Resolves metadata: from cache, from the uploaded bytes, or from the swarm (unbounded:
    /// callers wrap it in their timeout).
    pub async fn resolve(&self, source: &TorrentSource) -> Result<Arc<TorrentMeta>, EngineError> {
        if let Some(meta) = self.known_meta(&source.info_hash) {
            return Ok(meta);
        }
        let (validated, seen_peers) = match &source.kind {
            SourceKind::Torrent(_) => (source.clone(), Vec::new()),
            SourceKind::Magnet(magnet) => self.fetch_metadata(magnet, source).await?,
        };
        if validated.info_hash != source.info_hash {
            return Err(
                SourceError::InvalidTorrent("metadata has another info-hash".into()).into(),
            );
        }
        let SourceKind::Torrent(bytes) = &validated.kind else {
            return Err(EngineError::Internal(anyhow::anyhow!("unexpected source")));
        };
        write_private(&self.torrent_file(&source.info_hash), bytes)
            .map_err(|e| EngineError::Internal(e.into()))?;
        let mut validated = validated;
        validated.trackers.extend(source.trackers.iter().cloned());
        validated.trackers.dedup();
        self.remember(validated, seen_peers)
    }

    async fn fetch_metadata(
        &self,
        magnet: &str,
        source: &TorrentSource,
    ) -> Result<(TorrentSource, Vec<SocketAddr>), EngineError> {
        let opts = AddTorrentOptions {
            list_only: true,
            initial_peers: (!source.peers.is_empty()).then(|| source.peers.clone()),
            peer_opts: Some(session::peer_options(&self.config)),
            ..Default::default()
        };
        let response = self
            .session
            .add_torrent(AddTorrent::from_url(magnet.to_owned()), Some(opts))
            .await
            .map_err(|err| {
                tracing::info!(error = %format!("{err:#}"), "magnet resolution gave up");
                EngineError::MetadataUnavailable
            })?;
        let AddTorrentResponse::ListOnly(list) = response else {
            return Err(EngineError::Internal(anyhow::anyhow!(
                "expected a list-only answer"
            )));
        };
        let validated = parse_torrent(list.torrent_bytes, &self.limits())?;
        Ok((validated, list.seen_peers))
    }

    fn remember(
        &self,
        source: TorrentSource,
        seen_peers: Vec<SocketAddr>,
    ) -> Result<Arc<TorrentMeta>, EngineError> {
        let SourceKind::Torrent(torrent_bytes) = source.kind else {
            return Err(EngineError::Internal(anyhow::anyhow!("no torrent bytes")));
        };
        let meta = Arc::new(TorrentMeta {
            name: source.name.unwrap_or_else(|| source.info_hash.clone()),
            info_hash: source.info_hash,
            files: source.files.unwrap_or_default(),
            piece_length: source.piece_length,
            torrent_bytes,
            trackers: source.trackers,
            seen_peers,
        });
        self.metas.insert(meta.info_hash.clone(), meta.clone());
        Ok(meta)
    }

    fn torrent_file(&self, info_hash: &str) -> PathBuf {
        // info_hash is always 40 hex characters here (validated by `source`).
        self.config
            .storage
            .data_dir
            .join("torrents")
            .join(format!("{info_hash}.torrent"))
    }
}

fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

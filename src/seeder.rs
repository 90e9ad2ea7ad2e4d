//! An in-process BitTorrent seeder on 127.0.0.1 (DHT, LSD and trackers off): a second
//! librqbit session that seeds files in place. `magnetar demo`, the integration tests and
//! the benchmarks use it as the swarm.

use std::{net::SocketAddr, num::NonZeroU32, path::Path, sync::Arc};

use anyhow::Context;
use librqbit::{
    limits::LimitsConfig, CreateTorrentOptions, ListenerMode, ListenerOptions, Session,
    SessionOptions,
};

/// A running seeder session.
pub struct Seeder {
    session: Arc<Session>,
    /// Where peers reach it.
    pub addr: SocketAddr,
    _scratch: tempfile::TempDir,
}

/// A torrent the seeder serves.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub info_hash: String,
    pub torrent_bytes: bytes::Bytes,
    /// `magnet:?xt=…&dn=…&x.pe=<seeder>` — playable with no DHT or tracker.
    pub magnet: String,
}

impl Seeder {
    /// Starts a seeder; `upload_bps` caps its total upload rate.
    pub async fn start(upload_bps: Option<u32>) -> anyhow::Result<Self> {
        Self::start_at("127.0.0.1:0".parse()?, upload_bps).await
    }

    /// Starts a seeder listening on `addr` (a seeder coming back where it was).
    pub async fn start_at(addr: SocketAddr, upload_bps: Option<u32>) -> anyhow::Result<Self> {
        let scratch = tempfile::tempdir()?;
        let opts = SessionOptions {
            dht: None,
            disable_trackers: true,
            disable_local_service_discovery: true,
            persistence: None,
            listen: Some(ListenerOptions {
                mode: ListenerMode::TcpOnly,
                listen_addr: addr,
                ipv4_only: true,
                ..Default::default()
            }),
            ratelimits: LimitsConfig {
                upload_bps: upload_bps.and_then(NonZeroU32::new),
                download_bps: None,
            },
            runtime_worker_threads: Some(1024),
            ..Default::default()
        };
        let session = Session::new_with_opts(scratch.path().to_owned(), opts).await?;
        let addr = session.listen_addr().context("seeder is not listening")?;
        Ok(Self {
            session,
            addr,
            _scratch: scratch,
        })
    }

    /// Creates a torrent of `path` (a file or a folder) and seeds it in place.
    pub async fn seed(&self, path: &Path) -> anyhow::Result<Seeded> {
        self.seed_with(path, None).await
    }

    /// Like [`Seeder::seed`] with a given piece length.
    pub async fn seed_with(
        &self,
        path: &Path,
        piece_length: Option<u32>,
    ) -> anyhow::Result<Seeded> {
        let opts = CreateTorrentOptions {
            piece_length,
            ..Default::default()
        };
        let (torrent, handle) = self
            .session
            .create_and_serve_torrent(path, opts)
            .await
            .map_err(|e| anyhow::anyhow!("cannot seed {}: {e}", path.display()))?;
        handle.wait_until_initialized().await?;
        let info_hash = torrent.info_hash().as_string();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dn: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let magnet = format!("magnet:?xt=urn:btih:{info_hash}&dn={dn}&x.pe={}", self.addr);
        Ok(Seeded {
            info_hash,
            torrent_bytes: torrent.as_bytes()?,
            magnet,
        })
    }

    /// Stops seeding.
    pub async fn stop(&self) {
        self.session.stop().await;
    }
}

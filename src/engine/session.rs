//! Building the one librqbit `Session` of the process from `[engine]` and the data folder.
//!
//! The session-wide semaphore librqbit sizes from `runtime_worker_threads` is also held by
//! every open `FileStream` (the "8-stream freeze"), so it is sized far above our own reader
//! cap (player readers + pin readers + room for librqbit's own disk work); `Engine` caps
//! readers itself.

use std::{path::Path, sync::Arc};

use librqbit::{
    dht::DhtPersistenceConfig, ConnectionOptions, ListenerMode, ListenerOptions,
    PeerConnectionOptions, Session, SessionOptions, SessionPersistenceConfig,
};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Folder names inside `storage.data_dir`.
pub const DOWNLOADS_DIR: &str = "downloads";
pub const SESSION_DIR: &str = "session";

/// librqbit's list of torrents to restore, inside [`SESSION_DIR`].
const RESTORE_LIST: &str = "session.json";

/// Starts the session. Downloads go to `data_dir/downloads/<info-hash>/`.
///
/// librqbit's own list of torrents to restore is emptied first: restored torrents lose their
/// per-torrent options (rate limits, peers, trackers) and cannot be given them again, so every
/// torrent is added by its streams instead, with all its options. Each torrent's saved piece
/// state (`<info-hash>.bitv` in the same folder) is kept, so the re-add resumes without
/// downloading or checking again what was there.
pub async fn build_session(
    config: &Config,
    cancel: &CancellationToken,
) -> anyhow::Result<Arc<Session>> {
    let engine = &config.engine;
    let data_dir = &config.storage.data_dir;
    let restore_list = data_dir.join(SESSION_DIR).join(RESTORE_LIST);
    match std::fs::remove_file(&restore_list) {
        Ok(()) => tracing::debug!("librqbit's restore list emptied: streams re-add their torrents"),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => anyhow::bail!("cannot reset {}: {err}", restore_list.display()),
    }
    let listen = config.peer_listen_addr()?.map(|addr| ListenerOptions {
        mode: ListenerMode::TcpOnly,
        listen_addr: addr,
        enable_upnp_port_forwarding: engine.upnp,
        ipv4_only: addr.is_ipv4(),
        ..Default::default()
    });
    let opts = SessionOptions {
        dht: engine.dht.then(|| dht_config(data_dir)),
        disable_local_service_discovery: !engine.lsd,
        fastresume: true,
        persistence: Some(SessionPersistenceConfig::Json {
            folder: Some(data_dir.join(SESSION_DIR)),
        }),
        listen,
        connect: Some(ConnectionOptions {
            peer_opts: Some(peer_options(config)),
            ..Default::default()
        }),
        runtime_worker_threads: Some(engine.max_readers + pin_slots(config) + 64),
        peer_limit: Some(engine.peer_limit),
        cancellation_token: Some(cancel.child_token()),
        client_name_and_version: Some(format!("magnetar {}", env!("CARGO_PKG_VERSION"))),
        ..Default::default()
    };
    Session::new_with_opts(data_dir.join(DOWNLOADS_DIR), opts).await
}

/// Readers reserved for head/tail pins (outside `engine.max_readers`).
pub fn pin_slots(config: &Config) -> usize {
    config.engine.max_readers / 2
}

/// Per-peer connection options: the in-flight request window steers seek latency.
pub fn peer_options(config: &Config) -> PeerConnectionOptions {
    PeerConnectionOptions {
        max_request_window: Some(config.engine.request_window),
        connect_timeout: Some(std::time::Duration::from_secs(10)),
        read_write_timeout: Some(std::time::Duration::from_secs(30)),
        ..Default::default()
    }
}

fn dht_config(data_dir: &Path) -> librqbit::DhtSessionConfig {
    librqbit::DhtSessionConfig {
        persistence: Some(DhtPersistenceConfig {
            config_filename: Some(data_dir.join("dht.json")),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// librqbit stalls a torrent capped below this many bytes per second.
pub const MIN_TORRENT_BPS: u32 = 16 * 1024;

/// Per-torrent download/upload caps from `[limits]` (0: none), raised to [`MIN_TORRENT_BPS`].
pub fn torrent_ratelimits(config: &crate::config::Config) -> librqbit::limits::LimitsConfig {
    let cap = |bps: u32| match bps {
        0 => None,
        bps => std::num::NonZeroU32::new(bps.max(MIN_TORRENT_BPS)),
    };
    librqbit::limits::LimitsConfig {
        download_bps: cap(config.limits.torrent_download_bps),
        upload_bps: cap(config.limits.torrent_upload_bps),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torrent_caps_are_off_at_zero_and_never_below_librqbits_floor() {
        let mut config = crate::config::Config::defaults().unwrap();
        let limits = torrent_ratelimits(&config);
        assert_eq!((limits.download_bps, limits.upload_bps), (None, None));
        (
            config.limits.torrent_download_bps,
            config.limits.torrent_upload_bps,
        ) = (1000, 1 << 20);
        let limits = torrent_ratelimits(&config);
        assert_eq!(limits.download_bps.map(|b| b.get()), Some(MIN_TORRENT_BPS));
        assert_eq!(limits.upload_bps.map(|b| b.get()), Some(1 << 20));
    }
}

//! Magnetar: a torrent-first video streaming server.
//!
//! Architecture map:
//! - [`config`]: embedded defaults < file < `MAGNETAR__…` env, validated once.
//! - [`engine`]: the one librqbit session — sources, metadata, shared torrents, capped
//!   readers, per-file progress.
//! - [`streams`]: per-user streams over the engine — registry, background resolution,
//!   playback tokens, persistence, the API view.
//! - [`auth`]: API bearer JWTs, playback tokens, generated secrets.
//! - [`http`]: router, handlers (thin), range resolution, stall-guarded bodies, errors.
//! - [`telemetry`]: metric names, the Prometheus recorder, bounded labels.
//! - [`seeder`]: an in-process loopback seeder (demo, tests, benchmarks).
//! - [`demo`]: `magnetar demo`, a self-contained playable setup.
//!
//! [`start`] builds everything and binds; [`Running::wait`] serves until the shutdown token
//! fires, then drains within `server.shutdown_grace` and stops the engine.

pub mod auth;
pub mod config;
pub mod demo;
pub mod engine;
pub mod error;
pub mod http;
pub mod limits;
pub mod media;
pub mod seeder;
pub mod streams;
pub mod telemetry;

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use auth::{
    secrets::{configured_or_stored, JWT_SECRET_FILE, PLAYBACK_SECRET_FILE},
    ApiKeys, PlaybackKeys,
};
use config::Config;
use engine::Engine;
use http::AppState;
use streams::Streams;

/// How often stream statistics are written to the registry (they are also written at
/// shutdown; a crash loses at most this much of them).
const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// A started server.
pub struct Running {
    /// The bound HTTP address.
    pub addr: SocketAddr,
    /// The app's handles (tests and the demo use the facade directly).
    pub state: AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The API key set for a configuration: the HS256 secret (generated on first use) when HS256
/// is allowed, the PEM keys named in `[auth]` otherwise.
pub fn api_keys(config: &Config) -> anyhow::Result<ApiKeys> {
    let auth = &config.auth;
    let secret = if auth.algorithms.iter().any(|a| a == "HS256") {
        let secret =
            configured_or_stored(&auth.jwt_secret, &config.storage.data_dir, JWT_SECRET_FILE)
                .context("cannot read or create the JWT secret")?;
        Some(secret)
    } else {
        None
    };
    let read = |path: &std::path::Path, key: &str| -> anyhow::Result<Option<Vec<u8>>> {
        if path.as_os_str().is_empty() {
            return Ok(None);
        }
        std::fs::read(path)
            .map(Some)
            .with_context(|| format!("cannot read {key} {}", path.display()))
    };
    let keys = auth::api_token::KeyMaterial {
        secret,
        public_pem: read(&auth.public_key_file, "auth.public_key_file")?,
        private_pem: read(&auth.private_key_file, "auth.private_key_file")?,
    };
    let rules = auth::api_token::TokenRules {
        algorithms: &auth.algorithms,
        issuer: &auth.issuer,
        audience: &auth.audience,
        leeway: auth.leeway,
    };
    ApiKeys::new(&rules, keys).map_err(anyhow::Error::msg)
}

fn playback_keys(config: &Config) -> anyhow::Result<PlaybackKeys> {
    let secret = configured_or_stored(
        &config.auth.playback_secret,
        &config.storage.data_dir,
        PLAYBACK_SECRET_FILE,
    )
    .context("cannot read or create the playback secret")?;
    Ok(PlaybackKeys::new(
        &secret,
        config.auth.playback_ttl,
        config.auth.leeway,
    ))
}

/// The address the server's own tools (ffprobe, ffmpeg) reach it on.
fn loopback_of(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, addr.port()))
        }
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// Builds the engine and streams, binds `server.listen`, and starts serving.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    let metrics = config
        .metrics
        .enabled
        .then(|| telemetry::install(true))
        .flatten();
    let process_metrics = Arc::new(metrics_process::Collector::default());
    process_metrics.describe();
    if let Some(handle) = metrics.clone() {
        telemetry::spawn_upkeep(handle, shutdown.clone());
    }
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("cannot create {}", config.storage.data_dir.display()))?;
    let api_keys = Arc::new(api_keys(&config)?);
    let playback = Arc::new(playback_keys(&config)?);
    let engine = Arc::new(Engine::start(config.clone(), shutdown.child_token()).await?);
    engine.spawn_monitor();
    let streams = Streams::load(engine.clone(), playback, &config).await?;
    streams.spawn_stats_writer(STATS_EVERY, shutdown.clone());
    streams.spawn_engine_events(shutdown.clone());
    streams.spawn_idle_reaper(config.storage.stream_idle_ttl, shutdown.clone());
    let limits = limits::Limits::new(&config)?;
    limits.spawn_housekeeping(shutdown.clone());
    let media = media::Media::new(&config.media);
    let hls = media::hls::HlsSessions::new(config.media.hls_idle_timeout);
    hls.spawn_reaper(shutdown.clone());
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let readiness = media.readiness().await;
    if !readiness.ok() {
        tracing::warn!(?readiness, "media tools missing: direct play only");
    }
    let connections = connections(&config, &limits);
    let state = AppState {
        connections: connections.clone(),
        started: std::time::Instant::now(),
        streams,
        api_keys,
        limits,
        media,
        hls,
        internal_base: format!("http://{}", loopback_of(addr)),
        metrics,
        metrics_allow: http::metrics::allow_list(&config),
        process_metrics,
        config: config.clone(),
        shutdown: shutdown.clone(),
    };
    let app = http::router(state.clone());
    let idle = config.server.idle_timeout;
    let server = tokio::spawn(http::serve::serve(
        listener,
        app,
        connections,
        idle,
        shutdown.clone(),
    ));
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        state,
        server,
    })
}

/// The connection table, its bounds clamped to what the descriptor limit (raised to its hard
/// limit first) leaves after the engine's share.
fn connections(config: &Config, limits: &limits::Limits) -> Arc<http::admission::Connections> {
    let server = &config.server;
    let descriptors = limits::descriptors::raise_to_hard_limit();
    let total = limits::descriptors::connection_budget(
        descriptors,
        server.max_connections,
        server.connection_reserve,
    );
    if total < server.max_connections {
        tracing::warn!(
            descriptors,
            configured = server.max_connections,
            total,
            "server.max_connections lowered to fit the file-descriptor limit"
        );
    }
    let bounds = http::admission::Bounds {
        total,
        per_address: server.max_connections_per_ip,
        reserve: server.connection_reserve,
    };
    let proxies = limits.proxies.clone();
    http::admission::Connections::new(bounds, move |ip| proxies.trusts(ip))
}

impl Running {
    /// Serves until the shutdown token fires, drains, then stops the engine.
    pub async fn wait(self) -> anyhow::Result<()> {
        let Running { state, server, .. } = self;
        state.shutdown.cancelled().await;
        let grace = state.config.server.shutdown_grace;
        match tokio::time::timeout(grace, server).await {
            Ok(joined) => joined.context("server task")?.context("server")?,
            Err(_) => tracing::warn!("shutdown grace elapsed; dropping open connections"),
        }
        state.streams.shutdown().await;
        state.streams.engine().shutdown().await;
        Ok(())
    }
}

/// Starts and serves until `shutdown` fires.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

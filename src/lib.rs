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
pub mod seeder;
pub mod streams;

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

/// A started server.
pub struct Running {
    /// The bound HTTP address.
    pub addr: SocketAddr,
    /// The app's handles (tests and the demo use the facade directly).
    pub state: AppState,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// The API key set for a configuration (generating the secret on first use).
pub fn api_keys(config: &Config) -> anyhow::Result<ApiKeys> {
    let secret = configured_or_stored(
        &config.auth.jwt_secret,
        &config.storage.data_dir,
        JWT_SECRET_FILE,
    )
    .context("cannot read or create the JWT secret")?;
    Ok(ApiKeys::hs256(&secret, config.auth.leeway))
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

/// Builds the engine and streams, binds `server.listen`, and starts serving.
pub async fn start(config: Config, shutdown: CancellationToken) -> anyhow::Result<Running> {
    let config = Arc::new(config);
    std::fs::create_dir_all(&config.storage.data_dir)
        .with_context(|| format!("cannot create {}", config.storage.data_dir.display()))?;
    let api_keys = Arc::new(api_keys(&config)?);
    let playback = Arc::new(playback_keys(&config)?);
    let engine = Arc::new(Engine::start(config.clone(), shutdown.child_token()).await?);
    let streams = Streams::load(engine.clone(), playback, &config)?;
    tokio::spawn(reconcile_after_resume(streams.clone()));
    let state = AppState {
        streams,
        api_keys,
        config: config.clone(),
        shutdown: shutdown.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let app = http::router(state.clone());
    let signal = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { signal.cancelled().await })
            .await
    });
    tracing::info!(%addr, "listening");
    Ok(Running {
        addr,
        state,
        server,
    })
}

async fn reconcile_after_resume(streams: Arc<Streams>) {
    streams.wait_settled().await;
    streams.engine().reconcile().await;
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
        state.streams.shutdown();
        state.streams.engine().shutdown().await;
        Ok(())
    }
}

/// Starts and serves until `shutdown` fires.
pub async fn run(config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown).await?.wait().await
}

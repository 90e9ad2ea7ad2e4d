//! `magnetar demo`: a newcomer's one command. Seeds the committed fixtures from an
//! in-process seeder on 127.0.0.1, starts the server (DHT off, its own data folder),
//! registers a stream of each for the user `demo`, and prints URLs to play in mpv, VLC or a
//! browser. No swarm, tracker or internet needed.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::{config::Config, engine::source::parse_torrent, seeder::Seeder};

/// The demo user.
pub const DEMO_USER: &str = "demo";

/// The fixtures folder: `--fixtures`, else `./fixtures`, else the source tree's.
pub fn default_fixtures() -> PathBuf {
    let local = PathBuf::from("fixtures");
    if local.join("faststart.mp4").exists() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// Runs the demo until `shutdown` fires.
pub async fn run(
    mut config: Config,
    fixtures: &Path,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    config.engine.dht = false;
    config.engine.peer_listen = "127.0.0.1:0".into();
    let seeder = Seeder::start(None).await?;
    let running = crate::start(config, shutdown.clone()).await?;
    let base = format!("http://{}", running.addr);
    let token = running.state.api_keys.issue(
        DEMO_USER,
        crate::auth::Role::User,
        std::time::Duration::from_secs(24 * 3600),
    )?;
    println!("Magnetar demo on {base}\n");
    for name in ["moov-at-end.mp4", "faststart.mp4", "mkv"] {
        let path = fixtures.join(name);
        let seeded = seeder
            .seed(&path)
            .await
            .with_context(|| format!("fixture {} (run from the repository?)", path.display()))?;
        let limits = running.state.streams.engine().limits();
        let source = parse_torrent(seeded.torrent_bytes.clone(), &limits)?;
        let peers = vec![seeder.addr];
        let (stream, _) = running
            .state
            .streams
            .create(DEMO_USER, source, None, peers)
            .await
            .map_err(|e| anyhow::anyhow!("cannot start the {name} stream: {e}"))?;
        let view = crate::streams::view::render(&stream, None, None, &base);
        if let Some(direct) = view.urls.direct {
            println!(
                "{name}:\n  mpv {direct}\n  vlc {base}/s/{}/playlist.m3u\n",
                stream.record.token
            );
        }
    }
    println!("API token for user {DEMO_USER:?} (24 h):\n  {token}\n");
    println!("  curl -H 'Authorization: Bearer {token}' {base}/api/v1/streams\n");
    println!("Ctrl-C stops the demo.");
    running.wait().await?;
    seeder.stop().await;
    Ok(())
}

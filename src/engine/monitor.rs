//! The engine's housekeeping, every [`EVERY`]: measures what torrents occupy (and evicts what
//! is over the disk quota), and watches each torrent librqbit runs. One that stopped with an
//! error is marked (its readers end, new reads get the reason); one stopped by a full disk is
//! started again, by itself, once the filesystem has room.

use std::{
    collections::HashMap,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use librqbit::TorrentStatsState;
use tokio_util::sync::CancellationToken;

use super::{
    health::{classify, Condition},
    usage, Engine, EngineEvent,
};
use crate::telemetry::names;

/// How often the monitor looks.
pub const EVERY: Duration = Duration::from_secs(2);
/// A torrent stopped by a full disk is retried once this much is free.
pub const ROOM_TO_RETRY: u64 = 32 << 20;
/// Between two retries of one torrent, at least this long.
const RETRY_GAP: Duration = Duration::from_secs(10);
/// A torrent a reader waits on with no peer connected looks for peers again this often
/// (librqbit's own retry waits 10–20 s, then 1–2 minutes, then longer).
pub const KICK_EVERY: Duration = Duration::from_secs(5);

/// Runs the monitor until `cancel` (or the engine is gone).
pub fn spawn(engine: Weak<Engine>, cancel: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        let mut retried: HashMap<String, Instant> = HashMap::new();
        let mut kicked: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(engine) = engine.upgrade() else {
                return;
            };
            engine.measure_disk().await;
            engine.watch_torrents(&mut retried).await;
            engine.look_for_peers(&mut kicked).await;
        }
    });
}

impl Engine {
    /// Measures the download folders, publishes the figures, evicts what is over the quota.
    async fn measure_disk(self: &Arc<Self>) {
        let engine = self.clone();
        let used = tokio::task::spawn_blocking(move || engine.torrents.quota.measure()).await;
        let used = used.unwrap_or(0);
        metrics::gauge!(names::DISK_USED).set(used as f64);
        metrics::gauge!(names::DISK_QUOTA).set(self.torrents.quota.limit as f64);
        if used > self.torrents.quota.limit {
            self.torrents.enforce(&self.session).await;
        }
    }

    /// Marks torrents librqbit stopped with an error, and restarts those a full disk stopped
    /// once there is room.
    async fn watch_torrents(self: &Arc<Self>, retried: &mut HashMap<String, Instant>) {
        for (hash, handle) in self.torrents.active().await {
            let stats = handle.stats();
            let condition = match (&stats.state, &stats.error) {
                (TorrentStatsState::Error, Some(error)) => Some(classify(error)),
                (TorrentStatsState::Error, None) => Some(classify("")),
                _ => None,
            };
            self.note(&hash, condition.clone());
            if !matches!(condition, Some(Condition::StorageFull(_))) {
                continue;
            }
            let room = usage::available(self.torrents.downloads()).unwrap_or(0);
            let waited = retried
                .get(&hash)
                .is_none_or(|at| at.elapsed() >= RETRY_GAP);
            if room >= ROOM_TO_RETRY && waited {
                retried.insert(hash.clone(), Instant::now());
                tracing::info!(info_hash = %hash, free = %usage::human(room), "room on disk again: restarting the torrent");
                if let Err(err) = self.session.unpause(&handle).await {
                    tracing::warn!(info_hash = %hash, error = %format!("{err:#}"), "cannot restart the torrent");
                }
            }
        }
    }

    /// A torrent a player waits on with no peer connected looks for peers now: pause and
    /// resume starts a fresh peer table (no back-off left from the peers that went away),
    /// announces to its trackers and connects to its known peers again. Pieces already
    /// verified stay; open readers carry over.
    async fn look_for_peers(self: &Arc<Self>, kicked: &mut HashMap<String, Instant>) {
        kicked.retain(|_, at| at.elapsed() < KICK_EVERY);
        for hash in self.activity.waited_on() {
            if kicked.contains_key(&hash) || self.live_peers(&hash) > 0 {
                continue;
            }
            let Some(handle) = self.handle(&hash) else {
                continue;
            };
            if !matches!(handle.stats().state, TorrentStatsState::Live) {
                continue;
            }
            kicked.insert(hash.clone(), Instant::now());
            tracing::info!(info_hash = %hash, "a reader waits and no peer is connected: looking for peers now");
            if let Err(err) = self.session.pause(&handle).await {
                tracing::debug!(error = %format!("{err:#}"), "cannot pause to look for peers");
                continue;
            }
            if let Err(err) = self.session.unpause(&handle).await {
                tracing::warn!(info_hash = %hash, error = %format!("{err:#}"), "cannot resume a torrent after looking for peers");
            }
        }
    }

    /// Records a torrent's condition; a change is told to the streams on it.
    pub(super) fn note(&self, hash: &str, condition: Option<Condition>) {
        let before = self.health.condition(hash);
        if self.health.set(hash, condition.clone()) {
            self.announce(hash, before, condition);
        }
    }

    /// Tells the streams about a torrent's change of condition.
    fn announce(&self, hash: &str, before: Option<Condition>, now: Option<Condition>) {
        let info_hash = hash.to_owned();
        let event = match now {
            Some(condition @ (Condition::StorageFull(_) | Condition::Failed(_))) => {
                tracing::warn!(info_hash = %hash, ?condition, "a torrent stopped");
                EngineEvent::Failed {
                    info_hash,
                    condition,
                }
            }
            None if matches!(
                before,
                Some(Condition::StorageFull(_) | Condition::Failed(_))
            ) =>
            {
                tracing::info!(info_hash = %hash, "a torrent runs again");
                EngineEvent::Recovered { info_hash }
            }
            _ => return,
        };
        let _ = self.events.send(event);
    }
}

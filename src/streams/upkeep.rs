//! What the registry does on its own: writes statistics in batches, tells each stream's owner
//! what happened to its torrent (`storage.evicted`, `stream.error`, `stream.resumed`),
//! releases streams nobody played for `storage.stream_idle_ttl`, and runs its periodic work
//! ([`Streams::every`]); and the registry in figures.

use std::{sync::Arc, time::Duration};

use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::{Phase, StreamFigures, Streams};
use crate::{
    auth::now_secs,
    engine::{health::Condition, EngineEvent},
};

/// How often idle streams are looked for (at most; twice per time-to-live when shorter).
const IDLE_SWEEP: Duration = Duration::from_secs(60);

impl Streams {
    /// Streams by phase, and users with a stream (metrics, the admin summary).
    pub fn figures(&self) -> StreamFigures {
        let entries = self.entries.lock().expect("streams lock");
        let mut figures = StreamFigures::default();
        let mut users = std::collections::HashSet::new();
        for entry in entries.values() {
            users.insert(entry.record.user.as_str());
            match &*entry.phase.borrow() {
                Phase::Resolving => figures.resolving += 1,
                Phase::Ready(_) => figures.ready += 1,
                Phase::Failed(_) => figures.failed += 1,
            }
        }
        figures.users = users.len();
        figures
    }

    /// Writes the statistics (and last play times) that changed since the last write.
    pub async fn save_stats(&self) {
        let (changed, played): (Vec<_>, Vec<_>) = {
            let entries = self.entries.lock().expect("streams lock");
            let changed = entries
                .values()
                .filter_map(|e| Some((e.record.id.clone(), e.stats.take_changed()?)))
                .collect();
            let played = entries
                .values()
                .filter(|e| e.played_unsaved)
                .map(|e| e.record.clone())
                .collect();
            (changed, played)
        };
        if let Err(err) = self.store.save_stats(&changed).await {
            tracing::warn!(error = %err, "cannot save stream statistics");
        }
        for record in played {
            if self.store.update(&record).await.is_ok() {
                if let Some(e) = self
                    .entries
                    .lock()
                    .expect("streams lock")
                    .get_mut(&record.id)
                {
                    e.played_unsaved = false;
                }
            }
        }
    }

    /// Writes statistics every `every` until `shutdown`.
    pub fn spawn_stats_writer(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) {
        self.every(every, shutdown, |streams| async move {
            streams.save_stats().await;
        });
    }

    /// Relays the engine's torrent events to the owners of the streams on each torrent.
    pub fn spawn_engine_events(self: &Arc<Self>, shutdown: CancellationToken) {
        let mut events = self.engine.events();
        let streams = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    event = events.recv() => event,
                };
                let event = match event {
                    Ok(event) => event,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return,
                };
                let Some(streams) = streams.upgrade() else {
                    return;
                };
                streams.relay(&event);
            }
        });
    }

    fn relay(&self, event: &EngineEvent) {
        let (info_hash, kind, code, detail) = match event {
            EngineEvent::Evicted { info_hash, bytes } => {
                let mut detail = serde_json::Map::new();
                detail.insert("bytes".into(), (*bytes).into());
                (info_hash, "storage.evicted", None, detail)
            }
            EngineEvent::Failed {
                info_hash,
                condition,
            } => {
                let code = match condition {
                    Condition::StorageFull(_) => "INSUFFICIENT_STORAGE",
                    _ => "INTERNAL",
                };
                (info_hash, "stream.error", Some(code), Default::default())
            }
            EngineEvent::Recovered { info_hash } => {
                (info_hash, "stream.resumed", None, Default::default())
            }
        };
        for (user, id) in self.on_torrent(info_hash) {
            self.events
                .emit_with(&user, &id, kind, code, detail.clone());
        }
    }

    /// `(owner, id)` of every stream of a torrent.
    pub(super) fn on_torrent(&self, info_hash: &str) -> Vec<(String, String)> {
        let entries = self.entries.lock().expect("streams lock");
        entries
            .values()
            .filter(|e| e.record.info_hash == info_hash)
            .map(|e| (e.record.user.clone(), e.record.id.clone()))
            .collect()
    }

    /// Releases streams nobody played (or created) for `ttl`, every minute, until shutdown;
    /// `ttl` zero: never.
    pub fn spawn_idle_reaper(self: &Arc<Self>, ttl: Duration, shutdown: CancellationToken) {
        if ttl.is_zero() {
            return;
        }
        let every = IDLE_SWEEP.min(ttl / 2).max(Duration::from_secs(1));
        self.every(every, shutdown, move |streams| async move {
            for id in streams.idle_for(ttl) {
                tracing::info!(stream = %id, "released: not played for storage.stream_idle_ttl");
                streams.forget(&id, super::Stopped::Idle).await;
            }
        });
    }

    /// Runs `work` every `every` until `shutdown` (or the registry is gone).
    pub(super) fn every<F, Fut>(
        self: &Arc<Self>,
        every: Duration,
        shutdown: CancellationToken,
        work: F,
    ) where
        F: Fn(Arc<Self>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let streams = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(streams) = streams.upgrade() else {
                    return;
                };
                work(streams).await;
            }
        });
    }

    /// Streams not played (or created) within `ttl`.
    fn idle_for(&self, ttl: Duration) -> Vec<String> {
        let now = now_secs();
        let entries = self.entries.lock().expect("streams lock");
        entries
            .values()
            .filter(|e| {
                let last = e.record.last_played_at.unwrap_or(e.record.created_at);
                idle(now, last, ttl)
            })
            .map(|e| e.record.id.clone())
            .collect()
    }
}

/// Whether a stream last played at `last` (unix seconds) is idle at `now` for `ttl`.
pub fn idle(now: u64, last: u64, ttl: Duration) -> bool {
    now.saturating_sub(last) >= ttl.as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_means_not_played_for_the_whole_ttl() {
        let day = Duration::from_secs(86_400);
        let cases = [
            (1_000_000, 1_000_000, false),
            (1_000_000 + 86_399, 1_000_000, false),
            (1_000_000 + 86_400, 1_000_000, true),
            (1_000_000, 2_000_000, false),
        ];
        for (now, last, want) in cases {
            assert_eq!(idle(now, last, day), want, "{now} {last}");
        }
    }
}

//! HLS sessions: found in O(1) by `{stream id}/{rendition}`, kept alive by every playlist
//! and segment request, ended after `media.hls_idle_timeout` (ffmpeg killed, folder deleted)
//! and all ended on shutdown. A session dropped while a request still holds it ends when that
//! request finishes.

pub mod session;
pub mod source;

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

pub use session::{HlsSession, JobTemplate, SegmentState, Timeline};

/// Every HLS session of the server.
pub struct HlsSessions {
    cache: moka::future::Cache<String, Arc<HlsSession>>,
}

impl HlsSessions {
    pub fn new(idle: Duration) -> Arc<Self> {
        Arc::new(Self {
            cache: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_idle(idle)
                .build(),
        })
    }

    /// The session for `key`, created by `make` when absent (concurrent callers share one
    /// creation). Every call counts as use.
    pub async fn get_or_create<F, E>(&self, key: &str, make: F) -> Result<Arc<HlsSession>, Arc<E>>
    where
        F: std::future::Future<Output = Result<Arc<HlsSession>, E>>,
        E: Send + Sync + 'static,
    {
        let session = self.cache.try_get_with(key.to_owned(), make).await?;
        session.touch();
        Ok(session)
    }

    /// Ends every session of a stream (it was deleted).
    pub async fn end_stream(&self, stream_id: &str) {
        let prefix = format!("{stream_id}/");
        let keys: Vec<String> = self
            .cache
            .iter()
            .map(|(k, _)| (*k).clone())
            .filter(|k| k.starts_with(&prefix))
            .collect();
        for key in keys {
            self.cache.invalidate(&key).await;
        }
        self.cache.run_pending_tasks().await;
    }

    /// Sessions alive now.
    pub fn count(&self) -> u64 {
        self.cache.entry_count()
    }

    /// ffmpeg jobs of every session: (running, paused). Looks at each process (cheap, but not
    /// for the request path).
    pub fn jobs(&self) -> (usize, usize) {
        self.cache.iter().fold((0, 0), |(running, paused), (_, s)| {
            let stopped = s.paused_jobs();
            (running + s.running_jobs() - stopped, paused + stopped)
        })
    }

    /// Idle expiry every 2 s, and pacing of every session's jobs twice a second (a paused
    /// player asks nothing, so its jobs far ahead are paused here). Ends everything at
    /// `shutdown`.
    pub fn spawn_reaper(self: &Arc<Self>, shutdown: CancellationToken) {
        let sessions = self.clone();
        tokio::spawn(async move {
            let mut expiry = tokio::time::interval(Duration::from_secs(2));
            let mut pacing = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = expiry.tick() => sessions.cache.run_pending_tasks().await,
                    _ = pacing.tick() => {
                        let all: Vec<Arc<HlsSession>> =
                            sessions.cache.iter().map(|(_, s)| s).collect();
                        let paced = tokio::task::spawn_blocking(move || {
                            all.iter().for_each(|s| s.pace())
                        });
                        let _ = paced.await;
                    }
                }
            }
            sessions.cache.invalidate_all();
            sessions.cache.run_pending_tasks().await;
        });
    }
}

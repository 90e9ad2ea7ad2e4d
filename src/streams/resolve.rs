//! A stream's way from registered to ready (or failed): metadata resolved by the engine
//! within `engine.metadata_timeout`, the file chosen, a reference taken on the torrent, the
//! outcome published on the stream's phase channel, recorded in the registry and announced
//! as an event.

use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{failure_of, Phase, Streams};
use crate::engine::{files::select_file, source::TorrentSource, EngineError, TorrentMeta};

/// A registered stream, ready to resolve.
pub(super) struct Started {
    pub id: String,
    pub phase: watch::Receiver<Phase>,
    /// `None` for a stream that had already failed (nothing to resolve).
    pub tx: Option<watch::Sender<Phase>>,
    pub cancel: CancellationToken,
}

impl Streams {
    /// Resolves the stream in the background.
    pub(super) fn spawn_resolve(self: &Arc<Self>, started: Started, source: TorrentSource) {
        let Some(tx) = started.tx else { return };
        let streams = self.clone();
        tokio::spawn(async move {
            streams
                .resolve(started.id, source, tx, started.cancel)
                .await
        });
    }

    #[tracing::instrument(skip_all, fields(stream = %id, info_hash = %source.info_hash))]
    async fn resolve(
        self: Arc<Self>,
        id: String,
        source: TorrentSource,
        tx: watch::Sender<Phase>,
        cancel: CancellationToken,
    ) {
        let resolved = tokio::select! {
            _ = cancel.cancelled() => return,
            r = tokio::time::timeout(self.metadata_timeout, self.engine.resolve(&source)) => r,
        };
        let outcome = match resolved {
            Err(_) => Err(EngineError::MetadataTimeout),
            Ok(result) => match result {
                Ok(meta) => self.activate(&id, meta).await,
                Err(err) => Err(err),
            },
        };
        let phase = match outcome {
            Ok(meta) => Phase::Ready(meta),
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "stream failed to start");
                Phase::Failed(failure_of(&err))
            }
        };
        self.settle(&id, &phase).await;
        let _ = tx.send(phase);
    }

    /// Chooses the file, takes a reference on the torrent, records the choice.
    async fn activate(
        &self,
        id: &str,
        meta: Arc<TorrentMeta>,
    ) -> Result<Arc<TorrentMeta>, EngineError> {
        let (requested, peers) = {
            let entries = self.entries.lock().expect("streams lock");
            let Some(entry) = entries.get(id) else {
                return Err(EngineError::NotActive);
            };
            (entry.record.requested.clone(), entry.record.peers.clone())
        };
        let file = select_file(&meta.files, requested.as_ref())?;
        self.engine.acquire(&meta, file, &peers).await?;
        let still_here = {
            let mut entries = self.entries.lock().expect("streams lock");
            entries
                .get_mut(id)
                .map(|e| e.record.file_index = Some(file))
                .is_some()
        };
        if !still_here {
            // Deleted while we were acquiring: give the reference back.
            self.engine.release(&meta, file).await?;
            return Err(EngineError::NotActive);
        }
        Ok(meta)
    }

    /// Records the outcome (file chosen, or why it failed) and announces it.
    async fn settle(&self, id: &str, phase: &Phase) {
        let record = {
            let mut entries = self.entries.lock().expect("streams lock");
            let Some(entry) = entries.get_mut(id) else {
                return;
            };
            let user = &entry.record.user;
            match phase {
                Phase::Failed(failure) => {
                    let code = Some(failure.code.as_str());
                    self.events.emit(user, id, "stream.failed", code);
                    entry.record.failure = Some(failure.clone());
                }
                Phase::Ready(_) => self.events.emit(user, id, "stream.ready", None),
                Phase::Resolving => {}
            }
            entry.record.clone()
        };
        if let Err(err) = self.store.update(&record).await {
            tracing::error!(error = %err, "cannot save the stream's outcome");
        }
    }
}

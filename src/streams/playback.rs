//! Playback lookups: a token from a `/s/{token}/…` path → the live stream it grants, or why
//! not. Every playback request goes through here, so a deleted stream's URLs stop at once.

use std::sync::Arc;

use super::{record::StreamRecord, stats::LiveStats, Phase, StreamError, Streams};
use crate::{
    auth::{AuthError, PlaybackGrant},
    engine::TorrentMeta,
};

/// Why a playback request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PlaybackError {
    #[error(transparent)]
    Auth(AuthError),
    #[error(transparent)]
    Stream(StreamError),
}

/// What a valid playback token grants: the stream, its torrent and file, its counters.
pub struct Playable {
    pub record: StreamRecord,
    pub meta: Arc<TorrentMeta>,
    pub file: usize,
    pub stats: Arc<LiveStats>,
}

impl Streams {
    /// Resolves a playback token to its live stream, waiting up to `engine.metadata_wait`
    /// for a stream that is still resolving. The stream counts as played now.
    #[tracing::instrument(skip_all, fields(user = tracing::field::Empty, stream = tracing::field::Empty))]
    pub async fn for_playback(&self, token: &str) -> Result<Playable, PlaybackError> {
        let grant: PlaybackGrant = self.keys.verify(token).map_err(PlaybackError::Auth)?;
        tracing::Span::current()
            .record("user", grant.user.as_str())
            .record("stream", grant.stream_id.as_str());
        let (record, mut phase, stats) = {
            let mut entries = self.entries.lock().expect("streams lock");
            let entry = entries
                .get_mut(&grant.stream_id)
                .filter(|e| e.record.user == grant.user)
                .ok_or(PlaybackError::Stream(StreamError::NotFound))?;
            entry.record.last_played_at = Some(crate::auth::now_secs());
            entry.played_unsaved = true;
            (
                entry.record.clone(),
                entry.phase.clone(),
                entry.stats.clone(),
            )
        };
        let settled = tokio::time::timeout(
            self.metadata_wait,
            phase.wait_for(|p| !matches!(p, Phase::Resolving)),
        )
        .await
        .map_err(|_| PlaybackError::Stream(StreamError::StillResolving))?
        .map_err(|_| PlaybackError::Stream(StreamError::NotFound))?
        .clone();
        match settled {
            Phase::Ready(meta) => {
                let file = self
                    .entries
                    .lock()
                    .expect("streams lock")
                    .get(&record.id)
                    .and_then(|e| e.record.file_index)
                    .ok_or(PlaybackError::Stream(StreamError::NotFound))?;
                Ok(Playable {
                    record,
                    meta,
                    file,
                    stats,
                })
            }
            Phase::Failed(failure) => Err(PlaybackError::Stream(StreamError::Failed(failure))),
            Phase::Resolving => Err(PlaybackError::Stream(StreamError::StillResolving)),
        }
    }
}

//! Response bodies read from a torrent, which can wait on the swarm: every chunk must come
//! within the stall timeout or the body ends (the player reconnects with a Range request),
//! and shutdown ends it too. The reader lives inside the body, so a client that goes away
//! drops it at once and its priority window stops being urgent.

use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::{io::ReaderStream, sync::CancellationToken};

use crate::engine::reader::TorrentReader;

/// Bytes per chunk read from the torrent.
const CHUNK: usize = 256 * 1024;

/// Why the first chunk did not come.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("no data within the stall timeout")]
    Stalled,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Seeks to `start`, waits for the first chunk (so a dead swarm is an error status, not a
/// hanging 206), then streams `len` bytes in total.
pub async fn torrent_body(
    mut reader: TorrentReader,
    start: u64,
    len: u64,
    stall: Duration,
    shutdown: CancellationToken,
) -> Result<Body, BodyError> {
    reader.seek_to(start).await?;
    let mut chunks = ReaderStream::with_capacity(reader.take(len), CHUNK);
    let first = tokio::select! {
        _ = shutdown.cancelled() => return Err(BodyError::Stalled),
        first = tokio::time::timeout(stall, chunks.next()) => first,
    };
    let first = match first {
        Err(_) => return Err(BodyError::Stalled),
        Ok(None) => Bytes::new(),
        Ok(Some(chunk)) => chunk?,
    };
    let rest = guarded(chunks, stall, shutdown);
    let all = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    Ok(Body::from_stream(all))
}

fn guarded<S>(
    chunks: S,
    stall: Duration,
    shutdown: CancellationToken,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
{
    futures::stream::unfold(Some(chunks), move |state| {
        let shutdown = shutdown.clone();
        async move {
            let mut chunks = state?;
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Some((Err(ended("server shutting down")), None)),
                next = tokio::time::timeout(stall, chunks.next()) => next,
            };
            match next {
                Err(_) => Some((Err(ended("stalled: no data from the swarm")), None)),
                Ok(None) => None,
                Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(chunks))),
                Ok(Some(Err(err))) => Some((Err(err), None)),
            }
        }
    })
}

fn ended(why: &'static str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, why)
}

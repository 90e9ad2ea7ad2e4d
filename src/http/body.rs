//! Response bodies read from a torrent, which can wait on the swarm: every chunk must come
//! within the stall timeout or the body ends (the player reconnects with a Range request),
//! and shutdown ends it too. The reader lives inside the body, so a client that goes away
//! drops it at once and its priority window stops being urgent. Complete files come
//! straight from disk under the same guards.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::body::Body;
use bytes::Bytes;
use futures::{stream::BoxStream, Stream, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_util::{io::ReaderStream, sync::CancellationToken};

use crate::{
    engine::reader::Source,
    limits::egress::{paced, Pacer},
    streams::stats::LiveStats,
    telemetry,
};

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

/// How long a body may wait: for its first bytes before headers go out anyway (when peers
/// are connected), and between any two chunks.
#[derive(Debug, Clone, Copy)]
pub struct BodyTiming {
    pub first_byte_wait: Duration,
    pub stall: Duration,
}

/// Measures a body as it is read: the wait for each chunk and for the first one, the bytes,
/// into the server's metrics and (for a player, not the server's own tools) the stream's
/// counters; and a player's waits, as they happen ([`Waits`]).
#[derive(Clone)]
pub struct Observer {
    pub requested_at: Instant,
    pub stream: Option<Arc<LiveStats>>,
    pub waits: Option<Waits>,
}

/// Where a player's body reports its waits: the engine (which looks for peers at once while a
/// reader waits with none connected) and the stream's owner (events).
#[derive(Clone)]
pub struct Waits {
    pub engine: Arc<crate::engine::Engine>,
    pub info_hash: String,
    pub notify: Arc<dyn Fn(Wait) + Send + Sync>,
}

/// What a player's body went through.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Wait {
    /// A chunk came, after this long (reported when longer than [`UNDERRUN_AFTER`]).
    Underrun(Duration),
    /// No data for [`STALL_AFTER`].
    Stalled,
    /// Data flows (reported for every chunk; the receiver tells a recovery apart).
    Flowing,
}

/// A player's read that waits longer than this is an underrun (its buffer runs dry).
pub const UNDERRUN_AFTER: Duration = Duration::from_secs(1);
/// A read with no data this long is a stall (reported while it lasts).
pub const STALL_AFTER: Duration = Duration::from_secs(5);

impl Observer {
    fn chunk(&self, waited: Duration, bytes: usize, first: bool, swarm: bool) {
        let hot = telemetry::hot();
        if let Some(hot) = hot {
            // A read from a complete file on disk waits for no piece.
            if swarm {
                hot.reader_wait.record(waited.as_secs_f64());
            }
            hot.served_bytes.increment(bytes as u64);
        }
        if first {
            let since = self.requested_at.elapsed();
            if let Some(hot) = hot {
                hot.first_byte.record(since.as_secs_f64());
            }
            if let Some(stream) = &self.stream {
                stream.first_byte(since);
            }
        }
        if let Some(stream) = &self.stream {
            stream.bytes(bytes as u64);
        }
        if let Some(waits) = &self.waits {
            if waited > UNDERRUN_AFTER {
                (waits.notify)(Wait::Underrun(waited));
            }
            if bytes > 0 {
                (waits.notify)(Wait::Flowing);
            }
        }
    }

    /// A whole response of `bytes` (an HLS segment) is ready to go.
    pub fn served(&self, bytes: u64) {
        let since = self.requested_at.elapsed();
        if let Some(hot) = telemetry::hot() {
            hot.served_bytes.increment(bytes);
            hot.first_byte.record(since.as_secs_f64());
        }
        if let Some(stream) = &self.stream {
            stream.first_byte(since);
            stream.bytes(bytes);
        }
    }

    /// A body ended (or never started) for lack of data.
    pub fn stalled(&self) {
        if let Some(hot) = telemetry::hot() {
            hot.stalls.increment(1);
        }
    }

    /// The next chunk of `chunks`; a player's wait past a moment is registered with the engine
    /// (it looks for peers), and one past [`STALL_AFTER`] reported as a stall.
    async fn next<S>(&self, chunks: &mut S, swarm: bool) -> Option<std::io::Result<Bytes>>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Unpin,
    {
        // A complete file on disk waits for no peer: no timers on the warm path.
        let Some(waits) = self.waits.as_ref().filter(|_| swarm) else {
            return chunks.next().await;
        };
        let next = chunks.next();
        tokio::pin!(next);
        if let Ok(item) = tokio::time::timeout(UNDERRUN_AFTER, &mut next).await {
            return item;
        }
        let _waiting = waits.engine.waiting(&waits.info_hash);
        if let Ok(item) = tokio::time::timeout(STALL_AFTER - UNDERRUN_AFTER, &mut next).await {
            return item;
        }
        (waits.notify)(Wait::Stalled);
        next.await
    }
}

/// `chunks`, each measured by `observer` as it is read (`swarm`: read from the torrent, not
/// from a complete file on disk).
fn observed(
    chunks: BoxStream<'static, std::io::Result<Bytes>>,
    observer: Observer,
    swarm: bool,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures::stream::unfold(
        (chunks, observer, true),
        move |(mut chunks, observer, first)| async move {
            let asked = Instant::now();
            let next = observer.next(&mut chunks, swarm).await?;
            let bytes = next.as_ref().map_or(0, Bytes::len);
            observer.chunk(asked.elapsed(), bytes, first && bytes > 0, swarm);
            Some((next, (chunks, observer, first && bytes == 0)))
        },
    )
    .boxed()
}

/// Seeks to `start` and streams `len` bytes.
///
/// Headers wait for the first chunk up to `first_byte_wait`. Past that, if `has_peers` says
/// data is on its way, the response starts and the body follows: ffmpeg-based players keep
/// their previous connection (and its reader's priority window) open until the new
/// response's headers arrive, so holding them would waste the swarm on bytes nobody wants.
/// With no peer, the wait goes on to the stall timeout and a dead swarm is an error status
/// (`STREAM_STALLED`), not a hanging 206.
#[allow(clippy::too_many_arguments)]
pub async fn torrent_body(
    source: Source,
    start: u64,
    len: u64,
    timing: BodyTiming,
    has_peers: impl FnOnce() -> bool,
    pacer: Option<Arc<Pacer>>,
    observer: Observer,
    shutdown: CancellationToken,
) -> Result<Body, BodyError> {
    let swarm = matches!(source, Source::Swarm(_));
    let chunks: BoxStream<'static, std::io::Result<Bytes>> = match source {
        Source::Swarm(mut reader) => {
            reader.seek_to(start).await?;
            ReaderStream::with_capacity(reader.take(len), CHUNK).boxed()
        }
        Source::Disk(file) => file.chunks(start, len),
    };
    let mut chunks = observed(chunks, observer.clone(), swarm);
    let early = next_within(&mut chunks, timing.first_byte_wait, &shutdown).await;
    let first = match early {
        Some(first) => first,
        None if shutdown.is_cancelled() => return Err(BodyError::Stalled),
        None if has_peers() => {
            let rest = guarded(chunks, timing.stall, observer, shutdown).boxed();
            return Ok(Body::from_stream(pace(rest, pacer)));
        }
        None => match next_within(&mut chunks, timing.stall, &shutdown).await {
            Some(first) => first,
            None => {
                observer.stalled();
                return Err(BodyError::Stalled);
            }
        },
    };
    let first = first.transpose()?.unwrap_or_default();
    let rest = guarded(chunks, timing.stall, observer, shutdown);
    let all = futures::stream::once(async move { Ok::<_, std::io::Error>(first) }).chain(rest);
    Ok(Body::from_stream(pace(all.boxed(), pacer)))
}

/// Egress pacing comes after the stall guard: waiting for the user's budget is not a stall.
fn pace(
    chunks: BoxStream<'static, std::io::Result<Bytes>>,
    pacer: Option<Arc<Pacer>>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    match pacer {
        Some(pacer) => paced(chunks, pacer),
        None => chunks,
    }
}

/// The next chunk (`Some(None)` at the end), or `None` on timeout or shutdown.
async fn next_within<S>(
    chunks: &mut S,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Option<Option<std::io::Result<Bytes>>>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    tokio::select! {
        _ = shutdown.cancelled() => None,
        next = tokio::time::timeout(wait, chunks.next()) => next.ok(),
    }
}

fn guarded<S>(
    chunks: S,
    stall: Duration,
    observer: Observer,
    shutdown: CancellationToken,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + Unpin,
{
    futures::stream::unfold(Some(chunks), move |state| {
        let (shutdown, observer) = (shutdown.clone(), observer.clone());
        async move {
            let mut chunks = state?;
            let next = tokio::select! {
                _ = shutdown.cancelled() => return Some((Err(ended("server shutting down")), None)),
                next = tokio::time::timeout(stall, chunks.next()) => next,
            };
            match next {
                Err(_) => {
                    observer.stalled();
                    Some((Err(ended("stalled: no data from the swarm")), None))
                }
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

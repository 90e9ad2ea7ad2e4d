//! A torrent file reader with a slot from our own reader cap.
//!
//! librqbit's `FileStream` cannot be named outside its crate, so it is boxed behind
//! `AsyncRead + AsyncSeek`. Each reader holds a permit of `Engine`'s semaphore
//! (`engine.max_readers`) for as long as it lives; dropping it frees both the permit and
//! librqbit's stream (whose window then stops being urgent). A torrent that fails ends its
//! readers with an error at once (librqbit does not wake them).

use std::{
    future::Future,
    io::SeekFrom,
    pin::Pin,
    task::{Context, Poll},
};

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use tokio::{
    io::{AsyncRead, AsyncSeek, AsyncSeekExt, ReadBuf},
    sync::OwnedSemaphorePermit,
};

/// What librqbit's stream is to us.
pub trait ReadSeek: AsyncRead + AsyncSeek + Send + Unpin {}
impl<T: AsyncRead + AsyncSeek + Send + Unpin> ReadSeek for T {}

/// What an open reader holds while it lives: a slot of the reader cap and, for a player's
/// reader, its place in the torrent's activity (the disk quota never evicts what is read).
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    _reading: Option<super::activity::Reading>,
}

impl Slot {
    pub(crate) fn new(
        permit: OwnedSemaphorePermit,
        reading: Option<super::activity::Reading>,
    ) -> Self {
        Self {
            _permit: permit,
            _reading: reading,
        }
    }
}

/// An open reader on one file of a torrent.
pub struct TorrentReader {
    inner: Pin<Box<dyn ReadSeek>>,
    /// Ready when the torrent fails (librqbit would leave the read waiting forever).
    failing: Pin<Box<WaitForCancellationFutureOwned>>,
    _slot: Slot,
}

impl TorrentReader {
    pub(crate) fn new(inner: Box<dyn ReadSeek>, slot: Slot, failing: CancellationToken) -> Self {
        Self {
            inner: Box::into_pin(inner),
            failing: Box::pin(failing.cancelled_owned()),
            _slot: slot,
        }
    }

    /// Moves the read position (and librqbit's priority window) to `offset`.
    pub async fn seek_to(&mut self, offset: u64) -> std::io::Result<()> {
        self.inner.seek(SeekFrom::Start(offset)).await.map(|_| ())
    }
}

impl AsyncRead for TorrentReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.failing.as_mut().poll(cx).is_ready() {
            let failed = std::io::Error::other("the torrent stopped (see the stream's error)");
            return Poll::Ready(Err(failed));
        }
        self.inner.as_mut().poll_read(cx, buf)
    }
}

/// What a player's body reads from: the torrent (waits on the swarm, steers priority) or,
/// for a file already complete, the disk.
pub enum Source {
    Swarm(TorrentReader),
    Disk(super::disk::DiskFile),
}

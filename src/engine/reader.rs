//! A torrent file reader with a slot from our own reader cap.
//!
//! librqbit's `FileStream` cannot be named outside its crate, so it is boxed behind
//! `AsyncRead + AsyncSeek`. Each reader holds a permit of `Engine`'s semaphore
//! (`engine.max_readers`) for as long as it lives; dropping it frees both the permit and
//! librqbit's stream (whose window then stops being urgent).

use std::{
    io::SeekFrom,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncSeek, AsyncSeekExt, ReadBuf},
    sync::OwnedSemaphorePermit,
};

/// What librqbit's stream is to us.
pub trait ReadSeek: AsyncRead + AsyncSeek + Send + Unpin {}
impl<T: AsyncRead + AsyncSeek + Send + Unpin> ReadSeek for T {}

/// An open reader on one file of a torrent.
pub struct TorrentReader {
    inner: Pin<Box<dyn ReadSeek>>,
    _permit: OwnedSemaphorePermit,
}

impl TorrentReader {
    pub(crate) fn new(inner: Box<dyn ReadSeek>, permit: OwnedSemaphorePermit) -> Self {
        Self {
            inner: Box::into_pin(inner),
            _permit: permit,
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
        self.inner.as_mut().poll_read(cx, buf)
    }
}

/// What a player's body reads from: the torrent (waits on the swarm, steers priority) or,
/// for a file already complete, the disk.
pub enum Source {
    Swarm(TorrentReader),
    Disk(super::disk::DiskFile),
}

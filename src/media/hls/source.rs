//! A torrent file as a [`RangeRead`] for the keyframe index: each read opens an engine
//! reader at the offset (so the swarm fetches exactly those pieces first), bounded by a
//! timeout.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use tokio::io::AsyncReadExt;

use crate::{
    engine::{reader::Source, Engine},
    media::index::RangeRead,
};

/// One file of an active torrent.
pub struct TorrentRange {
    pub engine: Arc<Engine>,
    pub info_hash: String,
    pub file: usize,
    pub len: u64,
    /// Bound on each read (the swarm may be slow).
    pub timeout: Duration,
}

impl RangeRead for TorrentRange {
    fn len(&self) -> u64 {
        self.len
    }

    async fn read(&self, start: u64, len: u64) -> std::io::Result<Bytes> {
        let len = len.min(self.len.saturating_sub(start));
        let work = async {
            let source = self
                .engine
                .open_reader(&self.info_hash, self.file, start)
                .await
                .map_err(std::io::Error::other)?;
            let mut out = Vec::with_capacity(len as usize);
            match source {
                Source::Swarm(mut reader) => {
                    reader.seek_to(start).await?;
                    (&mut reader).take(len).read_to_end(&mut out).await?;
                }
                Source::Disk(file) => {
                    let mut chunks = file.chunks(start, len);
                    while let Some(chunk) = chunks.next().await {
                        out.extend_from_slice(&chunk?);
                    }
                }
            }
            Ok(Bytes::from(out))
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "index read timed out")
            })?
    }
}

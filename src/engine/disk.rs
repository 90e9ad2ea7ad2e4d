//! Files already complete on disk, read without going through librqbit. Once every piece of
//! a file is verified nothing changes its bytes, so a body can read the file directly: no
//! priority window, no lock shared with the swarm, no zero-filled buffers. This is the warm
//! path (a file watched twice, or seeded from local data). Reads go through the shared
//! [`BlockCache`] in whole aligned blocks; with the cache off, each span is read as asked.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    sync::Arc,
};

use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};

use super::blocks::{spans, BlockCache, BlockKey, BLOCK};

/// Which file this is, for the block cache: its torrent's info-hash and its index.
#[derive(Debug, Clone)]
pub struct FileId {
    pub info_hash: Arc<str>,
    pub index: usize,
    pub len: u64,
}

/// An open, complete file with a slot from the engine's reader cap.
pub struct DiskFile {
    file: File,
    id: FileId,
    cache: Arc<BlockCache>,
    _slot: super::reader::Slot,
}

impl DiskFile {
    /// Wraps a file opened from a path librqbit wrote (never one from a request).
    pub(crate) fn new(
        file: File,
        id: FileId,
        cache: Arc<BlockCache>,
        slot: super::reader::Slot,
    ) -> Self {
        Self {
            file,
            id,
            cache,
            _slot: slot,
        }
    }

    /// `len` bytes from `start`, one chunk per block the range touches. A file shorter than
    /// promised ends the stream with `UnexpectedEof`; an error ends it.
    pub fn chunks(self, start: u64, len: u64) -> BoxStream<'static, std::io::Result<Bytes>> {
        let open = Arc::new(self);
        futures::stream::unfold(Some((spans(start, len), open)), |state| async move {
            let (mut spans, open) = state?;
            let (block, from, to) = spans.next()?;
            match open.read(block, from, to).await {
                Ok(bytes) => Some((Ok(bytes), Some((spans, open)))),
                Err(err) => Some((Err(err), None)),
            }
        })
        .boxed()
    }

    /// Bytes `[from, to)` of `block`: a slice of the whole cached block, or just that span.
    async fn read(self: &Arc<Self>, block: u64, from: usize, to: usize) -> std::io::Result<Bytes> {
        let base = block * BLOCK;
        if !self.cache.enabled() {
            return self.load(base + from as u64, (to - from) as u64).await;
        }
        let key = BlockKey {
            info_hash: self.id.info_hash.clone(),
            file: self.id.index,
            block,
        };
        let whole = BLOCK.min(self.id.len.saturating_sub(base));
        let bytes = self.cache.get(key, self.load(base, whole)).await?;
        if bytes.len() < to {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(bytes.slice(from..to))
    }

    /// Exactly `want` bytes at `offset`, read on the blocking pool.
    async fn load(self: &Arc<Self>, offset: u64, want: u64) -> std::io::Result<Bytes> {
        let open = self.clone();
        let read = tokio::task::spawn_blocking(move || read_at(&open.file, offset, want)).await;
        let buf = read.map_err(std::io::Error::other)??;
        if (buf.len() as u64) < want {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        Ok(Bytes::from(buf))
    }
}

/// Up to `want` bytes at `offset` (fewer only at the end of the file), read into
/// uninitialised capacity: no zero-filling pass over every buffer (it cost ~9% of the
/// server's CPU on warm reads). Only one read at a time uses a `DiskFile`'s handle (its
/// chunks are read in turn), so the shared seek position is safe.
fn read_at(mut file: &File, offset: u64, want: u64) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(usize::try_from(want).unwrap_or(usize::MAX));
    file.take(want).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    async fn read_all(
        path: &Path,
        len: u64,
        cache: &Arc<BlockCache>,
        start: u64,
        count: u64,
    ) -> std::io::Result<Vec<u8>> {
        let semaphore = Arc::new(tokio::sync::Semaphore::new(1));
        let permit = semaphore.acquire_owned().await.unwrap();
        let id = FileId {
            info_hash: "h".into(),
            index: 0,
            len,
        };
        let slot = crate::engine::reader::Slot::new(permit, None);
        let file = DiskFile::new(File::open(path)?, id, cache.clone(), slot);
        let mut chunks = file.chunks(start, count);
        let mut out = Vec::new();
        while let Some(bytes) = chunks.next().await {
            let bytes = bytes?;
            assert!(bytes.len() as u64 <= BLOCK);
            out.extend_from_slice(&bytes);
        }
        Ok(out)
    }

    #[tokio::test]
    async fn reads_exactly_the_range_with_and_without_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let size = 3 * BLOCK + 12_345;
        let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        for cache in [BlockCache::new(0), BlockCache::new(2 * BLOCK)] {
            let cache = Arc::new(cache);
            for (start, count) in [
                (0, size),
                (12_345, 50_000),
                (BLOCK - 7, BLOCK + 14),
                (size - 100, 100),
                (0, 0),
            ] {
                let got = read_all(&path, size, &cache, start, count).await.unwrap();
                let want = &data[start as usize..(start + count) as usize];
                assert!(got == want, "{start}+{count}");
            }
        }
    }

    #[tokio::test]
    async fn a_file_shorter_than_promised_fails_and_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 1000]).unwrap();
        for cache in [BlockCache::new(0), BlockCache::new(2 * BLOCK)] {
            let cache = Arc::new(cache);
            let short = read_all(&path, 2000, &cache, 500, 1500).await.unwrap_err();
            assert_eq!(short.kind(), std::io::ErrorKind::UnexpectedEof);
        }
        let cache = Arc::new(BlockCache::new(2 * BLOCK));
        read_all(&path, 2000, &cache, 0, 10).await.unwrap_err();
        std::fs::write(&path, vec![7u8; 2000]).unwrap();
        let whole = read_all(&path, 2000, &cache, 0, 2000).await.unwrap();
        assert_eq!(whole, vec![7u8; 2000], "the failed block was not kept");
    }
}

//! Bytes of complete files kept in memory, in aligned [`BLOCK`]s, so a range that was read
//! recently is answered without a disk read or a blocking-pool hop: only the copy into the
//! socket remains. Popular files (many users on one torrent, a film watched again, players
//! re-reading the index) are served from here.
//!
//! The cache is content-addressed: a block is named by (info-hash, file, block index), and
//! the info-hash fixes every verified byte of the file, so an entry can never go stale. Only
//! complete files are read through it. The size is `storage.read_cache_bytes` (0 turns it
//! off); concurrent misses on one block share a single read.

use std::sync::Arc;

use bytes::Bytes;

/// Bytes per block, aligned to the start of the file.
pub const BLOCK: u64 = 1024 * 1024;

/// One block of one file of one torrent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub info_hash: Arc<str>,
    pub file: usize,
    pub block: u64,
}

/// The shared cache; disabled when its size is 0.
pub struct BlockCache(Option<moka::future::Cache<BlockKey, Bytes>>);

impl BlockCache {
    /// A cache holding at most `bytes` bytes of blocks.
    pub fn new(bytes: u64) -> Self {
        Self((bytes > 0).then(|| {
            moka::future::Cache::builder()
                .max_capacity(bytes)
                .weigher(|_, block: &Bytes| u32::try_from(block.len()).unwrap_or(u32::MAX))
                .support_invalidation_closures()
                .build()
        }))
    }

    pub fn enabled(&self) -> bool {
        self.0.is_some()
    }

    /// Drops every block of a torrent (its data is gone: released or evicted), so memory holds
    /// nothing nobody can ask for again.
    pub async fn forget(&self, info_hash: &str) {
        let Some(cache) = &self.0 else { return };
        let info_hash: Arc<str> = Arc::from(info_hash);
        let matched = cache.invalidate_entries_if(move |key, _| key.info_hash == info_hash);
        if matched.is_ok() {
            cache.run_pending_tasks().await;
        }
    }

    /// Bytes held now, and blocks (for metrics and the admin summary).
    pub async fn usage(&self) -> (u64, u64) {
        match &self.0 {
            Some(cache) => {
                cache.run_pending_tasks().await;
                (cache.weighted_size(), cache.entry_count())
            }
            None => (0, 0),
        }
    }

    /// The block under `key`, from memory or from `load` (whose result is kept only if it
    /// succeeds). Without a cache, `load` runs every time.
    pub async fn get<F>(&self, key: BlockKey, load: F) -> std::io::Result<Bytes>
    where
        F: std::future::Future<Output = std::io::Result<Bytes>>,
    {
        let Some(cache) = &self.0 else {
            return load.await;
        };
        let loaded = std::sync::atomic::AtomicBool::new(false);
        let block = cache
            .try_get_with(key, async {
                loaded.store(true, std::sync::atomic::Ordering::Relaxed);
                load.await
            })
            .await
            .map_err(|err| std::io::Error::new(err.kind(), err.to_string()));
        if let Some(hot) = crate::telemetry::hot() {
            match loaded.load(std::sync::atomic::Ordering::Relaxed) {
                true => hot.cache_misses.increment(1),
                false => hot.cache_hits.increment(1),
            }
        }
        block
    }
}

/// The blocks covering `[start, start + len)`, each with the part of it inside the range:
/// `(block index, from, to)` with offsets relative to the block's start.
pub fn spans(start: u64, len: u64) -> impl Iterator<Item = (u64, usize, usize)> {
    let end = start + len;
    let first = start / BLOCK;
    let last = if len == 0 { first } else { end.div_ceil(BLOCK) };
    (first..last).map(move |block| {
        let base = block * BLOCK;
        let from = start.max(base) - base;
        let to = end.min(base + BLOCK) - base;
        (block, from as usize, to as usize)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_cover_the_range_exactly() {
        assert_eq!(spans(0, 0).count(), 0);
        assert_eq!(
            spans(0, BLOCK).collect::<Vec<_>>(),
            vec![(0, 0, BLOCK as usize)]
        );
        assert_eq!(
            spans(BLOCK - 10, 20).collect::<Vec<_>>(),
            vec![(0, BLOCK as usize - 10, BLOCK as usize), (1, 0, 10)]
        );
        let (start, len) = (3 * BLOCK + 5, 2 * BLOCK);
        let spans: Vec<_> = spans(start, len).collect();
        assert_eq!(spans.len(), 3);
        let total: usize = spans.iter().map(|(_, from, to)| to - from).sum();
        assert_eq!(total as u64, len);
        assert_eq!(spans[0], (3, 5, BLOCK as usize));
        assert_eq!(spans[2], (5, 0, 5));
    }

    #[tokio::test]
    async fn a_block_is_loaded_once_and_failures_are_not_kept() {
        let cache = BlockCache::new(4 * BLOCK);
        let key = |block| BlockKey {
            info_hash: "h".into(),
            file: 0,
            block,
        };
        let loads = std::sync::atomic::AtomicU32::new(0);
        let load = || async {
            loads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(Bytes::from_static(b"block"))
        };
        assert_eq!(cache.get(key(0), load()).await.unwrap(), "block");
        assert_eq!(cache.get(key(0), load()).await.unwrap(), "block");
        assert_eq!(loads.load(std::sync::atomic::Ordering::Relaxed), 1);
        let failed = cache
            .get(key(1), async {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            })
            .await;
        assert_eq!(
            failed.unwrap_err().kind(),
            std::io::ErrorKind::UnexpectedEof
        );
        assert_eq!(cache.get(key(1), load()).await.unwrap(), "block");
        let off = BlockCache::new(0);
        assert!(!off.enabled());
        off.get(key(0), load()).await.unwrap();
        off.get(key(0), load()).await.unwrap();
        assert_eq!(loads.load(std::sync::atomic::Ordering::Relaxed), 4);
    }
}

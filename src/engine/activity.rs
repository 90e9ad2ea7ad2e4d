//! Who is reading which torrent: players' readers open now, waiting for data now, and when
//! one last read, per info-hash. The disk quota evicts only torrents nobody reads
//! ([`Activity::idle`]), least recently read first; the engine looks for peers at once for a
//! torrent a reader waits on ([`Activity::waited_on`]). Pins and the engine's own work are not
//! players.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

/// One torrent's readers.
#[derive(Debug, Default)]
struct Readers {
    open: AtomicUsize,
    /// Readers waiting for data right now (for more than a moment).
    waiting: AtomicUsize,
    /// Unix milliseconds of the last open or close (0: never read).
    last_ms: AtomicU64,
}

/// Every torrent's readers.
#[derive(Debug, Default)]
pub struct Activity {
    torrents: Mutex<HashMap<String, Arc<Readers>>>,
}

/// A player's reader, counted while it lives.
#[derive(Debug)]
pub struct Reading(Arc<Readers>);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.last_ms.store(now_ms(), Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A player's reader waiting for data, counted while it waits.
#[derive(Debug)]
pub struct Waiting(Arc<Readers>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    /// A player's reader has been waiting for data on the torrent for a moment.
    pub fn waiting(&self, info_hash: &str) -> Waiting {
        let readers = self.readers(info_hash);
        readers.waiting.fetch_add(1, Ordering::Relaxed);
        Waiting(readers)
    }

    /// Torrents with a reader waiting for data now.
    pub fn waited_on(&self) -> Vec<String> {
        let torrents = self.torrents.lock().expect("activity lock");
        torrents
            .iter()
            .filter(|(_, r)| r.waiting.load(Ordering::Relaxed) > 0)
            .map(|(hash, _)| hash.clone())
            .collect()
    }

    fn readers(&self, info_hash: &str) -> Arc<Readers> {
        let mut torrents = self.torrents.lock().expect("activity lock");
        torrents.entry(info_hash.to_owned()).or_default().clone()
    }

    /// A player opened a reader on the torrent.
    pub fn reading(&self, info_hash: &str) -> Reading {
        let readers = self.readers(info_hash);
        readers.open.fetch_add(1, Ordering::Relaxed);
        readers.last_ms.store(now_ms(), Ordering::Relaxed);
        Reading(readers)
    }

    /// Marks the torrent as used now without a reader (a stream was created or played).
    pub fn touch(&self, info_hash: &str) {
        self.readers(info_hash)
            .last_ms
            .store(now_ms(), Ordering::Relaxed);
    }

    /// Remembers a last read from before a restart (a stream's last play).
    pub fn remember(&self, info_hash: &str, unix_secs: u64) {
        let readers = self.readers(info_hash);
        readers
            .last_ms
            .fetch_max(unix_secs.saturating_mul(1000), Ordering::Relaxed);
    }

    /// Unix seconds of the last read (0: never).
    pub fn last_read(&self, info_hash: &str) -> u64 {
        let torrents = self.torrents.lock().expect("activity lock");
        torrents
            .get(info_hash)
            .map_or(0, |r| r.last_ms.load(Ordering::Relaxed) / 1000)
    }

    /// Whether no reader is open and none was within `grace` (a player reconnecting for a
    /// seek is not idle).
    pub fn idle(&self, info_hash: &str, grace: Duration) -> bool {
        let torrents = self.torrents.lock().expect("activity lock");
        let Some(readers) = torrents.get(info_hash) else {
            return true;
        };
        let last = readers.last_ms.load(Ordering::Relaxed);
        readers.open.load(Ordering::Relaxed) == 0
            && now_ms().saturating_sub(last) >= grace.as_millis() as u64
    }

    /// Players' readers open on the torrent now.
    pub fn open(&self, info_hash: &str) -> usize {
        let torrents = self.torrents.lock().expect("activity lock");
        torrents
            .get(info_hash)
            .map_or(0, |r| r.open.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::now_secs;

    #[test]
    fn a_torrent_is_idle_only_with_no_reader_and_after_the_grace() {
        let activity = Activity::default();
        assert!(activity.idle("h", Duration::from_secs(2)), "never read");
        let reading = activity.reading("h");
        assert!(!activity.idle("h", Duration::ZERO));
        assert_eq!(activity.open("h"), 1);
        drop(reading);
        assert!(activity.idle("h", Duration::ZERO));
        assert!(!activity.idle("h", Duration::from_secs(60)), "just closed");
        assert!(activity.last_read("h") >= now_secs() - 1);
        activity.remember("old", 1_000);
        assert_eq!(activity.last_read("old"), 1_000);
        let waiting = activity.waiting("h");
        assert_eq!(activity.waited_on(), vec!["h".to_owned()]);
        drop(waiting);
        assert!(activity.waited_on().is_empty());
    }
}

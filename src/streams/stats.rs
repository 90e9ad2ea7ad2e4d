//! What one stream has served, counted as it happens (lock-free, on the request path) and
//! written to the registry in batches: bytes, player requests, stalls, the time its first
//! request waited for its first byte, and seconds watched.
//!
//! "Watched" is wall-clock time with a player fetching: each request marks the stream active,
//! and a gap between two requests counts when it is shorter than [`WATCH_GAP`] (players
//! fetch every few seconds while playing; a paused player stops once its buffer is full).

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use super::store::StreamStats;

/// A pause between two player requests shorter than this is still watching.
pub const WATCH_GAP: Duration = Duration::from_secs(30);

/// Live counters of one stream.
#[derive(Debug, Default)]
pub struct LiveStats {
    bytes_served: AtomicU64,
    requests: AtomicU64,
    stalls: AtomicU64,
    /// Milliseconds + 1 (0: none yet).
    first_byte_ms: AtomicU64,
    watched_ms: AtomicU64,
    last_request: Mutex<Option<Instant>>,
    /// Changed since the last write to the registry.
    dirty: AtomicBool,
    /// A player is stalled (reported once, until data flows again).
    stalled: AtomicBool,
}

impl LiveStats {
    /// Counters resumed from what the registry kept.
    pub fn from_stored(stored: &StreamStats) -> Self {
        let stats = Self::default();
        stats
            .bytes_served
            .store(stored.bytes_served, Ordering::Relaxed);
        stats.requests.store(stored.requests, Ordering::Relaxed);
        stats.stalls.store(stored.stalls, Ordering::Relaxed);
        let first = stored.first_byte_ms.map_or(0, |ms| ms + 1);
        stats.first_byte_ms.store(first, Ordering::Relaxed);
        let watched = (stored.watched_seconds.max(0.0) * 1000.0) as u64;
        stats.watched_ms.store(watched, Ordering::Relaxed);
        stats
    }

    /// A player request arrived (a range, a segment).
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last_request.lock().expect("stats lock");
        if let Some(gap) = last.map(|at| now.duration_since(at)) {
            self.watched_ms
                .fetch_add(watched_ms(gap), Ordering::Relaxed);
        }
        *last = Some(now);
        self.dirty.store(true, Ordering::Relaxed);
    }

    pub fn bytes(&self, n: u64) {
        self.bytes_served.fetch_add(n, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// A player waits with no data: counted (and `true`) once per stall, until data flows.
    pub fn stall(&self) -> bool {
        if self.stalled.swap(true, Ordering::Relaxed) {
            return false;
        }
        self.stalls.fetch_add(1, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
        true
    }

    /// Data flows to a player: `true` when that ends a stall.
    pub fn flowing(&self) -> bool {
        self.stalled.load(Ordering::Relaxed) && self.stalled.swap(false, Ordering::Relaxed)
    }

    /// Whether a player is stalled now.
    pub fn is_stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }

    /// The first byte of a request came after `waited`; the first such time is kept.
    pub fn first_byte(&self, waited: Duration) {
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let kept = self
            .first_byte_ms
            .compare_exchange(0, ms, Ordering::Relaxed, Ordering::Relaxed);
        if kept.is_ok() {
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// The counters now.
    pub fn snapshot(&self) -> StreamStats {
        let first = self.first_byte_ms.load(Ordering::Relaxed);
        StreamStats {
            bytes_served: self.bytes_served.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            stalls: self.stalls.load(Ordering::Relaxed),
            first_byte_ms: (first > 0).then(|| first - 1),
            watched_seconds: self.watched_ms.load(Ordering::Relaxed) as f64 / 1000.0,
        }
    }

    /// The counters, if they changed since the last call (for the batched write).
    pub fn take_changed(&self) -> Option<StreamStats> {
        self.dirty
            .swap(false, Ordering::Relaxed)
            .then(|| self.snapshot())
    }
}

/// Milliseconds of watching a gap between two requests adds.
pub fn watched_ms(gap: Duration) -> u64 {
    match gap < WATCH_GAP {
        true => u64::try_from(gap.as_millis()).unwrap_or(0),
        false => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_count_as_watching_only_when_short() {
        let cases = [
            (0, 0),
            (2_000, 2_000),
            (29_999, 29_999),
            (30_000, 0),
            (600_000, 0),
        ];
        for (gap, want) in cases {
            assert_eq!(watched_ms(Duration::from_millis(gap)), want, "{gap}");
        }
    }

    #[test]
    fn counters_keep_the_first_first_byte_and_say_when_they_changed() {
        let stats = LiveStats::default();
        assert!(stats.take_changed().is_none());
        stats.request();
        stats.bytes(1000);
        stats.first_byte(Duration::from_millis(120));
        stats.first_byte(Duration::from_millis(5));
        assert!(stats.stall());
        assert!(!stats.stall(), "one stall until data flows");
        assert!(stats.flowing());
        assert!(!stats.flowing());
        let changed = stats.take_changed().expect("changed");
        assert_eq!(
            changed,
            StreamStats {
                bytes_served: 1000,
                requests: 1,
                stalls: 1,
                first_byte_ms: Some(120),
                watched_seconds: 0.0,
            }
        );
        assert!(stats.take_changed().is_none(), "written once");
        let resumed = LiveStats::from_stored(&changed);
        assert_eq!(resumed.snapshot(), changed);
    }
}

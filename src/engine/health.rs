//! Torrents that are not simply downloading or done: evicted (their data went to stay under
//! the disk quota) or failed (librqbit stopped them: a full disk, or anything else). Readers
//! of a torrent that fails are ended at once (librqbit never wakes them), and new reads are
//! refused with the reason until it recovers. Kept in a plain lock so the status of a stream
//! can be read without waiting for the torrent table.

use std::{collections::HashMap, sync::Mutex};

use tokio_util::sync::CancellationToken;

/// What is wrong with a torrent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Its data was evicted; it comes back when played.
    Evicted,
    /// Writing failed for lack of room; retried once there is room again.
    StorageFull(String),
    /// librqbit stopped it for another reason.
    Failed(String),
}

/// Every torrent's condition, and the token that ends its readers when it fails.
#[derive(Debug, Default)]
pub struct Health {
    conditions: Mutex<HashMap<String, Condition>>,
    failing: Mutex<HashMap<String, CancellationToken>>,
}

impl Health {
    /// The torrent's condition (`None`: fine).
    pub fn condition(&self, info_hash: &str) -> Option<Condition> {
        self.conditions
            .lock()
            .expect("health lock")
            .get(info_hash)
            .cloned()
    }

    /// Sets (or clears) the torrent's condition; says whether it changed. A failure ends the
    /// torrent's open readers.
    pub fn set(&self, info_hash: &str, condition: Option<Condition>) -> bool {
        let failed = matches!(
            condition,
            Some(Condition::StorageFull(_) | Condition::Failed(_))
        );
        let changed = {
            let mut conditions = self.conditions.lock().expect("health lock");
            let before = match &condition {
                Some(c) => conditions.insert(info_hash.to_owned(), c.clone()),
                None => conditions.remove(info_hash),
            };
            before != condition
        };
        if changed && failed {
            let token = self.failing.lock().expect("health lock").remove(info_hash);
            if let Some(token) = token {
                token.cancel();
            }
        }
        changed
    }

    /// A token cancelled when the torrent fails (a reader selects on it).
    pub fn failing(&self, info_hash: &str) -> CancellationToken {
        let mut failing = self.failing.lock().expect("health lock");
        failing.entry(info_hash.to_owned()).or_default().clone()
    }

    /// Forgets a torrent that left the engine.
    pub fn forget(&self, info_hash: &str) {
        self.conditions
            .lock()
            .expect("health lock")
            .remove(info_hash);
        self.failing.lock().expect("health lock").remove(info_hash);
    }
}

/// The condition of a torrent librqbit reports as errored with `error`: a full disk (or quota
/// of the filesystem) is told apart, since it recovers once there is room.
pub fn classify(error: &str) -> Condition {
    let full = [
        "os error 28",
        "os error 122",
        "No space left",
        "Disk quota exceeded",
    ]
    .iter()
    .any(|needle| error.contains(needle));
    match full {
        true => Condition::StorageFull(
            "the disk is full: the torrent stopped writing and resumes by itself once there is \
             room"
                .into(),
        ),
        false => Condition::Failed("the torrent stopped with an error".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_told_apart() {
        let cases = [
            (
                "error writing to file 0: No space left on device (os error 28)",
                true,
            ),
            ("Disk quota exceeded (os error 122)", true),
            (
                "error checking piece: Input/output error (os error 5)",
                false,
            ),
        ];
        for (error, full) in cases {
            assert_eq!(
                matches!(classify(error), Condition::StorageFull(_)),
                full,
                "{error}"
            );
        }
    }

    #[test]
    fn a_failure_ends_readers_once() {
        let health = Health::default();
        let token = health.failing("h");
        assert!(health.set("h", Some(Condition::Evicted)));
        assert!(
            !token.is_cancelled(),
            "eviction waits for no reader: none is open"
        );
        let full = Condition::StorageFull("full".into());
        assert!(health.set("h", Some(full.clone())));
        assert!(token.is_cancelled());
        assert!(!health.set("h", Some(full)), "unchanged");
        assert!(
            !health.failing("h").is_cancelled(),
            "a new token for new readers"
        );
        assert!(health.set("h", None));
        assert_eq!(health.condition("h"), None);
    }
}

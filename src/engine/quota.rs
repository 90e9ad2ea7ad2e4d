//! The disk quota (`storage.max_disk_bytes`): what torrents may occupy. A torrent in the
//! engine holds its selected files in full from the moment it is added (they are sized sparse
//! and fill as pieces arrive), plus two pieces per file for the neighbours' bytes librqbit
//! writes at file boundaries; data on disk that no torrent in the engine holds counts as it
//! is (allocated blocks, refreshed by the engine's monitor). To fit a torrent, the data of
//! torrents nobody reads goes, least recently read first ([`usage::admit`]); a file that alone
//! exceeds the quota, or that would need a torrent being read to go, is refused with the sizes.
//!
//! This module keeps the figures and the decision; the torrent table carries it out (it holds
//! the lock every addition and eviction happens under).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use super::{
    activity::Activity,
    usage::{self, human, Admission, Holder},
    EngineError, TorrentMeta,
};

/// A torrent whose last reader closed this recently is still being played (a player
/// reconnecting for a seek): its data does not go.
pub const EVICT_GRACE: Duration = Duration::from_secs(2);

/// The quota and the figures it decides on.
pub struct Quota {
    /// Bytes torrents may occupy.
    pub limit: u64,
    pub activity: Arc<Activity>,
    /// Allocated bytes of each download folder (by info-hash), as last measured.
    folders: Mutex<HashMap<String, u64>>,
    downloads: PathBuf,
}

impl Quota {
    pub fn new(limit: u64, activity: Arc<Activity>, downloads: PathBuf) -> Self {
        Self {
            limit,
            activity,
            folders: Mutex::new(HashMap::new()),
            downloads,
        }
    }

    /// The quota in force for `configured` (0: automatic): 90% of what the filesystem under
    /// `downloads` has free now plus what the downloads already occupy.
    pub fn limit_for(configured: u64, downloads: &Path) -> u64 {
        if configured > 0 {
            return configured;
        }
        let probe = std::iter::successors(Some(downloads), |p| p.parent())
            .find(|p| p.exists())
            .unwrap_or(Path::new("."));
        let free = usage::available(probe).unwrap_or(0);
        (free.saturating_add(usage::allocated(downloads)) / 10) * 9
    }

    /// Measures every download folder again (blocking: walks the folders).
    pub fn measure(&self) -> u64 {
        let mut sizes = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(&self.downloads) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if entry.path().is_dir() && is_info_hash(&name) {
                    sizes.insert(name, usage::allocated(&entry.path()));
                }
            }
        }
        let total = sizes.values().sum();
        *self.folders.lock().expect("folders lock") = sizes;
        total
    }

    /// Bytes under the download folders, as last measured.
    pub fn used(&self) -> u64 {
        self.folders.lock().expect("folders lock").values().sum()
    }

    /// A folder's measured bytes (0 when unknown).
    pub fn measured(&self, info_hash: &str) -> u64 {
        let folders = self.folders.lock().expect("folders lock");
        folders.get(info_hash).copied().unwrap_or(0)
    }

    /// Forgets a folder that was removed.
    pub fn removed(&self, info_hash: &str) {
        self.folders.lock().expect("folders lock").remove(info_hash);
    }

    /// What decides whether `needed` more bytes fit: every torrent in the engine (`held`:
    /// info-hash → bytes it holds in full) but `except`, and every other folder on disk.
    pub fn admit(&self, needed: u64, held: &HashMap<String, u64>, except: &str) -> Admission {
        usage::admit(self.limit, needed, &self.holders(held, except, false))
    }

    /// What to evict for the download folders' measured sizes to fit again (the quota was
    /// lowered, or data grew past what was expected).
    pub fn over(&self, held: &HashMap<String, u64>) -> Admission {
        usage::admit(self.limit, 0, &self.holders(held, "", true))
    }

    fn holders(&self, held: &HashMap<String, u64>, except: &str, measured: bool) -> Vec<Holder> {
        let folders = self.folders.lock().expect("folders lock");
        let mut holders: Vec<Holder> = held
            .iter()
            .filter(|(hash, _)| hash.as_str() != except)
            .map(|(hash, bytes)| Holder {
                info_hash: hash.clone(),
                bytes: match measured {
                    true => folders.get(hash).copied().unwrap_or(0),
                    false => (*bytes).max(folders.get(hash).copied().unwrap_or(0)),
                },
                evictable: self.activity.idle(hash, EVICT_GRACE),
                last_read: self.activity.last_read(hash),
            })
            .collect();
        holders.extend(
            folders
                .iter()
                .filter(|(hash, _)| hash.as_str() != except && !held.contains_key(*hash))
                .map(|(hash, bytes)| Holder {
                    info_hash: hash.clone(),
                    bytes: *bytes,
                    evictable: true,
                    last_read: self.activity.last_read(hash),
                }),
        );
        holders
    }
}

/// What a torrent holds in full with `files` selected: their sizes, plus two pieces per file
/// for what librqbit writes into neighbouring files at piece boundaries.
pub fn reservation(meta: &TorrentMeta, files: impl IntoIterator<Item = usize>) -> u64 {
    files
        .into_iter()
        .filter_map(|index| meta.file(index))
        .map(|file| file.size + 2 * meta.piece_length)
        .sum()
}

/// The error for an admission that cannot be met.
pub fn refusal(admission: &Admission) -> Option<EngineError> {
    let message = match *admission {
        Admission::TooLarge { needed, quota } => format!(
            "this file needs {} of disk and the server's disk quota is {}",
            human(needed),
            human(quota)
        ),
        Admission::Short {
            needed,
            quota,
            held,
        } => format!(
            "this file needs {} of disk; {} of the {} disk quota is held by streams being \
             played; try again when one stops",
            human(needed),
            human(held),
            human(quota)
        ),
        Admission::Fits | Admission::Evict(_) => return None,
    };
    Some(EngineError::InsufficientStorage(message))
}

fn is_info_hash(name: &str) -> bool {
    name.len() == 40 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_say_the_sizes() {
        let too_large = Admission::TooLarge {
            needed: 3 << 30,
            quota: 1 << 30,
        };
        let message = refusal(&too_large).unwrap().to_string();
        assert!(
            message.contains("3.0 GiB") && message.contains("1.0 GiB"),
            "{message}"
        );
        let short = Admission::Short {
            needed: 600 << 20,
            quota: 1 << 30,
            held: 700 << 20,
        };
        let message = refusal(&short).unwrap().to_string();
        assert!(
            message.contains("600.0 MiB") && message.contains("700.0 MiB"),
            "{message}"
        );
        assert!(refusal(&Admission::Fits).is_none());
    }

    #[test]
    fn only_info_hash_folders_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let hash = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(dir.path().join(hash)).unwrap();
        std::fs::write(dir.path().join(hash).join("f"), vec![1u8; 8192]).unwrap();
        std::fs::create_dir_all(dir.path().join("not-a-torrent")).unwrap();
        std::fs::write(dir.path().join("not-a-torrent/f"), vec![1u8; 8192]).unwrap();
        let quota = Quota::new(1 << 20, Arc::default(), dir.path().to_owned());
        let total = quota.measure();
        assert!((8192..16384).contains(&total), "{total}");
        let held = HashMap::new();
        assert_eq!(
            quota.admit(1 << 20, &held, ""),
            Admission::Evict(vec![hash.into()])
        );
        assert_eq!(
            quota.admit(1000, &held, hash),
            Admission::Fits,
            "its own folder"
        );
    }
}

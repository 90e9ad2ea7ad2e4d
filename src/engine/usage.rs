//! Disk figures and the disk-quota decision. What a folder occupies is counted in allocated
//! blocks (librqbit sizes files sparse, so their lengths say nothing), and what the
//! filesystem has left comes from `statvfs`. [`admit`] is the quota rule, a pure function:
//! whether a torrent fits, and whose data goes (least recently read first) to make it fit.

use std::{os::unix::fs::MetadataExt, path::Path};

/// Bytes allocated to the files under `path` (0 when it does not exist). Symbolic links are
/// not followed. Bounded: a folder deeper than 64 levels is not counted further.
pub fn allocated(path: &Path) -> u64 {
    fn walk(path: &Path, depth: usize) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        if !meta.is_dir() {
            return meta.blocks() * 512;
        }
        if depth > 64 {
            return 0;
        }
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .flatten()
            .map(|entry| walk(&entry.path(), depth + 1))
            .sum()
    }
    walk(path, 0)
}

/// Bytes an unprivileged writer may still use on the filesystem holding `path`.
pub fn available(path: &Path) -> Option<u64> {
    let stats = nix::sys::statvfs::statvfs(path).ok()?;
    Some(stats.blocks_available() * stats.fragment_size())
}

/// Something that holds disk space: a torrent in the engine, or data of one that is not.
#[derive(Debug, Clone, PartialEq)]
pub struct Holder {
    pub info_hash: String,
    /// What it holds, or will once its files are whole (an active torrent holds its selected
    /// files in full from the start).
    pub bytes: u64,
    /// No reader is open and none was for a moment: its data may go.
    pub evictable: bool,
    /// Unix seconds of the last read (0: never), for least-recently-read-first.
    pub last_read: u64,
}

/// What [`admit`] decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    Fits,
    /// Fits once these torrents' data is evicted (in this order).
    Evict(Vec<String>),
    /// Does not fit even with every evictable holder gone: `held` bytes are held by torrents
    /// being read.
    Short {
        needed: u64,
        quota: u64,
        held: u64,
    },
    /// Larger than the whole quota.
    TooLarge {
        needed: u64,
        quota: u64,
    },
}

/// Whether `needed` more bytes fit under `quota` next to `holders`, and which evictable holders
/// (least recently read first) must go for it.
pub fn admit(quota: u64, needed: u64, holders: &[Holder]) -> Admission {
    if needed > quota {
        return Admission::TooLarge { needed, quota };
    }
    let used: u64 = holders.iter().map(|h| h.bytes).sum();
    if used.saturating_add(needed) <= quota {
        return Admission::Fits;
    }
    let mut candidates: Vec<&Holder> = holders.iter().filter(|h| h.evictable).collect();
    candidates.sort_by(|a, b| (a.last_read, &a.info_hash).cmp(&(b.last_read, &b.info_hash)));
    let (mut left, mut evict) = (used, Vec::new());
    for holder in candidates {
        if left.saturating_add(needed) <= quota {
            break;
        }
        left -= holder.bytes;
        evict.push(holder.info_hash.clone());
    }
    if left.saturating_add(needed) <= quota {
        return Admission::Evict(evict);
    }
    let held = holders
        .iter()
        .filter(|h| !h.evictable)
        .map(|h| h.bytes)
        .sum();
    Admission::Short {
        needed,
        quota,
        held,
    }
}

/// `bytes` for people: `1.5 GiB`, `700.0 MiB`, `12 KiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holder(hash: &str, bytes: u64, evictable: bool, last_read: u64) -> Holder {
        Holder {
            info_hash: hash.into(),
            bytes,
            evictable,
            last_read,
        }
    }

    #[test]
    fn admission_table() {
        use Admission::*;
        let holders = [
            holder("a", 40, true, 300),
            holder("b", 30, true, 100),
            holder("c", 20, false, 50),
        ];
        let evict = |v: &[&str]| Evict(v.iter().map(|s| s.to_string()).collect());
        let cases = [
            (100, 10, Fits),
            (100, 11, evict(&["b"])),
            (100, 40, evict(&["b"])),
            (100, 41, evict(&["b", "a"])),
            (100, 80, evict(&["b", "a"])),
            (
                100,
                81,
                Short {
                    needed: 81,
                    quota: 100,
                    held: 20,
                },
            ),
            (
                100,
                101,
                TooLarge {
                    needed: 101,
                    quota: 100,
                },
            ),
        ];
        for (quota, needed, want) in cases {
            assert_eq!(admit(quota, needed, &holders), want, "{needed} of {quota}");
        }
        assert_eq!(admit(10, 10, &[]), Fits);
        let ties = [holder("y", 5, true, 0), holder("x", 5, true, 0)];
        assert_eq!(admit(10, 5, &ties), evict(&["x"]), "ties go by name");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(12 * 1024), "12.0 KiB");
        assert_eq!(human(700 << 20), "700.0 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn allocated_counts_blocks_not_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(100 << 20).unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/data"), vec![7u8; 1 << 20]).unwrap();
        let used = allocated(dir.path());
        assert!((1 << 20..2 << 20).contains(&used), "{used}");
        assert_eq!(allocated(&dir.path().join("missing")), 0);
        assert!(available(dir.path()).unwrap() > 0);
    }
}

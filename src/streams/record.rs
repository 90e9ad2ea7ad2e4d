//! What is remembered about a stream across restarts, and the file it is kept in
//! (`data_dir/streams.json`, written atomically, mode 0600 since it holds playback tokens).

use std::{io::Write, net::SocketAddr, path::Path};

use serde::{Deserialize, Serialize};

use crate::engine::files::FileSelector;

/// A stream: one user's playback of one file of one torrent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamRecord {
    pub id: String,
    pub user: String,
    pub info_hash: String,
    /// The name known before metadata (a magnet's `dn`).
    #[serde(default)]
    pub name: Option<String>,
    /// Canonical magnet (for .torrent input, the metadata is kept in `torrents/`).
    pub magnet: String,
    #[serde(default)]
    pub requested: Option<FileSelector>,
    #[serde(default)]
    pub peers: Vec<SocketAddr>,
    /// The chosen file, once metadata is known.
    #[serde(default)]
    pub file_index: Option<usize>,
    /// Unix seconds.
    pub created_at: u64,
    pub token: String,
    /// Unix seconds.
    pub token_expires_at: u64,
    #[serde(default)]
    pub failure: Option<Failure>,
}

/// Why a stream could not start (kept so a poll after a 202 tells the client).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    streams: Vec<StreamRecord>,
}

/// Reads the registry; a missing file is an empty registry.
pub fn load(path: &Path) -> anyhow::Result<Vec<StreamRecord>> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let file: StoreFile = serde_json::from_slice(&bytes)?;
            Ok(file.streams)
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err.into()),
    }
}

/// Writes the registry atomically: a uniquely named temporary file (mode 0600) in the same
/// folder, synced, then renamed over `path`. Concurrent saves never trip over each other.
pub fn save(path: &Path, streams: Vec<StreamRecord>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(&StoreFile {
        version: 1,
        streams,
    })
    .map_err(std::io::Error::other)?;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .prefix(".streams.")
        .suffix(".tmp")
        .tempfile_in(folder)?;
    file.write_all(&bytes)?;
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A new random stream id (`st_` + 20 hex characters).
pub fn new_stream_id() -> String {
    use rand::RngCore;
    let mut raw = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut raw);
    format!("st_{}", hex::encode(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_saves_all_succeed_and_leave_a_private_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("streams.json");
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    for _ in 0..25 {
                        save(&path, Vec::new()).expect("save");
                    }
                });
            }
        });
        assert!(load(&path).unwrap().is_empty());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary files left behind");
    }
}

//! What is remembered about a stream across restarts, and the file it is kept in
//! (`data_dir/streams.json`, written atomically, mode 0600 since it holds playback tokens).

use std::{net::SocketAddr, os::unix::fs::OpenOptionsExt, path::Path};

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

/// Writes the registry atomically (temporary file, then rename).
pub fn save(path: &Path, streams: Vec<StreamRecord>) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(&StoreFile {
        version: 1,
        streams,
    })
    .map_err(std::io::Error::other)?;
    let tmp = path.with_extension("json.tmp");
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

/// A new random stream id (`st_` + 20 hex characters).
pub fn new_stream_id() -> String {
    use rand::RngCore;
    let mut raw = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut raw);
    format!("st_{}", hex::encode(raw))
}

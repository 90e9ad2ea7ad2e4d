//! What is remembered about a stream across restarts (kept by [`super::store`]).

use std::net::SocketAddr;

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
    /// Unix seconds of the last playback request (streams idle too long are released).
    #[serde(default)]
    pub last_played_at: Option<u64>,
}

/// Why a stream could not start (kept so a poll after a 202 tells the client).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Failure {
    pub code: String,
    pub message: String,
}

/// A new random stream id (`st_` + 20 hex characters).
pub fn new_stream_id() -> String {
    use rand::RngCore;
    let mut raw = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut raw);
    format!("st_{}", hex::encode(raw))
}

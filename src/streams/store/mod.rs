//! Where the stream registry is kept: a narrow [`Store`] trait (so another engine, PostgreSQL
//! for several nodes, can sit behind it) and its one implementation, an embedded SQLite
//! database in `data_dir/registry.db` ([`sqlite`]). On first start the old `streams.json` is
//! imported ([`legacy`]). Every acknowledged change (a stream created, settled, refreshed or
//! deleted) is committed before the API answers; statistics are written in batches.
//!
//! A damaged registry stops startup with a message that names the file and says what to do;
//! the registry never decides what happens to downloaded data.

mod legacy;
pub mod sqlite;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::record::StreamRecord;

/// File names inside `storage.data_dir`.
pub const REGISTRY_FILE: &str = "registry.db";
pub const BACKUP_FILE: &str = "registry.db.bak";

/// Why the registry could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the stream registry {path} is damaged or unreadable ({reason}). Restore the copy \
         {backup} written at the last good start (stop the server, copy it over {path}), or move \
         {path} aside to start with an empty registry; downloaded data is kept either way"
    )]
    Damaged {
        path: PathBuf,
        backup: PathBuf,
        reason: String,
    },
    #[error(
        "the old stream registry {path} cannot be read ({reason}). Fix it, or move it aside to \
         start without its streams; downloaded data is kept either way"
    )]
    Legacy { path: PathBuf, reason: String },
    #[error("the stream registry did not answer in time")]
    Timeout,
    #[error("the disk holding the stream registry is full")]
    Full,
    #[error("stream registry: {0}")]
    Query(String),
}

/// What a stream has served, for `stats` in the API and the admin summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub bytes_served: u64,
    pub requests: u64,
    pub stalls: u64,
    /// Time from the first player request to its first byte.
    pub first_byte_ms: Option<u64>,
    pub watched_seconds: f64,
}

/// A caller's saved playback position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub seconds: f64,
    pub duration: Option<f64>,
    /// Unix seconds.
    pub updated_at: u64,
}

/// A stream as the registry holds it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub record: StreamRecord,
    pub stats: StreamStats,
    pub position: Option<Position>,
}

/// The registry's storage. Writes are in the order they are called; each returns once
/// committed.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// Every stream, oldest first.
    async fn load(&self) -> Result<Vec<Stored>, StoreError>;
    async fn insert(&self, record: &StreamRecord) -> Result<(), StoreError>;
    /// Writes a stream's changeable fields (token, file, failure, last play); a stream
    /// deleted meanwhile stays deleted.
    async fn update(&self, record: &StreamRecord) -> Result<(), StoreError>;
    async fn delete(&self, id: &str) -> Result<(), StoreError>;
    async fn save_stats(&self, stats: &[(String, StreamStats)]) -> Result<(), StoreError>;
    async fn save_position(&self, id: &str, position: &Position) -> Result<(), StoreError>;
    /// Flushes and closes (shutdown).
    async fn close(&self);
}

/// Opens the registry in `data_dir` (creating it, importing `streams.json` once) and keeps a
/// copy of it as it was at this good start.
pub async fn open(data_dir: &Path) -> Result<sqlite::SqliteStore, StoreError> {
    let path = data_dir.join(REGISTRY_FILE);
    let store = sqlite::SqliteStore::open(&path, &data_dir.join(BACKUP_FILE)).await?;
    legacy::import(data_dir, &store).await?;
    store.backup().await;
    Ok(store)
}

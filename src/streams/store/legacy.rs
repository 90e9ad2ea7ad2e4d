//! The registry before the database: `data_dir/streams.json`. Imported once, on the first
//! start that finds it (streams already in the database are left alone, so an import cut
//! short by a crash is simply done again), then renamed `streams.json.migrated`. A file that
//! does not parse stops startup with a message naming it and saying what to do. The old file
//! kept no play times, so imported streams count as played at the import
//! (`storage.stream_idle_ttl` starts then).

use std::path::Path;

use serde::Deserialize;

use super::{sqlite::SqliteStore, StoreError};
use crate::streams::record::StreamRecord;

/// The old registry's file name inside `storage.data_dir`, and what it becomes once imported.
pub const LEGACY_FILE: &str = "streams.json";
pub const MIGRATED_FILE: &str = "streams.json.migrated";

#[derive(Deserialize)]
struct LegacyFile {
    streams: Vec<StreamRecord>,
}

/// Imports `data_dir/streams.json` into `store` when it exists.
pub async fn import(data_dir: &Path, store: &SqliteStore) -> Result<(), StoreError> {
    let path = data_dir.join(LEGACY_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(legacy(&path, err.to_string())),
    };
    let mut file: LegacyFile =
        serde_json::from_slice(&bytes).map_err(|err| legacy(&path, err.to_string()))?;
    // The old registry kept no play times: the idle time-to-live counts from the import.
    let now = crate::auth::now_secs();
    for record in &mut file.streams {
        record.last_played_at.get_or_insert(now);
    }
    let added = store.insert_missing(&file.streams).await?;
    std::fs::rename(&path, data_dir.join(MIGRATED_FILE))
        .map_err(|err| legacy(&path, format!("cannot rename it once imported: {err}")))?;
    tracing::info!(
        from = %path.display(),
        streams = file.streams.len(),
        added,
        "imported the old stream registry into the database"
    );
    Ok(())
}

fn legacy(path: &Path, reason: String) -> StoreError {
    StoreError::Legacy {
        path: path.to_owned(),
        reason,
    }
}

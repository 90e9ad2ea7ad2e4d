//! The registry in an embedded SQLite database: WAL journal with `synchronous = FULL` (a
//! commit survives a process crash and a power loss; registry writes are rare, so the fsync
//! per commit costs nothing that matters), one connection (writes are serialised in the order
//! they are made), versioned migrations (`migrations/`), every statement bounded by a timeout.
//! The file is private (0600): it holds playback tokens.

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::LazyLock,
    time::Duration,
};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    Row, SqlitePool,
};

use super::{Position, Store, StoreError, Stored, StreamStats};
use crate::streams::record::{Failure, StreamRecord};

/// The schema versions, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("src/streams/store/migrations");

/// Longest a statement (or waiting for the connection) may take.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The SQLite registry.
pub struct SqliteStore {
    pool: SqlitePool,
    path: PathBuf,
    backup: PathBuf,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path`, checks it and brings its schema up to date.
    /// `backup` names the copy kept at each good start (quoted in errors).
    pub async fn open(path: &Path, backup: &Path) -> Result<Self, StoreError> {
        let damaged = |reason: String| StoreError::Damaged {
            path: path.to_owned(),
            backup: backup.to_owned(),
            reason,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(STATEMENT_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(STATEMENT_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| damaged(e.to_string()))?;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        let check: String = bounded(sqlx::query_scalar("PRAGMA quick_check").fetch_one(&pool))
            .await
            .map_err(|e| damaged(e.to_string()))?;
        if check != "ok" {
            return Err(damaged(check));
        }
        bounded(MIGRATOR.run(&pool))
            .await
            .map_err(|e| damaged(format!("schema migration failed: {e}")))?;
        Ok(Self {
            pool,
            path: path.to_owned(),
            backup: backup.to_owned(),
        })
    }

    /// Writes a consistent copy of the database next to it (`VACUUM INTO` a temporary file,
    /// then renamed), mode 0600. A failure is logged, never fatal.
    pub async fn backup(&self) {
        let tmp = self.backup.with_extension("tmp");
        let _ = std::fs::remove_file(&tmp);
        let copy = sqlx::query("VACUUM INTO ?")
            .bind(tmp.to_string_lossy().into_owned())
            .execute(&self.pool);
        let done = bounded(copy).await.and_then(|_| {
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
                .and_then(|()| std::fs::rename(&tmp, &self.backup))
                .map_err(|e| StoreError::Query(e.to_string()))
        });
        if let Err(err) = done {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot back up the stream registry");
        }
    }

    /// Inserts streams that are not there yet, in one transaction (the `streams.json` import).
    pub async fn insert_missing(&self, records: &[StreamRecord]) -> Result<usize, StoreError> {
        let mut tx = bounded(self.pool.begin()).await?;
        let mut added = 0;
        for record in records {
            let query = insert_query(true, record);
            added += bounded(query.execute(&mut *tx)).await?.rows_affected() as usize;
        }
        bounded(tx.commit()).await?;
        Ok(added)
    }
}

/// Runs a database future under [`STATEMENT_TIMEOUT`].
async fn bounded<T, E: std::fmt::Display>(
    work: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, work).await {
        Ok(result) => result.map_err(|e| {
            let text = e.to_string();
            // SQLITE_FULL: "database or disk is full".
            match text.contains("disk is full") {
                true => StoreError::Full,
                false => StoreError::Query(text),
            }
        }),
        Err(_) => Err(StoreError::Timeout),
    }
}

/// The statement inserting `record`; `or_ignore` skips a stream already there.
fn insert_query(
    or_ignore: bool,
    record: &StreamRecord,
) -> sqlx::query::Query<'_, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    let sql: &'static str = match or_ignore {
        true => &INSERT_OR_IGNORE,
        false => &INSERT,
    };
    sqlx::query(sql)
        .bind(&record.id)
        .bind(&record.user)
        .bind(&record.info_hash)
        .bind(&record.name)
        .bind(&record.magnet)
        .bind(
            record
                .requested
                .as_ref()
                .and_then(|r| serde_json::to_string(r).ok()),
        )
        .bind(serde_json::to_string(&record.peers).unwrap_or_else(|_| "[]".into()))
        .bind(record.file_index.map(|i| i as i64))
        .bind(record.created_at as i64)
        .bind(&record.token)
        .bind(record.token_expires_at as i64)
        .bind(record.failure.as_ref().map(|f| f.code.clone()))
        .bind(record.failure.as_ref().map(|f| f.message.clone()))
        .bind(record.last_played_at.map(|t| t as i64))
}

const COLUMNS: &str = "(id, user_id, info_hash, name, magnet, requested, peers, file_index, \
     created_at, token, token_expires_at, failure_code, failure_message, last_played_at) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
static INSERT: LazyLock<String> = LazyLock::new(|| format!("INSERT INTO streams {COLUMNS}"));
static INSERT_OR_IGNORE: LazyLock<String> =
    LazyLock::new(|| format!("INSERT OR IGNORE INTO streams {COLUMNS}"));

fn record_of(row: &sqlx::sqlite::SqliteRow) -> Result<StreamRecord, sqlx::Error> {
    let requested: Option<String> = row.try_get("requested")?;
    let peers: String = row.try_get("peers")?;
    let failure_code: Option<String> = row.try_get("failure_code")?;
    let failure_message: Option<String> = row.try_get("failure_message")?;
    Ok(StreamRecord {
        id: row.try_get("id")?,
        user: row.try_get("user_id")?,
        info_hash: row.try_get("info_hash")?,
        name: row.try_get("name")?,
        magnet: row.try_get("magnet")?,
        requested: requested.and_then(|r| serde_json::from_str(&r).ok()),
        peers: serde_json::from_str(&peers).unwrap_or_default(),
        file_index: row
            .try_get::<Option<i64>, _>("file_index")?
            .and_then(|i| usize::try_from(i).ok()),
        created_at: row.try_get::<i64, _>("created_at")?.max(0) as u64,
        token: row.try_get("token")?,
        token_expires_at: row.try_get::<i64, _>("token_expires_at")?.max(0) as u64,
        failure: failure_code.map(|code| Failure {
            code,
            message: failure_message.unwrap_or_default(),
        }),
        last_played_at: row
            .try_get::<Option<i64>, _>("last_played_at")?
            .map(|t| t.max(0) as u64),
    })
}

fn stats_of(row: &sqlx::sqlite::SqliteRow) -> Result<StreamStats, sqlx::Error> {
    let count = |name: &str| -> Result<u64, sqlx::Error> {
        Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0).max(0) as u64)
    };
    Ok(StreamStats {
        bytes_served: count("bytes_served")?,
        requests: count("requests")?,
        stalls: count("stalls")?,
        first_byte_ms: row
            .try_get::<Option<i64>, _>("first_byte_ms")?
            .map(|ms| ms.max(0) as u64),
        watched_seconds: row
            .try_get::<Option<f64>, _>("watched_seconds")?
            .unwrap_or(0.0),
    })
}

fn position_of(row: &sqlx::sqlite::SqliteRow) -> Result<Option<Position>, sqlx::Error> {
    let Some(seconds) = row.try_get::<Option<f64>, _>("position_seconds")? else {
        return Ok(None);
    };
    Ok(Some(Position {
        seconds,
        duration: row.try_get("position_duration")?,
        updated_at: row
            .try_get::<Option<i64>, _>("position_updated_at")?
            .unwrap_or(0)
            .max(0) as u64,
    }))
}

const LOAD: &str = "SELECT s.*, t.bytes_served, t.requests, t.stalls, t.first_byte_ms, \
     t.watched_seconds, p.seconds AS position_seconds, p.duration AS position_duration, \
     p.updated_at AS position_updated_at \
     FROM streams s LEFT JOIN stream_stats t ON t.stream_id = s.id \
     LEFT JOIN positions p ON p.stream_id = s.id ORDER BY s.created_at, s.id";

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn load(&self) -> Result<Vec<Stored>, StoreError> {
        let rows = bounded(sqlx::query(LOAD).fetch_all(&self.pool)).await?;
        rows.iter()
            .map(|row| {
                Ok(Stored {
                    record: record_of(row)?,
                    stats: stats_of(row)?,
                    position: position_of(row)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| StoreError::Query(e.to_string()))
    }

    async fn insert(&self, record: &StreamRecord) -> Result<(), StoreError> {
        bounded(insert_query(false, record).execute(&self.pool)).await?;
        Ok(())
    }

    async fn update(&self, record: &StreamRecord) -> Result<(), StoreError> {
        let query = sqlx::query(
            "UPDATE streams SET name = ?, file_index = ?, token = ?, token_expires_at = ?, \
             failure_code = ?, failure_message = ?, last_played_at = ? WHERE id = ?",
        )
        .bind(&record.name)
        .bind(record.file_index.map(|i| i as i64))
        .bind(&record.token)
        .bind(record.token_expires_at as i64)
        .bind(record.failure.as_ref().map(|f| f.code.clone()))
        .bind(record.failure.as_ref().map(|f| f.message.clone()))
        .bind(record.last_played_at.map(|t| t as i64))
        .bind(&record.id);
        bounded(query.execute(&self.pool)).await?;
        Ok(())
    }

    async fn delete(&self, id: &str) -> Result<(), StoreError> {
        let query = sqlx::query("DELETE FROM streams WHERE id = ?").bind(id);
        bounded(query.execute(&self.pool)).await?;
        Ok(())
    }

    async fn save_stats(&self, stats: &[(String, StreamStats)]) -> Result<(), StoreError> {
        let mut tx = bounded(self.pool.begin()).await?;
        for (id, s) in stats {
            // Only streams that still exist (a deleted one's statistics go with it).
            let query = sqlx::query(
                "INSERT INTO stream_stats (stream_id, bytes_served, requests, stalls, \
                 first_byte_ms, watched_seconds) SELECT ?, ?, ?, ?, ?, ? \
                 WHERE EXISTS (SELECT 1 FROM streams WHERE id = ?) \
                 ON CONFLICT (stream_id) DO UPDATE SET bytes_served = excluded.bytes_served, \
                 requests = excluded.requests, stalls = excluded.stalls, \
                 first_byte_ms = excluded.first_byte_ms, watched_seconds = excluded.watched_seconds",
            )
            .bind(id)
            .bind(s.bytes_served as i64)
            .bind(s.requests as i64)
            .bind(s.stalls as i64)
            .bind(s.first_byte_ms.map(|ms| ms as i64))
            .bind(s.watched_seconds)
            .bind(id);
            bounded(query.execute(&mut *tx)).await?;
        }
        bounded(tx.commit()).await?;
        Ok(())
    }

    async fn save_position(&self, id: &str, position: &Position) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO positions (stream_id, seconds, duration, updated_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (stream_id) DO UPDATE SET seconds = excluded.seconds, \
             duration = excluded.duration, updated_at = excluded.updated_at",
        )
        .bind(id)
        .bind(position.seconds)
        .bind(position.duration)
        .bind(position.updated_at as i64);
        bounded(query.execute(&self.pool)).await?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

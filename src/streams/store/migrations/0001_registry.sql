-- The stream registry: who owns which stream, its playback token, what it resolved to, and
-- (for the web app) playback positions and per-stream statistics.

CREATE TABLE streams (
    id               TEXT PRIMARY KEY NOT NULL,
    user_id          TEXT NOT NULL,
    info_hash        TEXT NOT NULL,
    name             TEXT,
    magnet           TEXT NOT NULL,
    -- The file asked for (JSON: an index or a path), if any.
    requested        TEXT,
    -- Peers named at creation (JSON array of "ip:port").
    peers            TEXT NOT NULL DEFAULT '[]',
    file_index       INTEGER,
    created_at       INTEGER NOT NULL,
    token            TEXT NOT NULL,
    token_expires_at INTEGER NOT NULL,
    failure_code     TEXT,
    failure_message  TEXT,
    -- Unix seconds of the last playback request (streams idle too long are released).
    last_played_at   INTEGER
);

CREATE INDEX streams_by_user ON streams (user_id, created_at);

CREATE TABLE stream_stats (
    stream_id       TEXT PRIMARY KEY NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    bytes_served    INTEGER NOT NULL DEFAULT 0,
    requests        INTEGER NOT NULL DEFAULT 0,
    stalls          INTEGER NOT NULL DEFAULT 0,
    first_byte_ms   INTEGER,
    watched_seconds REAL NOT NULL DEFAULT 0
);

CREATE TABLE positions (
    stream_id  TEXT PRIMARY KEY NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
    seconds    REAL NOT NULL,
    duration   REAL,
    updated_at INTEGER NOT NULL
);

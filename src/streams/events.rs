//! Stream lifecycle events for `GET /api/v1/events`: one broadcast channel for the server,
//! each event tagged with its owner so a subscriber only ever sees its own user's events.

use serde::Serialize;
use tokio::sync::broadcast;

/// Events buffered for slow subscribers before they skip ahead.
const CAPACITY: usize = 1024;

/// Something that happened to a stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamEvent {
    /// `stream.started`, `stream.ready`, `stream.failed`, `stream.error`, `stream.stalled`,
    /// `stream.resumed`, `stream.stopped`, `playback.underrun`, `storage.evicted`, `hls.started`,
    /// `hls.failed`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub stream: String,
    /// Error code for `stream.failed`, `stream.error`, `stream.stalled`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What else the event says (`stream.stopped`: `duration_seconds`, `bytes_served`;
    /// `playback.underrun`: `waited_ms`; `storage.evicted`: `bytes`).
    #[serde(flatten)]
    pub detail: serde_json::Map<String, serde_json::Value>,
    /// Seconds since the Unix epoch.
    pub at: u64,
    /// The owner; used for filtering, never sent.
    #[serde(skip)]
    pub user: String,
}

/// The server's event bus.
pub struct Events {
    tx: broadcast::Sender<StreamEvent>,
}

impl Default for Events {
    fn default() -> Self {
        Self {
            tx: broadcast::channel(CAPACITY).0,
        }
    }
}

impl Events {
    /// Publishes an event (dropped when nobody listens).
    pub fn emit(&self, user: &str, stream: &str, kind: &'static str, code: Option<&str>) {
        self.emit_with(user, stream, kind, code, serde_json::Map::new());
    }

    /// Publishes an event with more to say (`detail`'s fields are added to it).
    pub fn emit_with(
        &self,
        user: &str,
        stream: &str,
        kind: &'static str,
        code: Option<&str>,
        detail: serde_json::Map<String, serde_json::Value>,
    ) {
        let _ = self.tx.send(StreamEvent {
            kind,
            stream: stream.to_owned(),
            code: code.map(str::to_owned),
            detail,
            at: crate::auth::now_secs(),
            user: user.to_owned(),
        });
    }

    /// A new subscription to every event (filter by `user`).
    pub fn subscribe(&self) -> broadcast::Receiver<StreamEvent> {
        self.tx.subscribe()
    }
}

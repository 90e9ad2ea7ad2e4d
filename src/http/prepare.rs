//! `"prepare": "<client>"` on stream creation: what the client's first play needs is made in
//! the background — the probe, and for a client that needs HLS the session (plan, keyframe
//! index, ffmpeg job) and its first segment — so the player's first requests are answered at
//! once. The outcome is an event: `stream.prepared` (with the plan's mode) or `hls.failed`.
//! A prepared HLS session lasts `media.hls_idle_timeout` without a player, like any other.

use std::time::{Duration, Instant};

use super::{hls, media::probe_file, AppState};
use crate::{
    error::AppError,
    media::{
        client::Client,
        plan::{plan, Mode},
    },
    streams::{Playable, PlaybackError, StreamError},
};

/// How long the first segment may take to be ready (several `media.hls_wait`s).
const FIRST_SEGMENT_WITHIN: Duration = Duration::from_secs(300);

/// Prepares `user`'s stream `id` for `client`, reporting the outcome as an event.
pub async fn prepare(state: &AppState, user: &str, id: &str, client: Client) {
    let events = state.streams.events();
    match prepared(state, user, id, client).await {
        Ok(mode) => {
            let mut detail = serde_json::Map::new();
            detail.insert(
                "client".into(),
                serde_json::to_value(client).unwrap_or_default(),
            );
            detail.insert(
                "mode".into(),
                serde_json::to_value(mode).unwrap_or_default(),
            );
            events.emit_with(user, id, "stream.prepared", None, detail);
        }
        Err(err) => {
            tracing::info!(stream = %id, error = %err, "could not prepare playback");
            events.emit(user, id, "hls.failed", Some(err.code.as_str()));
        }
    }
}

async fn prepared(
    state: &AppState,
    user: &str,
    id: &str,
    client: Client,
) -> Result<Mode, AppError> {
    let playable = ready(state, user, id).await?;
    let token = &playable.record.token;
    let probed = probe_file(state, token, &playable.meta, playable.file).await?;
    let decided = plan(&probed, client, state.media.config.allow_video_transcode)
        .map_err(|why| AppError::new(crate::error::ErrorCode::UnsupportedMedia, why.0))?;
    if decided.mode == Mode::Direct || client.plays_anything() {
        return Ok(decided.mode);
    }
    hls::first_segment(state, &playable, client, FIRST_SEGMENT_WITHIN).await?;
    Ok(decided.mode)
}

/// The stream once it has resolved (bounded by `engine.metadata_timeout`).
async fn ready(state: &AppState, user: &str, id: &str) -> Result<Playable, AppError> {
    let deadline = Instant::now() + state.config.engine.metadata_timeout;
    loop {
        let token = state.streams.snapshot(user, id)?.record.token;
        match state.streams.for_playback(&token).await {
            Ok(playable) => return Ok(playable),
            Err(PlaybackError::Stream(StreamError::StillResolving))
                if Instant::now() < deadline => {}
            Err(err) => return Err(err.into()),
        }
    }
}

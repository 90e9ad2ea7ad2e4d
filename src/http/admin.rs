//! `/api/v1/admin`: every user's streams, for callers whose token says `role: admin`. Each
//! admin action is logged with the actor.

use axum::{extract::State, http::StatusCode, Json};
use serde::Serialize;

use super::{
    api::view,
    extract::{Admin, PathParam},
    AppState,
};
use crate::{error::AppError, streams::view::StreamView};

/// A stream with its owner.
#[derive(Serialize)]
pub struct OwnedStream {
    user: String,
    #[serde(flatten)]
    stream: StreamView,
}

#[derive(Serialize)]
pub struct AllStreams {
    streams: Vec<OwnedStream>,
}

/// `GET /api/v1/admin/streams`
pub async fn list_streams(State(state): State<AppState>, Admin(actor): Admin) -> Json<AllStreams> {
    let mut streams = Vec::new();
    for snapshot in state.streams.list_all().await {
        streams.push(OwnedStream {
            user: snapshot.record.user.clone(),
            stream: view(&state, &snapshot).await,
        });
    }
    tracing::info!(actor = %actor.user, count = streams.len(), "admin listed all streams");
    Json(AllStreams { streams })
}

/// `DELETE /api/v1/admin/streams/{id}`
pub async fn delete_stream(
    State(state): State<AppState>,
    Admin(actor): Admin,
    PathParam(id): PathParam<String>,
) -> Result<StatusCode, AppError> {
    let owner = state.streams.delete_any(&id).await?;
    state.hls.end_stream(&id).await;
    tracing::warn!(actor = %actor.user, stream = %id, owner = %owner, "admin deleted a stream");
    Ok(StatusCode::NO_CONTENT)
}

//! `GET /api/v1/events`: server-sent events about the caller's own streams (started, ready,
//! failed, stalled, stopped). Other users' events never reach the connection; it ends when
//! the server shuts down.

use std::convert::Infallible;

use axum::{
    extract::State,
    response::sse::{Event, KeepAlive, Sse},
};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use crate::auth::Caller;

/// `GET /api/v1/events`
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let receiver = state.streams.events().subscribe();
    let user = caller.user;
    let events = futures::stream::unfold(receiver, move |mut receiver| {
        let user = user.clone();
        async move {
            loop {
                match receiver.recv().await {
                    Ok(event) if event.user == user => {
                        let data = serde_json::to_string(&event).unwrap_or_default();
                        let sse = Event::default().event(event.kind).data(data);
                        return Some((Ok(sse), receiver));
                    }
                    Ok(_) | Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let events = events.take_until(state.shutdown.clone().cancelled_owned());
    Sse::new(events).keep_alive(KeepAlive::default())
}

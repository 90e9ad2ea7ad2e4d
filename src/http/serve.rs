//! The accept loop: hyper-util's connection builder with a timer (so slow headers and idle
//! keep-alive sockets time out: `server.idle_timeout`), every connection admitted through
//! [`admission`](super::admission) (per-address and total bounds, idle ones closed to make
//! room, a reserve for `/health` and the API), and a bounded drain on shutdown. axum's own
//! `serve` sets no timer and sleeps a second on every accept error; this replaces it.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::{pin, Pin},
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, HttpBody},
    extract::ConnectInfo,
    http::{header, HeaderValue, Request, Response},
    response::IntoResponse,
    Router,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto::Builder,
};
use tokio::{io::AsyncWriteExt, net::TcpListener};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower::ServiceExt;

use super::admission::{Admitted, Connections, InFlight, Ticket};
use crate::error::{AppError, ErrorCode};

/// How often idle connections are looked for (HTTP/2 has no header timer).
const IDLE_SWEEP: Duration = Duration::from_secs(1);
/// Accept errors (out of descriptors) are logged at most this often.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown`, then lets open connections finish (the caller
/// bounds that wait).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    connections: Arc<Connections>,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let tasks = TaskTracker::new();
    let sweeper = tokio::spawn(sweep_idle(
        connections.clone(),
        idle_timeout,
        shutdown.clone(),
    ));
    let mut last_error: Option<tokio::time::Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors: make room by closing the longest-idle connection
                // instead of pausing the whole server.
                let shed = connections.shed_one();
                if last_error.is_none_or(|at| at.elapsed() > ERROR_LOG_EVERY) {
                    tracing::warn!(error = %err, shed, "cannot accept a connection");
                    last_error = Some(tokio::time::Instant::now());
                }
                if !shed {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match connections.admit(peer.ip()) {
            Admitted::Serve(ticket) => {
                let app = app.clone();
                let shutdown = shutdown.clone();
                tasks.spawn(connection(
                    stream,
                    peer,
                    app,
                    ticket,
                    idle_timeout,
                    shutdown,
                ));
            }
            Admitted::Refused => {
                tasks.spawn(refuse(stream));
            }
        }
    }
    sweeper.abort();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

async fn sweep_idle(connections: Arc<Connections>, idle: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(IDLE_SWEEP);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => connections.close_idle(idle),
        }
    }
}

/// Serves one connection until it ends, is closed to make room, or the server shuts down.
async fn connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    ticket: Ticket,
    idle_timeout: Duration,
    shutdown: CancellationToken,
) {
    let ticket = Arc::new(ticket);
    let close = ticket.close.clone();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (app, ticket) = (app.clone(), ticket.clone());
        async move { Ok::<_, Infallible>(handle(app, &ticket, peer, request).await) }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout);
    builder.http2().timer(TokioTimer::new());
    let mut conn = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(err) = result {
                tracing::debug!(error = %err, "connection ended");
            }
        }
        // Closed to make room: it was idle, so nothing is cut short.
        _ = close.cancelled() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(
    app: Router,
    ticket: &Ticket,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let in_flight = ticket.request();
    request.extensions_mut().insert(ConnectInfo(peer));
    let request = request.map(Body::new);
    let mut response = if ticket.reserve && !reserve_route(request.uri().path()) {
        AppError::new(
            ErrorCode::ServerBusy,
            "the server is at its connection limit; retry shortly",
        )
        .retry_after(1)
        .into_response()
    } else {
        match app.oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        }
    };
    if ticket.reserve {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response.map(|body| {
        Body::new(Tracked {
            body,
            _in_flight: in_flight,
        })
    })
}

/// Routes a reserve connection may use: liveness, readiness, metrics and the API.
fn reserve_route(path: &str) -> bool {
    matches!(path, "/health" | "/ready" | "/metrics") || path.starts_with("/api/")
}

/// Answers a refused connection with a 503 and closes it.
async fn refuse(mut stream: tokio::net::TcpStream) {
    const BODY: &str = r#"{"error":{"code":"SERVER_BUSY","message":"the server is at its connection limit; retry shortly"}}"#;
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\ncache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let write = stream.write_all(response.as_bytes());
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

/// A response body that keeps its request counted as in flight until it is done or dropped.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl HttpBody for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_serves_health_and_the_api_only() {
        for path in ["/health", "/ready", "/metrics", "/api/v1/streams"] {
            assert!(reserve_route(path), "{path}");
        }
        for path in ["/s/token/film.mkv", "/", "/healthz"] {
            assert!(!reserve_route(path), "{path}");
        }
    }
}

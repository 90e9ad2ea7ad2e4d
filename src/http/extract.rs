//! Request policy as extractors: the client's address, the API caller from
//! `Authorization: Bearer` (with the rate limits and brute-force block that go with it), the
//! admin, anonymous requests, and the body of a stream creation or parse (JSON magnet, or raw
//! .torrent bytes), each bounded by `[limits]` and refused with our error JSON, never axum's
//! default text.

use std::{
    convert::Infallible,
    net::{IpAddr, Ipv4Addr, SocketAddr},
};

use axum::{
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use bytes::Bytes;
use serde::Deserialize;

use super::AppState;
use crate::{
    auth::{AuthError, Caller, Role},
    engine::{
        files::FileSelector,
        source::{parse_magnet, parse_torrent, TorrentSource},
    },
    error::{AppError, ErrorCode},
    limits::rate::Wait,
};

/// Most peers a request may name.
const MAX_PEERS: usize = 64;

/// The client's address: the socket peer, or the forwarded client behind a trusted proxy.
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |info| info.0.ip());
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok());
        Ok(Self(state.limits.proxies.client_ip(peer, forwarded)))
    }
}

/// 429 `RATE_LIMITED` with `Retry-After`.
pub fn limited(wait: Wait) -> AppError {
    AppError::new(ErrorCode::RateLimited, "too many requests; retry later")
        .retry_after(wait.retry_after_secs())
}

/// The brute-force block, applied to a credential that failed to verify: an address past its
/// failure budget gets a cheap 429 (nothing logged, nothing looked up); otherwise the failure
/// is counted (an expired but genuine token is not a guess) and the one that crosses the
/// budget answers 429 too. A credential that verifies never comes here, so a stale client
/// behind a shared address never locks out the others there.
pub fn count_refusal(state: &AppState, ip: IpAddr, err: &AuthError) -> Option<AppError> {
    let reason = match err {
        AuthError::Missing => "missing",
        AuthError::Invalid => "invalid",
        AuthError::Refused(_) => "refused",
        AuthError::Expired => "expired",
    };
    metrics::counter!(crate::telemetry::names::AUTH_FAILURES, "reason" => reason).increment(1);
    if !matches!(err, AuthError::Invalid | AuthError::Refused(_)) {
        return None;
    }
    let rate = &state.limits.rate;
    if let Some(wait) = rate.blocked(ip) {
        return Some(limited(wait));
    }
    tracing::info!(%ip, reason = %err, "authentication failed");
    let wait = rate.auth_failed(ip)?;
    tracing::warn!(%ip, "too many failed authentications; refusing this address's failing credentials");
    Some(limited(wait))
}

fn refused(state: &AppState, ip: IpAddr, err: AuthError) -> AppError {
    count_refusal(state, ip, &err).unwrap_or_else(|| err.into())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        let rate = &state.limits.rate;
        let token = match bearer(parts) {
            Ok(token) => token,
            Err(AuthError::Missing) => {
                rate.unauthenticated.check(&ip).map_err(limited)?;
                count_refusal(state, ip, &AuthError::Missing);
                return Err(AuthError::Missing.into());
            }
            Err(err) => return Err(refused(state, ip, err)),
        };
        let caller = state
            .api_keys
            .verify(token)
            .map_err(|err| refused(state, ip, err))?;
        rate.api.check(&caller.user).map_err(limited)?;
        Ok(caller)
    }
}

fn bearer(parts: &Parts) -> Result<&str, AuthError> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let value = header.to_str().map_err(|_| AuthError::Invalid)?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or(AuthError::Invalid)?
        .trim();
    if token.is_empty() {
        return Err(AuthError::Missing);
    }
    Ok(token)
}

/// An API caller with `role: admin`; anyone else gets 403 `FORBIDDEN`.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        if caller.role != Role::Admin {
            tracing::warn!(user = %caller.user, path = %parts.uri.path(), "non-admin on an admin route");
            return Err(AppError::new(
                ErrorCode::Forbidden,
                "this endpoint is for administrators",
            ));
        }
        Ok(Self(caller))
    }
}

/// A request that carries no checked credential (API description, unknown routes): counted
/// against the client IP's `limits.unauthenticated_per_minute`.
pub struct Anonymous;

impl FromRequestParts<AppState> for Anonymous {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let Ok(ClientIp(ip)) = ClientIp::from_request_parts(parts, state).await;
        state
            .limits
            .rate
            .unauthenticated
            .check(&ip)
            .map_err(limited)?;
        Ok(Self)
    }
}

/// A torrent reference from a request body, with the optional file, peers, and the client to
/// prepare playback for.
pub struct TorrentRequest {
    pub source: TorrentSource,
    pub file: Option<FileSelector>,
    pub peers: Vec<SocketAddr>,
    pub prepare: Option<crate::media::client::Client>,
}

#[derive(Deserialize)]
struct JsonBody {
    magnet: String,
    #[serde(default)]
    file: Option<FileSelector>,
    #[serde(default)]
    peers: Vec<String>,
    #[serde(default)]
    prepare: Option<String>,
}

/// `prepare`'s client, if given.
fn prepare_of(name: Option<&str>) -> Result<Option<crate::media::client::Client>, AppError> {
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    crate::media::client::Client::from_name(name)
        .map(Some)
        .ok_or_else(|| {
            bad(format!(
                "prepare {name:?} is not a client: browser, safari, mpv or vlc"
            ))
        })
}

impl FromRequest<AppState> for TorrentRequest {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AppError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let limits = state.streams.engine().limits();
        if content_type.starts_with("application/x-bittorrent") {
            let query = req.uri().query().unwrap_or("").to_owned();
            let bytes =
                read_body(req, limits.max_torrent_bytes, ErrorCode::TorrentTooLarge).await?;
            let source = parse_torrent(bytes, &limits)?;
            let prepare = prepare_of(query_values(&query, "prepare").next().as_deref())?;
            return Ok(Self {
                source,
                prepare,
                file: file_from_query(&query),
                peers: parse_peers(
                    query_values(&query, "peers")
                        .flat_map(|v| v.split(',').map(str::to_owned).collect::<Vec<_>>()),
                )?,
            });
        }
        if !content_type.is_empty() && !content_type.starts_with("application/json") {
            return Err(bad("send JSON or application/x-bittorrent"));
        }
        let max = state.config.limits.max_json_bytes;
        let bytes = read_body(req, max, ErrorCode::BadRequest).await?;
        let body: JsonBody =
            serde_json::from_slice(&bytes).map_err(|e| bad(format!("invalid JSON body: {e}")))?;
        if body.peers.len() > MAX_PEERS {
            return Err(bad(format!("at most {MAX_PEERS} peers")));
        }
        let peers = body
            .peers
            .iter()
            .map(|p| {
                p.parse::<SocketAddr>()
                    .map_err(|_| bad(format!("peer {p:?} is not ip:port")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            source: parse_magnet(&body.magnet, &limits)?,
            prepare: prepare_of(body.prepare.as_deref())?,
            file: body.file,
            peers,
        })
    }
}

fn query_values<'a>(query: &'a str, key: &'a str) -> impl Iterator<Item = String> + 'a {
    url::form_urlencoded::parse(query.as_bytes())
        .filter(move |(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn file_from_query(query: &str) -> Option<FileSelector> {
    query_values(query, "file")
        .next()
        .map(|f| match f.parse::<usize>() {
            Ok(index) => FileSelector::Index(index),
            Err(_) => FileSelector::Path(f),
        })
}

fn parse_peers(peers: impl IntoIterator<Item = String>) -> Result<Vec<SocketAddr>, AppError> {
    let peers: Vec<String> = peers
        .into_iter()
        .filter(|p| !p.is_empty())
        .take(MAX_PEERS + 1)
        .collect();
    if peers.len() > MAX_PEERS {
        return Err(bad(format!("at most {MAX_PEERS} peers")));
    }
    peers
        .iter()
        .map(|p| {
            p.parse()
                .map_err(|_| bad(format!("peer {p:?} is not ip:port")))
        })
        .collect()
}

async fn read_body(req: Request, limit: usize, too_large: ErrorCode) -> Result<Bytes, AppError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|_| AppError::new(too_large, format!("request body larger than {limit} bytes")))
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::new(ErrorCode::BadRequest, message)
}

/// A path parameter whose rejection is our error JSON (`BAD_REQUEST`).
#[derive(axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(AppError))]
pub struct PathParam<T>(pub T);

impl From<axum::extract::rejection::PathRejection> for AppError {
    fn from(rejection: axum::extract::rejection::PathRejection) -> Self {
        AppError::new(ErrorCode::BadRequest, rejection.body_text())
    }
}

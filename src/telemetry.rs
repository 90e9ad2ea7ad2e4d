//! What the server measures, through the `metrics` facade (librqbit's uTP crate reports
//! through it too): the metric names and their help texts, the Prometheus recorder (installed
//! once per process; a second server in the same process shares it) with explicit histogram
//! buckets, and the pure functions that turn requests into bounded labels.
//!
//! Labels never carry a user, a stream, an info-hash or a token: routes are templates, statuses
//! are classes, limits and reasons come from fixed lists.

use std::sync::OnceLock;

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, histogram, Counter, Histogram,
    Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Metric names (`magnetar_` prefix, base units, `_total` counters).
pub mod names {
    pub const HTTP_REQUESTS: &str = "magnetar_http_requests_total";
    pub const HTTP_DURATION: &str = "magnetar_http_request_duration_seconds";
    pub const SERVED_BYTES: &str = "magnetar_served_bytes_total";
    pub const CONNECTIONS: &str = "magnetar_connections";
    pub const CONNECTIONS_REFUSED: &str = "magnetar_connections_refused_total";
    pub const STREAMS: &str = "magnetar_streams";
    pub const USERS: &str = "magnetar_users";
    pub const TORRENTS: &str = "magnetar_torrents";
    pub const PEERS: &str = "magnetar_peers";
    pub const DOWNLOADED: &str = "magnetar_torrent_downloaded_bytes_total";
    pub const UPLOADED: &str = "magnetar_torrent_uploaded_bytes_total";
    pub const FIRST_BYTE: &str = "magnetar_first_byte_seconds";
    pub const READER_WAIT: &str = "magnetar_reader_wait_seconds";
    pub const STALLS: &str = "magnetar_stalls_total";
    pub const HLS_SESSIONS: &str = "magnetar_hls_sessions";
    pub const FFMPEG_JOBS: &str = "magnetar_ffmpeg_jobs";
    pub const SEGMENT_WAIT: &str = "magnetar_hls_segment_wait_seconds";
    pub const TRANSCODE_SLOTS: &str = "magnetar_transcode_slots_in_use";
    pub const CACHE_HITS: &str = "magnetar_read_cache_hits_total";
    pub const CACHE_MISSES: &str = "magnetar_read_cache_misses_total";
    pub const CACHE_BYTES: &str = "magnetar_read_cache_bytes";
    pub const DISK_USED: &str = "magnetar_disk_used_bytes";
    pub const DISK_QUOTA: &str = "magnetar_disk_quota_bytes";
    pub const EVICTIONS: &str = "magnetar_evictions_total";
    pub const RATE_LIMITED: &str = "magnetar_rate_limited_total";
    pub const AUTH_FAILURES: &str = "magnetar_auth_failures_total";
    pub const BUILD_INFO: &str = "magnetar_build_info";
}

/// Buckets (seconds) for waits a player feels: from a cached block to a stalled swarm.
const WAIT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Fewer buckets for request durations, which are labelled by route and status class.
const HTTP_BUCKETS: &[f64] = &[0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0, 60.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static HOT: OnceLock<Hot> = OnceLock::new();

/// The metrics recorded on the request path, registered once so that recording one is an
/// atomic update with no lookup. `None` (nothing recorded at all) when metrics are off.
pub fn hot() -> Option<&'static Hot> {
    HOT.get()
}

/// Request-path metric handles.
pub struct Hot {
    pub served_bytes: Counter,
    pub first_byte: Histogram,
    pub reader_wait: Histogram,
    pub stalls: Counter,
    pub segment_wait: Histogram,
    pub cache_hits: Counter,
    pub cache_misses: Counter,
    /// `[route][method][status]`, registered on first use (unused ones are not rendered).
    requests: Box<[OnceLock<Counter>]>,
    /// `[route][status]`, likewise.
    durations: Box<[OnceLock<Histogram>]>,
}

impl Hot {
    fn new() -> Self {
        use names::*;
        let routes = ROUTE_LABELS.len();
        Self {
            served_bytes: counter!(SERVED_BYTES),
            first_byte: histogram!(FIRST_BYTE),
            reader_wait: histogram!(READER_WAIT),
            stalls: counter!(STALLS),
            segment_wait: histogram!(SEGMENT_WAIT),
            cache_hits: counter!(CACHE_HITS),
            cache_misses: counter!(CACHE_MISSES),
            requests: (0..routes * METHODS.len() * STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
            durations: (0..routes * STATUSES.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// Counts an answered request (indices from [`route_index`], [`method_index`],
    /// [`status_index`]) and how long it took to its headers.
    pub fn request(&self, route: usize, method: usize, status: usize, seconds: f64) {
        let (r, m, s) = (route, method, status);
        let counter = self.requests[(r * METHODS.len() + m) * STATUSES.len() + s].get_or_init(|| {
            counter!(names::HTTP_REQUESTS, "route" => ROUTE_LABELS[r], "method" => METHODS[m], "status" => STATUSES[s])
        });
        counter.increment(1);
        let duration = self.durations[r * STATUSES.len() + s].get_or_init(|| {
            histogram!(names::HTTP_DURATION, "route" => ROUTE_LABELS[r], "status" => STATUSES[s])
        });
        duration.record(seconds);
    }
}

/// Installs the Prometheus recorder once per process (`enabled` is read on the first call
/// only: a process that started without metrics records none) and describes every metric;
/// `None` when metrics are off or another recorder was installed first.
pub fn install(enabled: bool) -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            if !enabled {
                return None;
            }
            let recorder = PrometheusBuilder::new()
                .set_buckets(WAIT_BUCKETS)
                .ok()?
                .set_buckets_for_metric(Matcher::Full(names::HTTP_DURATION.into()), HTTP_BUCKETS)
                .ok()?
                .install_recorder();
            match recorder {
                Ok(handle) => {
                    describe();
                    metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION"))
                        .set(1.0);
                    let _ = HOT.set(Hot::new());
                    register_known_labels();
                    Some(handle)
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot install the metrics recorder");
                    None
                }
            }
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets (the exporter keeps
/// raw samples until then, so without it memory grows with every request between scrapes).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Folds histogram samples every [`UPKEEP_EVERY`] until `shutdown`.
pub fn spawn_upkeep(handle: PrometheusHandle, shutdown: tokio_util::sync::CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_EVERY);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => handle.run_upkeep(),
            }
        }
    });
}

fn describe() {
    use names::*;
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by route template, method and status class"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from a request to its response headers, by route template and status class"
    );
    describe_counter!(
        SERVED_BYTES,
        Unit::Bytes,
        "Media bytes sent to players (files, HLS segments)"
    );
    describe_gauge!(CONNECTIONS, "HTTP connections open");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused at the connection bound"
    );
    describe_gauge!(STREAMS, "Streams in the registry, by state");
    describe_gauge!(USERS, "Users with at least one stream");
    describe_gauge!(TORRENTS, "Torrents in the engine");
    describe_gauge!(PEERS, "Peers connected, all torrents");
    describe_counter!(
        DOWNLOADED,
        Unit::Bytes,
        "Bytes downloaded and verified by torrents"
    );
    describe_counter!(UPLOADED, Unit::Bytes, "Bytes uploaded to peers");
    describe_histogram!(
        FIRST_BYTE,
        Unit::Seconds,
        "Time from a player's range request to the first byte of its body"
    );
    describe_histogram!(
        READER_WAIT,
        Unit::Seconds,
        "Time a reader waited for the next piece of a file"
    );
    describe_counter!(
        STALLS,
        "Player requests ended for lack of data from the swarm"
    );
    describe_gauge!(HLS_SESSIONS, "HLS sessions alive");
    describe_gauge!(FFMPEG_JOBS, "ffmpeg HLS jobs, by state (running, paused)");
    describe_histogram!(
        SEGMENT_WAIT,
        Unit::Seconds,
        "Time an HLS segment request waited for ffmpeg"
    );
    describe_gauge!(
        TRANSCODE_SLOTS,
        "Video transcode slots in use (media.max_transcodes)"
    );
    describe_counter!(CACHE_HITS, "Read-cache blocks found in memory");
    describe_counter!(CACHE_MISSES, "Read-cache blocks read from disk");
    describe_gauge!(CACHE_BYTES, Unit::Bytes, "Bytes held by the read cache");
    describe_gauge!(
        DISK_USED,
        Unit::Bytes,
        "Bytes torrents occupy on disk (allocated blocks)"
    );
    describe_gauge!(DISK_QUOTA, Unit::Bytes, "storage.max_disk_bytes in force");
    describe_counter!(
        EVICTIONS,
        "Torrents whose data was evicted to stay under the disk quota"
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by a rate limit or quota, by limit"
    );
    describe_counter!(AUTH_FAILURES, "Credentials refused, by reason");
    describe_gauge!(BUILD_INFO, "Build information (always 1)");
}

/// Counters whose labels come from fixed lists, registered at 0 so a scrape shows them before
/// anything happened.
fn register_known_labels() {
    for limit in LIMITS {
        counter!(names::RATE_LIMITED, "limit" => *limit).increment(0);
    }
    for reason in ["missing", "invalid", "refused", "expired"] {
        counter!(names::AUTH_FAILURES, "reason" => reason).increment(0);
    }
    counter!(names::EVICTIONS).increment(0);
    counter!(names::CONNECTIONS_REFUSED).increment(0);
}

/// Every `limit` label of `magnetar_rate_limited_total`.
pub const LIMITS: &[&str] = &[
    "api",
    "stream_creations",
    "content",
    "unauthenticated",
    "auth_failures",
    "auth_block",
    "streams_per_user",
    "streams_total",
    "readers",
    "disk_quota",
    "disk_full",
];

/// Route labels: the router's templates, the playback catch-all told apart by what it serves
/// (never the token, never a file name), and two for the rest.
const ROUTE_LABELS: &[&str] = &[
    "/health",
    "/ready",
    "/metrics",
    "/api/v1/openapi.yaml",
    "/api/v1/streams",
    "/api/v1/streams/{id}",
    "/api/v1/streams/{id}/refresh",
    "/api/v1/streams/{id}/position",
    "/api/v1/torrents/parse",
    "/api/v1/events",
    "/api/v1/admin/streams",
    "/api/v1/admin/streams/{id}",
    "/api/v1/admin/stats",
    "/s/{token}/probe",
    "/s/{token}/play",
    "/s/{token}/playlist.m3u",
    "/s/{token}/subs/{id}",
    "/s/{token}/hls/master.m3u8",
    "/s/{token}/hls/subs/{name}",
    "/s/{token}/hls/{rendition}/index.m3u8",
    "/s/{token}/hls/{rendition}/init.mp4",
    "/s/{token}/hls/{rendition}/{segment}",
    "/s/{token}/{file}",
    "other",
    "unmatched",
];
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "other"];
const STATUSES: &[&str] = &["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The route label of a request (see [`route_index`]).
pub fn route_label(matched: Option<&str>, path: &str) -> &'static str {
    ROUTE_LABELS[route_index(matched, path)]
}

/// The index of a request's route label: axum's matched template, with the playback
/// catch-all told apart by what it serves.
pub fn route_index(matched: Option<&str>, path: &str) -> usize {
    let label = match matched {
        Some("/s/{token}/{*rest}") => playback_route(path),
        Some(template) => template,
        None => "unmatched",
    };
    ROUTE_LABELS
        .iter()
        .position(|r| *r == label)
        .unwrap_or(ROUTE_LABELS.len() - 2)
}

fn playback_route(path: &str) -> &'static str {
    let rest = path
        .strip_prefix("/s/")
        .and_then(|p| p.split_once('/'))
        .map_or("", |(_, rest)| rest);
    match rest {
        "probe" => "/s/{token}/probe",
        "play" => "/s/{token}/play",
        "playlist.m3u" => "/s/{token}/playlist.m3u",
        r if r.starts_with("subs/") => "/s/{token}/subs/{id}",
        "hls/master.m3u8" => "/s/{token}/hls/master.m3u8",
        r if r.starts_with("hls/subs/") => "/s/{token}/hls/subs/{name}",
        r if r.starts_with("hls/") && r.ends_with(".m3u8") => {
            "/s/{token}/hls/{rendition}/index.m3u8"
        }
        r if r.starts_with("hls/") && r.ends_with("init.mp4") => {
            "/s/{token}/hls/{rendition}/init.mp4"
        }
        r if r.starts_with("hls/") => "/s/{token}/hls/{rendition}/{segment}",
        _ => "/s/{token}/{file}",
    }
}

/// The index of a method's label.
pub fn method_index(method: &str) -> usize {
    METHODS
        .iter()
        .position(|m| *m == method)
        .unwrap_or(METHODS.len() - 1)
}

/// The index of a status code's class label.
pub fn status_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

/// `2xx`, `4xx`… for a status code.
pub fn status_class(status: u16) -> &'static str {
    STATUSES[status_index(status)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates_never_tokens_or_names() {
        let cases = [
            (Some("/health"), "/health", "/health"),
            (
                Some("/api/v1/streams/{id}"),
                "/api/v1/streams/st_1",
                "/api/v1/streams/{id}",
            ),
            (
                Some("/s/{token}/{*rest}"),
                "/s/eyJ.x.y/Movie.2019.mkv",
                "/s/{token}/{file}",
            ),
            (
                Some("/s/{token}/{*rest}"),
                "/s/t/hls/browser/12.m4s",
                "/s/{token}/hls/{rendition}/{segment}",
            ),
            (
                Some("/s/{token}/{*rest}"),
                "/s/t/hls/browser/index.m3u8",
                "/s/{token}/hls/{rendition}/index.m3u8",
            ),
            (
                Some("/s/{token}/{*rest}"),
                "/s/t/hls/master.m3u8",
                "/s/{token}/hls/master.m3u8",
            ),
            (
                Some("/s/{token}/{*rest}"),
                "/s/t/hls/subs/e2.vtt",
                "/s/{token}/hls/subs/{name}",
            ),
            (
                Some("/s/{token}/{*rest}"),
                "/s/t/subs/0.vtt",
                "/s/{token}/subs/{id}",
            ),
            (Some("/s/{token}/{*rest}"), "/s/t/probe", "/s/{token}/probe"),
            (Some("/something/{new}"), "/something/x", "other"),
            (None, "/nope/../etc/passwd", "unmatched"),
        ];
        for (matched, path, want) in cases {
            assert_eq!(route_label(matched, path), want, "{path}");
        }
    }

    #[test]
    fn statuses_are_classes() {
        let cases = [
            (200, "2xx"),
            (206, "2xx"),
            (302, "3xx"),
            (404, "4xx"),
            (429, "4xx"),
            (503, "5xx"),
            (507, "5xx"),
        ];
        for (status, want) in cases {
            assert_eq!(status_class(status), want);
        }
    }
}

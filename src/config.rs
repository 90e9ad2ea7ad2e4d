//! Configuration: the embedded `config/default.toml`, then an optional file, then environment
//! variables `MAGNETAR__SECTION__KEY`, merged by figment and validated once into a [`Config`].
//!
//! This module owns loading, validation and the redacted printout; it does not create folders
//! or secrets (see `auth::secrets`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    providers::{Env, Format, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// The defaults, compiled in so the binary runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

/// A configuration problem, naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Load(Box<figment::Error>),
    #[error("invalid value for `{key}`: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// The validated configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub engine: EngineConfig,
    pub auth: AuthConfig,
    pub limits: LimitsConfig,
    pub media: MediaConfig,
    pub metrics: MetricsConfig,
}

/// `[metrics]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Record metrics and serve `/metrics` (off: nothing is recorded, `/metrics` is 404).
    pub enabled: bool,
    /// Networks (IPs or CIDR ranges) that may read `/metrics` without a token.
    pub allow: Vec<String>,
}

/// `[media]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaConfig {
    pub ffmpeg_path: PathBuf,
    pub ffprobe_path: PathBuf,
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    pub max_probes: usize,
    pub allow_video_transcode: bool,
    pub max_transcodes: usize,
    #[serde(with = "humantime_serde")]
    pub hls_idle_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub hls_wait: Duration,
    /// How long extracting one embedded subtitle track (reading the whole file) may take.
    #[serde(with = "humantime_serde")]
    pub subtitle_timeout: Duration,
}

/// `[server]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: String,
    /// Proxies (IPs or CIDR ranges) whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<String>,
    /// Origins allowed by CORS (`*` for any); empty sends no CORS headers.
    pub cors_origins: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// A connection must send a request's headers within this (idle keep-alive sockets and
    /// slow clients alike), or it is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Connections open at once (the reserve comes on top); clamped to the descriptor limit.
    pub max_connections: usize,
    /// Connections from one client address (trusted proxies are exempt).
    pub max_connections_per_ip: usize,
    /// Extra connections for `/health`, `/ready`, `/metrics` and the API when every other
    /// connection is busy.
    pub connection_reserve: usize,
}

/// `[storage]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub data_dir: PathBuf,
    pub delete_data_on_release: bool,
    pub read_cache_bytes: u64,
    /// What torrents may occupy on disk; 0: 90% of what is free at start (plus what they
    /// occupy already).
    pub max_disk_bytes: u64,
    /// Streams nobody played for this long are released; 0s: never.
    #[serde(with = "humantime_serde")]
    pub stream_idle_ttl: Duration,
}

/// `[engine]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    pub dht: bool,
    pub lsd: bool,
    pub upnp: bool,
    pub peer_listen: String,
    #[serde(with = "humantime_serde")]
    pub metadata_wait: Duration,
    #[serde(with = "humantime_serde")]
    pub metadata_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub first_byte_wait: Duration,
    pub max_readers: usize,
    #[serde(with = "humantime_serde")]
    pub reader_wait: Duration,
    pub request_window: usize,
    pub head_pin_bytes: u64,
    pub tail_pin_bytes: u64,
    pub peer_limit: usize,
}

/// `[auth]`
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Algorithms accepted for API tokens: `HS256`, `RS256`, `EdDSA`.
    pub algorithms: Vec<String>,
    pub jwt_secret: String,
    pub public_key_file: PathBuf,
    pub private_key_file: PathBuf,
    pub issuer: String,
    pub audience: String,
    pub playback_secret: String,
    #[serde(with = "humantime_serde")]
    pub playback_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("algorithms", &self.algorithms)
            .field("jwt_secret", &redact(&self.jwt_secret))
            .field("public_key_file", &self.public_key_file)
            .field("private_key_file", &self.private_key_file)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("playback_secret", &redact(&self.playback_secret))
            .field("playback_ttl", &self.playback_ttl)
            .field("leeway", &self.leeway)
            .finish()
    }
}

/// `[limits]`
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub api_per_minute: u32,
    pub api_burst: u32,
    pub streams_per_minute: u32,
    pub content_per_second: u32,
    pub content_burst: u32,
    pub unauthenticated_per_minute: u32,
    pub auth_failures_per_minute: u32,
    pub max_streams_per_user: usize,
    pub max_streams: usize,
    pub user_egress_bps: u64,
    pub torrent_download_bps: u32,
    pub torrent_upload_bps: u32,
    pub max_torrent_bytes: usize,
    pub max_json_bytes: usize,
    pub max_files: usize,
    pub max_magnet_len: usize,
}

const REDACTED: &str = "<redacted>";

fn redact(secret: &str) -> &str {
    if secret.is_empty() {
        ""
    } else {
        REDACTED
    }
}

impl Config {
    /// Loads defaults < `file` < environment, then validates.
    pub fn load(file: Option<&std::path::Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Toml::string(DEFAULT_TOML));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        figment = figment.merge(Env::prefixed("MAGNETAR__").split("__"));
        Self::from_figment(figment)
    }

    /// The embedded defaults alone (tests, demo), still validated.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(DEFAULT_TOML)))
    }

    fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment
            .extract()
            .map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()
    }

    /// Cross-field and range checks; normalises `public_url`.
    pub fn validate(mut self) -> Result<Self, ConfigError> {
        let invalid = |key, reason: &str| ConfigError::Invalid {
            key,
            reason: reason.to_owned(),
        };
        let public_url = self.server.public_url.trim().trim_end_matches('/');
        if !public_url.is_empty() {
            let url = url::Url::parse(public_url)
                .map_err(|e| invalid("server.public_url", &e.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(invalid("server.public_url", "must be an http(s) URL"));
            }
        }
        self.server.public_url = public_url.to_owned();
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(invalid("storage.data_dir", "must not be empty"));
        }
        self.peer_listen_addr()
            .map_err(|e| invalid("engine.peer_listen", &e.to_string()))?;
        if self.engine.max_readers < 200 {
            return Err(invalid("engine.max_readers", "must be at least 200"));
        }
        if self.server.max_connections == 0 || self.server.max_connections_per_ip == 0 {
            return Err(invalid(
                "server.max_connections",
                "max_connections and max_connections_per_ip must be at least 1",
            ));
        }
        if self.engine.request_window == 0 {
            return Err(invalid("engine.request_window", "must be at least 1"));
        }
        if self.media.max_transcodes == 0 {
            return Err(invalid(
                "media.max_transcodes",
                "must be at least 1 (turn video transcoding off with media.allow_video_transcode)",
            ));
        }
        if self.media.max_probes == 0 {
            return Err(invalid("media.max_probes", "must be at least 1"));
        }
        for (key, value) in [
            ("media.probe_timeout", self.media.probe_timeout),
            ("media.hls_idle_timeout", self.media.hls_idle_timeout),
            ("media.hls_wait", self.media.hls_wait),
            ("media.subtitle_timeout", self.media.subtitle_timeout),
            ("engine.metadata_wait", self.engine.metadata_wait),
            ("engine.metadata_timeout", self.engine.metadata_timeout),
            ("engine.stall_timeout", self.engine.stall_timeout),
            ("auth.playback_ttl", self.auth.playback_ttl),
            ("server.idle_timeout", self.server.idle_timeout),
        ] {
            if value.is_zero() {
                return Err(invalid(key, "must be longer than 0s"));
            }
        }
        crate::limits::client_ip::TrustedProxies::parse(&self.server.trusted_proxies)
            .map_err(|e| invalid("server.trusted_proxies", &e))?;
        crate::limits::client_ip::TrustedProxies::parse(&self.metrics.allow)
            .map_err(|e| invalid("metrics.allow", &e))?;
        for origin in &self.server.cors_origins {
            if origin != "*" && !is_origin(origin) {
                return Err(invalid(
                    "server.cors_origins",
                    &format!("{origin:?} is not \"*\" or an origin like https://example.com"),
                ));
            }
        }
        self.validate_auth()?;
        if self.engine.metadata_timeout < self.engine.metadata_wait {
            return Err(invalid(
                "engine.metadata_timeout",
                "must not be shorter than engine.metadata_wait",
            ));
        }
        Ok(self)
    }

    fn validate_auth(&self) -> Result<(), ConfigError> {
        let invalid = |key, reason: String| ConfigError::Invalid { key, reason };
        let auth = &self.auth;
        if auth.algorithms.is_empty() {
            return Err(invalid(
                "auth.algorithms",
                "list at least one algorithm".into(),
            ));
        }
        for name in &auth.algorithms {
            if !matches!(name.as_str(), "HS256" | "RS256" | "EdDSA") {
                return Err(invalid(
                    "auth.algorithms",
                    format!("{name:?} is not one of \"HS256\", \"RS256\", \"EdDSA\""),
                ));
            }
        }
        let asymmetric = auth.algorithms.iter().any(|a| a != "HS256");
        if asymmetric && auth.public_key_file.as_os_str().is_empty() {
            return Err(invalid(
                "auth.public_key_file",
                "required when auth.algorithms lists RS256 or EdDSA".into(),
            ));
        }
        Ok(())
    }

    /// `engine.peer_listen` parsed; `None` when listening is off.
    pub fn peer_listen_addr(&self) -> Result<Option<SocketAddr>, std::net::AddrParseError> {
        let raw = self.engine.peer_listen.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        raw.parse().map(Some)
    }

    /// The effective configuration as TOML, secrets redacted.
    pub fn to_redacted_toml(&self) -> String {
        let mut shown = self.clone();
        shown.auth.jwt_secret = redact(&self.auth.jwt_secret).to_owned();
        shown.auth.playback_secret = redact(&self.auth.playback_secret).to_owned();
        toml::to_string_pretty(&shown).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// `scheme://host[:port]` with nothing after it, as browsers send in `Origin`.
fn is_origin(origin: &str) -> bool {
    url::Url::parse(origin).is_ok_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host().is_some()
            && origin.trim_end_matches('/') == u.origin().ascii_serialization()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_validate() {
        let config = Config::defaults().expect("defaults are valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert!(config.engine.dht);
        assert!(config.server.public_url.is_empty());
    }

    #[test]
    fn redacted_printout_hides_secrets() {
        let mut config = Config::defaults().unwrap();
        config.auth.jwt_secret = "hunter2-very-secret".into();
        let text = config.to_redacted_toml();
        assert!(!text.contains("hunter2"));
        assert!(text.contains(REDACTED));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let figment = Figment::from(Toml::string(DEFAULT_TOML))
            .merge(Toml::string("[engine]\nmetadata_wait = \"soon\""));
        let err = Config::from_figment(figment).unwrap_err().to_string();
        assert!(err.contains("metadata_wait"), "{err}");
        let mut config = Config::defaults().unwrap();
        config.engine.peer_listen = "nope".into();
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("engine.peer_listen"), "{err}");
    }

    #[test]
    fn security_settings_are_checked_and_named() {
        type Tweak = fn(&mut Config);
        let cases: Vec<(Tweak, &str)> = vec![
            (
                |c| c.auth.algorithms = vec!["none".into()],
                "auth.algorithms",
            ),
            (|c| c.auth.algorithms = vec![], "auth.algorithms"),
            (
                |c| c.auth.algorithms = vec!["RS256".into()],
                "auth.public_key_file",
            ),
            (
                |c| c.server.trusted_proxies = vec!["proxy.lan".into()],
                "server.trusted_proxies",
            ),
            (
                |c| c.server.cors_origins = vec!["https://a.example/path".into()],
                "server.cors_origins",
            ),
            (
                |c| c.server.cors_origins = vec!["a.example".into()],
                "server.cors_origins",
            ),
        ];
        for (tweak, key) in cases {
            let mut config = Config::defaults().unwrap();
            tweak(&mut config);
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(key), "{key}: {err}");
        }
        let mut config = Config::defaults().unwrap();
        config.server.trusted_proxies = vec!["10.0.0.0/8".into(), "::1".into()];
        config.server.cors_origins = vec!["*".into(), "https://a.example:8443".into()];
        config.validate().expect("valid security settings");
    }
}

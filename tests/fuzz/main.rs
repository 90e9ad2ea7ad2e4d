//! Fuzz-style property tests (proptest) for the three parsers an attacker controls: magnet
//! URIs (`engine::source::parse_magnet`), .torrent bytes (`engine::source::parse_torrent`) and
//! the `Range`/`If-Range` decision (`http::range::decide`). Every target checks that the parser
//! never panics and that what it accepts is safe; each prints the executions it reached as
//! `fuzz: NAME: N executions` to stderr.
//!
//! `FUZZ_CASES` sets the cases per target (default 2000, fast enough for `cargo test`);
//! `scripts/fuzz` runs many more in release. No regression files are written. Valid torrents
//! are bencoded by hand here (no fixtures); the HTTP layer is not exercised beyond turning a
//! 416 decision into its `Content-Range`.

use std::{
    fmt::Debug,
    process::Command,
    sync::atomic::{AtomicU64, Ordering},
};

use axum::response::IntoResponse;
use bytes::Bytes;
use magnetar::{
    config::Config,
    engine::source::{
        parse_magnet, parse_stored_magnet, parse_torrent, SourceError, SourceKind, SourceLimits,
    },
    error::AppError,
    http::range::{decide, RangeDecision},
};
mod magnet;
mod range;
mod torrent;

use proptest::{
    prelude::*,
    sample::Index,
    test_runner::{Config as RunnerConfig, TestCaseError, TestRunner},
};

// ---------------------------------------------------------------------------------------------
// Runner

/// Cases per target: `FUZZ_CASES`, or 2000.
pub(crate) fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

/// Runs `property` on `cases()` values of `strategy`, prints the executions reached (shrinking
/// included) and panics with the minimal failing input, if any.
pub(crate) fn fuzz<S>(
    name: &str,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S: Strategy,
    S::Value: Debug,
{
    let config = RunnerConfig {
        cases: cases(),
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let executions = AtomicU64::new(0);
    let result = TestRunner::new(config).run(&strategy, |value| {
        executions.fetch_add(1, Ordering::Relaxed);
        property(value)
    });
    let executions = executions.load(Ordering::Relaxed);
    eprintln!("fuzz: {name}: {executions} executions");
    if let Err(err) = result {
        panic!("{name}: {err}");
    }
}

/// The limits the server runs with: `[limits]` of the embedded default config.
pub(crate) fn default_limits() -> SourceLimits {
    let limits = Config::defaults().expect("default config").limits;
    SourceLimits {
        max_torrent_bytes: limits.max_torrent_bytes,
        max_files: limits.max_files,
        max_magnet_len: limits.max_magnet_len,
    }
}

/// Text from arbitrary bytes, as a server decoding them lossily would see it.
pub(crate) fn lossy_text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..max)
        .prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Generated text whose `Debug` keeps failures readable: long values show their head, tail
/// and length instead of thousands of characters.
#[derive(Clone)]
pub(crate) struct Text(pub String);

impl Debug for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 240 {
            return write!(f, "{:?}", self.0);
        }
        let head: String = chars[..160].iter().collect();
        let tail: String = chars[chars.len() - 60..].iter().collect();
        write!(f, "{head:?} … {tail:?} ({} bytes)", self.0.len())
    }
}

pub(crate) fn percent_encode(raw: &[u8]) -> String {
    raw.iter().map(|b| format!("%{b:02X}")).collect()
}

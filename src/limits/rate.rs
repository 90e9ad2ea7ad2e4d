//! Request rate limits: governor (GCRA) limiters keyed by user, playback URL or client IP,
//! each built from `[limits]` (0 turns one off), plus the brute-force block: an IP past its
//! failed-authentication budget has its *failing* credentials answered 429 without further
//! work until the wait is over. It is a cost bound, not a lock: credentials that verify are
//! never refused by it (the HTTP extractors consult it only after a verification failed).

use std::{hash::Hash, net::IpAddr, num::NonZeroU32, time::Duration};

use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota};

use crate::config::LimitsConfig;

/// Over a limit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait(pub Duration);

impl Wait {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(self) -> u64 {
        (self.0.as_secs_f64().ceil() as u64).max(1)
    }
}

/// One keyed limit, or none when configured off.
pub struct Limiter<K: Hash + Eq + Clone> {
    inner: Option<DefaultKeyedRateLimiter<K>>,
    /// The limit's name in `magnetar_rate_limited_total{limit}`.
    name: &'static str,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(name: &'static str, quota: Option<Quota>) -> Self {
        Self {
            inner: quota.map(DefaultKeyedRateLimiter::keyed),
            name,
        }
    }

    /// Takes one request from `key`'s budget.
    pub fn check(&self, key: &K) -> Result<(), Wait> {
        let Some(limiter) = &self.inner else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            refused(self.name);
            Wait(not_until.wait_time_from(governor::clock::DefaultClock::default().now()))
        })
    }

    /// Forgets keys whose budget is full again (bounded memory under many keys).
    fn housekeep(&self) {
        if let Some(limiter) = &self.inner {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Counts a request refused by the limit `name`.
pub fn refused(name: &'static str) {
    metrics::counter!(crate::telemetry::names::RATE_LIMITED, "limit" => name).increment(1);
}

/// `n` per minute with a burst of `burst` (0: `n`); `None` when `n` is 0.
fn per_minute(n: u32, burst: u32) -> Option<Quota> {
    let n = NonZeroU32::new(n)?;
    let burst = NonZeroU32::new(burst).unwrap_or(n);
    Some(Quota::per_minute(n).allow_burst(burst))
}

fn per_second(n: u32, burst: u32) -> Option<Quota> {
    let n = NonZeroU32::new(n)?;
    let burst = NonZeroU32::new(burst).unwrap_or(n);
    Some(Quota::per_second(n).allow_burst(burst))
}

/// Every request rate limit of the server.
pub struct RateLimits {
    /// API calls per user.
    pub api: Limiter<String>,
    /// Stream creations per user.
    pub creations: Limiter<String>,
    /// Content requests per playback URL (keyed by the token's signature).
    pub content: Limiter<String>,
    /// Requests without credentials per client IP.
    pub unauthenticated: Limiter<IpAddr>,
    auth_failures: Limiter<IpAddr>,
    blocked: moka::sync::Cache<IpAddr, std::time::Instant>,
}

/// Most client IPs remembered as blocked at once.
const MAX_BLOCKED: u64 = 100_000;

impl RateLimits {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            api: Limiter::new("api", per_minute(limits.api_per_minute, limits.api_burst)),
            creations: Limiter::new("stream_creations", per_minute(limits.streams_per_minute, 0)),
            content: Limiter::new(
                "content",
                per_second(limits.content_per_second, limits.content_burst),
            ),
            unauthenticated: Limiter::new(
                "unauthenticated",
                per_minute(limits.unauthenticated_per_minute, 0),
            ),
            auth_failures: Limiter::new(
                "auth_failures",
                per_minute(limits.auth_failures_per_minute, 0),
            ),
            blocked: moka::sync::Cache::builder()
                .max_capacity(MAX_BLOCKED)
                .time_to_live(Duration::from_secs(3600))
                .build(),
        }
    }

    /// How long `ip` is still blocked after too many failed authentications.
    pub fn blocked(&self, ip: IpAddr) -> Option<Wait> {
        let until = self.blocked.get(&ip)?;
        let left = until.saturating_duration_since(std::time::Instant::now());
        let wait = (!left.is_zero()).then_some(Wait(left))?;
        refused("auth_block");
        Some(wait)
    }

    /// Records a failed authentication from `ip`; past the budget, blocks the IP and says
    /// for how long.
    pub fn auth_failed(&self, ip: IpAddr) -> Option<Wait> {
        let wait = self.auth_failures.check(&ip).err()?;
        self.blocked.insert(ip, std::time::Instant::now() + wait.0);
        Some(wait)
    }

    /// Drops state for keys that are idle again; run every minute or so.
    pub fn housekeep(&self) {
        self.api.housekeep();
        self.creations.housekeep();
        self.content.housekeep();
        self.unauthenticated.housekeep();
        self.auth_failures.housekeep();
        self.blocked.run_pending_tasks();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> LimitsConfig {
        crate::config::Config::defaults().unwrap().limits
    }

    #[test]
    fn a_burst_passes_then_waits_and_zero_is_off() {
        let mut config = limits();
        (config.api_per_minute, config.api_burst) = (60, 3);
        config.streams_per_minute = 0;
        let rate = RateLimits::new(&config);
        let alice = "alice".to_owned();
        for _ in 0..3 {
            rate.api.check(&alice).unwrap();
        }
        let wait = rate.api.check(&alice).unwrap_err();
        assert!(wait.0 <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(wait.retry_after_secs(), 1);
        rate.api
            .check(&"bob".to_owned())
            .expect("keys are separate");
        for _ in 0..1000 {
            rate.creations.check(&alice).expect("0 turns a limit off");
        }
    }

    #[test]
    fn too_many_failures_block_the_ip() {
        let mut config = limits();
        config.auth_failures_per_minute = 2;
        let rate = RateLimits::new(&config);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(rate.blocked(ip).is_none());
        assert!(rate.auth_failed(ip).is_none());
        assert!(rate.auth_failed(ip).is_none());
        let wait = rate.auth_failed(ip).expect("third failure blocks");
        assert!(wait.0 > Duration::ZERO && wait.0 <= Duration::from_secs(30));
        assert!(rate.blocked(ip).is_some());
        assert!(rate.blocked("192.0.2.2".parse().unwrap()).is_none());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(Wait(Duration::from_millis(1)).retry_after_secs(), 1);
        assert_eq!(Wait(Duration::from_secs(2)).retry_after_secs(), 2);
        assert_eq!(Wait(Duration::from_millis(2001)).retry_after_secs(), 3);
        assert_eq!(Wait(Duration::ZERO).retry_after_secs(), 1);
    }
}

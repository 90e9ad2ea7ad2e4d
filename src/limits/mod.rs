//! Limits that keep one user (or one address) from taking the server from the others:
//! request rates ([`rate`]), per-user egress bandwidth ([`egress`]), and who the client is
//! behind a reverse proxy ([`client_ip`]), and the process's file-descriptor budget
//! ([`descriptors`]). Stream quotas live with the streams registry.

pub mod client_ip;
pub mod descriptors;
pub mod egress;
pub mod rate;

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// Everything limit-related the HTTP layer needs.
pub struct Limits {
    pub rate: rate::RateLimits,
    pub egress: egress::Egress,
    pub proxies: client_ip::TrustedProxies,
}

impl Limits {
    pub fn new(config: &Config) -> anyhow::Result<Arc<Self>> {
        let proxies = client_ip::TrustedProxies::parse(&config.server.trusted_proxies)
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(Self {
            rate: rate::RateLimits::new(&config.limits),
            egress: egress::Egress::new(config.limits.user_egress_bps),
            proxies,
        }))
    }

    /// Forgets idle keys every minute until `shutdown`.
    pub fn spawn_housekeeping(self: &Arc<Self>, shutdown: CancellationToken) {
        let limits = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                limits.rate.housekeep();
            }
        });
    }
}

//! Per-user egress caps: every body a user has open draws from one byte budget
//! (`limits.user_egress_bps`), so the cap holds across connections. Bodies are paced in
//! small slices (governor, 1 KiB cells, about 1/8 s of burst), never dropped.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{stream::BoxStream, StreamExt};
use governor::{clock::Clock, DefaultDirectRateLimiter, Quota};

/// Bytes per rate-limiter cell.
const CELL: u64 = 1024;

/// The per-user byte budgets.
pub struct Egress {
    bps: u64,
    users: moka::sync::Cache<String, Arc<Pacer>>,
}

/// One user's shared budget.
pub struct Pacer {
    limiter: DefaultDirectRateLimiter,
    /// Largest slice taken at once, in cells.
    burst: u32,
}

impl Egress {
    /// `bps` 0: no cap.
    pub fn new(bps: u64) -> Self {
        Self {
            bps,
            users: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(600))
                .build(),
        }
    }

    /// The budget shared by `user`'s bodies, or `None` when there is no cap.
    pub fn pacer(&self, user: &str) -> Option<Arc<Pacer>> {
        let cells = u32::try_from(self.bps.div_ceil(CELL)).unwrap_or(u32::MAX);
        let per_second = NonZeroU32::new(cells)?;
        Some(self.users.get_with(user.to_owned(), || {
            let burst = (cells / 8).clamp(16, cells.max(16));
            Arc::new(Pacer {
                limiter: DefaultDirectRateLimiter::direct(
                    Quota::per_second(per_second)
                        .allow_burst(NonZeroU32::new(burst).unwrap_or(per_second)),
                ),
                burst,
            })
        }))
    }
}

impl Pacer {
    /// Waits until `cells` cells (≤ burst) may go out.
    async fn take(&self, cells: u32) {
        let Some(n) = NonZeroU32::new(cells.min(self.burst)) else {
            return;
        };
        loop {
            match self.limiter.check_n(n) {
                Ok(Ok(())) | Err(_) => return,
                Ok(Err(not_until)) => {
                    let clock = governor::clock::DefaultClock::default();
                    tokio::time::sleep(not_until.wait_time_from(clock.now())).await;
                }
            }
        }
    }

    fn slice_bytes(&self) -> usize {
        self.burst as usize * CELL as usize
    }
}

/// `chunks` paced by `pacer`: each chunk is cut into slices of at most a burst, and each
/// slice waits for its share of the budget before it goes out.
pub fn paced(
    chunks: BoxStream<'static, std::io::Result<Bytes>>,
    pacer: Arc<Pacer>,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    let slice = pacer.slice_bytes();
    chunks
        .flat_map(move |item| {
            let items: Vec<std::io::Result<Bytes>> = match item {
                Ok(mut bytes) => {
                    let mut parts = Vec::with_capacity(bytes.len().div_ceil(slice.max(1)));
                    while !bytes.is_empty() {
                        parts.push(Ok(bytes.split_to(slice.min(bytes.len()))));
                    }
                    parts
                }
                Err(err) => vec![Err(err)],
            };
            futures::stream::iter(items)
        })
        .then(move |item| {
            let pacer = pacer.clone();
            async move {
                if let Ok(bytes) = &item {
                    let cells = (bytes.len() as u64).div_ceil(CELL);
                    pacer.take(u32::try_from(cells).unwrap_or(u32::MAX)).await;
                }
                item
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_capped_user_gets_the_cap_and_no_cap_means_none() {
        assert!(Egress::new(0).pacer("alice").is_none());
        let egress = Egress::new(1024 * 1024);
        let pacer = egress.pacer("alice").unwrap();
        assert!(
            Arc::ptr_eq(&pacer, &egress.pacer("alice").unwrap()),
            "one budget per user"
        );
        let chunks: Vec<std::io::Result<Bytes>> = (0..4)
            .map(|_| Ok(Bytes::from(vec![7u8; 256 * 1024])))
            .collect();
        let started = std::time::Instant::now();
        let mut out = paced(futures::stream::iter(chunks).boxed(), pacer);
        let mut total = 0;
        while let Some(bytes) = out.next().await {
            total += bytes.unwrap().len();
        }
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(total, 1024 * 1024);
        // 1 MiB at 1 MiB/s, less the initial burst (1/8 s): about 0.9 s.
        assert!((0.6..2.0).contains(&secs), "took {secs:.2} s");
    }
}

//! The API's one global token bucket (SPEC §2.9, §3.12).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use spyder_model::rate::{Quota, TokenBucket};

/// A token bucket shared by every API request: `rate` tokens per second, at most
/// `burst` stored; starts full. Cheap to clone; all clones share the bucket.
/// `api.rate_limit` and `api.rate_burst` are Tier 1, so [`set`](Self::set) applies
/// a change at once.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    bucket: Arc<Mutex<Limit>>,
}

/// The quota in force and the bucket it applies to.
#[derive(Debug)]
struct Limit {
    quota: Quota,
    bucket: TokenBucket,
}

impl RateLimiter {
    /// A full bucket of `burst` tokens refilled at `rate_per_sec` (burst 0 counts
    /// as 1; a rate that is not a positive finite number, or slower than one token
    /// a day, counts as one token a day).
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        Self {
            bucket: Arc::new(Mutex::new(Limit {
                quota: quota(rate_per_sec, burst),
                bucket: TokenBucket::full(Instant::now()),
            })),
        }
    }

    /// Changes rate and burst now; tokens already stored are kept up to the new burst.
    pub fn set(&self, rate_per_sec: f64, burst: u32) {
        let mut limit = self.lock();
        let new = quota(rate_per_sec, burst);
        let old = std::mem::replace(&mut limit.quota, new);
        limit.bucket.rebase(old, new, Instant::now());
    }

    /// Takes one token; false when the bucket is empty (answer `429`).
    pub fn try_acquire(&self) -> bool {
        let mut limit = self.lock();
        let quota = limit.quota;
        limit.bucket.try_take(quota, Instant::now())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Limit> {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for RateLimiter {
    /// The defaults of SPEC §2.6: 100 requests/s, burst 20.
    fn default() -> Self {
        Self::new(100.0, 20)
    }
}

/// The API's quota: an invalid rate blocks after the burst (one token a day) rather
/// than lifting the limit, unlike the probe's pacing.
fn quota(rate_per_sec: f64, burst: u32) -> Quota {
    Quota::new(rate_per_sec, burst).unwrap_or_else(|| Quota::slowest(burst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_empty_then_live_change() {
        let limiter = RateLimiter::new(1e-6, 2);
        assert!(limiter.try_acquire());
        assert!(limiter.try_acquire());
        assert!(!limiter.try_acquire());
        // A live change keeps what is stored (nothing), it does not refill the bucket.
        limiter.set(1e-6, 5);
        assert!(!limiter.try_acquire());
    }
}

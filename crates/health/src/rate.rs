//! The API's one global token bucket (SPEC §2.9, §3.12).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// A token bucket shared by every API request: `rate` tokens per second, at most
/// `burst` stored; starts full. Cheap to clone; all clones share the bucket.
/// `api.rate_limit` and `api.rate_burst` are Tier 1, so [`set`](Self::set) applies
/// a change at once.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    bucket: Arc<Mutex<Bucket>>,
}

#[derive(Debug)]
struct Bucket {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        self.refilled_at = now;
    }
}

impl RateLimiter {
    /// A full bucket of `burst` tokens refilled at `rate_per_sec` (both clamped to
    /// sensible minimums: rate > 0, burst ≥ 1).
    pub fn new(rate_per_sec: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            bucket: Arc::new(Mutex::new(Bucket {
                rate_per_sec: sanitize_rate(rate_per_sec),
                burst,
                tokens: burst,
                refilled_at: Instant::now(),
            })),
        }
    }

    /// Changes rate and burst now; tokens already stored are kept up to the new burst.
    pub fn set(&self, rate_per_sec: f64, burst: u32) {
        let mut bucket = self.lock();
        bucket.refill(Instant::now());
        bucket.rate_per_sec = sanitize_rate(rate_per_sec);
        bucket.burst = f64::from(burst.max(1));
        bucket.tokens = bucket.tokens.min(bucket.burst);
    }

    /// Takes one token; false when the bucket is empty (answer `429`).
    pub fn try_acquire(&self) -> bool {
        let mut bucket = self.lock();
        bucket.refill(Instant::now());
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bucket> {
        self.bucket.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for RateLimiter {
    /// The defaults of SPEC §2.6: 100 requests/s, burst 20.
    fn default() -> Self {
        Self::new(100.0, 20)
    }
}

fn sanitize_rate(rate: f64) -> f64 {
    if rate.is_finite() && rate > 0.0 {
        rate
    } else {
        f64::MIN_POSITIVE
    }
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

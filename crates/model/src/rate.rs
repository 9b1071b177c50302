//! One token bucket for every rate limit: the probe's per-host pacing (SPEC §3.6) and
//! the API's global limit (SPEC §2.9, §3.12).
//!
//! The bucket is GCRA (the "generic cell rate algorithm"): its whole state is one
//! instant, the theoretical arrival time, so there is no float token count to refill.
//! It knows no clock and no runtime: the caller passes `now` (a std [`Instant`]; a tokio
//! instant converts with `into_std` / `from_std`, so paused test time keeps working)
//! and the [`Quota`] of the call, which may change from one call to the next.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use spyder_model::rate::{Quota, TokenBucket};
//!
//! let quota = Quota::new(2.0, 2).expect("a positive finite rate");
//! let t0 = Instant::now();
//! let mut bucket = TokenBucket::full(t0);
//! assert!(bucket.try_take(quota, t0));
//! assert_eq!(bucket.reserve(quota, t0), None);
//! assert_eq!(bucket.reserve(quota, t0), Some(t0 + Duration::from_millis(500)));
//! assert!(!bucket.try_take(quota, t0 + Duration::from_millis(999)));
//! assert!(bucket.try_take(quota, t0 + Duration::from_secs(1)));
//! ```

use std::time::{Duration, Instant};

/// Longest spacing between two tokens; slower rates are clamped to this.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// A rate and a depth: one token every `interval`, at most `burst` stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    interval: Duration,
    burst: u32,
}

impl Quota {
    /// `rate_per_sec` tokens a second, at most `burst` stored (0 counts as 1).
    ///
    /// `None` means unlimited: the rate is not a positive finite number. Rates slower
    /// than one token a day are clamped to one a day; rates too fast for a nanosecond
    /// spacing never run out.
    pub fn new(rate_per_sec: f64, burst: u32) -> Option<Quota> {
        if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) {
            return None;
        }
        let interval = Duration::try_from_secs_f64(rate_per_sec.recip())
            .unwrap_or(MAX_INTERVAL)
            .min(MAX_INTERVAL);
        Some(Quota {
            interval,
            burst: burst.max(1),
        })
    }

    /// The slowest quota: one token a day, at most `burst` stored (0 counts as 1).
    pub fn slowest(burst: u32) -> Quota {
        Quota {
            interval: MAX_INTERVAL,
            burst: burst.max(1),
        }
    }

    /// The spacing between two tokens once the burst is spent.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// The most tokens stored (at least 1).
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// How far ahead of the schedule a token may be taken: `burst - 1` intervals.
    fn tolerance(self) -> Duration {
        self.interval.saturating_mul(self.burst - 1)
    }
}

/// GCRA state of one bucket: a single instant. Starts full.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    /// Theoretical arrival time: when the bucket will be full again, minus one
    /// interval per token still available.
    tat: Instant,
}

impl TokenBucket {
    /// A bucket holding its whole burst as of `now`.
    pub fn full(now: Instant) -> Self {
        Self { tat: now }
    }

    /// Takes a token if one is there at `now`; false (nothing spent) otherwise.
    pub fn try_take(&mut self, quota: Quota, now: Instant) -> bool {
        let start = self.conforms_at(quota, now);
        if start > now {
            return false;
        }
        self.spend(quota, start);
        true
    }

    /// Books the next token: `None` when it is there at `now`, `Some(t)` when the
    /// caller must wait until `t`. The token is spent either way.
    pub fn reserve(&mut self, quota: Quota, now: Instant) -> Option<Instant> {
        let start = self.conforms_at(quota, now);
        self.spend(quota, start);
        (start > now).then_some(start)
    }

    /// Changes the quota from `old` to `new` at `now`, keeping the tokens stored
    /// (fractions included) up to the new burst: a raised burst adds no token, a
    /// lowered one drops those above it, and the refill goes on at the new rate.
    pub fn rebase(&mut self, old: Quota, new: Quota, now: Instant) {
        let debt = self.tat.saturating_duration_since(now);
        // Tokens missing from a full bucket of the old quota. A bucket that never
        // runs out (zero interval) misses none.
        let missing = if debt.is_zero() || old.interval.is_zero() {
            0.0
        } else {
            debt.as_secs_f64() / old.interval.as_secs_f64()
        };
        // Stored = old burst - missing; kept = min(stored, new burst).
        let missing = (missing + f64::from(new.burst) - f64::from(old.burst)).max(0.0);
        let debt = Duration::try_from_secs_f64(missing * new.interval.as_secs_f64())
            .unwrap_or(Duration::MAX);
        self.tat = add_saturating(now, debt);
    }

    /// The earliest instant, not before `now`, at which a token conforms.
    fn conforms_at(&self, quota: Quota, now: Instant) -> Instant {
        self.tat
            .checked_sub(quota.tolerance())
            .map_or(now, |earliest| earliest.max(now))
    }

    /// Spends the token taken at `start`.
    fn spend(&mut self, quota: Quota, start: Instant) {
        self.tat = add_saturating(self.tat.max(start), quota.interval);
    }
}

/// `at + d`, or, where the platform's clock cannot reach that far, an instant as far
/// ahead as it can (within a factor of two of the distance left).
fn add_saturating(at: Instant, mut d: Duration) -> Instant {
    loop {
        match at.checked_add(d) {
            Some(t) => return t,
            None if d.is_zero() => return at,
            None => d /= 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(rate: f64, burst: u32) -> Quota {
        Quota::new(rate, burst).expect("a positive finite rate")
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn try_take_spends_the_burst_then_refills_one_per_interval() {
        let q = quota(10.0, 3);
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(t0);
        assert!((0..3).all(|_| bucket.try_take(q, t0)));
        assert!(!bucket.try_take(q, t0), "empty after the burst");
        assert!(!bucket.try_take(q, t0 + ms(99)));
        assert!(bucket.try_take(q, t0 + ms(100)));
        assert!(!bucket.try_take(q, t0 + ms(100)), "one token per interval");
        // A refused take spends nothing.
        assert!(bucket.try_take(q, t0 + ms(200)));
        // Idle for long: the full burst, no more.
        let later = t0 + Duration::from_secs(60);
        assert!((0..3).all(|_| bucket.try_take(q, later)));
        assert!(!bucket.try_take(q, later));
    }

    #[test]
    fn reserve_books_slots_exactly_one_interval_apart() {
        let q = quota(2.0, 2);
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(t0);
        let slots: Vec<Option<Instant>> = (0..5).map(|_| bucket.reserve(q, t0)).collect();
        assert_eq!(
            slots,
            [
                None,
                None,
                Some(t0 + ms(500)),
                Some(t0 + ms(1000)),
                Some(t0 + ms(1500))
            ]
        );
        // Booked slots are spent: try_take finds nothing until the last one's turn.
        assert!(!bucket.try_take(q, t0 + ms(1999)));
        assert!(bucket.try_take(q, t0 + ms(2000)));
    }

    #[test]
    fn burst_zero_counts_as_one_and_quota_limits_apply() {
        let q = quota(1.0, 0);
        assert_eq!(q.burst(), 1);
        assert_eq!(q.interval(), Duration::from_secs(1));
        assert_eq!(Quota::slowest(0), quota(1e-9, 1));
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(t0);
        assert!(bucket.try_take(q, t0));
        assert!(!bucket.try_take(q, t0));
    }

    #[test]
    fn a_changed_quota_applies_to_the_next_call() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::full(t0);
        let slow = quota(1.0, 1);
        assert_eq!(bucket.reserve(slow, t0), None);
        assert_eq!(bucket.reserve(slow, t0), Some(t0 + Duration::from_secs(1)));
        // The slot already booked stays; the next is spaced by the new rate.
        let fast = quota(10.0, 1);
        assert_eq!(bucket.reserve(fast, t0), Some(t0 + Duration::from_secs(2)));
        assert_eq!(bucket.reserve(fast, t0), Some(t0 + ms(2100)));
    }

    #[test]
    fn rebase_keeps_the_stored_tokens_up_to_the_new_burst() {
        let t0 = Instant::now();
        let old = quota(1.0, 2);
        let mut bucket = TokenBucket::full(t0);
        assert!(bucket.try_take(old, t0) && bucket.try_take(old, t0));
        // A raised burst adds no token.
        let raised = quota(1.0, 5);
        bucket.rebase(old, raised, t0);
        assert!(!bucket.try_take(raised, t0));
        assert!(bucket.try_take(raised, t0 + Duration::from_secs(1)));
        // A lowered burst drops what is above it.
        let mut full = TokenBucket::full(t0);
        let lowered = quota(1.0, 2);
        full.rebase(raised, lowered, t0);
        assert!(full.try_take(lowered, t0) && full.try_take(lowered, t0));
        assert!(!full.try_take(lowered, t0));
        // Fractions are kept and refill at the new rate: half a token missing at
        // 2/s is a quarter of a second.
        let one = quota(1.0, 1);
        let mut half = TokenBucket::full(t0);
        assert!(half.try_take(one, t0));
        let faster = quota(2.0, 1);
        half.rebase(one, faster, t0 + ms(500));
        assert!(!half.try_take(faster, t0 + ms(749)));
        assert!(half.try_take(faster, t0 + ms(750)));
    }

    #[test]
    fn rebase_to_a_fast_rate_refills_at_once_and_from_unlimited_is_full() {
        let t0 = Instant::now();
        let slow = Quota::slowest(2);
        let mut bucket = TokenBucket::full(t0);
        assert!(bucket.try_take(slow, t0) && bucket.try_take(slow, t0));
        let fast = quota(1e9, 5);
        bucket.rebase(slow, fast, t0);
        assert!(bucket.try_take(fast, t0 + ms(1)));
        let unlimited = quota(1e300, 3);
        assert_eq!(unlimited.interval(), Duration::ZERO);
        let mut bucket = TokenBucket::full(t0);
        bucket.rebase(unlimited, slow, t0);
        assert!(bucket.try_take(slow, t0) && bucket.try_take(slow, t0));
        assert!(!bucket.try_take(slow, t0));
    }

    #[test]
    fn extreme_values_never_panic_or_overflow() {
        for rate in [0.0, -1.0, -0.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_eq!(Quota::new(rate, 1), None, "{rate}");
        }
        assert_eq!(quota(1e-300, 1).interval(), MAX_INTERVAL);
        assert_eq!(quota(f64::MIN_POSITIVE, 1).interval(), MAX_INTERVAL);
        assert_eq!(quota(1e-320, 1).interval(), MAX_INTERVAL, "subnormal");
        assert_eq!(quota(1e300, 1).interval(), Duration::ZERO);
        let t0 = Instant::now();
        // A rate too fast for a nanosecond spacing never runs out.
        let mut bucket = TokenBucket::full(t0);
        let unlimited = quota(1e300, 1);
        assert!((0..1000).all(|_| bucket.try_take(unlimited, t0)));
        assert!((0..1000).all(|_| bucket.reserve(unlimited, t0).is_none()));

        let far = add_saturating(t0, Duration::MAX);
        assert!(far > t0);
        let quotas = [
            Quota::slowest(u32::MAX),
            Quota::slowest(1),
            quota(1e300, u32::MAX),
            quota(1e9, u32::MAX),
            quota(1.0, 1),
        ];
        for &q in &quotas {
            // Starting far ahead, used from now (a clock behind the bucket).
            let mut ahead = TokenBucket::full(far);
            ahead.try_take(q, t0);
            ahead.reserve(q, t0);
            // Starting now, used far ahead, then from now again.
            let mut bucket = TokenBucket::full(t0);
            assert!(bucket.try_take(q, far), "idle that long: full");
            for _ in 0..3 {
                bucket.reserve(q, far);
                bucket.try_take(q, t0);
            }
            for &other in &quotas {
                let mut b = bucket;
                b.rebase(q, other, t0);
                b.rebase(other, q, far);
                b.try_take(other, far);
            }
        }
        // The deepest, slowest bucket: full, and stays bookable.
        let deep = Quota::slowest(u32::MAX);
        let mut bucket = TokenBucket::full(t0);
        assert!((0..1000).all(|_| bucket.try_take(deep, t0)));
        bucket.rebase(deep, Quota::slowest(1), t0);
        assert!(bucket.try_take(Quota::slowest(1), t0));
        assert!(!bucket.try_take(Quota::slowest(1), t0));
    }

    #[test]
    fn add_saturating_stops_where_the_clock_does() {
        let t0 = Instant::now();
        assert_eq!(add_saturating(t0, ms(5)), t0 + ms(5));
        let far = add_saturating(t0, Duration::MAX);
        assert!(far > t0);
        assert!(add_saturating(far, Duration::MAX) >= far);
    }
}

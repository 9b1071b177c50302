//! Per-host token buckets shared by all workers (SPEC §3.6).
//!
//! [`HostLimiter`] keeps one bucket per host in a bounded LRU map. A caller
//! reserves the next token time under a short lock and then sleeps outside it,
//! so concurrent callers for one host are spaced exactly `1 / rate` apart once
//! the burst is spent (GCRA, the "generic cell rate algorithm").

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

/// Longest spacing between two tokens; slower rates are clamped to this.
const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Per-host request pacing shared by every worker of one probe.
pub struct HostLimiter {
    buckets: Mutex<LruCache<String, Bucket>>,
}

/// GCRA state of one host.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Theoretical arrival time: when the bucket will be full again, minus one
    /// interval per token still available.
    tat: Instant,
}

impl fmt::Debug for HostLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let buckets = self.lock();
        f.debug_struct("HostLimiter")
            .field("hosts", &buckets.len())
            .field("max_hosts", &buckets.cap())
            .finish()
    }
}

impl HostLimiter {
    /// A limiter remembering at most `max_hosts` hosts (at least one); the least
    /// recently used host's bucket is forgotten when a new host arrives.
    pub fn new(max_hosts: usize) -> Self {
        let cap = NonZeroUsize::new(max_hosts).unwrap_or(NonZeroUsize::MIN);
        Self {
            buckets: Mutex::new(LruCache::new(cap)),
        }
    }

    /// Waits until `host` has a token, then takes it.
    ///
    /// `rate_per_sec` tokens are added per second up to `burst` (0 counts as 1);
    /// both are read per call, so a settings change applies to the next call. A
    /// rate that is not a positive finite number disables pacing. Rates slower
    /// than one token a day are clamped to one a day.
    ///
    /// Dropping the returned future while it waits still spends the reserved token.
    pub async fn acquire(&self, host: &str, rate_per_sec: f64, burst: u32) {
        if let Some(at) = self.reserve(host, rate_per_sec, burst, Instant::now()) {
            tokio::time::sleep_until(at).await;
        }
    }

    /// Reserves the next token for `host` as of `now`; `Some(t)` when the caller
    /// must wait until `t`.
    fn reserve(&self, host: &str, rate_per_sec: f64, burst: u32, now: Instant) -> Option<Instant> {
        if !(rate_per_sec.is_finite() && rate_per_sec > 0.0) {
            return None;
        }
        let interval = Duration::try_from_secs_f64(rate_per_sec.recip())
            .unwrap_or(MAX_INTERVAL)
            .min(MAX_INTERVAL);
        // Up to `burst - 1` further tokens may be taken ahead of the schedule.
        let tolerance = interval.saturating_mul(burst.max(1) - 1);

        let mut buckets = self.lock();
        let bucket = buckets.get_or_insert_mut_ref(host, || Bucket { tat: now });
        // The earliest time this request conforms.
        let start = bucket
            .tat
            .checked_sub(tolerance)
            .map_or(now, |earliest| earliest.max(now));
        let base = bucket.tat.max(start);
        bucket.tat = base.checked_add(interval).unwrap_or(base);
        (start > now).then_some(start)
    }

    /// Number of hosts whose buckets are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Bucket>> {
        // A bucket is a single timestamp; a panicking holder cannot corrupt it.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Runs `n` concurrent acquires for `host` and returns their completion times
    /// relative to the start, sorted.
    async fn completion_offsets(
        limiter: Arc<HostLimiter>,
        host: &'static str,
        n: usize,
        rate: f64,
        burst: u32,
    ) -> Vec<Duration> {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..n {
            let limiter = Arc::clone(&limiter);
            tasks.push(tokio::spawn(async move {
                limiter.acquire(host, rate, burst).await;
                Instant::now() - start
            }));
        }
        let mut out = Vec::new();
        for task in tasks {
            let done = tokio::time::timeout(Duration::from_secs(3600), task)
                .await
                .expect("acquire finishes")
                .expect("task does not panic");
            out.push(done);
        }
        out.sort();
        out
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_exact_spacing() {
        let limiter = Arc::new(HostLimiter::new(16));
        let times = completion_offsets(Arc::clone(&limiter), "a.example", 6, 2.0, 2).await;
        let ms: Vec<u128> = times.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [0, 0, 500, 1000, 1500, 2000]);
        assert_eq!(limiter.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn hosts_are_independent() {
        let limiter = Arc::new(HostLimiter::new(16));
        let a = completion_offsets(Arc::clone(&limiter), "a.example", 3, 1.0, 1);
        let b = completion_offsets(Arc::clone(&limiter), "b.example", 3, 1.0, 1);
        let (a, b) = tokio::join!(a, b);
        let secs = |v: Vec<Duration>| v.iter().map(Duration::as_secs).collect::<Vec<_>>();
        assert_eq!(secs(a), [0, 1, 2]);
        assert_eq!(secs(b), [0, 1, 2]);
        assert_eq!(limiter.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn bucket_refills_while_idle() {
        let limiter = HostLimiter::new(4);
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.acquire("h.example", 1.0, 2).await;
        }
        assert_eq!((Instant::now() - t0).as_secs(), 1);
        // After idling long enough the full burst is available again, no more.
        tokio::time::advance(Duration::from_secs(10)).await;
        let t1 = Instant::now();
        limiter.acquire("h.example", 1.0, 2).await;
        limiter.acquire("h.example", 1.0, 2).await;
        assert_eq!(Instant::now(), t1);
        limiter.acquire("h.example", 1.0, 2).await;
        assert_eq!(Instant::now() - t1, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_changes_apply_to_the_next_call() {
        let limiter = HostLimiter::new(4);
        let t0 = Instant::now();
        limiter.acquire("h.example", 1.0, 1).await;
        limiter.acquire("h.example", 1.0, 1).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        // Faster rate: the token reserved at t0+2s is still owed, later ones come quickly.
        limiter.acquire("h.example", 10.0, 1).await;
        assert_eq!(Instant::now() - t0, Duration::from_secs(2));
        limiter.acquire("h.example", 10.0, 1).await;
        assert_eq!(Instant::now() - t0, Duration::from_millis(2100));
    }

    #[tokio::test(start_paused = true)]
    async fn non_positive_rate_disables_pacing() {
        let limiter = HostLimiter::new(4);
        let t0 = Instant::now();
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            for _ in 0..5 {
                limiter.acquire("h.example", rate, 1).await;
            }
        }
        assert_eq!(Instant::now(), t0);
        // A tiny rate is clamped to one token a day instead of overflowing.
        limiter.acquire("slow.example", 1e-300, 1).await;
        limiter.acquire("slow.example", 1e-300, 1).await;
        assert_eq!(Instant::now() - t0, MAX_INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn map_is_bounded() {
        // B-22: 10,000 hosts through a limiter of 1,000 keep at most 1,000 buckets.
        let limiter = HostLimiter::new(1000);
        for i in 0..10_000 {
            limiter.acquire(&format!("h{i}.example"), 1.0, 2).await;
            assert!(limiter.len() <= 1000);
        }
        assert_eq!(limiter.len(), 1000);
        assert!(!limiter.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn evicted_host_starts_afresh() {
        let limiter = HostLimiter::new(1);
        let t0 = Instant::now();
        limiter.acquire("a.example", 1.0, 1).await;
        limiter.acquire("b.example", 1.0, 1).await; // evicts a.example
        limiter.acquire("a.example", 1.0, 1).await; // a new full bucket
        assert_eq!(Instant::now(), t0);
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn limiter_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<HostLimiter>();
    }
}

//! Politeness shared by all workers (SPEC §3.6): per-host token buckets and
//! per-address connection slots.
//!
//! [`HostLimiter`] keeps one bucket per host in a bounded LRU map. A caller
//! reserves the next token time under a short lock and then sleeps outside it,
//! so concurrent callers for one host are spaced exactly `1 / rate` apart once
//! the burst is spent (GCRA, the "generic cell rate algorithm", in
//! [`spyder_model::rate::TokenBucket`]).
//!
//! [`AddressLimiter`] caps the connections open at once to one IP address
//! (`crawling.max_conns_per_ip`): a connection takes an [`AddressSlot`] before its
//! connect and gives it back when it closes; callers beyond the cap wait in line.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};

use lru::LruCache;
use spyder_model::rate::{Quota, TokenBucket};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// Per-host request pacing shared by every worker of one probe.
pub struct HostLimiter {
    buckets: Mutex<LruCache<String, TokenBucket>>,
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
        let quota = Quota::new(rate_per_sec, burst)?;
        let now = now.into_std();
        let mut buckets = self.lock();
        let bucket = buckets.get_or_insert_mut_ref(host, || TokenBucket::full(now));
        bucket.reserve(quota, now).map(Instant::from_std)
    }

    #[cfg(test)]
    /// Number of hosts whose buckets are held.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    #[cfg(test)]
    /// True when no bucket is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, TokenBucket>> {
        // A bucket is a single timestamp; a panicking holder cannot corrupt it.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Request pacing across every host of one probe (`crawling.rate_global`, the
/// `-rl` of ProjectDiscovery's tools): one bucket of depth 1, so requests are
/// spaced evenly at the rate.
#[derive(Debug, Default)]
pub struct GlobalLimiter {
    /// `None` until the first limited request.
    bucket: Mutex<Option<TokenBucket>>,
}

impl GlobalLimiter {
    /// Waits until a request may go, then takes its token. A rate that is not a
    /// positive finite number (0 is the default) does not limit; the rate is read
    /// per call, so a settings change applies to the next request.
    ///
    /// Dropping the returned future while it waits still spends the reserved token.
    pub async fn acquire(&self, rate_per_sec: f64) {
        if let Some(at) = self.reserve(rate_per_sec, Instant::now()) {
            tokio::time::sleep_until(at).await;
        }
    }

    fn reserve(&self, rate_per_sec: f64, now: Instant) -> Option<Instant> {
        let quota = Quota::new(rate_per_sec, 1)?;
        let now = now.into_std();
        // A bucket is a single timestamp; a panicking holder cannot corrupt it.
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        bucket
            .get_or_insert_with(|| TokenBucket::full(now))
            .reserve(quota, now)
            .map(Instant::from_std)
    }
}

/// Connection slots per IP address, shared by every worker of one probe (SPEC §3.6
/// "Per address").
///
/// Each address has a count of slots held and a line of waiters. A slot given back
/// while someone waits passes straight to the first waiter, so the count never dips
/// below the cap while there is demand, and waiters are served in order. An address
/// with no slot held and nobody waiting is forgotten at once: the map holds at most
/// one entry per address with a connection open or wanted.
#[derive(Clone, Default)]
pub struct AddressLimiter {
    inner: Arc<AddressTable>,
}

#[derive(Default)]
struct AddressTable {
    addresses: Mutex<HashMap<IpAddr, AddressState>>,
}

/// One address's slots.
#[derive(Default)]
struct AddressState {
    /// Slots held (connections open or opening).
    held: usize,
    /// The cap the latest caller asked for (0 = unlimited).
    cap: usize,
    /// Callers waiting for a slot, first come first served.
    waiters: VecDeque<oneshot::Sender<AddressSlot>>,
}

impl AddressState {
    fn has_room(&self) -> bool {
        self.cap == 0 || self.held < self.cap
    }

    /// Drops the waiters at the front of the line that gave up.
    fn prune(&mut self) {
        while self.waiters.front().is_some_and(|w| w.is_closed()) {
            self.waiters.pop_front();
        }
    }
}

impl fmt::Debug for AddressLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressLimiter")
            .field("addresses", &self.len())
            .finish()
    }
}

/// A held connection slot for one address; dropping it gives the slot back.
#[must_use = "the slot is given back as soon as it is dropped"]
pub struct AddressSlot {
    /// Taken when the slot is given back.
    table: Option<Arc<AddressTable>>,
    ip: IpAddr,
}

impl fmt::Debug for AddressSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AddressSlot").field("ip", &self.ip).finish()
    }
}

impl AddressSlot {
    #[cfg(test)]
    /// The address this slot is for.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Some(table) = self.table.take() {
            AddressTable::release(&table, self.ip);
        }
    }
}

impl AddressLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits until `ip` has fewer than `cap` slots held (0 = no cap), then takes one.
    ///
    /// `cap` is read per call, so a settings change applies to the next acquisition;
    /// lowering it closes no connection, raising it lets new callers in at once. A
    /// call that has to wait counts once in `spyder_conn_waits_total`. The wait has no
    /// deadline of its own: the caller's task deadline bounds it, and dropping the
    /// future leaves the line without losing a slot.
    pub async fn acquire(&self, ip: IpAddr, cap: usize) -> AddressSlot {
        let mut counted = false;
        loop {
            let waiting = {
                let mut addresses = self.inner.lock();
                let state = addresses.entry(ip).or_default();
                state.cap = cap;
                if state.has_room() {
                    state.held = state.held.saturating_add(1);
                    return AddressSlot {
                        table: Some(Arc::clone(&self.inner)),
                        ip,
                    };
                }
                let (tx, rx) = oneshot::channel();
                state.waiters.push_back(tx);
                rx
            };
            if !counted {
                counted = true;
                spyder_model::telemetry::conn_waits().increment(1);
            }
            // A waiter is only dropped unanswered when its entry goes, which needs an
            // empty line: then there is room, and the next round takes it.
            if let Ok(slot) = waiting.await {
                return slot;
            }
        }
    }

    #[cfg(test)]
    /// Slots held now for `ip`.
    pub fn held(&self, ip: IpAddr) -> usize {
        self.inner.lock().get(&ip).map_or(0, |s| s.held)
    }

    #[cfg(test)]
    /// Callers waiting now for `ip` (those that gave up included until their turn).
    pub fn waiting(&self, ip: IpAddr) -> usize {
        self.inner.lock().get(&ip).map_or(0, |s| s.waiters.len())
    }

    /// Addresses with a slot held or a caller waiting.
    pub fn len(&self) -> usize {
        self.inner.lock().len()
    }

    #[cfg(test)]
    /// True when no address has a slot held or a caller waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl AddressTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, AddressState>> {
        // Counts and a queue of senders: a panicking holder leaves them consistent.
        self.addresses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Gives a slot of `ip` back: to the first live waiter while the cap allows, else
    /// to the pool; then lets in as many further waiters as a raised cap makes room for.
    fn release(this: &Arc<Self>, ip: IpAddr) {
        let first = {
            let mut addresses = this.lock();
            let Some(state) = addresses.get_mut(&ip) else {
                return;
            };
            state.prune();
            if !state.waiters.is_empty() && (state.cap == 0 || state.held <= state.cap) {
                // The released slot itself changes hands: `held` stays.
                state.waiters.pop_front()
            } else {
                state.held = state.held.saturating_sub(1);
                if state.held == 0 && state.waiters.is_empty() {
                    addresses.remove(&ip);
                }
                None
            }
        };
        if let Some(waiter) = first {
            Self::hand(this, ip, waiter);
        }
        loop {
            let next = {
                let mut addresses = this.lock();
                let Some(state) = addresses.get_mut(&ip) else {
                    return;
                };
                state.prune();
                if !state.has_room() {
                    return;
                }
                let Some(waiter) = state.waiters.pop_front() else {
                    return;
                };
                state.held = state.held.saturating_add(1);
                waiter
            };
            Self::hand(this, ip, next);
        }
    }

    /// Sends a held slot of `ip` to `waiter`. Called without the lock: a waiter that
    /// gave up in the meantime hands the slot back, and its drop releases it again.
    fn hand(this: &Arc<Self>, ip: IpAddr, waiter: oneshot::Sender<AddressSlot>) {
        let slot = AddressSlot {
            table: Some(Arc::clone(this)),
            ip,
        };
        drop(waiter.send(slot));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use spyder_model::rate::MAX_INTERVAL;

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
    async fn the_global_limit_spaces_requests_to_any_host_evenly() {
        let global = GlobalLimiter::default();
        let t0 = Instant::now();
        for _ in 0..5 {
            global.acquire(0.0).await;
        }
        assert_eq!(Instant::now(), t0, "0 does not limit");
        for _ in 0..5 {
            global.acquire(4.0).await;
        }
        // Depth 1: the first goes at once, the next four 250 ms apart.
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
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

    /// Lets spawned tasks run until `done` holds (bounded: a failure, not a hang).
    async fn settle(done: impl Fn() -> bool) -> bool {
        for _ in 0..1000 {
            if done() {
                return true;
            }
            tokio::task::yield_now().await;
        }
        done()
    }

    fn addr(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[tokio::test]
    async fn the_cap_holds_and_a_given_back_slot_goes_to_the_first_waiter() {
        let limiter = AddressLimiter::new();
        let ip = addr(1);
        let a = limiter.acquire(ip, 2).await;
        let b = limiter.acquire(ip, 2).await;
        assert_eq!(limiter.held(ip), 2);
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..3 {
            let waiter = limiter.clone();
            let order = Arc::clone(&order);
            waiters.push(tokio::spawn(async move {
                let slot = waiter.acquire(ip, 2).await;
                order.lock().expect("order").push(n);
                slot
            }));
            assert!(settle(|| limiter.waiting(ip) == n + 1).await);
        }
        assert_eq!(limiter.held(ip), 2, "nobody past the cap");
        // Another address is not held up by this one's line.
        let other = limiter.acquire(addr(2), 2).await;
        drop(a);
        assert!(settle(|| order.lock().expect("order").len() == 1).await);
        assert_eq!(limiter.held(ip), 2, "the slot changed hands");
        drop(b);
        assert!(settle(|| order.lock().expect("order").len() == 2).await);
        assert_eq!(
            *order.lock().expect("order"),
            [0, 1],
            "first come, first served"
        );
        assert_eq!(limiter.waiting(ip), 1);
        let first = waiters.remove(0).await.expect("waiter");
        drop(first);
        let rest: Vec<AddressSlot> = futures_util::future::join_all(waiters)
            .await
            .into_iter()
            .map(|r| r.expect("waiter"))
            .collect();
        assert_eq!(limiter.held(ip), 2);
        drop(rest);
        drop(other);
        assert!(limiter.is_empty(), "idle addresses are forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_loses_no_slot() {
        let limiter = AddressLimiter::new();
        let ip = addr(3);
        let held = limiter.acquire(ip, 1).await;
        let gave_up = tokio::time::timeout(Duration::from_secs(1), limiter.acquire(ip, 1)).await;
        assert!(gave_up.is_err(), "no slot while the cap is held");
        assert_eq!(limiter.waiting(ip), 1, "the line still names it");
        // The given-back slot skips the waiter that left and goes to the pool...
        drop(held);
        assert_eq!(limiter.held(ip), 0);
        assert!(limiter.is_empty());
        // ...and a slot handed over just as its waiter leaves is not lost either.
        let held = limiter.acquire(ip, 1).await;
        let waiter = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire(ip, 1).await }
        });
        assert!(settle(|| limiter.waiting(ip) == 1).await);
        drop(held); // the slot is now in the waiter's channel
        waiter.abort();
        let _ = waiter.await;
        assert!(settle(|| limiter.is_empty()).await, "{limiter:?}");
    }

    #[tokio::test]
    async fn cap_changes_apply_to_new_acquisitions() {
        let limiter = AddressLimiter::new();
        let ip = addr(4);
        let one = limiter.acquire(ip, 1).await;
        let queued = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire(ip, 1).await }
        });
        assert!(settle(|| limiter.waiting(ip) == 1).await);
        // A raised cap lets a new caller in at once.
        let two = limiter.acquire(ip, 3).await;
        assert_eq!(limiter.held(ip), 2);
        // The queued caller gets the next slot given back.
        drop(one);
        let three = queued.await.expect("queued waiter");
        assert_eq!(limiter.held(ip), 2);
        // Lowered below what is held: nothing closes, given-back slots are not passed
        // on until the count is under the new cap.
        let four = limiter.acquire(ip, 3).await;
        assert_eq!(limiter.held(ip), 3);
        let blocked = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire(ip, 1).await }
        });
        assert!(settle(|| limiter.waiting(ip) == 1).await);
        drop(two);
        drop(three);
        assert_eq!(limiter.held(ip), 1);
        assert_eq!(limiter.waiting(ip), 1, "still at the cap of 1");
        drop(four);
        let last = blocked.await.expect("blocked waiter");
        assert_eq!(limiter.held(ip), 1);
        drop(last);
        assert!(limiter.is_empty());
    }

    #[tokio::test]
    async fn zero_means_no_cap_but_slots_are_still_counted() {
        let limiter = AddressLimiter::new();
        let ip = addr(5);
        let mut slots = Vec::new();
        for _ in 0..1000 {
            slots.push(limiter.acquire(ip, 0).await);
        }
        assert_eq!(limiter.held(ip), 1000);
        // Counted, so a cap set later applies to what is already open.
        let late = tokio::spawn({
            let limiter = limiter.clone();
            async move { limiter.acquire(ip, 999).await }
        });
        assert!(settle(|| limiter.waiting(ip) == 1).await);
        slots.truncate(998);
        let late = late.await.expect("late waiter");
        assert_eq!(limiter.held(ip), 999);
        drop(slots);
        drop(late);
        assert!(limiter.is_empty());
    }

    #[tokio::test]
    async fn many_addresses_leave_no_entries_behind() {
        let limiter = AddressLimiter::new();
        for i in 0..10_000u32 {
            let slot = limiter.acquire(IpAddr::from(i.to_be_bytes()), 32).await;
            assert_eq!(slot.ip(), IpAddr::from(i.to_be_bytes()));
            assert!(limiter.len() <= 1);
        }
        assert!(limiter.is_empty());
    }

    #[test]
    fn address_limiter_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<AddressLimiter>();
        assert_send_sync::<AddressSlot>();
    }
}

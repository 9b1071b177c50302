//! Our own DNS client on hickory-proto messages (SPEC §3.7).
//!
//! [`DnsClient`] sends queries over a few UDP sockets multiplexed by random ID,
//! accepts a reply only when sender, ID and question all match,
//! retries over TCP when a reply is truncated, rotates servers on timeout, SERVFAIL or
//! REFUSED, bounds open queries per server, and caches answers by `(name, type)`
//! with concurrent identical lookups sharing one query.
//!
//! [`resolve`](fn@resolve) is step 3 of the crawl: the A, AAAA, NS, CNAME and MX queries of one
//! host under one deadline, folded into a [`Resolution`].
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use std::time::Duration;
//! use spyder_probe::dns::{DnsClient, resolve};
//! use spyder_probe::model::HostName;
//! let client = DnsClient::new(4, 10_000)?;
//! let host = HostName::from_input("example.com").expect("valid");
//! let settings = spyder_probe::DnsSettings::default();
//! let r = resolve(&client, &host, &settings, Duration::from_secs(10)).await;
//! println!("{:?}: {:?}", r.status, r.addresses);
//! # Ok(()) }
//! ```

mod cache;
mod lookup;
mod resolve;
mod transport;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Record, RecordType};
use spyder_model::HostName;
use tokio::sync::{Semaphore, oneshot};

use crate::DnsSettings;
use cache::{Cache, Key};
use transport::{DropCounter, Transport};

pub use resolve::{Resolution, ResolveStatus, resolve, resolve_addresses};
/// The client's query encoding and reply matching, re-exported for the crate's own
/// benchmarks (`benches/dns.rs`); not part of the API.
#[doc(hidden)]
pub use transport::Question;

/// Most UDP sockets a client multiplexes over.
pub const MAX_SOCKETS: usize = 64;
/// Most retries honoured, whatever the settings say.
pub const MAX_RETRIES: u32 = 10;

/// Interval at which a lookup queued for a server checks whether its callers are
/// still waiting (its place in the queue is kept meanwhile).
const QUEUE_CHECK: Duration = Duration::from_secs(1);
/// Shortest per-try timeout the adaptive estimate may give (SPEC §3.7).
const MIN_TRY_TIMEOUT: Duration = Duration::from_millis(50);
/// Per-try timeout before a server has answered anything (RFC 6298's initial RTO),
/// capped by `query_timeout`.
const INITIAL_TRY_TIMEOUT: Duration = Duration::from_secs(1);
/// Time a query waited for a free slot (SPEC §3.7, §3.13).
pub const QUEUE_WAIT_METRIC: &str = spyder_model::telemetry::DNS_QUEUE_WAIT.name;
/// Network time of one answered UDP or TCP try.
pub const QUERY_DURATION_METRIC: &str = spyder_model::telemetry::DNS_QUERY_DURATION.name;
/// UDP tries that got no reply within their adaptive timeout (each is followed by a
/// retry unless it was a lookup's last); the try keeps listening meanwhile.
pub const TRY_TIMEOUTS_METRIC: &str = spyder_model::telemetry::DNS_TRY_TIMEOUTS.name;

pub use spyder_model::resolv_conf::{parse_resolv_conf, system_servers};

/// Why a query produced no answer. NXDOMAIN and NODATA are answers, not errors.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DnsError {
    /// No matching reply within `query_timeout` on the last try (or the caller's deadline).
    #[error("DNS query timed out")]
    Timeout,
    /// The last server tried answered SERVFAIL.
    #[error("DNS server failure (SERVFAIL)")]
    ServFail,
    /// The last server tried answered REFUSED.
    #[error("DNS query refused (REFUSED)")]
    Refused,
    /// The last server tried answered another error code.
    #[error("DNS error response {0}")]
    Rcode(ResponseCode),
    /// `settings.servers` is empty.
    #[error("no DNS servers configured")]
    NoServers,
    /// The name cannot be put in a query.
    #[error("name cannot be queried: {0}")]
    InvalidName(String),
    /// A socket failed.
    #[error("DNS I/O error: {0}")]
    Io(Arc<std::io::Error>),
    /// The lookup task ended without a result (runtime shutting down).
    #[error("DNS lookup abandoned")]
    Cancelled,
}

impl From<std::io::Error> for DnsError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(Arc::new(e))
    }
}

/// A final reply: NOERROR (possibly NODATA) or NXDOMAIN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// `NoError` or `NXDomain`.
    pub rcode: ResponseCode,
    /// The answer section, in server order (CNAMEs included).
    pub records: Vec<Record>,
}

impl Answer {
    fn from_message(msg: Message) -> Self {
        Self {
            rcode: msg.metadata.response_code,
            records: msg.answers,
        }
    }
}

type Waiters = Vec<oneshot::Sender<Result<Answer, DnsError>>>;

/// The lookup in flight for a key: its number, the callers waiting for it and the
/// time it spent waiting for free slots.
struct FlightEntry {
    id: u64,
    waiters: Waiters,
    clock: Arc<FlightClock>,
}

type Flights = HashMap<Key, FlightEntry>;

/// One lookup's clock, shared with its callers: the time it has spent waiting for a
/// free slot (`max_inflight`), and its callers' latest deadline. A slot wait is
/// queueing, not network time, so it does not count against a caller's DNS deadline
/// (SPEC §3.7 "Under load"); the task deadline bounds it. Without this, thousands of tasks starting at once spent their whole DNS phase
/// in the slot queue and failed names that resolve.
#[derive(Debug, Default)]
struct FlightClock {
    /// Waits finished, and the start of the one under way.
    state: Mutex<(Duration, Option<tokio::time::Instant>)>,
    /// The latest deadline of the lookup's callers that have one (before slot waits
    /// move it back): the last try listens until then.
    callers_deadline: Mutex<Option<tokio::time::Instant>>,
}

impl FlightClock {
    /// A wait starts now and lasts until the returned guard is dropped.
    fn waiting(&self) -> SlotWait<'_> {
        lock(&self.state).1 = Some(tokio::time::Instant::now());
        SlotWait(self)
    }

    /// A caller with `deadline` joined.
    fn caller(&self, deadline: tokio::time::Instant) {
        let mut latest = lock(&self.callers_deadline);
        if latest.is_none_or(|d| d < deadline) {
            *latest = Some(deadline);
        }
    }

    /// Until when the lookup's callers wait at the latest (`None`: none has a
    /// deadline), their slot waits included.
    fn listen_until(&self) -> Option<tokio::time::Instant> {
        let deadline = (*lock(&self.callers_deadline))?;
        deadline.checked_add(self.total())
    }

    /// All waiting so far, the current wait included.
    fn total(&self) -> Duration {
        let state = lock(&self.state);
        let current = state.1.map_or(Duration::ZERO, |since| since.elapsed());
        state.0.saturating_add(current)
    }
}

/// One slot wait under way; ends when dropped, however the wait ends.
struct SlotWait<'a>(&'a FlightClock);

impl Drop for SlotWait<'_> {
    fn drop(&mut self) {
        let mut state = lock(&self.0.state);
        if let Some(since) = state.1.take() {
            state.0 = state.0.saturating_add(since.elapsed());
        }
    }
}

/// How often a caller past its deadline re-checks a lookup that is still waiting
/// for a slot.
const SLOT_WAIT_RECHECK: Duration = Duration::from_millis(250);

struct Inner {
    transport: Transport,
    cache: Cache,
    cache_size: usize,
    flights: Mutex<Flights>,
    next_flight: AtomicU64,
    limits: Mutex<HashMap<SocketAddr, (usize, Arc<Semaphore>)>>,
    /// Round-trip estimates per server, for the per-try timeout.
    rtt: Mutex<HashMap<SocketAddr, RttEstimate>>,
    dropped: Arc<DropCounter>,
    /// UDP tries timed out so far.
    try_timeouts: AtomicU64,
    /// Per server: how its tries ended, for the one warning when most time out.
    server_tries: Mutex<HashMap<SocketAddr, ServerTries>>,
}

/// Tries to one server that ended (answered, failed or timed out).
#[derive(Default)]
struct ServerTries {
    ended: u64,
    timed_out: u64,
    warned: bool,
}

/// Tries a server must have had before "most of them time out" is said.
const SERVER_WARN_AFTER_TRIES: u64 = 10;

impl Inner {
    /// Counts how a try to `server` ended; warns once per server when, after
    /// [`SERVER_WARN_AFTER_TRIES`], more than half of its tries timed out — the usual
    /// sign of a resolver that is not there (a wrong `dns.servers`, a firewall).
    fn note_try(&self, server: SocketAddr, timed_out: bool) {
        let Ok(mut tries) = self.server_tries.lock() else {
            return;
        };
        let entry = tries.entry(server).or_default();
        entry.ended = entry.ended.saturating_add(1);
        entry.timed_out = entry.timed_out.saturating_add(u64::from(timed_out));
        if !entry.warned
            && entry.ended >= SERVER_WARN_AFTER_TRIES
            && entry.timed_out.saturating_mul(2) > entry.ended
        {
            entry.warned = true;
            tracing::warn!(
                %server,
                timed_out = entry.timed_out,
                tries = entry.ended,
                "most DNS queries to {server} time out; check that it answers, or point dns.servers at resolvers that do"
            );
        }
    }
}

/// A server's smoothed round trip and its variation, as TCP keeps them (RFC 6298).
/// Every try has its own query ID, so a reply always belongs to one try and every
/// answered try is a clean sample (Karn's problem does not arise).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RttEstimate {
    /// Smoothed round trip, seconds (`None` before the first sample).
    srtt: Option<f64>,
    /// Round-trip variation, seconds.
    rttvar: f64,
}

impl RttEstimate {
    /// Folds in one measured round trip.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_secs_f64();
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2.0;
            }
            Some(srtt) => {
                self.rttvar = 0.75 * self.rttvar + 0.25 * (srtt - r).abs();
                self.srtt = Some(0.875 * srtt + 0.125 * r);
            }
        }
    }

    /// The timeout of a try after `timeouts` tries of this lookup timed out: smoothed
    /// RTT + 4 × variation, doubled per timeout (as TCP backs off its RTO), clamped to
    /// [50 ms, `max`]; before any sample, 1 s (clamped the same way).
    pub fn try_timeout(&self, timeouts: u32, max: Duration) -> Duration {
        let base = match self.srtt {
            None => INITIAL_TRY_TIMEOUT,
            Some(srtt) => {
                Duration::try_from_secs_f64(srtt + 4.0 * self.rttvar).unwrap_or(INITIAL_TRY_TIMEOUT)
            }
        };
        let backed_off = base.saturating_mul(1u32 << timeouts.min(16));
        let floor = MIN_TRY_TIMEOUT.min(max);
        backed_off.clamp(floor, max.max(floor))
    }
}

/// The probe's DNS client. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct DnsClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for DnsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsClient")
            .field("transport", &self.inner.transport)
            .field("cache_size", &self.inner.cache_size)
            .finish_non_exhaustive()
    }
}

impl DnsClient {
    /// A client multiplexing over `sockets` UDP sockets (clamped to 1–64) with a cache
    /// of `cache_size` entries (0 disables it). Must be called inside a tokio runtime.
    pub fn new(sockets: usize, cache_size: usize) -> std::io::Result<Self> {
        let dropped = Arc::new(DropCounter::default());
        let transport = Transport::new(sockets.clamp(1, MAX_SOCKETS), Arc::clone(&dropped))?;
        Ok(Self {
            inner: Arc::new(Inner {
                transport,
                cache: Cache::new(cache_size),
                cache_size,
                flights: Mutex::default(),
                next_flight: AtomicU64::new(0),
                limits: Mutex::default(),
                rtt: Mutex::default(),
                dropped,
                try_timeouts: AtomicU64::new(0),
                server_tries: Mutex::default(),
            }),
        })
    }

    /// Asks `settings.servers` for `rtype` records of `name`.
    ///
    /// Served from the cache when possible; concurrent identical lookups share one
    /// query. NXDOMAIN and NODATA are `Ok`; SERVFAIL, REFUSED and timeouts are retried
    /// on the next server up to `settings.retries` times and then returned as errors.
    /// Cancelling the returned future does not cancel the shared lookup.
    ///
    /// Records no duration: `spyder_dns_lookup_duration_seconds` is the DNS phase of a
    /// task, observed once per task by the engine.
    pub async fn query(
        &self,
        name: &HostName,
        rtype: RecordType,
        settings: &DnsSettings,
    ) -> Result<Answer, DnsError> {
        self.query_shared(name, rtype, settings).await
    }

    /// Replies dropped so far: unmatched, late, spoofed or undecodable.
    pub fn dropped_replies(&self) -> u64 {
        self.inner.dropped.get()
    }

    /// UDP tries that timed out so far. A reply dropped as late answers one of them,
    /// so against honest servers `dropped_replies() <= try_timeouts()`.
    pub fn try_timeouts(&self) -> u64 {
        self.inner.try_timeouts.load(Ordering::Relaxed)
    }

    async fn query_shared(
        &self,
        name: &HostName,
        rtype: RecordType,
        settings: &DnsSettings,
    ) -> Result<Answer, DnsError> {
        match self.join(name, rtype, settings) {
            Joined::Cached(answer) => Ok(answer),
            Joined::Flight(rx, _) => rx.await.unwrap_or(Err(DnsError::Cancelled)),
        }
    }

    /// Like [`DnsClient::query`], giving up at `deadline` (none: no deadline). Time
    /// the lookup spends waiting for a free slot moves the deadline back by as much:
    /// the deadline is for network time, and the caller's own outer deadline (the
    /// task's) bounds the queueing.
    async fn query_until(
        &self,
        name: &HostName,
        rtype: RecordType,
        settings: &DnsSettings,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Answer, DnsError> {
        let (rx, clock) = match self.join(name, rtype, settings) {
            Joined::Cached(answer) => return Ok(answer),
            Joined::Flight(rx, clock) => (rx, clock),
        };
        let Some(deadline) = deadline else {
            return rx.await.unwrap_or(Err(DnsError::Cancelled));
        };
        clock.caller(deadline);
        // Waits before this caller joined were not its time.
        let before = clock.total();
        let waited = || clock.total().saturating_sub(before);
        tokio::pin!(rx);
        let mut until = deadline;
        loop {
            match tokio::time::timeout_at(until, &mut rx).await {
                Ok(result) => return result.unwrap_or(Err(DnsError::Cancelled)),
                Err(_) => {
                    let Some(moved) = deadline.checked_add(waited()) else {
                        return rx.await.unwrap_or(Err(DnsError::Cancelled));
                    };
                    let now = tokio::time::Instant::now();
                    if moved <= now {
                        return Err(DnsError::Timeout);
                    }
                    // Still queued past the deadline: look again a little later.
                    until = moved.max(now + SLOT_WAIT_RECHECK);
                }
            }
        }
    }

    /// The cached answer, or a receiver for the flight of `(name, rtype)` (joined, or
    /// started) and that flight's slot waits.
    fn join(&self, name: &HostName, rtype: RecordType, settings: &DnsSettings) -> Joined {
        let key: Key = (name.as_str().to_owned(), rtype);
        {
            let mut flights = lock(&self.inner.flights);
            // Checked under the flights lock: a finishing lookup fills the cache before
            // it leaves `flights`, so a caller either hits the cache or joins.
            if let Some(answer) = self.inner.cache.get(&key) {
                return Joined::Cached(answer);
            }
            let (tx, rx) = oneshot::channel();
            match flights.entry(key.clone()) {
                Entry::Occupied(mut e) => {
                    let entry = e.get_mut();
                    entry.waiters.push(tx);
                    Joined::Flight(rx, Arc::clone(&entry.clock))
                }
                Entry::Vacant(e) => {
                    let id = self.inner.next_flight.fetch_add(1, Ordering::Relaxed);
                    let clock = Arc::new(FlightClock::default());
                    e.insert(FlightEntry {
                        id,
                        waiters: vec![tx],
                        clock: Arc::clone(&clock),
                    });
                    let flight = Flight {
                        inner: Arc::clone(&self.inner),
                        key,
                        id,
                        clock: Arc::clone(&clock),
                        result: None,
                    };
                    tokio::spawn(flight.run(name.clone(), settings.clone()));
                    Joined::Flight(rx, clock)
                }
            }
        }
    }
}

/// What joining a lookup gave.
enum Joined {
    Cached(Answer),
    Flight(
        oneshot::Receiver<Result<Answer, DnsError>>,
        Arc<FlightClock>,
    ),
}

/// One shared lookup; whatever way it ends, its waiters hear about it.
struct Flight {
    inner: Arc<Inner>,
    key: Key,
    id: u64,
    clock: Arc<FlightClock>,
    result: Option<Result<Answer, DnsError>>,
}

impl Flight {
    async fn run(mut self, name: HostName, settings: DnsSettings) {
        let result = self
            .inner
            .lookup(&name, &self.key, self.id, &self.clock, &settings)
            .await;
        self.result = Some(result.map(|(answer, ttl)| {
            if let Some(ttl) = ttl {
                self.inner.cache.put(self.key.clone(), answer.clone(), ttl);
            }
            answer
        }));
    }
}

impl Drop for Flight {
    fn drop(&mut self) {
        let waiters = {
            let mut flights = lock(&self.inner.flights);
            match flights.get(&self.key) {
                Some(entry) if entry.id == self.id => flights.remove(&self.key),
                _ => None, // already given up, and maybe replaced by a newer flight
            }
        };
        let waiters = waiters.map(|entry| entry.waiters).unwrap_or_default();
        let result = self.result.take().unwrap_or(Err(DnsError::Cancelled));
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

impl Inner {
    /// Folds one answered UDP try into `server`'s estimate and the network-time
    /// histogram.
    fn observe_rtt(&self, server: SocketAddr, rtt: Duration) {
        spyder_model::telemetry::dns_query_duration().record(rtt.as_secs_f64());
        lock(&self.rtt).entry(server).or_default().sample(rtt);
    }

    /// The semaphore bounding open queries to `server`.
    fn limit(&self, server: SocketAddr, max_inflight: usize) -> Arc<Semaphore> {
        let max = max_inflight.max(1);
        let mut limits = lock(&self.limits);
        let slot = limits
            .entry(server)
            .or_insert_with(|| (max, Arc::new(Semaphore::new(max))));
        if slot.0 != max {
            // Settings changed: queries already holding the old limit finish under it.
            *slot = (max, Arc::new(Semaphore::new(max)));
        }
        Arc::clone(&slot.1)
    }

    /// True when every caller waiting for flight `id` of `key` has gone away. The
    /// flight is then withdrawn at once, so a new caller starts a fresh one instead
    /// of joining a lookup about to give up.
    fn abandoned(&self, key: &Key, id: u64) -> bool {
        let mut flights = lock(&self.flights);
        match flights.get(key) {
            Some(entry) if entry.id == id => {
                let gone = entry.waiters.iter().all(oneshot::Sender::is_closed);
                if gone {
                    flights.remove(key);
                }
                gone
            }
            _ => true,
        }
    }
}

/// A reply's bytes through the client's answer handling, for the fuzz targets
/// (`fuzz/`): decoded as the receive task does, matched against the question it
/// carries (or `example.com A`), its cache lifetime computed, stored and read back
/// from a cache, and folded as every one of the five answers of step 3. `None` when
/// the bytes are no DNS message or their question names no host. Not part of the API.
#[doc(hidden)]
pub fn fuzz_reply(bytes: &[u8]) -> Option<(bool, Option<Duration>, Resolution)> {
    let msg = Message::from_vec(bytes).ok()?;
    let (name, rtype) = match msg.queries.first() {
        Some(q) => (q.name().to_ascii(), q.query_type()),
        None => ("example.com".to_owned(), RecordType::A),
    };
    let host = HostName::from_input(name.strip_suffix('.').unwrap_or(&name)).ok()?;
    let answered = Question::new(host.as_str(), rtype).is_ok_and(|q| q.answered_by(&msg));
    let ttl = cache::cache_ttl(&msg, rtype);
    let reply = match msg.metadata.response_code {
        ResponseCode::NoError | ResponseCode::NXDomain => Ok(Answer::from_message(msg)),
        ResponseCode::ServFail => Err(DnsError::ServFail),
        ResponseCode::Refused => Err(DnsError::Refused),
        other => Err(DnsError::Rcode(other)),
    };
    if let (Ok(answer), Some(ttl)) = (&reply, ttl) {
        let cache = Cache::new(1);
        let key: Key = (host.as_str().to_owned(), rtype);
        cache.put(key.clone(), answer.clone(), ttl);
        let _ = cache.get(&key);
    }
    let r = &reply;
    Some((answered, ttl, resolve::assemble(&host, r, r, r, r, r)))
}

/// Locks a mutex, ignoring poisoning: every critical section here leaves its data
/// consistent.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_entry_point_folds_a_reply() {
        use hickory_proto::op::{MessageType, OpCode, Query};
        use hickory_proto::rr::rdata::{A, CNAME};
        use hickory_proto::rr::{Name, RData};
        let name = Name::from_ascii("www.example.com.").unwrap();
        let edge = Name::from_ascii("edge.example.net.").unwrap();
        let mut msg = Message::new(7, MessageType::Response, OpCode::Query);
        msg.add_query(Query::query(name.clone(), RecordType::A));
        msg.add_answer(Record::from_rdata(
            name,
            60,
            RData::CNAME(CNAME(edge.clone())),
        ));
        msg.add_answer(Record::from_rdata(
            edge,
            30,
            RData::A(A(std::net::Ipv4Addr::new(192, 0, 2, 1))),
        ));
        let (answered, ttl, r) = fuzz_reply(&msg.to_vec().unwrap()).unwrap();
        assert!(answered);
        assert_eq!(ttl, Some(Duration::from_secs(30)));
        assert_eq!(r.addresses, vec![std::net::IpAddr::from([192, 0, 2, 1])]);
        assert_eq!(r.aliases.len(), 1);
        assert!(fuzz_reply(b"\x00").is_none());
    }

    #[test]
    fn the_try_timeout_follows_the_measured_round_trip() {
        let max = Duration::from_secs(2);
        let mut rtt = RttEstimate::default();
        assert_eq!(rtt.try_timeout(0, max), Duration::from_secs(1));
        assert_eq!(
            rtt.try_timeout(0, Duration::from_millis(300)),
            Duration::from_millis(300)
        );
        for _ in 0..50 {
            rtt.sample(Duration::from_millis(40));
        }
        // A steady 40 ms server: the variation decays, the timeout nears 40 ms and
        // never goes below the 50 ms floor.
        let t = rtt.try_timeout(0, max);
        assert!(
            t >= Duration::from_millis(50) && t < Duration::from_millis(60),
            "{t:?}"
        );
        // Each timed-out try doubles it, up to query_timeout.
        assert!(rtt.try_timeout(1, max) >= Duration::from_millis(80));
        assert_eq!(rtt.try_timeout(10, max), max);
        assert_eq!(rtt.try_timeout(u32::MAX, max), max);
        // A jittery server gets room for its variation.
        let mut jittery = RttEstimate::default();
        for i in 0..50u64 {
            jittery.sample(Duration::from_millis(if i % 2 == 0 { 20 } else { 200 }));
        }
        assert!(jittery.try_timeout(0, max) > Duration::from_millis(300));
        // A query_timeout under the floor wins.
        assert_eq!(
            rtt.try_timeout(0, Duration::from_millis(10)),
            Duration::from_millis(10)
        );
    }

    #[test]
    fn client_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<DnsClient>();
        check::<Answer>();
        check::<DnsError>();
        check::<Resolution>();
    }

    #[test]
    fn client_outside_runtime_is_an_error() {
        assert!(DnsClient::new(1, 0).is_err());
    }

    #[tokio::test]
    async fn no_servers_is_an_error() {
        let client = DnsClient::new(1, 0).unwrap();
        let settings = DnsSettings {
            servers: vec![],
            ..DnsSettings::default()
        };
        let host = HostName::from_input("example.com").unwrap();
        let err = client.query(&host, RecordType::A, &settings).await;
        assert!(matches!(err, Err(DnsError::NoServers)));
    }
}

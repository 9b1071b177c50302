//! The shared state every ops endpoint answers from: [`OpsState`] (built with
//! [`OpsStateBuilder`]), the probe's [`Metadata`], and what a request handler sees
//! while the listener serves ([`Served`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::checks::CheckCache;
use crate::events::{DEFAULT_EVENTS_INTERVAL, DEFAULT_HISTORY_SIZE, EventHub};
use crate::{Control, HealthCheck, KeyStore, MetricsHandle, RateLimiter, Readiness};

/// Default time between two rounds of health checks.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Default bound on one run of one check (SPEC §2.7: 5 s).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on connections the ops listener serves at once; past it, new ones
/// wait in the kernel's accept queue, so a flood of idle connections cannot take the
/// descriptors the crawl needs.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// The `metadata` object of `/ready` and `/health`, and the identity of the probe.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Metadata {
    /// `probe`: the probe's name.
    pub probe: String,
    /// `run`: the run id.
    pub run: String,
    /// `version`: the binary's version.
    pub version: String,
}

/// Everything the ops endpoints answer from. Cheap to clone. Build it with
/// [`OpsState::builder`].
#[derive(Clone)]
pub struct OpsState {
    pub(crate) inner: Arc<StateInner>,
}

pub(crate) struct StateInner {
    pub(crate) metadata: Metadata,
    pub(crate) metrics: Option<MetricsHandle>,
    pub(crate) readiness: Readiness,
    pub(crate) checks: Arc<[Arc<dyn HealthCheck>]>,
    pub(crate) keys: KeyStore,
    pub(crate) rate_limiter: RateLimiter,
    pub(crate) control: Arc<dyn Control>,
    pub(crate) check_interval: Duration,
    pub(crate) check_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) events: Arc<EventHub>,
}

impl fmt::Debug for OpsState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("OpsState")
            .field("metadata", &inner.metadata)
            .field("metrics", &inner.metrics.is_some())
            .field("readiness", &inner.readiness)
            .field(
                "checks",
                &inner.checks.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .field("keys", &inner.keys)
            .field("rate_limiter", &inner.rate_limiter)
            .field("check_interval", &inner.check_interval)
            .field("check_timeout", &inner.check_timeout)
            .field("events", &inner.events)
            .finish_non_exhaustive()
    }
}

impl OpsState {
    /// Starts a state for `metadata` whose API drives `control`. Everything else has
    /// a default: no metrics handle, a fresh [`Readiness`], no checks, no keys (the
    /// API then answers `401 NO_API_KEYS`), the default [`RateLimiter`], checks every
    /// 2 s with a 5 s timeout, a dashboard snapshot every second and 1,000 kept.
    pub fn builder(metadata: Metadata, control: Arc<dyn Control>) -> OpsStateBuilder {
        OpsStateBuilder {
            metadata,
            control,
            metrics: None,
            readiness: Readiness::new(),
            checks: Vec::new(),
            keys: KeyStore::default(),
            rate_limiter: RateLimiter::default(),
            check_interval: DEFAULT_CHECK_INTERVAL,
            check_timeout: DEFAULT_CHECK_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            history_size: DEFAULT_HISTORY_SIZE,
            events_interval: DEFAULT_EVENTS_INTERVAL,
        }
    }

    /// The readiness flags (a clone shares them).
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// The API keys (a clone shares them).
    pub fn keys(&self) -> &KeyStore {
        &self.inner.keys
    }

    /// The API's token bucket (a clone shares it).
    pub fn rate_limiter(&self) -> &RateLimiter {
        &self.inner.rate_limiter
    }

    /// The dashboard's event hub: its snapshots and clients (a clone shares it).
    pub fn events(&self) -> Arc<EventHub> {
        Arc::clone(&self.inner.events)
    }
}

/// Builds an [`OpsState`]; see [`OpsState::builder`].
pub struct OpsStateBuilder {
    metadata: Metadata,
    control: Arc<dyn Control>,
    metrics: Option<MetricsHandle>,
    readiness: Readiness,
    checks: Vec<Arc<dyn HealthCheck>>,
    keys: KeyStore,
    rate_limiter: RateLimiter,
    check_interval: Duration,
    check_timeout: Duration,
    max_connections: usize,
    history_size: usize,
    events_interval: Duration,
}

impl fmt::Debug for OpsStateBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsStateBuilder")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

impl OpsStateBuilder {
    /// Serves `/metrics` from `handle` (without one, `/metrics` answers 503).
    pub fn metrics(mut self, handle: MetricsHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Uses `readiness` (keep a clone to call `mark_ready`/`begin_shutdown`).
    pub fn readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// Adds one health check; `/health` lists checks in the order they were added.
    pub fn check(mut self, check: impl HealthCheck) -> Self {
        self.checks.push(Arc::new(check));
        self
    }

    /// Adds a shared health check.
    pub fn shared_check(mut self, check: Arc<dyn HealthCheck>) -> Self {
        self.checks.push(check);
        self
    }

    /// Uses `keys` (keep a clone to inspect them).
    pub fn keys(mut self, keys: KeyStore) -> Self {
        self.keys = keys;
        self
    }

    /// Uses `limiter` (keep a clone to apply `api.rate_limit`/`rate_burst` changes).
    pub fn rate_limiter(mut self, limiter: RateLimiter) -> Self {
        self.rate_limiter = limiter;
        self
    }

    /// Time between two rounds of health checks (default 2 s).
    pub fn check_interval(mut self, interval: Duration) -> Self {
        self.check_interval = interval;
        self
    }

    /// Bound on one run of one check (default 5 s); a check that takes longer is
    /// reported unhealthy.
    pub fn check_timeout(mut self, timeout: Duration) -> Self {
        self.check_timeout = timeout;
        self
    }

    /// How many dashboard snapshots the event hub keeps (`dashboard.history_size`,
    /// default 1,000; at least 1).
    pub fn history_size(mut self, size: usize) -> Self {
        self.history_size = size.max(1);
        self
    }

    /// Connections served at once (default [`DEFAULT_MAX_CONNECTIONS`], at least 1);
    /// more wait to be accepted until one closes.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Time between two dashboard snapshots (default 1 s; tests take them faster).
    pub fn events_interval(mut self, interval: Duration) -> Self {
        self.events_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// The state.
    pub fn build(self) -> OpsState {
        OpsState {
            inner: Arc::new(StateInner {
                metadata: self.metadata,
                metrics: self.metrics,
                readiness: self.readiness,
                checks: self.checks.into(),
                keys: self.keys,
                rate_limiter: self.rate_limiter,
                control: self.control,
                check_interval: self.check_interval,
                check_timeout: self.check_timeout,
                max_connections: self.max_connections,
                events: Arc::new(EventHub::new(self.history_size, self.events_interval)),
            }),
        }
    }
}

/// What request handlers see: the state plus the cached check results.
pub(crate) struct Served {
    pub(crate) state: OpsState,
    pub(crate) checks: CheckCache,
    /// Cancelled when serving stops (ends the event streams).
    pub(crate) shutdown: CancellationToken,
}

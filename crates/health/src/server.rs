//! The listener, the shared state and the connection loop.

use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::{CheckCache, spawn_runner};
use crate::events::{DEFAULT_EVENTS_INTERVAL, DEFAULT_HISTORY_SIZE, EventHub, run_sampler};
use crate::{Control, HealthCheck, HealthError, KeyStore, MetricsHandle, RateLimiter, Readiness};

/// Default time between two rounds of health checks.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(2);
/// Default bound on one run of one check (SPEC §2.7: 5 s).
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// How often histogram samples are drained into buckets.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections get to finish once serving stops.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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

/// The bound ops listener: health endpoints, `/metrics` and the REST API on one port.
#[derive(Debug)]
pub struct OpsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl OpsServer {
    /// Binds `addr` as `telemetry.metrics_addr` spells it: Go style `:9090` (all
    /// interfaces, IPv6 and IPv4), `127.0.0.1:0`, `[::1]:9090` or `host:port`.
    /// A busy port is a [`HealthError::Bind`] naming the address.
    pub async fn bind(addr: &str) -> Result<OpsServer, HealthError> {
        let invalid = |reason: &str| HealthError::InvalidAddress {
            addr: addr.to_owned(),
            reason: reason.to_owned(),
        };
        let bind_error = |source| HealthError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = if let Some(port) = addr.strip_prefix(':') {
            let port: u16 = port
                .parse()
                .map_err(|_| invalid("expected :port, host:port or ip:port"))?;
            match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).await {
                Ok(listener) => listener,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    return Err(bind_error(e));
                }
                // No IPv6 on this host: all IPv4 interfaces.
                Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                    .await
                    .map_err(bind_error)?,
            }
        } else if let Ok(socket) = addr.parse::<SocketAddr>() {
            TcpListener::bind(socket).await.map_err(bind_error)?
        } else {
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| invalid("expected :port, host:port or ip:port"))?;
            let port: u16 = port.parse().map_err(|_| invalid("invalid port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(invalid("empty host"));
            }
            TcpListener::bind((host, port)).await.map_err(bind_error)?
        };
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(OpsServer {
            listener,
            local_addr,
        })
    }

    /// The address actually bound (the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled: runs the health checks in the background
    /// (one round at once, then every check interval), takes the dashboard's
    /// snapshots, drains metric histograms periodically, and answers every connection. On cancellation it stops
    /// accepting, lets open connections finish (at most 5 s) and returns.
    ///
    /// Cancel `shutdown` only at the very end of the process's shutdown: while
    /// stopping, `/ready` and the API answer 503 through [`Readiness::begin_shutdown`].
    pub fn serve(self, state: OpsState, shutdown: CancellationToken) -> JoinHandle<()> {
        let (cache, runner) = spawn_runner(
            Arc::clone(&state.inner.checks),
            state.inner.check_interval,
            state.inner.check_timeout,
            shutdown.clone(),
        );
        let upkeep = state
            .inner
            .metrics
            .clone()
            .map(|handle| tokio::spawn(run_upkeep(handle, shutdown.clone())));
        let sampler = tokio::spawn(run_sampler(
            Arc::clone(&state.inner.events),
            Arc::clone(&state.inner.control),
            state.inner.readiness.clone(),
            cache.clone(),
            shutdown.clone(),
        ));
        let served = Arc::new(Served {
            state,
            checks: cache,
            shutdown: shutdown.clone(),
        });
        let listener = self.listener;
        tracing::info!(addr = %self.local_addr, "ops server listening");
        tokio::spawn(async move {
            accept_loop(listener, served, shutdown).await;
            let _ = runner.await;
            let _ = sampler.await;
            if let Some(upkeep) = upkeep {
                let _ = upkeep.await;
            }
        })
    }
}

async fn run_upkeep(handle: MetricsHandle, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(METRICS_UPKEEP_INTERVAL) => handle.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}

async fn accept_loop(listener: TcpListener, served: Arc<Served>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    Arc::clone(&served),
                    shutdown.clone(),
                ));
            }
            Err(e) => {
                tracing::warn!(error = %e, "ops server: accept failed");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(CLOSE_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::debug!("ops server: connections still open after the close grace");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    served: Arc<Served>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    // Cancelled to close this connection at once: an events client too slow to read.
    let kill = CancellationToken::new();
    let service = service_fn({
        let kill = kill.clone();
        move |request| {
            let served = Arc::clone(&served);
            let kill = kill.clone();
            async move { Ok::<_, Infallible>(crate::api::handle(&served, request, peer, &kill).await) }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "ops server: connection ended with an error");
            }
        }
        () = kill.cancelled() => {
            tracing::debug!(%peer, "ops server: connection closed (events client too slow)");
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = tokio::time::timeout(CLOSE_GRACE, connection) => {}
                () = kill.cancelled() => {}
            }
        }
    }
}

//! spyder's ops HTTP surface (SPEC §2.7–§2.9, §3.12–§3.14): one listener on
//! `telemetry.metrics_addr` serving
//!
//! - the health endpoints `GET /live`, `/ready`, `/health` (no key, not rate limited);
//!   checks run in the background and `/health` serves their cached results;
//! - `GET /metrics`, the Prometheus text of the global recorder [`install_metrics`]
//!   installs (every metric of [`METRICS`] described);
//! - the REST API under `/api/v1/`: global token bucket, bearer key compared in
//!   constant time, scope, body size, then the endpoint; `GET /api/v1/events`
//!   streams the dashboard's snapshots ([`EventHub`]) as server-sent events;
//! - `GET /dashboard` (and `/dashboard/app.js`, `/dashboard/app.css`): the static
//!   dashboard page (no key: it holds no data, and reads the API with the key the
//!   operator types).
//!
//! The crate knows nothing of probes, queues or Redis: the binary plugs its run loop
//! in through [`Control`] and its checks through [`HealthCheck`] (or [`FnCheck`]).
//!
//! ```no_run
//! # async fn run(control: std::sync::Arc<dyn spyder_health::Control>) -> Result<(), spyder_health::HealthError> {
//! use spyder_health::{KeyStore, Metadata, OpsServer, OpsState, RateLimiter, Readiness, install_metrics};
//! let metrics = install_metrics()?;
//! let readiness = Readiness::new();
//! let state = OpsState::builder(
//!     Metadata { probe: "local-1".into(), run: "run-1".into(), version: "0.1.0".into() },
//!     control,
//! )
//! .metrics(metrics)
//! .readiness(readiness.clone())
//! .keys(KeyStore::new(Vec::new()))
//! .rate_limiter(RateLimiter::new(100.0, 20))
//! .build();
//! let server = OpsServer::bind(":9090").await?;
//! let stop = tokio_util::sync::CancellationToken::new();
//! let task = server.serve(state, stop.clone());
//! readiness.mark_ready();
//! // … on SIGTERM: readiness.begin_shutdown(); drain; then
//! stop.cancel();
//! let _ = task.await;
//! # Ok(()) }
//! ```
//!
//! While stopping ([`Readiness::begin_shutdown`]), `/ready` answers 503 and the API's
//! changing endpoints answer `503 UNAVAILABLE`; `GET /api/v1/config`, `/stats` and
//! `/keys` keep answering so the shutdown can be watched.
//!
//! # Modules
//!
//! The modules are private; what they define is re-exported here.
//!
//! - `state`: the shared state ([`OpsState`], [`OpsStateBuilder`], [`Metadata`]) and
//!   what a request handler sees.
//! - `server`: the listener ([`OpsServer`]) and the connection loop, which hands each
//!   request to `api`. Files depend one way: `server` → `api` → `state`.
//! - `api`: routing and the API's gate; one file per resource (`ops` for the health
//!   endpoints and `/metrics`, `config`, `stats`, `events`, `control`, `domains`,
//!   `keys`, `dashboard` for the page) and `body`, the body reader and response
//!   builders they share. The page's files are `src/dashboard/`.
//! - `checks`: [`HealthCheck`] and the background runner whose results `/health` serves.
//! - `events`: [`EventHub`], the dashboard's one-second snapshots in a bounded ring,
//!   and the cursors `/api/v1/events` clients read it with.
//! - `readiness`: [`Readiness`], the ready and stopping flags.
//! - `control`: [`Control`], what the API asks of the run loop.
//! - `keys`: [`KeyStore`], API keys matched in constant time.
//! - `rate`: [`RateLimiter`], the API's global token bucket.
//! - `metrics`: [`install_metrics`], the Prometheus recorder. [`METRICS`], the table
//!   it describes, is `spyder_model::telemetry`'s, re-exported here.
//! - `error`: [`HealthError`] and [`ApiError`], the API's error responses.
//! - [`traces`]: the OpenTelemetry trace export (OTLP/HTTP, a bounded span queue that
//!   counts what it drops, a live sampling ratio).

#![deny(missing_docs)]

mod api;
mod checks;
mod control;
mod error;
mod events;
mod keys;
mod metrics;
mod rate;
mod readiness;
mod server;
mod state;
pub mod traces;

pub use api::{BODY_LIMIT, BULK_BODY_LIMIT, KEY_SCOPE_HEADER};
#[doc(hidden)]
pub use api::{BulkEntry, parse_bulk_body};
pub use checks::{CheckOutcome, CheckReport, CheckStatus, FnCheck, HealthCheck};
pub use control::{Control, EnqueueError, PatchOutcome, enqueue_each};
pub use error::{ApiError, HealthError, NO_API_KEYS_MESSAGE};
pub use events::{
    DEFAULT_EVENTS_INTERVAL, DEFAULT_HISTORY_SIZE, EventHub, LAG_LIMIT, MAX_EVENT_STREAMS,
};
pub use keys::{KeyIdentity, KeyInfo, KeyStore, KeyStoreError};
pub use metrics::{DURATION_BUCKETS, MetricsHandle, install_metrics};
pub use rate::RateLimiter;
pub use readiness::Readiness;
pub use server::OpsServer;
pub use spyder_model::telemetry::{METRICS, MetricKind, MetricSpec};
pub use state::{
    DEFAULT_CHECK_INTERVAL, DEFAULT_CHECK_TIMEOUT, DEFAULT_MAX_CONNECTIONS, Metadata, OpsState,
    OpsStateBuilder,
};

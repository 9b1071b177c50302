//! Health checks: what the binary plugs in, and the background runner whose cached
//! results `/health` and `/ready` serve.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::{BoxFuture, FutureExt, join_all};
use serde::Serialize;
use spyder_model::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A check's verdict; ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    /// Working.
    Healthy,
    /// Working with reduced service (e.g. ingest failing, batches spooled).
    Degraded,
    /// Not working; `/health` answers 503.
    Unhealthy,
}

impl CheckStatus {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one run of a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOutcome {
    /// The verdict.
    pub status: CheckStatus,
    /// Details, e.g. `Redis connection OK`; omitted from `/health` when empty.
    pub message: String,
}

impl CheckOutcome {
    /// A healthy outcome.
    pub fn healthy(message: impl Into<String>) -> Self {
        Self {
            status: CheckStatus::Healthy,
            message: message.into(),
        }
    }

    /// A degraded outcome.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self {
            status: CheckStatus::Degraded,
            message: message.into(),
        }
    }

    /// An unhealthy outcome.
    pub fn unhealthy(message: impl Into<String>) -> Self {
        Self {
            status: CheckStatus::Unhealthy,
            message: message.into(),
        }
    }
}

/// One health check of `/health`, e.g. `redis`, `redis_queue`, `ingest`, `progress`
/// (SPEC §2.7). Implemented by the binary; [`FnCheck`] adapts a closure.
pub trait HealthCheck: Send + Sync + 'static {
    /// The check's name in `/health`.
    fn name(&self) -> &'static str;

    /// Whether an unhealthy result also makes `/ready` answer 503 (true for
    /// `redis_queue`: no work can be leased while the queue Redis is down).
    fn gates_readiness(&self) -> bool {
        false
    }

    /// Runs the check once. The runner bounds it with the check timeout (5 s).
    fn check(&self) -> BoxFuture<'_, CheckOutcome>;
}

/// A [`HealthCheck`] made of a name, a readiness flag and an async closure.
///
/// ```
/// use spyder_health::{CheckOutcome, FnCheck};
/// let check = FnCheck::new("redis", false, || async { CheckOutcome::healthy("Redis connection OK") });
/// # let _ = check;
/// ```
pub struct FnCheck<F> {
    name: &'static str,
    gates_readiness: bool,
    run: F,
}

impl<F> fmt::Debug for FnCheck<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FnCheck")
            .field("name", &self.name)
            .field("gates_readiness", &self.gates_readiness)
            .finish_non_exhaustive()
    }
}

impl<F, Fut> FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckOutcome> + Send + 'static,
{
    /// A check called `name` that runs `run`; `gates_readiness` as in
    /// [`HealthCheck::gates_readiness`].
    pub fn new(name: &'static str, gates_readiness: bool, run: F) -> Self {
        Self {
            name,
            gates_readiness,
            run,
        }
    }
}

impl<F, Fut> HealthCheck for FnCheck<F>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = CheckOutcome> + Send + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn gates_readiness(&self) -> bool {
        self.gates_readiness
    }

    fn check(&self) -> BoxFuture<'_, CheckOutcome> {
        (self.run)().boxed()
    }
}

/// The latest result of one check, as `/health` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// The check's name.
    pub name: &'static str,
    /// Its verdict.
    pub status: CheckStatus,
    /// Details; omitted when empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the run finished.
    pub last_checked: Timestamp,
    /// How long the run took, in whole milliseconds.
    pub duration_ms: u64,
    /// Whether the check gates `/ready`.
    #[serde(skip)]
    pub gates_readiness: bool,
}

/// The cached results: `None` until the first round has finished.
pub(crate) type CheckCache = watch::Receiver<Option<Arc<Vec<CheckReport>>>>;

/// Runs every check concurrently, each bounded by `timeout`.
async fn run_round(checks: &[Arc<dyn HealthCheck>], timeout: Duration) -> Vec<CheckReport> {
    join_all(checks.iter().map(|check| async move {
        let started = Instant::now();
        let outcome = match tokio::time::timeout(timeout, check.check()).await {
            Ok(outcome) => outcome,
            Err(_) => CheckOutcome::unhealthy(format!(
                "check timed out after {}",
                describe_duration(timeout)
            )),
        };
        CheckReport {
            name: check.name(),
            status: outcome.status,
            message: outcome.message,
            last_checked: Timestamp::now(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            gates_readiness: check.gates_readiness(),
        }
    }))
    .await
}

fn describe_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Starts the background task: one round at once, then one every `interval`, until
/// `shutdown` is cancelled. Returns the cache the handlers read.
pub(crate) fn spawn_runner(
    checks: Arc<[Arc<dyn HealthCheck>]>,
    interval: Duration,
    timeout: Duration,
    shutdown: CancellationToken,
) -> (CheckCache, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = watch::channel(None);
    let task = tokio::spawn(async move {
        loop {
            let round = tokio::select! {
                round = run_round(&checks, timeout) => round,
                () = shutdown.cancelled() => return,
            };
            for report in &round {
                if report.status != CheckStatus::Healthy {
                    tracing::debug!(
                        check = report.name,
                        status = %report.status,
                        message = %report.message,
                        "health check not healthy"
                    );
                }
            }
            sender.send_replace(Some(Arc::new(round)));
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    });
    (receiver, task)
}

/// The worst status of `reports`; healthy when there are none.
pub(crate) fn worst(reports: &[CheckReport]) -> CheckStatus {
    reports
        .iter()
        .map(|r| r.status)
        .max()
        .unwrap_or(CheckStatus::Healthy)
}

//! What the API asks of the run loop: the [`Control`] trait the binary implements.

use futures_util::future::BoxFuture;
use spyder_model::HostName;

use crate::ApiError;

/// The result of a successful `PATCH /api/v1/config`.
#[derive(Clone, Debug, PartialEq)]
pub struct PatchOutcome {
    /// The whole configuration after the change, nested and redacted.
    pub config: serde_json::Value,
    /// Tier 2 warnings of SPEC §2.10 and alias warnings, in order.
    pub warnings: Vec<String>,
}

/// Why a domain could not be queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// The memory queue is full: `503 QUEUE_FULL`.
    #[error("queue full")]
    QueueFull,
    /// Stopping, or the queue Redis is down: `503 UNAVAILABLE` with this message.
    #[error("{0}")]
    Unavailable(String),
}

/// The run loop, as the API sees it. Implemented by the `spyder` binary; every method
/// is called after authentication and scope checks have passed.
pub trait Control: Send + Sync + 'static {
    /// The current configuration, nested, with keys and URL passwords as `"***"`.
    fn config(&self) -> serde_json::Value;

    /// Applies a partial nested change set atomically (SPEC §2.10, §3.12): returns
    /// `400 INVALID_CONFIG`/`UNKNOWN_FIELD` or `409 APPLY_ERROR` through [`ApiError`]
    /// and then applies nothing.
    fn patch_config(&self, changes: serde_json::Value) -> Result<PatchOutcome, ApiError>;

    /// The body of `GET /api/v1/stats`, in the shape of SPEC §3.12.
    fn stats(&self) -> serde_json::Value;

    /// Queues one normalised host: onto the memory queue (file mode) or LPUSHed to
    /// the Redis work queue (queue mode).
    fn enqueue(&self, host: HostName) -> BoxFuture<'_, Result<(), EnqueueError>>;

    /// Queues many hosts (`POST /api/v1/domains/bulk`), one result per host in order.
    ///
    /// The default calls [`enqueue`](Self::enqueue) one host after the other and,
    /// after the first [`EnqueueError::Unavailable`], fails the rest with the same
    /// error without trying them. Override it to pipeline (e.g. one Redis round trip).
    fn enqueue_many(&self, hosts: Vec<HostName>) -> BoxFuture<'_, Vec<Result<(), EnqueueError>>> {
        Box::pin(enqueue_each(self, hosts))
    }

    /// Queues hosts whose submitter sent a W3C `traceparent` header (validated): in
    /// queue mode the items carry it, so their crawls join that trace (SPEC §3.14).
    /// The default queues them as [`enqueue_many`](Self::enqueue_many) does,
    /// dropping the trace context.
    fn enqueue_traced(
        &self,
        hosts: Vec<HostName>,
        _traceparent: String,
    ) -> BoxFuture<'_, Vec<Result<(), EnqueueError>>> {
        self.enqueue_many(hosts)
    }

    /// Stops leasing new work; running tasks go on. Idempotent.
    fn pause(&self);

    /// Resumes leasing. Idempotent.
    fn resume(&self);

    /// Starts the shutdown path of a first SIGTERM (SPEC §3.14). Called once per
    /// accepted `POST /api/v1/control/stop`.
    fn stop(&self);
}

/// [`Control::enqueue_many`]'s default: [`Control::enqueue`] one host after the other;
/// after the first [`EnqueueError::Unavailable`] the rest fail with the same error
/// without being tried. For overrides that pipeline only some of their queues.
pub async fn enqueue_each<C: Control + ?Sized>(
    control: &C,
    hosts: Vec<HostName>,
) -> Vec<Result<(), EnqueueError>> {
    let mut results = Vec::with_capacity(hosts.len());
    let mut unavailable: Option<EnqueueError> = None;
    for host in hosts {
        if let Some(err) = &unavailable {
            results.push(Err(err.clone()));
            continue;
        }
        let result = control.enqueue(host).await;
        if let Err(err @ EnqueueError::Unavailable(_)) = &result {
            unavailable = Some(err.clone());
        }
        results.push(result);
    }
    results
}

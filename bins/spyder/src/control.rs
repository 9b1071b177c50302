//! The run loop as the REST API sees it (SPEC §3.12): config, stats, domains, pause,
//! resume and stop act on the real run.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use spyder_health::{ApiError, Control, EnqueueError, PatchOutcome};
use spyder_model::HostName;
use spyder_queue::SubmitError;
use tokio_util::sync::CancellationToken;

use crate::run::{Shared, set_paused};

/// Causes listed in `GET /api/v1/stats`.
const STATS_CAUSES: usize = 10;

/// [`Control`] over one run.
pub(crate) struct RunControl {
    pub(crate) shared: Arc<Shared>,
    /// Cancelled to start the SIGTERM path.
    pub(crate) stop: CancellationToken,
}

impl RunControl {
    /// Queues `hosts` (with the submitter's `traceparent`, when it sent one); refused
    /// while stopping.
    async fn submit(
        &self,
        hosts: Vec<HostName>,
        traceparent: Option<String>,
    ) -> Vec<Result<(), EnqueueError>> {
        if self.stop.is_cancelled() {
            let stopping = EnqueueError::Unavailable("stopping".to_owned());
            return vec![Err(stopping); hosts.len()];
        }
        let queue = &self.shared.queue;
        let results = match traceparent {
            Some(tp) => queue.submit_traced(hosts, tp).await,
            None => queue.submit(hosts).await,
        };
        results
            .into_iter()
            .map(|r| {
                r.map_err(|e| match e {
                    SubmitError::Full => EnqueueError::QueueFull,
                    SubmitError::Unavailable(why) => EnqueueError::Unavailable(why),
                })
            })
            .collect()
    }
}

impl Control for RunControl {
    fn config(&self) -> Value {
        self.shared.live.current().redacted()
    }

    fn patch_config(&self, changes: Value) -> Result<PatchOutcome, ApiError> {
        match self.shared.live.patch(&changes) {
            Ok(applied) => {
                let changed: Vec<&str> = applied.changed.iter().map(|k| k.path).collect();
                tracing::info!(changed = ?changed, "config changed through the API");
                for warning in &applied.warnings {
                    tracing::warn!("{warning}");
                }
                Ok(PatchOutcome {
                    config: applied.config.redacted(),
                    warnings: applied.warnings,
                })
            }
            Err(e) => Err(ApiError::config_refused(&e)),
        }
    }

    fn stats(&self) -> Value {
        let shared = &self.shared;
        let config = shared.live.current();
        let tasks = shared.stats.snapshot();
        let records = shared.stats.record_counts();
        let edges: serde_json::Map<String, Value> = records
            .edges
            .iter()
            .map(|(kind, n)| (kind.as_str().to_owned(), json!(n)))
            .collect();
        let depth = shared.depth.lock().map(|d| *d).unwrap_or_default();
        let fleet = shared
            .fleet
            .lock()
            .map(|f| serde_json::to_value(&*f).unwrap_or_default())
            .unwrap_or_default();
        let task_ms = match shared.stats.task_time_percentiles() {
            Some(ps) => {
                // Past the last bucket (60 s) a percentile has no bound: null.
                let bound = |ms: u64| (ms != u64::MAX).then_some(ms);
                json!({"p50": bound(ps[0]), "p90": bound(ps[1]), "p99": bound(ps[2])})
            }
            None => Value::Null,
        };
        let causes: Vec<Value> = shared
            .stats
            .top_causes(STATS_CAUSES)
            .into_iter()
            .map(|(outcome, reason, count)| {
                json!({"outcome": outcome.as_str(), "reason": reason, "count": count})
            })
            .collect();
        let mode = shared.queue.mode();
        let emitter = shared.emitter.status();
        let discovery = shared.sink.as_ref().map(|s| s.totals()).unwrap_or_default();
        json!({
            "probe": config.probe,
            "run": config.run,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": shared.started.elapsed().as_secs(),
            "paused": shared.pool.paused(),
            "workers": {"target": shared.pool.target(), "active": shared.pool.active()},
            "tasks": {"ok": tasks.ok, "error": tasks.error},
            "edges": edges,
            "nodes": {
                "domain": records.domain_nodes,
                "ip": records.ip_nodes,
                "cert": records.cert_nodes,
            },
            "robots_blocked": records.robots_blocked,
            "queue": {
                "mode": mode,
                "pending": depth.pending,
                "processing": depth.processing,
                "dead": depth.dead,
                "held": shared.queue.held(),
            },
            "emitter": {
                "batches_delivered": emitter.batches_delivered,
                "batches_spooled": emitter.batches_spooled,
                "spool_files": emitter.spool_files,
            },
            "discovery": {"enqueued": discovery.enqueued, "dropped": discovery.dropped},
            // Added (issue #14): tasks per outcome, for the dashboard.
            "outcomes": shared
                .stats
                .outcome_totals()
                .into_iter()
                .map(|(outcome, n)| (outcome.as_str().to_owned(), json!(n)))
                .collect::<serde_json::Map<String, Value>>(),
            // Added (issue #14): every probe of the shared queue, from the heartbeats.
            "fleet": fleet,
            // Added (issue #14): task wall-time percentiles (bucket bounds, ms) and the
            // most frequent reasons tasks ended as they did (DNS and TLS errors, …).
            "task_ms": task_ms,
            "causes": causes,
            // Added (issue #14): why the last SIGHUP reload was refused, until one
            // succeeds; null otherwise.
            "config_error": shared.config_error.lock().ok().and_then(|e| e.clone()),
            // Added (issue #14): the newest domain nodes emitted, newest first.
            "recent_discoveries": shared
                .stats
                .recent_discoveries()
                .into_iter()
                .map(|n| json!({"host": n.host, "apex": n.apex, "first_seen": n.first_seen}))
                .collect::<Vec<Value>>(),
        })
    }

    fn enqueue(&self, host: HostName) -> BoxFuture<'_, Result<(), EnqueueError>> {
        Box::pin(async move {
            let mut results = self.enqueue_many(vec![host]).await;
            results
                .pop()
                .unwrap_or_else(|| Err(EnqueueError::Unavailable("no result".to_owned())))
        })
    }

    /// The queue decides how: the memory queue takes the hosts one by one (its
    /// capacity decides per host); the Redis queue sends one `LPUSH` per
    /// [`spyder_queue::LPUSH_CHUNK`] hosts, as `seed` does, and after a failed push
    /// the rest fail with the same error untried.
    fn enqueue_many(&self, hosts: Vec<HostName>) -> BoxFuture<'_, Vec<Result<(), EnqueueError>>> {
        Box::pin(self.submit(hosts, None))
    }

    fn enqueue_traced(
        &self,
        hosts: Vec<HostName>,
        traceparent: String,
    ) -> BoxFuture<'_, Vec<Result<(), EnqueueError>>> {
        Box::pin(self.submit(hosts, Some(traceparent)))
    }

    fn pause(&self) {
        set_paused(&self.shared, true);
        tracing::info!("workers paused");
    }

    fn resume(&self) {
        set_paused(&self.shared, false);
        tracing::info!("workers resumed");
    }

    fn stop(&self) {
        tracing::info!("stop requested through the API; shutting down");
        self.stop.cancel();
    }
}

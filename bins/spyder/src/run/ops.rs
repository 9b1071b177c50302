//! The ops listener (health checks, `/metrics`, the REST API over this run) and the
//! once-a-second watch that feeds the `progress` check and `spyder_queue_depth`.

use std::sync::Arc;
use std::time::Duration;

use spyder_config::{Config, ConfigChange};
use spyder_health::{CheckOutcome, FnCheck, OpsStateBuilder};
use spyder_model::telemetry;
use spyder_sink::RedisDedup;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::input::ReadProgress;

/// Queue lengths are read every this many seconds (one Redis round trip in queue mode).
const DEPTH_EVERY_TICKS: u64 = 5;

/// The ops listener (health, metrics, API) and how to stop it.
pub(super) struct Ops {
    pub readiness: spyder_health::Readiness,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the ops listener: health checks, `/metrics`, the REST API over this run.
pub(super) fn serve_ops(
    server: spyder_health::OpsServer,
    shared: &Arc<Shared>,
    config: &Config,
    redis_dedup: Option<Arc<RedisDedup>>,
    metrics: Option<spyder_health::MetricsHandle>,
    stop_run: CancellationToken,
) -> Ops {
    use spyder_health::{KeyStore, Metadata, OpsState, RateLimiter};
    let control = Arc::new(crate::control::RunControl {
        shared: Arc::clone(shared),
        stop: stop_run,
    });
    let metadata = Metadata {
        probe: config.probe.clone(),
        run: config.run.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let readiness = spyder_health::Readiness::new();
    let mut builder = OpsState::builder(metadata, control)
        .readiness(readiness.clone())
        .keys(KeyStore::new(config.api.keys.clone()))
        .rate_limiter(RateLimiter::new(
            f64::from(config.api.rate_limit),
            config.api.rate_burst,
        ))
        // The dashboard's one-second snapshots (Tier 3: read once here).
        .history_size(config.dashboard.history_size as usize);
    if let Some(metrics) = metrics {
        builder = builder.metrics(metrics);
    }
    builder = with_checks(builder, shared, redis_dedup);
    let state = builder.build();
    let limiter = state.rate_limiter().clone();
    shared.live.subscribe("api", move |change: &ConfigChange| {
        if change.touches("api") {
            limiter.set(
                f64::from(change.new.api.rate_limit),
                change.new.api.rate_burst,
            );
        }
    });
    tracing::info!(addr = %server.local_addr(), "ops listener (health, metrics, API) started");
    let stop = CancellationToken::new();
    let task = server.serve(state, stop.clone());
    readiness.mark_ready();
    Ops {
        readiness,
        stop,
        task,
    }
}

/// The health checks of SPEC §2.7: the Redis servers (queue Redis critical), the
/// ingest endpoint and progress.
fn with_checks(
    mut builder: OpsStateBuilder,
    shared: &Arc<Shared>,
    redis_dedup: Option<Arc<RedisDedup>>,
) -> OpsStateBuilder {
    if let Some(dedup) = redis_dedup {
        builder = builder.check(FnCheck::new("redis", false, move || {
            let dedup = Arc::clone(&dedup);
            async move {
                // A dedup call that failed since the last check shows for one round
                // (SPEC §3.9) even if this PING gets through; the PING clears it.
                let calls_ok = dedup.healthy();
                match dedup.ping().await {
                    Ok(()) if !calls_ok => redis_outcome(Err(
                        "a dedup call failed; its keys counted as new".to_owned(),
                    )),
                    result => redis_outcome(result),
                }
            }
        }));
    }
    if shared.queue.ping().is_some() {
        let queue = Arc::downgrade(&shared.queue);
        builder = builder.check(FnCheck::new("redis_queue", true, move || {
            let queue = queue.upgrade();
            async move {
                match queue.as_deref().and_then(|q| q.ping()) {
                    Some(ping) => redis_outcome(ping.await),
                    None => CheckOutcome::unhealthy("queue gone"),
                }
            }
        }));
    }
    let emitter = shared.emitter.clone();
    builder = builder.check(FnCheck::new("ingest", false, move || {
        let status = emitter.status();
        async move {
            if status.ingest_failing {
                CheckOutcome::degraded(format!(
                    "ingest failing; {} batches spooled",
                    status.spool_files
                ))
            } else {
                CheckOutcome::healthy("")
            }
        }
    }));
    let weak = Arc::downgrade(shared);
    builder = builder.check(FnCheck::new("progress", false, move || {
        let stalled = weak.upgrade().is_some_and(|s| s.stall.stalled());
        async move {
            if stalled {
                CheckOutcome::degraded(
                    "work is pending but no task finished within telemetry.stall_after",
                )
            } else {
                CheckOutcome::healthy("")
            }
        }
    }));
    builder
}

fn redis_outcome(result: Result<(), String>) -> CheckOutcome {
    match result {
        Ok(()) => CheckOutcome::healthy("Redis connection OK"),
        Err(e) => CheckOutcome::unhealthy(format!("Redis connection failed: {e}")),
    }
}

/// Checks for a stall every second (SPEC §5 P-8).
pub(super) async fn watch_stalls(shared: Arc<Shared>, read: Arc<ReadProgress>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        let pending = shared.queue.pending() || !read.done();
        let stall_after = shared.live.current().telemetry.stall_after;
        shared.stall.check(&shared.stats, pending, stall_after);
        if ticks % DEPTH_EVERY_TICKS != 1 {
            continue;
        }
        if let Ok(Some(lengths)) =
            tokio::time::timeout(Duration::from_secs(2), shared.queue.lengths()).await
        {
            for (list, n) in [
                ("pending", lengths.pending),
                ("processing", lengths.processing),
                ("dead", lengths.dead),
            ] {
                telemetry::queue_depth(list).set(n as f64);
            }
            if let Ok(mut depth) = shared.depth.lock() {
                *depth = lengths;
            }
        }
    }
}

//! The fleet heartbeat (issue #14 step 3): in queue mode this probe writes what it
//! is doing into `<key>:probes` every 5 s and reads every other probe's, so its
//! stats (and the dashboard) list the whole fleet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use spyder_queue::fleet::{HEARTBEAT_EVERY, Heartbeat, advertised_ops_addr};

use super::Shared;

/// Budget for the last heartbeat (`stopped`) at shutdown.
pub(super) const LAST_BEAT_BUDGET: Duration = Duration::from_secs(1);

/// The previous beat's counters, for rates.
struct Previous {
    at: Instant,
    tasks: u64,
    edges: u64,
}

/// Beats until aborted.
pub(super) async fn keep_beating(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(HEARTBEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous = None;
    loop {
        tick.tick().await;
        // As the dashboard's badge ranks them (a refused reload first).
        let config_error = shared.config_error.lock().is_ok_and(|e| e.is_some());
        let state = if config_error {
            "config_error"
        } else if shared.pool.paused() {
            "paused"
        } else if shared.stall.stalled() {
            "stalled"
        } else {
            "crawling"
        };
        beat(&shared, state, &mut previous).await;
    }
}

/// The last heartbeat: this probe stopped on purpose (not gone). Takes at most
/// `budget` (what is left of the shutdown deadline, at most [`LAST_BEAT_BUDGET`]): a
/// frozen Redis must not hold the exit.
pub(super) async fn last_beat(shared: &Shared, budget: Duration) {
    let mut previous = None;
    let budget = budget.min(LAST_BEAT_BUDGET);
    let _ = tokio::time::timeout(budget, beat(shared, "stopped", &mut previous)).await;
}

async fn beat(shared: &Shared, state: &str, previous: &mut Option<Previous>) {
    let stats = shared.stats.snapshot();
    let tasks = stats.ok.saturating_add(stats.error);
    let now = Instant::now();
    let (tasks_per_sec, edges_per_sec) = match previous {
        Some(p) => {
            let secs = now.duration_since(p.at).as_secs_f64().max(0.001);
            (
                tasks.saturating_sub(p.tasks) as f64 / secs,
                stats.edges.saturating_sub(p.edges) as f64 / secs,
            )
        }
        None => (stats.rate(), 0.0),
    };
    *previous = Some(Previous {
        at: now,
        tasks,
        edges: stats.edges,
    });
    let config = shared.live.current();
    let heartbeat = Heartbeat {
        probe_id: config.probe.clone(),
        run_id: config.run.clone(),
        state: state.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        tasks_per_sec,
        edges_per_sec,
        workers_active: shared.pool.active() as u64,
        workers_target: shared.pool.target() as u64,
        tasks_total: tasks,
        ops_addr: advertised_ops_addr(&config.telemetry.metrics_addr),
        last_seen_ms: now_ms(),
    };
    if let Some(write) = shared.queue.heartbeat(&heartbeat)
        && let Err(e) = write.await
    {
        tracing::debug!(error = %e, "heartbeat not written");
    }
    if let Some(read) = shared.queue.fleet(now_ms()) {
        match read.await {
            Ok(members) => {
                if let Ok(mut fleet) = shared.fleet.lock() {
                    *fleet = members;
                }
            }
            Err(e) => tracing::debug!(error = %e, "fleet not read"),
        }
    }
}

fn now_ms() -> u64 {
    spyder_model::unix_millis_now()
}

//! The worker pool: `crawling.concurrency` workers, resized at runtime (SPEC §2.10:
//! growing spawns workers at once; shrinking lets running tasks finish, and the
//! surplus workers leave before taking their next lease) and paused by the API.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use spyder_model::telemetry;
use spyder_probe::Outcome;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::task::crawl_one;

/// The pool's counters and its workers.
#[derive(Debug)]
pub(crate) struct Pool {
    target: AtomicUsize,
    running: AtomicUsize,
    /// Workers crawling right now (`spyder_active_workers`).
    active: AtomicUsize,
    tasks: TaskTracker,
    aborts: Mutex<Vec<tokio::task::AbortHandle>>,
    paused: tokio::sync::watch::Sender<bool>,
}

impl Pool {
    pub(super) fn new() -> Self {
        Self {
            target: AtomicUsize::new(0),
            running: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            tasks: TaskTracker::new(),
            aborts: Mutex::new(Vec::new()),
            paused: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Workers wanted now.
    pub(crate) fn target(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    /// Workers crawling now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether leasing is paused.
    pub(crate) fn paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// True (once) for a worker that should leave because the pool shrank.
    fn should_leave(&self) -> bool {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running > self.target()).then(|| running - 1)
            })
            .is_ok()
    }

    /// Waits until every worker has left.
    pub(super) async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Aborts every worker (their tasks are dropped where they stand).
    pub(super) fn abort_all(&self) {
        if let Ok(aborts) = self.aborts.lock() {
            for abort in aborts.iter() {
                abort.abort();
            }
        }
    }
}

/// Sets the pool to `target` workers: spawns the missing ones; surplus ones leave
/// after their current task.
///
/// Spawns at most the number missing when called: a worker that finds the queue
/// done leaves at once, and refilling behind it would never end (with an empty
/// input and a large `concurrency` this used to spin forever).
pub(super) fn resize(shared: &Arc<Shared>, target: usize) {
    let pool = &shared.pool;
    pool.target.store(target, Ordering::Relaxed);
    let missing = target.saturating_sub(pool.running.load(Ordering::Acquire));
    let mut handles = Vec::with_capacity(missing);
    for _ in 0..missing {
        let claimed = pool
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < pool.target()).then_some(running + 1)
            });
        if claimed.is_err() {
            break;
        }
        handles.push(pool.tasks.spawn(work(Arc::clone(shared))).abort_handle());
    }
    if let Ok(mut aborts) = pool.aborts.lock() {
        aborts.retain(|a| !a.is_finished());
        aborts.extend(handles);
    }
}

/// Pauses (`true`) or resumes leasing; running tasks go on (SPEC §3.12, §3.8).
pub(crate) fn set_paused(shared: &Shared, paused: bool) {
    shared.pool.paused.send_replace(paused);
    shared.queue.pause(paused);
}

/// One worker: crawl leases until the queue is done or the pool shrinks.
async fn work(shared: Arc<Shared>) {
    let mut paused = shared.pool.paused.subscribe();
    loop {
        if shared.pool.should_leave() {
            return;
        }
        // Paused: take no new lease (running tasks of other workers go on).
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let Some(leased) = shared.queue.next().await else {
            shared.pool.running.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let host = leased.host.clone();
        let id = shared.next_task.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = shared.in_flight.lock() {
            m.insert(id, host.clone());
        }
        let active = shared.pool.active.fetch_add(1, Ordering::Relaxed) + 1;
        telemetry::active_workers().set(active as f64);
        // A panic outside the probe's own containment (dedup, sink, emitter hand-off)
        // ends this task as `internal`; the worker goes on with its next lease.
        if let Err(panic) = spyder_probe::catch_panic(crawl_one(&shared, leased)).await {
            let reason = format!("panic: {panic}");
            tracing::error!(host = %host, outcome = "internal", reason = %reason, "task failed");
            shared.stats.task_done(Outcome::Internal, 0, Some(&reason));
        }
        let active = shared.pool.active.fetch_sub(1, Ordering::Relaxed) - 1;
        telemetry::active_workers().set(active as f64);
        if let Ok(mut m) = shared.in_flight.lock() {
            m.remove(&id);
        }
    }
}

//! End-to-end acknowledgement: what must happen once a domain's records are safe.
//!
//! Modelled on vector's `EventFinalizers`: a [`Finalizer`] is made when a queue hands
//! out an item, rides with that item's records through dedup and the emitter, and
//! resolves exactly once — [`Status::Delivered`] when the batch holding the records
//! was delivered, written or spooled, [`Status::Failed`] when it was not (dropped,
//! cancelled, lost). Each layer the records pass through adds one step (the queue:
//! ack the item; dedup: commit or release its reservations); resolving runs the
//! steps latest first, as a stack unwinds, in one task on the run's [`TaskTracker`],
//! so a shutdown can wait for every acknowledgement that is still on its way.
//!
//! A finalizer dropped without being resolved resolves as [`Status::Failed`].
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! use std::sync::{Arc, Mutex};
//! use spyder_model::finalize::{Finalizer, Status};
//! use tokio_util::task::TaskTracker;
//!
//! let tracker = TaskTracker::new();
//! let log = Arc::new(Mutex::new(Vec::new()));
//! let mut finalizer = Finalizer::new(&tracker);
//! let queue_log = Arc::clone(&log);
//! finalizer.on_resolve(move |status| async move {
//!     queue_log.lock().expect("log").push(format!("queue: {status:?}"));
//! });
//! let dedup_log = Arc::clone(&log);
//! finalizer.on_resolve(move |status| async move {
//!     dedup_log.lock().expect("log").push(format!("dedup: {status:?}"));
//! });
//! finalizer.resolve(Status::Delivered);
//! tracker.close();
//! tracker.wait().await;
//! assert_eq!(*log.lock().expect("log"), ["dedup: Delivered", "queue: Delivered"]);
//! # }
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use tokio_util::task::TaskTracker;

/// How a domain's records ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// The batch holding them was delivered, written or spooled: they are safe.
    Delivered,
    /// They were dropped, cancelled or lost: the work must be done again.
    Failed,
}

type StepFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Step = Box<dyn FnOnce(Status) -> StepFuture + Send>;

/// The acknowledgement of one queue item, travelling with its records.
#[must_use = "a finalizer resolves as Failed when dropped"]
pub struct Finalizer {
    steps: Vec<Step>,
    tracker: TaskTracker,
}

impl Finalizer {
    /// A finalizer with no steps whose resolution runs on `tracker`.
    pub fn new(tracker: &TaskTracker) -> Self {
        Self {
            steps: Vec::new(),
            tracker: tracker.clone(),
        }
    }

    /// Adds a step; steps run latest first when the finalizer resolves.
    pub fn on_resolve<F, Fut>(&mut self, step: F)
    where
        F: FnOnce(Status) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.steps
            .push(Box::new(move |status| Box::pin(step(status)) as StepFuture));
    }

    /// Whether no step waits.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Resolves: runs every step with `status`, latest first, in one task on the
    /// tracker. Outside a Tokio runtime the steps are dropped unrun.
    pub fn resolve(mut self, status: Status) {
        self.run(status);
    }

    /// Resolves with what `outcome` says once it completes, waiting for it on the
    /// tracker (the caller goes on at once). Dropped unfinished (a runtime shutting
    /// down), the finalizer resolves as [`Status::Failed`].
    pub fn resolve_when<F>(self, outcome: F)
    where
        F: Future<Output = Status> + Send + 'static,
    {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let tracker = self.tracker.clone();
        tracker.spawn(async move {
            let status = outcome.await;
            self.resolve(status);
        });
    }

    fn run(&mut self, status: Status) {
        let steps = std::mem::take(&mut self.steps);
        if steps.is_empty() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        self.tracker.spawn(async move {
            for step in steps.into_iter().rev() {
                step(status).await;
            }
        });
    }
}

impl Drop for Finalizer {
    fn drop(&mut self) {
        self.run(Status::Failed);
    }
}

impl fmt::Debug for Finalizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Finalizer")
            .field("steps", &self.steps.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn recording(log: &Arc<Mutex<Vec<(u8, Status)>>>, id: u8, f: &mut Finalizer) {
        let log = Arc::clone(log);
        f.on_resolve(move |status| async move {
            log.lock().expect("log").push((id, status));
        });
    }

    #[tokio::test]
    async fn a_dropped_finalizer_resolves_once_as_failed() {
        let tracker = TaskTracker::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut f = Finalizer::new(&tracker);
        recording(&log, 1, &mut f);
        recording(&log, 2, &mut f);
        drop(f);
        tracker.close();
        tracker.wait().await;
        assert_eq!(
            *log.lock().expect("log"),
            [(2, Status::Failed), (1, Status::Failed)]
        );
    }

    #[tokio::test]
    async fn resolving_runs_each_step_exactly_once() {
        let tracker = TaskTracker::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut f = Finalizer::new(&tracker);
        recording(&log, 1, &mut f);
        f.resolve(Status::Delivered);
        tracker.close();
        tracker.wait().await;
        assert_eq!(*log.lock().expect("log"), [(1, Status::Delivered)]);
    }

    #[tokio::test]
    async fn resolve_when_waits_for_the_outcome_on_the_tracker() {
        let tracker = TaskTracker::new();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut f = Finalizer::new(&tracker);
        recording(&log, 1, &mut f);
        let (tx, rx) = tokio::sync::oneshot::channel::<Status>();
        f.resolve_when(async move { rx.await.unwrap_or(Status::Failed) });
        tokio::task::yield_now().await;
        assert!(
            log.lock().expect("log").is_empty(),
            "resolved before the outcome"
        );
        tx.send(Status::Delivered).expect("receiver waits");
        tracker.close();
        tracker.wait().await;
        assert_eq!(*log.lock().expect("log"), [(1, Status::Delivered)]);
    }

    #[test]
    fn outside_a_runtime_nothing_panics() {
        let tracker = TaskTracker::new();
        let mut f = Finalizer::new(&tracker);
        f.on_resolve(|_| async {});
        drop(f);
        assert!(tracker.is_empty());
    }
}

//! How the tasks stop: the [`Mode`] they all watch, waits raced against it, and
//! deadlines that cannot overflow.

use std::future::{Future, pending};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

/// Time the replay at shutdown may take.
pub(crate) const SHUTDOWN_REPLAY_BUDGET: Duration = Duration::from_secs(5);

/// What the tasks are doing: running, or stopping by a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Taking records; outputs retry and replay as usual.
    Running,
    /// Graceful shutdown: one try per pending batch until `deadline`.
    Draining {
        /// The shutdown's last moment: the replay at shutdown ends by then.
        end: Instant,
        /// The last moment for delivery tries of pending batches.
        deadline: Instant,
    },
    /// Second signal: no network; writes must end by `deadline`.
    Aborting {
        /// The last moment for spool and stream writes.
        deadline: Instant,
    },
}

/// What a shutdown or abort does to a wait in progress.
#[derive(Clone, Copy)]
pub(crate) enum OnDrain {
    /// Stop waiting at once.
    Cut,
    /// Keep waiting, at most until the drain deadline.
    Deadline,
    /// Keep waiting as if running.
    Ignore,
}

/// What an abort does to a wait in progress.
#[derive(Clone, Copy)]
pub(crate) enum OnAbort {
    /// Stop waiting at once.
    Cut,
    /// Keep waiting, at most until the abort deadline.
    Deadline,
}

/// How a [`race`] ended.
pub(crate) enum Raced<T> {
    /// The future completed.
    Done(T),
    /// The limit (or the drain or abort deadline) passed first.
    TimedOut,
    /// A mode change ended the wait.
    Cut,
}

/// Runs `fut` until it completes, `limit` passes, or a mode change ends the wait.
pub(crate) async fn race<F: Future>(
    mode: &mut watch::Receiver<Mode>,
    limit: Option<Instant>,
    on_drain: OnDrain,
    on_abort: OnAbort,
    fut: F,
) -> Raced<F::Output> {
    let mut fut = std::pin::pin!(fut);
    let mut watching = true;
    loop {
        let current = *mode.borrow_and_update();
        let until = match current {
            Mode::Running => limit,
            Mode::Draining { deadline, .. } => match on_drain {
                OnDrain::Cut => return Raced::Cut,
                OnDrain::Deadline => Some(limit.map_or(deadline, |l| l.min(deadline))),
                OnDrain::Ignore => limit,
            },
            Mode::Aborting { deadline } => match on_abort {
                OnAbort::Cut => return Raced::Cut,
                OnAbort::Deadline => Some(limit.map_or(deadline, |l| l.min(deadline))),
            },
        };
        let timer = async move {
            match until {
                Some(at) => sleep_until(at).await,
                None => pending().await,
            }
        };
        tokio::select! {
            out = &mut fut => return Raced::Done(out),
            changed = mode.changed(), if watching => {
                if changed.is_err() {
                    watching = false;
                }
            }
            () = timer => return Raced::TimedOut,
        }
    }
}

/// How far ahead a deadline that cannot be represented is put: it never comes.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `d` after `from`, saturating: a `d` no clock can add (a huge `Retry-After`, an
/// interval or budget from a caller) gives a deadline about 30 years away.
pub(crate) fn after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .or_else(|| from.checked_add(FAR_FUTURE))
        .unwrap_or(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn deadlines_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(2)),
            now + Duration::from_secs(2)
        );
        assert_eq!(after(now, Duration::MAX), now + FAR_FUTURE);
        assert!(after(now, Duration::from_secs(u64::MAX)) > now + Duration::from_secs(3600));
    }
}

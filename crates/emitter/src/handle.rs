//! The emitter handle: what callers hold. It starts the batcher and the first output,
//! sends records and settings to the batcher, and sets the [`Mode`] every task watches
//! for shutdown and abort, so that a retry, a hung POST or a slow write is cut short.
//!
//! `submit` hands records to the batcher over an unbounded channel and never blocks;
//! memory is bounded upstream, since every submission holds an unacked queue lease
//! until its receipt resolves.

use std::future::{Future, pending};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use spyder_model::Records;
use spyder_model::finalize::{Finalizer, Status};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::batcher::{Batcher, Command, Submission};
use crate::mode::{Mode, SHUTDOWN_REPLAY_BUDGET, after};
use crate::output::{OutputState, open_output};
use crate::shared::Shared;
use crate::status::{Delivery, EmitterStatus, ShutdownReport};
use crate::{BatchLimits, EmitterConfig, EmitterError, OutputSettings};

/// Time an abort (second signal) may take to spool or write what is in memory.
const ABORT_BUDGET: Duration = Duration::from_secs(1);

/// Resolves once the batch holding the submitted records is delivered, written or
/// spooled: only then may the queue item behind them be acked.
///
/// An error means the records are not safe: they could not even be spooled, or the
/// emitter was shut down before accepting them.
#[derive(Debug)]
#[must_use = "a receipt tells when the records are safe"]
pub struct Receipt(ReceiptState);

#[derive(Debug)]
enum ReceiptState {
    Ready(Option<Result<Delivery, EmitterError>>),
    Waiting(oneshot::Receiver<Result<Delivery, EmitterError>>),
}

impl Future for Receipt {
    type Output = Result<Delivery, EmitterError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            ReceiptState::Ready(result) => {
                Poll::Ready(result.take().unwrap_or(Err(EmitterError::Closed)))
            }
            ReceiptState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|r| r.unwrap_or(Err(EmitterError::Closed))),
        }
    }
}

/// The emitter: a cheap, cloneable handle to the batcher and output tasks.
#[derive(Clone)]
pub struct Emitter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Emitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emitter")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

struct Inner {
    commands: mpsc::UnboundedSender<Command>,
    mode: watch::Sender<Mode>,
    shared: Arc<Shared>,
    finished: watch::Receiver<Option<ShutdownReport>>,
    /// What the current output is; held for a whole reconfiguration, so that
    /// reconfigurations happen one at a time.
    output: tokio::sync::Mutex<OutputState>,
}

impl Emitter {
    /// Starts the batcher and the output task.
    ///
    /// With ingest: loads the mTLS files, creates the spool directory (0755) and proves
    /// it writable, deletes stale `.tmp` files and schedules a replay right away. With
    /// stdout or a file: opens the file for appending and counts (never touches) the
    /// spool files in `spool_dir`.
    pub async fn start(cfg: EmitterConfig) -> Result<Self, EmitterError> {
        cfg.validate()?;
        let limits = cfg.batch_limits();
        let EmitterConfig {
            probe_id,
            run_id,
            format,
            destination,
            spool_dir,
            status_records,
            ..
        } = cfg;
        let settings = OutputSettings {
            format,
            destination,
            spool_dir,
        };

        let shared = Arc::new(Shared::new(status_records));
        let (mode_tx, mode_rx) = watch::channel(Mode::Running);
        let (command_tx, command_rx) = mpsc::unbounded_channel();
        let (finished_tx, finished_rx) = watch::channel(None);

        let (prepared, state) = open_output(settings, None, &shared, &mode_rx).await?;
        if let Some(files) = prepared.spool_files {
            shared.set_spool_files(files);
        }
        let (out, running) = prepared.spawn(&[]);

        let batcher = Batcher::new(probe_id, run_id, limits, out, running, Arc::clone(&shared));
        let batcher_task = tokio::spawn(batcher.run(command_rx, mode_rx));
        let report_from = Arc::clone(&shared);
        tokio::spawn(async move {
            // The batcher ends only after every output task (current and retired) ended.
            let _ = batcher_task.await;
            report_from.lose_unspooled();
            finished_tx.send_replace(Some(report_from.status()));
        });

        Ok(Self {
            inner: Arc::new(Inner {
                commands: command_tx,
                mode: mode_tx,
                shared,
                finished: finished_rx,
                output: tokio::sync::Mutex::new(state),
            }),
        })
    }

    /// Changes the batching limits (Tier 1, at once): the current batch is flushed at
    /// once if it already reaches the new limits, and its deadline becomes its first
    /// record's time plus the new `flush_interval`; later records use the new limits.
    ///
    /// Refused with [`EmitterError::Config`] when a limit is out of range (nothing
    /// changes), and with [`EmitterError::Closed`] once a shutdown began.
    pub fn set_batch_limits(&self, limits: BatchLimits) -> Result<(), EmitterError> {
        limits.validate()?;
        if !matches!(*self.inner.mode.borrow(), Mode::Running) {
            return Err(EmitterError::Closed);
        }
        self.inner
            .commands
            .send(Command::Limits(limits))
            .map_err(|_| EmitterError::Closed)
    }

    /// Seals the pending batch now instead of at its limits or interval: for a caller
    /// whose work waits on receipts (the Redis queue acks leases only once their
    /// records are safe, and held leases are capped). Ignored after shutdown began.
    pub fn flush_now(&self) {
        if matches!(*self.inner.mode.borrow(), Mode::Running) {
            let _ = self.inner.commands.send(Command::Flush);
        }
    }

    /// Switches the output (Tier 2, at a batch boundary): `output.format`,
    /// `output.ingest`, `output.file` and `output.spool_dir`.
    ///
    /// The new output is opened and checked first, as at start (the file opened for
    /// appending; the ingest URL and mTLS files checked and the spool directory created
    /// and proven writable). If that fails, the error is returned and nothing changes.
    /// Otherwise the current batch is sealed and goes to the old output, and every
    /// record submitted after this call returns goes to the new one; no batch mixes
    /// outputs. Batches the old output already holds finish there: an old ingest keeps
    /// retrying them and spools them in its own spool directory; an old stream writes
    /// them before the new stream writes anything. Spool files stay where they are; a
    /// new ingest output replays its spool directory (once the old outputs are done).
    /// Their receipts resolve as usual, and shutdown and abort cover old and new outputs.
    ///
    /// [`EmitterError::Closed`] once a shutdown began.
    pub async fn reconfigure_output(&self, settings: OutputSettings) -> Result<(), EmitterError> {
        let mut current = self.inner.output.lock().await;
        if !matches!(*self.inner.mode.borrow(), Mode::Running) || self.inner.commands.is_closed() {
            return Err(EmitterError::Closed);
        }
        let mode = self.inner.mode.subscribe();
        let (prepared, state) =
            open_output(settings, Some(&current), &self.inner.shared, &mode).await?;
        let (switched_tx, switched_rx) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Output {
                output: Box::new(prepared),
                switched: switched_tx,
            })
            .map_err(|_| EmitterError::Closed)?;
        // Sent means done: the batcher handles every command it accepted, even when
        // stopping, and in order with the records.
        tracing::info!(
            format = %state.format,
            output = %state.target,
            spool_dir = %state.spool_dir.display(),
            "output reconfigured"
        );
        *current = state;
        switched_rx.await.map_err(|_| EmitterError::Closed)
    }

    /// Adds `records` to the current batch. Never blocks; the receipt resolves once the
    /// batch holding them is delivered, written or spooled.
    pub fn submit(&self, records: Records) -> Receipt {
        if records.is_empty() {
            return Receipt(ReceiptState::Ready(Some(Ok(Delivery::Empty))));
        }
        let (tx, rx) = oneshot::channel();
        let submission = Submission {
            records,
            receipt: tx,
        };
        match self.inner.commands.send(Command::Submit(submission)) {
            Ok(()) => Receipt(ReceiptState::Waiting(rx)),
            Err(_) => Receipt(ReceiptState::Ready(Some(Err(EmitterError::Closed)))),
        }
    }

    /// Adds `records` to the current batch, with the finalizer of the item they came
    /// from: it resolves as delivered once the batch holding them is delivered,
    /// written or spooled, as failed if they are lost (SPEC §3.8: a queue item is
    /// acked only once its records are safe). Never blocks.
    pub fn submit_finalized(&self, records: Records, finalizer: Finalizer) {
        let receipt = self.submit(records);
        finalizer.resolve_when(async move {
            match receipt.await {
                Ok(_) => Status::Delivered,
                Err(error) => {
                    tracing::debug!(%error, "records not safe; their finalizer fails");
                    Status::Failed
                }
            }
        });
    }

    /// Where records go now, for people: `stdout`, `file <path>` or `ingest <url>`
    /// (credentials hidden) `spooling to <dir>`.
    pub async fn describe_output(&self) -> String {
        let state = self.inner.output.lock().await;
        match state.target {
            crate::output::Target::Ingest(_) => {
                format!("{} spooling to {}", state.target, state.spool_dir.display())
            }
            _ => state.target.to_string(),
        }
    }

    /// Counters and flags right now.
    pub fn status(&self) -> EmitterStatus {
        self.inner.shared.status()
    }

    /// Completes once more batches failed to reach both the output and the spool than
    /// memory may hold (64): the run should stop taking work, and its
    /// exit should say that records were lost ([`EmitterStatus::batches_lost`]).
    pub async fn overflowed(&self) {
        let mut rx = self.inner.shared.overflowed.subscribe();
        if rx.wait_for(|overflowed| *overflowed).await.is_err() {
            pending::<()>().await;
        }
    }

    /// Completes once stdout or the output file is broken (e.g. a closed pipe): from
    /// then on no batch is written (nor spooled; [`EmitterStatus::batches_not_written`]
    /// counts them), and the run loop should shut down.
    /// Never completes in ingest mode.
    pub async fn closed(&self) {
        let mut rx = self.inner.shared.closed.subscribe();
        if rx.wait_for(|closed| *closed).await.is_err() {
            pending::<()>().await;
        }
    }

    /// Graceful stop (SPEC §3.14 step 3): the current batch is sealed, every pending
    /// batch gets one delivery try within the shared `budget` and is spooled otherwise;
    /// with ingest, the spool is then replayed once (5 s) unless ingest is failing.
    /// Later submissions are refused ([`EmitterError::Closed`]).
    pub async fn shutdown(self, budget: Duration) -> ShutdownReport {
        self.shutdown_within(budget, budget.saturating_add(SHUTDOWN_REPLAY_BUDGET))
            .await
    }

    /// [`Emitter::shutdown`] under one overall limit: pending batches get `delivery`,
    /// and the replay at shutdown only what is left of `total` (at most 5 s), so a
    /// caller's single shutdown deadline holds.
    pub async fn shutdown_within(self, delivery: Duration, total: Duration) -> ShutdownReport {
        let now = Instant::now();
        let end = after(now, total);
        let deadline = after(now, delivery).min(end);
        self.inner.mode.send_if_modified(|mode| {
            let running = matches!(mode, Mode::Running);
            if running {
                *mode = Mode::Draining { deadline, end };
            }
            running
        });
        self.finished().await
    }

    /// Second signal: no more network tries; in-memory batches are spooled (ingest) or
    /// written to stdout/the file, within about a second. Overrides a running shutdown.
    pub async fn abort(self) -> ShutdownReport {
        let deadline = Instant::now() + ABORT_BUDGET;
        self.inner.mode.send_if_modified(|mode| {
            let change = !matches!(mode, Mode::Aborting { .. });
            if change {
                *mode = Mode::Aborting { deadline };
            }
            change
        });
        self.finished().await
    }

    async fn finished(&self) -> ShutdownReport {
        let mut rx = self.inner.finished.clone();
        let report = match rx.wait_for(Option::is_some).await {
            Ok(report) => *report,
            Err(_) => None,
        };
        report.unwrap_or_else(|| self.inner.shared.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_sync<T: Send + Sync + 'static>() {}

    #[test]
    fn handles_cross_tasks() {
        send_sync::<Emitter>();
        fn send<T: Send + 'static>() {}
        send::<Receipt>();
    }
}

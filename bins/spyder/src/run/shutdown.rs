//! SPEC §3.14 as one sequence under one deadline (`shutdown_grace` + 15 s from the
//! signal): stop intake, give in-flight tasks the grace period, deliver or spool
//! what is pending, send the last acks and dedup marks, stop the ops listener.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use spyder_model::HostName;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::ops::Ops;
use super::pool::set_paused;
use crate::progress::{self, Display};

/// Budget for delivering pending batches at shutdown (SPEC §3.14 step 3).
const DELIVERY_BUDGET: Duration = Duration::from_secs(10);
/// Exit code after a second signal.
const EXIT_INTERRUPTED: u8 = 130;
/// Exit code when some batches were neither delivered nor spooled.
const EXIT_RECORDS_LOST: u8 = 3;
/// Exit code with `-fail_on_error` when tasks ran and none succeeded.
const EXIT_ALL_FAILED: u8 = 2;
/// In-flight hosts named when a shutdown cancels tasks.
const CANCELLED_HOSTS_SHOWN: usize = 10;
/// Budget for sending the last acks at shutdown (SPEC §3.14 step 4).
const ACK_BUDGET: Duration = Duration::from_secs(10);
/// What a shutdown may take beyond `shutdown_grace` (SPEC §3.14), less a margin for
/// the process to exit.
const SHUTDOWN_AFTER_GRACE: Duration = Duration::from_millis(14_000);
/// Kept back from the emitter's share for acks, dedup marks and the ops listener.
const AFTER_EMITTER_RESERVE: Duration = Duration::from_secs(2);
/// Budget for the last spans to be exported at shutdown.
const TRACE_FLUSH_BUDGET: Duration = Duration::from_secs(2);
/// Budget for the ops listener to stop.
const OPS_STOP_BUDGET: Duration = Duration::from_secs(2);

/// The one deadline of a shutdown: every step takes at most what is left of it.
struct ShutdownClock {
    deadline: tokio::time::Instant,
}

impl ShutdownClock {
    fn start(shutdown_grace: Duration) -> Self {
        let now = tokio::time::Instant::now();
        let limit = shutdown_grace.saturating_add(SHUTDOWN_AFTER_GRACE);
        Self {
            // A grace too long for an Instant (it is bounded by validation) waits as
            // long as the clock can count.
            deadline: now.checked_add(limit).unwrap_or_else(|| {
                now.checked_add(Duration::from_secs(365 * 24 * 3600))
                    .unwrap_or(now)
            }),
        }
    }

    /// Time left until the deadline.
    fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// What the steps after the emitter keep back: 2 s, or a quarter of what is left.
    fn reserve(&self) -> Duration {
        AFTER_EMITTER_RESERVE.min(self.left() / 4)
    }
}

pub(super) struct Run {
    pub(super) shared: Arc<Shared>,
    pub(super) reader: Option<tokio::task::JoinHandle<()>>,
    pub(super) progress: Option<progress::Progress>,
    pub(super) stall_watch: tokio::task::JoinHandle<()>,
    pub(super) display: Display,
    pub(super) quiet: bool,
    pub(super) fail_on_error: bool,
    pub(super) signals: Signals,
    pub(super) ops: Option<Ops>,
    /// `-resume`: the checkpoint writer, and what the last checkpoint needs.
    pub(super) checkpoints: Option<Checkpoints>,
    /// Queue mode: the fleet heartbeat.
    pub(super) heartbeat: Option<tokio::task::JoinHandle<()>>,
}

/// `-resume` in a running run.
pub(super) struct Checkpoints {
    pub(super) writer: tokio::task::JoinHandle<()>,
    pub(super) path: std::path::PathBuf,
    pub(super) tracker: Arc<spyder_queue::ResumeTracker>,
    pub(super) read: Arc<super::input::ReadProgress>,
}

impl Run {
    /// Waits for the end of the input, a signal or a closed output, then shuts down
    /// (SPEC §3.14) as one sequence under one deadline: `shutdown_grace` + 15 s from
    /// the signal, whatever hangs (ingest, Redis, the ops listener).
    pub(super) async fn finish(mut self) -> ExitCode {
        let mut output_closed = false;
        let graceful = tokio::select! {
            () = self.shared.pool.drained() => false,
            () = self.signals.first.cancelled() => true,
            () = self.shared.emitter.closed() => {
                tracing::warn!("output closed; shutting down without waiting for tasks in flight (their records could not be written)");
                output_closed = true;
                true
            }
            () = self.shared.emitter.overflowed() => {
                tracing::error!("batches can be neither delivered nor spooled; intake stops and the run shuts down");
                true
            }
        };
        let shutdown_grace = if graceful {
            self.shared.live.current().crawling.shutdown_grace
        } else {
            Duration::ZERO
        };
        let clock = ShutdownClock::start(shutdown_grace);
        if graceful {
            // Step 1: /ready answers 503, the API refuses changes, intake stops.
            if let Some(ops) = &self.ops {
                ops.readiness.begin_shutdown();
            }
            self.shared.queue.stop();
            // Paused workers wake up to find the queue stopped, and leave.
            set_paused(&self.shared, false);
            if let Some(reader) = &self.reader {
                reader.abort();
            }
            // Step 2: in-flight tasks get the grace period, then are cancelled; none
            // when the output closed, as their records could not be written.
            let grace_left = if output_closed {
                Duration::ZERO
            } else {
                clock.left().min(shutdown_grace)
            };
            let grace = tokio::time::timeout(grace_left, self.shared.pool.drained());
            tokio::select! {
                result = grace => if result.is_err() { self.cancel_in_flight().await },
                () = self.signals.second.cancelled() => return self.interrupted().await,
            }
        }
        if let Some(reader) = &self.reader {
            reader.abort();
        }
        // Step 3: pending batches get one try within the budget; the rest is spooled.
        // What follows (acks, dedup marks, the ops listener) keeps a reserve.
        let emitter = self.shared.emitter.clone();
        let total = clock.left().saturating_sub(clock.reserve());
        let report = tokio::select! {
            report = emitter.shutdown_within(DELIVERY_BUDGET.min(total), total) => report,
            () = self.signals.second.cancelled() => return self.interrupted().await,
        };
        // Step 4: acks for what is now delivered or spooled; the rest stays leased.
        self.shared.acks.close();
        tokio::select! {
            done = tokio::time::timeout(clock.left().min(ACK_BUDGET), self.shared.acks.wait()) => {
                if done.is_err() {
                    tracing::warn!("some acks were not sent; their items stay in :processing");
                }
            }
            () = self.signals.second.cancelled() => return self.interrupted().await,
        }
        // Marks of acked work still waiting in this process go to the shared dedup.
        if tokio::time::timeout(clock.left().min(ACK_BUDGET), self.shared.dedup.flush())
            .await
            .is_err()
        {
            tracing::warn!("dedup marks not sent; other probes may emit some records again");
        }
        self.after_delivery(&clock).await;
        let output = self.shared.emitter.describe_output().await;
        self.end_progress(&progress::output_line(&output, &report))
            .await;
        self.stop_ops(clock.left().min(OPS_STOP_BUDGET)).await;
        tracing::info!("shutdown complete");
        self.exit_code(&report, &output)
    }

    /// What follows the acks: the last checkpoint, the last heartbeat and the last
    /// spans, each within what is left of the deadline.
    async fn after_delivery(&mut self, clock: &ShutdownClock) {
        self.last_checkpoint().await;
        if let Some(heartbeat) = self.heartbeat.take() {
            heartbeat.abort();
            super::fleet::last_beat(&self.shared, clock.left()).await;
        }
        if let Some(traces) = &self.shared.traces {
            // The spans of the last tasks, within what is left of the deadline.
            traces
                .flush_within(clock.left().min(TRACE_FLUSH_BUDGET))
                .await;
            let dropped = traces.dropped();
            if dropped > 0 {
                tracing::warn!(
                    dropped,
                    "trace spans dropped: the collector was down, failing or too slow (spyder_otel_spans_dropped_total)"
                );
            }
        }
    }

    /// 0, or what went wrong: 3 for records lost (or a broken output file), 2 for
    /// `-fail_on_error` when every task failed.
    fn exit_code(&self, report: &spyder_emitter::EmitterStatus, output: &str) -> ExitCode {
        if report.batches_not_written > 0 {
            tracing::warn!(
                output = %output,
                batches = report.batches_not_written,
                records = report.records_not_written,
                edges = report.edges_not_written,
                "the output closed before these records were written; nothing was spooled"
            );
            // A reader that left stdout (`spyder | head`) ends the run cleanly; a
            // broken output file lost data the user asked to keep.
            if output.starts_with("file ") {
                return ExitCode::from(EXIT_RECORDS_LOST);
            }
        }
        if report.batches_lost > 0 {
            tracing::error!(
                batches = report.batches_lost,
                "records were neither delivered nor spooled (see the errors above)"
            );
            return ExitCode::from(EXIT_RECORDS_LOST);
        }
        let tasks = self.shared.stats.snapshot();
        if self.fail_on_error && tasks.processed > 0 && tasks.ok == 0 {
            tracing::error!(
                failed = tasks.error,
                "every task failed (-fail_on_error); see the outcomes above"
            );
            return ExitCode::from(EXIT_ALL_FAILED);
        }
        ExitCode::SUCCESS
    }

    /// `-resume`: the last checkpoint, once the finalizers ran (or no file, when
    /// the whole input was crawled).
    async fn last_checkpoint(&mut self) {
        if let Some(c) = self.checkpoints.take() {
            c.writer.abort();
            super::resume::finish(&c.path, &c.tracker, c.read.read_whole()).await;
        }
    }

    async fn stop_ops(&mut self, budget: Duration) {
        if let Some(ops) = self.ops.take() {
            ops.readiness.begin_shutdown();
            ops.stop.cancel();
            let _ = tokio::time::timeout(budget, ops.task).await;
        }
    }

    async fn cancel_in_flight(&mut self) {
        let hosts: Vec<HostName> = self
            .shared
            .in_flight
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        self.shared.pool.abort_all();
        self.shared.pool.drained().await;
        if !hosts.is_empty() {
            let shown: Vec<&str> = hosts
                .iter()
                .take(CANCELLED_HOSTS_SHOWN)
                .map(HostName::as_str)
                .collect();
            tracing::warn!(
                cancelled = hosts.len(),
                hosts = ?shown,
                "shutdown grace elapsed; in-flight tasks cancelled and their records dropped"
            );
        }
    }

    /// Second signal: spool what is in memory and leave with 130.
    async fn interrupted(mut self) -> ExitCode {
        // Aborting only requests cancellation: a worker being polled on another thread
        // may still submit. Wait until they are all gone so nothing is submitted after
        // the emitter stopped taking records.
        self.shared.pool.abort_all();
        self.shared.pool.drained().await;
        let report = self.shared.emitter.clone().abort().await;
        tracing::warn!(
            batches_delivered = report.batches_delivered,
            batches_spooled = report.batches_spooled,
            batches_not_written = report.batches_not_written,
            batches_lost = report.batches_lost,
            "second signal: in-memory records written or spooled; exiting"
        );
        self.last_checkpoint().await;
        let output = self.shared.emitter.describe_output().await;
        self.end_progress(&progress::output_line(&output, &report))
            .await;
        ExitCode::from(EXIT_INTERRUPTED)
    }

    /// Ends the progress display and prints the summary, whose last line is `output`.
    async fn end_progress(&mut self, output: &str) {
        self.stall_watch.abort();
        if let Some(p) = self.progress.take() {
            p.stop().await;
        }
        progress::finish(self.display);
        if !self.quiet {
            eprintln!("{}", self.shared.stats.snapshot().summary());
            eprintln!("{}", self.shared.stats.breakdown());
            eprintln!("{output}");
        }
    }
}

/// SIGINT/SIGTERM: the first starts a graceful shutdown, the second an immediate one.
pub(super) struct Signals {
    pub(super) first: CancellationToken,
    second: CancellationToken,
}

impl Signals {
    pub(super) fn install() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("signals: {e}"))?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("signals: {e}"))?;
        let first = CancellationToken::new();
        let second = CancellationToken::new();
        let (f, s) = (first.clone(), second.clone());
        tokio::spawn(async move {
            for token in [f, s] {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if !token.is_cancelled() {
                    tracing::info!("signal received; shutting down");
                }
                token.cancel();
            }
        });
        Ok(Self { first, second })
    }
}

//! The emitter handle, the batcher task and the two output tasks (stream and ingest).
//!
//! `submit` hands records to the batcher over an unbounded channel and never blocks;
//! memory is bounded upstream, since every submission holds an unacked queue lease
//! until its receipt resolves. The batcher seals batches and passes them to the current
//! output task: the stream task writes stdout, a file or a test writer; the ingest
//! task POSTs (one at a time), retries, spools and replays. Shutdown and abort are a
//! [`Mode`] every task watches, so a retry, a hung POST or a slow write is cut short.
//!
//! Limits and output switches travel to the batcher through the submission channel,
//! so they are ordered with the records. A switch seals the current batch for the old
//! output task, which then ends once it has handled what it holds; the new task starts
//! writing (stream) or replaying (ingest) only after the old ones of its kind ended.

use std::collections::VecDeque;
use std::future::{Future, pending};
use std::io::{self, Write as _};
use std::mem;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use spyder_model::{Batch, Records};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};

use crate::ingest::IngestClient;
use crate::spool::Spool;
use crate::{BatchLimits, Destination, EmitterConfig, EmitterError, Format, OutputSettings};

/// Time allowed for one POST.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time within which a batch's retries must start.
const RETRY_WINDOW: Duration = Duration::from_secs(30);
/// First retry delay; doubles per try, ±50% jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Batches that may wait for the ingest task; more go straight to the spool.
const WAITING_BATCHES: usize = 8;
/// Pause between spool replay rounds.
const REPLAY_EVERY: Duration = Duration::from_secs(30);
/// Time one startup or periodic replay round may take before live batches get a turn.
const REPLAY_ROUND_BUDGET: Duration = Duration::from_secs(10);
/// Time the replay at shutdown may take.
const SHUTDOWN_REPLAY_BUDGET: Duration = Duration::from_secs(5);
/// Time an abort (second signal) may take to spool or write what is in memory.
/// Batches kept in memory while the spool cannot be written (SPEC §3.11); past this
/// the newest are given up and intake stops.
const UNSPOOLED_MAX: usize = 64;
const ABORT_BUDGET: Duration = Duration::from_secs(1);

/// How a batch's records were made safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Delivery {
    /// The ingest endpoint answered 2xx.
    Delivered,
    /// Written and flushed to stdout or the writer, or written, flushed and fsynced to the file.
    Written,
    /// Written (fsynced, renamed) to the spool directory.
    Spooled,
    /// The submitted records were empty: there was nothing to write.
    Empty,
}

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

/// A point-in-time view of the emitter, for `/health`, `/api/v1/stats` and the run loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmitterStatus {
    /// The last ingest try (live or replay) failed.
    pub ingest_failing: bool,
    /// Batches answered 2xx by the ingest endpoint, or written to stdout/the file.
    pub batches_delivered: u64,
    /// Batches written to the spool.
    pub batches_spooled: u64,
    /// Spool files delivered by replay (and deleted).
    pub batches_replayed: u64,
    /// Spool files currently in the spool directory (`spyder_spool_files`).
    pub spool_files: u64,
    /// Spool writes that failed. The batch stays in memory for the next try (see
    /// `batches_unspooled`); it is lost only past the bound or at exit.
    pub spool_errors: u64,
    /// Batches in memory that neither reached the output nor the spool yet.
    pub batches_unspooled: u64,
    /// Batches given up: neither delivered nor spooled. Non-zero means records were lost.
    pub batches_lost: u64,
    /// stdout or the file broke; everything since is spooled.
    pub output_closed: bool,
}

/// What a shutdown or abort left behind: the final [`EmitterStatus`].
pub type ShutdownReport = EmitterStatus;

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
            ..
        } = cfg;
        let settings = OutputSettings {
            format,
            destination,
            spool_dir,
        };

        let shared = Arc::new(Shared::new());
        let (mode_tx, mode_rx) = watch::channel(Mode::Running);
        let (command_tx, command_rx) = mpsc::unbounded_channel();
        let (finished_tx, finished_rx) = watch::channel(None);

        let (prepared, state) = open_output(settings, None, &shared, &mode_rx).await?;
        if let Some(files) = prepared.spool_files {
            shared.set_spool_files(files);
        }
        let (out, running) = prepared.spawn(&[]);

        let batcher = Batcher {
            probe_id,
            run_id,
            max_nodes: limits.max_nodes(),
            limits,
            records: Records::default(),
            receipts: Vec::new(),
            started: None,
            deadline: None,
            out,
            outputs: vec![running],
            shared: Arc::clone(&shared),
        };
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
    /// then on every batch is spooled, and the run loop should shut down gracefully.
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

/// What the tasks are doing: running, or stopping by a deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Running,
    /// Graceful shutdown: one try per pending batch until `deadline`.
    Draining {
        /// The shutdown's last moment: the replay at shutdown ends by then.
        end: Instant,
        deadline: Instant,
    },
    /// Second signal: no network; writes must end by `deadline`.
    Aborting {
        deadline: Instant,
    },
}

type ReceiptSender = oneshot::Sender<Result<Delivery, EmitterError>>;

struct Submission {
    records: Records,
    receipt: ReceiptSender,
}

/// What the handle asks of the batcher, in order: records and settings submitted
/// before a switch are handled before it.
enum Command {
    Submit(Submission),
    Limits(BatchLimits),
    /// Seal the pending batch now.
    Flush,
    /// Seal the current batch for the old output, then send to `output`.
    Output {
        output: Box<Prepared>,
        switched: oneshot::Sender<()>,
    },
}

/// A sealed batch and the receipts waiting for it.
struct Sealed {
    batch: Batch,
    receipts: Vec<ReceiptSender>,
}

impl Sealed {
    fn resolve(self, result: impl Fn() -> Result<Delivery, EmitterError>) {
        for receipt in self.receipts {
            // A dropped receipt means nobody waits: fine.
            let _ = receipt.send(result());
        }
    }
}

/// Counters and flags shared by the handle and the tasks.
struct Shared {
    delivered: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    spool_files: AtomicU64,
    spool_errors: AtomicU64,
    ingest_failing: AtomicBool,
    closed: watch::Sender<bool>,
    /// Batches whose spool write failed, oldest first, kept for the next try.
    unspooled: Mutex<VecDeque<Sealed>>,
    /// The spool directory those batches failed to reach.
    unspooled_dir: Mutex<PathBuf>,
    lost: AtomicU64,
    /// More batches failed to spool than memory may hold: intake should stop.
    overflowed: watch::Sender<bool>,
}

impl Shared {
    fn new() -> Self {
        Self {
            delivered: AtomicU64::new(0),
            spooled: AtomicU64::new(0),
            replayed: AtomicU64::new(0),
            spool_files: AtomicU64::new(0),
            spool_errors: AtomicU64::new(0),
            ingest_failing: AtomicBool::new(false),
            closed: watch::Sender::new(false),
            unspooled: Mutex::new(VecDeque::new()),
            unspooled_dir: Mutex::new(PathBuf::new()),
            lost: AtomicU64::new(0),
            overflowed: watch::Sender::new(false),
        }
    }

    fn status(&self) -> EmitterStatus {
        EmitterStatus {
            ingest_failing: self.ingest_failing.load(Ordering::Relaxed),
            batches_delivered: self.delivered.load(Ordering::Relaxed),
            batches_spooled: self.spooled.load(Ordering::Relaxed),
            batches_replayed: self.replayed.load(Ordering::Relaxed),
            spool_files: self.spool_files.load(Ordering::Relaxed),
            spool_errors: self.spool_errors.load(Ordering::Relaxed),
            batches_unspooled: self.unspooled_len() as u64,
            batches_lost: self.lost.load(Ordering::Relaxed),
            output_closed: *self.closed.borrow(),
        }
    }

    fn on_delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("spyder_batch_emissions_total", "status" => "success").increment(1);
    }

    fn on_spooled(&self) {
        self.spooled.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("spyder_batch_emissions_total", "status" => "failure").increment(1);
        let files = self.spool_files.fetch_add(1, Ordering::Relaxed) + 1;
        publish_spool_files(files);
    }

    fn on_spool_error(&self) {
        self.spool_errors.fetch_add(1, Ordering::Relaxed);
    }

    fn unspooled_len(&self) -> usize {
        self.unspooled.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Takes the batches waiting for a spool retry, oldest first.
    fn take_unspooled(&self) -> VecDeque<Sealed> {
        self.unspooled
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    /// Keeps `waiting` (oldest first) for the next try, up to [`UNSPOOLED_MAX`]; the
    /// newest beyond it are given up, and intake should stop.
    fn hold_unspooled(&self, mut waiting: VecDeque<Sealed>, spool_dir: &Path, reason: &str) {
        while waiting.len() > UNSPOOLED_MAX {
            if let Some(sealed) = waiting.pop_back() {
                self.lose(sealed, spool_dir, reason);
            }
            self.overflowed.send_replace(true);
        }
        if let Ok(mut dir) = self.unspooled_dir.lock() {
            *dir = spool_dir.to_path_buf();
        }
        if let Ok(mut q) = self.unspooled.lock() {
            // Batches another task held meanwhile are newer: they stay behind these.
            waiting.extend(q.drain(..));
            *q = waiting;
        }
    }

    /// Gives up on `sealed`: its receipts resolve with the spool error.
    fn lose(&self, sealed: Sealed, spool_dir: &Path, reason: &str) {
        self.lost.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("spyder_batch_emissions_total", "status" => "failure").increment(1);
        let batch_id = sealed.batch.batch_id;
        tracing::error!(%batch_id, spool_dir = %spool_dir.display(), error = %reason, "batch neither delivered nor spooled; its records are lost");
        sealed.resolve(|| {
            Err(EmitterError::Spool {
                batch_id: batch_id.to_string(),
                dir: spool_dir.to_path_buf(),
                reason: reason.to_owned(),
            })
        });
    }

    /// At exit: what still waits for a spool retry is lost.
    fn lose_unspooled(&self) {
        let dir = self
            .unspooled_dir
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default();
        for sealed in self.take_unspooled() {
            self.lose(sealed, &dir, "the spool was still not writable at exit");
        }
    }

    /// A spool file left the directory: replayed, or renamed `.bad`.
    fn on_spool_file_gone(&self, replayed: bool) {
        if replayed {
            self.replayed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("spyder_batch_emissions_total", "status" => "success").increment(1);
        }
        let before = self
            .spool_files
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        publish_spool_files(before.saturating_sub(1));
    }

    fn set_spool_files(&self, files: usize) {
        let files = files as u64;
        self.spool_files.store(files, Ordering::Relaxed);
        publish_spool_files(files);
    }

    fn set_failing(&self, failing: bool) {
        self.ingest_failing.store(failing, Ordering::Relaxed);
    }
}

#[allow(clippy::cast_precision_loss)]
fn publish_spool_files(files: u64) {
    metrics::gauge!("spyder_spool_files").set(files as f64);
}

/// Runs `f` on a blocking thread; a panic there becomes an I/O error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(e)))
}

/// Writes `sealed` to the spool and resolves its receipts. Batches whose spool write
/// failed before go first; a failed write keeps the batch in memory for the next try
/// (bounded), so a full disk for a while loses nothing.
async fn spool_batch(spool: &Spool, shared: &Shared, sealed: Sealed) {
    let mut waiting = shared.take_unspooled();
    waiting.push_back(sealed);
    spool_in_order(spool, shared, waiting).await;
}

/// Retries the batches whose spool write failed (a replay round, shutdown).
async fn retry_unspooled(spool: &Spool, shared: &Shared) {
    let waiting = shared.take_unspooled();
    if !waiting.is_empty() {
        spool_in_order(spool, shared, waiting).await;
    }
}

async fn spool_in_order(spool: &Spool, shared: &Shared, mut waiting: VecDeque<Sealed>) {
    while let Some(sealed) = waiting.pop_front() {
        let batch_id = sealed.batch.batch_id;
        let writer = spool.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let result = writer.write(&sealed.batch);
            (sealed, result)
        })
        .await;
        match joined {
            Ok((sealed, Ok(path))) => {
                shared.on_spooled();
                tracing::debug!(%batch_id, file = %path.display(), "batch spooled");
                sealed.resolve(|| Ok(Delivery::Spooled));
            }
            Ok((sealed, Err(e))) => {
                shared.on_spool_error();
                waiting.push_front(sealed);
                tracing::error!(%batch_id, spool_dir = %spool.dir().display(), error = %e, held = waiting.len(), "cannot spool batch; kept in memory for the next try");
                shared.hold_unspooled(waiting, spool.dir(), &e.to_string());
                return;
            }
            Err(e) => {
                // The receipts were dropped with the task: they resolve as `Closed`.
                shared.on_spool_error();
                shared.lost.fetch_add(1, Ordering::Relaxed);
                tracing::error!(%batch_id, error = %e, "spool task failed; the batch's records are lost");
            }
        }
    }
}

/// What a shutdown or abort does to a wait in progress.
#[derive(Clone, Copy)]
enum OnDrain {
    /// Stop waiting at once.
    Cut,
    /// Keep waiting, at most until the drain deadline.
    Deadline,
    /// Keep waiting as if running.
    Ignore,
}

#[derive(Clone, Copy)]
enum OnAbort {
    Cut,
    Deadline,
}

enum Raced<T> {
    Done(T),
    TimedOut,
    Cut,
}

/// Runs `fut` until it completes, `limit` passes, or a mode change ends the wait.
async fn race<F: Future>(
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

/// Where the batcher sends sealed batches.
enum BatchOut {
    Stream(mpsc::UnboundedSender<Sealed>),
    /// At most [`WAITING_BATCHES`] wait for the ingest task; the rest are spooled here.
    Ingest {
        waiting: mpsc::Sender<Sealed>,
        spool: Spool,
    },
}

/// Gathers submissions into batches and flushes them by size or age.
struct Batcher {
    probe_id: String,
    run_id: String,
    limits: BatchLimits,
    /// [`BatchLimits::max_nodes`] of `limits`.
    max_nodes: usize,
    records: Records,
    receipts: Vec<ReceiptSender>,
    /// When the current batch got its first record.
    started: Option<Instant>,
    /// When the current batch must be flushed: `flush_interval` after `started`.
    deadline: Option<Instant>,
    out: BatchOut,
    /// Every output task not known to have ended, the current one last.
    outputs: Vec<Running>,
    shared: Arc<Shared>,
}

impl Batcher {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut mode: watch::Receiver<Mode>,
    ) {
        loop {
            let deadline = self.deadline;
            let timer = async move {
                match deadline {
                    Some(at) => sleep_until(at).await,
                    None => pending().await,
                }
            };
            tokio::select! {
                biased;
                changed = mode.changed() => {
                    if changed.is_err() || !matches!(*mode.borrow(), Mode::Running) {
                        break;
                    }
                }
                command = commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    None => break,
                },
                () = timer => self.flush().await,
            }
        }
        // Stopping: take what was already submitted, refuse the rest, flush.
        commands.close();
        while let Some(command) = commands.recv().await {
            self.handle(command).await;
        }
        self.flush().await;
        // Closing the channel ends the current output task once it is done.
        let Self { out, outputs, .. } = self;
        drop(out);
        for output in outputs {
            let _ = output.task.await;
        }
    }

    async fn handle(&mut self, command: Command) {
        match command {
            Command::Submit(submission) => self.add(submission).await,
            Command::Limits(limits) => self.set_limits(limits).await,
            Command::Flush => {
                if !self.records.is_empty() {
                    self.flush().await;
                }
            }
            Command::Output { output, switched } => {
                self.switch_output(*output).await;
                // Nobody waiting (the caller gave up) is fine: the switch is done.
                let _ = switched.send(());
            }
        }
    }

    async fn add(&mut self, mut submission: Submission) {
        if self.records.is_empty() {
            let now = Instant::now();
            self.started = Some(now);
            self.deadline = Some(after(now, self.limits.flush_interval));
        }
        self.records.append(&mut submission.records);
        self.receipts.push(submission.receipt);
        if self.is_full() {
            self.flush().await;
        }
    }

    fn is_full(&self) -> bool {
        self.records.edges.len() >= self.limits.max_edges
            || self.records.node_count() >= self.max_nodes
    }

    /// New limits apply to the current batch at once: a shorter interval moves its
    /// deadline closer (possibly into the past: it is flushed on the next turn).
    async fn set_limits(&mut self, limits: BatchLimits) {
        self.limits = limits;
        self.max_nodes = limits.max_nodes();
        if let Some(started) = self.started {
            self.deadline = Some(after(started, limits.flush_interval));
        }
        if !self.records.is_empty() && self.is_full() {
            self.flush().await;
        }
    }

    /// Seals the current batch for the old output, then starts the new one; the old
    /// output ends once it has handled what it holds.
    async fn switch_output(&mut self, prepared: Prepared) {
        self.flush().await;
        if let Some(files) = prepared.spool_files {
            self.shared.set_spool_files(files);
        }
        self.outputs.retain(|output| !output.task.is_finished());
        let (out, running) = prepared.spawn(&self.outputs);
        for output in &self.outputs {
            output.retired.store(true, Ordering::Relaxed);
        }
        // Retired before its channel closes, so that it knows it is retired when it ends.
        drop(mem::replace(&mut self.out, out));
        self.outputs.push(running);
        // Both flags describe the current output; a retired output no longer sets them.
        self.shared.closed.send_replace(false);
        self.shared.set_failing(false);
    }

    async fn flush(&mut self) {
        self.started = None;
        self.deadline = None;
        if self.records.is_empty() {
            return;
        }
        let records = mem::take(&mut self.records);
        let sealed = Sealed {
            batch: Batch::seal(self.probe_id.clone(), self.run_id.clone(), records),
            receipts: mem::take(&mut self.receipts),
        };
        match &self.out {
            BatchOut::Stream(tx) => {
                if let Err(mpsc::error::SendError(sealed)) = tx.send(sealed) {
                    sealed.resolve(|| Err(EmitterError::Closed));
                }
            }
            BatchOut::Ingest { waiting, spool } => match waiting.try_send(sealed) {
                Ok(()) => {}
                Err(
                    mpsc::error::TrySendError::Full(sealed)
                    | mpsc::error::TrySendError::Closed(sealed),
                ) => {
                    tracing::debug!(batch_id = %sealed.batch.batch_id, "ingest busy; spooling");
                    spool_batch(spool, &self.shared, sealed).await;
                }
            },
        }
    }
}

/// Opens `path` for appending; also tells whether it is empty (a CSV header is due).
async fn open_append(path: &std::path::Path) -> io::Result<(std::fs::File, bool)> {
    let file = tokio::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .await?;
    let empty = file.metadata().await?.len() == 0;
    Ok((file.into_std().await, empty))
}

/// What the current output is: what a reconfiguration compares with.
struct OutputState {
    format: Format,
    target: Target,
    /// The spool directory in use (the ingest one in ingest mode).
    spool_dir: PathBuf,
    /// The CSV header flag of a stream output, handed on to a new output that
    /// continues the same stream in the same format.
    header_needed: Option<Arc<AtomicBool>>,
}

impl OutputState {
    /// True when a stream output to `target` in `format` continues this one.
    fn continued_by(&self, target: &Target, format: Format) -> bool {
        self.format == format
            && match (&self.target, target) {
                (Target::Stdout, Target::Stdout) => true,
                (Target::File(old), Target::File(new)) => old == new,
                _ => false,
            }
    }
}

/// Where an output writes, for comparisons and logs.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    Stdout,
    File(PathBuf),
    Writer,
    Ingest(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Stdout => f.write_str("stdout"),
            Self::File(path) => write!(f, "file {}", path.display()),
            Self::Writer => f.write_str("writer"),
            Self::Ingest(url) => write!(f, "ingest {}", spyder_model::secret::redact_url(url)),
        }
    }
}

/// An output opened and checked, not yet running.
struct Prepared {
    kind: PreparedKind,
    /// Set by the batcher once a newer output took over.
    retired: Arc<AtomicBool>,
    /// The spool file count to publish when this output starts (its directory changed).
    spool_files: Option<usize>,
}

enum PreparedKind {
    Stream {
        output: StreamOutput,
        tx: mpsc::UnboundedSender<Sealed>,
        rx: mpsc::UnboundedReceiver<Sealed>,
    },
    Ingest {
        output: Box<IngestOutput>,
        tx: mpsc::Sender<Sealed>,
        rx: mpsc::Receiver<Sealed>,
        spool: Spool,
    },
}

/// A spawned output task.
struct Running {
    task: JoinHandle<()>,
    /// Turns `true` when the task ended (the sender is dropped if it panicked).
    done: watch::Receiver<bool>,
    retired: Arc<AtomicBool>,
    ingest: bool,
}

impl Prepared {
    /// Spawns the output task. A stream output writes only once the stream outputs in
    /// `running` ended (so that nothing interleaves on stdout or in a file); an ingest
    /// output replays its spool only once the ingest outputs in `running` ended (so
    /// that no spool file is replayed twice).
    fn spawn(self, running: &[Running]) -> (BatchOut, Running) {
        let (done_tx, done_rx) = watch::channel(false);
        let ingest = matches!(self.kind, PreparedKind::Ingest { .. });
        let predecessors: Vec<_> = running
            .iter()
            .filter(|r| r.ingest == ingest)
            .map(|r| r.done.clone())
            .collect();
        let (out, task) = match self.kind {
            PreparedKind::Stream { output, tx, rx } => {
                let task = tokio::spawn(async move {
                    output.run(rx, predecessors).await;
                    done_tx.send_replace(true);
                });
                (BatchOut::Stream(tx), task)
            }
            PreparedKind::Ingest {
                output,
                tx,
                rx,
                spool,
            } => {
                let task = tokio::spawn(async move {
                    (*output).run(rx, predecessors).await;
                    done_tx.send_replace(true);
                });
                (BatchOut::Ingest { waiting: tx, spool }, task)
            }
        };
        let running = Running {
            task,
            done: done_rx,
            retired: self.retired,
            ingest,
        };
        (out, running)
    }
}

/// Completes once every task behind `predecessors` ended.
async fn all_ended(predecessors: Vec<watch::Receiver<bool>>) {
    for mut done in predecessors {
        // An error means the task is gone too.
        let _ = done.wait_for(|ended| *ended).await;
    }
}

/// Opens and checks the output `settings` describe; `previous` is the current output
/// when this is a reconfiguration, `None` at start.
async fn open_output(
    settings: OutputSettings,
    previous: Option<&OutputState>,
    shared: &Arc<Shared>,
    mode: &watch::Receiver<Mode>,
) -> Result<(Prepared, OutputState), EmitterError> {
    let OutputSettings {
        format,
        destination,
        spool_dir,
    } = settings;
    let retired = Arc::new(AtomicBool::new(false));
    let dir_changed = previous.is_none_or(|p| p.spool_dir != spool_dir);
    let (target, sink, file_empty) = match destination {
        Destination::Ingest(ingest) => {
            let client = IngestClient::new(&ingest.url, format, &ingest.mtls).await?;
            let spool = Spool::new(ingest.spool_dir.clone());
            // Stale temp files are deleted only at start: later, an old output may be
            // writing one into the same directory.
            let at_start = previous.is_none();
            let files = blocking({
                let spool = spool.clone();
                move || spool.prepare(at_start)
            })
            .await
            .map_err(|source| EmitterError::SpoolDir {
                path: ingest.spool_dir.clone(),
                source,
            })?;
            tracing::info!(
                url = %spyder_model::secret::redact_url(&ingest.url),
                spool_dir = %ingest.spool_dir.display(),
                spool_files = files,
                "ingest enabled"
            );
            let dir_changed = previous.is_none_or(|p| p.spool_dir != ingest.spool_dir);
            let (tx, rx) = mpsc::channel(WAITING_BATCHES);
            let output = IngestOutput {
                client,
                format,
                spool: spool.clone(),
                shared: Arc::clone(shared),
                mode: mode.clone(),
                buf: Vec::with_capacity(64 * 1024),
                retired: Arc::clone(&retired),
            };
            let prepared = Prepared {
                kind: PreparedKind::Ingest {
                    output: Box::new(output),
                    tx,
                    rx,
                    spool,
                },
                retired,
                spool_files: dir_changed.then_some(files),
            };
            let state = OutputState {
                format,
                target: Target::Ingest(ingest.url),
                spool_dir: ingest.spool_dir,
                header_needed: None,
            };
            return Ok((prepared, state));
        }
        Destination::Stdout => (
            Target::Stdout,
            Sink::Writer(Box::new(tokio::io::stdout())),
            true,
        ),
        Destination::Writer(writer) => (Target::Writer, Sink::Writer(writer), true),
        Destination::File(path) => {
            let (file, empty) =
                open_append(&path)
                    .await
                    .map_err(|source| EmitterError::OutputFile {
                        path: path.clone(),
                        source,
                    })?;
            (Target::File(path), Sink::File(file), empty)
        }
    };

    // A CSV header is due at the start of a stream and of an empty file, and where the
    // format changes within one file; a stream continued in the same format has had it.
    let header_needed = match previous {
        Some(p) if p.continued_by(&target, format) => p
            .header_needed
            .clone()
            .unwrap_or_else(|| Arc::new(AtomicBool::new(file_empty))),
        Some(p) if matches!(&target, Target::File(_)) && p.target == target => {
            Arc::new(AtomicBool::new(true))
        }
        _ => Arc::new(AtomicBool::new(file_empty)),
    };

    let spool = Spool::new(spool_dir.clone());
    let counted = blocking({
        let spool = spool.clone();
        move || spool.list().map(|files| files.len())
    })
    .await;
    let spool_files = match counted {
        Ok(files) => {
            if files > 0 {
                tracing::info!(
                    spool_dir = %spool.dir().display(),
                    spool_files = files,
                    "spool files found; they are replayed only in ingest mode and left untouched"
                );
            }
            // At start the count is 0 already.
            (dir_changed && (files > 0 || previous.is_some())).then_some(files)
        }
        Err(e) => {
            tracing::debug!(spool_dir = %spool.dir().display(), error = %e, "spool directory not readable");
            (dir_changed && previous.is_some()).then_some(0)
        }
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let output = StreamOutput {
        sink: Some(sink),
        header_needed: Arc::clone(&header_needed),
        format,
        buf: Vec::with_capacity(64 * 1024),
        spool,
        shared: Arc::clone(shared),
        mode: mode.clone(),
        retired: Arc::clone(&retired),
    };
    let prepared = Prepared {
        kind: PreparedKind::Stream { output, tx, rx },
        retired,
        spool_files,
    };
    let state = OutputState {
        format,
        target,
        spool_dir,
        header_needed: Some(header_needed),
    };
    Ok((prepared, state))
}

/// fsyncs `file` when it is a regular file. Devices and pipes given as `output.file`
/// (`/dev/null`, a FIFO) cannot be fsynced (EINVAL) and need not be: their writes are
/// already as durable as they get.
fn sync_if_regular(file: &std::fs::File) -> std::io::Result<()> {
    if file.metadata()?.is_file() {
        file.sync_data()
    } else {
        Ok(())
    }
}

enum Sink {
    /// Appended to, fsynced per batch; written on a blocking thread.
    File(std::fs::File),
    /// stdout or a test writer; flushed per batch.
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

/// Writes batches to stdout, a file or a writer; spools once that breaks.
struct StreamOutput {
    /// `None` once the output broke.
    sink: Option<Sink>,
    /// The next CSV batch starts with the header (new stream or empty file); shared
    /// with a later output that continues this stream.
    header_needed: Arc<AtomicBool>,
    format: Format,
    buf: Vec<u8>,
    spool: Spool,
    shared: Arc<Shared>,
    mode: watch::Receiver<Mode>,
    /// A newer output took over: a break no longer marks the output closed.
    retired: Arc<AtomicBool>,
}

impl StreamOutput {
    /// Writes every batch it gets, once the `predecessors` (older stream outputs) ended.
    async fn run(
        mut self,
        mut batches: mpsc::UnboundedReceiver<Sealed>,
        predecessors: Vec<watch::Receiver<bool>>,
    ) {
        all_ended(predecessors).await;
        while let Some(sealed) = batches.recv().await {
            if self.sink.is_none() {
                spool_batch(&self.spool, &self.shared, sealed).await;
                continue;
            }
            self.buf.clear();
            let header = self.format == Format::Csv && self.header_needed.load(Ordering::Relaxed);
            let written = match self.format.encode(&sealed.batch, header, &mut self.buf) {
                Ok(()) => self.write().await,
                Err(e) => Err(format!("cannot encode batch: {e}")),
            };
            match written {
                Ok(()) => {
                    if header {
                        self.header_needed.store(false, Ordering::Relaxed);
                    }
                    self.shared.on_delivered();
                    sealed.resolve(|| Ok(Delivery::Written));
                }
                Err(error) => {
                    self.sink = None;
                    if !self.retired.load(Ordering::Relaxed) {
                        self.shared.closed.send_replace(true);
                    }
                    tracing::warn!(%error, "output closed; spooling this and every later batch");
                    spool_batch(&self.spool, &self.shared, sealed).await;
                }
            }
        }
    }

    /// Writes and flushes `buf` (and fsyncs a file); an error leaves `sink` empty.
    async fn write(&mut self) -> Result<(), String> {
        let Some(sink) = self.sink.take() else {
            return Err("output already closed".to_owned());
        };
        let cut_short = || "write did not finish before the shutdown deadline".to_owned();
        match sink {
            Sink::File(mut file) => {
                let buf = mem::take(&mut self.buf);
                let task = tokio::task::spawn_blocking(move || {
                    let result = file.write_all(&buf).and_then(|()| sync_if_regular(&file));
                    (file, buf, result)
                });
                match race(
                    &mut self.mode,
                    None,
                    OnDrain::Deadline,
                    OnAbort::Deadline,
                    task,
                )
                .await
                {
                    Raced::Done(Ok((file, buf, result))) => {
                        self.buf = buf;
                        result.map_err(|e| e.to_string())?;
                        self.sink = Some(Sink::File(file));
                        Ok(())
                    }
                    Raced::Done(Err(e)) => Err(e.to_string()),
                    Raced::TimedOut | Raced::Cut => Err(cut_short()),
                }
            }
            Sink::Writer(mut writer) => {
                let buf = &self.buf;
                let write = async {
                    writer.write_all(buf).await?;
                    writer.flush().await
                };
                match race(
                    &mut self.mode,
                    None,
                    OnDrain::Deadline,
                    OnAbort::Deadline,
                    write,
                )
                .await
                {
                    Raced::Done(Ok(())) => {
                        self.sink = Some(Sink::Writer(writer));
                        Ok(())
                    }
                    Raced::Done(Err(e)) => Err(e.to_string()),
                    Raced::TimedOut | Raced::Cut => Err(cut_short()),
                }
            }
        }
    }
}

/// How a replay round ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RoundEnd {
    /// Every file was handled.
    Done,
    /// A try failed (or the round was stopped); the rest waits for the next round.
    Failed,
    /// The round's budget ran out with files left.
    OutOfTime,
}

/// POSTs batches one at a time with retries, spools failures and replays the spool.
struct IngestOutput {
    client: IngestClient,
    format: Format,
    spool: Spool,
    shared: Arc<Shared>,
    mode: watch::Receiver<Mode>,
    buf: Vec<u8>,
    /// A newer output took over: no more replays, and `ingest_failing` is no longer
    /// this output's to set.
    retired: Arc<AtomicBool>,
}

impl IngestOutput {
    /// Sets `ingest_failing` unless a newer output took over.
    fn set_failing(&self, failing: bool) {
        if !self.retired.load(Ordering::Relaxed) {
            self.shared.set_failing(failing);
        }
    }

    /// Delivers every batch it gets; replays the spool at startup (once the
    /// `predecessors`, older ingest outputs, ended), every 30 s and at shutdown.
    async fn run(
        mut self,
        mut waiting: mpsc::Receiver<Sealed>,
        predecessors: Vec<watch::Receiver<bool>>,
    ) {
        let mut predecessors_ended = predecessors.is_empty();
        let mut predecessors = std::pin::pin!(all_ended(predecessors));
        // The first round runs at startup.
        let mut next_replay = Instant::now();
        loop {
            let replay_allowed = predecessors_ended && matches!(*self.mode.borrow(), Mode::Running);
            tokio::select! {
                biased;
                sealed = waiting.recv() => match sealed {
                    Some(sealed) => self.deliver(sealed).await,
                    None => break,
                },
                () = &mut predecessors, if !predecessors_ended => predecessors_ended = true,
                () = sleep_until(next_replay), if replay_allowed => {
                    let end = self.replay_round(REPLAY_ROUND_BUDGET, OnDrain::Cut).await;
                    let pause = if end == RoundEnd::OutOfTime { Duration::ZERO } else { REPLAY_EVERY };
                    next_replay = Instant::now() + pause;
                }
            }
        }
        if self.retired.load(Ordering::Relaxed) {
            return;
        }
        // One last spool try for what a full disk kept in memory.
        retry_unspooled(&self.spool, &self.shared).await;
        let mode = *self.mode.borrow();
        if let Mode::Draining { end, .. } = mode {
            if !predecessors_ended {
                predecessors.await;
            }
            let budget = end
                .saturating_duration_since(Instant::now())
                .min(SHUTDOWN_REPLAY_BUDGET);
            if self.shared.ingest_failing.load(Ordering::Relaxed) {
                tracing::info!("ingest is failing; the spool is not replayed at shutdown");
            } else if !budget.is_zero() {
                self.replay_round(budget, OnDrain::Ignore).await;
            }
        }
    }

    /// Delivers one batch: retries while running, one try while draining, none when
    /// aborting; spools it when that fails.
    async fn deliver(&mut self, sealed: Sealed) {
        if matches!(*self.mode.borrow(), Mode::Aborting { .. }) {
            spool_batch(&self.spool, &self.shared, sealed).await;
            return;
        }
        self.buf.clear();
        if let Err(e) = self.format.encode(&sealed.batch, true, &mut self.buf) {
            tracing::error!(batch_id = %sealed.batch.batch_id, error = %e, "cannot encode batch; spooling");
            spool_batch(&self.spool, &self.shared, sealed).await;
            return;
        }
        let body = Bytes::copy_from_slice(&self.buf);
        let window_end = Instant::now() + RETRY_WINDOW;
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0u32;
        let mut last_error = String::from("shutting down before the first try");
        loop {
            match *self.mode.borrow() {
                Mode::Aborting { .. } => break,
                Mode::Draining { deadline, .. } if tries > 0 || Instant::now() >= deadline => break,
                _ => {}
            }
            tries += 1;
            let limit = (Instant::now() + TRY_TIMEOUT).min(window_end);
            let post = self.client.post(body.clone());
            let outcome = race(
                &mut self.mode,
                Some(limit),
                OnDrain::Deadline,
                OnAbort::Cut,
                post,
            )
            .await;
            let retry_after = match outcome {
                Raced::Done(Ok(answer)) if answer.status.is_success() => {
                    self.set_failing(false);
                    self.shared.on_delivered();
                    tracing::debug!(batch_id = %sealed.batch.batch_id, tries, "batch delivered");
                    sealed.resolve(|| Ok(Delivery::Delivered));
                    return;
                }
                Raced::Done(Ok(answer)) if answer.is_retryable() => {
                    last_error = format!("HTTP {}", answer.status);
                    answer.retry_after
                }
                Raced::Done(Ok(answer)) => {
                    last_error = format!("HTTP {} (not retried)", answer.status);
                    break;
                }
                Raced::Done(Err(e)) => {
                    last_error = e;
                    None
                }
                Raced::TimedOut => {
                    last_error = "timed out".to_owned();
                    None
                }
                Raced::Cut => {
                    last_error = "cut short by the shutdown".to_owned();
                    break;
                }
            };
            self.set_failing(true);
            let wait = retry_after.unwrap_or_else(|| jittered(backoff));
            backoff = backoff.saturating_mul(2);
            let wake = after(Instant::now(), wait);
            if wake >= window_end {
                last_error.push_str("; retries exhausted");
                break;
            }
            let sleep = race(
                &mut self.mode,
                Some(wake),
                OnDrain::Cut,
                OnAbort::Cut,
                pending::<()>(),
            );
            if !matches!(sleep.await, Raced::TimedOut) {
                break;
            }
        }
        if tries > 0 {
            self.set_failing(true);
            tracing::warn!(batch_id = %sealed.batch.batch_id, tries, error = %last_error, "ingest failed, spooling");
        }
        spool_batch(&self.spool, &self.shared, sealed).await;
    }

    /// One replay round: oldest file first, one try each; a failure ends the round.
    async fn replay_round(&mut self, budget: Duration, on_drain: OnDrain) -> RoundEnd {
        let deadline = after(Instant::now(), budget);
        // Batches the spool could not take last time get their next try first.
        retry_unspooled(&self.spool, &self.shared).await;
        let files = match blocking({
            let spool = self.spool.clone();
            move || spool.list()
        })
        .await
        {
            Ok(files) => files,
            Err(e) => {
                tracing::warn!(spool_dir = %self.spool.dir().display(), error = %e, "cannot list the spool");
                return RoundEnd::Failed;
            }
        };
        if files.is_empty() {
            return RoundEnd::Done;
        }
        tracing::info!(files = files.len(), "replaying spool");
        for path in files {
            if self.retired.load(Ordering::Relaxed) {
                // The newer ingest output replays what is left.
                return RoundEnd::Failed;
            }
            if Instant::now() >= deadline {
                return RoundEnd::OutOfTime;
            }
            let bytes = match tokio::fs::read(&path).await {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "cannot read spool file");
                    return RoundEnd::Failed;
                }
            };
            let batch: Batch = match serde_json::from_slice(&bytes) {
                Ok(batch) => batch,
                Err(e) => {
                    match Spool::mark_bad(&path) {
                        Ok(bad) => {
                            self.shared.on_spool_file_gone(false);
                            tracing::warn!(file = %bad.display(), error = %e, "undecodable spool file renamed");
                        }
                        Err(rename) => {
                            tracing::warn!(file = %path.display(), error = %e, %rename, "undecodable spool file cannot be renamed");
                        }
                    }
                    continue;
                }
            };
            let body = if self.format == Format::Json {
                let mut bytes = bytes;
                if !bytes.ends_with(b"\n") {
                    bytes.push(b'\n');
                }
                Bytes::from(bytes)
            } else {
                self.buf.clear();
                if let Err(e) = self.format.encode(&batch, true, &mut self.buf) {
                    tracing::warn!(file = %path.display(), error = %e, "cannot encode spooled batch");
                    return RoundEnd::Failed;
                }
                Bytes::copy_from_slice(&self.buf)
            };
            let limit = (Instant::now() + TRY_TIMEOUT).min(deadline);
            let post = self.client.post(body);
            let error = match race(&mut self.mode, Some(limit), on_drain, OnAbort::Cut, post).await
            {
                Raced::Done(Ok(answer)) if answer.status.is_success() => None,
                Raced::Done(Ok(answer)) => Some(format!("HTTP {}", answer.status)),
                Raced::Done(Err(e)) => Some(e),
                Raced::TimedOut => Some("timed out".to_owned()),
                Raced::Cut => return RoundEnd::Failed,
            };
            if let Some(error) = error {
                self.set_failing(true);
                tracing::info!(file = %path.display(), %error, "spool replay stopped");
                return RoundEnd::Failed;
            }
            self.set_failing(false);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "replayed spool file cannot be deleted");
                    return RoundEnd::Failed;
                }
            }
            self.shared.on_spool_file_gone(true);
            tracing::debug!(batch_id = %batch.batch_id, file = %path.display(), "spool file replayed");
        }
        RoundEnd::Done
    }
}

/// How far ahead a deadline that cannot be represented is put: it never comes.
const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 24 * 3600);

/// `d` after `from`, saturating: a `d` no clock can add (a huge `Retry-After`, an
/// interval or budget from a caller) gives a deadline about 30 years away.
fn after(from: Instant, d: Duration) -> Instant {
    from.checked_add(d)
        .or_else(|| from.checked_add(FAR_FUTURE))
        .unwrap_or(from)
}

/// `base` × a random factor in [0.5, 1.5).
fn jittered(base: Duration) -> Duration {
    base.mul_f64(rand::random_range(0.5..1.5))
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

    #[test]
    fn jitter_stays_within_half_either_way() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(500));
            assert!(d >= Duration::from_millis(250) && d < Duration::from_millis(750));
        }
    }
}

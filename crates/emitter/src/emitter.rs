//! The emitter handle, the batcher task and the two output tasks (stream and ingest).
//!
//! `submit` hands records to the batcher over an unbounded channel and never blocks;
//! memory is bounded upstream, since every submission holds an unacked queue lease
//! until its receipt resolves. The batcher seals batches and passes them to one
//! output task: the stream task writes stdout, a file or a test writer; the ingest
//! task POSTs (one at a time), retries, spools and replays. Shutdown and abort are a
//! [`Mode`] every task watches, so a retry, a hung POST or a slow write is cut short.

use std::future::{Future, pending};
use std::io::{self, Write as _};
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
use crate::{Destination, EmitterConfig, EmitterError, Format};

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
    /// Batches that could not even be spooled: their records are lost.
    pub spool_errors: u64,
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
    submissions: mpsc::UnboundedSender<Submission>,
    mode: watch::Sender<Mode>,
    shared: Arc<Shared>,
    finished: watch::Receiver<Option<ShutdownReport>>,
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
        let max_nodes = cfg.max_nodes();
        let EmitterConfig {
            probe_id,
            run_id,
            format,
            destination,
            spool_dir,
            max_edges,
            flush_interval,
            node_threshold_ratio: _,
        } = cfg;

        let shared = Arc::new(Shared::new());
        let (mode_tx, mode_rx) = watch::channel(Mode::Running);
        let (submit_tx, submit_rx) = mpsc::unbounded_channel();
        let (finished_tx, finished_rx) = watch::channel(None);

        let (out, output_task) = match destination {
            Destination::Ingest(ingest) => {
                let client = IngestClient::new(&ingest.url, format, &ingest.mtls).await?;
                let spool = Spool::new(ingest.spool_dir.clone());
                let files = blocking({
                    let spool = spool.clone();
                    move || spool.prepare()
                })
                .await
                .map_err(|source| EmitterError::SpoolDir {
                    path: ingest.spool_dir.clone(),
                    source,
                })?;
                shared.set_spool_files(files);
                tracing::info!(
                    url = %ingest.url,
                    spool_dir = %ingest.spool_dir.display(),
                    spool_files = files,
                    "ingest enabled"
                );
                let (tx, rx) = mpsc::channel(WAITING_BATCHES);
                let output = IngestOutput {
                    client,
                    format,
                    spool: spool.clone(),
                    shared: Arc::clone(&shared),
                    mode: mode_rx.clone(),
                    buf: Vec::with_capacity(64 * 1024),
                };
                let task = tokio::spawn(output.run(rx));
                (BatchOut::Ingest { waiting: tx, spool }, task)
            }
            Destination::Stdout => {
                let sink = Sink::Writer(Box::new(tokio::io::stdout()));
                stream_output(sink, true, format, spool_dir, &shared, &mode_rx).await
            }
            Destination::Writer(writer) => {
                let sink = Sink::Writer(writer);
                stream_output(sink, true, format, spool_dir, &shared, &mode_rx).await
            }
            Destination::File(path) => {
                let (file, empty) = open_append(&path)
                    .await
                    .map_err(|source| EmitterError::OutputFile { path, source })?;
                stream_output(
                    Sink::File(file),
                    empty,
                    format,
                    spool_dir,
                    &shared,
                    &mode_rx,
                )
                .await
            }
        };

        let batcher = Batcher {
            probe_id,
            run_id,
            max_edges,
            max_nodes,
            interval: flush_interval,
            records: Records::default(),
            receipts: Vec::new(),
            deadline: None,
            out,
            shared: Arc::clone(&shared),
        };
        let batcher_task = tokio::spawn(batcher.run(submit_rx, mode_rx));
        let report_from = Arc::clone(&shared);
        tokio::spawn(async move {
            let _ = batcher_task.await;
            let _ = output_task.await;
            finished_tx.send_replace(Some(report_from.status()));
        });

        Ok(Self {
            inner: Arc::new(Inner {
                submissions: submit_tx,
                mode: mode_tx,
                shared,
                finished: finished_rx,
            }),
        })
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
        match self.inner.submissions.send(submission) {
            Ok(()) => Receipt(ReceiptState::Waiting(rx)),
            Err(_) => Receipt(ReceiptState::Ready(Some(Err(EmitterError::Closed)))),
        }
    }

    /// Counters and flags right now.
    pub fn status(&self) -> EmitterStatus {
        self.inner.shared.status()
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
        let deadline = Instant::now() + budget;
        self.inner.mode.send_if_modified(|mode| {
            let running = matches!(mode, Mode::Running);
            if running {
                *mode = Mode::Draining { deadline };
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
        metrics::counter!("spyder_batch_emissions_total", "status" => "failure").increment(1);
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

/// Writes `sealed` to the spool and resolves its receipts.
async fn spool_batch(spool: &Spool, shared: &Shared, sealed: Sealed) {
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
            tracing::error!(%batch_id, spool_dir = %spool.dir().display(), error = %e, "cannot spool batch; its records are lost");
            let reason = e.to_string();
            sealed.resolve(|| {
                Err(EmitterError::Spool {
                    batch_id: batch_id.to_string(),
                    dir: spool.dir().to_path_buf(),
                    reason: reason.clone(),
                })
            });
        }
        Err(e) => {
            // The receipts were dropped with the task: they resolve as `Closed`.
            shared.on_spool_error();
            tracing::error!(%batch_id, error = %e, "spool task failed; the batch's records are lost");
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
            Mode::Draining { deadline } => match on_drain {
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
    max_edges: usize,
    max_nodes: usize,
    interval: Duration,
    records: Records,
    receipts: Vec<ReceiptSender>,
    /// When the current batch must be flushed: `interval` after its first record.
    deadline: Option<Instant>,
    out: BatchOut,
    shared: Arc<Shared>,
}

impl Batcher {
    async fn run(
        mut self,
        mut submissions: mpsc::UnboundedReceiver<Submission>,
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
                submission = submissions.recv() => match submission {
                    Some(s) => self.add(s).await,
                    None => break,
                },
                () = timer => self.flush().await,
            }
        }
        // Stopping: take what was already submitted, refuse the rest, flush.
        submissions.close();
        while let Some(s) = submissions.recv().await {
            self.add(s).await;
        }
        self.flush().await;
    }

    async fn add(&mut self, mut submission: Submission) {
        if self.records.is_empty() {
            self.deadline = Some(Instant::now() + self.interval);
        }
        self.records.append(&mut submission.records);
        self.receipts.push(submission.receipt);
        if self.records.edges.len() >= self.max_edges || self.records.node_count() >= self.max_nodes
        {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
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

/// Counts (never touches) the spool files and spawns the stream output task.
async fn stream_output(
    sink: Sink,
    header_needed: bool,
    format: Format,
    spool_dir: std::path::PathBuf,
    shared: &Arc<Shared>,
    mode: &watch::Receiver<Mode>,
) -> (BatchOut, JoinHandle<()>) {
    let spool = Spool::new(spool_dir);
    let counted = blocking({
        let spool = spool.clone();
        move || spool.list().map(|files| files.len())
    })
    .await;
    match counted {
        Ok(0) => {}
        Ok(files) => {
            shared.set_spool_files(files);
            tracing::info!(
                spool_dir = %spool.dir().display(),
                spool_files = files,
                "spool files found; they are replayed only in ingest mode and left untouched"
            );
        }
        Err(e) => {
            tracing::debug!(spool_dir = %spool.dir().display(), error = %e, "spool directory not readable")
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let output = StreamOutput {
        sink: Some(sink),
        header_needed,
        format,
        buf: Vec::with_capacity(64 * 1024),
        spool,
        shared: Arc::clone(shared),
        mode: mode.clone(),
    };
    (BatchOut::Stream(tx), tokio::spawn(output.run(rx)))
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
    /// The next CSV batch starts with the header (new stream or empty file).
    header_needed: bool,
    format: Format,
    buf: Vec<u8>,
    spool: Spool,
    shared: Arc<Shared>,
    mode: watch::Receiver<Mode>,
}

impl StreamOutput {
    async fn run(mut self, mut batches: mpsc::UnboundedReceiver<Sealed>) {
        while let Some(sealed) = batches.recv().await {
            if self.sink.is_none() {
                spool_batch(&self.spool, &self.shared, sealed).await;
                continue;
            }
            self.buf.clear();
            let header = self.header_needed && self.format == Format::Csv;
            let written = match self.format.encode(&sealed.batch, header, &mut self.buf) {
                Ok(()) => self.write().await,
                Err(e) => Err(format!("cannot encode batch: {e}")),
            };
            match written {
                Ok(()) => {
                    if header {
                        self.header_needed = false;
                    }
                    self.shared.on_delivered();
                    sealed.resolve(|| Ok(Delivery::Written));
                }
                Err(error) => {
                    self.sink = None;
                    self.shared.closed.send_replace(true);
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
}

impl IngestOutput {
    async fn run(mut self, mut waiting: mpsc::Receiver<Sealed>) {
        // The first round runs at startup.
        let mut next_replay = Instant::now();
        loop {
            let replay_allowed = matches!(*self.mode.borrow(), Mode::Running);
            tokio::select! {
                biased;
                sealed = waiting.recv() => match sealed {
                    Some(sealed) => self.deliver(sealed).await,
                    None => break,
                },
                () = sleep_until(next_replay), if replay_allowed => {
                    let end = self.replay_round(REPLAY_ROUND_BUDGET, OnDrain::Cut).await;
                    let pause = if end == RoundEnd::OutOfTime { Duration::ZERO } else { REPLAY_EVERY };
                    next_replay = Instant::now() + pause;
                }
            }
        }
        if matches!(*self.mode.borrow(), Mode::Draining { .. }) {
            if self.shared.ingest_failing.load(Ordering::Relaxed) {
                tracing::info!("ingest is failing; the spool is not replayed at shutdown");
            } else {
                self.replay_round(SHUTDOWN_REPLAY_BUDGET, OnDrain::Ignore)
                    .await;
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
                Mode::Draining { deadline } if tries > 0 || Instant::now() >= deadline => break,
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
                    self.shared.set_failing(false);
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
            self.shared.set_failing(true);
            let wait = retry_after.unwrap_or_else(|| jittered(backoff));
            backoff = backoff.saturating_mul(2);
            if Instant::now() + wait >= window_end {
                last_error.push_str("; retries exhausted");
                break;
            }
            let sleep = race(
                &mut self.mode,
                Some(Instant::now() + wait),
                OnDrain::Cut,
                OnAbort::Cut,
                pending::<()>(),
            );
            if !matches!(sleep.await, Raced::TimedOut) {
                break;
            }
        }
        if tries > 0 {
            self.shared.set_failing(true);
            tracing::warn!(batch_id = %sealed.batch.batch_id, tries, error = %last_error, "ingest failed, spooling");
        }
        spool_batch(&self.spool, &self.shared, sealed).await;
    }

    /// One replay round: oldest file first, one try each; a failure ends the round.
    async fn replay_round(&mut self, budget: Duration, on_drain: OnDrain) -> RoundEnd {
        let deadline = Instant::now() + budget;
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
                self.shared.set_failing(true);
                tracing::info!(file = %path.display(), %error, "spool replay stopped");
                return RoundEnd::Failed;
            }
            self.shared.set_failing(false);
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

    #[test]
    fn jitter_stays_within_half_either_way() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(500));
            assert!(d >= Duration::from_millis(250) && d < Duration::from_millis(750));
        }
    }
}

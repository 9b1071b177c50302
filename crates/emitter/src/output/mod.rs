//! The outputs: opening and checking one (at start and at a reconfiguration), and
//! spawning its task so that it never interleaves with the outputs it replaces.
//!
//! The stream task ([`stream`]) writes stdout, a file or a test writer; the ingest task
//! ([`ingest`]) POSTs (one at a time), retries, spools and replays. A new stream task
//! starts writing, and a new ingest task replaying, only after the old ones of its kind
//! ended.

mod ingest;
mod spool;
mod stream;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::mode::Mode;
use crate::shared::{Sealed, Shared};
use crate::{Destination, EmitterError, Format, IngestConfig, OutputSettings};
use ingest::IngestOutput;
use ingest::client::IngestClient;
use spool::spool_batch;
use spool::{Spool, blocking};
use stream::{StreamOutput, Writable, open_append};

/// Batches that may wait for the ingest task; more go straight to the spool.
const WAITING_BATCHES: usize = 8;

/// Where the batcher sends sealed batches.
pub(crate) enum BatchOut {
    /// To the stream task.
    Stream(mpsc::UnboundedSender<Sealed>),
    /// At most [`WAITING_BATCHES`] wait for the ingest task; the rest are spooled here.
    Ingest {
        waiting: mpsc::Sender<Sealed>,
        spool: Spool,
    },
}

impl BatchOut {
    /// Hands `sealed` to the output task. A busy (or ended) ingest task means the batch
    /// is spooled now; an ended stream task means its receipts resolve as closed.
    pub(crate) async fn send(&self, sealed: Sealed, shared: &Shared) {
        match self {
            Self::Stream(tx) => {
                if let Err(mpsc::error::SendError(sealed)) = tx.send(sealed) {
                    sealed.resolve(|| Err(EmitterError::Closed));
                }
            }
            Self::Ingest { waiting, spool } => match waiting.try_send(sealed) {
                Ok(()) => {}
                Err(
                    mpsc::error::TrySendError::Full(sealed)
                    | mpsc::error::TrySendError::Closed(sealed),
                ) => {
                    tracing::debug!(batch_id = %sealed.batch.batch_id, "ingest busy; spooling");
                    spool_batch(spool, shared, sealed).await;
                }
            },
        }
    }
}

/// What the current output is: what a reconfiguration compares with.
pub(crate) struct OutputState {
    pub(crate) format: Format,
    pub(crate) target: Target,
    /// The spool directory in use (the ingest one in ingest mode).
    pub(crate) spool_dir: PathBuf,
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
pub(crate) enum Target {
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
pub(crate) struct Prepared {
    kind: PreparedKind,
    /// Set by the batcher once a newer output took over.
    retired: Arc<AtomicBool>,
    /// The spool file count to publish when this output starts (its directory changed).
    pub(crate) spool_files: Option<usize>,
}

/// The task an output runs, and the channel the batcher feeds it through.
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
pub(crate) struct Running {
    pub(crate) task: JoinHandle<()>,
    /// Turns `true` when the task ended (the sender is dropped if it panicked).
    done: watch::Receiver<bool>,
    pub(crate) retired: Arc<AtomicBool>,
    ingest: bool,
}

impl Prepared {
    /// Spawns the output task. A stream output writes only once the stream outputs in
    /// `running` ended (so that nothing interleaves on stdout or in a file); an ingest
    /// output replays its spool only once the ingest outputs in `running` ended (so
    /// that no spool file is replayed twice).
    pub(crate) fn spawn(self, running: &[Running]) -> (BatchOut, Running) {
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
pub(crate) async fn open_output(
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
    let (target, writable, file_empty) = match destination {
        Destination::Ingest(ingest) => {
            return open_ingest(ingest, format, previous, shared, mode, retired).await;
        }
        Destination::Stdout => (
            Target::Stdout,
            Writable::Writer(Box::new(tokio::io::stdout())),
            true,
        ),
        Destination::Writer(writer) => (Target::Writer, Writable::Writer(writer), true),
        Destination::File(path) => {
            let (file, empty) =
                open_append(&path)
                    .await
                    .map_err(|source| EmitterError::OutputFile {
                        path: path.clone(),
                        source,
                    })?;
            (Target::File(path), Writable::File(file), empty)
        }
    };

    let header_needed = header_flag(previous, &target, format, file_empty);

    let spool = Spool::new(spool_dir.clone());
    let spool_files = count_spool_files(&spool, dir_changed, previous.is_some()).await;
    let (tx, rx) = mpsc::unbounded_channel();
    let output = StreamOutput {
        writable: Some(writable),
        header_needed: Arc::clone(&header_needed),
        format,
        buf: Vec::with_capacity(64 * 1024),
        broken: None,
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

/// Checks an ingest output's URL and mTLS files, connecting nowhere.
pub(crate) async fn check_ingest(
    ingest: &IngestConfig,
    format: Format,
) -> Result<(), EmitterError> {
    IngestClient::new(&ingest.url, format, &ingest.mtls)
        .await
        .map(drop)
}

/// Opens and checks an ingest output: the URL and mTLS files, and the spool directory
/// (created and proven writable; stale temp files deleted at start only).
async fn open_ingest(
    ingest: IngestConfig,
    format: Format,
    previous: Option<&OutputState>,
    shared: &Arc<Shared>,
    mode: &watch::Receiver<Mode>,
    retired: Arc<AtomicBool>,
) -> Result<(Prepared, OutputState), EmitterError> {
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
    Ok((prepared, state))
}

/// A CSV header is due at the start of a stream and of an empty file, and where the
/// format changes within one file; a stream continued in the same format has had it.
fn header_flag(
    previous: Option<&OutputState>,
    target: &Target,
    format: Format,
    file_empty: bool,
) -> Arc<AtomicBool> {
    match previous {
        Some(p) if p.continued_by(target, format) => p
            .header_needed
            .clone()
            .unwrap_or_else(|| Arc::new(AtomicBool::new(file_empty))),
        Some(p) if matches!(target, Target::File(_)) && p.target == *target => {
            Arc::new(AtomicBool::new(true))
        }
        _ => Arc::new(AtomicBool::new(file_empty)),
    }
}

/// Counts the spool files a stream output leaves untouched; the count to publish when
/// the spool directory changed (`None`: keep the current one).
async fn count_spool_files(spool: &Spool, dir_changed: bool, reconfiguring: bool) -> Option<usize> {
    let counted = blocking({
        let spool = spool.clone();
        move || spool.list().map(|files| files.len())
    })
    .await;
    match counted {
        Ok(files) => {
            if files > 0 {
                tracing::info!(
                    spool_dir = %spool.dir().display(),
                    spool_files = files,
                    "spool files found; they are replayed only in ingest mode and left untouched"
                );
            }
            // At start the count is 0 already.
            (dir_changed && (files > 0 || reconfiguring)).then_some(files)
        }
        Err(e) => {
            tracing::debug!(spool_dir = %spool.dir().display(), error = %e, "spool directory not readable");
            (dir_changed && reconfiguring).then_some(0)
        }
    }
}

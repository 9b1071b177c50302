//! The state every task shares: sealed batches with their receipts, and the counters
//! and flags behind [`EmitterStatus`], including the batches held in memory while the
//! spool cannot be written (SPEC §3.11).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spyder_model::Batch;
use tokio::sync::{oneshot, watch};

use crate::EmitterError;
use crate::status::{Delivery, EmitterStatus};

/// Batches kept in memory while the spool cannot be written (SPEC §3.11); past this
/// the newest are given up and intake stops.
const UNSPOOLED_MAX: usize = 64;

pub(crate) type ReceiptSender = oneshot::Sender<Result<Delivery, EmitterError>>;

/// A sealed batch and the receipts waiting for it.
pub(crate) struct Sealed {
    pub(crate) batch: Batch,
    pub(crate) receipts: Vec<ReceiptSender>,
}

impl Sealed {
    pub(crate) fn resolve(self, result: impl Fn() -> Result<Delivery, EmitterError>) {
        for receipt in self.receipts {
            // A dropped receipt means nobody waits: fine.
            let _ = receipt.send(result());
        }
    }
}

/// Counters and flags shared by the handle and the tasks.
pub(crate) struct Shared {
    /// `output.status_records`: CSV carries the status columns (fixed at start).
    pub(crate) status_columns: bool,
    delivered: AtomicU64,
    spooled: AtomicU64,
    replayed: AtomicU64,
    spool_files: AtomicU64,
    spool_errors: AtomicU64,
    pub(crate) ingest_failing: AtomicBool,
    pub(crate) closed: watch::Sender<bool>,
    /// Batches whose spool write failed, oldest first, kept for the next try.
    unspooled: Mutex<VecDeque<Sealed>>,
    /// The spool directory those batches failed to reach.
    unspooled_dir: Mutex<PathBuf>,
    pub(crate) lost: AtomicU64,
    not_written: AtomicU64,
    records_not_written: AtomicU64,
    edges_not_written: AtomicU64,
    /// More batches failed to spool than memory may hold: intake should stop.
    pub(crate) overflowed: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(status_columns: bool) -> Self {
        Self {
            status_columns,
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
            not_written: AtomicU64::new(0),
            records_not_written: AtomicU64::new(0),
            edges_not_written: AtomicU64::new(0),
            overflowed: watch::Sender::new(false),
        }
    }

    pub(crate) fn status(&self) -> EmitterStatus {
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
            batches_not_written: self.not_written.load(Ordering::Relaxed),
            records_not_written: self.records_not_written.load(Ordering::Relaxed),
            edges_not_written: self.edges_not_written.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn on_delivered(&self) {
        self.delivered.fetch_add(1, Ordering::Relaxed);
        spyder_model::telemetry::batch_emissions("success").increment(1);
    }

    /// stdout or the file broke before `sealed` was written: its records are counted
    /// and its receipts fail (a queue item behind them is not acked).
    pub(crate) fn not_written(&self, sealed: Sealed, reason: &str) {
        let batch = &sealed.batch;
        let edges = batch.edges.len() as u64;
        let records = (batch.nodes_domain.len() + batch.nodes_ip.len() + batch.nodes_cert.len())
            as u64
            + edges;
        self.not_written.fetch_add(1, Ordering::Relaxed);
        self.records_not_written
            .fetch_add(records, Ordering::Relaxed);
        self.edges_not_written.fetch_add(edges, Ordering::Relaxed);
        spyder_model::telemetry::batch_emissions("failure").increment(1);
        tracing::debug!(batch_id = %batch.batch_id, records, "output closed; batch not written");
        sealed.resolve(|| {
            Err(EmitterError::OutputClosed {
                reason: reason.to_owned(),
            })
        });
    }

    pub(crate) fn on_spooled(&self) {
        self.spooled.fetch_add(1, Ordering::Relaxed);
        spyder_model::telemetry::batch_emissions("failure").increment(1);
        let files = self.spool_files.fetch_add(1, Ordering::Relaxed) + 1;
        publish_spool_files(files);
    }

    pub(crate) fn on_spool_error(&self) {
        self.spool_errors.fetch_add(1, Ordering::Relaxed);
    }

    fn unspooled_len(&self) -> usize {
        self.unspooled.lock().map(|q| q.len()).unwrap_or(0)
    }

    /// Takes the batches waiting for a spool retry, oldest first.
    pub(crate) fn take_unspooled(&self) -> VecDeque<Sealed> {
        self.unspooled
            .lock()
            .map(|mut q| std::mem::take(&mut *q))
            .unwrap_or_default()
    }

    /// Keeps `waiting` (oldest first) for the next try, up to [`UNSPOOLED_MAX`]; the
    /// newest beyond it are given up, and intake should stop.
    pub(crate) fn hold_unspooled(
        &self,
        mut waiting: VecDeque<Sealed>,
        spool_dir: &Path,
        reason: &str,
    ) {
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
        spyder_model::telemetry::batch_emissions("failure").increment(1);
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
    pub(crate) fn lose_unspooled(&self) {
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
    pub(crate) fn on_spool_file_gone(&self, replayed: bool) {
        if replayed {
            self.replayed.fetch_add(1, Ordering::Relaxed);
            spyder_model::telemetry::batch_emissions("success").increment(1);
        }
        let before = self
            .spool_files
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            })
            .unwrap_or(0);
        publish_spool_files(before.saturating_sub(1));
    }

    pub(crate) fn set_spool_files(&self, files: usize) {
        let files = files as u64;
        self.spool_files.store(files, Ordering::Relaxed);
        publish_spool_files(files);
    }

    pub(crate) fn set_failing(&self, failing: bool) {
        self.ingest_failing.store(failing, Ordering::Relaxed);
    }
}

#[allow(clippy::cast_precision_loss)]
fn publish_spool_files(files: u64) {
    spyder_model::telemetry::spool_files().set(files as f64);
}

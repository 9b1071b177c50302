//! The batcher task: gathers submissions into batches, seals them by size or age, and
//! hands them to the current output; switches outputs at a batch boundary.
//!
//! Limits and output switches travel to the batcher through the submission channel,
//! so they are ordered with the records. A switch seals the current batch for the old
//! output task, which then ends once it has handled what it holds.

use std::future::pending;
use std::mem;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use spyder_model::{Batch, Records};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::BatchLimits;
use crate::mode::{Mode, after};
use crate::output::{BatchOut, Prepared, Running};
use crate::shared::{ReceiptSender, Sealed, Shared};

/// Records and the receipt waiting for the batch that will hold them.
pub(crate) struct Submission {
    pub(crate) records: Records,
    pub(crate) receipt: ReceiptSender,
}

/// What the handle asks of the batcher, in order: records and settings submitted
/// before a switch are handled before it.
pub(crate) enum Command {
    /// Add records to the current batch.
    Submit(Submission),
    /// New batching limits (Tier 1).
    Limits(BatchLimits),
    /// Seal the pending batch now.
    Flush,
    /// Seal the current batch for the old output, then send to `output`.
    Output {
        output: Box<Prepared>,
        switched: oneshot::Sender<()>,
    },
}

/// Gathers submissions into batches and flushes them by size or age.
pub(crate) struct Batcher {
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
    /// A batcher sending to `out`, the output task behind `running`.
    pub(crate) fn new(
        probe_id: String,
        run_id: String,
        limits: BatchLimits,
        out: BatchOut,
        running: Running,
        shared: Arc<Shared>,
    ) -> Self {
        Self {
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
            shared,
        }
    }

    /// Handles commands until the channel closes or a shutdown begins, then takes
    /// what was already submitted, flushes, and waits for every output task to end.
    pub(crate) async fn run(
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
        self.out.send(sealed, &self.shared).await;
    }
}

//! The ingest output: POSTs batches one at a time with retries, spools what fails,
//! and replays the spool at startup, every 30 s and at shutdown (SPEC §3.11).

pub(super) mod client;

use std::future::pending;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use spyder_model::Batch;
use spyder_model::backoff::Backoff;
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, sleep_until};

use super::all_ended;
use super::spool::{Spool, blocking, retry_unspooled, spool_batch};
use crate::Format;
use crate::mode::{Mode, OnAbort, OnDrain, Raced, SHUTDOWN_REPLAY_BUDGET, after, race};
use crate::shared::{Sealed, Shared};
use crate::status::Delivery;
use client::IngestClient;

/// Time allowed for one POST.
const TRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time within which a batch's retries must start.
const RETRY_WINDOW: Duration = Duration::from_secs(30);
/// First retry delay; doubles per try, ±50% jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// Pause between spool replay rounds.
const REPLAY_EVERY: Duration = Duration::from_secs(30);
/// Time one startup or periodic replay round may take before live batches get a turn.
const REPLAY_ROUND_BUDGET: Duration = Duration::from_secs(10);

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
pub(super) struct IngestOutput {
    pub(super) client: IngestClient,
    pub(super) format: Format,
    pub(super) spool: Spool,
    pub(super) shared: Arc<Shared>,
    pub(super) mode: watch::Receiver<Mode>,
    pub(super) buf: Vec<u8>,
    /// A newer output took over: no more replays, and `ingest_failing` is no longer
    /// this output's to set.
    pub(super) retired: Arc<AtomicBool>,
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
    pub(super) async fn run(
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
        if let Err(e) = self.format.encode_with_status(
            &sealed.batch,
            true,
            self.shared.status_columns,
            &mut self.buf,
        ) {
            tracing::error!(batch_id = %sealed.batch.batch_id, error = %e, "cannot encode batch; spooling");
            spool_batch(&self.spool, &self.shared, sealed).await;
            return;
        }
        let body = Bytes::copy_from_slice(&self.buf);
        let window_end = Instant::now() + RETRY_WINDOW;
        // Doubling without a cap of its own: the retry window bounds it.
        let mut backoff = Backoff::new(FIRST_BACKOFF, RETRY_WINDOW);
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
            let jittered = backoff.next_delay();
            let wait = retry_after.unwrap_or(jittered);
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
            if let Some(end) = self.replay_file(&path, deadline, on_drain).await {
                return end;
            }
        }
        RoundEnd::Done
    }

    /// Replays one spool file: one try, then the file is deleted. `Some` ends the round.
    async fn replay_file(
        &mut self,
        path: &Path,
        deadline: Instant,
        on_drain: OnDrain,
    ) -> Option<RoundEnd> {
        let bytes = match tokio::fs::read(path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "cannot read spool file");
                return Some(RoundEnd::Failed);
            }
        };
        let batch: Batch = match serde_json::from_slice(&bytes) {
            Ok(batch) => batch,
            Err(e) => {
                match Spool::mark_bad(path) {
                    Ok(bad) => {
                        self.shared.on_spool_file_gone(false);
                        tracing::warn!(file = %bad.display(), error = %e, "undecodable spool file renamed");
                    }
                    Err(rename) => {
                        tracing::warn!(file = %path.display(), error = %e, %rename, "undecodable spool file cannot be renamed");
                    }
                }
                return None;
            }
        };
        let Some(body) = self.replay_body(bytes, &batch, path) else {
            return Some(RoundEnd::Failed);
        };
        let limit = (Instant::now() + TRY_TIMEOUT).min(deadline);
        let post = self.client.post(body);
        let error = match race(&mut self.mode, Some(limit), on_drain, OnAbort::Cut, post).await {
            Raced::Done(Ok(answer)) if answer.status.is_success() => None,
            Raced::Done(Ok(answer)) => Some(format!("HTTP {}", answer.status)),
            Raced::Done(Err(e)) => Some(e),
            Raced::TimedOut => Some("timed out".to_owned()),
            Raced::Cut => return Some(RoundEnd::Failed),
        };
        if let Some(error) = error {
            self.set_failing(true);
            tracing::info!(file = %path.display(), %error, "spool replay stopped");
            return Some(RoundEnd::Failed);
        }
        self.set_failing(false);
        match tokio::fs::remove_file(path).await {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "replayed spool file cannot be deleted");
                return Some(RoundEnd::Failed);
            }
        }
        self.shared.on_spool_file_gone(true);
        tracing::debug!(batch_id = %batch.batch_id, file = %path.display(), "spool file replayed");
        None
    }

    /// The body to POST for a spool file: its bytes as they are in JSON, the batch
    /// re-encoded otherwise. `None` (logged) when it cannot be encoded.
    fn replay_body(&mut self, bytes: Vec<u8>, batch: &Batch, path: &Path) -> Option<Bytes> {
        if self.format == Format::Json {
            let mut bytes = bytes;
            if !bytes.ends_with(b"\n") {
                bytes.push(b'\n');
            }
            Some(Bytes::from(bytes))
        } else {
            self.buf.clear();
            if let Err(e) = self.format.encode_with_status(
                batch,
                true,
                self.shared.status_columns,
                &mut self.buf,
            ) {
                tracing::warn!(file = %path.display(), error = %e, "cannot encode spooled batch");
                return None;
            }
            Some(Bytes::copy_from_slice(&self.buf))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use spyder_model::backoff::jittered;

    #[test]
    fn jitter_stays_within_half_either_way() {
        for _ in 0..1000 {
            let d = jittered(Duration::from_millis(500));
            assert!(d >= Duration::from_millis(250) && d < Duration::from_millis(750));
        }
    }
}

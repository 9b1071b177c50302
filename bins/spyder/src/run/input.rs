//! The file-mode input: streams the domains file (or stdin) into the memory queue,
//! counting and logging invalid lines without flooding stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use spyder_model::{HostName, NameKind};
use spyder_probe::Outcome;
use spyder_queue::{Checkpoint, InputLine, InputReader, MemoryQueue, ResumeTracker};

use super::Shared;

/// Streams the input into the queue, logging and counting invalid lines. With
/// `-resume`, the checkpoint's pending hosts go first and the lines it covers are
/// skipped; every host queued and line consumed is told to the tracker.
pub(super) async fn feed(
    mut reader: InputReader,
    queue: MemoryQueue,
    shared: Arc<Shared>,
    read: Arc<ReadProgress>,
    resume: Option<(Arc<ResumeTracker>, Option<Checkpoint>)>,
) {
    let (tracker, from) = match resume {
        Some((tracker, from)) => (Some(tracker), from),
        None => (None, None),
    };
    let skip_through = from.as_ref().map_or(0, |c| c.line);
    if let (Some(tracker), Some(from)) = (&tracker, from) {
        for name in from.pending {
            let Ok(host) = HostName::parse(&name, NameKind::Strict) else {
                tracing::warn!(host = %name, "checkpoint: not a host name; skipped");
                continue;
            };
            tracker.queued(&host, None);
            if queue.push_input(host).await.is_err() {
                return;
            }
        }
    }
    let mut invalid_lines = InvalidLines::default();
    while let Some(line) = reader.next().await {
        read.update(&reader);
        match line {
            InputLine::Host { line, .. } | InputLine::Invalid { line, .. }
                if line <= skip_through => {}
            InputLine::Host { host, line } => {
                if let Some(tracker) = &tracker {
                    tracker.queued(&host, Some(line));
                }
                if queue.push_input(host).await.is_err() {
                    return;
                }
            }
            invalid @ InputLine::Invalid { .. } => {
                invalid_lines.log(&invalid);
                let (reason, line) = match &invalid {
                    InputLine::Invalid { error, line, .. } => (Some(error.to_string()), *line),
                    InputLine::Host { line, .. } => (None, *line),
                };
                if let Some(tracker) = &tracker {
                    tracker.skipped(line);
                }
                shared
                    .stats
                    .task_done(Outcome::Invalid, 0, reason.as_deref());
            }
        }
    }
    invalid_lines.finish();
    read.update(&reader);
    if reader.read_error().is_some() {
        // Logged by the reader; the input ended early, so it was not crawled whole.
        read.cut_short.store(true, Ordering::Relaxed);
    }
    read.finished();
    queue.close_input();
}

/// Invalid input lines shown one by one.
const INVALID_LINES_SHOWN: u64 = 100;
/// After those, one summary line at most this often.
const INVALID_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Logs invalid input lines: the first [`INVALID_LINES_SHOWN`] each, then a count
/// every [`INVALID_SUMMARY_EVERY`], so a file of garbage does not flood stderr.
#[derive(Default)]
struct InvalidLines {
    seen: u64,
    unshown: u64,
    last_summary: Option<std::time::Instant>,
}

impl InvalidLines {
    fn log(&mut self, line: &InputLine) {
        self.seen += 1;
        if self.seen <= INVALID_LINES_SHOWN {
            tracing::warn!("{line}");
            if self.seen == INVALID_LINES_SHOWN {
                tracing::warn!(
                    "{INVALID_LINES_SHOWN} invalid lines shown; further ones are counted and summarised every {}s",
                    INVALID_SUMMARY_EVERY.as_secs()
                );
                self.last_summary = Some(std::time::Instant::now());
            }
            return;
        }
        self.unshown += 1;
        if self
            .last_summary
            .is_none_or(|at| at.elapsed() >= INVALID_SUMMARY_EVERY)
        {
            self.summarise();
        }
    }

    fn summarise(&mut self) {
        if self.unshown > 0 {
            tracing::warn!(
                not_shown = self.unshown,
                invalid_total = self.seen,
                "more invalid input lines (counted as invalid, not shown)"
            );
            self.unshown = 0;
        }
        self.last_summary = Some(std::time::Instant::now());
    }

    fn finish(&mut self) {
        self.summarise();
    }
}

/// How far the reader got, for the progress display.
#[derive(Debug, Default)]
pub(super) struct ReadProgress {
    read: AtomicU64,
    total: AtomicU64,
    done: AtomicBool,
    /// A read error ended the input before its end.
    pub(super) cut_short: AtomicBool,
}

impl ReadProgress {
    pub(super) fn update(&self, reader: &InputReader) {
        let p = reader.progress();
        self.read.store(p.bytes_read, Ordering::Relaxed);
        self.total
            .store(p.total_bytes.unwrap_or(0), Ordering::Relaxed);
    }

    pub(super) fn finished(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    pub(super) fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    /// The input was read to its end (no read error cut it short).
    pub(super) fn read_whole(&self) -> bool {
        self.done() && !self.cut_short.load(Ordering::Relaxed)
    }

    pub(super) fn percent(&self) -> Option<f64> {
        let total = self.total.load(Ordering::Relaxed);
        (total > 0).then(|| 100.0 * self.read.load(Ordering::Relaxed) as f64 / total as f64)
    }
}

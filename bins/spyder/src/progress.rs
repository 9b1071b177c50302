//! Run statistics, the progress display and the final summary (SPEC §3.14).
//!
//! Progress goes to stderr only: on a TTY a bar redrawn every second (percent of the
//! input read, counts, rate, outcomes, elapsed, ETA, a stalled marker), else a
//! `progress` log line every 10 s. Stdout carries data alone.

use std::collections::{HashMap, VecDeque};
use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spyder_model::{EdgeType, NodeDomain, Records, telemetry};
use spyder_probe::{Outcome, Status};

/// Counters the workers update and the progress display reads.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    ok: AtomicU64,
    error: AtomicU64,
    edges: AtomicU64,
    /// Emitted edges per type, in [`EdgeType::ALL`] order.
    edges_by_type: [AtomicU64; 6],
    /// Emitted domain, IP and cert nodes.
    nodes: [AtomicU64; 3],
    robots_blocked: AtomicU64,
    /// Milliseconds after `started` when the last task finished.
    last_finish_ms: AtomicU64,
    /// Tasks per outcome, in [`Outcome::ALL`] order.
    outcomes: [AtomicU64; Outcome::ALL.len()],
    /// Tasks per (outcome, reason) of the tasks that ended with a reason; at most
    /// [`MAX_CAUSES`] distinct entries, the rest counted in `other_causes`.
    causes: Mutex<HashMap<(Outcome, String), u64>>,
    other_causes: AtomicU64,
    /// Task wall times, in the buckets of [`TASK_MS_BUCKETS`] (the last: above all).
    task_ms: [AtomicU64; TASK_MS_BUCKETS.len() + 1],
    /// The last [`RECENT_DISCOVERIES`] domain nodes emitted (crawled hosts, and hosts
    /// their records name that the dedup had not seen), newest first, for the
    /// dashboard.
    recent: Mutex<VecDeque<NodeDomain>>,
}

/// Domain nodes kept for the dashboard's "latest discoveries".
pub const RECENT_DISCOVERIES: usize = 20;

/// Upper bounds (ms) of the task-time buckets the percentiles come from.
const TASK_MS_BUCKETS: [u64; 14] = [
    10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 15_000, 20_000, 30_000, 60_000,
];

/// Distinct failure reasons kept for the summary: enough for the few that matter,
/// bounded whatever the input (every invalid line could have its own).
const MAX_CAUSES: usize = 256;
/// Reasons named in the summary.
const TOP_CAUSES: usize = 3;

/// Emitted records by kind, for `GET /api/v1/stats`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordCounts {
    /// `(type, count)` per edge type, in [`EdgeType::ALL`] order.
    pub edges: Vec<(EdgeType, u64)>,
    pub domain_nodes: u64,
    pub ip_nodes: u64,
    pub cert_nodes: u64,
    pub robots_blocked: u64,
}

/// One reading of [`Stats`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    pub processed: u64,
    pub ok: u64,
    pub error: u64,
    pub edges: u64,
    pub elapsed: Duration,
}

impl Snapshot {
    /// Tasks per second since the start.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.processed as f64 / secs
        } else {
            0.0
        }
    }

    /// The line printed at exit unless `-quiet`.
    pub fn summary(&self) -> String {
        let errors = if self.processed == 0 {
            0.0
        } else {
            100.0 * self.error as f64 / self.processed as f64
        };
        format!(
            "Final summary: {} processed, {} successful, {} failed ({errors:.1}% errors), {} edges, {:.1} domains/sec",
            self.processed,
            self.ok,
            self.error,
            self.edges,
            self.rate()
        )
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            ok: AtomicU64::new(0),
            error: AtomicU64::new(0),
            edges: AtomicU64::new(0),
            edges_by_type: Default::default(),
            nodes: Default::default(),
            robots_blocked: AtomicU64::new(0),
            last_finish_ms: AtomicU64::new(0),
            outcomes: Default::default(),
            causes: Mutex::default(),
            other_causes: AtomicU64::new(0),
            task_ms: Default::default(),
            recent: Mutex::default(),
        }
    }
}

impl Stats {
    /// Counts one finished task, its emitted edges and, for the summary, why it
    /// ended as it did (`reason`: the report's detail, a panic, an input error).
    pub fn task_done(&self, outcome: Outcome, edges: usize, reason: Option<&str>) {
        if let Some(i) = Outcome::ALL.iter().position(|o| *o == outcome) {
            self.outcomes[i].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(reason) = reason.filter(|_| outcome != Outcome::Complete) {
            self.count_cause(outcome, reason);
        }
        match outcome.status() {
            Status::Ok => self.ok.fetch_add(1, Ordering::Relaxed),
            Status::Error => self.error.fetch_add(1, Ordering::Relaxed),
        };
        self.edges.fetch_add(edges as u64, Ordering::Relaxed);
        if outcome == Outcome::RobotsBlocked {
            self.robots_blocked.fetch_add(1, Ordering::Relaxed);
        }
        let now_ms = self.started.elapsed().as_millis() as u64;
        self.last_finish_ms.fetch_max(now_ms, Ordering::Relaxed);
        telemetry::tasks(outcome.status().as_str()).increment(1);
        telemetry::task_outcomes(outcome.as_str()).increment(1);
    }

    /// Counts one task's wall time for the percentiles.
    pub fn task_time(&self, took: Duration) {
        let ms = u64::try_from(took.as_millis()).unwrap_or(u64::MAX);
        let bucket = TASK_MS_BUCKETS
            .iter()
            .position(|bound| ms <= *bound)
            .unwrap_or(TASK_MS_BUCKETS.len());
        self.task_ms[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// p50, p90 and p99 of the task times so far, in ms, each the upper bound of its
    /// bucket (`None` before any task; `u64::MAX` past the last bound).
    pub fn task_time_percentiles(&self) -> Option<[u64; 3]> {
        let counts: Vec<u64> = self
            .task_ms
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let at = |share: f64| {
            let rank = ((total as f64) * share).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (i, n) in counts.iter().enumerate() {
                seen += n;
                if seen >= rank {
                    return TASK_MS_BUCKETS.get(i).copied().unwrap_or(u64::MAX);
                }
            }
            u64::MAX
        };
        Some([at(0.5), at(0.9), at(0.99)])
    }

    /// The most frequent (outcome, reason) pairs, most frequent first; failures
    /// before the rest, then by name, for a stable order.
    pub fn top_causes(&self, n: usize) -> Vec<(Outcome, String, u64)> {
        let mut causes: Vec<((Outcome, String), u64)> = match self.causes.lock() {
            Ok(causes) => causes.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            Err(_) => Vec::new(),
        };
        causes.sort_by(|((oa, ra), na), ((ob, rb), nb)| {
            nb.cmp(na)
                .then((ob.status() == Status::Error).cmp(&(oa.status() == Status::Error)))
                .then(oa.as_str().cmp(ob.as_str()))
                .then(ra.cmp(rb))
        });
        causes
            .into_iter()
            .take(n)
            .map(|((o, r), c)| (o, r, c))
            .collect()
    }

    /// Counts the records about to be emitted, here and in
    /// `spyder_edges_total{type}` and `spyder_nodes_discovered_total{type}`.
    pub fn records_emitted(&self, records: &Records) {
        for e in &records.edges {
            telemetry::edges(e.kind).increment(1);
            if let Some(i) = EdgeType::ALL.iter().position(|k| *k == e.kind) {
                self.edges_by_type[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let nodes = [
            ("domain", records.nodes_domain.len()),
            ("ip", records.nodes_ip.len()),
            ("cert", records.nodes_cert.len()),
        ];
        for (i, (kind, n)) in nodes.into_iter().enumerate() {
            if n > 0 {
                telemetry::nodes_discovered(kind).increment(n as u64);
                self.nodes[i].fetch_add(n as u64, Ordering::Relaxed);
            }
        }
        if records.nodes_domain.is_empty() {
            return;
        }
        if let Ok(mut recent) = self.recent.lock() {
            // Only the newest RECENT_DISCOVERIES of this batch can stay.
            let newest = records.nodes_domain.iter().rev().take(RECENT_DISCOVERIES);
            for node in newest.rev() {
                recent.push_front(node.clone());
            }
            recent.truncate(RECENT_DISCOVERIES);
        }
    }

    /// The last [`RECENT_DISCOVERIES`] domain nodes emitted, newest first.
    pub fn recent_discoveries(&self) -> Vec<NodeDomain> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Emitted records by kind so far.
    pub fn record_counts(&self) -> RecordCounts {
        RecordCounts {
            edges: EdgeType::ALL
                .iter()
                .zip(&self.edges_by_type)
                .map(|(k, n)| (*k, n.load(Ordering::Relaxed)))
                .collect(),
            domain_nodes: self.nodes[0].load(Ordering::Relaxed),
            ip_nodes: self.nodes[1].load(Ordering::Relaxed),
            cert_nodes: self.nodes[2].load(Ordering::Relaxed),
            robots_blocked: self.robots_blocked.load(Ordering::Relaxed),
        }
    }

    fn count_cause(&self, outcome: Outcome, reason: &str) {
        let Ok(mut causes) = self.causes.lock() else {
            return;
        };
        let key = (outcome, reason.to_owned());
        if let Some(n) = causes.get_mut(&key) {
            *n += 1;
        } else if causes.len() < MAX_CAUSES {
            causes.insert(key, 1);
        } else {
            self.other_causes.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Tasks per outcome, every outcome (zeros included), in [`Outcome::ALL`] order:
    /// `outcomes` of `GET /api/v1/stats` and the dashboard.
    pub fn outcome_totals(&self) -> Vec<(Outcome, u64)> {
        Outcome::ALL
            .iter()
            .zip(&self.outcomes)
            .map(|(o, n)| (*o, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// `3 dns_error`-style counts of the outcomes that occurred, in [`Outcome::ALL`]
    /// order.
    pub fn outcome_counts(&self) -> Vec<String> {
        Outcome::ALL
            .iter()
            .zip(&self.outcomes)
            .map(|(o, n)| (o, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(o, n)| format!("{n} {o}"))
            .collect()
    }

    /// The line under the summary that says why: tasks per outcome, the most
    /// frequent reasons, and the elapsed time. `Outcomes: 3 dns_error, 1 no_address;
    /// top causes: 3 dns_error: A: DNS query timed out; …; elapsed 12.3 s`.
    pub fn breakdown(&self) -> String {
        let outcomes = self.outcome_counts();
        let mut line = if outcomes.is_empty() {
            "Outcomes: none".to_owned()
        } else {
            format!("Outcomes: {}", outcomes.join(", "))
        };
        let causes = self.top_causes(usize::MAX);
        if !causes.is_empty() {
            let top: Vec<String> = causes
                .iter()
                .take(TOP_CAUSES)
                .map(|(o, reason, n)| format!("{n} {o}: {reason}"))
                .collect();
            line.push_str("; top causes: ");
            line.push_str(&top.join("; "));
            let more = causes.len().saturating_sub(TOP_CAUSES) as u64
                + self.other_causes.load(Ordering::Relaxed);
            if more > 0 {
                line.push_str(&format!(" (and {more} more)"));
            }
        }
        line.push_str(&format!(
            "; elapsed {:.1} s",
            self.started.elapsed().as_secs_f64()
        ));
        line
    }

    /// Time since the last task finished (or since the start, if none has).
    pub fn since_last_finish(&self) -> Duration {
        let last = Duration::from_millis(self.last_finish_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }

    pub fn snapshot(&self) -> Snapshot {
        let ok = self.ok.load(Ordering::Relaxed);
        let error = self.error.load(Ordering::Relaxed);
        Snapshot {
            processed: ok + error,
            ok,
            error,
            edges: self.edges.load(Ordering::Relaxed),
            elapsed: self.started.elapsed(),
        }
    }
}

/// Watches for a stall (SPEC §5 P-8): work is pending but no task has finished within
/// `stall_after`. Warns once per stall and again when progress resumes; `stalled()`
/// is what the health endpoint's `progress` check reports.
#[derive(Debug, Default)]
pub struct StallWatch {
    stalled: std::sync::atomic::AtomicBool,
}

impl StallWatch {
    /// Re-evaluates the state; `pending` says whether any work is waiting or running.
    pub fn check(&self, stats: &Stats, pending: bool, stall_after: Duration) {
        let idle = stats.since_last_finish();
        let now = pending && idle >= stall_after;
        let was = self.stalled.swap(now, Ordering::Relaxed);
        if now && !was {
            tracing::warn!(
                idle_seconds = idle.as_secs(),
                "progress stalled: work is pending but no task finished within stall_after"
            );
        } else if was && !now {
            tracing::info!("progress resumed");
        }
    }

    pub fn stalled(&self) -> bool {
        self.stalled.load(Ordering::Relaxed)
    }
}

/// How progress is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    None,
    Bar,
    Log,
}

impl Display {
    /// Bar on a TTY when `-progress` and not `-quiet`; log lines otherwise.
    pub fn choose(progress: bool, quiet: bool) -> Self {
        if quiet {
            Display::None
        } else if progress && std::io::stderr().is_terminal() {
            Display::Bar
        } else {
            Display::Log
        }
    }
}

/// A running progress display; [`Progress::stop`] ends it before the summary.
#[derive(Debug)]
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    /// Stops the redraws and leaves the bar's last line, so that what is printed
    /// next starts on a clean line and is never overdrawn.
    pub async fn stop(self) {
        self.task.abort();
        // Aborted at its next await; once it is gone nothing redraws the bar.
        let _ = self.task.await;
        if let Some(bar) = self.bar {
            bar.abandon();
        }
    }
}

/// Shows progress until [`Progress::stop`]. `read_percent` reports how much of the
/// input file was read, when known; `stalled` whether the stall watch fires.
pub fn spawn(
    display: Display,
    stats: std::sync::Arc<Stats>,
    read_percent: impl Fn() -> Option<f64> + Send + 'static,
    stalled: impl Fn() -> bool + Send + 'static,
) -> Option<Progress> {
    let period = match display {
        Display::None => return None,
        Display::Bar => Duration::from_secs(1),
        Display::Log => Duration::from_secs(10),
    };
    let bar = (display == Display::Bar).then(new_bar);
    let drawn = bar.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        let mut styled = false;
        loop {
            tick.tick().await;
            let s = stats.snapshot();
            let read = read_percent();
            match &drawn {
                Some(bar) => {
                    if !styled {
                        style_bar(bar, read.is_some());
                        styled = true;
                    }
                    if let Some(p) = read {
                        // Per mille of the input read: the bar, its percent and ETA.
                        bar.set_position((p.clamp(0.0, 100.0) * 10.0) as u64);
                    }
                    bar.set_message(bar_message(&s, &stats, stalled()));
                    bar.tick();
                }
                None => tracing::info!(
                    processed = s.processed,
                    ok = s.ok,
                    error = s.error,
                    edges = s.edges,
                    rate = format!("{:.1}", s.rate()),
                    read_percent = read.map(|p| format!("{p:.1}")),
                    "progress"
                ),
            }
        }
    });
    Some(Progress { task, bar })
}

/// The TTY bar, styled at its first draw ([`style_bar`]) once the input's size is
/// known or known to be unknown.
fn new_bar() -> indicatif::ProgressBar {
    indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr())
}

/// With the input's size known, a bar with the percent read, elapsed time and ETA;
/// without (stdin, a pipe), a spinner and the elapsed time.
fn style_bar(bar: &indicatif::ProgressBar, sized: bool) {
    use indicatif::ProgressStyle;
    let template = if sized {
        "{bar:16} {percent:>3}% read | {elapsed} elapsed, ETA {eta} | {wide_msg}"
    } else {
        "{spinner} {elapsed} elapsed | {wide_msg}"
    };
    let style =
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
    // The style first: setting the length draws, and must draw in this style.
    bar.set_style(style);
    if sized {
        bar.set_length(1000);
    }
}

/// What the bar says beside itself: counts, rate, the outcomes so far and whether
/// progress stalled.
fn bar_message(s: &Snapshot, stats: &Stats, stalled: bool) -> String {
    let mut line = format!(
        "{} processed, {} ok, {} failed | {} edges | {:.1}/s",
        s.processed,
        s.ok,
        s.error,
        s.edges,
        s.rate()
    );
    let outcomes = stats.outcome_counts();
    if !outcomes.is_empty() {
        line.push_str(" | ");
        line.push_str(&outcomes.join(", "));
    }
    if stalled {
        line.push_str(" | STALLED");
    }
    line
}

/// The last line of the summary: where the records went. `output` is the emitter's
/// own description (`stdout`, `file graph.jsonl`, `ingest https://… spooling to spool`).
pub fn output_line(output: &str, report: &spyder_emitter::EmitterStatus) -> String {
    let mut line = if output.starts_with("ingest") {
        format!(
            "Output: {output}: {} batches delivered, {} spooled, {} replayed from the spool",
            report.batches_delivered, report.batches_spooled, report.batches_replayed
        )
    } else {
        format!(
            "Output: {output}: {} batches written",
            report.batches_delivered
        )
    };
    if report.batches_not_written > 0 {
        line.push_str(&format!(
            "; the output closed early: {} batches ({} records, {} edges) not written",
            report.batches_not_written, report.records_not_written, report.edges_not_written
        ));
    }
    if report.batches_lost > 0 {
        line.push_str(&format!(
            "; {} batches neither delivered nor spooled (lost)",
            report.batches_lost
        ));
    }
    line
}

/// Ends the bar's line so later output starts clean.
pub fn finish(display: Display) {
    if display == Display::Bar {
        eprintln!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(host: &str) -> NodeDomain {
        let now = spyder_model::Timestamp::now();
        NodeDomain {
            host: host.to_owned(),
            apex: host.to_owned(),
            first_seen: now,
            last_seen: now,
        }
    }

    #[test]
    fn recent_discoveries_keep_the_newest_domain_nodes_first() {
        let stats = Stats::default();
        assert!(stats.recent_discoveries().is_empty());
        let batch = |range: std::ops::Range<usize>| Records {
            nodes_domain: range.map(|i| domain(&format!("d{i}.example"))).collect(),
            ..Default::default()
        };
        stats.records_emitted(&batch(0..3));
        let hosts = |s: &Stats| -> Vec<String> {
            s.recent_discoveries().into_iter().map(|n| n.host).collect()
        };
        assert_eq!(hosts(&stats), ["d2.example", "d1.example", "d0.example"]);
        // A batch larger than the ring keeps only its own newest, in order.
        stats.records_emitted(&batch(3..3 + RECENT_DISCOVERIES + 5));
        let got = hosts(&stats);
        assert_eq!(got.len(), RECENT_DISCOVERIES);
        assert_eq!(got[0], format!("d{}.example", 2 + RECENT_DISCOVERIES + 5));
        assert_eq!(got[RECENT_DISCOVERIES - 1], "d8.example");
    }

    #[test]
    fn the_output_line_says_where_records_went_and_what_was_not_written() {
        let report = spyder_emitter::EmitterStatus {
            batches_delivered: 4,
            ..Default::default()
        };
        assert_eq!(
            output_line("file graph.jsonl", &report),
            "Output: file graph.jsonl: 4 batches written"
        );
        let closed = spyder_emitter::EmitterStatus {
            batches_delivered: 1,
            output_closed: true,
            batches_not_written: 2,
            records_not_written: 30,
            edges_not_written: 20,
            ..Default::default()
        };
        assert_eq!(
            output_line("stdout", &closed),
            "Output: stdout: 1 batches written; the output closed early: 2 batches (30 records, 20 edges) not written"
        );
        let ingest = spyder_emitter::EmitterStatus {
            batches_delivered: 3,
            batches_spooled: 1,
            ..Default::default()
        };
        assert_eq!(
            output_line("ingest https://i.example/v1 spooling to spool", &ingest),
            "Output: ingest https://i.example/v1 spooling to spool: 3 batches delivered, 1 spooled, 0 replayed from the spool"
        );
    }

    #[test]
    fn task_time_percentiles_are_bucket_bounds() {
        let stats = Stats::default();
        assert_eq!(stats.task_time_percentiles(), None);
        for ms in [5u64, 5, 5, 5, 5, 40, 40, 40, 900, 70_000] {
            stats.task_time(Duration::from_millis(ms));
        }
        assert_eq!(stats.task_time_percentiles(), Some([10, 1_000, u64::MAX]));
    }

    #[test]
    fn the_bar_message_has_counts_rate_outcomes_and_a_stalled_marker() {
        let stats = Stats::default();
        stats.task_done(Outcome::Complete, 4, None);
        stats.task_done(Outcome::DnsError, 0, Some("A: DNS query timed out"));
        let s = stats.snapshot();
        let line = bar_message(&s, &stats, false);
        assert!(
            line.starts_with("2 processed, 1 ok, 1 failed | 4 edges | "),
            "{line}"
        );
        assert!(line.ends_with("/s | 1 complete, 1 dns_error"), "{line}");
        assert!(bar_message(&s, &stats, true).ends_with(" | STALLED"));
    }

    #[test]
    fn summary_line_matches_the_original() {
        let s = Snapshot {
            processed: 10,
            ok: 9,
            error: 1,
            edges: 42,
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(
            s.summary(),
            "Final summary: 10 processed, 9 successful, 1 failed (10.0% errors), 42 edges, 5.0 domains/sec"
        );
    }

    #[test]
    fn the_breakdown_says_why_tasks_failed() {
        let stats = Stats::default();
        let timed_out = "A: DNS query timed out; AAAA: DNS query timed out";
        for _ in 0..3 {
            stats.task_done(Outcome::DnsError, 0, Some(timed_out));
        }
        stats.task_done(Outcome::NoAddress, 0, None);
        stats.task_done(Outcome::Complete, 4, Some("ignored for a complete task"));
        stats.task_done(Outcome::Invalid, 0, Some("empty label"));
        let line = stats.breakdown();
        assert!(
            line.starts_with(&format!(
                "Outcomes: 1 complete, 1 no_address, 1 invalid, 3 dns_error; top causes: 3 dns_error: {timed_out}; 1 invalid: empty label; elapsed "
            )),
            "{line}"
        );
        assert_eq!(
            Stats::default().breakdown().split(';').next(),
            Some("Outcomes: none")
        );
    }

    #[test]
    fn causes_stay_bounded_whatever_the_input() {
        let stats = Stats::default();
        for i in 0..(MAX_CAUSES + 10) {
            stats.task_done(Outcome::Invalid, 0, Some(&format!("reason {i}")));
        }
        let line = stats.breakdown();
        assert!(
            line.contains(&format!("(and {} more)", MAX_CAUSES + 10 - TOP_CAUSES)),
            "{line}"
        );
        assert_eq!(stats.causes.lock().map(|c| c.len()).ok(), Some(MAX_CAUSES));
    }
}

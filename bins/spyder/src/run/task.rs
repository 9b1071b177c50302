//! SPEC §1 steps 1–12 for one lease: claim, crawl, settle, hand off.
//!
//! The lease's finalizer rides with the records: dedup's pending marks join it, the
//! emitter resolves it (delivered, written or spooled: commit and ack; lost:
//! release, and the item comes back). The hold is dropped once records and
//! discoveries are handed off, so the memory queue can tell when it is done.

use std::sync::Arc;

use tracing::Instrument as _;

use spyder_model::finalize::Status;
use spyder_model::{TaskStatus, telemetry};
use spyder_probe::{CrawlReport, Outcome};
use spyder_queue::{Leased, Origin, Source};

use super::{EXTRA_HELD_LEASES, Shared};

/// Crawls one leased host, unless dedup says another crawl has it covered.
pub(super) async fn crawl_one(shared: &Shared, leased: Leased) {
    let host = leased.host.clone();
    if !spyder_sink::claim_lease(shared.dedup.as_ref(), &host, leased.origin).await {
        // A host is crawled once per run (SPEC §3.6): this copy is not needed.
        tracing::debug!(host = %host, "already crawled or being crawled; item skipped");
        telemetry::queue_skipped("already_taken").increment(1);
        let from_input = leased.origin == Origin::Local(Source::Input);
        let (_hold, finalizer) = leased.start(&shared.acks);
        finalizer.resolve(Status::Delivered);
        if let Some(resume) = shared.resume.as_ref().filter(|_| from_input) {
            resume.finished(&host);
        }
        return;
    }
    let from_input = leased.origin == Origin::Local(Source::Input);
    let parent = leased.traceparent.clone();
    // Which try this is: 1, or 1 + the expired leases of a requeued item.
    let attempt = match leased.origin {
        Origin::Requeued { attempt } => attempt.saturating_add(1),
        _ => 1,
    };
    let (hold, mut finalizer) = leased.start(&shared.acks);
    if from_input {
        resume_when_safe(shared, &host, &mut finalizer);
    }
    let (report, traceparent) = traced_crawl(shared, &host, attempt, parent).await;
    telemetry::task_duration().record(report.timings.total.as_secs_f64());
    shared.stats.task_time(report.timings.total);
    tracing::debug!(host = %host, outcome = %report.outcome, "task done");
    let status = shared
        .live
        .current()
        .output
        .status_records
        .then(|| task_status(&host, &report, attempt));
    if report.outcome == Outcome::Internal {
        let reason = report.detail.as_deref().unwrap_or("unknown");
        tracing::error!(host = %host, outcome = "internal", reason, "task failed");
    }

    // One dedup call for the records' keys, `queued|`/`crawled|<host>` and the
    // discoveries' `queued|` keys; the sink queues the new discoveries.
    let sink_settings = shared.sink_settings.load();
    let continuous = shared.live.current().crawling.continuous;
    let sink = shared.sink.as_deref().filter(|_| continuous);
    let discoveries = sink.map(|sink| spyder_sink::Discoveries {
        sink,
        candidates: report.candidates,
        settings: &sink_settings,
        traceparent,
    });
    let settled =
        spyder_sink::settle_crawl(shared.dedup.as_ref(), &host, report.records, discoveries).await;
    // The marks wait with the records: a probe killed before they are safe leaves
    // nothing marked that the re-crawl would drop.
    settled
        .pending
        .ride_with(&mut finalizer, Arc::clone(&shared.dedup));
    let mut records = settled.records;
    shared.stats.records_emitted(&records);
    // After the dedup: a status describes the task and is never deduplicated.
    records.status.extend(status);
    shared.stats.task_done(
        report.outcome,
        records.edges.len(),
        report.detail.as_deref(),
    );
    if shared.queue.is_shared() {
        finalizer.on_resolve(move |status| async move {
            if status == Status::Failed {
                tracing::error!(host = %host, "records not safe; not acking");
            }
        });
    }
    shared.emitter.submit_finalized(records, finalizer);
    // Held leases of a shared queue are capped (concurrency + 32, SPEC §3.8) and those
    // waiting for their batch count too: once half the margin waits, seal the batch
    // rather than let the workers idle until the flush interval.
    if shared.queue.is_shared()
        && shared.queue.held().saturating_sub(shared.pool.active()) >= EXTRA_HELD_LEASES / 2
    {
        shared.emitter.flush_now();
    }
    // Records and discoveries are handed off: this task adds no more work.
    drop(hold);
}

/// `-resume`: the host is finished once its records are safe; records lost leave it
/// pending, so a resumed run crawls it again.
fn resume_when_safe(
    shared: &Shared,
    host: &spyder_model::HostName,
    finalizer: &mut spyder_model::finalize::Finalizer,
) {
    if let Some(resume) = &shared.resume {
        let (resume, host) = (Arc::clone(resume), host.clone());
        finalizer.on_resolve(move |status| async move {
            if status == Status::Delivered {
                resume.finished(&host);
            }
        });
    }
}

/// The crawl inside its `CrawlOne` span (SPEC §3.14; the probe's phases are its
/// children), a child of the item's `traceparent` when it has one. Returns the
/// report and the `traceparent` the task's discoveries carry: this task's when it is
/// traced, else the item's own, passed on.
async fn traced_crawl(
    shared: &Shared,
    host: &spyder_model::HostName,
    attempt: u32,
    parent: Option<String>,
) -> (CrawlReport, Option<String>) {
    let span = {
        let config = shared.live.current();
        tracing::info_span!(
            "CrawlOne",
            host = %host,
            attempt,
            probe_id = %config.probe,
            run_id = %config.run,
            outcome = tracing::field::Empty,
            edges = tracing::field::Empty,
        )
    };
    if let Some(cx) = parent
        .as_deref()
        .and_then(spyder_health::traces::parent_context)
    {
        // Without a trace export there is no OpenTelemetry span to attach to: fine.
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;
        let _ = span.set_parent(cx);
    }
    let report = shared
        .probe
        .crawl(host.as_str())
        .instrument(span.clone())
        .await;
    span.record("outcome", report.outcome.as_str());
    span.record("edges", report.records.edges.len());
    let traceparent = shared
        .traces
        .as_ref()
        .and_then(|_| spyder_health::traces::traceparent_of(&span))
        .or(parent);
    (report, traceparent)
}

/// The task's status record (SPEC §3.1 `output.status_records`).
fn task_status(host: &spyder_model::HostName, report: &CrawlReport, attempt: u32) -> TaskStatus {
    let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let timings = &report.timings;
    TaskStatus {
        host: host.as_str().to_owned(),
        outcome: report.outcome.as_str().to_owned(),
        reason: report.detail.clone(),
        attempt,
        dns_ms: timings.dns.map(ms),
        tls_ms: timings.connect.map(ms),
        robots_ms: timings.robots.map(ms),
        fetch_ms: timings.root.map(ms),
        total_ms: ms(timings.total),
        observed_at: report.observed_at,
    }
}

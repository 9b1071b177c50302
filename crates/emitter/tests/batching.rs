//! Batching thresholds and interval (SPEC §3.11, P-1), receipts, broken pipes, shutdown.

use std::time::Duration;

use spyder_emitter::{Delivery, Destination, Emitter, EmitterConfig, EmitterError, Format};
use tokio::time::Instant;

use crate::common::{bounded, config, decode, edges_only, hosts, pipe, records, spool_files};

#[tokio::test]
async fn edges_threshold_flushes_with_overshoot_and_never_early() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (destination, mut lines) = pipe();
    let mut cfg = config(destination, Format::Json, dir.path());
    cfg.max_edges = 3;
    let emitter = Emitter::start(cfg).await.expect("starts");

    let first = emitter.submit(edges_only(1, 2));
    let second = emitter.submit(edges_only(2, 2));
    assert_eq!(
        bounded("first", first).await.expect("safe"),
        Delivery::Written
    );
    assert_eq!(
        bounded("second", second).await.expect("safe"),
        Delivery::Written
    );
    let third = emitter.submit(edges_only(3, 1));
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!(
        bounded("third", third).await.expect("safe"),
        Delivery::Written
    );

    // 2 + 2 edges crossed max_edges = 3 together (overshoot by one submission);
    // the single edge after them waited for the shutdown flush.
    let batch = decode(lines.next().await.expect("first batch").as_bytes());
    assert_eq!(batch.edges.len(), 4);
    assert!(batch.nodes_domain.is_empty() && batch.nodes_ip.is_empty());
    let batch = decode(lines.next().await.expect("second batch").as_bytes());
    assert_eq!(batch.edges.len(), 1);
    assert_eq!(lines.next().await, None, "nothing else, and no empty batch");
}

#[tokio::test]
async fn node_threshold_is_max_edges_times_ratio() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (destination, mut lines) = pipe();
    let mut cfg = config(destination, Format::Json, dir.path());
    cfg.max_edges = 10;
    cfg.node_threshold_ratio = 0.25; // ⌊10 × 0.25⌋ = 2 nodes
    assert_eq!(cfg.max_nodes(), 2);
    let emitter = Emitter::start(cfg).await.expect("starts");

    let receipts = [1, 2, 3].map(|i| emitter.submit(records(i, 0)));
    let [first, second, third] = receipts;
    bounded("first", first).await.expect("safe");
    bounded("second", second).await.expect("safe");
    let batch = decode(lines.next().await.expect("a batch").as_bytes());
    assert_eq!(hosts(&batch), ["host1.example", "host2.example"]);

    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    bounded("third", third).await.expect("safe");
    let batch = decode(lines.next().await.expect("the rest").as_bytes());
    assert_eq!(hosts(&batch), ["host3.example"]);
}

#[test]
fn node_threshold_is_at_least_one() {
    let cfg = EmitterConfig {
        max_edges: 3,
        node_threshold_ratio: 0.1,
        status_records: false,
        ..config(
            Destination::Stdout,
            Format::Json,
            std::path::Path::new("spool"),
        )
    };
    assert_eq!(cfg.max_nodes(), 1);
}

#[tokio::test(start_paused = true)]
async fn interval_flushes_trickling_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (destination, mut lines) = pipe();
    let mut cfg = config(destination, Format::Json, dir.path());
    cfg.max_edges = 1000;
    cfg.flush_interval = Duration::from_secs(1);
    let emitter = Emitter::start(cfg).await.expect("starts");

    // One record every 600 ms (virtual time): no size threshold is ever reached,
    // yet every batch is flushed one interval after its first record.
    let start = Instant::now();
    let mut receipts = Vec::new();
    for i in 0..5 {
        receipts.push(emitter.submit(records(i, 1)));
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // At t = 3.0 s the batches {0, 1} (flushed at 1.0 s) and {2, 3} (at 2.2 s) are out.
    let first = decode(lines.next().await.expect("batch").as_bytes());
    let second = decode(lines.next().await.expect("batch").as_bytes());
    assert_eq!(hosts(&first), ["host0.example", "host1.example"]);
    assert_eq!(hosts(&second), ["host2.example", "host3.example"]);
    let mut receipts = receipts.into_iter();
    for receipt in receipts.by_ref().take(4) {
        assert_eq!(receipt.await.expect("safe"), Delivery::Written);
    }
    let last = receipts.next().expect("fifth receipt");
    assert_eq!(last.await.expect("safe"), Delivery::Written);
    assert!(Instant::now() - start >= Duration::from_millis(3400));
    let third = decode(lines.next().await.expect("batch").as_bytes());
    assert_eq!(hosts(&third), ["host4.example"]);
}

#[tokio::test]
async fn file_receipt_resolves_after_the_bytes_are_on_disk() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.json");
    let emitter = Emitter::start(config(
        Destination::File(file.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");
    for i in 0..3 {
        let delivery = bounded("receipt", emitter.submit(records(i, 1))).await;
        assert_eq!(delivery.expect("safe"), Delivery::Written);
        let text = std::fs::read_to_string(&file).expect("file");
        assert_eq!(text.lines().count(), i + 1, "batch {i} is in the file");
        let last = decode(text.lines().last().expect("a line").as_bytes());
        assert_eq!(hosts(&last), [format!("host{i}.example")]);
    }
    let status = emitter.status();
    assert_eq!(status.batches_delivered, 3);
    assert_eq!(status.batches_spooled, 0);
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn empty_records_resolve_at_once_and_never_make_a_batch() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.json");
    let emitter = Emitter::start(config(
        Destination::File(file.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");
    let delivery = emitter.submit(spyder_model::Records::default()).await;
    assert_eq!(delivery.expect("nothing to do"), Delivery::Empty);
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!(report.batches_delivered, 0);
    assert_eq!(std::fs::read(&file).expect("file").len(), 0);
}

#[tokio::test]
async fn a_broken_pipe_signals_closed_and_counts_what_it_did_not_write() {
    // SPEC §3.1: stdout and file mode never replay a spool, so a closed output spools
    // nothing; what it could not write is counted and its receipts fail.
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    let (destination, lines) = pipe();
    let emitter = Emitter::start(config(destination, Format::Jsonl, &spool))
        .await
        .expect("starts");
    drop(lines);

    let delivery = bounded("receipt", emitter.submit(records(1, 1))).await;
    assert!(
        matches!(delivery, Err(EmitterError::OutputClosed { .. })),
        "{delivery:?}"
    );
    bounded("closed signal", emitter.closed()).await;
    let delivery = bounded("receipt", emitter.submit(records(2, 1))).await;
    assert!(
        matches!(delivery, Err(EmitterError::OutputClosed { .. })),
        "{delivery:?}"
    );
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert!(report.output_closed);
    assert_eq!(
        (
            report.batches_delivered,
            report.batches_spooled,
            report.spool_files
        ),
        (0, 0, 0)
    );
    assert_eq!(report.batches_not_written, 2);
    let one = records(1, 1);
    let per_batch =
        (one.nodes_domain.len() + one.nodes_ip.len() + one.nodes_cert.len() + one.edges.len())
            as u64;
    assert_eq!(report.records_not_written, 2 * per_batch);
    assert_eq!(report.edges_not_written, 2 * one.edges.len() as u64);
    assert!(!spool.exists() || spool_files(&spool).is_empty());
}

#[tokio::test]
async fn submissions_after_shutdown_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (destination, _lines) = pipe();
    let emitter = Emitter::start(config(destination, Format::Json, dir.path()))
        .await
        .expect("starts");
    let handle = emitter.clone();
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    let refused = handle.submit(records(1, 1)).await;
    assert!(matches!(refused, Err(EmitterError::Closed)), "{refused:?}");
}

#[tokio::test]
async fn abort_writes_in_memory_records_to_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.json");
    let mut cfg = config(Destination::File(file.clone()), Format::Json, dir.path());
    cfg.max_edges = 1000;
    let emitter = Emitter::start(cfg).await.expect("starts");
    let receipt = emitter.submit(records(7, 1));
    let report = bounded("abort", emitter.abort()).await;
    assert_eq!(report.batches_delivered, 1);
    assert_eq!(receipt.await.expect("safe"), Delivery::Written);
    let text = std::fs::read_to_string(&file).expect("file");
    assert_eq!(
        hosts(&decode(text.trim_end().as_bytes())),
        ["host7.example"]
    );
}

/// A flush interval or shutdown budget no clock can add (they panicked the batcher or
/// the caller: "overflow when adding duration to instant") waits for the other
/// triggers; nothing is lost.
#[tokio::test]
async fn unrepresentable_interval_and_budget_saturate() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (destination, mut lines) = pipe();
    let mut cfg = config(destination, Format::Json, dir.path());
    cfg.flush_interval = Duration::MAX;
    cfg.max_edges = 3;
    let emitter = Emitter::start(cfg).await.expect("starts");

    // The first record starts a batch whose deadline is `now + MAX`.
    let first = emitter.submit(edges_only(1, 1));
    // New limits move that deadline to `started + MAX`.
    let limits = spyder_emitter::BatchLimits {
        max_edges: 3,
        flush_interval: Duration::from_secs(u64::MAX),
        node_threshold_ratio: 0.5,
    };
    emitter.set_batch_limits(limits).expect("limits apply");
    let second = emitter.submit(edges_only(2, 2));
    assert_eq!(
        bounded("first", first).await.expect("safe"),
        Delivery::Written
    );
    bounded("second", second).await.expect("safe");
    let batch = decode(lines.next().await.expect("a batch by size").as_bytes());
    assert_eq!(batch.edges.len(), 3);

    let third = emitter.submit(edges_only(3, 1));
    bounded("shutdown", emitter.shutdown(Duration::MAX)).await;
    assert_eq!(
        bounded("third", third).await.expect("safe"),
        Delivery::Written
    );
    let batch = decode(lines.next().await.expect("the shutdown flush").as_bytes());
    assert_eq!(batch.edges.len(), 1);
    assert_eq!(lines.next().await, None);
}

//! Live reconfiguration (SPEC §2.10): batch limits at once (Tier 1), the output at a
//! batch boundary (Tier 2).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spyder_emitter::{
    BatchLimits, CSV_HEADER, Delivery, Destination, Emitter, EmitterConfig, EmitterError, Format,
    OutputSettings,
};
use spyder_testkit::ingest::{Answer, IngestOptions, IngestServer};

use crate::common::{bounded, config, decode, hosts, ingest, records, spool_files, wait_until};

async fn receiver() -> IngestServer {
    IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest receiver starts")
}

/// A config that flushes neither by size nor by age (within a test).
fn unhurried(destination: Destination, format: Format, spool_dir: &Path) -> EmitterConfig {
    EmitterConfig {
        max_edges: 1000,
        ..config(destination, format, spool_dir)
    }
}

fn to_file(format: Format, path: &Path, spool_dir: &Path) -> OutputSettings {
    OutputSettings {
        format,
        destination: Destination::File(path.to_path_buf()),
        spool_dir: spool_dir.to_path_buf(),
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("output file readable")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The hosts of the `json` batches in `path`, one list per batch (line).
fn batch_hosts(path: &Path) -> Vec<Vec<String>> {
    lines(path)
        .iter()
        .map(|line| hosts(&decode(line.as_bytes())))
        .collect()
}

fn host(tag: usize) -> String {
    format!("host{tag}.example")
}

#[tokio::test]
async fn format_switch_seals_the_pending_batch_into_the_old_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let old = dir.path().join("old.json");
    let new = dir.path().join("new.jsonl");
    let emitter = Emitter::start(unhurried(
        Destination::File(old.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");

    let before: Vec<_> = (0..3).map(|i| emitter.submit(records(i, 2))).collect();
    emitter
        .reconfigure_output(to_file(Format::Jsonl, &new, dir.path()))
        .await
        .expect("switches");
    // The batch pending at the switch went to the old file.
    for receipt in before {
        let delivery = bounded("receipt before the switch", receipt).await;
        assert_eq!(delivery.expect("safe"), Delivery::Written);
    }
    let after: Vec<_> = (3..5).map(|i| emitter.submit(records(i, 2))).collect();
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    for receipt in after {
        assert_eq!(receipt.await.expect("safe"), Delivery::Written);
    }
    assert_eq!((report.batches_delivered, report.batches_spooled), (2, 0));

    // Old file: one json batch with exactly the records before the switch.
    let old_lines = lines(&old);
    assert_eq!(old_lines.len(), 1, "{old_lines:?}");
    let batch = decode(old_lines[0].as_bytes());
    assert_eq!(hosts(&batch), [host(0), host(1), host(2)]);
    assert_eq!(batch.edges.len(), 6);

    // New file: jsonl records of the one batch after the switch, nothing else.
    let mut new_hosts = Vec::new();
    let mut edges = 0;
    let mut batch_ids = HashSet::new();
    for line in lines(&new) {
        let record: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        batch_ids.insert(record["batch_id"].as_str().expect("batch_id").to_owned());
        match record["record"].as_str().expect("a jsonl record") {
            "node_domain" => new_hosts.push(record["host"].as_str().expect("host").to_owned()),
            "edge" => edges += 1,
            other => panic!("unexpected record {other}"),
        }
    }
    assert_eq!(new_hosts, [host(3), host(4)]);
    assert_eq!(edges, 4);
    assert_eq!(batch_ids.len(), 1);
    assert!(!batch_ids.contains(&batch.batch_id.to_string()));
}

#[tokio::test]
async fn file_to_another_file_splits_the_batches_exactly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("a.json");
    let b = dir.path().join("b.json");
    // One batch per submission.
    let emitter = Emitter::start(config(
        Destination::File(a.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");

    let mut receipts: Vec<_> = (0..4).map(|i| emitter.submit(records(i, 1))).collect();
    emitter
        .reconfigure_output(to_file(Format::Json, &b, dir.path()))
        .await
        .expect("switches");
    receipts.extend((4..7).map(|i| emitter.submit(records(i, 1))));
    for receipt in receipts {
        let delivery = bounded("receipt", receipt).await;
        assert_eq!(delivery.expect("safe"), Delivery::Written);
    }
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!((report.batches_delivered, report.batches_spooled), (7, 0));
    assert!(!report.output_closed);

    let in_a: Vec<String> = batch_hosts(&a).concat();
    let in_b: Vec<String> = batch_hosts(&b).concat();
    assert_eq!(in_a, (0..4).map(host).collect::<Vec<_>>());
    assert_eq!(in_b, (4..7).map(host).collect::<Vec<_>>());
}

#[tokio::test]
async fn csv_header_is_written_once_per_file_across_switches() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool_a = dir.path().join("spool-a");
    let spool_b = dir.path().join("spool-b");
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    let emitter = Emitter::start(config(Destination::File(a.clone()), Format::Csv, &spool_a))
        .await
        .expect("starts");

    let mut receipts = vec![emitter.submit(records(0, 1))];
    // Only the spool directory changes: the same CSV file goes on, without a new header.
    emitter
        .reconfigure_output(to_file(Format::Csv, &a, &spool_b))
        .await
        .expect("switches the spool directory");
    receipts.push(emitter.submit(records(1, 1)));
    emitter
        .reconfigure_output(to_file(Format::Csv, &b, &spool_b))
        .await
        .expect("switches the file");
    receipts.push(emitter.submit(records(2, 1)));
    for receipt in receipts {
        let delivery = bounded("receipt", receipt).await;
        assert_eq!(delivery.expect("safe"), Delivery::Written);
    }
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;

    let a_lines = lines(&a);
    assert_eq!(a_lines.iter().filter(|l| *l == CSV_HEADER).count(), 1);
    assert_eq!(a_lines[0], CSV_HEADER);
    // Header + (node row + edge row) per batch.
    assert_eq!(a_lines.len(), 1 + 2 * 2, "{a_lines:?}");
    let b_lines = lines(&b);
    assert_eq!(b_lines[0], CSV_HEADER);
    assert_eq!(b_lines.len(), 1 + 2, "{b_lines:?}");
    assert!(b_lines[1].contains(&host(2)));
}

#[tokio::test]
async fn ingest_to_file_leaves_retrying_batches_with_the_old_endpoint() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    let file = dir.path().join("out.json");
    let server = receiver().await;
    server.set_default(Answer::Hang);
    let emitter = Emitter::start(config(ingest(server.url(), &spool), Format::Json, &spool))
        .await
        .expect("starts");

    let old = emitter.submit(records(0, 1));
    wait_until("the first batch is posted", || server.request_count() == 1).await;
    emitter
        .reconfigure_output(to_file(Format::Json, &file, &spool))
        .await
        .expect("switches");
    // The new output does not wait behind the old endpoint.
    let new = bounded("new receipt", emitter.submit(records(1, 1))).await;
    assert_eq!(new.expect("safe"), Delivery::Written);
    assert_eq!(batch_hosts(&file), [[host(1)]]);

    // The old endpoint answers 503, then 200: the old batch is retried and delivered there.
    server.release();
    let old = bounded("old receipt", old).await;
    assert_eq!(old.expect("safe"), Delivery::Delivered);
    let delivered = server.delivered();
    assert_eq!(delivered.len(), 1);
    assert_eq!(hosts(&decode(&delivered[0])), [host(0)]);
    assert!(
        server
            .bodies()
            .iter()
            .all(|b| hosts(&decode(b)) == [host(0)]),
        "nothing after the switch went to the old endpoint"
    );

    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!((report.batches_delivered, report.batches_spooled), (2, 0));
    assert!(!report.ingest_failing);
    assert!(spool_files(&spool).is_empty());
    assert_eq!(batch_hosts(&file), [[host(1)]]);
}

/// Starts an ingest emitter whose endpoint hangs, submits one batch, waits until it is
/// posted and switches to a file; returns the old batch's receipt.
async fn hanging_ingest_then_file(
    server: &IngestServer,
    old_spool: &Path,
    new_spool: &Path,
    file: &Path,
) -> (Emitter, spyder_emitter::Receipt) {
    server.set_default(Answer::Hang);
    let emitter = Emitter::start(config(
        ingest(server.url(), old_spool),
        Format::Json,
        old_spool,
    ))
    .await
    .expect("starts");
    let old = emitter.submit(records(0, 1));
    wait_until("the first batch is posted", || server.request_count() == 1).await;
    emitter
        .reconfigure_output(to_file(Format::Json, file, new_spool))
        .await
        .expect("switches");
    let new = bounded("new receipt", emitter.submit(records(1, 1))).await;
    assert_eq!(new.expect("safe"), Delivery::Written);
    (emitter, old)
}

fn spooled_hosts(dir: &Path) -> Vec<String> {
    spool_files(dir)
        .iter()
        .flat_map(|f| hosts(&decode(&std::fs::read(f).expect("spool file"))))
        .collect()
}

#[tokio::test]
async fn shutdown_spools_the_old_ingest_batch_in_the_old_spool_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old_spool, new_spool) = (dir.path().join("old"), dir.path().join("new"));
    let file = dir.path().join("out.json");
    let server = receiver().await;
    let (emitter, old) = hanging_ingest_then_file(&server, &old_spool, &new_spool, &file).await;

    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(1))).await;
    assert_eq!(old.await.expect("safe"), Delivery::Spooled);
    assert_eq!((report.batches_delivered, report.batches_spooled), (1, 1));
    assert_eq!(spooled_hosts(&old_spool), [host(0)]);
    assert!(spool_files(&new_spool).is_empty());
    assert_eq!(batch_hosts(&file), [[host(1)]]);
    server.release();
}

#[tokio::test]
async fn abort_spools_the_old_ingest_batch_in_the_old_spool_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old_spool, new_spool) = (dir.path().join("old"), dir.path().join("new"));
    let file = dir.path().join("out.json");
    let server = receiver().await;
    let (emitter, old) = hanging_ingest_then_file(&server, &old_spool, &new_spool, &file).await;

    let report = bounded("abort", emitter.abort()).await;
    assert_eq!(old.await.expect("safe"), Delivery::Spooled);
    assert_eq!((report.batches_delivered, report.batches_spooled), (1, 1));
    assert_eq!(spooled_hosts(&old_spool), [host(0)]);
    assert!(spool_files(&new_spool).is_empty());
    server.release();
}

#[tokio::test]
async fn new_spooled_batches_go_to_the_new_spool_dir() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (old_spool, new_spool) = (dir.path().join("old"), dir.path().join("new"));
    let server = receiver().await;
    // 400 is not retried: every batch is spooled at once.
    server.set_default(Answer::Status(400));
    let emitter = Emitter::start(config(
        ingest(server.url(), &old_spool),
        Format::Json,
        &old_spool,
    ))
    .await
    .expect("starts");

    let delivery = bounded("receipt", emitter.submit(records(0, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Spooled);
    let old_files = spool_files(&old_spool);
    assert_eq!(old_files.len(), 1);

    emitter
        .reconfigure_output(OutputSettings {
            format: Format::Json,
            destination: ingest(server.url(), &new_spool),
            spool_dir: new_spool.clone(),
        })
        .await
        .expect("switches");
    assert_eq!(
        emitter.status().spool_files,
        0,
        "the new directory is empty"
    );
    let delivery = bounded("receipt", emitter.submit(records(1, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Spooled);

    assert_eq!(spooled_hosts(&new_spool), [host(1)]);
    assert_eq!(
        spool_files(&old_spool),
        old_files,
        "old files stay where they are"
    );
    assert_eq!(spooled_hosts(&old_spool), [host(0)]);
    assert_eq!(emitter.status().spool_files, 1);
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!(report.batches_spooled, 2);
    assert_eq!(spool_files(&new_spool).len(), 1);
    assert_eq!(spool_files(&old_spool), old_files);
}

#[tokio::test]
async fn failed_reconfigure_keeps_the_old_output() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.json");
    let not_a_dir: PathBuf = dir.path().join("plain-file");
    std::fs::write(&not_a_dir, b"x").expect("plain file");
    let server = receiver().await;
    let emitter = Emitter::start(config(
        Destination::File(file.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");
    let delivery = bounded("receipt", emitter.submit(records(0, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Written);

    // A file in a directory that does not exist cannot be opened.
    let unopenable = dir.path().join("missing").join("out.jsonl");
    let err = emitter
        .reconfigure_output(to_file(Format::Jsonl, &unopenable, dir.path()))
        .await
        .expect_err("unopenable file");
    assert!(
        matches!(&err, EmitterError::OutputFile { path, .. } if *path == unopenable),
        "{err}"
    );
    // A bad ingest URL.
    let err = emitter
        .reconfigure_output(OutputSettings {
            format: Format::Jsonl,
            destination: ingest("ftp://example.com/ingest".into(), dir.path()),
            spool_dir: dir.path().to_path_buf(),
        })
        .await
        .expect_err("bad URL");
    assert!(
        matches!(
            err,
            EmitterError::Config {
                key: "output.ingest",
                ..
            }
        ),
        "{err}"
    );
    // A spool directory that cannot be created (a plain file is in the way).
    let err = emitter
        .reconfigure_output(OutputSettings {
            format: Format::Jsonl,
            destination: ingest(server.url(), &not_a_dir.join("spool")),
            spool_dir: not_a_dir.join("spool"),
        })
        .await
        .expect_err("unwritable spool dir");
    assert!(matches!(err, EmitterError::SpoolDir { .. }), "{err}");

    // Nothing changed: the old file in the old format.
    let delivery = bounded("receipt", emitter.submit(records(1, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Written);
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!((report.batches_delivered, report.batches_spooled), (2, 0));
    assert!(!report.output_closed);
    assert_eq!(batch_hosts(&file), [[host(0)], [host(1)]]);
    assert!(!unopenable.exists());
    assert_eq!(server.request_count(), 0);
}

#[tokio::test]
async fn smaller_max_edges_flushes_the_pending_batch_and_each_next_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.json");
    let emitter = Emitter::start(unhurried(
        Destination::File(file.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");
    let limits = BatchLimits {
        max_edges: 1000,
        flush_interval: Duration::from_secs(3600),
        node_threshold_ratio: 1.0,
    };

    let pending = emitter.submit(records(0, 1));
    // Out of range: refused, nothing changes.
    let err = emitter
        .set_batch_limits(BatchLimits {
            max_edges: 0,
            ..limits
        })
        .expect_err("max_edges 0");
    assert!(
        matches!(
            err,
            EmitterError::Config {
                key: "batch.max_edges",
                ..
            }
        ),
        "{err}"
    );

    emitter
        .set_batch_limits(BatchLimits {
            max_edges: 1,
            ..limits
        })
        .expect("valid limits");
    let delivery = bounded("the pending batch", pending).await;
    assert_eq!(delivery.expect("safe"), Delivery::Written);
    for i in 1..4 {
        let delivery = bounded("a one-record batch", emitter.submit(records(i, 1))).await;
        assert_eq!(delivery.expect("safe"), Delivery::Written);
    }
    assert_eq!(
        batch_hosts(&file),
        [[host(0)], [host(1)], [host(2)], [host(3)]]
    );
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!(report.batches_delivered, 4);
}

#[tokio::test]
async fn shorter_flush_interval_flushes_a_pending_batch_promptly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.json");
    let emitter = Emitter::start(unhurried(
        Destination::File(file.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");

    let pending = emitter.submit(records(0, 1));
    emitter
        .set_batch_limits(BatchLimits {
            max_edges: 1000,
            flush_interval: Duration::from_millis(100),
            node_threshold_ratio: 1.0,
        })
        .expect("valid limits");
    // Without the change this would wait an hour: the bounded wait fails long before.
    let delivery = bounded("the pending batch", pending).await;
    assert_eq!(delivery.expect("safe"), Delivery::Written);
    assert_eq!(batch_hosts(&file), [[host(0)]]);
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn reconfigure_after_shutdown_began_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.json");
    let emitter = Emitter::start(config(
        Destination::File(file.clone()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");
    let handle = emitter.clone();
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    let other = dir.path().join("other.json");
    let err = handle
        .reconfigure_output(to_file(Format::Json, &other, dir.path()))
        .await
        .expect_err("shut down");
    assert!(matches!(err, EmitterError::Closed), "{err}");
    assert!(!other.exists(), "nothing opened");
    let err = handle
        .set_batch_limits(BatchLimits {
            max_edges: 1,
            flush_interval: Duration::from_secs(1),
            node_threshold_ratio: 1.0,
        })
        .expect_err("shut down");
    assert!(matches!(err, EmitterError::Closed), "{err}");
}

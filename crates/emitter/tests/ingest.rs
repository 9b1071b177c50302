//! Ingest delivery, retries, spool and replay, mTLS (SPEC §3.11; B-04, B-06, B-19).

use std::path::Path;
use std::time::Duration;

use spyder_emitter::{
    CSV_HEADER, Delivery, Destination, Emitter, EmitterError, Format, IngestConfig, MtlsFiles,
};
use spyder_testkit::ingest::{Answer, ClientCa, IngestOptions, IngestServer};
use spyder_testkit::pki::{CertKind, TestCa};

use crate::common::{
    bounded, config, decode, hosts, ingest, is_spool_name, records, snapshot, spool_files,
    wait_until,
};

async fn receiver() -> IngestServer {
    IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest receiver starts")
}

#[tokio::test]
async fn server_errors_are_retried_until_delivered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = receiver().await;
    server.script([Answer::Status(500), Answer::Status(500)]);
    let emitter = Emitter::start(config(
        ingest(server.url(), dir.path()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");

    let delivery = bounded("receipt", emitter.submit(records(1, 2))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Delivered);
    let received = server.received();
    assert_eq!(received.len(), 3, "500, 500, then 200");
    assert!(
        received.iter().all(|r| r.body == received[0].body),
        "same body each try"
    );
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/json")
    );
    assert_eq!(server.delivered().len(), 1);
    let body = &received[2].body;
    assert!(body.ends_with(b"}\n") && !body[..body.len() - 1].contains(&b'\n'));
    let batch = decode(body);
    assert_eq!(hosts(&batch), ["host1.example"]);
    assert_eq!(batch.edges, records(1, 2).edges);

    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!((report.batches_delivered, report.batches_spooled), (1, 0));
    assert!(!report.ingest_failing);
    assert!(spool_files(dir.path()).is_empty(), "nothing spooled");
}

#[tokio::test]
async fn other_client_errors_are_not_retried_and_spooled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = receiver().await;
    server.script([Answer::Status(400)]);
    let emitter = Emitter::start(config(
        ingest(server.url(), dir.path()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");

    let delivery = bounded("receipt", emitter.submit(records(1, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Spooled);
    assert_eq!(server.request_count(), 1, "a 400 is not retried");
    let files = spool_files(dir.path());
    assert_eq!(files.len(), 1);
    let spooled = std::fs::read(&files[0]).expect("spool file");
    assert_eq!(
        spooled,
        server.bodies()[0],
        "the spool holds the batch that was POSTed"
    );
    let status = emitter.status();
    assert_eq!((status.batches_spooled, status.spool_files), (1, 1));
    assert!(status.ingest_failing);
    // Shutdown skips the replay while ingest is failing: the file stays.
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!(spool_files(dir.path()), files);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = receiver().await;
    let emitter = Emitter::start(config(
        ingest(server.url(), dir.path()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");

    // Retry-After: 1 → one more try after it, delivered.
    server.script([Answer::RetryAfter {
        status: 503,
        seconds: 1,
    }]);
    let delivery = bounded("receipt", emitter.submit(records(1, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Delivered);
    assert_eq!(server.request_count(), 2);

    // Retry-After beyond the 30 s retry window → no further try, spooled at once
    // (plain backoff would have tried several more times).
    server.script([Answer::RetryAfter {
        status: 429,
        seconds: 3600,
    }]);
    let delivery = bounded("receipt", emitter.submit(records(2, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Spooled);
    assert_eq!(server.request_count(), 3);

    // A Retry-After no clock can add (it panicked the ingest task) is also beyond
    // the window.
    server.script([Answer::RetryAfter {
        status: 503,
        seconds: u64::MAX,
    }]);
    let delivery = bounded("receipt", emitter.submit(records(3, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Spooled);
    assert_eq!(server.request_count(), 4);
    // The ingest output is still alive: the next batch is delivered.
    let delivery = bounded("receipt", emitter.submit(records(4, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Delivered);
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn ingest_down_spools_everything_and_a_restart_replays_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    let server = receiver().await;
    server.go_down().await;
    let emitter = Emitter::start(config(ingest(server.url(), &spool), Format::Json, &spool))
        .await
        .expect("starts");

    let receipts: Vec<_> = (0..3).map(|i| emitter.submit(records(i, 1))).collect();
    wait_until("the first batch is retrying", || {
        emitter.status().ingest_failing
    })
    .await;
    let report = bounded("shutdown", emitter.shutdown(Duration::from_secs(1))).await;
    assert_eq!((report.batches_delivered, report.batches_spooled), (0, 3));
    assert_eq!(report.spool_files, 3);
    for receipt in receipts {
        assert_eq!(receipt.await.expect("safe"), Delivery::Spooled);
    }

    let files = spool_files(&spool);
    assert_eq!(files.len(), 3);
    let mut spooled_hosts = Vec::new();
    let mut contents = Vec::new();
    for file in &files {
        let name = file.file_name().and_then(|n| n.to_str()).expect("name");
        assert!(is_spool_name(name), "{name}");
        let bytes = std::fs::read(file).expect("spool file");
        let batch = decode(&bytes);
        assert!(name.ends_with(&format!("-{}.json", batch.batch_id)));
        assert_eq!(batch.edges.len(), 1);
        spooled_hosts.extend(hosts(&batch));
        contents.push(bytes);
    }
    spooled_hosts.sort();
    assert_eq!(
        spooled_hosts,
        ["host0.example", "host1.example", "host2.example"]
    );
    assert!(
        !std::fs::read_dir(&spool).expect("spool dir").any(|e| e
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp")),
        "no temp files left"
    );

    // Back up: a new emitter replays the spool at startup, oldest first, byte for byte.
    server.go_up().await.expect("receiver back up");
    let emitter = Emitter::start(config(ingest(server.url(), &spool), Format::Json, &spool))
        .await
        .expect("starts again");
    // A file is deleted just before it is counted as replayed: wait for both.
    wait_until("the spool is replayed", || {
        spool_files(&spool).is_empty() && emitter.status().batches_replayed == 3
    })
    .await;
    assert_eq!(server.delivered(), contents);
    let status = emitter.status();
    assert_eq!((status.batches_replayed, status.spool_files), (3, 0));
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn at_most_eight_batches_wait_behind_a_stuck_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = receiver().await;
    server.set_default(Answer::Hang);
    let emitter = Emitter::start(config(
        ingest(server.url(), dir.path()),
        Format::Json,
        dir.path(),
    ))
    .await
    .expect("starts");

    let mut receipts = vec![emitter.submit(records(0, 1))];
    wait_until("the first POST hangs", || server.request_count() == 1).await;
    receipts.extend((1..12).map(|i| emitter.submit(records(i, 1))));
    // 8 wait for the ingest task; the other 3 go straight to the spool.
    wait_until("overflow is spooled", || {
        emitter.status().batches_spooled == 3
    })
    .await;
    assert_eq!(server.request_count(), 1);

    let report = bounded("shutdown", emitter.shutdown(Duration::from_millis(500))).await;
    assert_eq!(report.batches_spooled, 12);
    for receipt in receipts {
        assert_eq!(receipt.await.expect("safe"), Delivery::Spooled);
    }
    assert_eq!(spool_files(dir.path()).len(), 12);
}

/// B-04: with the ingest hanging, shutdown ends within its budget and loses nothing.
#[tokio::test]
async fn hanging_ingest_shutdown_is_bounded_and_spools_everything() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = receiver().await;
    server.set_default(Answer::Hang);
    let mut cfg = config(ingest(server.url(), dir.path()), Format::Json, dir.path());
    cfg.max_edges = 2;
    let emitter = Emitter::start(cfg).await.expect("starts");

    let mut receipts: Vec<_> = (0..4).map(|i| emitter.submit(records(i, 1))).collect();
    wait_until("a POST hangs", || server.request_count() == 1).await;
    receipts.push(emitter.submit(records(4, 1))); // still in memory: the current batch

    let budget = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let report = bounded("shutdown", emitter.shutdown(budget)).await;
    let took = started.elapsed();
    assert!(
        took < budget + Duration::from_secs(8),
        "shutdown took {took:?}"
    );
    assert_eq!(report.batches_delivered, 0);
    assert_eq!(report.batches_spooled, 3);
    for receipt in receipts {
        assert_eq!(receipt.await.expect("safe"), Delivery::Spooled);
    }
    let mut spooled: Vec<String> = spool_files(dir.path())
        .iter()
        .flat_map(|f| hosts(&decode(&std::fs::read(f).expect("spool file"))))
        .collect();
    spooled.sort();
    let expected: Vec<String> = (0..5).map(|i| format!("host{i}.example")).collect();
    assert_eq!(spooled, expected);
    server.release();
}

/// B-06: in file or writer mode the spool directory is never touched.
#[tokio::test]
async fn file_mode_leaves_the_spool_byte_identical() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).expect("spool dir");
    let batch = spyder_model::Batch::seal("p0", "r0", records(9, 1));
    let old = format!("20240101T000000.000000000-{}.json", batch.batch_id);
    std::fs::write(spool.join(&old), serde_json::to_vec(&batch).expect("json")).expect("write");
    std::fs::write(spool.join(format!(".{old}.tmp")), b"partial").expect("write");
    std::fs::write(spool.join("20240101T000000.000000001-x.json.bad"), b"junk").expect("write");
    let before = snapshot(&spool);

    let file = dir.path().join("out.json");
    let emitter = Emitter::start(config(
        Destination::File(file.clone()),
        Format::Json,
        &spool,
    ))
    .await
    .expect("starts");
    assert_eq!(emitter.status().spool_files, 1, "counted");
    bounded("receipt", emitter.submit(records(1, 1)))
        .await
        .expect("written");
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;

    assert_eq!(snapshot(&spool), before);
    assert_eq!(
        std::fs::read_to_string(&file)
            .expect("file")
            .lines()
            .count(),
        1
    );
}

#[tokio::test]
async fn startup_deletes_temp_files_and_renames_undecodable_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).expect("spool dir");
    let batch = spyder_model::Batch::seal("p0", "r0", records(5, 1));
    let mut good = serde_json::to_vec(&batch).expect("json");
    good.push(b'\n');
    let good_name = format!("20240101T000000.000000002-{}.json", batch.batch_id);
    let bad_name = "20240101T000000.000000001-0191b5a0-0000-7000-8000-000000000000.json";
    let tmp_name = format!(".{good_name}.tmp");
    std::fs::write(spool.join(&good_name), &good).expect("write");
    std::fs::write(spool.join(bad_name), b"{not json").expect("write");
    std::fs::write(spool.join(&tmp_name), b"{\"probe_id\":").expect("write");

    let server = receiver().await;
    let emitter = Emitter::start(config(ingest(server.url(), &spool), Format::Json, &spool))
        .await
        .expect("starts");
    assert!(
        !spool.join(&tmp_name).exists(),
        "stale temp file deleted at start"
    );
    wait_until("the spool is replayed", || spool_files(&spool).is_empty()).await;

    let names: Vec<String> = snapshot(&spool).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, [format!("{bad_name}.bad")]);
    assert_eq!(server.delivered(), [good], "the good file, byte for byte");
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
}

#[tokio::test]
async fn unwritable_spool_dir_fails_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let not_a_dir = dir.path().join("file");
    std::fs::write(&not_a_dir, b"x").expect("write");
    let server = receiver().await;
    let err = Emitter::start(config(
        ingest(server.url(), &not_a_dir),
        Format::Json,
        &not_a_dir,
    ))
    .await
    .expect_err("a file is no spool directory");
    assert!(matches!(err, EmitterError::SpoolDir { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.starts_with("output.spool_dir:"), "{message}");
    assert!(message.contains(&*not_a_dir.to_string_lossy()), "{message}");
}

#[tokio::test]
async fn jsonl_and_csv_bodies_carry_their_content_type() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = receiver().await;
    for format in [Format::Jsonl, Format::Csv] {
        let emitter = Emitter::start(config(ingest(server.url(), dir.path()), format, dir.path()))
            .await
            .expect("starts");
        bounded("receipt", emitter.submit(records(1, 1)))
            .await
            .expect("delivered");
        bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    }
    let received = server.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[0].content_type.as_deref(),
        Some("application/x-ndjson")
    );
    let jsonl = std::str::from_utf8(&received[0].body).expect("utf-8");
    assert_eq!(jsonl.lines().count(), 2);
    assert!(jsonl.starts_with("{\"record\":\"node_domain\""));
    assert_eq!(received[1].content_type.as_deref(), Some("text/csv"));
    let csv = std::str::from_utf8(&received[1].body).expect("utf-8");
    assert!(
        csv.starts_with(&format!("{CSV_HEADER}\nnode_domain,")),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "one header per body");
}

/// The private-CA HTTPS receiver requiring a client certificate, and the PEM files.
struct MtlsWorld {
    server: IngestServer,
    ca_pem: std::path::PathBuf,
    cert_pem: std::path::PathBuf,
    key_pem: std::path::PathBuf,
}

async fn mtls_world(dir: &Path) -> MtlsWorld {
    let server_ca = TestCa::new();
    let server_cert = server_ca.issue(&["localhost"], CertKind::Valid);
    let client_ca = ClientCa::new();
    let client = client_ca.issue("probe-1");
    let server = IngestServer::start(
        IngestOptions::https(&server_cert).require_client_cert(client_ca.root_der()),
    )
    .await
    .expect("receiver starts");
    let world = MtlsWorld {
        server,
        ca_pem: dir.join("ca.pem"),
        cert_pem: dir.join("client.pem"),
        key_pem: dir.join("client.key"),
    };
    std::fs::write(&world.ca_pem, server_ca.root_pem()).expect("write");
    std::fs::write(&world.cert_pem, client.cert_pem).expect("write");
    std::fs::write(&world.key_pem, client.key_pem).expect("write");
    world
}

fn mtls_destination(world: &MtlsWorld, spool: &Path, mtls: MtlsFiles) -> Destination {
    Destination::Ingest(IngestConfig {
        url: world.server.url(),
        spool_dir: spool.to_path_buf(),
        mtls,
    })
}

/// B-19: a private-CA ingest works only with `mtls.ca`, and only with the client cert.
#[tokio::test]
async fn mtls_with_private_ca_delivers_only_when_configured() {
    let dir = tempfile::tempdir().expect("temp dir");
    let world = mtls_world(dir.path()).await;
    let full = MtlsFiles {
        cert: Some(world.cert_pem.clone()),
        key: Some(world.key_pem.clone()),
        ca: Some(world.ca_pem.clone()),
    };

    let spool = dir.path().join("ok");
    let emitter = Emitter::start(config(
        mtls_destination(&world, &spool, full.clone()),
        Format::Json,
        &spool,
    ))
    .await
    .expect("starts");
    let delivery = bounded("receipt", emitter.submit(records(1, 1))).await;
    assert_eq!(delivery.expect("safe"), Delivery::Delivered);
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    assert_eq!(world.server.delivered().len(), 1);

    let failing = [
        (
            "no-ca",
            MtlsFiles {
                ca: None,
                ..full.clone()
            },
        ),
        (
            "no-client-cert",
            MtlsFiles {
                cert: None,
                key: None,
                ..full.clone()
            },
        ),
    ];
    for (name, mtls) in failing {
        let spool = dir.path().join(name);
        let emitter = Emitter::start(config(
            mtls_destination(&world, &spool, mtls),
            Format::Json,
            &spool,
        ))
        .await
        .expect("starts");
        let receipt = emitter.submit(records(2, 1));
        wait_until("the TLS failure is seen", || {
            emitter.status().ingest_failing
        })
        .await;
        bounded("shutdown", emitter.shutdown(Duration::from_millis(500))).await;
        assert_eq!(receipt.await.expect("safe"), Delivery::Spooled, "{name}");
        assert_eq!(spool_files(&spool).len(), 1, "{name}");
    }
    assert_eq!(
        world.server.request_count(),
        1,
        "no request got through without mTLS"
    );
    assert!(
        world.server.tls_failures() >= 1,
        "the server refused the certless client"
    );
}

/// B-19: a missing or unusable mTLS file is a startup error naming key and path.
#[tokio::test]
async fn bad_mtls_files_fail_startup_naming_key_and_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    let world = mtls_world(dir.path()).await;
    let missing = dir.path().join("missing.key");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, b"hello").expect("write");
    let cases = [
        (
            "mtls.key",
            &missing,
            MtlsFiles {
                cert: Some(world.cert_pem.clone()),
                key: Some(missing.clone()),
                ca: None,
            },
        ),
        (
            "mtls.cert",
            &missing,
            MtlsFiles {
                cert: Some(missing.clone()),
                key: Some(world.key_pem.clone()),
                ca: None,
            },
        ),
        (
            "mtls.ca",
            &not_pem,
            MtlsFiles {
                ca: Some(not_pem.clone()),
                ..MtlsFiles::default()
            },
        ),
    ];
    for (key, path, mtls) in cases {
        let spool = dir.path().join("spool");
        let err = Emitter::start(config(
            mtls_destination(&world, &spool, mtls),
            Format::Json,
            &spool,
        ))
        .await
        .expect_err("bad mTLS file");
        let message = err.to_string();
        assert!(message.starts_with(&format!("{key}:")), "{message}");
        assert!(message.contains(&*path.to_string_lossy()), "{message}");
    }
    // A key without a certificate names the missing half.
    let spool = dir.path().join("spool");
    let half = MtlsFiles {
        key: Some(world.key_pem.clone()),
        ..MtlsFiles::default()
    };
    let err = Emitter::start(config(
        mtls_destination(&world, &spool, half),
        Format::Json,
        &spool,
    ))
    .await
    .expect_err("half a pair");
    assert!(err.to_string().starts_with("mtls.cert:"), "{err}");
}

//! Faults with real processes and sockets: a failing or hanging ingest, signals, a
//! broken stdout pipe, and mTLS (SPEC §3.11, §3.14; B-04, B-06, B-19).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use spyder_model::Batch;
use spyder_testkit::ingest::{Answer, ClientCa, IngestOptions, IngestServer};
use spyder_testkit::pki::CertKind;
use spyder_testkit::world::ExpectedEdge;

use crate::support;
use crate::support::{Harness, assert_same_edges, batch_edges, finish, signal};

const LIMIT: Duration = Duration::from_secs(120);

/// Batches in the spool directory (every `*.json` file), by file name order.
fn spooled(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
                .map(|n| {
                    let bytes = std::fs::read(dir.join(&n)).expect("read spool file");
                    (n, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn parse_batches<'a>(bodies: impl IntoIterator<Item = &'a [u8]>) -> Vec<Batch> {
    bodies.into_iter().flat_map(support::json_batches).collect()
}

fn edge_count(batches: &[Batch]) -> usize {
    batches.iter().map(|b| b.edges.len()).sum()
}

/// The `N edges` of the final summary line.
fn summary_edges(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|l| l.contains("Final summary:"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let before = line.split(" edges").next().expect("edges part");
    before
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no edge count in {line}"))
}

async fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_failing_then_recovering_delivers_every_batch_once() {
    let h = Harness::new(0x5eed_0401, 30).await;
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    ingest.script([
        Answer::Status(500),
        Answer::Status(503),
        Answer::Status(500),
    ]);
    let spool = h.path("spool");
    let mut cmd = h.spyder();
    cmd.arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", spool.display()))
        .arg("-batch_max_edges=50");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(run.stdout.is_empty());
    let delivered = parse_batches(ingest.delivered().iter().map(|b| b.as_ref()));
    let ids: BTreeSet<_> = delivered.iter().map(|b| b.batch_id).collect();
    assert_eq!(ids.len(), delivered.len(), "a batch was delivered twice");
    assert!(delivered.len() > 1, "several batches");
    assert_same_edges(&batch_edges(&delivered), &h.world.expected_edges());
    assert!(spooled(&spool).is_empty(), "nothing is left in the spool");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_down_spools_everything_and_the_next_start_replays_it() {
    let h = Harness::new(0x5eed_0402, 20).await;
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    ingest.go_down().await;
    let spool = h.path("spool");
    let mut cmd = h.spyder();
    cmd.arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", spool.display()))
        .arg("-batch_max_edges=40");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr.contains("ingest failed, spooling"),
        "{}",
        run.stderr
    );
    let files = spooled(&spool);
    assert!(!files.is_empty(), "batches were spooled");
    for (name, _) in &files {
        // <UTC YYYYMMDDTHHMMSS.nnnnnnnnn>-<batch_id>.json
        let (stamp, rest) = name.split_once('-').expect("stamp-id");
        assert_eq!(stamp.len(), 25, "{name}");
        assert_eq!(&stamp[8..9], "T", "{name}");
        assert_eq!(rest.len(), 36 + 5, "{name}");
    }
    let spooled_batches = parse_batches(files.iter().map(|(_, b)| b.as_slice()));
    assert_same_edges(&batch_edges(&spooled_batches), &h.world.expected_edges());

    // The next start replays the spool (byte-identical) and removes it.
    ingest.go_up().await.expect("ingest back");
    let empty = h.path("empty.txt");
    std::fs::write(&empty, "").expect("write");
    let mut cmd = support::spyder();
    cmd.arg(format!("-domains={}", empty.display()))
        .arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", spool.display()))
        .arg("-metrics_addr=");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let got: BTreeSet<Vec<u8>> = ingest
        .delivered()
        .iter()
        .map(|b| b.trim_ascii_end().to_vec())
        .collect();
    let want: BTreeSet<Vec<u8>> = files
        .iter()
        .map(|(_, b)| b.trim_ascii_end().to_vec())
        .collect();
    assert_eq!(got, want, "replayed bodies equal the spool files");
    assert!(spooled(&spool).is_empty(), "replayed files are deleted");
}

/// Starts spyder against a hanging ingest and waits until its first POST is stuck.
async fn run_into_a_hanging_ingest(h: &Harness, ingest: &IngestServer) -> tokio::process::Child {
    ingest.set_default(Answer::Hang);
    let mut cmd = h.spyder();
    cmd.arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", h.path("spool").display()))
        .arg("-batch_max_edges=20")
        .arg("-set=crawling.shutdown_grace=2s")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spyder starts");
    wait_for("the first POST", Duration::from_secs(60), || {
        ingest.request_count() > 0
    })
    .await;
    child
}

fn delivered_and_spooled(h: &Harness, ingest: &IngestServer) -> Vec<Batch> {
    let mut batches = parse_batches(ingest.delivered().iter().map(|b| b.as_ref()));
    batches.extend(parse_batches(
        spooled(&h.path("spool")).iter().map(|(_, b)| b.as_slice()),
    ));
    batches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hanging_ingest_exits_0_in_time_and_loses_nothing() {
    // B-04: exit 0 within shutdown_grace + 15 s; every record delivered or spooled.
    let h = Harness::new(0x5eed_0403, 60).await;
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    let child = run_into_a_hanging_ingest(&h, &ingest).await;
    signal(child.id().expect("pid"), "-TERM");
    let out = tokio::time::timeout(Duration::from_secs(2 + 15), child.wait_with_output())
        .await
        .expect("exits within shutdown_grace + 15 s")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("shutdown complete"), "{stderr}");
    let batches = delivered_and_spooled(&h, &ingest);
    assert_eq!(
        edge_count(&batches),
        summary_edges(&stderr),
        "every emitted edge is safe"
    );
    let got: BTreeSet<ExpectedEdge> = batch_edges(&batches);
    assert!(got.is_subset(&h.world.expected_edges()), "no stray edges");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_spools_and_exits_130() {
    let h = Harness::new(0x5eed_0404, 60).await;
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    let child = run_into_a_hanging_ingest(&h, &ingest).await;
    let pid = child.id().expect("pid");
    signal(pid, "-TERM");
    signal(pid, "-INT");
    let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("exits quickly after the second signal")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "stderr:\n{stderr}");
    let batches = delivered_and_spooled(&h, &ingest);
    assert_eq!(
        edge_count(&batches),
        summary_edges(&stderr),
        "in-memory records spooled"
    );
}

/// The edges the summary's `Output:` line reports as not written (0 when none).
fn edges_not_written(stderr: &str) -> usize {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("Output: "))
        .unwrap_or_else(|| panic!("no Output: line in:\n{stderr}"));
    let Some((_, after)) = line.split_once("records, ") else {
        return 0;
    };
    after
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no edge count in {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stdout_pipe_ends_the_run_cleanly_and_spools_nothing() {
    // SPEC §3.1, issue #13: `spyder | head` must not leave batches in ./spool that
    // stdout mode never replays; what was not written is counted in the summary.
    let h = Harness::new(0x5eed_0405, 40).await;
    let spool = h.path("spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    let mut cmd = h.spyder();
    cmd.arg(format!("-spool_dir={}", spool.display()))
        .arg("-batch_max_edges=10")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    drop(child.stdout.take()); // the reader goes away: every write is EPIPE
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(spooled(&spool).is_empty(), "nothing spooled: {stderr}");
    assert!(
        stderr.contains("Output: stdout: 0 batches written; the output closed early: "),
        "{stderr}"
    );
    let not_written = edges_not_written(&stderr);
    assert!(not_written > 0, "{stderr}");
    assert_eq!(
        not_written,
        summary_edges(&stderr),
        "every edge accounted for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_output_file_ends_the_run_with_exit_3_and_spools_nothing() {
    let h = Harness::new(0x5eed_0407, 10).await;
    let spool = h.path("spool");
    let mut cmd = h.spyder();
    cmd.arg(format!("-spool_dir={}", spool.display()))
        .arg("-o=/dev/full")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = tokio::time::timeout(LIMIT, cmd.output())
        .await
        .expect("exits")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(!spool.exists() || spooled(&spool).is_empty(), "{stderr}");
    assert!(
        stderr.contains("Output: file /dev/full: 0 batches written; the output closed early: "),
        "{stderr}"
    );
    assert_eq!(
        edges_not_written(&stderr),
        summary_edges(&stderr),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_ingest_with_a_private_ca_works_only_with_mtls_ca() {
    // B-19.
    let h = Harness::new(0x5eed_0406, 10).await;
    let server_cert = h.world.ca.issue(&["localhost"], CertKind::Valid);
    let clients = ClientCa::new();
    let client = clients.issue("spyder-probe");
    let ingest = IngestServer::start(
        IngestOptions::https(&server_cert).require_client_cert(clients.root_der()),
    )
    .await
    .expect("ingest");
    let (cert, key, ca) = (
        h.path("client.pem"),
        h.path("client.key"),
        h.path("server-ca.pem"),
    );
    std::fs::write(&cert, &client.cert_pem).expect("write");
    std::fs::write(&key, &client.key_pem).expect("write");
    std::fs::write(&ca, h.world.ca.root_pem()).expect("write");

    let run_with = |with_ca: bool, spool: &str| {
        let mut cmd = h.spyder();
        cmd.arg(format!("-ingest={}", ingest.url()))
            .arg(format!("-spool_dir={}", h.path(spool).display()))
            .arg(format!("-mtls_cert={}", cert.display()))
            .arg(format!("-mtls_key={}", key.display()));
        if with_ca {
            cmd.arg(format!("-mtls_ca={}", ca.display()));
        }
        cmd
    };
    let run = finish(run_with(true, "spool-a"), LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let delivered = parse_batches(ingest.delivered().iter().map(|b| b.as_ref()));
    assert_same_edges(&batch_edges(&delivered), &h.world.expected_edges());

    // Without mtls.ca the private server certificate is not trusted: all spooled.
    let before = ingest.delivered().len();
    let run = finish(run_with(false, "spool-b"), LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    assert_eq!(
        ingest.delivered().len(),
        before,
        "nothing delivered without mtls.ca"
    );
    assert!(!spooled(&h.path("spool-b")).is_empty());

    // A missing key file is a startup error naming the key and the path.
    let missing = h.path("nope.key");
    let mut cmd = run_with(true, "spool-c");
    cmd.arg(format!("-mtls_key={}", missing.display()));
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert!(run.stderr.contains("mtls.key"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&missing.display().to_string()),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_is_reported_after_stall_after() {
    // P-8: every host hangs; nothing finishes; the stall is reported, not silent.
    use tokio::io::{AsyncBufReadExt, BufReader};
    let options = spyder_testkit::world::WorldOptions {
        black_holes: 1.0,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_0407, 5, options).await;
    let mut cmd = h.spyder();
    cmd.arg("-set=crawling.tls_timeout=60s")
        .arg("-set=crawling.task_timeout=60s")
        .arg("-set=telemetry.stall_after=1s")
        .arg("-set=crawling.shutdown_grace=1s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let found = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("progress stalled") {
                return true;
            }
        }
        false
    })
    .await
    .expect("a stall report within 30 s");
    assert!(found, "stderr ended without a stall report");
    signal(child.id().expect("pid"), "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(1 + 15), child.wait())
        .await
        .expect("exits within grace + 15 s")
        .expect("status");
    assert_eq!(status.code(), Some(0));
}

//! Faults that must never take a worker or the process down (issue #10): a panic
//! inside a task, a huge `-concurrency` with little input, an input whose writer never
//! closes.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::support;
use crate::support::{Harness, assert_same_edges, batch_edges, finish, json_batches};

const LIMIT: Duration = Duration::from_secs(120);

/// `(processed, successful, failed)` from the final summary line.
fn summary_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("Final summary:"))
        .unwrap_or_else(|| panic!("no summary in:\n{stderr}"));
    let number_before = |word: &str| -> u64 {
        let before = line
            .split(word)
            .next()
            .unwrap_or_else(|| panic!("no {word:?} in {line}"));
        before
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no number before {word:?} in {line}"))
    };
    (
        number_before(" processed"),
        number_before(" successful"),
        number_before(" failed"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_a_task_ends_that_task_internal_and_the_run_goes_on() {
    let h = Harness::new(0x5eed_1001, 20).await;
    // Three hosts that panic inside their task (the test build's fault hook), with
    // two workers: if a panicked worker were not replaced, the run would never end.
    let panics = [
        "spyder-fault-panic-1.example",
        "spyder-fault-panic-2.example",
        "spyder-fault-panic-3.example",
    ];
    let mut lines = h.world.hosts();
    lines.splice(5..5, panics.iter().map(|s| s.to_string()));
    std::fs::write(&h.domains, lines.join("\n") + "\n").expect("write domains");
    let mut cmd = h.spyder();
    cmd.arg("-concurrency=2");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);

    let batches = json_batches(&run.stdout);
    assert_same_edges(&batch_edges(&batches), &h.world.expected_edges());
    let (processed, _, failed) = summary_counts(&run.stderr);
    assert_eq!(processed, lines.len() as u64, "{}", run.stderr);
    assert!(failed >= 3, "{}", run.stderr);
    for host in panics {
        let logged: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.contains(host))
            .filter(|l| l.contains("\"outcome\":\"internal\""))
            .collect();
        assert_eq!(
            logged.len(),
            1,
            "one error line for {host}:\n{}",
            run.stderr
        );
        assert!(
            logged[0].contains("panic: injected fault for") && logged[0].contains("\"ERROR\""),
            "{}",
            logged[0]
        );
        // The crawled host's own node is still emitted (SPEC §1 step 2).
        assert!(
            batches
                .iter()
                .flat_map(|b| &b.nodes_domain)
                .any(|d| d.host == host),
            "no NodeDomain for {host}"
        );
    }
    assert!(
        !run.stderr.contains("panicked at"),
        "a contained panic is logged once, by the run loop:\n{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_concurrency_with_little_or_no_input_finishes() {
    let h = Harness::new(0x5eed_1002, 3).await;
    let empty = h.path("empty.txt");
    std::fs::write(&empty, "").expect("write");
    let few = h.path("few.txt");
    std::fs::write(
        &few,
        "a.invalid-tld-x\nb.invalid-tld-x\n".to_owned() + &h.world.hosts().join("\n"),
    )
    .expect("write");
    for (input, concurrency) in [(&empty, 65536), (&few, 4096), (&h.domains, 2048)] {
        let mut cmd = support::spyder();
        cmd.arg(format!("-domains={}", input.display()))
            .args(support::world_flags(&h.world, &h.roots))
            .arg(format!("-concurrency={concurrency}"));
        let run = finish(cmd, LIMIT).await;
        assert_eq!(
            run.code,
            Some(0),
            "c={concurrency}: stderr:\n{}",
            run.stderr
        );
        assert!(run.stderr.contains("shutdown complete"), "{}", run.stderr);
        if input == &h.domains {
            assert_same_edges(
                &batch_edges(&json_batches(&run.stdout)),
                &h.world.expected_edges(),
            );
        }
    }
}

/// Waits until `path` holds at least one complete batch line.
async fn wait_for_output(path: &std::path::Path) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().next().is_some_and(|l| l.ends_with('}')) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no output within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Once `out` holds a batch, SIGTERM: the run must exit 0 although `input` is open.
async fn stop_after_first_output(child: tokio::process::Child, out: &std::path::Path, input: &str) {
    wait_for_output(out).await;
    support::signal(child.id().expect("pid"), "-TERM");
    let done = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("exits with {input} still open"))
        .expect("wait");
    assert_eq!(
        done.status.code(),
        Some(0),
        "{input}: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_run_while_a_fifo_or_stdin_writer_stays_open() {
    let h = Harness::new(0x5eed_1003, 5).await;
    let hosts = h.world.hosts().join("\n") + "\n";

    // A FIFO whose writer never closes.
    let fifo = h.path("input.fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success(), "mkfifo");
    // Read+write: opening does not wait for the reader, and the FIFO never sees EOF.
    let mut writer = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .expect("open fifo");
    writer.write_all(hosts.as_bytes()).expect("write fifo");
    let out = h.path("fifo-out.json");
    let mut cmd = support::spyder();
    cmd.arg(format!("-domains={}", fifo.display()))
        .args(support::world_flags(&h.world, &h.roots))
        .arg(format!("-output={}", out.display()))
        .arg("-set=batch.flush_interval=1s")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spyder starts");
    stop_after_first_output(child, &out, "the FIFO").await;
    drop(writer);

    // stdin ('-') held open by the parent.
    let out = h.path("stdin-out.json");
    let mut cmd = support::spyder();
    cmd.arg("-domains=-")
        .args(support::world_flags(&h.world, &h.roots))
        .arg(format!("-output={}", out.display()))
        .arg("-set=batch.flush_interval=1s")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, hosts.as_bytes())
        .await
        .expect("write stdin");
    stop_after_first_output(child, &out, "stdin").await;
    drop(stdin);
}

/// Queue-mode `spyder` against `h` and `redis`, grace 2 s, stderr piped.
fn queue_probe(h: &Harness, redis: &spyder_testkit::redis::RedisServer) -> tokio::process::Command {
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", redis.addr())
        .env("REDIS_ADDR", redis.addr())
        .arg("-set=crawling.shutdown_grace=2s")
        .arg("-batch_flush_sec=1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// SIGTERM, then the exit within `shutdown_grace` (2 s) + 15 s; returns stderr.
async fn sigterm_and_exit_in_time(child: tokio::process::Child) -> String {
    support::signal(child.id().expect("pid"), "-TERM");
    let out = tokio::time::timeout(Duration::from_secs(2 + 15), child.wait_with_output())
        .await
        .expect("exits within shutdown_grace + 15 s")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.contains("shutdown complete"), "{stderr}");
    stderr
}

/// A queue-mode probe over `seed`'s world whose ingest hangs, once its first POST is
/// stuck. Returns the world, Redis, the ingest and the probe.
async fn queue_probe_into_a_hanging_ingest(
    seed: u64,
) -> (
    Harness,
    spyder_testkit::redis::RedisServer,
    spyder_testkit::ingest::IngestServer,
    tokio::process::Child,
) {
    use spyder_testkit::ingest::{Answer, IngestOptions, IngestServer};
    let h = Harness::new(seed, 40).await;
    let redis = spyder_testkit::redis::RedisServer::start().expect("redis-server");
    support::seed_queue(&redis, &h.world.hosts());
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    ingest.set_default(Answer::Hang);
    let mut cmd = queue_probe(&h, &redis);
    cmd.arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", h.path("spool").display()))
        .arg("-batch_max_edges=20");
    let child = cmd.spawn().expect("spyder starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while ingest.request_count() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no POST within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (h, redis, ingest, child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_shutdown_with_a_hanging_ingest_ends_in_time_and_loses_nothing() {
    let (h, redis, _ingest, child) = queue_probe_into_a_hanging_ingest(0x5eed_1004).await;
    let spool = h.path("spool");
    sigterm_and_exit_in_time(child).await;

    // Every host is either still queued (pending or :processing, unacked) or acked
    // with its records in the spool: nothing acked was lost.
    let spooled: Vec<spyder_model::Batch> = std::fs::read_dir(&spool)
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .flat_map(|e| support::json_batches(&std::fs::read(e.path()).expect("read")))
        .collect();
    let safe: std::collections::BTreeSet<String> = spooled
        .iter()
        .flat_map(|b| b.nodes_domain.iter().map(|d| d.host.clone()))
        .collect();
    let mut queued = redis
        .command(&["LRANGE", "spyder:queue", "0", "-1"])
        .expect("lrange");
    queued += &redis
        .command(&["LRANGE", "spyder:queue:processing", "0", "-1"])
        .expect("lrange");
    for host in h.world.hosts() {
        let in_queue = queued.contains(&format!("\"host\":\"{host}\""));
        assert!(
            in_queue || safe.contains(&host),
            "{host} was acked but its records are neither delivered nor spooled"
        );
    }
    assert!(!safe.is_empty(), "the pending batches were spooled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_shutdown_with_ingest_hanging_and_redis_frozen_ends_in_time() {
    // Every step that waits on the network hangs at once: delivery (ingest), acks and
    // dedup marks (Redis answers nothing). One deadline bounds them all.
    let (h, redis, _ingest, child) = queue_probe_into_a_hanging_ingest(0x5eed_1006).await;
    let redis_pid = redis.pid().expect("redis runs");
    support::signal(redis_pid, "-STOP");
    let stderr = sigterm_and_exit_in_time(child).await;
    support::signal(redis_pid, "-CONT");
    let spooled = std::fs::read_dir(h.path("spool"))
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .count();
    assert!(
        spooled > 0,
        "the undelivered batches were spooled:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_shutdown_with_redis_killed_ends_in_time() {
    let h = Harness::new(0x5eed_1005, 40).await;
    let mut redis = spyder_testkit::redis::RedisServer::start().expect("redis-server");
    support::seed_queue(&redis, &h.world.hosts());
    let out = h.path("graph.json");
    let mut cmd = queue_probe(&h, &redis);
    cmd.arg(format!("-output={}", out.display()));
    let child = cmd.spawn().expect("spyder starts");
    wait_for_output(&out).await;
    // Acks and dedup marks now have nowhere to go; the shutdown must not wait them out.
    redis.kill().expect("kill redis-server");
    sigterm_and_exit_in_time(child).await;
    let written = std::fs::read(&out).expect("output");
    assert!(
        !support::json_batches(&written).is_empty(),
        "the records crawled before the outage were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_passwords_are_sent_as_basic_auth_and_never_logged() {
    use base64::Engine as _;
    use spyder_testkit::ingest::{IngestOptions, IngestServer};
    let h = Harness::new(0x5eed_1007, 5).await;
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    let url = ingest
        .url()
        .replacen("http://", "http://spy%40der:s3cr%3Aet@", 1);
    let mut cmd = h.spyder();
    cmd.arg(format!("-ingest={url}"))
        .arg(format!("-spool_dir={}", h.path("spool").display()))
        .arg("-verbose");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let received = ingest.received();
    assert!(!received.is_empty(), "batches were posted");
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("spy@der:s3cr:et")
    );
    for request in &received {
        assert_eq!(request.authorization.as_deref(), Some(want.as_str()));
        assert!(!request.target.contains('@'), "{}", request.target);
    }
    assert!(!run.stderr.contains("s3cr"), "{}", run.stderr);
    assert!(run.stderr.contains("spy%40der:***@"), "{}", run.stderr);

    // A Redis password in an unreachable address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots)).env(
        "REDIS_QUEUE_ADDR",
        format!("redis://default:s3cret@127.0.0.1:{port}"),
    );
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(1), "stderr:\n{}", run.stderr);
    assert!(
        run.stderr
            .contains("cannot reach Redis at redis://default:***@127.0.0.1"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("s3cret"), "{}", run.stderr);
}

/// A tmpfs mounted for one test (root only: CI runs as root), unmounted on drop.
struct SmallDisk {
    dir: std::path::PathBuf,
}

impl SmallDisk {
    fn mount(dir: std::path::PathBuf, size: &str) -> Self {
        std::fs::create_dir_all(&dir).expect("mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root); this test cannot run without it"
        );
        Self { dir }
    }

    /// Fills the disk with one file; returns its path.
    fn fill(&self) -> std::path::PathBuf {
        let filler = self.dir.join("filler");
        let mut file = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0u8; 4096];
        // Bounded: the disk is small; stop at the first short write (ENOSPC).
        for _ in 0..100_000 {
            if file.write_all(&chunk).is_err() {
                break;
            }
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}

/// `spyder` reading stdin, posting to a dead ingest, spooling into `spool`.
async fn spool_probe(
    h: &Harness,
    ingest: &spyder_testkit::ingest::IngestServer,
    spool: &std::path::Path,
    max_edges: usize,
) -> tokio::process::Child {
    let mut cmd = support::spyder();
    cmd.arg("-domains=-")
        .args(support::world_flags(&h.world, &h.roots))
        .arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", spool.display()))
        .arg(format!("-batch_max_edges={max_edges}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd.spawn().expect("spyder starts")
}

/// Collects a child's stderr in the background.
fn collect_stderr(child: &mut tokio::process::Child) -> std::sync::Arc<std::sync::Mutex<String>> {
    use tokio::io::AsyncBufReadExt;
    let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let sink = std::sync::Arc::clone(&text);
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Ok(mut t) = sink.lock() {
                t.push_str(&line);
                t.push('\n');
            }
        }
    });
    text
}

fn spool_files(dir: &std::path::Path) -> (Vec<spyder_model::Batch>, usize) {
    let mut batches = Vec::new();
    let mut tmp = 0;
    for entry in std::fs::read_dir(dir)
        .expect("spool dir")
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".tmp") {
            tmp += 1;
        } else if name.ends_with(".json") {
            batches.extend(json_batches(&std::fs::read(entry.path()).expect("read")));
        }
    }
    (batches, tmp)
}

/// An ingest that is down and a 256 KiB disk with an empty `spool` directory.
async fn dead_ingest_and_small_disk(
    h: &Harness,
) -> (
    spyder_testkit::ingest::IngestServer,
    SmallDisk,
    std::path::PathBuf,
) {
    let ingest =
        spyder_testkit::ingest::IngestServer::start(spyder_testkit::ingest::IngestOptions::plain())
            .await
            .expect("ingest");
    ingest.go_down().await;
    let disk = SmallDisk::mount(h.path("disk"), "256k");
    let spool = disk.dir.join("spool");
    std::fs::create_dir_all(&spool).expect("spool dir");
    (ingest, disk, spool)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_disk_keeps_batches_in_memory_until_it_has_room() {
    let h = Harness::new(0x5eed_1008, 30).await;
    let (ingest, disk, spool) = dead_ingest_and_small_disk(&h).await;
    let filler = disk.fill();

    let mut child = spool_probe(&h, &ingest, &spool, 5).await;
    let stderr = collect_stderr(&mut child);
    let mut stdin = child.stdin.take().expect("stdin");
    tokio::io::AsyncWriteExt::write_all(&mut stdin, (h.world.hosts().join("\n") + "\n").as_bytes())
        .await
        .expect("write stdin");
    // Wait until the spool has failed, then make room and end the input.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !stderr
        .lock()
        .map(|t| t.contains("cannot spool batch"))
        .unwrap_or(false)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no spool failure within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::remove_file(&filler).expect("make room");
    drop(stdin);
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("exits")
        .expect("status");
    let text = stderr.lock().map(|t| t.clone()).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "stderr:\n{text}");
    let (batches, tmp) = spool_files(&spool);
    assert_eq!(tmp, 0, "no temp files left");
    assert_same_edges(&batch_edges(&batches), &h.world.expected_edges());
    assert!(!text.contains("records are lost"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_disk_that_stays_full_stops_intake_and_exits_non_zero() {
    let h = Harness::new(0x5eed_1009, 150).await;
    let (ingest, disk, spool) = dead_ingest_and_small_disk(&h).await;
    disk.fill();

    let mut child = spool_probe(&h, &ingest, &spool, 1).await;
    let mut stdin = child.stdin.take().expect("stdin");
    // The input never ends by itself: only the overflow can stop this run.
    tokio::io::AsyncWriteExt::write_all(&mut stdin, (h.world.hosts().join("\n") + "\n").as_bytes())
        .await
        .expect("write stdin");
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{text}");
    assert!(text.contains("intake stops"), "{text}");
    assert!(text.contains("neither delivered nor spooled"), "{text}");
    let (_, tmp) = spool_files(&spool);
    assert_eq!(tmp, 0, "no temp files left");
    drop(stdin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_garbage_logs_the_first_100_lines_then_a_count() {
    let h = Harness::new(0x5eed_1010, 2).await;
    let garbage = h.path("garbage.txt");
    let mut content = String::new();
    for i in 0..5_000 {
        content.push_str(&format!("bad_host_{i}!.example\n"));
    }
    content.push_str(&h.world.hosts().join("\n"));
    std::fs::write(&garbage, &content).expect("write");
    let mut cmd = support::spyder();
    cmd.arg(format!("-domains={}", garbage.display()))
        .args(support::world_flags(&h.world, &h.roots));
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let shown = run
        .stderr
        .lines()
        .filter(|l| l.contains(": invalid host \\\"bad_host_"))
        .count();
    assert_eq!(shown, 100, "the first 100 invalid lines are shown");
    assert!(
        run.stderr.contains("\"not_shown\":4900"),
        "the rest is counted:\n{}",
        &run.stderr[run.stderr.len().saturating_sub(2000)..]
    );
    assert!(
        run.stderr.len() < content.len(),
        "stderr ({} bytes) is smaller than the garbage ({} bytes)",
        run.stderr.len(),
        content.len()
    );
    let (processed, _, failed) = summary_counts(&run.stderr);
    assert_eq!(processed, 5_002);
    assert!(failed >= 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn b12_a_black_holed_host_does_not_slow_the_healthy_ones() {
    // B-12: no circuit breaker, nothing shared that a hang holds. The black holes come
    // first in the input; with one batch per domain (completion order), every healthy
    // host's records are out before any black hole's task ends.
    let options = spyder_testkit::world::WorldOptions {
        black_holes: 0.03,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_1011, 103, options).await;
    let holes: Vec<String> = h
        .world
        .sites
        .iter()
        .filter(|s| s.metrics.tls_error == Some("timeout"))
        .map(|s| s.host.clone())
        .collect();
    assert!(!holes.is_empty(), "the world has black holes");
    let healthy: Vec<String> = h
        .world
        .hosts()
        .into_iter()
        .filter(|host| !holes.contains(host))
        .collect();
    assert!(healthy.len() >= 90, "{} healthy", healthy.len());
    let lines: Vec<String> = holes.iter().chain(&healthy).cloned().collect();
    std::fs::write(&h.domains, lines.join("\n") + "\n").expect("write domains");
    let mut cmd = h.spyder();
    cmd.arg("-concurrency=8")
        .arg("-batch_max_edges=1")
        .arg("-set=crawling.tls_timeout=12s")
        .arg("-set=crawling.task_timeout=15s");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "stderr:\n{}", run.stderr);
    let batches = json_batches(&run.stdout);
    // The batch holding a host's RESOLVES_TO edges is the one its own task emitted (a
    // NodeDomain may come earlier, from another site's link).
    let position = |host: &str| {
        batches
            .iter()
            .position(|b| {
                b.edges
                    .iter()
                    .any(|e| e.kind == spyder_model::EdgeType::ResolvesTo && e.source == host)
            })
            .unwrap_or_else(|| panic!("no RESOLVES_TO from {host}"))
    };
    let first_hole = holes.iter().map(|h| position(h)).min().expect("holes");
    let last_healthy = healthy.iter().map(|h| position(h)).max().expect("healthy");
    assert!(
        last_healthy < first_hole,
        "a healthy host finished after a black hole (batch {last_healthy} vs {first_hole})"
    );
}

/// `GET path` over HTTP/1.0 (no chunking), with a bearer key if given; the body, or
/// `None` while nothing listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_counters_equal_what_was_emitted() {
    // SPEC §2.8/§3.13 and B-08: after a world is crawled, every counter the run keeps
    // equals the records in the output, and the outcomes add up to the tasks.
    // Sites on shared hosting addresses give IP nodes that several crawls produce,
    // besides the shared name servers and link targets of every world.
    let options = spyder_testkit::world::WorldOptions {
        shared_ip_sites: 0.3,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_1012, 60, options).await;
    let redis = spyder_testkit::redis::RedisServer::start().expect("redis-server");
    support::seed_queue(&redis, &h.world.hosts());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let out = h.path("graph.json");
    let mut cmd = queue_probe(&h, &redis);
    const READ_KEY: &str = "spyder_test_read_key_0123456789";
    let keys = serde_json::json!([{"key": READ_KEY, "name": "reader", "scope": "read"}]);
    cmd.arg(format!("-output={}", out.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .env(
            "SPYDER_API_KEYS",
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, keys.to_string()),
        );
    let child = cmd.spawn().expect("spyder starts");
    let items = h.world.hosts().len() as f64;
    // Done when every item's task counted and its batch was written and acked.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let metrics = loop {
        let llen = |key: &str| support::int(&redis.command(&["LLEN", key]).expect("llen"));
        let queued = llen("spyder:queue") + llen("spyder:queue:processing");
        let scraped = support::scrape(port);
        let tasks = scraped.as_ref().map(|m| m.sum("spyder_tasks_total", &[]));
        if let Some(m) = scraped
            && tasks >= Some(items)
            && queued == 0
        {
            break m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not drained in 120 s: {queued} items queued, tasks counted {tasks:?} of {items}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        metrics.sum("spyder_tasks_total", &[]),
        items,
        "one task per item"
    );
    // The stats endpoint reads the same run (not a stub).
    let stats: serde_json::Value = serde_json::from_str(
        &support::get(port, "/api/v1/stats", Some(READ_KEY)).expect("stats answers"),
    )
    .expect("stats JSON");
    sigterm_and_exit_in_time(child).await;
    for status in ["ok", "error"] {
        assert_eq!(
            stats["tasks"][status].as_f64(),
            Some(metrics.sum("spyder_tasks_total", &[("status", status)])),
            "stats tasks.{status}: {stats}"
        );
    }
    for kind in spyder_model::EdgeType::ALL {
        assert_eq!(
            stats["edges"][kind.as_str()].as_f64().unwrap_or(0.0),
            metrics.sum("spyder_edges_total", &[("type", kind.as_str())]),
            "stats edges.{}: {stats}",
            kind.as_str()
        );
    }

    let batches = json_batches(&std::fs::read(&out).expect("output"));
    for kind in spyder_model::EdgeType::ALL {
        let emitted = batches
            .iter()
            .flat_map(|b| &b.edges)
            .filter(|e| e.kind == kind)
            .count() as f64;
        assert_eq!(
            metrics.sum("spyder_edges_total", &[("type", kind.as_str())]),
            emitted,
            "spyder_edges_total{{type={}}}",
            kind.as_str()
        );
    }
    let nodes = |f: fn(&spyder_model::Batch) -> usize| batches.iter().map(f).sum::<usize>() as f64;
    for (kind, n) in [
        ("domain", nodes(|b| b.nodes_domain.len())),
        ("ip", nodes(|b| b.nodes_ip.len())),
        ("cert", nodes(|b| b.nodes_cert.len())),
    ] {
        assert_eq!(
            metrics.sum("spyder_nodes_discovered_total", &[("type", kind)]),
            n,
            "spyder_nodes_discovered_total{{type={kind}}}"
        );
    }
    assert_eq!(
        metrics.sum("spyder_task_outcomes_total", &[]),
        items,
        "outcomes add up to tasks"
    );
    let mut want_outcomes = std::collections::BTreeMap::<String, f64>::new();
    for site in &h.world.sites {
        *want_outcomes.entry(site.outcome.to_owned()).or_default() += 1.0;
    }
    let got_outcomes: std::collections::BTreeMap<String, f64> = metrics
        .by_label("spyder_task_outcomes_total", "outcome")
        .into_iter()
        .filter(|(_, n)| *n > 0.0)
        .collect();
    assert_eq!(got_outcomes, want_outcomes);
    let errors: f64 = ["invalid", "dns_error", "timeout", "internal"]
        .iter()
        .map(|o| want_outcomes.get(*o).copied().unwrap_or(0.0))
        .sum();
    assert_eq!(
        metrics.sum("spyder_tasks_total", &[("status", "error")]),
        errors
    );
    assert_eq!(
        metrics.sum("spyder_batch_emissions_total", &[("status", "success")]),
        batches.len() as f64,
        "one success per batch written"
    );
    assert_eq!(
        metrics.sum("spyder_robots_blocked_total", &[]),
        want_outcomes.get("robots_blocked").copied().unwrap_or(0.0)
    );
    // One task-duration and one DNS-phase observation per task; nobody is crawling.
    assert_eq!(
        metrics.sum("spyder_task_duration_seconds_count", &[]),
        items
    );
    assert_eq!(
        metrics.sum("spyder_dns_lookup_duration_seconds_count", &[]),
        items
    );
    assert_eq!(metrics.value("spyder_active_workers", &[]), Some(0.0));
    // A reply is dropped only as the duplicate answer to a try that timed out and was
    // retried (a loaded machine times tries out early): never more drops than tries
    // timed out. (Was `== 0`, which failed on a machine running other builds.)
    let dropped = metrics.sum("spyder_dns_dropped_replies_total", &[]);
    let timed_out = metrics.sum("spyder_dns_try_timeouts_total", &[]);
    assert!(
        dropped <= timed_out,
        "{dropped} replies dropped, {timed_out} tries timed out"
    );
    assert_dedup_counts(&h.world, &metrics, &batches, "redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_dedup_counts_each_record_once() {
    // File mode, memory dedup: the same counts as the Redis dedup of a queue run.
    // stdin stays open so the run (and /metrics) stays up until it is read.
    let options = spyder_testkit::world::WorldOptions {
        shared_ip_sites: 0.3,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_1015, 40, options).await;
    let port = support::free_port();
    let out = h.path("graph.json");
    let mut cmd = support::spyder();
    cmd.arg("-domains=-")
        .args(support::world_flags(&h.world, &h.roots))
        .arg(format!("-output={}", out.display()))
        .arg("-batch_flush_sec=1")
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = h.world.hosts().join("\n") + "\n";
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .expect("write stdin");
    let items = h.world.sites.len() as f64;
    let metrics = support::until("every task counted and acked", || {
        support::scrape(port).filter(|m| {
            m.sum("spyder_tasks_total", &[]) >= items
                && m.value("spyder_queue_held", &[]) == Some(0.0)
        })
    })
    .await;
    drop(stdin);
    support::exits_zero(child, "exits once stdin closes").await;
    let batches = json_batches(&std::fs::read(&out).expect("output"));
    assert_dedup_counts(&h.world, &metrics, &batches, "memory");
}

/// The dedup counters of a run that crawled every host of `world` once with the
/// `backend` dedup, against what the world implies and `batches` (the output).
///
/// Each crawl asks the dedup once, about its `crawled|<host>` key and its records'
/// keys. A key seen before is a hit (that record is not emitted again), a new one a
/// miss. What a crawl produces before dedup is what the world expects of it (see
/// [`record_keys`]); one probe and no failed output make the counts exact whatever
/// the order of the crawls: each distinct key is a miss once, every other sighting a
/// hit, and each host is crawled once. Marks (of delivered records, of claims) are
/// not lookups.
fn assert_dedup_counts(
    world: &spyder_testkit::world::World,
    metrics: &spyder_testkit::prometheus::Scrape,
    batches: &[spyder_model::Batch],
    backend: &str,
) {
    let (asked, distinct) = record_keys(world);
    let hosts = world.sites.len() as f64;
    let repeats = asked - distinct.len() as f64;
    assert!(repeats > 0.0, "the world repeats records across crawls");
    assert_eq!(
        metrics.sum("spyder_dedup_hits_total", &[("backend", backend)]),
        repeats,
        "{backend} dedup hits: records produced again ({asked} record keys, {} distinct)",
        distinct.len()
    );
    assert_eq!(
        metrics.sum("spyder_dedup_misses_total", &[("backend", backend)]),
        distinct.len() as f64 + hosts,
        "{backend} dedup misses: each distinct record once, and each crawled host once"
    );
    assert_eq!(metrics.sum("spyder_dedup_errors_total", &[]), 0.0);
    // One backend counts: the in-process layer of the Redis backend is part of it.
    for series in ["spyder_dedup_hits_total", "spyder_dedup_misses_total"] {
        assert_eq!(
            metrics.sum(series, &[]),
            metrics.sum(series, &[("backend", backend)]),
            "{series}"
        );
    }
    // The output agrees: each edge, IP and certificate at its first sighting only;
    // domain nodes too, except that the crawled host's own node is emitted on every
    // crawl (SPEC §1 step 2), also when an earlier crawl named the host.
    let distinct_of = |domain: bool| {
        distinct
            .iter()
            .filter(|k| (k.0 == "domain") == domain)
            .count()
    };
    let emitted_other = batches
        .iter()
        .map(|b| b.edges.len() + b.nodes_ip.len() + b.nodes_cert.len())
        .sum::<usize>();
    assert_eq!(
        emitted_other,
        distinct_of(false),
        "edges, IP and cert nodes"
    );
    let emitted_domains = batches.iter().map(|b| b.nodes_domain.len()).sum::<usize>();
    let first_sightings = distinct_of(true);
    assert!(
        (first_sightings..=first_sightings + hosts as usize).contains(&emitted_domains),
        "{emitted_domains} domain nodes for {first_sightings} distinct domains of {hosts} crawls"
    );
}

/// One dedup key of a record: its kind and what names it.
type RecordKey = (&'static str, String, String);

/// The dedup keys of the records the crawls of `world` produce: how many over all
/// crawls, and the distinct ones. A crawl's records are its expected edges, a NodeIp
/// per RESOLVES_TO target, a NodeCert per USES_CERT target, and a NodeDomain for the
/// crawled host and for every domain an edge points to (SPEC §1 steps 2–10).
fn record_keys(world: &spyder_testkit::world::World) -> (f64, BTreeSet<RecordKey>) {
    use spyder_model::EdgeType;
    let mut distinct = BTreeSet::new();
    let mut asked = 0;
    for site in &world.sites {
        let mut keys = BTreeSet::new();
        keys.insert(("domain", site.host.clone(), String::new()));
        for (kind, source, target) in &site.edges {
            keys.insert((kind.as_str(), source.clone(), target.clone()));
            let node = match kind {
                EdgeType::ResolvesTo => "ip",
                EdgeType::UsesCert => "cert",
                EdgeType::UsesNs | EdgeType::AliasOf | EdgeType::UsesMx | EdgeType::LinksTo => {
                    "domain"
                }
            };
            keys.insert((node, target.clone(), String::new()));
        }
        asked += keys.len();
        distinct.extend(keys);
    }
    (asked as f64, distinct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_draws_a_bar_on_a_terminal() {
    // B-20 `-progress`: on a TTY (a pseudo-terminal from util-linux `script`), the bar
    // is redrawn in place with the counts; `-quiet` draws nothing.
    let options = spyder_testkit::world::WorldOptions {
        black_holes: 0.5,
        ..Default::default()
    };
    let h = Harness::with_options(0x5eed_1013, 6, options).await;
    let out = h.path("graph.json");
    let spyder_line = |extra: &str| {
        let mut words = vec![
            env!("CARGO_BIN_EXE_spyder").to_owned(),
            format!("-domains={}", h.domains.display()),
            format!("-output={}", out.display()),
            "-set=crawling.tls_timeout=3s".to_owned(),
            extra.to_owned(),
        ];
        words.extend(support::world_flags(&h.world, &h.roots));
        words.join(" ")
    };
    let in_a_terminal = |line: String| {
        let mut cmd = tokio::process::Command::new("script");
        // A terminal as wide as a usual one (script's default is 80 columns).
        let line = format!("stty cols 160 rows 40; exec {line}");
        cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
            .env_remove("REDIS_ADDR")
            .env_remove("REDIS_QUEUE_ADDR")
            .env_remove("SPYDER_API_KEYS")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let run = finish(in_a_terminal(spyder_line("-progress")), LIMIT).await;
    let screen = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.code, Some(0), "{screen}{}", run.stderr);
    // Issue #13 step 5: a bar a person reads — percent of the input read, elapsed,
    // ETA, counts, rate and the outcomes so far.
    for part in [
        "\r\x1b[2K",
        "% read | ",
        " elapsed, ETA ",
        " processed, ",
        " ok, ",
        " edges | ",
        "/s | ",
    ] {
        assert!(
            screen.contains(part),
            "no {part:?} on the terminal:\n{screen:?}"
        );
    }
    // The summary comes after the bar's last line and nothing overdraws it.
    let summary = screen
        .find("Final summary: 6 processed")
        .expect("a summary");
    assert!(
        !screen[summary..].contains("\x1b[1A") && !screen[summary..].contains("% read"),
        "the bar redrew over the summary:\n{screen:?}"
    );
    for line in ["Outcomes: ", "Output: file "] {
        assert!(screen[summary..].contains(line), "{line}:\n{screen:?}");
    }
    let run = finish(in_a_terminal(spyder_line("-quiet")), LIMIT).await;
    let screen = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.code, Some(0), "{screen}{}", run.stderr);
    assert!(
        !screen.contains(" processed, ") && !screen.contains("% read"),
        "-quiet drew a bar:\n{screen:?}"
    );
}

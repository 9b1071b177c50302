//! Machine limits through the real binary (issue 11 item 4): under a descriptor limit
//! it cannot raise (soft = hard), `-concurrency 4096` still completes a world with
//! every expected edge, and running out of descriptors makes connects wait
//! (`spyder_resource_waits_total{resource="fd"}`), never fail.

use std::process::Stdio;
use std::time::Duration;

use spyder_testkit::prometheus::Scrape;
use tokio::process::Command;

use crate::support::{Harness, assert_same_edges, batch_edges, free_port, json_batches, scrape};

/// Bound on every run and wait of these tests.
const LIMIT: Duration = Duration::from_secs(240);
const SITES: usize = 300;

/// `prlimit`, or why the test cannot run: it must fail under CI, not skip.
fn prlimit() -> Option<&'static str> {
    let found = std::process::Command::new("prlimit")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("prlimit");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "prlimit (util-linux) is needed to run spyder under a descriptor limit"
    );
    eprintln!("skipped: prlimit (util-linux) not installed");
    None
}

/// `spyder` under `RLIMIT_NOFILE` = `nofile` (soft and hard: it cannot raise it),
/// pointed at the world at concurrency 4096, logs to `stderr.log`.
fn spyder_limited(tool: &str, nofile: u64, h: &Harness, log: &str) -> Command {
    let mut cmd = Command::new(tool);
    cmd.arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_spyder"));
    for var in [
        "REDIS_ADDR",
        "REDIS_QUEUE_ADDR",
        "REDIS_QUEUE_KEY",
        "LOG_LEVEL",
        "SPYDER_API_KEYS",
    ] {
        cmd.env_remove(var);
    }
    let stderr = std::fs::File::create(h.path(log)).expect("create the log file");
    cmd.args(h.world.probe_flags(&h.roots))
        .arg("-concurrency=4096")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    cmd
}

/// Scrapes `port` until `done` holds, within [`LIMIT`].
async fn scrape_until(port: u16, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        // Out of descriptors, the ops listener may refuse a scrape for a moment.
        if let Some(m) = scrape(port)
            && done(&m)
        {
            return m;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} not reached in {LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_4096_under_a_hard_descriptor_limit_gives_every_expected_edge() {
    let Some(tool) = prlimit() else { return };
    let h = Harness::new(0x5eed_1104, SITES).await;
    let want = h.world.expected_edges();

    // The issue's case: the default soft limit of 1,024, and no room to raise it.
    let out = h.path("graph-1024.json");
    let mut cmd = spyder_limited(tool, 1024, &h, "stderr-1024.log");
    cmd.arg(format!("-domains={}", h.domains.display()))
        .arg(format!("-output={}", out.display()));
    let status = tokio::time::timeout(LIMIT, cmd.status())
        .await
        .expect("the run ends in time")
        .expect("spyder runs");
    let log = std::fs::read_to_string(h.path("stderr-1024.log")).expect("the log");
    assert_eq!(status.code(), Some(0), "{log}");
    let written = std::fs::read(&out).expect("the output file");
    assert_same_edges(&batch_edges(&json_batches(&written)), &want);
    let info = log
        .lines()
        .find(|l| l.contains("descriptor limit (RLIMIT_NOFILE)"))
        .unwrap_or_else(|| panic!("the limit in force is logged:\n{log}"));
    assert!(info.contains(r#""soft":"1024""#), "{info}");
    assert!(info.contains(r#""hard":"1024""#), "{info}");
    assert!(
        log.lines()
            .any(|l| l.contains(r#""level":"WARN""#) && l.contains("cannot hold")),
        "4096 tasks do not fit in 1,024 descriptors: warned\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_short_of_descriptors_waits_for_them_and_loses_nothing() {
    // So few descriptors that most of the 300 tasks find none free when they
    // connect: they wait and retry, every domain keeps its records.
    let Some(tool) = prlimit() else { return };
    let h = Harness::new(0x5eed_1105, SITES).await;
    let want = h.world.expected_edges();
    let port = free_port();
    let out = h.path("graph-scarce.json");
    let mut cmd = spyder_limited(tool, SCARCE_DESCRIPTORS, &h, "stderr-scarce.log");
    cmd.arg("-domains=-")
        .arg(format!("-output={}", out.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .stdin(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = h.world.hosts().join("\n") + "\n";
    tokio::io::AsyncWriteExt::write_all(&mut stdin, input.as_bytes())
        .await
        .expect("write stdin");

    let m = scrape_until(port, "every domain crawled", |m| {
        m.sum("spyder_tasks_total", &[]) >= SITES as f64
    })
    .await;
    let waits = m.sum("spyder_resource_waits_total", &[("resource", "fd")]);
    assert!(waits > 0.0, "connects waited for descriptors: {waits}");
    assert_eq!(
        m.sum("spyder_task_outcomes_total", &[("outcome", "timeout")]),
        0.0,
        "no task ran out of time waiting"
    );

    drop(stdin);
    let status = tokio::time::timeout(LIMIT, child.wait())
        .await
        .expect("exits once stdin closes")
        .expect("spyder runs");
    let log = std::fs::read_to_string(h.path("stderr-scarce.log")).expect("the log");
    assert_eq!(status.code(), Some(0), "{log}");
    let written = std::fs::read(&out).expect("the output file");
    assert_same_edges(&batch_edges(&json_batches(&written)), &want);
}

/// Descriptors of the scarce run: the process's own (standard streams, runtime, DNS
/// sockets, listeners, files) plus a few dozen for connections.
const SCARCE_DESCRIPTORS: u64 = 64;

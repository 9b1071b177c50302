//! Many probes on one Redis (SPEC §3.8–§3.10): three continuous probes share a seeded
//! queue, one is SIGKILLed and started again, and a redis-server restart mid-run; at
//! the end every expected edge was emitted, nothing is left leased and no host was
//! crawled more than twice.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use spyder_model::HostName;
use spyder_queue::QueueItem;
use spyder_testkit::redis::RedisServer;
use spyder_testkit::world::ExpectedEdge;
use tokio::process::Child;

use crate::support;
use crate::support::{Harness, batch_edges, json_batches};

const KEY: &str = "spyder:queue";

/// The integer of a RESP `:n` reply.
fn int(redis: &RedisServer, args: &[&str]) -> i64 {
    let reply = redis.command(args).expect("redis command");
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("{args:?}: not an integer reply: {reply:?}"))
}

/// Pushes one fresh item per world host, as `seed` does.
fn seed(redis: &RedisServer, hosts: &[String]) {
    let items: Vec<String> = hosts
        .iter()
        .map(|h| QueueItem::new(HostName::from_input(h).expect("valid"), 1_723_300_000))
        .map(|item| item.raw().to_owned())
        .collect();
    let mut args = vec!["LPUSH", KEY];
    args.extend(items.iter().map(String::as_str));
    assert_eq!(int(redis, &args), hosts.len() as i64);
}

/// One probe process writing its batches to its own file. Its stderr is read as it
/// comes: a full pipe would block the probe's logging, and with it the probe.
struct Probe {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
    output: PathBuf,
}

impl Probe {
    async fn stderr(self) -> String {
        self.stderr.await.expect("stderr reader")
    }
}

/// Starts a continuous queue-mode probe against `world`.
fn start_probe(h: &Harness, name: &str, queue: &RedisServer, dedup: &RedisServer) -> Probe {
    let output = h.path(&format!("{name}.json"));
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", queue.addr())
        .env("REDIS_ADDR", dedup.addr())
        .arg(format!("-probe={name}"))
        .arg("-continuous")
        // A third of the single-probe concurrency each.
        .arg("-concurrency=21")
        .arg("-batch_flush_sec=1")
        .arg("-set=crawling.task_timeout=10s")
        .arg("-set=crawling.tls_timeout=5s")
        .arg("-set=crawling.http_timeout=5s")
        .arg("-set=redis.lease_timeout=12s")
        .arg("-set=logging.level=debug")
        .arg(format!("-output={}", output.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut pipe = child.stderr.take().expect("stderr piped");
    let stderr = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    Probe {
        child,
        stderr,
        output,
    }
}

/// Waits until the queue, `:processing` and `:leases` are all empty: every item was
/// crawled and acked, and acks come only after discoveries were pushed.
async fn wait_drained(queue: &RedisServer, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        // A restarting Redis refuses connections for a moment: keep polling.
        let counts = (
            queue.command(&["LLEN", KEY]),
            queue.command(&["LLEN", "spyder:queue:processing"]),
            queue.command(&["ZCARD", "spyder:queue:leases"]),
        );
        if let (Ok(a), Ok(b), Ok(c)) = &counts
            && [a, b, c].iter().all(|r| r.trim() == ":0")
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("not drained: {counts:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the probes have made progress: at least `n` scripts ran on `queue`
/// (acks, and dedup calls when the dedup shares the server). The pending list is no
/// measure: continuous probes push their discoveries onto it.
async fn wait_progress(queue: &RedisServer, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while support::command_calls(queue, "evalsha") < n {
        assert!(Instant::now() < deadline, "fewer than {n} scripts ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SIGTERM, then the exit code and stderr.
async fn stop(mut probe: Probe) -> (Option<i32>, String, PathBuf) {
    let pid = probe.child.id().expect("pid").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let status = tokio::time::timeout(Duration::from_secs(60), probe.child.wait())
        .await
        .expect("exits after SIGTERM")
        .expect("exit status");
    let output = probe.output.clone();
    (status.code(), probe.stderr().await, output)
}

/// SIGKILL: whatever it wrote stays, its leases stay behind in Redis.
async fn kill(mut probe: Probe) -> (String, PathBuf) {
    probe.child.start_kill().expect("SIGKILL");
    tokio::time::timeout(Duration::from_secs(30), probe.child.wait())
        .await
        .expect("dies")
        .expect("exit status");
    let output = probe.output.clone();
    (probe.stderr().await, output)
}

/// Hosts of the `task done` debug lines: one per finished crawl.
fn crawls(stderr: &str, counts: &mut BTreeMap<String, usize>) {
    for line in stderr.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["message"] == "task done"
            && let Some(host) = v["host"].as_str()
        {
            *counts.entry(host.to_owned()).or_default() += 1;
        }
    }
}

/// Every edge written to `files` (a killed probe's file may end in a torn line).
fn edges_of(files: &[PathBuf]) -> BTreeSet<ExpectedEdge> {
    let mut edges = BTreeSet::new();
    for file in files {
        let bytes = std::fs::read(file).unwrap_or_default();
        let whole = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(end) => &bytes[..=end],
            None => &bytes[..0],
        };
        edges.extend(batch_edges(&json_batches(whole)));
    }
    edges
}

/// Every expected edge is there, and nothing wrong was said about the world's hosts
/// (discovered hosts outside the world add their own edges).
fn assert_closure(h: &Harness, got: &BTreeSet<ExpectedEdge>) {
    let want = h.world.expected_edges();
    let missing: Vec<_> = want.difference(got).collect();
    assert!(
        missing.is_empty(),
        "{} expected edges missing: {:#?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    let world_hosts: BTreeSet<String> = h.world.hosts().into_iter().collect();
    let wrong: Vec<_> = got
        .iter()
        .filter(|(_, source, _)| world_hosts.contains(source))
        .filter(|e| !want.contains(*e))
        .collect();
    assert!(
        wrong.is_empty(),
        "unexpected edges from world hosts: {wrong:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_probes_survive_a_sigkill_and_drain_the_closure() {
    let h = Harness::new(0x5eed_0a01, 2_000).await;
    let queue = RedisServer::start().expect("queue redis");
    let dedup = RedisServer::start().expect("dedup redis");
    let hosts = h.world.hosts();
    seed(&queue, &hosts);

    let a = start_probe(&h, "probe-a", &queue, &dedup);
    let b = start_probe(&h, "probe-b", &queue, &dedup);
    let c = start_probe(&h, "probe-c", &queue, &dedup);
    wait_progress(&queue, 400, Duration::from_secs(120)).await;
    let (killed_log, killed_output) = kill(b).await;
    let held = int(&queue, &["ZCARD", "spyder:queue:leases"]);
    let b2 = start_probe(&h, "probe-b2", &queue, &dedup);

    let drained = wait_drained(&queue, Duration::from_secs(300)).await;
    let mut logs = vec![killed_log];
    let mut files = vec![killed_output];
    for probe in [a, c, b2] {
        let (code, stderr, output) = stop(probe).await;
        assert_eq!(code, Some(0), "stderr tail:\n{}", tail(&stderr));
        logs.push(stderr);
        files.push(output);
    }
    drained.unwrap_or_else(|e| panic!("{e}; held before the kill: {held}"));

    assert_closure(&h, &edges_of(&files));
    assert_eq!(int(&queue, &["LLEN", "spyder:queue:dead"]), 0);

    let mut counts = BTreeMap::new();
    for log in &logs {
        crawls(log, &mut counts);
    }
    for host in &hosts {
        assert!(counts.contains_key(host), "{host} never crawled");
    }
    let over: Vec<_> = counts.iter().filter(|(_, n)| **n > 2).collect();
    assert!(over.is_empty(), "crawled more than twice: {over:?}");

    // Dedup: at most 2 commands per crawled domain, only windowed sets, no
    // per-entry keys with a TTL of their own and no old `seen:<key>` keys.
    let crawled: usize = counts.values().sum();
    let dedup_calls =
        support::command_calls(&dedup, "evalsha") + support::command_calls(&dedup, "eval");
    assert!(
        dedup_calls <= 2 * crawled as u64,
        "{dedup_calls} dedup commands for {crawled} crawls"
    );
    let keys = int(&dedup, &["DBSIZE"]);
    let windows = dedup.command(&["KEYS", "spyder:seen:*"]).expect("KEYS");
    assert!(
        keys <= 2 && windows.starts_with(&format!("*{keys}\r\n")),
        "{keys} keys; windows: {windows:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_wait_out_a_redis_restart_and_lose_nothing() {
    let h = Harness::new(0x5eed_0a02, 400).await;
    let mut redis = RedisServer::start().expect("redis with AOF");
    let hosts = h.world.hosts();
    seed(&redis, &hosts);

    let a = start_probe(&h, "probe-a", &redis, &redis);
    let b = start_probe(&h, "probe-b", &redis, &redis);
    wait_progress(&redis, 200, Duration::from_secs(120)).await;
    redis.kill().expect("redis-server killed");
    tokio::time::sleep(Duration::from_secs(2)).await; // an outage, not a sync point
    redis.restart().expect("redis-server back");

    let drained = wait_drained(&redis, Duration::from_secs(300)).await;
    let mut files = Vec::new();
    let mut logs = String::new();
    for probe in [a, b] {
        let (code, stderr, output) = stop(probe).await;
        assert_eq!(code, Some(0), "stderr tail:\n{}", tail(&stderr));
        files.push(output);
        logs.push_str(&tail(&stderr));
    }
    drained.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    assert_closure(&h, &edges_of(&files));
    assert_eq!(int(&redis, &["LLEN", "spyder:queue:dead"]), 0);
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

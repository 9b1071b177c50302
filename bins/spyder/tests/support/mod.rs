//! Drives the real `spyder` binary against testkit worlds.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use spyder_model::{Batch, EdgeType};
use spyder_testkit::world::{ExpectedEdge, World, WorldOptions};
use tokio::process::Command;

/// A world plus the files a run needs: the domains list and the CA's roots.
pub struct Harness {
    pub world: World,
    pub dir: tempfile::TempDir,
    pub domains: PathBuf,
    pub roots: PathBuf,
}

impl Harness {
    pub async fn new(seed: u64, sites: usize) -> Self {
        Self::with_options(seed, sites, WorldOptions::default()).await
    }

    pub async fn with_options(seed: u64, sites: usize, options: WorldOptions) -> Self {
        let world = World::generate_with(seed, sites, options)
            .await
            .expect("world starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let domains = dir.path().join("domains.txt");
        std::fs::write(&domains, world.hosts().join("\n") + "\n").expect("write domains");
        let roots = dir.path().join("ca.pem");
        std::fs::write(&roots, world.ca.root_pem()).expect("write roots");
        Self {
            world,
            dir,
            domains,
            roots,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A queue-mode probe `id` of this world: queue and dedup on `redis`, the
    /// configuration file `config`, its ops listener on `port`, its records in
    /// `<id>.json`; stdout and stderr discarded (set your own after).
    pub fn queue_probe(
        &self,
        redis: &spyder_testkit::redis::RedisServer,
        config: &Path,
        id: &str,
        port: u16,
    ) -> Command {
        let mut cmd = spyder();
        cmd.args(world_flags(&self.world, &self.roots))
            .env("REDIS_QUEUE_ADDR", redis.addr())
            .env("REDIS_ADDR", redis.addr())
            .arg(format!("-config={}", config.display()))
            .arg(format!("-probe={id}"))
            .arg(format!("-metrics_addr=127.0.0.1:{port}"))
            .arg(format!(
                "-output={}",
                self.path(&format!("{id}.json")).display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }

    /// `spyder` with the flags that point it at this world; add your own after.
    pub fn spyder(&self) -> Command {
        let mut cmd = spyder();
        cmd.arg(format!("-domains={}", self.domains.display()))
            .args(world_flags(&self.world, &self.roots));
        cmd
    }
}

/// The binary under test, with a clean environment for what it reads.
pub fn spyder() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_spyder"));
    for var in [
        "REDIS_ADDR",
        "REDIS_QUEUE_ADDR",
        "REDIS_QUEUE_KEY",
        "LOG_LEVEL",
        "SPYDER_API_KEYS",
        "NO_COLOR",
    ] {
        cmd.env_remove(var);
    }
    // No user configuration file from the machine's home.
    cmd.env("XDG_CONFIG_HOME", "/nonexistent/spyder-tests");
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    cmd
}

/// Flags pointing a probe at `world` (DNS, ports, trust, loopback allowed), at
/// concurrency 64.
pub fn world_flags(world: &World, roots: &Path) -> Vec<String> {
    let mut flags = world.probe_flags(roots);
    flags.push("-concurrency=64".into());
    flags
}

/// Waits (at most 60 s) for `child` to exit, asserts it exited 0 (its stderr in the
/// message), and returns its output.
pub async fn exits_zero(child: tokio::process::Child, what: &str) -> std::process::Output {
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what}: no exit within 60 s"))
        .expect("output");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Output of a finished run.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs `cmd` to completion within `limit`.
pub async fn finish(mut cmd: Command, limit: Duration) -> Finished {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = cmd.spawn().expect("spyder starts");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("spyder finishes in time")
        .expect("spyder output");
    Finished {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Parses `json` output: one batch per line.
pub fn json_batches(out: &[u8]) -> Vec<Batch> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad batch line {l:?}: {e}")))
        .collect()
}

pub fn batch_edges(batches: &[Batch]) -> BTreeSet<ExpectedEdge> {
    batches
        .iter()
        .flat_map(|b| &b.edges)
        .map(|e| (e.kind, e.source.clone(), e.target.clone()))
        .collect()
}

/// Parses `jsonl` output into edges, checking every line's shape.
pub fn jsonl_edges(out: &[u8]) -> BTreeSet<ExpectedEdge> {
    let mut edges = BTreeSet::new();
    for line in String::from_utf8_lossy(out).lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl line is JSON");
        assert!(
            v.get("batch_id").is_some() && v.get("timestamp").is_some(),
            "{line}"
        );
        assert!(
            v.get("probe_id").is_some() && v.get("run_id").is_some(),
            "{line}"
        );
        if v["record"] == "edge" {
            let kind: EdgeType = serde_json::from_value(v["type"].clone()).expect("edge type");
            edges.insert((kind, str_of(&v["source"]), str_of(&v["target"])));
        }
    }
    edges
}

/// Parses `csv` output into edges (RFC 4180 quoting handled), checking the header.
pub fn csv_edges(out: &[u8]) -> BTreeSet<ExpectedEdge> {
    let text = String::from_utf8_lossy(out);
    let rows = parse_csv(&text);
    let header = rows.first().expect("a header row");
    assert_eq!(
        header.join(","),
        "record,batch_id,timestamp,probe_id,run_id,type,source,target,observed_at,host,apex,ip,first_seen,last_seen,spki_sha256,subject_cn,issuer_cn,not_before,not_after,sans,fingerprint_sha256,verified,verify_error"
    );
    assert_eq!(
        rows.iter().filter(|r| r[0] == "record").count(),
        1,
        "one header"
    );
    rows[1..]
        .iter()
        .filter(|r| r[0] == "edge")
        .map(|r| {
            let kind: EdgeType =
                serde_json::from_value(serde_json::Value::String(r[5].clone())).expect("edge type");
            (kind, r[6].clone(), r[7].clone())
        })
        .collect()
}

fn str_of(v: &serde_json::Value) -> String {
    v.as_str().expect("a string").to_owned()
}

/// RFC 4180 records (the testkit's reader).
pub use spyder_testkit::graph::parse_csv;

/// Fails with a readable diff when `got` differs from `want`.
pub fn assert_same_edges(got: &BTreeSet<ExpectedEdge>, want: &BTreeSet<ExpectedEdge>) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {} edges: {missing:#?}\nextra {} edges: {extra:#?}",
        missing.len(),
        extra.len()
    );
}

/// `calls` of one command in the Redis server's `INFO commandstats`.
pub fn command_calls(redis: &spyder_testkit::redis::RedisServer, command: &str) -> u64 {
    let reply = redis
        .command(&["INFO", "commandstats"])
        .expect("INFO commandstats");
    reply
        .lines()
        .find_map(|line| {
            let stats = line.strip_prefix(&format!("cmdstat_{command}:"))?;
            stats
                .split(',')
                .find_map(|kv| kv.strip_prefix("calls="))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// The integer of a RESP `:n` reply.
pub fn int(reply: &str) -> i64 {
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("not an integer reply: {reply:?}"))
}

/// Sends `sig` (e.g. `-TERM`) to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill runs")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

/// LPUSHes one fresh item per world host to `spyder:queue`.
pub fn seed_queue(redis: &spyder_testkit::redis::RedisServer, hosts: &[String]) {
    for host in hosts {
        let host = spyder_model::HostName::from_input(host).expect("valid");
        let item = spyder_queue::QueueItem::new(host, 1_723_300_000);
        int(&redis
            .command(&["LPUSH", "spyder:queue", item.raw()])
            .expect("lpush"));
    }
}

/// `GET path` from spyder's HTTP server on `port` (bearer `key`): the body, or
/// `None` when nothing answers.
pub fn get(port: u16, path: &str, key: Option<&str>) -> Option<String> {
    use std::io::{Read, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n{auth}\r\n").as_bytes())
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

/// `GET /metrics`, parsed.
pub fn scrape(port: u16) -> Option<spyder_testkit::prometheus::Scrape> {
    let body = get(port, "/metrics", None)?;
    Some(spyder_testkit::prometheus::Scrape::parse(&body).expect("metrics text parses"))
}

/// A TCP port free on 127.0.0.1 when asked.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` every 50 ms until it returns `Some`, for at most 60 s (then fails,
/// naming `what`).
pub async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

//! Live operations against the real binary (SPEC §2.7, §2.10, §3.12): the worker pool
//! follows PATCHed concurrency, Tier 3 and invalid PATCHes change nothing, SIGHUP
//! applies a good file and refuses a broken one, logging changes live, /health
//! follows the dedup Redis, /ready turns 503 at shutdown, and a busy port exits 1.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::time::Duration;

use spyder_testkit::redis::RedisServer;
use tokio::io::AsyncReadExt;
use tokio::process::Child;

use crate::support;
use crate::support::{Harness, until};

const ADMIN: &str = "admin-key-0123456789";
const WAIT: Duration = Duration::from_secs(60);

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One HTTP/1.1 request; (status, body). `None` while nothing listens.
fn http(
    port: u16,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    if let Some(key) = key {
        request.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        text = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// The value of an unlabelled gauge in `/metrics`.
fn gauge(port: u16, name: &str) -> Option<f64> {
    let (_, text) = http(port, "GET", "/metrics", None, None)?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
}

struct Running {
    child: Child,
    stderr: tokio::task::JoinHandle<String>,
    port: u16,
}

impl Running {
    fn start(mut cmd: tokio::process::Command, port: u16) -> Self {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spyder starts");
        let mut pipe = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text).await;
            String::from_utf8_lossy(&text).into_owned()
        });
        Self {
            child,
            stderr,
            port,
        }
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("pid").to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    async fn stop(mut self) -> (Option<i32>, String) {
        self.signal("-TERM");
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exits")
            .expect("status");
        (status.code(), self.stderr.await.expect("stderr"))
    }

    fn get(&self, path: &str) -> Option<(u16, String)> {
        http(self.port, "GET", path, Some(ADMIN), None)
    }

    fn patch(&self, body: &str) -> (u16, String) {
        http(
            self.port,
            "PATCH",
            "/api/v1/config",
            Some(ADMIN),
            Some(body),
        )
        .expect("PATCH answered")
    }
}

/// A config file with an admin key; `extra` is appended (YAML).
fn config_file(h: &Harness, extra: &str) -> std::path::PathBuf {
    let path = h.path("spyder.yaml");
    std::fs::write(
        &path,
        format!("api:\n  keys:\n    - key: {ADMIN}\n      name: ops\n      scope: admin\n{extra}"),
    )
    .expect("config file");
    path
}

/// A file-mode probe on `h`'s world with the ops listener on `port`.
fn probe(h: &Harness, port: u16, config: &std::path::Path, extra: &[&str]) -> Running {
    let mut cmd = h.spyder();
    cmd.arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg("-continuous")
        .args(extra);
    Running::start(cmd, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_follows_patches_and_bad_patches_change_nothing() {
    // Slow sites: every root page takes a while, so busy workers stay busy.
    let h = Harness::new(0x5eed_0b01, 400).await;
    let config = config_file(&h, "");
    let port = free_port();
    // The world flags set -concurrency=64; this later flag wins.
    let run = probe(
        &h,
        port,
        &config,
        &[
            "-concurrency=4",
            "-set=crawling.rate_per_host=0.2",
            "-set=crawling.rate_burst=1",
        ],
    );
    until("the API", || run.get("/api/v1/stats")).await;
    let active = until("4 busy workers", || {
        gauge(port, "spyder_active_workers").filter(|n| *n >= 1.0)
    })
    .await;
    assert!(active <= 4.0, "{active} active with concurrency 4");

    let (status, body) = run.patch(r#"{"crawling":{"concurrency":64}}"#);
    assert_eq!(status, 200, "{body}");
    until("more than 4 busy workers", || {
        gauge(port, "spyder_active_workers").filter(|n| *n > 4.0)
    })
    .await;
    let (status, body) = run.patch(r#"{"concurrency":4}"#);
    assert_eq!(status, 200, "alias accepted: {body}");
    until("back to at most 4 busy workers", || {
        gauge(port, "spyder_active_workers").filter(|n| *n <= 4.0)
    })
    .await;
    let stats: serde_json::Value =
        serde_json::from_str(&run.get("/api/v1/stats").expect("stats").1).expect("json");
    assert_eq!(stats["workers"]["target"], 4);

    // Tier 3: 409 with the exact body, and nothing changes.
    let before = run.get("/api/v1/config").expect("config");
    let (status, body) = run.patch(
        r#"{"dedup":{"ttl":"1h"},"redis":{"addr":"127.0.0.1:1"},"crawling":{"concurrency":8}}"#,
    );
    assert_eq!(status, 409);
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        v,
        serde_json::json!({"code":"APPLY_ERROR","error":"fields require restart: redis.addr, dedup.ttl"})
    );
    assert_eq!(run.get("/api/v1/config").expect("config"), before);
    // Invalid: 400, nothing changes.
    let (status, body) = run.patch(r#"{"crawling":{"concurrency":0,"rate_burst":5}}"#);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("INVALID_CONFIG"), "{body}");
    assert_eq!(run.get("/api/v1/config").expect("config"), before);
    // Secrets never shown.
    assert!(!before.1.contains(ADMIN), "{}", before.1);
    // No key: 401.
    let (status, _) = http(port, "GET", "/api/v1/config", None, None).expect("answer");
    assert_eq!(status, 401);
    promtool_accepts(
        &http(port, "GET", "/metrics", None, None)
            .expect("metrics")
            .1,
    );

    let (code, stderr) = run.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains(ADMIN), "the key was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_file_refuses_a_broken_one_and_logging_changes_live() {
    let h = Harness::new(0x5eed_0b02, 60).await;
    let config = config_file(&h, "");
    let port = free_port();
    // Paused at once through the API, so the run stays alive while we reconfigure.
    let run = probe(&h, port, &config, &["-concurrency=2"]);
    until("the API", || run.get("/api/v1/stats")).await;
    let (status, _) =
        http(port, "POST", "/api/v1/control/pause", Some(ADMIN), Some("")).expect("pause answered");
    assert_eq!(status, 200);

    let ua = |run: &Running| -> String {
        let v: serde_json::Value =
            serde_json::from_str(&run.get("/api/v1/config").expect("config").1).expect("json");
        v["config"]["ua"].as_str().unwrap_or_default().to_owned()
    };
    // A broken file: nothing changes, the error is logged.
    std::fs::write(&config, "api: [unclosed\n").expect("write");
    run.signal("-HUP");
    until("the failed reload counted", || {
        let (_, text) = http(port, "GET", "/metrics", None, None)?;
        text.lines()
            .any(|l| l.starts_with(r#"spyder_config_reloads_total{result="failure"} 1"#))
            .then_some(())
    })
    .await;
    assert_eq!(
        ua(&run),
        "SPYDERProbe/1.0 (+https://github.com/gustycube/spyder)"
    );
    // The refusal shows in the stats (the dashboard's config_error state) until a
    // reload succeeds.
    let config_error = |run: &Running| -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&run.get("/api/v1/stats").expect("stats").1).expect("json");
        v["config_error"].clone()
    };
    // Set once the reload returns, a moment after it was counted: wait for it.
    until("the refusal in the stats", || {
        config_error(&run)
            .as_str()
            .is_some_and(|e| e.contains("spyder.yaml"))
            .then_some(())
    })
    .await;
    // A good file: applied.
    config_file(&h, "ua: ReloadedUA/2.0\nlogging:\n  level: debug\n");
    run.signal("-HUP");
    until("the reloaded ua", || {
        (ua(&run) == "ReloadedUA/2.0").then_some(())
    })
    .await;
    until("the refusal cleared by a good reload", || {
        config_error(&run).is_null().then_some(())
    })
    .await;

    // logging.level is live: debug lines appear once resumed.
    let (status, _) = http(
        port,
        "POST",
        "/api/v1/control/resume",
        Some(ADMIN),
        Some(""),
    )
    .expect("resume answered");
    assert_eq!(status, 200);
    until("a finished task", || {
        let v: serde_json::Value = serde_json::from_str(&run.get("/api/v1/stats")?.1).ok()?;
        (v["tasks"]["ok"].as_u64()? > 0).then_some(())
    })
    .await;
    let (code, stderr) = run.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("config reload failed, nothing changed") && stderr.contains("spyder.yaml"),
        "broken file not reported:\n{stderr}"
    );
    assert!(
        stderr.contains("\"level\":\"DEBUG\""),
        "no debug line after the reload"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_the_dedup_redis_and_ready_turns_503_at_shutdown() {
    // Black holes: every task hangs until tls_timeout, so the run (2 workers) lasts
    // and a shutdown has tasks to wait for.
    let h = Harness::with_options(
        0x5eed_0b03,
        200,
        spyder_testkit::world::WorldOptions {
            black_holes: 1.0,
            ..Default::default()
        },
    )
    .await;
    let mut redis = RedisServer::start().expect("redis");
    let config = config_file(&h, "");
    let port = free_port();
    let mut cmd = h.spyder();
    cmd.arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg("-concurrency=2")
        .arg("-set=crawling.tls_timeout=10s")
        .env("REDIS_ADDR", redis.addr());
    let run = Running::start(cmd, port);
    let health = |want: u16| {
        move || {
            let (status, body) = http(port, "GET", "/health", None, None)?;
            (status == want).then_some(body)
        }
    };
    let body = until("healthy", health(200)).await;
    assert!(body.contains("Redis connection OK"), "{body}");
    let (status, _) = http(port, "GET", "/ready", None, None).expect("ready");
    assert_eq!(status, 200);

    redis.kill().expect("kill redis");
    let body = until("unhealthy", health(503)).await;
    assert!(body.contains("Redis connection failed"), "{body}");
    redis.restart().expect("redis back");
    until("healthy again", health(200)).await;

    // Shutdown: /ready is 503 from its start (the listener lives until the end).
    run.signal("-TERM");
    let (status, body) = until("ready to answer 503", || {
        http(port, "GET", "/ready", None, None).filter(|(status, _)| *status != 200)
    })
    .await;
    assert_eq!(status, 503, "{body}");
    let (code, stderr) = run.stop_after_signal().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_metrics_port_exits_1() {
    let h = Harness::new(0x5eed_0b04, 1).await;
    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = busy.local_addr().expect("addr").port();
    let mut cmd = h.spyder();
    cmd.arg(format!("-metrics_addr=127.0.0.1:{port}"));
    let run = support::finish(cmd, WAIT).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr.contains("telemetry.metrics_addr"),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_metrics_port_busy_warns_and_a_file_run_goes_on() {
    // SPEC §4 B-23 as amended by issue #13: Prometheus' own :9090 busy must not end a
    // one-shot file run that never asked for the endpoints.
    let h = Harness::new(0x5eed_0b05, 3).await;
    // The default address is every interface's :9090; held here, or by something
    // else on the machine: either way it is busy for the run below.
    let _busy = match TcpListener::bind("0.0.0.0:9090") {
        Ok(listener) => Some(listener),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => None,
        Err(e) => panic!("cannot bind :9090: {e}"),
    };
    let flags: Vec<String> = support::world_flags(&h.world, &h.roots)
        .into_iter()
        .filter(|f| !f.starts_with("-metrics_addr"))
        .collect();
    let mut cmd = support::spyder();
    cmd.arg(format!("-domains={}", h.domains.display()))
        .args(&flags);
    let run = support::finish(cmd, WAIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the default telemetry.metrics_addr is not available"),
        "{}",
        run.stderr
    );
    support::assert_same_edges(
        &support::batch_edges(&support::json_batches(&run.stdout)),
        &h.world.expected_edges(),
    );

    // In continuous mode the endpoints are how the run is watched: still exit 1.
    let mut cmd = support::spyder();
    cmd.arg(format!("-domains={}", h.domains.display()))
        .args(&flags)
        .arg("-continuous");
    let run = support::finish(cmd, WAIT).await;
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("telemetry.metrics_addr: cannot listen on :9090"),
        "{}",
        run.stderr
    );
}

/// `promtool check metrics` on a scrape, when promtool is installed (`.ci/run`
/// installs it); every exported metric must pass its lint.
fn promtool_accepts(scrape: &str) {
    assert!(scrape.contains("spyder_tasks_total"), "{scrape}");
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        // Under CI a missing promtool is a failure: .ci/run installs it.
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not on PATH under CI: .ci/run installs it (Debian package prometheus)"
        );
        eprintln!("promtool not on PATH: `promtool check metrics` skipped");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(scrape.as_bytes())
        .expect("write scrape");
    let out = child.wait_with_output().expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Running {
    async fn stop_after_signal(mut self) -> (Option<i32>, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("exits")
            .expect("status");
        (status.code(), self.stderr.await.expect("stderr"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_format_and_file_switch_mid_run_without_losing_a_record() {
    let h = Harness::new(0x5eed_0b05, 60).await;
    let config = config_file(&h, "");
    let port = free_port();
    let (a, b) = (h.path("a.json"), h.path("b.jsonl"));
    let mut cmd = h.spyder();
    cmd.arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg("-concurrency=2")
        .arg(format!("-output={}", a.display()));
    let run = Running::start(cmd, port);
    until("a finished task", || {
        let v: serde_json::Value = serde_json::from_str(&run.get("/api/v1/stats")?.1).ok()?;
        (v["tasks"]["ok"].as_u64()? > 0).then_some(())
    })
    .await;
    let post = |path: &str| http(port, "POST", path, Some(ADMIN), Some("")).map(|r| r.0);
    assert_eq!(post("/api/v1/control/pause"), Some(200));
    let (status, body) = run.patch(&format!(
        r#"{{"output":{{"format":"jsonl","file":"{}"}}}}"#,
        b.display()
    ));
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("json");
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .filter_map(|w| w.as_str())
        .collect();
    assert_eq!(
        warnings,
        [
            "changing output format mid-run may cause mixed format output",
            "changing output file mid-run splits output across files"
        ]
    );
    assert_eq!(post("/api/v1/control/resume"), Some(200));
    let (code, stderr) = run.stop_after_signal().await;
    assert_eq!(code, Some(0), "{stderr}");

    let mut edges = support::batch_edges(&support::json_batches(&std::fs::read(&a).expect("a")));
    let before = edges.len();
    edges.extend(support::jsonl_edges(&std::fs::read(&b).expect("b")));
    assert!(before > 0 && edges.len() > before, "both files hold edges");
    support::assert_same_edges(&edges, &h.world.expected_edges());
}

/// `POST /api/v1/domains/bulk` in queue mode: one `LPUSH` per 1,000 hosts of items as
/// `seed` writes them, normalised, and a paused probe leaves them queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_domains_in_queue_mode_are_one_lpush_of_seed_items() {
    let h = Harness::new(0x5eed_0b07, 3).await;
    let redis = RedisServer::start().expect("redis");
    let config = config_file(&h, "");
    let port = free_port();
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .env("REDIS_QUEUE_ADDR", redis.addr());
    let run = Running::start(cmd, port);
    until("the API to pause the probe", || {
        http(port, "POST", "/api/v1/control/pause", Some(ADMIN), Some(""))
            .filter(|(status, _)| *status == 200)
    })
    .await;

    // 2,500 valid entries (three in odd forms) and one invalid: 1,000 hosts per LPUSH.
    let mut entries: Vec<String> = vec![
        "bulk-a.example".into(),
        "https://bulk-b.example/x".into(),
        "BULK-C.example.".into(),
        "not a host".into(),
    ];
    let mut want: Vec<String> = vec![
        "bulk-a.example".into(),
        "bulk-b.example".into(),
        "bulk-c.example".into(),
    ];
    for i in 0..2_497 {
        entries.push(format!("h{i}.bulk.example"));
        want.push(format!("h{i}.bulk.example"));
    }
    want.sort();
    let body = serde_json::to_string(&entries).expect("JSON body");
    let lpush_before = support::command_calls(&redis, "lpush");
    let (status, reply) = http(
        port,
        "POST",
        "/api/v1/domains/bulk",
        Some(ADMIN),
        Some(&body),
    )
    .expect("bulk answered");
    assert!((200..300).contains(&status), "{status} {reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
    assert_eq!(reply["accepted"], 2_500, "{reply}");
    assert_eq!(reply["rejected"], 1, "{reply}");
    assert_eq!(support::command_calls(&redis, "lpush") - lpush_before, 3);

    // A BLMOVE already waiting when the pause came may have moved one item into
    // :processing (its lease is given by the reaper later): look in both lists.
    let mut hosts = Vec::new();
    for list in ["spyder:queue", "spyder:queue:processing"] {
        let items = redis.command(&["LRANGE", list, "0", "-1"]).expect("LRANGE");
        // The raw RESP reply: `*n`, then `$len` and the item on its own line.
        for line in items.lines().filter(|l| l.starts_with('{')) {
            let item: serde_json::Value = serde_json::from_str(line).expect("a JSON item");
            assert_eq!(item["attempt"], 0, "{line}");
            assert!(item["ts"].as_i64().is_some_and(|ts| ts > 0), "{line}");
            assert!(
                item.get("via").is_none(),
                "fresh items, not discoveries: {line}"
            );
            hosts.push(item["host"].as_str().expect("host").to_owned());
        }
    }
    hosts.sort();
    assert_eq!(hosts, want, "one item per accepted host");
    let (code, stderr) = run.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_shows_a_failing_ingest_and_ready_follows_the_queue_redis() {
    // SPEC §3.8 and B-23 through the binary: a failing ingest degrades /health (the
    // probe still works); a queue Redis outage makes /ready and /health 503.
    use spyder_testkit::ingest::{IngestOptions, IngestServer};
    let h = Harness::new(0x5eed_0b07, 20).await;
    let mut redis = RedisServer::start().expect("redis");
    for host in h.world.hosts() {
        let host = spyder_model::HostName::from_input(&host).expect("valid");
        let item = spyder_queue::QueueItem::new(host, 1_723_300_000);
        support::int(
            &redis
                .command(&["LPUSH", "spyder:queue", item.raw()])
                .expect("lpush"),
        );
    }
    let ingest = IngestServer::start(IngestOptions::plain())
        .await
        .expect("ingest");
    ingest.go_down().await;
    let port = free_port();
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", redis.addr())
        .arg(format!("-ingest={}", ingest.url()))
        .arg(format!("-spool_dir={}", h.path("spool").display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg("-batch_flush_sec=1")
        .arg("-set=crawling.shutdown_grace=1s");
    let run = Running::start(cmd, port);
    let health_says = |want: u16, text: &'static str| {
        move || {
            let (status, body) = http(port, "GET", "/health", None, None)?;
            (status == want && body.contains(text)).then_some(body)
        }
    };
    let body = until("ingest degraded", health_says(200, "ingest failing")).await;
    assert!(body.contains("degraded"), "{body}");
    let (status, _) = http(port, "GET", "/ready", None, None).expect("ready");
    assert_eq!(
        status, 200,
        "a failing ingest does not make the probe unready"
    );

    redis.kill().expect("kill redis");
    let body = until(
        "queue Redis unhealthy",
        health_says(503, "Redis connection failed"),
    )
    .await;
    assert!(body.contains("redis_queue"), "{body}");
    let (status, body) = until("ready 503", || {
        http(port, "GET", "/ready", None, None).filter(|(status, _)| *status == 503)
    })
    .await;
    assert_eq!(status, 503, "{body}");
    redis.restart().expect("redis back");
    until("ready again", || {
        http(port, "GET", "/ready", None, None).filter(|(status, _)| *status == 200)
    })
    .await;
    let (code, stderr) = run.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stall_degrades_the_health_progress_check() {
    // P-8 through /health: every host hangs, nothing finishes within stall_after.
    let h = Harness::with_options(
        0x5eed_0b08,
        5,
        spyder_testkit::world::WorldOptions {
            black_holes: 1.0,
            ..Default::default()
        },
    )
    .await;
    let port = free_port();
    let mut cmd = h.spyder();
    cmd.arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg("-set=crawling.tls_timeout=60s")
        .arg("-set=crawling.task_timeout=60s")
        .arg("-set=telemetry.stall_after=1s")
        .arg("-set=crawling.shutdown_grace=1s");
    let run = Running::start(cmd, port);
    let body = until("progress degraded", || {
        let (status, body) = http(port, "GET", "/health", None, None)?;
        (status == 200 && body.contains("no task finished within telemetry.stall_after"))
            .then_some(body)
    })
    .await;
    assert!(body.contains("degraded"), "{body}");
    let (code, stderr) = run.stop().await;
    assert_eq!(code, Some(0), "{stderr}");
}

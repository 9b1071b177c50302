//! The dashboard through the real binary (issue #14 step 2): `GET /dashboard` serves
//! the static page, and `GET /api/v1/events` with a read key streams one-second
//! snapshots of a running file-mode crawl whose stats show the tasks progressing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support;
use crate::support::{Harness, until};

const READ: &str = "read-key-0123456789";
const WAIT: Duration = Duration::from_secs(60);

/// Total tasks (`ok` + `error`) in a snapshot's stats.
fn tasks(snapshot: &Value) -> u64 {
    let t = &snapshot["stats"]["tasks"];
    t["ok"].as_u64().unwrap_or(0) + t["error"].as_u64().unwrap_or(0)
}

/// Opens `GET /api/v1/events`; the stream after the response head, and the head.
async fn open_events(port: u16, key: Option<&str>) -> (TcpStream, String, Vec<u8>) {
    let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(("127.0.0.1", port)))
        .await
        .expect("connect in time")
        .expect("connect");
    let auth = key
        .map(|k| format!("Authorization: Bearer {k}\r\n"))
        .unwrap_or_default();
    stream
        .write_all(format!("GET /api/v1/events HTTP/1.1\r\nHost: x\r\n{auth}\r\n").as_bytes())
        .await
        .expect("request");
    let mut raw = Vec::new();
    let split = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut buf = [0u8; 8192];
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .expect("head in time")
            .expect("read");
        assert!(n > 0, "closed before the head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let rest = raw[split + 4..].to_vec();
    (stream, head, rest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_stream_snapshots_of_a_running_crawl() {
    let h = Harness::new(0x5eed_da5b, 300).await;
    let config = h.path("spyder.yaml");
    std::fs::write(
        &config,
        format!("api:\n  keys:\n    - key: {READ}\n      name: viewer\n      scope: read\n"),
    )
    .expect("config file");
    let port = support::free_port();
    let mut cmd = h.spyder();
    // Slow enough to still be crawling across several snapshots; continuous keeps
    // it running until SIGTERM.
    cmd.arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .args([
            "-continuous",
            "-concurrency=2",
            "-set=dashboard.history_size=50",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut pipe = child.stderr.take().expect("stderr");
    let stderr = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = pipe.read_to_end(&mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    until("the ops listener", || support::get(port, "/live", None)).await;

    // The page: static, no key.
    let page = support::get(port, "/dashboard", None).expect("page");
    assert!(page.contains("/dashboard/app.js"), "{page}");

    // No key, no data.
    let (_, head, _) = open_events(port, None).await;
    assert!(head.starts_with("HTTP/1.1 401"), "{head}");

    let (mut stream, head, mut raw) = open_events(port, Some(READ)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{head}"
    );
    // Read snapshots until two of them show tasks progressing.
    let deadline = Instant::now() + WAIT;
    let mut snapshots: Vec<Value> = Vec::new();
    let progressed = 'read: loop {
        // Each event is one chunk, so `data:` lines are whole between chunk sizes.
        while let Some(end) = raw.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&raw[..end]).into_owned();
            raw.drain(..=end);
            if let Some(data) = line.strip_prefix("data: ") {
                let snapshot: Value = serde_json::from_str(data).expect("snapshot JSON");
                assert_eq!(snapshot["stats"]["queue"]["mode"], "memory", "{snapshot}");
                assert!(snapshot["state"].is_string(), "{snapshot}");
                if let Some(earlier) = snapshots.iter().find(|s| tasks(s) < tasks(&snapshot)) {
                    assert!(earlier["seq"].as_u64() < snapshot["seq"].as_u64());
                    break 'read (earlier.clone(), snapshot);
                }
                snapshots.push(snapshot);
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no progress in {} snapshots",
            snapshots.len()
        );
        let mut buf = [0u8; 16 * 1024];
        let n = tokio::time::timeout(left, stream.read(&mut buf))
            .await
            .expect("snapshots in time")
            .expect("read");
        assert!(n > 0, "the stream ended early");
        raw.extend_from_slice(&buf[..n]);
    };
    let (earlier, later) = progressed;
    assert!(tasks(&later) > tasks(&earlier));
    assert_eq!(later["stats"]["workers"]["target"], 2, "{later}");
    assert!(later["stats"]["outcomes"].is_object(), "{later}");
    // Task times and why tasks ended, for the page's panels.
    let p50 = later["stats"]["task_ms"]["p50"]
        .as_u64()
        .expect("a p50 once tasks ran");
    let p99 = later["stats"]["task_ms"]["p99"]
        .as_u64()
        .unwrap_or(u64::MAX);
    assert!(p50 <= p99, "{later}");
    assert!(later["stats"]["causes"].is_array(), "{later}");

    // SIGTERM: the run stops in time with the stream open, and the stream ends.
    let pid = child.id().expect("pid").to_string();
    support::signal(child.id().expect("pid"), "-TERM");
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("spyder {pid} exits in time"))
        .expect("status");
    let stderr = stderr.await.expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains(READ), "the key was logged");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("the stream ends with the run");
}

//! Queue mode against a real redis-server: leases, acks after delivery, shared Redis
//! dedup, and a clean stop (SPEC §2.3, §3.8, §3.9).

use std::process::Stdio;
use std::time::{Duration, Instant};

use spyder_model::HostName;
use spyder_queue::QueueItem;
use spyder_testkit::redis::RedisServer;

use crate::support;
use crate::support::{Harness, assert_same_edges, batch_edges, int, json_batches};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_mode_crawls_every_item_acks_it_and_stops_on_sigterm() {
    let h = Harness::new(0x5eed_0601, 40).await;
    let redis = RedisServer::start().expect("redis-server");
    let key = "spyder:queue";
    for host in h.world.hosts() {
        let host = HostName::from_input(&host).expect("valid");
        let item = QueueItem::new(host, 1_723_300_000);
        int(&redis.command(&["LPUSH", key, item.raw()]).expect("lpush"));
    }
    // A poison item goes to :dead, not to a worker.
    redis.command(&["LPUSH", key, "not json"]).expect("lpush");

    let out_file = h.path("graph.json");
    let mut cmd = support::spyder();
    cmd.args(support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", redis.addr())
        .env("REDIS_ADDR", redis.addr())
        .arg("-batch_flush_sec=1")
        .arg(format!("-output={}", out_file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spyder starts");

    let deadline = Instant::now() + Duration::from_secs(60);
    let drained = loop {
        let pending = int(&redis.command(&["LLEN", key]).expect("llen"));
        let processing = int(&redis
            .command(&["LLEN", "spyder:queue:processing"])
            .expect("llen"));
        if pending == 0 && processing == 0 {
            break None;
        }
        if Instant::now() > deadline {
            break Some(format!("{pending} pending, {processing} processing"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let pid = child.id().expect("pid").to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(drained, None, "queue not drained; stderr:\n{stderr}");
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(
        stderr.contains("redis queue enabled") && stderr.contains("redis dedupe enabled"),
        "{stderr}"
    );

    let written = std::fs::read(&out_file).expect("output file");
    assert_same_edges(
        &batch_edges(&json_batches(&written)),
        &h.world.expected_edges(),
    );
    assert_eq!(
        int(&redis
            .command(&["ZCARD", "spyder:queue:leases"])
            .expect("zcard")),
        0
    );
    assert_eq!(
        int(&redis.command(&["LLEN", "spyder:queue:dead"]).expect("llen")),
        1
    );
    // Dedup lives in time-window sets only: no per-entry keys, no old `seen:*` keys.
    let keys = redis.command(&["KEYS", "*seen*"]).expect("keys");
    assert!(!keys.contains("\r\nseen:"), "{keys}");
    assert!(keys.contains("spyder:seen:"), "{keys}");
}

/// `GET /ready` answered 200.
fn ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if stream
        .write_all(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.starts_with("HTTP/1.1 200")
}

/// PEM of one DER item.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_addresses_connect_over_tls() {
    use spyder_testkit::pki::{CertKind, TestCa};
    let dir = tempfile::tempdir().expect("dir");
    let ca = TestCa::new();
    let leaf = ca.issue(&["localhost"], CertKind::Valid);
    let (cert, key, roots) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, pem("CERTIFICATE", leaf.leaf())).expect("cert");
    std::fs::write(&key, pem("PRIVATE KEY", leaf.key.secret_der())).expect("key");
    std::fs::write(&roots, ca.root_pem()).expect("roots");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut redis = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            "0",
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--tls-port")
        .arg(port.to_string())
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .args(["--tls-auth-clients", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server with TLS");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "TLS redis-server did not listen");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // rustls-native-certs reads SSL_CERT_FILE: the test CA is the only root.
    let ops = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut cmd = support::spyder();
    cmd.env("REDIS_QUEUE_ADDR", format!("rediss://localhost:{port}"))
        .env("REDIS_ADDR", format!("rediss://localhost:{port}"))
        .env("SSL_CERT_FILE", &roots)
        .arg(format!("-metrics_addr=127.0.0.1:{ops}"))
        .arg("-log_format=json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spyder starts");
    let mut pipe = child.stderr.take().expect("stderr");
    let reader = tokio::spawn(async move {
        let mut text = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut pipe, &mut text).await;
        String::from_utf8_lossy(&text).into_owned()
    });
    // Ready means the redis_queue check's PING went through over TLS.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if ready(ops) {
            break;
        }
        assert!(Instant::now() < deadline, "never ready over rediss://");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("exits")
        .expect("status");
    let stderr = reader.await.expect("stderr");
    let _ = redis.start_kill();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("redis queue enabled") && stderr.contains("redis dedupe enabled"),
        "{stderr}"
    );
}

//! Queue mode against a real redis-server: leases, acks after delivery, shared Redis
//! dedup, and a clean stop (SPEC §2.3, §3.8, §3.9).

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use spyder_model::HostName;
use spyder_queue::QueueItem;
use spyder_testkit::redis::RedisServer;
use support::{Harness, assert_same_edges, batch_edges, json_batches};

/// The integer of a RESP `:n` reply.
fn int(reply: &str) -> i64 {
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("not an integer reply: {reply:?}"))
}

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

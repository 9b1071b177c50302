//! The fleet heartbeat (issue #14 step 3): probes of one Redis queue write
//! `<key>:probes` every 5 s, and each lists every probe in its stats, with its
//! state and its advertised ops address; a probe that stops says so.

use std::process::Stdio;
use std::time::Duration;

use spyder_testkit::redis::RedisServer;

use crate::support::{self, Harness};

const READ_KEY: &str = "fleet-read-key-0123456789";
const LIMIT: Duration = Duration::from_secs(60);

/// The `fleet` array of a probe's `GET /api/v1/stats`, by probe id.
fn fleet(port: u16) -> Vec<serde_json::Value> {
    support::get(port, "/api/v1/stats", Some(READ_KEY))
        .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|stats| stats["fleet"].as_array().cloned())
        .unwrap_or_default()
}

fn member<'a>(fleet: &'a [serde_json::Value], id: &str) -> Option<&'a serde_json::Value> {
    fleet.iter().find(|m| m["probe_id"] == id)
}

/// Waits (bounded) until `ready` holds for probe `port`'s fleet.
async fn until_fleet(
    port: u16,
    what: &str,
    ready: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let now = fleet(port);
        if ready(&now) {
            return now;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: {now:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_probe_of_a_queue_lists_the_fleet_and_a_stopped_probe_says_so() {
    let h = Harness::new(0x5eed_1410, 10).await;
    let redis = RedisServer::start().expect("redis-server");
    support::seed_queue(&redis, &h.world.hosts());
    let config = h.path("probe.yaml");
    std::fs::write(
        &config,
        format!("api:\n  keys:\n    - key: {READ_KEY}\n      name: dash\n      scope: read\n"),
    )
    .expect("config");
    let start = |id: &str, port: u16| {
        let mut cmd = h.queue_probe(&redis, &config, id, port);
        cmd.stderr(Stdio::piped());
        cmd.spawn().expect("spyder starts")
    };
    let (port_a, port_b) = (support::free_port(), support::free_port());
    let mut a = start("probe-a", port_a);
    let b = start("probe-b", port_b);

    let seen = until_fleet(port_a, "both probes listed", |f| {
        ["probe-a", "probe-b"]
            .iter()
            .all(|id| member(f, id).is_some_and(|m| m["gone"] == false))
    })
    .await;
    let other = member(&seen, "probe-b").expect("probe-b");
    assert_eq!(other["ops_addr"], format!("127.0.0.1:{port_b}"), "{other}");
    assert!(
        ["crawling", "stalled"].contains(&other["state"].as_str().unwrap_or("")),
        "{other}"
    );
    assert_eq!(other["version"], env!("CARGO_PKG_VERSION"));
    // The other probe sees the same fleet.
    until_fleet(port_b, "probe-b lists probe-a", |f| {
        member(f, "probe-a").is_some()
    })
    .await;

    // A refused reload shows in the fleet as config_error (only probe-b reloads).
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, "api: [unclosed\n").expect("bad config");
    support::signal(b.id().expect("pid"), "-HUP");
    until_fleet(port_a, "probe-b in config_error", |f| {
        member(f, "probe-b").is_some_and(|m| m["state"] == "config_error")
    })
    .await;
    std::fs::write(&config, good).expect("good config");

    // A probe that stops on purpose is "stopped", not gone.
    support::signal(b.id().expect("pid"), "-TERM");
    let out = tokio::time::timeout(LIMIT, b.wait_with_output())
        .await
        .expect("probe-b exits")
        .expect("status");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until_fleet(port_a, "probe-b stopped", |f| {
        member(f, "probe-b").is_some_and(|m| m["state"] == "stopped" && m["gone"] == false)
    })
    .await;
    let hash = redis
        .command(&["HLEN", "spyder:queue:probes"])
        .expect("hlen");
    assert_eq!(support::int(&hash), 2, "one heartbeat per probe");

    support::signal(a.id().expect("pid"), "-TERM");
    let status = tokio::time::timeout(LIMIT, a.wait())
        .await
        .expect("probe-a exits")
        .expect("status");
    assert!(status.success());
}

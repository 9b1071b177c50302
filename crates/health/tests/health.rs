//! Health endpoints over real HTTP: /live, /ready, /health, binding.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use serde_json::json;
use spyder_health::{CheckOutcome, Control, FnCheck, HealthError, OpsServer, OpsState, Readiness};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::support;
use crate::support::{FakeControl, Harness};

fn assert_timestamp(value: &serde_json::Value) {
    let text = value.as_str().expect("timestamp is a string");
    let parsed = OffsetDateTime::parse(text, &Rfc3339).expect("RFC 3339");
    assert_eq!(parsed.offset(), time::UtcOffset::UTC);
    assert!(text.ends_with('Z'), "{text}");
}

/// A check whose outcome a test switches: 0 healthy, 1 degraded, 2 unhealthy.
fn switchable(
    name: &'static str,
    gates: bool,
    state: &Arc<AtomicU8>,
) -> FnCheck<impl Fn() -> std::future::Ready<CheckOutcome> + Send + Sync + 'static> {
    let state = Arc::clone(state);
    FnCheck::new(name, gates, move || {
        std::future::ready(match state.load(Ordering::SeqCst) {
            0 => CheckOutcome::healthy(""),
            1 => CheckOutcome::degraded(format!("{name} degraded")),
            _ => CheckOutcome::unhealthy(format!("{name} failed")),
        })
    })
}

#[tokio::test]
async fn live_always_answers() {
    let h = Harness::start().await;
    let reply = h.get("/live", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["alive"], true);
    assert_timestamp(&body["timestamp"]);
    assert_eq!(body.as_object().unwrap().len(), 2);
    h.readiness.begin_shutdown();
    assert_eq!(h.get("/live", None).await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn ready_follows_mark_ready_shutdown_and_gating_checks() {
    let queue = Arc::new(AtomicU8::new(0));
    let ingest = Arc::new(AtomicU8::new(2));
    let control: Arc<dyn Control> = Arc::new(FakeControl::default());
    let readiness = Readiness::new();
    let state = OpsState::builder(support::metadata(), control)
        .readiness(readiness.clone())
        .check(switchable("redis_queue", true, &queue))
        .check(switchable("ingest", false, &ingest))
        .check_interval(Duration::from_millis(20))
        .build();
    let server = OpsServer::bind("127.0.0.1:0").await.unwrap();
    let addr = server.local_addr();
    let stop = tokio_util::sync::CancellationToken::new();
    let task = server.serve(state, stop.clone());
    let get_ready = || async move {
        support::raw_request(
            addr,
            b"GET /ready HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_vec(),
        )
        .await
    };

    // Not marked ready yet.
    let reply = get_ready().await;
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert_eq!(body["ready"], false);
    assert_timestamp(&body["timestamp"]);
    assert_eq!(
        body["metadata"],
        json!({"probe": "test-probe", "run": "run-1", "version": "9.9.9"})
    );

    // Ready; an unhealthy check that does not gate readiness does not matter.
    readiness.mark_ready();
    let reply = get_ready().await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["ready"], true);

    // The queue Redis goes down: 503 until it is back.
    queue.store(2, Ordering::SeqCst);
    support::eventually("/ready to answer 503", || async {
        get_ready().await.status == 503
    })
    .await;
    queue.store(1, Ordering::SeqCst);
    support::eventually("/ready to answer 200 again", || async {
        get_ready().await.status == 200
    })
    .await;

    // From the start of shutdown on: 503.
    readiness.begin_shutdown();
    let reply = get_ready().await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["ready"], false);

    stop.cancel();
    tokio::time::timeout(support::WAIT, task)
        .await
        .expect("server stops")
        .expect("server task");
}

#[tokio::test]
async fn health_reports_the_worst_check() {
    let redis = Arc::new(AtomicU8::new(0));
    let ingest = Arc::new(AtomicU8::new(0));
    let h = Harness::start_with(|b| {
        b.check(switchable("redis", false, &redis))
            .check(switchable("ingest", false, &ingest))
    })
    .await;

    let reply = h.get("/health", None).await;
    assert_eq!(reply.status, 200);
    let body = reply.json();
    assert_eq!(body["status"], "healthy");
    assert_timestamp(&body["timestamp"]);
    assert_eq!(
        body["metadata"],
        json!({"probe": "test-probe", "run": "run-1", "version": "9.9.9"})
    );
    let checks = body["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[0]["name"], "redis");
    assert_eq!(checks[1]["name"], "ingest");
    for check in checks {
        assert_eq!(check["status"], "healthy");
        // An empty message is omitted.
        assert!(check.get("message").is_none(), "{check}");
        assert!(check["duration_ms"].is_u64(), "{check}");
        assert_timestamp(&check["last_checked"]);
        assert_eq!(check.as_object().unwrap().len(), 4, "{check}");
    }

    // Degraded is still 200.
    ingest.store(1, Ordering::SeqCst);
    support::eventually("/health to turn degraded", || async {
        let reply = h.get("/health", None).await;
        reply.status == 200 && reply.json()["status"] == "degraded"
    })
    .await;
    let body = h.get("/health", None).await.json();
    assert_eq!(body["checks"][1]["message"], "ingest degraded");
    assert_eq!(body["checks"][0]["status"], "healthy");

    // One unhealthy check: 503, status unhealthy.
    redis.store(2, Ordering::SeqCst);
    support::eventually("/health to answer 503", || async {
        h.get("/health", None).await.status == 503
    })
    .await;
    let reply = h.get("/health", None).await;
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"][0]["status"], "unhealthy");
    assert_eq!(body["checks"][0]["message"], "redis failed");
    // Not a gating check: still ready.
    assert_eq!(h.get("/ready", None).await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn a_check_that_hangs_is_unhealthy_after_the_timeout() {
    let h = Harness::start_with(|b| {
        b.check(FnCheck::new("progress", false, || {
            std::future::pending::<CheckOutcome>()
        }))
        .check(FnCheck::new("redis", false, || async {
            CheckOutcome::healthy("Redis connection OK")
        }))
        .check_timeout(Duration::from_millis(100))
    })
    .await;
    let reply = h.get("/health", None).await;
    assert_eq!(reply.status, 503);
    let body = reply.json();
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["checks"][0]["name"], "progress");
    assert_eq!(body["checks"][0]["status"], "unhealthy");
    assert_eq!(body["checks"][0]["message"], "check timed out after 100ms");
    assert_eq!(body["checks"][1]["status"], "healthy");
    assert_eq!(body["checks"][1]["message"], "Redis connection OK");
    h.shutdown().await;
}

#[tokio::test]
async fn no_checks_is_healthy_and_no_metrics_handle_is_503() {
    let h = Harness::start().await;
    let reply = h.get("/health", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["checks"], json!([]));
    let reply = h.get("/metrics", None).await;
    assert_eq!(reply.status, 503);
    h.shutdown().await;
}

#[tokio::test]
async fn binding_a_busy_port_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = OpsServer::bind(&addr).await.expect_err("port is busy");
    assert!(matches!(err, HealthError::Bind { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&addr), "{text}");
    assert!(text.contains("telemetry.metrics_addr"), "{text}");

    let port = taken.local_addr().unwrap().port();
    let err = OpsServer::bind(&format!(":{port}"))
        .await
        .expect_err("busy on all interfaces too");
    assert!(matches!(err, HealthError::Bind { .. }), "{err:?}");
}

#[tokio::test]
async fn listen_address_forms() {
    let server = OpsServer::bind(":0").await.expect("Go style :port");
    assert!(server.local_addr().ip().is_unspecified());
    assert_ne!(server.local_addr().port(), 0);
    let server = OpsServer::bind("localhost:0").await.expect("host:port");
    assert!(server.local_addr().ip().is_loopback());
    for bad in ["", "9090", ":http", "127.0.0.1:99999", ":"] {
        let err = OpsServer::bind(bad).await.expect_err(bad);
        assert!(
            matches!(err, HealthError::InvalidAddress { .. }),
            "{bad}: {err:?}"
        );
    }
}

/// A check timeout no clock can double (`check_timeout * 2` panicked the request)
/// still answers.
#[tokio::test]
async fn an_unrepresentable_check_timeout_still_answers() {
    let h = Harness::start_with(|b| {
        b.check(FnCheck::new("redis", true, || async {
            CheckOutcome::healthy("Redis connection OK")
        }))
        .check_timeout(Duration::MAX)
    })
    .await;
    let reply = h.get("/health", None).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["checks"][0]["message"], "Redis connection OK");
    assert_eq!(h.get("/ready", None).await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_cap_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Harness::start_with(|b| b.max_connections(1)).await;
    // An idle connection holds the only slot (as a flood of them would hold all).
    let idle = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    let mut next = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    next.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // Not served while the slot is taken (a bounded look, not a synchronisation).
    let early = tokio::time::timeout(Duration::from_millis(300), next.read_buf(&mut answer)).await;
    assert!(early.is_err(), "answered past the cap: {answer:?}");
    drop(idle);
    tokio::time::timeout(support::WAIT, next.read_to_end(&mut answer))
        .await
        .expect("served once the slot is free")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    h.shutdown().await;
}

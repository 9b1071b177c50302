//! OpenTelemetry traces through the real binary (issue #14 step 1, SPEC §3.14):
//! one `CrawlOne` span per task with its phases as children, exported over
//! OTLP/HTTP to the testkit's receiver, which decodes them with the protocol's own
//! definitions; a failing collector costs spans, counted, never the crawl.

use std::collections::BTreeMap;
use std::time::Duration;

use spyder_testkit::otlp::{OtlpReceiver, ReceivedSpan};

use crate::support::{self, Harness, finish};

const LIMIT: Duration = Duration::from_secs(120);

fn by_name<'a>(spans: &'a [ReceivedSpan], name: &str) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_task_is_one_crawl_one_span_with_its_phases() {
    let h = Harness::new(0x5eed_1401, 12).await;
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let mut cmd = h.spyder();
    cmd.arg(format!("-otel_endpoint={}", receiver.url()))
        .arg("-otel_service=probe-under-test")
        .arg("-probe=probe-t");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        !run.stderr.contains("trace spans dropped"),
        "{}",
        run.stderr
    );

    // Exported before the exit: the shutdown flushes them.
    let spans = receiver.spans();
    let roots = by_name(&spans, "CrawlOne");
    let hosts = h.world.hosts();
    assert_eq!(roots.len(), hosts.len(), "one per task: {roots:#?}");
    let mut per_host: BTreeMap<&str, &ReceivedSpan> = BTreeMap::new();
    for root in &roots {
        let host = root.attributes.get("host").expect("host").as_str();
        assert!(per_host.insert(host, root).is_none(), "{host} twice");
        assert_eq!(root.parent_span_id, "", "a root span");
        assert_eq!(root.service, "probe-under-test");
        assert_eq!(
            root.attributes.get("probe_id").map(String::as_str),
            Some("probe-t")
        );
        assert_eq!(
            root.attributes.get("attempt").map(String::as_str),
            Some("1")
        );
        assert!(root.attributes.contains_key("run_id"), "{root:?}");
        let outcome = root.attributes.get("outcome").expect("outcome");
        assert!(
            ["complete", "robots_blocked"].contains(&outcome.as_str()),
            "{root:?}"
        );
        let edges: u64 = root
            .attributes
            .get("edges")
            .expect("edges")
            .parse()
            .expect("a count");
        assert!(edges > 0, "{root:?}");
        let children: Vec<&str> = spans
            .iter()
            .filter(|s| s.parent_span_id == root.span_id)
            .inspect(|s| assert_eq!(s.trace_id, root.trace_id))
            .map(|s| s.name.as_str())
            .collect();
        for phase in ["dns", "tls", "robots"] {
            assert!(
                children.contains(&phase),
                "{host}: {phase} missing in {children:?}"
            );
        }
        if outcome == "complete" {
            assert!(children.contains(&"fetch"), "{host}: {children:?}");
        }
    }
    for host in &hosts {
        assert!(per_host.contains_key(host.as_str()), "no span for {host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_or_absent_collector_costs_counted_spans_never_the_crawl() {
    let h = Harness::new(0x5eed_1402, 6).await;
    let receiver = OtlpReceiver::start().await.expect("receiver");
    receiver.set_status(503);
    // A port nobody listens on, too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    for endpoint in [receiver.url(), format!("127.0.0.1:{closed}")] {
        let mut cmd = h.spyder();
        cmd.arg(format!("-otel_endpoint={endpoint}")).arg("-jsonl");
        let run = finish(cmd, LIMIT).await;
        assert_eq!(run.code, Some(0), "{endpoint}: {}", run.stderr);
        crate::support::assert_same_edges(
            &crate::support::jsonl_edges(&run.stdout),
            &h.world.expected_edges(),
        );
        assert!(
            run.stderr.contains("trace spans dropped"),
            "{endpoint}: {}",
            run.stderr
        );
    }
    assert!(receiver.requests() > 0, "the 503 collector was asked");
    assert!(receiver.spans().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_ratio_of_a_tenth_traces_about_a_tenth_of_the_tasks() {
    let h = Harness::new(0x5eed_1403, 120).await;
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let mut cmd = h.spyder();
    cmd.arg(format!("-otel_endpoint={}", receiver.url()))
        .arg("-otel_sample_ratio=0.1");
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let spans = receiver.spans();
    let roots = by_name(&spans, "CrawlOne");
    // Binomial(120, 0.1): mean 12, and 1..=30 holds but for about 1 run in 10^5.
    assert!((1..=30).contains(&roots.len()), "{} traced", roots.len());
    // Children follow their root: none without one.
    let traced: std::collections::BTreeSet<&str> =
        roots.iter().map(|r| r.trace_id.as_str()).collect();
    assert!(spans.iter().all(|s| traced.contains(s.trace_id.as_str())));
}

/// SPEC §3.14: a queue item's `traceparent` makes its crawl part of that trace, and
/// what the crawl discovers carries the trace on, so one discovery chain is one trace
/// across probes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_traceparent_in_a_queue_item_is_followed_through_its_discoveries() {
    use spyder_testkit::redis::RedisServer;
    let h = Harness::new(0x5eed_1404, 6).await;
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let redis = RedisServer::start().expect("redis-server");
    let key = "spyder:queue";
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_span = "00f067aa0ba902b7";
    let seeded = h.world.hosts()[0].clone();
    let item = format!(
        r#"{{"host":"{seeded}","ts":1723300000,"attempt":0,"traceparent":"00-{trace_id}-{parent_span}-01"}}"#
    );
    redis.command(&["LPUSH", key, &item]).expect("lpush");

    let mut cmd = crate::support::spyder();
    cmd.args(crate::support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", redis.addr())
        .env("REDIS_ADDR", redis.addr())
        .arg("-continuous")
        .arg("-batch_flush_sec=1")
        .arg(format!("-otel_endpoint={}", receiver.url()))
        .arg(format!("-output={}", h.path("graph.json").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spyder starts");
    // Crawled once the seeded item and everything it led to left both lists.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let len = |list: &str| crate::support::int(&redis.command(&["LLEN", list]).expect("llen"));
        let crawled = receiver.spans().iter().any(|s| s.name == "CrawlOne");
        if crawled && len(key) == 0 && len("spyder:queue:processing") == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "queue not drained");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    crate::support::signal(child.id().expect("pid"), "-TERM");
    let out = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("exits after SIGTERM")
        .expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");

    let spans = receiver.spans();
    let roots = by_name(&spans, "CrawlOne");
    let first = roots
        .iter()
        .find(|r| r.attributes.get("host") == Some(&seeded))
        .expect("the seeded host's span");
    assert_eq!(first.trace_id, trace_id);
    assert_eq!(
        first.parent_span_id, parent_span,
        "the item's span is the parent"
    );
    assert!(roots.len() >= 2, "discoveries were crawled: {roots:#?}");
    for root in &roots {
        assert_eq!(root.trace_id, trace_id, "one trace for the chain: {root:?}");
    }
}

/// SPEC §4 B-14: `otel_insecure: false` in the file holds without a flag, and is
/// read: the endpoint `host:port` is then dialled with TLS, which a plain-HTTP
/// collector cannot answer (spans dropped); `true` sends them in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otel_insecure_from_the_file_decides_the_scheme() {
    let h = Harness::new(0x5eed_1405, 3).await;
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let host_port = receiver
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/v1/traces")
        .to_owned();
    for insecure in [false, true] {
        let file = h.path(&format!("otel-{insecure}.yaml"));
        std::fs::write(
            &file,
            format!("telemetry:\n  otel_endpoint: \"{host_port}\"\n  otel_insecure: {insecure}\n"),
        )
        .expect("config");
        let mut cmd = h.spyder();
        cmd.arg(format!("-config={}", file.display()));
        let run = finish(cmd, LIMIT).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let scheme = if insecure { "http" } else { "https" };
        assert!(
            run.stderr
                .contains(&format!("{scheme}://{host_port}/v1/traces")),
            "{}",
            run.stderr
        );
        let spans = by_name(&receiver.spans(), "CrawlOne").len();
        if insecure {
            assert_eq!(spans, 3, "sent in the clear");
        } else {
            assert_eq!(spans, 0, "TLS to a plain collector delivers nothing");
            assert!(run.stderr.contains("trace spans dropped"), "{}", run.stderr);
        }
    }
}

/// `POST /api/v1/domains` with the W3C `traceparent` request header (SPEC §3.14):
/// in queue mode the item carries it and the crawl joins that trace; a malformed
/// header is a 400 and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_submitters_traceparent_header_is_followed() {
    use spyder_testkit::redis::RedisServer;
    use std::io::{Read as _, Write as _};
    const WRITE_KEY: &str = "trace-write-key-0123456789";
    let h = Harness::new(0x5eed_1406, 2).await;
    let receiver = OtlpReceiver::start().await.expect("receiver");
    let redis = RedisServer::start().expect("redis-server");
    let config = h.path("api.yaml");
    std::fs::write(
        &config,
        format!(
            "api:\n  keys:\n    - key: {WRITE_KEY}\n      name: submitter\n      scope: write\n"
        ),
    )
    .expect("config");
    let port = crate::support::free_port();
    let mut cmd = crate::support::spyder();
    cmd.args(crate::support::world_flags(&h.world, &h.roots))
        .env("REDIS_QUEUE_ADDR", redis.addr())
        .arg(format!("-config={}", config.display()))
        .arg(format!("-metrics_addr=127.0.0.1:{port}"))
        .arg(format!("-otel_endpoint={}", receiver.url()))
        .arg(format!("-output={}", h.path("graph.json").display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spyder starts");
    let post = |traceparent: &str| -> Option<u16> {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let body = format!(r#"{{"host":"{}"}}"#, h.world.hosts()[0]);
        let request = format!(
            "POST /api/v1/domains HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {WRITE_KEY}\r\ntraceparent: {traceparent}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.split(' ').nth(1)?.parse().ok()
    };
    // The listener comes up with the run: ask until it answers (bounded).
    let deadline = tokio::time::Instant::now() + LIMIT;
    let bad = loop {
        if let Some(status) = post("00-not-a-trace") {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the API never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(bad, 400, "a malformed traceparent is refused");
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let accepted = post(&format!("00-{trace_id}-b7ad6b7169203331-01"));
    assert_eq!(accepted, Some(202));
    let deadline = tokio::time::Instant::now() + LIMIT;
    let root = loop {
        if let Some(root) = receiver.spans().into_iter().find(|s| s.name == "CrawlOne") {
            break root;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no CrawlOne exported"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(root.trace_id, trace_id);
    assert_eq!(root.parent_span_id, "b7ad6b7169203331");
    crate::support::signal(child.id().expect("pid"), "-TERM");
    support::exits_zero(child, "exits").await;
    // Only the accepted submission was crawled.
    assert_eq!(by_name(&receiver.spans(), "CrawlOne").len(), 1);
}

//! OpenTelemetry traces through the real binary (issue #14 step 1, SPEC §3.14):
//! one `CrawlOne` span per task with its phases as children, exported over
//! OTLP/HTTP to the testkit's receiver, which decodes them with the protocol's own
//! definitions; a failing collector costs spans, counted, never the crawl.

use std::collections::BTreeMap;
use std::time::Duration;

use spyder_testkit::otlp::{OtlpReceiver, ReceivedSpan};

use crate::support::{Harness, finish};

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

//! The global Prometheus recorder and `GET /metrics`. Its own test binary: the
//! recorder is process-wide.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

mod support;

use std::collections::BTreeSet;

use spyder_health::{HealthError, METRICS, MetricKind, install_metrics};
use support::Harness;

#[tokio::test]
async fn install_describe_and_serve_metrics() {
    let handle = install_metrics().expect("first install");
    let again = install_metrics().expect_err("only one global recorder");
    assert!(matches!(again, HealthError::MetricsInstall(_)), "{again:?}");

    // The spec's metrics: counters end in _total, histograms in _seconds, no duplicates.
    let names: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
    assert_eq!(names.len(), METRICS.len());
    // SPEC §2.8 and §3.13 (24), plus spyder_redirects_refused_total (issue 10) and
    // spyder_otel_spans_dropped_total (issue 14).
    assert_eq!(METRICS.len(), 32);
    for metric in METRICS {
        assert!(metric.name.starts_with("spyder_"), "{}", metric.name);
        match metric.kind {
            MetricKind::Counter => assert!(metric.name.ends_with("_total"), "{}", metric.name),
            MetricKind::Histogram => assert!(metric.name.ends_with("_seconds"), "{}", metric.name),
            MetricKind::Gauge => assert!(!metric.name.ends_with("_total"), "{}", metric.name),
        }
        assert!(!metric.help.is_empty());
    }

    // Touch every metric, then every one renders with HELP and the right TYPE.
    for metric in METRICS {
        let labels: Vec<(&'static str, &'static str)> =
            metric.labels.iter().map(|l| (*l, "x")).collect();
        match metric.kind {
            MetricKind::Counter => metrics::counter!(metric.name, &labels).increment(1),
            MetricKind::Gauge => metrics::gauge!(metric.name, &labels).set(1.0),
            MetricKind::Histogram => metrics::histogram!(metric.name, &labels).record(0.2),
        }
    }
    metrics::counter!("spyder_tasks_total", "status" => "ok").increment(41);
    let text = handle.render();
    for metric in METRICS {
        assert!(
            text.contains(&format!("# HELP {} ", metric.name)),
            "no HELP for {}:\n{text}",
            metric.name
        );
        assert!(
            text.contains(&format!(
                "# TYPE {} {}\n",
                metric.name,
                metric.kind.as_str()
            )),
            "no TYPE for {}:\n{text}",
            metric.name
        );
    }
    // Every sample line belongs to a described metric.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = line.split(['{', ' ']).next().unwrap();
        let base = name
            .strip_suffix("_bucket")
            .or_else(|| name.strip_suffix("_sum"))
            .or_else(|| name.strip_suffix("_count"))
            .filter(|base| names.contains(base))
            .unwrap_or(name);
        assert!(names.contains(base), "undescribed sample {line}");
    }
    // Durations are real histograms with the configured buckets.
    assert!(
        text.contains("spyder_task_duration_seconds_bucket{le=\"0.25\"} 1"),
        "{text}"
    );
    // Fixed-label series exist at zero from the start.
    assert!(
        text.contains("spyder_edges_total{type=\"ALIAS_OF\"} 0"),
        "{text}"
    );

    // Served on /metrics with the Prometheus content type.
    let h = Harness::start_with(|b| b.keys(support::standard_keys()).metrics(handle)).await;
    let reply = h.get("/metrics", None).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let served = reply.text();
    assert!(
        served.contains("spyder_tasks_total{status=\"ok\"} 41"),
        "{served}"
    );
    // Touched once above, plus 3.
    metrics::counter!("spyder_robots_blocked_total").increment(3);
    let served = h.get("/metrics", None).await.text();
    assert!(served.contains("spyder_robots_blocked_total 4"), "{served}");
    h.shutdown().await;
}

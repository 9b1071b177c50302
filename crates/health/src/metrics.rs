//! The Prometheus recorder: installed once, every metric of SPEC §2.8 and §3.13
//! described, rendered by `GET /metrics`. The metrics themselves, their table and
//! their handles, are `spyder_model::telemetry`.

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use spyder_model::EdgeType;
use spyder_model::telemetry::{self, METRICS, MetricKind};

use crate::HealthError;

/// Upper bounds of the buckets of every `*_duration_seconds` histogram: from 5 ms
/// (a cached DNS answer) to 2 min (beyond the largest sensible `task_timeout`).
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0,
];

/// Outcomes of SPEC §2.3, pre-registered at zero.
const OUTCOMES: &[&str] = &[
    "complete",
    "excluded",
    "no_address",
    "private_refused",
    "no_web",
    "robots_blocked",
    "invalid",
    "dns_error",
    "timeout",
    "internal",
];

/// Renders the installed recorder's metrics as Prometheus text.
#[derive(Clone, Debug)]
pub struct MetricsHandle {
    inner: PrometheusHandle,
}

impl MetricsHandle {
    /// The Prometheus text exposition (format 0.0.4) of every metric recorded so far.
    pub fn render(&self) -> String {
        self.inner.render()
    }

    /// Drains histogram samples into their buckets so memory stays bounded between
    /// scrapes. [`OpsServer::serve`](crate::OpsServer::serve) runs it every few seconds.
    pub fn run_upkeep(&self) {
        self.inner.run_upkeep();
    }
}

/// Installs the global Prometheus recorder (no HTTP listener of its own: `/metrics` is
/// served by [`OpsServer`](crate::OpsServer)), with [`DURATION_BUCKETS`] for every
/// `*_duration_seconds` histogram, describes every metric of [`METRICS`] so each one
/// has its `# HELP` line, and registers the fixed-label counters of SPEC §2.8 at zero.
///
/// There is one global recorder per process: a second call returns
/// [`HealthError::MetricsInstall`], it does not panic.
pub fn install_metrics() -> Result<MetricsHandle, HealthError> {
    let builder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_duration_seconds".to_owned()),
            DURATION_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(telemetry::DNS_QUEUE_WAIT.name.to_owned()),
                DURATION_BUCKETS,
            )
        })
        .map_err(|e| HealthError::MetricsInstall(e.to_string()))?;
    let handle = builder
        .install_recorder()
        .map_err(|e| HealthError::MetricsInstall(e.to_string()))?;
    describe_all();
    register_known_series();
    Ok(MetricsHandle { inner: handle })
}

fn describe_all() {
    for spec in METRICS {
        match spec.kind {
            MetricKind::Counter => metrics::describe_counter!(spec.name, Unit::Count, spec.help),
            MetricKind::Gauge => metrics::describe_gauge!(spec.name, spec.help),
            MetricKind::Histogram => {
                metrics::describe_histogram!(spec.name, Unit::Seconds, spec.help)
            }
        }
    }
}

/// Counters whose label values are fixed by the spec start at zero, so a dashboard's
/// `rate()` has a series before the first event.
fn register_known_series() {
    for status in ["ok", "error"] {
        telemetry::tasks(status).increment(0);
    }
    for &outcome in OUTCOMES {
        telemetry::task_outcomes(outcome).increment(0);
    }
    for edge in EdgeType::ALL {
        telemetry::edges(edge).increment(0);
    }
    for node in ["domain", "ip", "cert"] {
        telemetry::nodes_discovered(node).increment(0);
    }
    for status in ["success", "failure"] {
        telemetry::batch_emissions(status).increment(0);
    }
    telemetry::robots_blocked().increment(0);
}

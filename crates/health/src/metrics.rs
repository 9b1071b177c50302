//! The Prometheus recorder: installed once, every metric of SPEC §2.8 and §3.13
//! described, rendered by `GET /metrics`.

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use spyder_model::EdgeType;

use crate::HealthError;

/// What kind of series a metric is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up; the name ends in `_total`.
    Counter,
    /// A current value.
    Gauge,
    /// A distribution with buckets; the name ends in `_seconds`.
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE` word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric spyder exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricSpec {
    /// Full name, e.g. `spyder_tasks_total`.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Label names, in the order the code sets them.
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn counter(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind: MetricKind::Counter,
        labels,
        help,
    }
}

const fn gauge(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind: MetricKind::Gauge,
        labels,
        help,
    }
}

const fn histogram(
    name: &'static str,
    labels: &'static [&'static str],
    help: &'static str,
) -> MetricSpec {
    MetricSpec {
        name,
        kind: MetricKind::Histogram,
        labels,
        help,
    }
}

/// Every metric of SPEC §2.8 and §3.13, with its help text.
pub const METRICS: &[MetricSpec] = &[
    counter(
        "spyder_tasks_total",
        &["status"],
        "Tasks finished, by status (ok or error); each task counts once.",
    ),
    counter(
        "spyder_task_outcomes_total",
        &["outcome"],
        "Tasks finished, by outcome (complete, excluded, no_address, private_refused, no_web, robots_blocked, invalid, dns_error, timeout, internal).",
    ),
    counter(
        "spyder_edges_total",
        &["type"],
        "Non-duplicate edges emitted, by edge type.",
    ),
    counter(
        "spyder_nodes_discovered_total",
        &["type"],
        "Non-duplicate nodes emitted, by node type (domain, ip, cert).",
    ),
    counter(
        "spyder_robots_blocked_total",
        &[],
        "Domains whose robots.txt disallows the root page.",
    ),
    counter(
        "spyder_batch_emissions_total",
        &["status"],
        "Batches emitted, by status (success = delivered or written, failure = spooled).",
    ),
    counter(
        "spyder_tls_errors_total",
        &["reason"],
        "TLS connection attempts (TCP connect plus handshake) that failed, by reason (timeout, connect_refused, connect_error, or the handshake's).",
    ),
    counter(
        "spyder_conn_waits_total",
        &[],
        "Connections that waited for a slot of their IP address (crawling.max_conns_per_ip); each waiting connect counts once.",
    ),
    counter(
        "spyder_resource_waits_total",
        &["resource"],
        "Connect tries that found a machine resource exhausted and waited to try again, by resource (fd: EMFILE/ENFILE, port: EADDRNOTAVAIL, buffer: ENOBUFS/ENOMEM).",
    ),
    counter(
        "spyder_redirects_refused_total",
        &["reason"],
        "Redirects not followed, by reason (port: a bad port, or one crawling.redirect_ports does not allow).",
    ),
    counter(
        "spyder_dns_dropped_replies_total",
        &[],
        "DNS replies dropped because they matched no outstanding query.",
    ),
    counter(
        "spyder_dns_try_timeouts_total",
        &[],
        "UDP DNS tries with no reply within their adaptive timeout (retried unless it was the lookup's last; the try keeps listening).",
    ),
    counter(
        "spyder_queue_requeued_total",
        &[],
        "Queue items whose lease expired and that were put back on the queue.",
    ),
    counter(
        "spyder_queue_skipped_total",
        &["reason"],
        "Queue items acked without a crawl (already_taken: the host was crawled or claimed since); not tasks.",
    ),
    counter(
        "spyder_queue_dead_total",
        &[],
        "Queue items moved to the dead list after max_attempts.",
    ),
    counter(
        "spyder_dedup_hits_total",
        &["backend"],
        "Dedup keys already seen, by backend.",
    ),
    counter(
        "spyder_dedup_misses_total",
        &["backend"],
        "Dedup keys not seen before, by backend.",
    ),
    counter(
        "spyder_dedup_errors_total",
        &["backend"],
        "Dedup lookups that failed (records emitted anyway), by backend.",
    ),
    counter(
        "spyder_discovery_enqueued_total",
        &["sink"],
        "Discovered domains handed to the crawl queue, by sink.",
    ),
    counter(
        "spyder_discovery_dropped_total",
        &["sink"],
        "Discovered domains dropped because the sink was full or failing, by sink.",
    ),
    counter(
        "spyder_config_reloads_total",
        &["result"],
        "Configuration reloads (SIGHUP), by result.",
    ),
    gauge("spyder_active_workers", &[], "Tasks running right now."),
    gauge(
        "spyder_queue_held",
        &[],
        "Queue items leased or read and not yet acknowledged.",
    ),
    gauge(
        "spyder_spool_files",
        &[],
        "Batch files waiting in the spool directory.",
    ),
    gauge(
        "spyder_queue_depth",
        &["list"],
        "Items in the Redis work queue lists (pending, processing, dead).",
    ),
    histogram(
        "spyder_task_duration_seconds",
        &[],
        "Wall time of one task (one domain), waits included.",
    ),
    histogram(
        "spyder_dns_lookup_duration_seconds",
        &[],
        "Wall time of the DNS phase of one task (one observation per task).",
    ),
    histogram(
        "spyder_dns_queue_wait_seconds",
        &[],
        "Time one DNS query waited for a free slot (the server's dns.max_inflight) before it was sent; one observation per try.",
    ),
    histogram(
        "spyder_dns_query_duration_seconds",
        &[],
        "Network time of one answered DNS try (UDP, or TCP after truncation): send to matching reply.",
    ),
    histogram(
        "spyder_tls_handshake_duration_seconds",
        &[],
        "Wall time of one TLS connection attempt, TCP connect plus handshake, failed and timed-out ones included.",
    ),
    histogram(
        "spyder_http_request_duration_seconds",
        &["kind"],
        "Wall time of one HTTP request, by kind (robots or root).",
    ),
];

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
                Matcher::Full("spyder_dns_queue_wait_seconds".to_owned()),
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
        metrics::counter!("spyder_tasks_total", "status" => status).increment(0);
    }
    for outcome in OUTCOMES {
        metrics::counter!("spyder_task_outcomes_total", "outcome" => *outcome).increment(0);
    }
    for edge in EdgeType::ALL {
        metrics::counter!("spyder_edges_total", "type" => edge.as_str()).increment(0);
    }
    for node in ["domain", "ip", "cert"] {
        metrics::counter!("spyder_nodes_discovered_total", "type" => node).increment(0);
    }
    for status in ["success", "failure"] {
        metrics::counter!("spyder_batch_emissions_total", "status" => status).increment(0);
    }
    metrics::counter!("spyder_robots_blocked_total").increment(0);
}

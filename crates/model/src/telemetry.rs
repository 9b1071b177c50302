//! Every metric spyder exports, in one place (SPEC §2.8, §3.13): the table
//! [`METRICS`] with each metric's kind, labels and help text, and next to it one
//! typed handle per metric that the code records through.
//!
//! A call site never spells a metric's name: it calls the handle, e.g.
//! `telemetry::tasks("ok").increment(1)`, and the handle builds the series from its
//! table entry, so a name and its label names exist once in the code and the table
//! is the whole list of what `/metrics` can show. The handles ask the recorder
//! installed at the time of the call, like the `metrics` macros do, so a test's
//! local recorder sees them too.

use metrics::{Counter, Gauge, Histogram, Label};

use crate::EdgeType;

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

impl MetricSpec {
    /// The handle of the series with these label values (in the order of
    /// [`Self::labels`]), from the recorder installed now.
    fn handle<H: Register>(&self, values: &[&'static str]) -> H {
        debug_assert_eq!(self.kind, H::KIND, "{}", self.name);
        debug_assert_eq!(self.labels.len(), values.len(), "{}", self.name);
        let labels: Vec<Label> = self
            .labels
            .iter()
            .zip(values)
            .map(|(&key, &value)| Label::from_static_parts(key, value))
            .collect();
        H::register(self.name, labels)
    }
}

/// A handle type of the `metrics` crate and the kind of metric it records.
trait Register {
    /// The kind of metric this handle records.
    const KIND: MetricKind;
    /// The handle of one series, from the recorder installed now.
    fn register(name: &'static str, labels: Vec<Label>) -> Self;
}

macro_rules! register {
    ($($handle:ident: $macro:ident),*) => {$(
        impl Register for $handle {
            const KIND: MetricKind = MetricKind::$handle;
            fn register(name: &'static str, labels: Vec<Label>) -> Self {
                metrics::$macro!(name, labels)
            }
        }
    )*};
}

register!(Counter: counter, Gauge: gauge, Histogram: histogram);

/// What a label value is made from: a `&'static str` as it is, a type of the model
/// by its wire name.
trait LabelValue {
    fn label_value(self) -> &'static str;
}

impl LabelValue for &'static str {
    fn label_value(self) -> &'static str {
        self
    }
}

impl LabelValue for EdgeType {
    fn label_value(self) -> &'static str {
        self.as_str()
    }
}

/// Defines [`METRICS`] and, for each row `Kind CONST = handle(arg: Type = "label", …),
/// "name", "help";`, the table entry `CONST` and its typed handle `handle`, which
/// takes one argument per label, in the table's order.
macro_rules! metrics_table {
    ($(
        $kind:ident $spec:ident = $handle:ident($($arg:ident: $ty:ty = $label:literal),*),
            $name:literal, $help:literal;
    )*) => {
        /// Every metric of SPEC §2.8 and §3.13, with its help text.
        pub const METRICS: &[MetricSpec] = &[$($spec),*];
        $(
            #[doc = concat!("`", $name, "`: ", $help)]
            pub const $spec: MetricSpec = MetricSpec {
                name: $name,
                kind: <$kind as Register>::KIND,
                labels: &[$($label),*],
                help: $help,
            };

            #[doc = concat!(
                "The `", stringify!($kind), "` of [`", stringify!($spec), "`] (`", $name,
                "`) for these label values."
            )]
            pub fn $handle($($arg: $ty),*) -> $kind {
                $spec.handle(&[$(LabelValue::label_value($arg)),*])
            }
        )*
    };
}

metrics_table! {
    Counter TASKS = tasks(status: &'static str = "status"), "spyder_tasks_total", "Tasks finished, by status (ok or error); each task counts once.";
    Counter TASK_OUTCOMES = task_outcomes(outcome: &'static str = "outcome"), "spyder_task_outcomes_total", "Tasks finished, by outcome (complete, excluded, no_address, private_refused, no_web, robots_blocked, invalid, dns_error, timeout, internal).";
    Counter EDGES = edges(kind: EdgeType = "type"), "spyder_edges_total", "Non-duplicate edges emitted, by edge type.";
    Counter NODES_DISCOVERED = nodes_discovered(kind: &'static str = "type"), "spyder_nodes_discovered_total", "Non-duplicate nodes emitted, by node type (domain, ip, cert).";
    Counter ROBOTS_BLOCKED = robots_blocked(), "spyder_robots_blocked_total", "Domains whose robots.txt disallows the root page.";
    Counter BATCH_EMISSIONS = batch_emissions(status: &'static str = "status"), "spyder_batch_emissions_total", "Batches emitted, by status (success = delivered or written, failure = spooled).";
    Counter TLS_ERRORS = tls_errors(reason: &'static str = "reason"), "spyder_tls_errors_total", "TLS connection attempts (TCP connect plus handshake) that failed, by reason (timeout, connect_refused, connect_error, or the handshake's).";
    Counter CONN_WAITS = conn_waits(), "spyder_conn_waits_total", "Connections that waited for a slot of their IP address (crawling.max_conns_per_ip); each waiting connect counts once.";
    Counter RESOURCE_WAITS = resource_waits(resource: &'static str = "resource"), "spyder_resource_waits_total", "Connect tries that found a machine resource exhausted and waited to try again, by resource (fd: EMFILE/ENFILE, port: EADDRNOTAVAIL, buffer: ENOBUFS/ENOMEM).";
    Counter REDIRECTS_REFUSED = redirects_refused(reason: &'static str = "reason"), "spyder_redirects_refused_total", "Redirects not followed, by reason (port: a bad port, or one crawling.redirect_ports does not allow).";
    Counter DNS_DROPPED_REPLIES = dns_dropped_replies(), "spyder_dns_dropped_replies_total", "DNS replies dropped because they matched no outstanding query.";
    Counter DNS_TRY_TIMEOUTS = dns_try_timeouts(), "spyder_dns_try_timeouts_total", "UDP DNS tries with no reply within their adaptive timeout (retried unless it was the lookup's last; the try keeps listening).";
    Counter QUEUE_REQUEUED = queue_requeued(), "spyder_queue_requeued_total", "Queue items whose lease expired and that were put back on the queue.";
    Counter QUEUE_SKIPPED = queue_skipped(reason: &'static str = "reason"), "spyder_queue_skipped_total", "Queue items acked without a crawl (already_taken: the host was crawled or claimed since); not tasks.";
    Counter QUEUE_DEAD = queue_dead(), "spyder_queue_dead_total", "Queue items moved to the dead list after max_attempts.";
    Counter DEDUP_HITS = dedup_hits(backend: &'static str = "backend"), "spyder_dedup_hits_total", "Dedup keys already seen, by backend.";
    Counter DEDUP_MISSES = dedup_misses(backend: &'static str = "backend"), "spyder_dedup_misses_total", "Dedup keys not seen before, by backend.";
    Counter DEDUP_ERRORS = dedup_errors(backend: &'static str = "backend"), "spyder_dedup_errors_total", "Dedup lookups that failed (records emitted anyway), by backend.";
    Counter DISCOVERY_ENQUEUED = discovery_enqueued(sink: &'static str = "sink"), "spyder_discovery_enqueued_total", "Discovered domains handed to the crawl queue, by sink.";
    Counter DISCOVERY_DROPPED = discovery_dropped(sink: &'static str = "sink"), "spyder_discovery_dropped_total", "Discovered domains dropped because the sink was full or failing, by sink.";
    Counter CONFIG_RELOADS = config_reloads(result: &'static str = "result"), "spyder_config_reloads_total", "Configuration reloads (SIGHUP), by result.";
    Counter OTEL_SPANS_DROPPED = otel_spans_dropped(), "spyder_otel_spans_dropped_total", "Trace spans dropped rather than exported: the export queue was full, or the collector failed or was too slow.";
    Gauge ACTIVE_WORKERS = active_workers(), "spyder_active_workers", "Tasks running right now.";
    Gauge QUEUE_HELD = queue_held(), "spyder_queue_held", "Queue items leased or read and not yet acknowledged.";
    Gauge SPOOL_FILES = spool_files(), "spyder_spool_files", "Batch files waiting in the spool directory.";
    Gauge QUEUE_DEPTH = queue_depth(list: &'static str = "list"), "spyder_queue_depth", "Items in the Redis work queue lists (pending, processing, dead).";
    Histogram TASK_DURATION = task_duration(), "spyder_task_duration_seconds", "Wall time of one task (one domain), waits included.";
    Histogram DNS_LOOKUP_DURATION = dns_lookup_duration(), "spyder_dns_lookup_duration_seconds", "Wall time of the DNS phase of one task (one observation per task).";
    Histogram DNS_QUEUE_WAIT = dns_queue_wait(), "spyder_dns_queue_wait_seconds", "Time one DNS lookup waited for a free slot (the server's dns.max_inflight) before it was sent; a retry to the same server keeps the slot and is not observed again.";
    Histogram DNS_QUERY_DURATION = dns_query_duration(), "spyder_dns_query_duration_seconds", "Network time of one answered DNS try (UDP, or TCP after truncation): send to matching reply.";
    Histogram TLS_HANDSHAKE_DURATION = tls_handshake_duration(), "spyder_tls_handshake_duration_seconds", "Wall time of one TLS connection attempt, TCP connect plus handshake, failed and timed-out ones included.";
    Histogram HTTP_REQUEST_DURATION = http_request_duration(kind: &'static str = "kind"), "spyder_http_request_duration_seconds", "Wall time of one HTTP request, by kind (robots or root).";
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Mutex, PoisonError};

    use metrics::{Key, KeyName, Metadata, Recorder, SharedString, Unit};

    use super::*;

    /// One registered series: kind, name, and its labels as `(name, value)`.
    type Series = (MetricKind, String, Vec<(String, String)>);

    /// Keeps every series a handle registers.
    #[derive(Debug, Default)]
    struct Registrations(Mutex<Vec<Series>>);

    impl Registrations {
        fn push(&self, kind: MetricKind, key: &Key) {
            let labels = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push((
                kind,
                key.name().to_owned(),
                labels,
            ));
        }
    }

    impl Recorder for Registrations {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            self.push(MetricKind::Counter, key);
            Counter::noop()
        }
        fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
            self.push(MetricKind::Gauge, key);
            Gauge::noop()
        }
        fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
            self.push(MetricKind::Histogram, key);
            Histogram::noop()
        }
    }

    #[test]
    fn names_are_unique_and_end_as_their_kind_says() {
        let names: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(names.len(), METRICS.len());
        for metric in METRICS {
            assert!(metric.name.starts_with("spyder_"), "{}", metric.name);
            match metric.kind {
                MetricKind::Counter => assert!(metric.name.ends_with("_total"), "{}", metric.name),
                MetricKind::Histogram => {
                    assert!(metric.name.ends_with("_seconds"), "{}", metric.name)
                }
                MetricKind::Gauge => assert!(!metric.name.ends_with("_total"), "{}", metric.name),
            }
        }
    }

    #[test]
    fn every_handle_registers_its_table_entry_and_every_entry_has_one() {
        let recorder = Registrations::default();
        metrics::with_local_recorder(&recorder, || {
            let _ = tasks("x");
            let _ = task_outcomes("x");
            let _ = edges(EdgeType::UsesNs);
            let _ = nodes_discovered("x");
            let _ = robots_blocked();
            let _ = batch_emissions("x");
            let _ = tls_errors("x");
            let _ = conn_waits();
            let _ = resource_waits("x");
            let _ = redirects_refused("x");
            let _ = dns_dropped_replies();
            let _ = dns_try_timeouts();
            let _ = queue_requeued();
            let _ = queue_skipped("x");
            let _ = queue_dead();
            let _ = dedup_hits("x");
            let _ = dedup_misses("x");
            let _ = dedup_errors("x");
            let _ = discovery_enqueued("x");
            let _ = discovery_dropped("x");
            let _ = config_reloads("x");
            let _ = otel_spans_dropped();
            let _ = active_workers();
            let _ = queue_held();
            let _ = spool_files();
            let _ = queue_depth("x");
            let _ = task_duration();
            let _ = dns_lookup_duration();
            let _ = dns_queue_wait();
            let _ = dns_query_duration();
            let _ = tls_handshake_duration();
            let _ = http_request_duration("x");
        });
        let registered = recorder
            .0
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        for (kind, name, labels) in &registered {
            let spec = METRICS
                .iter()
                .find(|m| m.name == name)
                .unwrap_or_else(|| panic!("{name} is not in METRICS"));
            assert_eq!(spec.kind, *kind, "{name}");
            let label_names: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(spec.labels, label_names.as_slice(), "{name}");
        }
        let handled: BTreeSet<&str> = registered.iter().map(|(_, n, _)| n.as_str()).collect();
        assert_eq!(handled.len(), registered.len(), "two handles for one name");
        let table: BTreeSet<&str> = METRICS.iter().map(|m| m.name).collect();
        assert_eq!(handled, table);
    }

    #[test]
    fn a_handle_sets_the_label_values_it_is_given() {
        let recorder = Registrations::default();
        metrics::with_local_recorder(&recorder, || {
            let _ = edges(EdgeType::UsesNs);
            let _ = queue_depth("dead");
        });
        let registered = recorder
            .0
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let pair = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        assert_eq!(
            registered,
            vec![
                (
                    MetricKind::Counter,
                    "spyder_edges_total".to_owned(),
                    pair("type", "USES_NS")
                ),
                (
                    MetricKind::Gauge,
                    "spyder_queue_depth".to_owned(),
                    pair("list", "dead")
                ),
            ]
        );
    }
}

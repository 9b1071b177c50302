//! The key table: every configuration key with its alias, flag, environment variable,
//! type, default and reload tier. Loading, `-set`, flags, tiers and docs all read it.

use std::time::Duration;

/// When a changed value takes effect in a running probe (SPEC §2.10).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tier {
    /// Tier 1: applies at once (each task uses one config snapshot).
    Immediate,
    /// Tier 2: applies at once, with a warning.
    Warn,
    /// Tier 3: needs a restart.
    Restart,
    /// Tier A: changed only through `/api/v1/keys`.
    ApiOnly,
}

impl Tier {
    /// The tier's mark in the spec's `T` column: `1`, `2`, `3` or `A`.
    pub fn mark(self) -> &'static str {
        match self {
            Tier::Immediate => "1",
            Tier::Warn => "2",
            Tier::Restart => "3",
            Tier::ApiOnly => "A",
        }
    }
}

/// The shape of a key's value; it drives parsing, flag syntax and documentation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ValueKind {
    /// `true` or `false`; a flag of this kind may be given bare (`-name`).
    Bool,
    /// A whole number in `min..=max`.
    Int { min: u64, max: u64 },
    /// A number greater than 0 and at most `max`.
    Float { max: f64 },
    /// A Go duration or integer seconds, at least `min`.
    Duration { min: Duration },
    /// Free text (may be checked further, e.g. URLs and addresses).
    String,
    /// A file or directory path.
    Path,
    /// A list; a comma-separated string in flags and environment variables.
    List,
    /// One of these words, any case.
    Choice(&'static [&'static str]),
    /// `[{key, name, scope}]` entries.
    ApiKeys,
}

impl ValueKind {
    /// A short type name, as Go's flag usage shows it (`int`, `duration`, `string`...).
    pub fn type_name(self) -> &'static str {
        match self {
            ValueKind::Bool => "bool",
            ValueKind::Int { .. } => "int",
            ValueKind::Float { .. } => "float",
            ValueKind::Duration { .. } => "duration",
            ValueKind::String | ValueKind::Choice(_) => "string",
            ValueKind::Path => "path",
            ValueKind::List => "list",
            ValueKind::ApiKeys => "json",
        }
    }
}

/// One configuration key.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct KeySpec {
    /// Canonical dotted path, e.g. `crawling.concurrency`.
    pub path: &'static str,
    /// The old flat key accepted in files, e.g. `concurrency`.
    pub alias: Option<&'static str>,
    /// Reload tier.
    pub tier: Tier,
    /// Value shape and range.
    pub kind: ValueKind,
    /// The default, as documented.
    pub default: &'static str,
    /// The `spyder` flag (without the dash) that sets it, if any.
    pub flag: Option<&'static str>,
    /// The environment variable that sets it, if any.
    pub env: Option<&'static str>,
    /// The warning a Tier 2 change logs.
    pub reload_warning: Option<&'static str>,
    /// One line saying what it does.
    pub help: &'static str,
}

impl KeySpec {
    const fn new(
        path: &'static str,
        tier: Tier,
        kind: ValueKind,
        default: &'static str,
        help: &'static str,
    ) -> Self {
        Self {
            path,
            alias: None,
            tier,
            kind,
            default,
            flag: None,
            env: None,
            reload_warning: None,
            help,
        }
    }

    /// An old flat key that is also a flag of the same name.
    const fn alias(mut self, alias: &'static str) -> Self {
        self.alias = Some(alias);
        self.flag = Some(alias);
        self
    }

    const fn flag(mut self, flag: &'static str) -> Self {
        self.flag = Some(flag);
        self
    }

    const fn env(mut self, var: &'static str) -> Self {
        self.env = Some(var);
        self
    }

    const fn warns(mut self, warning: &'static str) -> Self {
        self.reload_warning = Some(warning);
        self
    }

    /// The section (`crawling`, `dns`, ...), or `None` for a top-level key.
    pub fn section(&self) -> Option<&'static str> {
        self.path.split_once('.').map(|(section, _)| section)
    }
}

use Tier::{ApiOnly, Immediate, Restart, Warn};

const fn int(min: u64, max: u64) -> ValueKind {
    ValueKind::Int { min, max }
}

const fn duration_at_least(min: Duration) -> ValueKind {
    ValueKind::Duration { min }
}

/// A timeout or interval that must not be zero.
const POSITIVE_DURATION: ValueKind = duration_at_least(Duration::from_millis(1));
const U32_MAX: u64 = u32::MAX as u64;

/// `output.format` values.
pub const OUTPUT_FORMATS: &[&str] = &["json", "jsonl", "csv"];
/// `logging.level` values.
pub const LOG_LEVELS: &[&str] = &["debug", "info", "warn", "error"];
/// `logging.format` values.
pub const LOG_FORMATS: &[&str] = &["auto", "text", "json"];

static KEYS: &[KeySpec] = &[
    KeySpec::new(
        "domains",
        Restart,
        ValueKind::Path,
        "",
        "file of domains, one per line; - reads stdin",
    )
    .flag("domains"),
    KeySpec::new(
        "probe",
        Restart,
        ValueKind::String,
        "local-1",
        "probe id stamped on every edge",
    )
    .flag("probe"),
    KeySpec::new(
        "run",
        Restart,
        ValueKind::String,
        "run-<unix seconds>",
        "run id stamped on every edge",
    )
    .flag("run"),
    KeySpec::new(
        "ua",
        Immediate,
        ValueKind::String,
        "SPYDERProbe/1.0 (+https://github.com/gustycube/spyder)",
        "User-Agent for every request",
    )
    .flag("ua"),
    KeySpec::new(
        "exclude_tlds",
        Immediate,
        ValueKind::List,
        "gov,mil,int",
        "suffixes resolved but never contacted (comma list; replaces the list)",
    )
    .flag("exclude_tlds"),
    KeySpec::new(
        "crawling.concurrency",
        Immediate,
        int(1, 65_536),
        "256",
        "concurrent crawl tasks",
    )
    .alias("concurrency"),
    KeySpec::new(
        "crawling.rate_per_host",
        Immediate,
        ValueKind::Float { max: f64::INFINITY },
        "1",
        "requests per second per host",
    ),
    KeySpec::new(
        "crawling.rate_burst",
        Immediate,
        int(1, U32_MAX),
        "2",
        "per-host token bucket depth",
    ),
    KeySpec::new(
        "crawling.max_domains",
        Immediate,
        int(0, u64::MAX),
        "0",
        "cap on discoveries this probe enqueues (0 = no cap)",
    )
    .flag("max_domains"),
    KeySpec::new(
        "crawling.continuous",
        Immediate,
        ValueKind::Bool,
        "false",
        "also crawl discovered domains",
    )
    .flag("continuous"),
    KeySpec::new(
        "crawling.http_fallback",
        Immediate,
        ValueKind::Bool,
        "true",
        "try plain HTTP when TLS fails",
    ),
    KeySpec::new(
        "crawling.allow_private",
        Immediate,
        ValueKind::Bool,
        "false",
        "contact private and loopback addresses",
    )
    .flag("allow_private"),
    KeySpec::new(
        "crawling.task_timeout",
        Immediate,
        POSITIVE_DURATION,
        "30s",
        "deadline of one domain's crawl, waits included",
    ),
    KeySpec::new(
        "crawling.dns_timeout",
        Immediate,
        POSITIVE_DURATION,
        "10s",
        "deadline of the DNS phase",
    ),
    KeySpec::new(
        "crawling.tls_timeout",
        Immediate,
        POSITIVE_DURATION,
        "8s",
        "deadline of TCP connect plus TLS handshake",
    ),
    KeySpec::new(
        "crawling.http_timeout",
        Immediate,
        POSITIVE_DURATION,
        "15s",
        "deadline of one HTTP request",
    ),
    KeySpec::new(
        "crawling.body_max_bytes",
        Immediate,
        int(1024, u64::MAX),
        "524288",
        "cap on decoded root-page bytes",
    ),
    KeySpec::new(
        "crawling.max_redirects",
        Immediate,
        int(0, 20),
        "5",
        "redirect hops followed",
    ),
    KeySpec::new(
        "crawling.allow_cidrs",
        Immediate,
        ValueKind::List,
        "",
        "private ranges contacted anyway (comma list of CIDRs)",
    )
    .flag("allow_cidrs"),
    KeySpec::new(
        "crawling.https_port",
        Immediate,
        int(1, 65_535),
        "443",
        "port for TLS",
    ),
    KeySpec::new(
        "crawling.http_port",
        Immediate,
        int(1, 65_535),
        "80",
        "port for the plain HTTP fallback",
    ),
    KeySpec::new(
        "crawling.redirect_ports",
        Immediate,
        ValueKind::List,
        "",
        "ports redirects may lead to besides https_port and http_port (empty = any but the Fetch standard's bad ports)",
    ),
    KeySpec::new(
        "crawling.tls_roots",
        Restart,
        ValueKind::String,
        "webpki",
        "certificate verification roots: webpki, system or a PEM file path",
    ),
    KeySpec::new(
        "crawling.shutdown_grace",
        Immediate,
        duration_at_least(Duration::ZERO),
        "20s",
        "time in-flight tasks get at shutdown",
    ),
    KeySpec::new(
        "dns.servers",
        Immediate,
        ValueKind::List,
        "from /etc/resolv.conf, else 127.0.0.1:53",
        "resolvers, ip or ip:port ([v6]:port), comma list",
    )
    .flag("dns_servers"),
    KeySpec::new(
        "dns.query_timeout",
        Immediate,
        POSITIVE_DURATION,
        "2s",
        "wait for one DNS try",
    ),
    KeySpec::new(
        "dns.retries",
        Immediate,
        int(0, 10),
        "2",
        "DNS retries after the first try",
    ),
    KeySpec::new(
        "dns.max_inflight",
        Immediate,
        int(1, U32_MAX),
        "256",
        "open DNS queries per server",
    ),
    KeySpec::new(
        "dns.sockets",
        Restart,
        int(1, 64),
        "4",
        "UDP sockets the DNS client uses",
    ),
    KeySpec::new(
        "dns.cache_size",
        Restart,
        int(0, U32_MAX),
        "10000",
        "DNS cache entries (0 = off)",
    ),
    KeySpec::new(
        "batch.max_edges",
        Immediate,
        int(1, U32_MAX),
        "10000",
        "edges per batch before a flush",
    )
    .alias("batch_max_edges"),
    KeySpec::new(
        "batch.flush_interval",
        Immediate,
        duration_at_least(Duration::from_millis(100)),
        "2s",
        "longest time a batch waits (alias in integer seconds)",
    )
    .alias("batch_flush_sec"),
    KeySpec::new(
        "batch.node_threshold_ratio",
        Immediate,
        ValueKind::Float { max: 1.0 },
        "0.5",
        "nodes per batch before a flush, as a share of max_edges",
    ),
    KeySpec::new(
        "output.format",
        Warn,
        ValueKind::Choice(OUTPUT_FORMATS),
        "json",
        "output format: json, jsonl or csv",
    )
    .alias("output_format")
    .warns("changing output format mid-run may cause mixed format output"),
    KeySpec::new(
        "output.ingest",
        Warn,
        ValueKind::String,
        "",
        "http(s) URL batches are POSTed to",
    )
    .alias("ingest")
    .warns("changing ingest endpoint mid-run may cause partial batch delivery to old endpoint"),
    KeySpec::new(
        "output.spool_dir",
        Warn,
        ValueKind::Path,
        "spool",
        "directory for batches ingest could not take",
    )
    .alias("spool_dir")
    .warns("changing spool directory mid-run leaves existing spooled files in old directory"),
    KeySpec::new(
        "output.file",
        Warn,
        ValueKind::Path,
        "",
        "file batches are appended to (empty = stdout)",
    )
    .flag("output")
    .warns("changing output file mid-run splits output across files"),
    KeySpec::new(
        "redis.addr",
        Restart,
        ValueKind::String,
        "",
        "shared dedup Redis (empty = memory dedup)",
    )
    .alias("redis_addr")
    .env("REDIS_ADDR"),
    KeySpec::new(
        "redis.queue_addr",
        Restart,
        ValueKind::String,
        "",
        "queue Redis; selects queue mode",
    )
    .alias("redis_queue_addr")
    .env("REDIS_QUEUE_ADDR"),
    KeySpec::new(
        "redis.queue_key",
        Restart,
        ValueKind::String,
        "spyder:queue",
        "queue list key",
    )
    .alias("redis_queue_key")
    .env("REDIS_QUEUE_KEY"),
    KeySpec::new(
        "redis.lease_timeout",
        Immediate,
        POSITIVE_DURATION,
        "120s",
        "lease on a queue item; must exceed crawling.task_timeout",
    ),
    KeySpec::new(
        "redis.max_attempts",
        Immediate,
        int(1, U32_MAX),
        "3",
        "tries before an item goes to <key>:dead",
    ),
    KeySpec::new(
        "dedup.ttl",
        Restart,
        duration_at_least(Duration::from_secs(1)),
        "24h",
        "how long a record counts as seen",
    ),
    KeySpec::new(
        "dedup.memory_max_entries",
        Restart,
        int(1000, u64::MAX),
        "2000000",
        "memory dedup capacity",
    ),
    KeySpec::new(
        "mtls.cert",
        Restart,
        ValueKind::Path,
        "",
        "client certificate (PEM) for ingest",
    )
    .alias("mtls_cert"),
    KeySpec::new(
        "mtls.key",
        Restart,
        ValueKind::Path,
        "",
        "client key (PEM) for ingest",
    )
    .alias("mtls_key"),
    KeySpec::new(
        "mtls.ca",
        Restart,
        ValueKind::Path,
        "",
        "CA (PEM) that replaces the default roots for ingest",
    )
    .alias("mtls_ca"),
    KeySpec::new(
        "telemetry.metrics_addr",
        Restart,
        ValueKind::String,
        ":9090",
        "health, metrics and API listen address (empty = off)",
    )
    .alias("metrics_addr"),
    KeySpec::new(
        "telemetry.otel_endpoint",
        Restart,
        ValueKind::String,
        "",
        "OTLP/HTTP traces endpoint (empty = off)",
    )
    .alias("otel_endpoint"),
    KeySpec::new(
        "telemetry.otel_insecure",
        Restart,
        ValueKind::Bool,
        "true",
        "OTLP without TLS",
    )
    .alias("otel_insecure"),
    KeySpec::new(
        "telemetry.otel_service",
        Restart,
        ValueKind::String,
        "spyder-probe",
        "OTLP service name",
    )
    .alias("otel_service"),
    KeySpec::new(
        "telemetry.stall_after",
        Immediate,
        POSITIVE_DURATION,
        "300s",
        "no finished task for this long degrades health",
    ),
    KeySpec::new(
        "api.rate_limit",
        Immediate,
        int(1, U32_MAX),
        "100",
        "API requests per second",
    ),
    KeySpec::new(
        "api.rate_burst",
        Immediate,
        int(1, U32_MAX),
        "20",
        "API token bucket depth",
    ),
    KeySpec::new(
        "api.keys",
        ApiOnly,
        ValueKind::ApiKeys,
        "",
        "API keys: [{key, name, scope}], scope read, write or admin",
    )
    .env("SPYDER_API_KEYS"),
    KeySpec::new(
        "logging.level",
        Immediate,
        ValueKind::Choice(LOG_LEVELS),
        "info",
        "log level: debug, info, warn or error",
    )
    .env("LOG_LEVEL"),
    KeySpec::new(
        "logging.format",
        Immediate,
        ValueKind::Choice(LOG_FORMATS),
        "auto",
        "log format: auto (text on a TTY), text or json",
    )
    .flag("log_format"),
    KeySpec::new(
        "mongodb.uri",
        Restart,
        ValueKind::String,
        "",
        "not implemented yet; validated only",
    ),
    KeySpec::new(
        "mongodb.database",
        Restart,
        ValueKind::String,
        "spyder",
        "not implemented yet; validated only",
    ),
    KeySpec::new(
        "dashboard.history_size",
        Restart,
        int(1, 1_000_000),
        "1000",
        "dashboard history entries",
    ),
];

/// Every configuration key, in the order of SPEC §2.6.
pub fn keys() -> &'static [KeySpec] {
    KEYS
}

/// The key with this canonical path or old flat alias.
pub fn find_key(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter()
        .find(|k| k.path == name || k.alias == Some(name))
}

/// The reload tier of a canonical path (or alias); `None` for an unknown key.
pub fn tier_of(path: &str) -> Option<Tier> {
    find_key(path).map(|k| k.tier)
}

/// Whether `name` is a section (`crawling`, `dns`, ...) rather than a key.
pub(crate) fn is_section(name: &str) -> bool {
    KEYS.iter().any(|k| k.section() == Some(name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn paths_aliases_and_flags_are_unique() {
        let mut names = HashSet::new();
        for key in keys() {
            assert!(names.insert(key.path), "duplicate {}", key.path);
            if let Some(alias) = key.alias {
                assert!(names.insert(alias), "duplicate alias {alias}");
            }
        }
        let mut flags = HashSet::new();
        for flag in keys().iter().filter_map(|k| k.flag) {
            assert!(flags.insert(flag), "duplicate flag {flag}");
        }
    }

    #[test]
    fn only_tier_two_keys_warn() {
        for key in keys() {
            assert_eq!(
                key.reload_warning.is_some(),
                key.tier == Tier::Warn,
                "{}",
                key.path
            );
        }
    }
}

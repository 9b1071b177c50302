//! The key table: every configuration key with its alias, flag, environment variable,
//! type, default and reload tier. Loading, `-set`, flags, tiers and docs all read it.

use std::time::Duration;

use serde_json::Value;

use crate::schema::Scope;

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
    Int {
        /// The least value allowed.
        min: u64,
        /// The greatest value allowed.
        max: u64,
    },
    /// A number greater than 0 and at most `max` (finite).
    Float {
        /// The greatest value allowed.
        max: f64,
    },
    /// A Go duration or integer seconds in `min..=max`. Every maximum is small
    /// enough that adding it to an `Instant` (or doubling it) cannot overflow.
    Duration {
        /// The shortest duration allowed.
        min: Duration,
        /// The longest duration allowed.
        max: Duration,
    },
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
    /// The API scope a `PATCH /api/v1/config` naming this key needs: `admin` for
    /// keys that widen what the probe reads, writes or connects to (output
    /// destinations, private ranges, trust roots, resolvers, ports, addresses),
    /// `write` for the rest.
    pub scope: Scope,
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
            scope: Scope::Write,
            help,
        }
    }

    /// Changing it through the API needs an `admin` key.
    const fn admin(mut self) -> Self {
        self.scope = Scope::Admin;
        self
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

const fn duration(min: Duration, max: Duration) -> ValueKind {
    ValueKind::Duration { min, max }
}

const MILLISECOND: Duration = Duration::from_millis(1);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);
/// A crawl timeout: 1 ms to 1 h.
const TIMEOUT: ValueKind = duration(MILLISECOND, HOUR);
/// 1 GiB.
const GIB: u64 = 1 << 30;

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
    .admin()
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
        ValueKind::Float { max: 1e6 },
        "1",
        "requests per second per host",
    ),
    KeySpec::new(
        "crawling.rate_burst",
        Immediate,
        int(1, 10_000),
        "2",
        "per-host token bucket depth",
    ),
    KeySpec::new(
        "crawling.rate_global",
        Immediate,
        int(0, 1_000_000),
        "0",
        "requests per second across all hosts, evenly spaced (0 = no limit; -rl)",
    )
    .flag("rate_global"),
    KeySpec::new(
        "crawling.max_conns_per_ip",
        Immediate,
        int(0, 65_536),
        "32",
        "connections open at once to one IP address, all workers together (0 = no cap)",
    ),
    KeySpec::new(
        "crawling.max_domains",
        Immediate,
        int(0, 1_000_000_000_000),
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
    .admin()
    .flag("allow_private"),
    KeySpec::new(
        "crawling.task_timeout",
        Immediate,
        TIMEOUT,
        "30s",
        "deadline of one domain's crawl, waits included",
    ),
    KeySpec::new(
        "crawling.dns_timeout",
        Immediate,
        TIMEOUT,
        "10s",
        "deadline of the DNS phase",
    ),
    KeySpec::new(
        "crawling.tls_timeout",
        Immediate,
        TIMEOUT,
        "8s",
        "deadline of TCP connect plus TLS handshake",
    ),
    KeySpec::new(
        "crawling.http_timeout",
        Immediate,
        TIMEOUT,
        "15s",
        "deadline of one HTTP request",
    ),
    KeySpec::new(
        "crawling.body_max_bytes",
        Immediate,
        int(1024, GIB),
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
    .admin()
    .flag("allow_cidrs"),
    KeySpec::new(
        "crawling.https_port",
        Immediate,
        int(1, 65_535),
        "443",
        "port for TLS",
    )
    .admin(),
    KeySpec::new(
        "crawling.http_port",
        Immediate,
        int(1, 65_535),
        "80",
        "port for the plain HTTP fallback",
    )
    .admin(),
    KeySpec::new(
        "crawling.redirect_ports",
        Immediate,
        ValueKind::List,
        "",
        "ports redirects may lead to besides https_port and http_port (empty = any but the Fetch standard's bad ports)",
    )
    .admin(),
    KeySpec::new(
        "crawling.tls_roots",
        Restart,
        ValueKind::String,
        "webpki",
        "certificate verification roots: webpki, system or a PEM file path",
    )
    .admin(),
    KeySpec::new(
        "crawling.shutdown_grace",
        Immediate,
        duration(Duration::ZERO, HOUR),
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
    .admin()
    .flag("dns_servers"),
    KeySpec::new(
        "dns.query_timeout",
        Immediate,
        TIMEOUT,
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
        int(1, 65_536),
        "1024",
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
        int(0, 1_000_000),
        "10000",
        "DNS cache entries (0 = off)",
    ),
    KeySpec::new(
        "batch.max_edges",
        Immediate,
        int(1, 1_000_000),
        "10000",
        "edges per batch before a flush",
    )
    .alias("batch_max_edges"),
    KeySpec::new(
        "batch.flush_interval",
        Immediate,
        duration(Duration::from_millis(100), HOUR),
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
        "output.status_records",
        Restart,
        ValueKind::Bool,
        "false",
        "one status record per task (host, outcome, reason, phase timings); jsonl and csv only",
    )
    .flag("status_records"),
    KeySpec::new(
        "output.ingest",
        Warn,
        ValueKind::String,
        "",
        "http(s) URL batches are POSTed to",
    )
    .admin()
    .alias("ingest")
    .warns("changing ingest endpoint mid-run may cause partial batch delivery to old endpoint"),
    KeySpec::new(
        "output.spool_dir",
        Warn,
        ValueKind::Path,
        "spool",
        "directory for batches ingest could not take",
    )
    .admin()
    .alias("spool_dir")
    .warns("changing spool directory mid-run leaves existing spooled files in old directory"),
    KeySpec::new(
        "output.file",
        Warn,
        ValueKind::Path,
        "",
        "file batches are appended to (empty = stdout)",
    )
    .admin()
    .flag("output")
    .warns("changing output file mid-run splits output across files"),
    KeySpec::new(
        "redis.addr",
        Restart,
        ValueKind::String,
        "",
        "shared dedup Redis (empty = memory dedup)",
    )
    .admin()
    .alias("redis_addr")
    .env("REDIS_ADDR"),
    KeySpec::new(
        "redis.queue_addr",
        Restart,
        ValueKind::String,
        "",
        "queue Redis; selects queue mode",
    )
    .admin()
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
        duration(MILLISECOND, DAY),
        "120s",
        "lease on a queue item; must exceed crawling.task_timeout",
    ),
    KeySpec::new(
        "redis.max_attempts",
        Immediate,
        int(1, 1000),
        "3",
        "tries before an item goes to <key>:dead",
    ),
    KeySpec::new(
        "dedup.ttl",
        Restart,
        duration(Duration::from_secs(1), Duration::from_secs(365 * 24 * 3600)),
        "24h",
        "how long a record counts as seen",
    ),
    KeySpec::new(
        "dedup.memory_max_entries",
        Restart,
        int(1000, 1_000_000_000),
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
    .admin()
    .alias("mtls_cert"),
    KeySpec::new(
        "mtls.key",
        Restart,
        ValueKind::Path,
        "",
        "client key (PEM) for ingest",
    )
    .admin()
    .alias("mtls_key"),
    KeySpec::new(
        "mtls.ca",
        Restart,
        ValueKind::Path,
        "",
        "CA (PEM) that replaces the default roots for ingest",
    )
    .admin()
    .alias("mtls_ca"),
    KeySpec::new(
        "telemetry.metrics_addr",
        Restart,
        ValueKind::String,
        ":9090",
        "health, metrics and API listen address (empty = off)",
    )
    .admin()
    .alias("metrics_addr"),
    KeySpec::new(
        "telemetry.otel_endpoint",
        Restart,
        ValueKind::String,
        "",
        "OTLP/HTTP traces endpoint (empty = off)",
    )
    .admin()
    .alias("otel_endpoint"),
    KeySpec::new(
        "telemetry.otel_insecure",
        Restart,
        ValueKind::Bool,
        "true",
        "OTLP without TLS",
    )
    .admin()
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
        "telemetry.otel_sample_ratio",
        Immediate,
        ValueKind::Float { max: 1.0 },
        "1.0",
        "share of tasks traced (0 < ratio <= 1), by trace id",
    )
    .alias("otel_sample_ratio"),
    KeySpec::new(
        "telemetry.stall_after",
        Immediate,
        duration(MILLISECOND, DAY),
        "300s",
        "no finished task for this long degrades health",
    ),
    KeySpec::new(
        "api.rate_limit",
        Immediate,
        int(1, 1_000_000),
        "100",
        "API requests per second",
    ),
    KeySpec::new(
        "api.rate_burst",
        Immediate,
        int(1, 1_000_000),
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
    )
    .admin(),
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

/// The key a mistyped name most likely meant, for "did you mean" hints: the key
/// whose canonical path, alias or last path segment is closest to `name`
/// (`concurency` and `crawling.concurency` both give `crawling.concurrency`), or
/// `None` when nothing is close.
///
/// ```
/// assert_eq!(spyder_config::similar_key("concurency"), Some("crawling.concurrency"));
/// assert_eq!(spyder_config::similar_key("zzzz"), None);
/// ```
pub fn similar_key(name: &str) -> Option<&'static str> {
    // Leaves against leaves (a shared `crawling.` prefix says nothing), the name's
    // own section breaking ties (`api.rate_brust` is `api.rate_burst`).
    let (section, leaf) = name.rsplit_once('.').unwrap_or(("", name));
    let same_section = |k: &KeySpec| !section.is_empty() && k.section() == Some(section);
    best_match(
        leaf,
        KEYS.iter()
            .filter(|k| same_section(k))
            .chain(KEYS)
            .map(|k| {
                let key_leaf = k.path.rsplit('.').next().unwrap_or(k.path);
                (k.path, [k.alias, Some(key_leaf)])
            }),
    )
}

/// How alike two names must be (Jaro-Winkler, 0..=1) to be offered as a hint.
const SIMILAR: f64 = 0.85;

/// The answer whose best-scoring spelling is closest to `name`, if close enough.
pub(crate) fn best_match<'a, const N: usize>(
    name: &str,
    candidates: impl Iterator<Item = (&'a str, [Option<&'a str>; N])>,
) -> Option<&'a str> {
    let name = name.to_ascii_lowercase();
    candidates
        .map(|(answer, spellings)| {
            let score = spellings
                .into_iter()
                .flatten()
                .map(|s| strsim::jaro_winkler(&name, s))
                .fold(0.0, f64::max);
            (score, answer)
        })
        .filter(|(score, _)| *score >= SIMILAR)
        // The first of equal scores wins (`max_by` would keep the last).
        .fold(
            None,
            |best: Option<(f64, &str)>, (score, answer)| match best {
                Some((top, _)) if top >= score => best,
                _ => Some((score, answer)),
            },
        )
        .map(|(_, answer)| answer)
}

/// ` (did you mean "crawling.concurrency"?)` for a name close to a key, else empty.
pub(crate) fn did_you_mean(name: &str) -> String {
    similar_key(name)
        .map(|key| format!(" (did you mean \"{key}\"?)"))
        .unwrap_or_default()
}

/// The reload tier of a canonical path (or alias); `None` for an unknown key.
pub fn tier_of(path: &str) -> Option<Tier> {
    find_key(path).map(|k| k.tier)
}

/// The keys a nested change set (as `PATCH /api/v1/config` takes it; aliases and
/// dotted paths accepted) names, in change-set order. Names that are no key are
/// skipped; applying the change set refuses them.
pub fn keys_named(changes: &Value) -> Vec<&'static KeySpec> {
    let Value::Object(map) = changes else {
        return Vec::new();
    };
    let mut named = Vec::new();
    for (name, value) in map {
        if let Some(spec) = find_key(name) {
            named.push(spec);
        } else if let (true, Value::Object(section)) = (is_section(name), value) {
            named.extend(
                section
                    .keys()
                    .filter_map(|sub| find_key(&format!("{name}.{sub}"))),
            );
        }
    }
    named
}

/// The API scope a change set needs (SPEC §3.12): `admin` when it names any key
/// whose [`KeySpec::scope`] is `admin` (even at its current value), else `write`.
pub fn patch_scope(changes: &Value) -> Scope {
    keys_named(changes)
        .iter()
        .map(|k| k.scope)
        .max()
        .unwrap_or(Scope::Write)
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
    fn patch_scope_sees_nested_keys_aliases_and_dotted_paths() {
        use serde_json::json;
        let admin = [
            json!({"output": {"file": "/etc/cron.d/x"}}),
            json!({"ingest": "http://169.254.169.254/"}),
            json!({"spool_dir": "/tmp"}),
            json!({"crawling.allow_private": true}),
            json!({"crawling": {"concurrency": 4, "allow_cidrs": ["0.0.0.0/0"]}}),
            json!({"ua": "x", "dns": {"servers": ["10.0.0.1"]}}),
            json!({"mtls_ca": "/x.pem"}),
        ];
        for changes in admin {
            assert_eq!(patch_scope(&changes), Scope::Admin, "{changes}");
        }
        let write = [
            json!({}),
            json!({"crawling": {"concurrency": 4}, "ua": "x"}),
            json!({"output": {"format": "csv"}}),
            json!({"nosuch": {"file": "x"}}),
            json!({"crawling": "not a section object"}),
            json!([{"output": {"file": "x"}}]),
        ];
        for changes in write {
            assert_eq!(patch_scope(&changes), Scope::Write, "{changes}");
        }
    }

    #[test]
    fn every_range_has_a_finite_maximum_that_instant_arithmetic_survives() {
        let now = std::time::Instant::now();
        for key in keys() {
            match key.kind {
                ValueKind::Duration { min, max } => {
                    assert!(min <= max, "{}", key.path);
                    assert!(max <= Duration::from_secs(366 * 24 * 3600), "{}", key.path);
                    assert!(now.checked_add(max.saturating_mul(4)).is_some());
                }
                ValueKind::Int { min, max } => {
                    assert!(min <= max, "{}", key.path);
                    assert!(max <= 1 << 40, "{}: {max}", key.path);
                }
                ValueKind::Float { max } => assert!(max.is_finite(), "{}", key.path),
                _ => {}
            }
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

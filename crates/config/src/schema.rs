//! The typed configuration: sections, defaults and the nested serialized form.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use crate::duration::format_duration;

/// The whole configuration, nested as in SPEC §2.6. `Default` is the documented
/// defaults, with `run` stamped now and `dns.servers` read from `/etc/resolv.conf`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// Domains file; `-` = stdin; empty = none.
    pub domains: String,
    /// Probe id stamped on every edge.
    pub probe: String,
    /// Run id stamped on every edge.
    pub run: String,
    /// User-Agent for every request.
    pub ua: String,
    /// Suffixes whose hosts are resolved but never contacted.
    pub exclude_tlds: Vec<String>,
    /// `crawling.*`: how each domain is crawled.
    pub crawling: CrawlingConfig,
    /// `dns.*`: the DNS client.
    pub dns: DnsConfig,
    /// `batch.*`: when the emitter flushes.
    pub batch: BatchConfig,
    /// `output.*`: where batches go.
    pub output: OutputConfig,
    /// `redis.*`: the dedup and queue Redis.
    pub redis: RedisConfig,
    /// `dedup.*`: how long records count as seen.
    pub dedup: DedupConfig,
    /// `mtls.*`: the client certificate for ingest.
    pub mtls: MtlsConfig,
    /// `telemetry.*`: health, metrics, API listener and traces.
    pub telemetry: TelemetryConfig,
    /// `api.*`: the REST API's rate limit and keys.
    pub api: ApiConfig,
    /// `logging.*`: log level and format.
    pub logging: LoggingConfig,
    /// `mongodb.*` (validated; nothing connects yet).
    pub mongodb: MongoDbConfig,
    /// `dashboard.*`: the live dashboard's history (`GET /dashboard`, `/api/v1/events`).
    pub dashboard: DashboardConfig,
}

/// `crawling.*`: how each domain is crawled.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CrawlingConfig {
    /// Concurrent crawl tasks.
    pub concurrency: u32,
    /// Requests per second per host.
    pub rate_per_host: f64,
    /// Per-host token bucket depth.
    pub rate_burst: u32,
    /// Requests per second across all hosts (0 = no limit).
    pub rate_global: u32,
    /// Connections open at once to one IP address, all workers together (0 = no cap).
    pub max_conns_per_ip: u32,
    /// Cap on discoveries this probe enqueues (0 = no cap).
    pub max_domains: u64,
    /// Also crawl discovered domains.
    pub continuous: bool,
    /// Try plain HTTP when TLS fails.
    pub http_fallback: bool,
    /// Contact private and loopback addresses.
    pub allow_private: bool,
    /// Deadline of one domain's crawl, waits included.
    #[serde(serialize_with = "go_duration")]
    pub task_timeout: Duration,
    /// Deadline of the DNS phase.
    #[serde(serialize_with = "go_duration")]
    pub dns_timeout: Duration,
    /// Deadline of TCP connect plus TLS handshake.
    #[serde(serialize_with = "go_duration")]
    pub tls_timeout: Duration,
    /// Deadline of one HTTP request.
    #[serde(serialize_with = "go_duration")]
    pub http_timeout: Duration,
    /// Cap on decoded root-page bytes.
    pub body_max_bytes: u64,
    /// Most redirect hops followed.
    pub max_redirects: u32,
    /// Private ranges contacted anyway.
    pub allow_cidrs: Vec<IpNet>,
    /// Port for TLS.
    pub https_port: u16,
    /// Port for the plain HTTP fallback.
    pub http_port: u16,
    /// Ports a redirect may lead to besides the two above; empty = any but bad ports.
    pub redirect_ports: Vec<u16>,
    /// Certificate verification roots.
    pub tls_roots: TrustRoots,
    /// Time in-flight tasks get at shutdown.
    #[serde(serialize_with = "go_duration")]
    pub shutdown_grace: Duration,
}

/// `dns.*`: the DNS client.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsConfig {
    /// The resolvers queried.
    pub servers: Vec<SocketAddr>,
    /// How long one DNS try waits.
    #[serde(serialize_with = "go_duration")]
    pub query_timeout: Duration,
    /// DNS retries after the first try.
    pub retries: u32,
    /// Most open DNS queries per server.
    pub max_inflight: u32,
    /// UDP sockets the DNS client uses.
    pub sockets: u32,
    /// DNS cache entries (0 = off).
    pub cache_size: u32,
}

/// `batch.*`: when the emitter flushes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BatchConfig {
    /// Edges per batch before a flush.
    pub max_edges: u32,
    /// Longest time a batch waits before a flush.
    #[serde(serialize_with = "go_duration")]
    pub flush_interval: Duration,
    /// Nodes per batch before a flush, as a share of `max_edges`.
    pub node_threshold_ratio: f64,
}

/// `output.*`: where batches go.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputConfig {
    /// The output format.
    pub format: OutputFormat,
    /// Ingest URL; empty = write to `file` or stdout.
    pub ingest: String,
    /// Directory for batches ingest could not take.
    pub spool_dir: PathBuf,
    /// Output file; empty = stdout.
    pub file: PathBuf,
    /// One `status` record per task after its records (jsonl and csv only).
    pub status_records: bool,
}

/// `redis.*`: dedup and queue Redis.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RedisConfig {
    /// Shared dedup Redis; empty = memory dedup.
    pub addr: String,
    /// Queue Redis; non-empty selects queue mode.
    pub queue_addr: String,
    /// The queue's list key (`<key>` in SPEC §2.3).
    pub queue_key: String,
    /// How long a lease on a queue item lasts; must exceed `crawling.task_timeout`.
    #[serde(serialize_with = "go_duration")]
    pub lease_timeout: Duration,
    /// Tries before an item goes to `<key>:dead`.
    pub max_attempts: u32,
}

/// `dedup.*`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DedupConfig {
    /// How long a record counts as seen.
    #[serde(serialize_with = "go_duration")]
    pub ttl: Duration,
    /// Capacity of the memory dedup, in keys.
    pub memory_max_entries: u64,
}

/// `mtls.*`: client certificate for ingest; empty paths are unset.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct MtlsConfig {
    /// Client certificate (PEM) for ingest.
    pub cert: PathBuf,
    /// Client key (PEM) for ingest.
    pub key: PathBuf,
    /// CA (PEM) that replaces the default roots for ingest.
    pub ca: PathBuf,
}

/// `telemetry.*`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TelemetryConfig {
    /// Listen address of health, metrics and API; empty = off.
    pub metrics_addr: String,
    /// OTLP/HTTP traces endpoint (empty = off).
    pub otel_endpoint: String,
    /// Send OTLP without TLS.
    pub otel_insecure: bool,
    /// OTLP service name.
    pub otel_service: String,
    /// Share of tasks traced, by trace id (0 < ratio <= 1).
    pub otel_sample_ratio: f64,
    /// No finished task for this long degrades health.
    #[serde(serialize_with = "go_duration")]
    pub stall_after: Duration,
}

/// `api.*`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApiConfig {
    /// API requests per second.
    pub rate_limit: u32,
    /// API token bucket depth.
    pub rate_burst: u32,
    /// The API keys.
    pub keys: Vec<ApiKey>,
}

/// One API key (SPEC §3.12).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// The secret; at least 8 characters. Never logged.
    pub key: String,
    /// Unique name, shown in logs instead of the key.
    pub name: String,
    /// What the key may do.
    pub scope: Scope,
    /// Where the key came from (not serialized).
    #[serde(skip)]
    pub source: KeySource,
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("key", &"***")
            .field("name", &self.name)
            .field("scope", &self.scope)
            .field("source", &self.source)
            .finish()
    }
}

/// What an API key may do; `Read < Write < Admin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read the configuration and the stats.
    Read,
    /// Also change the configuration, submit domains, pause and resume.
    Write,
    /// Everything: also stop the probe, manage API keys and change `admin` keys.
    Admin,
}

impl Scope {
    /// Parses `read`, `write` or `admin` (exact, lower case).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Scope::Read),
            "write" => Some(Scope::Write),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }

    /// `read`, `write` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }
}

/// Where an API key was configured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeySource {
    /// `api.keys` in the file (or `-set api.keys=...`).
    #[default]
    Config,
    /// `SPYDER_API_KEYS`.
    Env,
    /// Created through `POST /api/v1/keys`.
    Api,
}

impl KeySource {
    /// `config`, `env` or `api`, as `GET /api/v1/keys` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeySource::Config => "config",
            KeySource::Env => "env",
            KeySource::Api => "api",
        }
    }
}

/// `logging.*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LoggingConfig {
    /// The log level.
    pub level: LogLevel,
    /// The log format.
    pub format: LogFormat,
}

/// `mongodb.*` (validated; nothing connects yet).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MongoDbConfig {
    /// The MongoDB connection URI (validated only).
    pub uri: String,
    /// The database name (validated only).
    pub database: String,
}

/// `dashboard.*`: the live dashboard's history (`GET /dashboard`, `/api/v1/events`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DashboardConfig {
    /// Dashboard history entries.
    pub history_size: u32,
}

/// `output.format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// One compact batch per line.
    #[default]
    Json,
    /// One record per line.
    Jsonl,
    /// RFC 4180 with one header.
    Csv,
}

/// `logging.level`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `debug`: debug messages and above.
    Debug,
    /// `info`: the default.
    #[default]
    Info,
    /// `warn`: warnings and errors.
    Warn,
    /// `error`: errors only.
    Error,
}

/// `logging.format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a TTY, JSON otherwise.
    #[default]
    Auto,
    /// Human-readable text.
    Text,
    /// One JSON object per line.
    Json,
}

/// `crawling.tls_roots`: trust anchors for certificate verification.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrustRoots {
    /// `webpki`: the Mozilla roots built in.
    #[default]
    Webpki,
    /// `system`: the operating system's store.
    System,
    /// A PEM file of CA certificates.
    PemFile(PathBuf),
}

impl Serialize for TrustRoots {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            TrustRoots::Webpki => serializer.serialize_str("webpki"),
            TrustRoots::System => serializer.serialize_str("system"),
            TrustRoots::PemFile(path) => path.serialize(serializer),
        }
    }
}

fn go_duration<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_duration(*d))
}

/// `run-<unix seconds>` for now (the model's one rule).
pub(crate) fn default_run_id() -> String {
    spyder_model::default_run_id()
}

impl Config {
    /// The defaults with this `run` id and these DNS servers (no file or clock access).
    pub(crate) fn defaults(run: String, dns_servers: Vec<SocketAddr>) -> Self {
        Self {
            domains: String::new(),
            probe: "local-1".to_owned(),
            run,
            ua: "SPYDERProbe/1.0 (+https://github.com/gustycube/spyder)".to_owned(),
            exclude_tlds: vec!["gov".to_owned(), "mil".to_owned(), "int".to_owned()],
            crawling: CrawlingConfig {
                concurrency: 256,
                rate_per_host: 1.0,
                rate_burst: 2,
                rate_global: 0,
                max_conns_per_ip: 32,
                max_domains: 0,
                continuous: false,
                http_fallback: true,
                allow_private: false,
                task_timeout: Duration::from_secs(30),
                dns_timeout: Duration::from_secs(10),
                tls_timeout: Duration::from_secs(8),
                http_timeout: Duration::from_secs(15),
                body_max_bytes: 524_288,
                max_redirects: 5,
                allow_cidrs: Vec::new(),
                https_port: 443,
                http_port: 80,
                redirect_ports: Vec::new(),
                tls_roots: TrustRoots::Webpki,
                shutdown_grace: Duration::from_secs(20),
            },
            dns: DnsConfig {
                servers: dns_servers,
                query_timeout: Duration::from_secs(2),
                retries: 2,
                max_inflight: 1024,
                sockets: 4,
                cache_size: 10_000,
            },
            batch: BatchConfig {
                max_edges: 10_000,
                flush_interval: Duration::from_secs(2),
                node_threshold_ratio: 0.5,
            },
            output: OutputConfig {
                format: OutputFormat::Json,
                ingest: String::new(),
                spool_dir: PathBuf::from("spool"),
                file: PathBuf::new(),
                status_records: false,
            },
            redis: RedisConfig {
                addr: String::new(),
                queue_addr: String::new(),
                queue_key: "spyder:queue".to_owned(),
                lease_timeout: Duration::from_secs(120),
                max_attempts: 3,
            },
            dedup: DedupConfig {
                ttl: Duration::from_secs(24 * 3600),
                memory_max_entries: 2_000_000,
            },
            mtls: MtlsConfig::default(),
            telemetry: TelemetryConfig {
                metrics_addr: ":9090".to_owned(),
                otel_endpoint: String::new(),
                otel_insecure: true,
                otel_service: "spyder-probe".to_owned(),
                otel_sample_ratio: 1.0,
                stall_after: Duration::from_secs(300),
            },
            api: ApiConfig {
                rate_limit: 100,
                rate_burst: 20,
                keys: Vec::new(),
            },
            logging: LoggingConfig {
                level: LogLevel::Info,
                format: LogFormat::Auto,
            },
            mongodb: MongoDbConfig {
                uri: String::new(),
                database: "spyder".to_owned(),
            },
            dashboard: DashboardConfig { history_size: 1000 },
        }
    }

    /// The nested canonical form for `GET /api/v1/config`, with API keys and URL
    /// passwords shown as `"***"`.
    pub fn redacted(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        crate::redact::redact(&mut value);
        value
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::defaults(
            default_run_id(),
            spyder_model::resolv_conf::system_servers(),
        )
    }
}

//! Layered loading: files (YAML and JSON, aliases, unknown keys), environment, flags,
//! precedence, validation messages, API keys, mapping and redaction.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use spyder_config::{
    Config, ConfigError, FlagValue, KeySource, Loaded, LogFormat, LogLevel, OutputFormat, Scope,
    Sources, Tier, TrustRoots, keys, load, tier_of,
};

/// A temporary directory holding the test's files.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Self {
        Self(tempfile::tempdir().expect("create a temp dir"))
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, text).expect("write a test file");
        path
    }
}

/// Flags as `-name value` for a key with that flag name.
fn flag(name: &str, value: &str) -> FlagValue {
    FlagValue::flag(name, value)
}

/// `-set path=value`.
fn set(path: &str, value: &str) -> FlagValue {
    FlagValue::set(path, value)
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sources(file: Option<&Path>, env: Vec<(String, String)>, flags: Vec<FlagValue>) -> Sources {
    Sources {
        file: file.map(Path::to_path_buf),
        env,
        flags,
    }
}

/// Loads with the DNS servers pinned so that no test depends on /etc/resolv.conf.
fn load_ok(file: Option<&Path>, env: Vec<(String, String)>, mut flags: Vec<FlagValue>) -> Loaded {
    flags.insert(0, set("dns.servers", "127.0.0.1:53"));
    load(&sources(file, env, flags)).expect("configuration loads")
}

fn load_err(file: Option<&Path>, env: Vec<(String, String)>, mut flags: Vec<FlagValue>) -> String {
    flags.insert(0, set("dns.servers", "127.0.0.1:53"));
    match load(&sources(file, env, flags)) {
        Ok(loaded) => panic!("expected an error, loaded {:?}", loaded.config),
        Err(e) => e.to_string(),
    }
}

fn defaults() -> Config {
    load_ok(None, Vec::new(), Vec::new()).config
}

fn api_keys_env(json: &str) -> (String, String) {
    (
        "SPYDER_API_KEYS".to_owned(),
        base64::engine::general_purpose::STANDARD.encode(json),
    )
}

const ALIASES_YAML: &str = "\
concurrency: 8
batch_max_edges: 100
batch_flush_sec: 5
output_format: jsonl
ingest: https://ingest.example/v1/batches
spool_dir: /var/spool/spyder
redis_addr: 127.0.0.1:6379
redis_queue_addr: redis://user:pw@127.0.0.1:6380/2
redis_queue_key: q:test
metrics_addr: 127.0.0.1:0
otel_endpoint: http://127.0.0.1:4318
otel_insecure: false
otel_service: svc
";

fn check_aliases(config: &Config) {
    assert_eq!(config.crawling.concurrency, 8);
    assert_eq!(config.batch.max_edges, 100);
    assert_eq!(config.batch.flush_interval, Duration::from_secs(5));
    assert_eq!(config.output.format, OutputFormat::Jsonl);
    assert_eq!(config.output.ingest, "https://ingest.example/v1/batches");
    assert_eq!(config.output.spool_dir, PathBuf::from("/var/spool/spyder"));
    assert_eq!(config.redis.addr, "127.0.0.1:6379");
    assert_eq!(config.redis.queue_addr, "redis://user:pw@127.0.0.1:6380/2");
    assert_eq!(config.redis.queue_key, "q:test");
    assert_eq!(config.telemetry.metrics_addr, "127.0.0.1:0");
    assert_eq!(config.telemetry.otel_endpoint, "http://127.0.0.1:4318");
    assert!(!config.telemetry.otel_insecure);
    assert_eq!(config.telemetry.otel_service, "svc");
}

#[test]
fn flat_aliases_in_yaml() {
    let dir = Dir::new();
    let cert = dir.file("c.pem", "cert");
    let key = dir.file("k.pem", "key");
    let ca = dir.file("ca.pem", "ca");
    let text = format!(
        "{ALIASES_YAML}mtls_cert: {}\nmtls_key: {}\nmtls_ca: {}\n",
        cert.display(),
        key.display(),
        ca.display()
    );
    let path = dir.file("spyder.yml", &text);
    let loaded = load_ok(Some(&path), Vec::new(), Vec::new());
    check_aliases(&loaded.config);
    assert_eq!(loaded.config.mtls.cert, cert);
    assert_eq!(loaded.config.mtls.key, key);
    assert_eq!(loaded.config.mtls.ca, ca);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(loaded.file.as_deref(), Some(path.as_path()));
}

#[test]
fn flat_aliases_in_json() {
    let dir = Dir::new();
    let json = r#"{
        "concurrency": 8, "batch_max_edges": 100, "batch_flush_sec": 5,
        "output_format": "jsonl", "ingest": "https://ingest.example/v1/batches",
        "spool_dir": "/var/spool/spyder", "redis_addr": "127.0.0.1:6379",
        "redis_queue_addr": "redis://user:pw@127.0.0.1:6380/2", "redis_queue_key": "q:test",
        "metrics_addr": "127.0.0.1:0", "otel_endpoint": "http://127.0.0.1:4318",
        "otel_insecure": false, "otel_service": "svc"
    }"#;
    let path = dir.file("spyder.json", json);
    let loaded = load_ok(Some(&path), Vec::new(), Vec::new());
    check_aliases(&loaded.config);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn nested_yaml_sets_every_section() {
    let dir = Dir::new();
    let pem = dir.file("roots.pem", "pem");
    let text = format!(
        "\
domains: list.txt
probe: p-9
run: r-9
ua: TestBot/2.0
exclude_tlds: [GOV, .mil]
crawling:
  concurrency: 32
  rate_per_host: 2.5
  rate_burst: 4
  max_domains: 50
  continuous: true
  http_fallback: false
  allow_private: true
  task_timeout: 1m30s
  dns_timeout: 5
  tls_timeout: 1.5s
  http_timeout: 500ms
  body_max_bytes: 2048
  max_redirects: 0
  allow_cidrs: [127.0.0.0/8, '::1/128']
  https_port: 8443
  http_port: 8080
  tls_roots: {}
  shutdown_grace: 0
dns:
  servers: ['10.0.0.1', '10.0.0.2:5353', '[::1]:53', '::2']
  query_timeout: 750ms
  retries: 0
  max_inflight: 8
  sockets: 2
  cache_size: 0
batch:
  max_edges: 7
  flush_interval: 100ms
  node_threshold_ratio: 1
output:
  format: CSV
  file: out.csv
redis:
  lease_timeout: 2h45m
  max_attempts: 9
dedup:
  ttl: 1s
  memory_max_entries: 1000
telemetry:
  stall_after: 10s
api:
  rate_limit: 5
  rate_burst: 1
logging:
  level: WARN
  format: json
mongodb:
  uri: mongodb://db.example:27017
  database: graph_db-1
dashboard:
  history_size: 1000000
",
        pem.display()
    );
    let path = dir.file("spyder.yaml", &text);
    let loaded = load(&sources(Some(&path), Vec::new(), Vec::new())).expect("loads");
    let c = &loaded.config;
    assert_eq!(c.domains, "list.txt");
    assert_eq!((c.probe.as_str(), c.run.as_str()), ("p-9", "r-9"));
    assert_eq!(c.ua, "TestBot/2.0");
    assert_eq!(c.exclude_tlds, ["gov", "mil"]);
    let k = &c.crawling;
    assert_eq!((k.concurrency, k.rate_per_host, k.rate_burst), (32, 2.5, 4));
    assert_eq!(k.max_domains, 50);
    assert!(k.continuous && !k.http_fallback && k.allow_private);
    assert_eq!(k.task_timeout, Duration::from_secs(90));
    assert_eq!(k.dns_timeout, Duration::from_secs(5));
    assert_eq!(k.tls_timeout, Duration::from_millis(1500));
    assert_eq!(k.http_timeout, Duration::from_millis(500));
    assert_eq!((k.body_max_bytes, k.max_redirects), (2048, 0));
    let cidrs: Vec<String> = k.allow_cidrs.iter().map(ToString::to_string).collect();
    assert_eq!(cidrs, ["127.0.0.0/8", "::1/128"]);
    assert_eq!((k.https_port, k.http_port), (8443, 8080));
    assert_eq!(k.tls_roots, TrustRoots::PemFile(pem.clone()));
    assert_eq!(k.shutdown_grace, Duration::ZERO);
    let servers: Vec<String> = c.dns.servers.iter().map(ToString::to_string).collect();
    assert_eq!(
        servers,
        ["10.0.0.1:53", "10.0.0.2:5353", "[::1]:53", "[::2]:53"]
    );
    assert_eq!(c.dns.query_timeout, Duration::from_millis(750));
    assert_eq!((c.dns.retries, c.dns.max_inflight), (0, 8));
    assert_eq!((c.dns.sockets, c.dns.cache_size), (2, 0));
    assert_eq!(c.batch.max_edges, 7);
    assert_eq!(c.batch.flush_interval, Duration::from_millis(100));
    assert_eq!(c.batch.node_threshold_ratio, 1.0);
    assert_eq!(c.output.format, OutputFormat::Csv);
    assert_eq!(c.output.file, PathBuf::from("out.csv"));
    assert_eq!(
        c.redis.lease_timeout,
        Duration::from_secs(2 * 3600 + 45 * 60)
    );
    assert_eq!(c.redis.max_attempts, 9);
    assert_eq!(c.dedup.ttl, Duration::from_secs(1));
    assert_eq!(c.dedup.memory_max_entries, 1000);
    assert_eq!(c.telemetry.stall_after, Duration::from_secs(10));
    assert_eq!((c.api.rate_limit, c.api.rate_burst), (5, 1));
    assert_eq!(c.logging.level, LogLevel::Warn);
    assert_eq!(c.logging.format, LogFormat::Json);
    assert_eq!(c.mongodb.database, "graph_db-1");
    assert_eq!(c.dashboard.history_size, 1_000_000);
    assert_eq!(
        loaded.warnings,
        ["mongodb storage is not implemented in this version; mongodb.* ignored"]
    );
}

#[test]
fn nested_key_wins_over_alias_with_a_warning() {
    let dir = Dir::new();
    let path = dir.file(
        "spyder.yaml",
        "concurrency: 8\ncrawling:\n  concurrency: 16\n",
    );
    let loaded = load_ok(Some(&path), Vec::new(), Vec::new());
    assert_eq!(loaded.config.crawling.concurrency, 16);
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(
        loaded.warnings[0].contains("\"concurrency\" and \"crawling.concurrency\" are both set"),
        "{}",
        loaded.warnings[0]
    );
}

#[test]
fn unknown_keys_only_warn() {
    let dir = Dir::new();
    let path = dir.file(
        "spyder.yaml",
        "bogus: 1\ncrawling:\n  nope: 2\n  concurrency: 3\nextra:\n  deep: true\n",
    );
    let loaded = load_ok(Some(&path), Vec::new(), Vec::new());
    assert_eq!(loaded.config.crawling.concurrency, 3);
    let mut warnings = loaded.warnings.clone();
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "config: unknown key \"bogus\" ignored",
            "config: unknown key \"crawling.nope\" ignored",
            "config: unknown key \"extra\" ignored",
        ]
    );
}

#[test]
fn a_mistyped_key_gets_a_did_you_mean() {
    // Issue #13: a near miss names the key it most likely meant; a far one does not.
    let dir = Dir::new();
    let path = dir.file(
        "spyder.yaml",
        "concurency: 3
crawling:
  rate_per_hots: 2
api:
  rate_brust: 5
output:
  formt: jsonl
zzz: 1
",
    );
    let loaded = load_ok(Some(&path), Vec::new(), Vec::new());
    let mut warnings = loaded.warnings.clone();
    warnings.sort();
    assert_eq!(
        warnings,
        [
            "config: unknown key \"api.rate_brust\" ignored (did you mean \"api.rate_burst\"?)",
            "config: unknown key \"concurency\" ignored (did you mean \"crawling.concurrency\"?)",
            "config: unknown key \"crawling.rate_per_hots\" ignored (did you mean \"crawling.rate_per_host\"?)",
            "config: unknown key \"output.formt\" ignored (did you mean \"output.format\"?)",
            "config: unknown key \"zzz\" ignored",
        ]
    );
    let err = spyder_config::load(&Sources {
        file: None,
        env: Default::default(),
        flags: vec![FlagValue::set("crawling.concurrencyy", "3")],
    })
    .expect_err("an unknown -set key is an error");
    assert!(
        err.to_string()
            .contains("(did you mean \"crawling.concurrency\"?)"),
        "{err}"
    );
}

#[test]
fn precedence_is_default_file_env_flag() {
    let dir = Dir::new();
    let path = dir.file(
        "spyder.yaml",
        "redis:\n  queue_key: from-file\nlogging:\n  level: error\n",
    );
    assert_eq!(defaults().redis.queue_key, "spyder:queue");
    assert_eq!(defaults().logging.level, LogLevel::Info);

    let file_only = load_ok(Some(&path), Vec::new(), Vec::new()).config;
    assert_eq!(file_only.redis.queue_key, "from-file");
    assert_eq!(file_only.logging.level, LogLevel::Error);

    let vars = env(&[("REDIS_QUEUE_KEY", "from-env"), ("LOG_LEVEL", "warn")]);
    let with_env = load_ok(Some(&path), vars.clone(), Vec::new()).config;
    assert_eq!(with_env.redis.queue_key, "from-env");
    assert_eq!(with_env.logging.level, LogLevel::Warn);

    let flags = vec![
        flag("redis_queue_key", "from-flag"),
        set("logging.level", "debug"),
    ];
    let with_flags = load_ok(Some(&path), vars, flags).config;
    assert_eq!(with_flags.redis.queue_key, "from-flag");
    assert_eq!(with_flags.logging.level, LogLevel::Debug);
}

#[test]
fn a_later_flag_wins_and_only_the_merged_value_is_checked() {
    let dir = Dir::new();
    let path = dir.file("spyder.yaml", "crawling:\n  concurrency: 0\n");
    let flags = vec![flag("concurrency", "5"), set("concurrency", "7")];
    let config = load_ok(Some(&path), Vec::new(), flags).config;
    assert_eq!(config.crawling.concurrency, 7);
}

#[test]
fn redis_env_vars_empty_means_unset() {
    let dir = Dir::new();
    let path = dir.file(
        "spyder.yaml",
        "redis_addr: 10.0.0.1:6379\nredis_queue_key: keep\n",
    );
    let vars = env(&[
        ("REDIS_ADDR", ""),
        ("REDIS_QUEUE_ADDR", ""),
        ("REDIS_QUEUE_KEY", ""),
    ]);
    let config = load_ok(Some(&path), vars, Vec::new()).config;
    assert_eq!(config.redis.addr, "10.0.0.1:6379");
    assert_eq!(config.redis.queue_addr, "");
    assert_eq!(config.redis.queue_key, "keep");

    let vars = env(&[
        ("REDIS_ADDR", "127.0.0.1:7000"),
        ("REDIS_QUEUE_ADDR", "rediss://:secret@127.0.0.1:7001"),
        ("UNRELATED", "x"),
    ]);
    let config = load_ok(None, vars, Vec::new()).config;
    assert_eq!(config.redis.addr, "127.0.0.1:7000");
    assert_eq!(config.redis.queue_addr, "rediss://:secret@127.0.0.1:7001");
}

#[test]
fn log_level_env_any_case_or_startup_error() {
    for (text, want) in [
        ("DEBUG", LogLevel::Debug),
        ("Info", LogLevel::Info),
        ("wArN", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        let config = load_ok(None, env(&[("LOG_LEVEL", text)]), Vec::new()).config;
        assert_eq!(config.logging.level, want, "{text}");
    }
    let message = load_err(None, env(&[("LOG_LEVEL", "verbose")]), Vec::new());
    assert_eq!(
        message,
        "config: logging.level = \"verbose\" (from env LOG_LEVEL): must be one of debug, info, warn, error"
    );
}

#[test]
fn spyder_api_keys_merge_with_file_keys_env_winning() {
    let dir = Dir::new();
    let path = dir.file(
        "spyder.yaml",
        "api:\n  keys:\n    - {key: file-key-ops-1, name: ops, scope: read}\n    - {key: file-key-ci-12, name: ci, scope: write}\n",
    );
    let vars = vec![api_keys_env(
        r#"[{"key":"env-key-ops-1","name":"ops","scope":"admin"},{"key":"env-key-new-1","name":"new","scope":"read"}]"#,
    )];
    let loaded = load_ok(Some(&path), vars, Vec::new());
    let keys: Vec<(&str, &str, Scope, KeySource)> = loaded
        .config
        .api
        .keys
        .iter()
        .map(|k| (k.key.as_str(), k.name.as_str(), k.scope, k.source))
        .collect();
    assert_eq!(
        keys,
        [
            ("env-key-ops-1", "ops", Scope::Admin, KeySource::Env),
            ("file-key-ci-12", "ci", Scope::Write, KeySource::Config),
            ("env-key-new-1", "new", Scope::Read, KeySource::Env),
        ]
    );
    assert!(
        loaded.warnings.iter().any(|w| w.contains("\"ops\"")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn spyder_api_keys_bad_entries_name_their_index() {
    let cases = [
        (
            r#"[{"key":"long-enough","name":"a","scope":"read"},{"key":"short","name":"b","scope":"read"}]"#,
            "config: api.keys[1].key (from env SPYDER_API_KEYS): must be a string of at least 8 characters",
        ),
        (
            r#"[{"key":"long-enough","name":"a","scope":"root"}]"#,
            "config: api.keys[0].scope = \"root\" (from env SPYDER_API_KEYS): must be read, write or admin",
        ),
        (
            r#"[{"key":"long-enough","name":"a","scope":"read"},{"key":"long-enough-2","name":"a","scope":"read"}]"#,
            "config: api.keys[1].name = \"a\" (from env SPYDER_API_KEYS): names must be unique",
        ),
        (
            r#"[{"key":"long-enough","name":"","scope":"read"}]"#,
            "config: api.keys[0].name (from env SPYDER_API_KEYS): must not be empty",
        ),
    ];
    for (json, want) in cases {
        let message = load_err(None, vec![api_keys_env(json)], Vec::new());
        assert_eq!(message, want);
        assert!(!message.contains("long-enough"), "a key leaked: {message}");
    }
    let not_base64 = load_err(None, env(&[("SPYDER_API_KEYS", "not base64!")]), Vec::new());
    assert!(
        not_base64
            .starts_with("config: api.keys (from env SPYDER_API_KEYS): must be standard base64"),
        "{not_base64}"
    );
    let not_array = load_err(None, vec![api_keys_env(r#"{"key":"x"}"#)], Vec::new());
    assert!(not_array.contains("JSON array"), "{not_array}");
}

#[test]
fn api_keys_in_the_file_are_checked_too() {
    let dir = Dir::new();
    let path = dir.file(
        "spyder.json",
        r#"{"api": {"keys": [{"key": "abcdefgh", "name": "x", "scope": "write", "extra": 1}]}}"#,
    );
    let message = load_err(Some(&path), Vec::new(), Vec::new());
    assert!(
        message.starts_with(&format!(
            "config: api.keys[0] (from {}): unknown field",
            path.display()
        )),
        "{message}"
    );
}

#[test]
fn b13_flags_complete_a_file_and_queue_mode_needs_no_domains() {
    let dir = Dir::new();
    let path = dir.file("spyder.yaml", "probe: p1\n");
    let config = load_ok(Some(&path), Vec::new(), vec![flag("domains", "f.txt")]).config;
    assert_eq!(config.domains, "f.txt");
    assert_eq!(config.probe, "p1");

    let config = load_ok(
        Some(&path),
        env(&[("REDIS_QUEUE_ADDR", "127.0.0.1:6379")]),
        Vec::new(),
    )
    .config;
    assert_eq!(config.domains, "");
    assert_eq!(config.redis.queue_addr, "127.0.0.1:6379");
}

#[test]
fn b14_otel_insecure_false_in_the_file_holds() {
    let dir = Dir::new();
    for (name, text) in [
        ("a.yaml", "otel_insecure: false\n"),
        ("b.yaml", "telemetry:\n  otel_insecure: false\n"),
        ("c.json", r#"{"telemetry": {"otel_insecure": false}}"#),
    ] {
        let path = dir.file(name, text);
        let config = load_ok(Some(&path), Vec::new(), Vec::new()).config;
        assert!(!config.telemetry.otel_insecure, "{name}");
    }
    assert!(defaults().telemetry.otel_insecure);
}

#[test]
fn b15_explicit_empty_zero_and_false_win() {
    let dir = Dir::new();
    let path = dir.file(
        "spyder.yaml",
        "exclude_tlds: []\nmetrics_addr: ''\ncrawling:\n  http_fallback: false\n  max_redirects: 0\n",
    );
    let config = load_ok(Some(&path), Vec::new(), Vec::new()).config;
    assert!(config.exclude_tlds.is_empty());
    assert_eq!(config.telemetry.metrics_addr, "");
    assert!(!config.crawling.http_fallback);
    assert_eq!(config.crawling.max_redirects, 0);

    let config = load_ok(
        None,
        Vec::new(),
        vec![flag("exclude_tlds", ""), flag("metrics_addr", "")],
    )
    .config;
    assert!(config.exclude_tlds.is_empty());
    assert_eq!(config.telemetry.metrics_addr, "");

    let replaced = load_ok(
        None,
        Vec::new(),
        vec![flag("exclude_tlds", "test, example")],
    )
    .config;
    assert_eq!(replaced.exclude_tlds, ["test", "example"]);
    assert_eq!(defaults().exclude_tlds, ["gov", "mil", "int"]);
    assert_eq!(defaults().telemetry.metrics_addr, ":9090");
}

/// `-set key=value` that must fail with `key = shown (from -set key): reason`.
#[test]
fn every_range_is_checked_with_source_key_value_and_reason() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "crawling.concurrency",
            "65537",
            "65537",
            "must be between 1 and 65536",
        ),
        (
            "crawling.rate_per_host",
            "0",
            "0",
            "must be greater than 0 and at most 1000000",
        ),
        (
            "crawling.rate_per_host",
            "-1.5",
            "-1.5",
            "must be greater than 0",
        ),
        (
            "crawling.rate_burst",
            "0",
            "0",
            "must be between 1 and 10000",
        ),
        (
            "crawling.max_domains",
            "-1",
            "-1",
            "must be between 0 and 1000000000000",
        ),
        (
            "crawling.max_domains",
            "1000000000001",
            "1000000000001",
            "must be between 0 and 1000000000000",
        ),
        (
            "crawling.rate_per_host",
            "1000001",
            "1000001",
            "must be greater than 0 and at most 1000000",
        ),
        (
            "crawling.rate_per_host",
            "NaN",
            "NaN",
            "must be greater than 0",
        ),
        (
            "crawling.body_max_bytes",
            "1023",
            "1023",
            "must be between 1024 and 1073741824",
        ),
        (
            "crawling.body_max_bytes",
            "1073741825",
            "1073741825",
            "must be between 1024 and 1073741824",
        ),
        (
            "crawling.max_redirects",
            "21",
            "21",
            "must be between 0 and 20",
        ),
        (
            "crawling.https_port",
            "0",
            "0",
            "must be between 1 and 65535",
        ),
        (
            "crawling.http_port",
            "65536",
            "65536",
            "must be between 1 and 65535",
        ),
        ("crawling.continuous", "yes", "yes", "must be true or false"),
        (
            "crawling.task_timeout",
            "0s",
            "0s",
            "must be between 1ms and 1h",
        ),
        (
            "crawling.task_timeout",
            "1h0m0.001s",
            "1h0m0.001s",
            "must be between 1ms and 1h",
        ),
        (
            "crawling.dns_timeout",
            "18446744073709551615",
            "18446744073709551615",
            "must be between 1ms and 1h",
        ),
        (
            "crawling.dns_timeout",
            "99999999999999999999999h",
            "99999999999999999999999h",
            "must be between 1ms and 1h",
        ),
        (
            "crawling.shutdown_grace",
            "61m",
            "61m",
            "must be between 0s and 1h",
        ),
        (
            "dns.query_timeout",
            "2h",
            "2h",
            "must be between 1ms and 1h",
        ),
        (
            "crawling.dns_timeout",
            "abc",
            "abc",
            "must be a duration like 500ms, 1m30s or integer seconds",
        ),
        (
            "crawling.allow_cidrs",
            "10.0.0.0/33",
            "\"10.0.0.0/33\"",
            "invalid CIDR \"10.0.0.0/33\"",
        ),
        (
            "crawling.tls_roots",
            "/no/such/roots.pem",
            "\"/no/such/roots.pem\"",
            "cannot read the file",
        ),
        (
            "dns.servers",
            "dns.example",
            "\"dns.example\"",
            "invalid server \"dns.example\"",
        ),
        ("dns.servers", "", "\"\"", "must list at least one server"),
        ("dns.retries", "11", "11", "must be between 0 and 10"),
        ("dns.max_inflight", "0", "0", "must be between 1 and 65536"),
        (
            "dns.max_inflight",
            "65537",
            "65537",
            "must be between 1 and 65536",
        ),
        // Beyond u64: still told the range, not a misleading minimum.
        (
            "dns.cache_size",
            "18446744073709551615",
            "18446744073709551615",
            "must be between 0 and 1000000",
        ),
        (
            "dns.cache_size",
            "184467440737095516150000",
            "184467440737095516150000",
            "must be between 0 and 1000000",
        ),
        (
            "dns.cache_size",
            "-99999999999999999999999999999999999999999",
            "-99999999999999999999999999999999999999999",
            "must be between 0 and 1000000",
        ),
        ("dns.cache_size", "12x", "12x", "must be a whole number"),
        ("dns.sockets", "65", "65", "must be between 1 and 64"),
        ("dns.sockets", "0", "0", "must be between 1 and 64"),
        ("batch.max_edges", "0", "0", "must be between 1 and 1000000"),
        (
            "batch.flush_interval",
            "50ms",
            "50ms",
            "must be between 100ms and 1h",
        ),
        (
            "batch.flush_interval",
            "18446744073709551615",
            "18446744073709551615",
            "must be between 100ms and 1h",
        ),
        (
            "batch.node_threshold_ratio",
            "0",
            "0",
            "must be greater than 0 and at most 1",
        ),
        (
            "batch.node_threshold_ratio",
            "1.5",
            "1.5",
            "must be greater than 0 and at most 1",
        ),
        (
            "output.format",
            "xml",
            "\"xml\"",
            "must be one of json, jsonl, csv",
        ),
        (
            "output.ingest",
            "ftp://x",
            "\"ftp://x\"",
            "must be an http:// or https:// URL, or empty",
        ),
        (
            "redis.addr",
            "localhost",
            "\"localhost\"",
            "must be host:port, redis://",
        ),
        (
            "redis.addr",
            "http://h:1",
            "\"http://h:1\"",
            "must be host:port, redis://",
        ),
        (
            "redis.queue_addr",
            "redis://h",
            "\"redis://h\"",
            "must be host:port, redis://",
        ),
        (
            "redis.queue_addr",
            "redis://u:pw@h:1/x",
            "\"redis://u:***@h:1/x\"",
            "must be host:port, redis://",
        ),
        ("redis.queue_key", "", "\"\"", "must not be empty"),
        ("redis.max_attempts", "0", "0", "must be between 1 and 1000"),
        (
            "redis.lease_timeout",
            "25h",
            "25h",
            "must be between 1ms and 24h",
        ),
        (
            "dedup.ttl",
            "500ms",
            "500ms",
            "must be between 1s and 8760h",
        ),
        (
            "dedup.ttl",
            "9223372036854775807",
            "9223372036854775807",
            "must be between 1s and 8760h",
        ),
        (
            "dedup.memory_max_entries",
            "999",
            "999",
            "must be between 1000 and 1000000000",
        ),
        (
            "mtls.cert",
            "/no/such/cert.pem",
            "\"/no/such/cert.pem\"",
            "cannot read the file",
        ),
        (
            "telemetry.metrics_addr",
            "9090",
            "\"9090\"",
            "must be host:port or :port",
        ),
        ("api.rate_limit", "0", "0", "must be between 1 and 1000000"),
        ("api.rate_burst", "0", "0", "must be between 1 and 1000000"),
        (
            "telemetry.stall_after",
            "24h1s",
            "24h1s",
            "must be between 1ms and 24h",
        ),
        (
            "logging.format",
            "pretty",
            "\"pretty\"",
            "must be one of auto, text, json",
        ),
        (
            "mongodb.uri",
            "postgres://db",
            "\"postgres://db\"",
            "must be empty, mongodb://... or mongodb+srv://...",
        ),
        (
            "mongodb.database",
            "bad name",
            "\"bad name\"",
            "must be 1 to 63 characters",
        ),
        (
            "mongodb.database",
            &"d".repeat(64),
            "",
            "must be 1 to 63 characters",
        ),
        (
            "dashboard.history_size",
            "0",
            "0",
            "must be between 1 and 1000000",
        ),
        (
            "dashboard.history_size",
            "1000001",
            "1000001",
            "must be between 1 and 1000000",
        ),
        ("probe", "", "\"\"", "must not be empty"),
    ];
    for (key, value, shown, reason) in cases {
        let message = load_err(None, Vec::new(), vec![set(key, value)]);
        let head = if shown.is_empty() {
            format!("config: {key} = ")
        } else {
            format!("config: {key} = {shown} (from -set {key}): ")
        };
        assert!(
            message.starts_with(&head) && message.contains(reason),
            "{key}={value}: got {message:?}, want {head}...{reason}"
        );
    }
}

#[test]
fn the_spec_example_message_is_exact() {
    let message = load_err(None, Vec::new(), vec![flag("concurrency", "0")]);
    assert_eq!(
        message,
        "config: crawling.concurrency = 0 (from -concurrency): must be between 1 and 65536"
    );
}

#[test]
fn errors_name_the_file_or_env_var() {
    let dir = Dir::new();
    let path = dir.file("spyder.yaml", "crawling:\n  concurrency: 0\n");
    let message = load_err(Some(&path), Vec::new(), Vec::new());
    assert_eq!(
        message,
        format!(
            "config: crawling.concurrency = 0 (from {}): must be between 1 and 65536",
            path.display()
        )
    );
    let message = load_err(None, env(&[("REDIS_ADDR", "nope")]), Vec::new());
    assert!(
        message
            .starts_with("config: redis.addr = \"nope\" (from env REDIS_ADDR): must be host:port"),
        "{message}"
    );
}

#[test]
fn good_addresses_are_accepted() {
    for addr in [
        "127.0.0.1:6379",
        "redis.internal:6379",
        "[::1]:6379",
        "redis://127.0.0.1:6379",
        "redis://user:pass@127.0.0.1:6379/2",
        "rediss://:pass@redis.example:6380",
    ] {
        let config = load_ok(None, Vec::new(), vec![flag("redis_addr", addr)]).config;
        assert_eq!(config.redis.addr, addr);
    }
    for addr in [":9090", "127.0.0.1:0", "[::1]:9090", ""] {
        let config = load_ok(None, Vec::new(), vec![flag("metrics_addr", addr)]).config;
        assert_eq!(config.telemetry.metrics_addr, addr);
    }
    for uri in ["", "mongodb://h:27017", "mongodb+srv://cluster.example"] {
        let loaded = load_ok(None, Vec::new(), vec![set("mongodb.uri", uri)]);
        assert_eq!(loaded.config.mongodb.uri, uri);
        assert_eq!(loaded.warnings.len(), usize::from(!uri.is_empty()));
    }
}

#[test]
fn lease_timeout_must_exceed_task_timeout() {
    let dir = Dir::new();
    let path = dir.file("spyder.yaml", "crawling:\n  task_timeout: 200s\n");
    let message = load_err(Some(&path), Vec::new(), Vec::new());
    assert_eq!(
        message,
        format!(
            "config: redis.lease_timeout = 2m (default): must be greater than crawling.task_timeout \
             (3m20s, from {}); raise it or lower the task timeout",
            path.display()
        )
    );
    let message = load_err(None, Vec::new(), vec![set("redis.lease_timeout", "30")]);
    assert!(
        message.starts_with("config: redis.lease_timeout = 30s (from -set redis.lease_timeout): must be greater than crawling.task_timeout (30s, default)"),
        "{message}"
    );
    let both = vec![
        set("redis.lease_timeout", "40s"),
        set("crawling.task_timeout", "39s"),
    ];
    assert_eq!(
        load_ok(None, Vec::new(), both).config.redis.lease_timeout,
        Duration::from_secs(40)
    );
}

#[test]
fn mtls_cert_and_key_go_together() {
    let dir = Dir::new();
    let cert = dir.file("c.pem", "c");
    let message = load_err(
        None,
        Vec::new(),
        vec![flag("mtls_cert", &cert.display().to_string())],
    );
    assert_eq!(
        message,
        format!(
            "config: mtls.cert = \"{}\" (from -mtls_cert): mtls.key must be set too (mtls.cert and mtls.key go together)",
            cert.display()
        )
    );
}

#[test]
fn durations_accept_go_forms_and_integer_seconds() {
    let cases = [
        ("500ms", Duration::from_millis(500)),
        ("1m30s", Duration::from_secs(90)),
        ("59m30s", Duration::from_secs(3570)),
        ("1h", Duration::from_secs(3600)),
        ("1.5s", Duration::from_millis(1500)),
        ("45", Duration::from_secs(45)),
    ];
    for (text, want) in cases {
        let config = load_ok(None, Vec::new(), vec![set("crawling.http_timeout", text)]).config;
        assert_eq!(config.crawling.http_timeout, want, "{text}");
    }
    let dir = Dir::new();
    let path = dir.file("spyder.yaml", "batch_flush_sec: 3\ndedup:\n  ttl: 2h45m\n");
    let config = load_ok(Some(&path), Vec::new(), Vec::new()).config;
    assert_eq!(config.batch.flush_interval, Duration::from_secs(3));
    assert_eq!(config.dedup.ttl, Duration::from_secs(9900));
    let bad = dir.file("bad.yaml", "crawling:\n  task_timeout: 1.5\n");
    let message = load_err(Some(&bad), Vec::new(), Vec::new());
    assert!(message.contains("crawling.task_timeout = 1.5"), "{message}");
}

#[test]
fn file_problems_name_the_file() {
    let dir = Dir::new();
    let toml = dir.file("spyder.toml", "concurrency = 1\n");
    let message = load(&sources(Some(&toml), Vec::new(), Vec::new()))
        .expect_err("toml is refused")
        .to_string();
    assert_eq!(
        message,
        format!(
            "config: {}: unsupported file type; name it .yaml, .yml or .json",
            toml.display()
        )
    );

    let missing = dir.0.path().join("missing.yaml");
    let err = load(&sources(Some(&missing), Vec::new(), Vec::new())).expect_err("missing file");
    assert!(matches!(err, ConfigError::File { ref path, .. } if path == &missing));
    assert!(
        err.to_string()
            .starts_with(&format!("config: {}: cannot read", missing.display())),
        "{err}"
    );

    for (name, text, what) in [
        ("broken.yaml", "crawling: [unclosed\n", "invalid YAML"),
        ("broken.json", "{\"crawling\": ", "invalid JSON"),
        ("list.yaml", "- a\n- b\n", "the top level must be a mapping"),
    ] {
        let path = dir.file(name, text);
        let message = load(&sources(Some(&path), Vec::new(), Vec::new()))
            .expect_err("broken file")
            .to_string();
        assert!(
            message.starts_with(&format!("config: {}: {what}", path.display())),
            "{message}"
        );
    }

    let scalar = dir.file("scalar.yaml", "crawling: 5\n");
    let message = load_err(Some(&scalar), Vec::new(), Vec::new());
    assert!(
        message.contains("must be a mapping of crawling.* keys"),
        "{message}"
    );

    let empty = dir.file("empty.yaml", "");
    assert_eq!(
        load_ok(Some(&empty), Vec::new(), Vec::new())
            .config
            .crawling
            .concurrency,
        256
    );
}

#[test]
fn unknown_flag_key_is_an_error() {
    let err =
        load(&sources(None, Vec::new(), vec![set("crawling.nope", "1")])).expect_err("unknown key");
    assert!(matches!(err, ConfigError::UnknownKey { ref key, .. } if key == "crawling.nope"));
}

#[test]
fn set_reaches_aliases_lists_and_api_keys() {
    let flags = vec![
        set("batch_flush_sec", "7"),
        set("crawling.allow_cidrs", "10.0.0.0/8, 192.168.1.1"),
        set(
            "api.keys",
            r#"[{"key":"abcdefgh12","name":"cli","scope":"admin"}]"#,
        ),
    ];
    let config = load_ok(None, Vec::new(), flags).config;
    assert_eq!(config.batch.flush_interval, Duration::from_secs(7));
    let cidrs: Vec<String> = config
        .crawling
        .allow_cidrs
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(cidrs, ["10.0.0.0/8", "192.168.1.1/32"]);
    assert_eq!(config.api.keys.len(), 1);
    assert_eq!(config.api.keys[0].name, "cli");
}

#[test]
fn dns_servers_flag_parses_each_form() {
    let config = load_ok(
        None,
        Vec::new(),
        vec![flag("dns_servers", "1.1.1.1,[::1]:5353,::2,9.9.9.9:53")],
    )
    .config;
    let want: Vec<SocketAddr> = ["1.1.1.1:53", "[::1]:5353", "[::2]:53", "9.9.9.9:53"]
        .iter()
        .map(|s| s.parse().expect("test address"))
        .collect();
    assert_eq!(config.dns.servers, want);
}

#[test]
fn defaults_follow_the_spec() {
    let loaded = load(&sources(None, Vec::new(), Vec::new())).expect("defaults load");
    let c = &loaded.config;
    assert!(!c.dns.servers.is_empty());
    assert!(c.run.starts_with("run-"));
    let stamp: u64 = c.run["run-".len()..].parse().expect("unix seconds");
    assert!(stamp > 1_700_000_000);
    assert_eq!(c.probe, "local-1");
    assert_eq!(c.crawling.concurrency, 256);
    assert_eq!(c.crawling.task_timeout, Duration::from_secs(30));
    assert_eq!(c.redis.lease_timeout, Duration::from_secs(120));
    assert_eq!(c.dedup.ttl, Duration::from_secs(86_400));
    assert_eq!(c.output.spool_dir, PathBuf::from("spool"));
    assert_eq!(c.logging.level, LogLevel::Info);
    assert_eq!(c.logging.format, LogFormat::Auto);
}

/// The documented default of every key parses to the built-in default.
#[test]
fn documented_defaults_match_the_built_in_ones() {
    let base = serde_json::to_value(defaults()).expect("serialize");
    for key in keys() {
        if matches!(key.path, "run" | "dns.servers") {
            continue;
        }
        let loaded = load_ok(None, Vec::new(), vec![set(key.path, key.default)]);
        let got = serde_json::to_value(&loaded.config).expect("serialize");
        let pointer = format!("/{}", key.path.replace('.', "/"));
        assert_eq!(
            got.pointer(&pointer),
            base.pointer(&pointer),
            "{}",
            key.path
        );
    }
}

/// The serialized configuration has exactly the table's keys, nested.
#[test]
fn serialized_form_has_exactly_the_table_keys() {
    fn leaves(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map)
                if prefix.is_empty() || !keys().iter().any(|k| k.path == prefix) =>
            {
                for (name, v) in map {
                    let path = if prefix.is_empty() {
                        name.clone()
                    } else {
                        format!("{prefix}.{name}")
                    };
                    leaves(v, &path, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut found = Vec::new();
    leaves(
        &serde_json::to_value(defaults()).expect("serialize"),
        "",
        &mut found,
    );
    found.sort();
    let mut want: Vec<String> = keys().iter().map(|k| k.path.to_owned()).collect();
    want.sort();
    assert_eq!(found, want);
}

#[test]
fn tiers_follow_the_spec() {
    let cases = [
        ("crawling.concurrency", Tier::Immediate),
        ("concurrency", Tier::Immediate),
        ("ua", Tier::Immediate),
        ("exclude_tlds", Tier::Immediate),
        ("dns.servers", Tier::Immediate),
        ("redis.lease_timeout", Tier::Immediate),
        ("logging.level", Tier::Immediate),
        ("output.format", Tier::Warn),
        ("output.file", Tier::Warn),
        ("output.ingest", Tier::Warn),
        // Added (issue #13): it fixes a CSV stream's columns, so it needs a restart.
        ("output.status_records", Tier::Restart),
        ("domains", Tier::Restart),
        ("redis.addr", Tier::Restart),
        ("crawling.tls_roots", Tier::Restart),
        ("dns.sockets", Tier::Restart),
        ("dedup.ttl", Tier::Restart),
        ("telemetry.metrics_addr", Tier::Restart),
        ("mongodb.uri", Tier::Restart),
        ("dashboard.history_size", Tier::Restart),
        ("api.keys", Tier::ApiOnly),
    ];
    for (path, tier) in cases {
        assert_eq!(tier_of(path), Some(tier), "{path}");
    }
    assert_eq!(tier_of("crawling.nope"), None);
    let restart: Vec<&str> = keys()
        .iter()
        .filter(|k| k.tier == Tier::Restart)
        .map(|k| k.path)
        .collect();
    assert_eq!(restart.first(), Some(&"domains"));
    assert_eq!(restart.last(), Some(&"dashboard.history_size"));
    assert_eq!(restart.len(), 22);
}

#[test]
fn redacted_hides_keys_and_url_passwords() {
    let flags = vec![
        flag("redis_addr", "redis://user:hunter22@127.0.0.1:6379/0"),
        flag("redis_queue_addr", "127.0.0.1:6380"),
        flag("ingest", "https://bot:pw@ingest.example/v1"),
        set("mongodb.uri", "mongodb://admin:mongo-pw@db:27017"),
        set(
            "api.keys",
            r#"[{"key":"topsecret-1","name":"ops","scope":"admin"}]"#,
        ),
    ];
    let config = load_ok(None, Vec::new(), flags).config;
    let shown = config.redacted();
    let text = shown.to_string();
    for secret in ["hunter22", "topsecret-1", ":pw@", "mongo-pw"] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
    assert_eq!(shown["api"]["keys"][0]["key"], "***");
    assert_eq!(shown["api"]["keys"][0]["name"], "ops");
    assert_eq!(shown["api"]["keys"][0]["scope"], "admin");
    assert_eq!(shown["redis"]["addr"], "redis://user:***@127.0.0.1:6379/0");
    assert_eq!(shown["redis"]["queue_addr"], "127.0.0.1:6380");
    assert_eq!(
        shown["output"]["ingest"],
        "https://bot:***@ingest.example/v1"
    );
    assert_eq!(shown["crawling"]["task_timeout"], "30s");
    assert_eq!(shown["dedup"]["ttl"], "24h");
    assert_eq!(
        shown["exclude_tlds"],
        serde_json::json!(["gov", "mil", "int"])
    );
    assert_eq!(shown["crawling"]["tls_roots"], "webpki");
    assert_eq!(shown["dns"]["servers"], serde_json::json!(["127.0.0.1:53"]));
    // The typed configuration keeps the real values.
    assert_eq!(config.api.keys[0].key, "topsecret-1");
    assert!(!format!("{config:?}").contains("topsecret-1"));
}

#[test]
fn patched_applies_a_partial_change_set() {
    let current = defaults();
    let changes = serde_json::json!({
        "concurrency": 64,
        "crawling": {"rate_per_host": 1.0},
        "output": {"format": "csv"},
        "redis": {"addr": "127.0.0.1:6379"}
    });
    let patched = current
        .patched(&changes, spyder_config::Origin::Api)
        .expect("valid change set");
    assert_eq!(patched.config.crawling.concurrency, 64);
    assert_eq!(patched.config.output.format, OutputFormat::Csv);
    // rate_per_host is unchanged, so it is not reported.
    let changed: Vec<(&str, Tier)> = patched.changed.iter().map(|k| (k.path, k.tier)).collect();
    assert_eq!(
        changed,
        [
            ("crawling.concurrency", Tier::Immediate),
            ("output.format", Tier::Warn),
            ("redis.addr", Tier::Restart),
        ]
    );
    assert_eq!(
        patched.changed[1].reload_warning,
        Some("changing output format mid-run may cause mixed format output")
    );
    assert_eq!(
        current.crawling.concurrency, 256,
        "the original is untouched"
    );

    let origin = spyder_config::Origin::Api;
    let bad = current
        .patched(
            &serde_json::json!({"crawling": {"concurrency": 0}}),
            origin.clone(),
        )
        .expect_err("out of range");
    assert_eq!(
        bad.to_string(),
        "config: crawling.concurrency = 0 (from the API): must be between 1 and 65536"
    );
    let unknown = current
        .patched(
            &serde_json::json!({"crawling": {"nope": 1}}),
            origin.clone(),
        )
        .expect_err("unknown");
    assert!(matches!(unknown, ConfigError::UnknownKey { ref key, .. } if key == "crawling.nope"));
    let keys_change = current
        .patched(&serde_json::json!({"api": {"keys": []}}), origin.clone())
        .expect_err("api.keys");
    assert!(
        keys_change
            .to_string()
            .ends_with("manage keys via /api/v1/keys")
    );
    let lease = current
        .patched(
            &serde_json::json!({"crawling": {"task_timeout": "5m"}}),
            origin,
        )
        .expect_err("lease must exceed the task timeout");
    assert!(
        lease
            .to_string()
            .starts_with("config: redis.lease_timeout = 2m (current value)"),
        "{lease}"
    );
}

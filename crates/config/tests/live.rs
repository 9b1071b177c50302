//! The live configuration: runtime changes by tier, atomicity, listeners, SIGHUP
//! reloads and their counter.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use serde_json::{Value, json};
use spyder_config::{
    ApplyError, Config, ConfigChange, FlagValue, LiveConfig, LogLevel, OutputFormat, Sources, Tier,
    ValueKind, diff, format_duration, keys, load,
};

/// Every file pins `run` and the DNS servers so that nothing depends on the clock
/// or on /etc/resolv.conf.
const BASE: &str = "run: run-test\ndns:\n  servers: [127.0.0.1:5300]\n";

/// A configuration file in a temporary directory.
struct ConfigFile {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl ConfigFile {
    fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().expect("create a temp dir");
        let path = dir.path().join("spyder.yaml");
        let file = Self { _dir: dir, path };
        file.write(text);
        file
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.path, text).expect("write the config file");
    }
}

fn sources(path: &Path, env: &[(&str, &str)], flags: Vec<FlagValue>) -> Sources {
    Sources {
        file: Some(path.to_path_buf()),
        env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        flags,
    }
}

/// A live configuration loaded from a file holding `BASE` plus `extra`.
fn live_from(extra: &str) -> (LiveConfig, ConfigFile) {
    let file = ConfigFile::new(&format!("{BASE}{extra}"));
    let live = live_with(sources(&file.path, &[], Vec::new()));
    (live, file)
}

fn live_with(sources: Sources) -> LiveConfig {
    let loaded = load(&sources).expect("the initial configuration loads");
    LiveConfig::new(loaded.config, sources)
}

/// Every change the listeners see, in order.
fn record_changes(live: &LiveConfig) -> Arc<Mutex<Vec<ConfigChange>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    live.subscribe("recorder", move |change| {
        sink.lock().expect("recorder lock").push(change.clone());
    });
    seen
}

fn paths(specs: &[&spyder_config::KeySpec]) -> Vec<&'static str> {
    specs.iter().map(|k| k.path).collect()
}

fn serialized(config: &Config) -> Value {
    serde_json::to_value(config).expect("serialize the configuration")
}

#[test]
fn tier_one_patch_applies_and_notifies_with_old_and_new() {
    let (live, _file) = live_from("crawling:\n  concurrency: 10\n");
    let seen = record_changes(&live);
    let before = live.current();

    let applied = live
        .patch(&json!({"crawling": {"concurrency": 64}, "ua": "Tester/1"}))
        .expect("a Tier 1 change applies");

    assert_eq!(paths(&applied.changed), ["ua", "crawling.concurrency"]);
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    assert!(applied.skipped.is_empty());
    assert!(Arc::ptr_eq(&applied.config, &live.current()));
    assert_eq!(live.current().crawling.concurrency, 64);
    assert_eq!(live.current().ua, "Tester/1");
    // The snapshot taken before is untouched.
    assert_eq!(before.crawling.concurrency, 10);

    let seen = seen.lock().expect("recorder lock");
    assert_eq!(seen.len(), 1);
    let change = &seen[0];
    assert!(Arc::ptr_eq(&change.old, &before));
    assert!(Arc::ptr_eq(&change.new, &applied.config));
    assert_eq!(change.old.crawling.concurrency, 10);
    assert_eq!(change.new.crawling.concurrency, 64);
    assert_eq!(paths(&change.changed), ["ua", "crawling.concurrency"]);
    assert!(change.touches("crawling"));
    assert!(change.touches("crawling.concurrency"));
    assert!(change.touches("ua"));
    assert!(!change.touches("crawling.rate_burst"));
    assert!(!change.touches("output"));
}

#[test]
fn tier_two_patch_gives_the_exact_warnings() {
    let (live, _file) = live_from("");
    let applied = live
        .patch(&json!({
            "output": {"file": "/var/tmp/spyder-out.json", "format": "jsonl"},
            "ingest": "https://ingest.example/v1",
            "spool_dir": "/var/tmp/spyder-spool"
        }))
        .expect("Tier 2 changes apply");
    assert_eq!(
        paths(&applied.changed),
        [
            "output.format",
            "output.ingest",
            "output.spool_dir",
            "output.file"
        ]
    );
    assert_eq!(
        applied.warnings,
        [
            "changing output format mid-run may cause mixed format output",
            "changing ingest endpoint mid-run may cause partial batch delivery to old endpoint",
            "changing spool directory mid-run leaves existing spooled files in old directory",
            "changing output file mid-run splits output across files",
        ]
    );
    let current = live.current();
    assert_eq!(current.output.format, OutputFormat::Jsonl);
    assert_eq!(current.output.ingest, "https://ingest.example/v1");
    assert_eq!(current.output.spool_dir, Path::new("/var/tmp/spyder-spool"));
    assert_eq!(current.output.file, Path::new("/var/tmp/spyder-out.json"));
}

#[test]
fn tier_three_patch_applies_nothing_and_names_the_fields_in_table_order() {
    let (live, _file) = live_from("");
    let seen = record_changes(&live);
    let before = serialized(&live.current());

    let bodies = [
        json!({"dedup": {"ttl": "1h"}, "redis": {"addr": "127.0.0.1:6379"}, "crawling": {"concurrency": 5}}),
        json!({"crawling": {"concurrency": 5}, "redis_addr": "127.0.0.1:6379", "dedup": {"ttl": "1h"}}),
    ];
    for body in bodies {
        let error = live.patch(&body).expect_err("Tier 3 changes are refused");
        assert!(
            matches!(&error, ApplyError::Restart { fields } if fields == &["redis.addr", "dedup.ttl"]),
            "{error:?}"
        );
        assert_eq!(error.code(), "APPLY_ERROR");
        assert_eq!(
            error.message(),
            "fields require restart: redis.addr, dedup.ttl"
        );
        assert_eq!(
            error.to_string(),
            "fields require restart: redis.addr, dedup.ttl"
        );
    }
    assert_eq!(serialized(&live.current()), before);
    assert!(seen.lock().expect("recorder lock").is_empty());
}

#[test]
fn tier_three_key_at_its_current_value_is_not_a_change() {
    let (live, _file) = live_from("");
    let applied = live
        .patch(&json!({"dedup": {"ttl": "24h"}, "redis": {"addr": ""}, "crawling": {"concurrency": 5}}))
        .expect("unchanged Tier 3 values are accepted");
    assert_eq!(paths(&applied.changed), ["crawling.concurrency"]);
    assert_eq!(live.current().crawling.concurrency, 5);
}

#[test]
fn invalid_value_applies_nothing_and_tells_no_listener() {
    let (live, _file) = live_from("");
    let seen = record_changes(&live);
    let before = serialized(&live.current());

    let error = live
        .patch(&json!({"crawling": {"rate_burst": 5, "concurrency": 0}}))
        .expect_err("concurrency 0 is invalid");
    assert_eq!(error.code(), "INVALID_CONFIG");
    assert_eq!(
        error.message(),
        "crawling.concurrency: must be between 1 and 65536"
    );

    let error = live
        .patch(&json!({"redis": {"lease_timeout": "10s"}}))
        .expect_err("a lease shorter than the task timeout is invalid");
    assert_eq!(error.code(), "INVALID_CONFIG");
    assert!(
        error
            .message()
            .starts_with("redis.lease_timeout: must be greater than crawling.task_timeout"),
        "{}",
        error.message()
    );

    // Invalid wins over Tier 3: nothing is applied either way.
    let error = live
        .patch(&json!({"redis": {"addr": "127.0.0.1:6379"}, "crawling": {"concurrency": "many"}}))
        .expect_err("invalid");
    assert_eq!(error.code(), "INVALID_CONFIG");

    assert_eq!(serialized(&live.current()), before);
    assert!(seen.lock().expect("recorder lock").is_empty());
}

#[test]
fn unchanged_value_is_no_change_and_no_notification() {
    let (live, _file) = live_from("crawling:\n  concurrency: 10\n");
    let seen = record_changes(&live);
    let before = live.current();
    let applied = live
        .patch(&json!({"crawling": {"concurrency": 10}, "output": {"format": "json"}}))
        .expect("unchanged values are accepted");
    assert!(applied.changed.is_empty());
    assert!(applied.warnings.is_empty(), "{:?}", applied.warnings);
    assert!(Arc::ptr_eq(&applied.config, &before));
    assert!(Arc::ptr_eq(&live.current(), &before));
    assert!(seen.lock().expect("recorder lock").is_empty());
}

#[test]
fn alias_keys_are_accepted() {
    let (live, _file) = live_from("");
    let applied = live
        .patch(&json!({"concurrency": 33, "output_format": "csv", "batch_flush_sec": 5}))
        .expect("aliases apply");
    assert_eq!(
        paths(&applied.changed),
        [
            "crawling.concurrency",
            "batch.flush_interval",
            "output.format"
        ]
    );
    assert_eq!(
        applied.warnings,
        ["changing output format mid-run may cause mixed format output"]
    );
    let current = live.current();
    assert_eq!(current.crawling.concurrency, 33);
    assert_eq!(current.output.format, OutputFormat::Csv);
    assert_eq!(current.batch.flush_interval, Duration::from_secs(5));

    // Both spellings: the nested key wins, with the alias warning.
    let applied = live
        .patch(&json!({"concurrency": 1, "crawling": {"concurrency": 2}}))
        .expect("both spellings apply");
    assert_eq!(live.current().crawling.concurrency, 2);
    assert_eq!(applied.warnings.len(), 1, "{:?}", applied.warnings);
    assert!(
        applied.warnings[0].contains("\"concurrency\" and \"crawling.concurrency\" are both set"),
        "{:?}",
        applied.warnings
    );
}

#[test]
fn api_keys_unknown_keys_and_non_objects_are_refused() {
    let (live, _file) = live_from("");
    let before = serialized(&live.current());
    let new_keys = json!([{"key": "0123456789abcdef", "name": "ops", "scope": "admin"}]);

    for body in [
        json!({"api": {"keys": new_keys.clone()}}),
        json!({"api.keys": new_keys.clone(), "ua": "x"}),
    ] {
        let error = live.patch(&body).expect_err("api.keys is refused");
        assert_eq!(error.code(), "BAD_REQUEST");
        assert_eq!(error.message(), "api.keys: manage keys via /api/v1/keys");
    }

    let error = live
        .patch(&json!({"crawling": {"concurrency": 3, "speed": 9}}))
        .expect_err("unknown keys are refused");
    assert_eq!(error.code(), "UNKNOWN_FIELD");
    assert!(
        error.message().starts_with("crawling.speed: "),
        "{}",
        error.message()
    );

    for body in [json!([1, 2]), json!("ua"), Value::Null] {
        let error = live.patch(&body).expect_err("a non-object is refused");
        assert_eq!(error.code(), "BAD_REQUEST");
    }
    assert_eq!(serialized(&live.current()), before);
}

#[test]
fn concurrent_patches_never_interleave_and_listeners_see_them_in_order() {
    const THREADS: usize = 8;
    const PATCHES: usize = 50;
    let (live, _file) = live_from("crawling:\n  concurrency: 1000\n  rate_burst: 1000\n");
    let seen = Arc::new(Mutex::new(Vec::<(u32, u32, u32, u32)>::new()));
    let sink = Arc::clone(&seen);
    live.subscribe("order", move |change| {
        sink.lock().expect("order lock").push((
            change.old.crawling.concurrency,
            change.old.crawling.rate_burst,
            change.new.crawling.concurrency,
            change.new.crawling.rate_burst,
        ));
    });

    let writers_done = AtomicBool::new(false);
    let torn_reads = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !writers_done.load(Ordering::Acquire) {
                let snapshot = live.current();
                if snapshot.crawling.concurrency != snapshot.crawling.rate_burst {
                    torn_reads.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::yield_now();
            }
        });
        let writers: Vec<_> = (0..THREADS)
            .map(|thread| {
                let live = live.clone();
                scope.spawn(move || {
                    for n in 0..PATCHES {
                        let value = thread * PATCHES + n + 1;
                        live.patch(
                            &json!({"crawling": {"concurrency": value, "rate_burst": value}}),
                        )
                        .expect("each patch applies");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("a writer thread");
        }
        writers_done.store(true, Ordering::Release);
    });

    assert_eq!(torn_reads.load(Ordering::Relaxed), 0);
    let seen = seen.lock().expect("order lock");
    // Every value is distinct, so every patch is a change.
    assert_eq!(seen.len(), THREADS * PATCHES);
    let mut previous = (1000, 1000);
    let mut values = std::collections::BTreeSet::new();
    for &(old_concurrency, old_burst, new_concurrency, new_burst) in seen.iter() {
        assert_eq!(
            (old_concurrency, old_burst),
            previous,
            "changes out of order"
        );
        assert_eq!(new_concurrency, new_burst, "a half-applied change");
        values.insert(new_concurrency);
        previous = (new_concurrency, new_burst);
    }
    assert_eq!(values.len(), THREADS * PATCHES);
    let current = live.current();
    assert_eq!(
        (current.crawling.concurrency, current.crawling.rate_burst),
        previous
    );
}

#[test]
fn a_panicking_listener_does_not_stop_the_others() {
    let (live, _file) = live_from("");
    let first = Arc::new(AtomicUsize::new(0));
    let third = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&first);
    live.subscribe("first", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    live.subscribe("boom", |_| panic!("listener failure on purpose"));
    let counter = Arc::clone(&third);
    live.subscribe("third", move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    });

    live.patch(&json!({"ua": "one"}))
        .expect("applies despite the panic");
    live.patch(&json!({"ua": "two"}))
        .expect("still works after a panic");
    assert_eq!(first.load(Ordering::SeqCst), 2);
    assert_eq!(third.load(Ordering::SeqCst), 2);
    assert_eq!(live.current().ua, "two");
}

#[test]
fn reload_applies_tiers_one_and_two_and_skips_tier_three() {
    let (live, file) = live_from("crawling:\n  concurrency: 10\n");
    let seen = record_changes(&live);
    file.write(&format!(
        "{BASE}crawling:\n  concurrency: 20\noutput:\n  format: jsonl\n\
         dedup:\n  ttl: 1h\nredis:\n  addr: 127.0.0.1:6379\n"
    ));

    let applied = live.reload().expect("the reload succeeds");
    assert_eq!(
        paths(&applied.changed),
        ["crawling.concurrency", "output.format"]
    );
    assert_eq!(paths(&applied.skipped), ["redis.addr", "dedup.ttl"]);
    assert_eq!(
        applied.skipped_message().as_deref(),
        Some("config reload: fields require restart: redis.addr, dedup.ttl")
    );
    assert!(
        applied
            .warnings
            .contains(&"changing output format mid-run may cause mixed format output".to_owned()),
        "{:?}",
        applied.warnings
    );
    let current = live.current();
    assert_eq!(current.crawling.concurrency, 20);
    assert_eq!(current.output.format, OutputFormat::Jsonl);
    assert_eq!(current.redis.addr, "");
    assert_eq!(current.dedup.ttl, Duration::from_secs(24 * 3600));

    let seen = seen.lock().expect("recorder lock");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        paths(&seen[0].changed),
        ["crawling.concurrency", "output.format"]
    );
}

#[test]
fn reload_with_only_tier_three_changes_skips_them_and_notifies_nobody() {
    let (live, file) = live_from("");
    let seen = record_changes(&live);
    let before = live.current();
    file.write(&format!("{BASE}  sockets: 8\n"));
    let applied = live.reload().expect("the reload succeeds");
    assert!(applied.changed.is_empty());
    assert_eq!(paths(&applied.skipped), ["dns.sockets"]);
    assert!(Arc::ptr_eq(&live.current(), &before));
    assert!(seen.lock().expect("recorder lock").is_empty());
}

#[test]
fn reload_of_an_unchanged_file_changes_nothing_even_without_a_run_id() {
    // No `run` in any source: the default `run-<unix s>` must not look like a change.
    let file = ConfigFile::new("dns:\n  servers: [127.0.0.1:5300]\n");
    let sources = sources(&file.path, &[], Vec::new());
    let mut config = load(&sources).expect("loads").config;
    config.run = "run-1".to_owned();
    let live = LiveConfig::new(config, sources);
    let applied = live.reload().expect("the reload succeeds");
    assert!(applied.changed.is_empty(), "{:?}", paths(&applied.changed));
    assert!(applied.skipped.is_empty(), "{:?}", paths(&applied.skipped));
    assert_eq!(applied.skipped_message(), None);
    assert_eq!(live.current().run, "run-1");
}

#[test]
fn reload_with_a_broken_file_changes_nothing_and_names_file_and_key() {
    let (live, file) = live_from("crawling:\n  concurrency: 10\n");
    let seen = record_changes(&live);
    let before = serialized(&live.current());
    let file_name = file.path.display().to_string();

    file.write("crawling: [unclosed\n  concurrency: 5\n");
    let error = live.reload().expect_err("bad YAML fails");
    let text = error.to_string();
    assert!(text.contains(&file_name), "{text}");
    assert!(text.contains("invalid YAML"), "{text}");
    assert_eq!(error.code(), "INVALID_CONFIG");

    file.write(&format!("{BASE}ua: changed\ncrawling:\n  concurrency: 0\n"));
    let error = live.reload().expect_err("an invalid value fails");
    let text = error.to_string();
    assert!(text.contains(&file_name), "{text}");
    assert!(text.contains("crawling.concurrency"), "{text}");
    assert!(text.contains("must be between 1 and 65536"), "{text}");

    std::fs::remove_file(&file.path).expect("remove the file");
    let error = live.reload().expect_err("a missing file fails");
    assert!(error.to_string().contains(&file_name), "{error}");

    assert_eq!(serialized(&live.current()), before);
    assert!(seen.lock().expect("recorder lock").is_empty());
}

#[test]
fn reload_drops_earlier_patches() {
    let (live, _file) = live_from("ua: FromFile/1\ncrawling:\n  concurrency: 10\n");
    live.patch(
        &json!({"crawling": {"concurrency": 99}, "ua": "Patched/1", "logging": {"level": "debug"}}),
    )
    .expect("the patch applies");
    let applied = live.reload().expect("the reload succeeds");
    assert_eq!(
        paths(&applied.changed),
        ["ua", "crawling.concurrency", "logging.level"]
    );
    let current = live.current();
    assert_eq!(current.ua, "FromFile/1");
    assert_eq!(current.crawling.concurrency, 10);
    assert_eq!(current.logging.level, LogLevel::Info);
}

#[test]
fn reload_keeps_env_and_flags_above_the_file() {
    let file = ConfigFile::new(&format!(
        "{BASE}ua: A\nlogging:\n  level: info\ncrawling:\n  concurrency: 10\n"
    ));
    let flags = vec![FlagValue::new(
        "-set crawling.concurrency",
        "crawling.concurrency",
        "7",
    )];
    let live = live_with(sources(&file.path, &[("LOG_LEVEL", "debug")], flags));
    assert_eq!(live.current().crawling.concurrency, 7);
    assert_eq!(live.current().logging.level, LogLevel::Debug);

    file.write(&format!(
        "{BASE}ua: B\nlogging:\n  level: warn\ncrawling:\n  concurrency: 30\n"
    ));
    let applied = live.reload().expect("the reload succeeds");
    assert_eq!(paths(&applied.changed), ["ua"]);
    let current = live.current();
    assert_eq!(current.ua, "B");
    assert_eq!(current.crawling.concurrency, 7);
    assert_eq!(current.logging.level, LogLevel::Debug);
}

#[test]
fn reload_never_changes_api_keys() {
    let (live, file) =
        live_from("api:\n  keys:\n    - {key: first-secret-key, name: ops, scope: admin}\n");
    file.write(&format!(
        "{BASE}ua: B\napi:\n  keys:\n    - {{key: other-secret-key, name: ci, scope: read}}\n"
    ));
    let applied = live.reload().expect("the reload succeeds");
    assert_eq!(paths(&applied.changed), ["ua"]);
    assert!(applied.skipped.is_empty());
    let current = live.current();
    assert_eq!(current.api.keys.len(), 1);
    assert_eq!(current.api.keys[0].name, "ops");
}

/// Non-default values for every Tier 1 and Tier 2 key.
const EVERY_RUNTIME_KEY: &str = r#"
run: run-test
ua: "Tester/2.0 (+https://example.test)"
exclude_tlds: [example, co.uk]
crawling:
  concurrency: 17
  rate_per_host: 0.1
  rate_burst: 9
  rate_global: 50
  max_conns_per_ip: 5
  max_domains: 1234
  continuous: true
  http_fallback: false
  allow_private: true
  task_timeout: 1m30s
  dns_timeout: 1.5s
  tls_timeout: 250ms
  http_timeout: 45s
  body_max_bytes: 2048
  max_redirects: 7
  allow_cidrs: [10.0.0.0/8, "fd00::/8", 192.168.1.1]
  https_port: 8443
  http_port: 8080
  redirect_ports: [8000, 9443]
  shutdown_grace: 0s
dns:
  servers: ["127.0.0.1:5353", "[::1]:5300", 10.1.1.1]
  query_timeout: 750ms
  retries: 5
  max_inflight: 12
batch:
  max_edges: 500
  flush_interval: 150ms
  node_threshold_ratio: 0.3
output:
  format: csv
  ingest: "https://user:secret@ingest.example/v1/batches"
  spool_dir: /var/tmp/spyder-spool
  file: /var/tmp/spyder-out.csv
redis:
  lease_timeout: 2h
  max_attempts: 9
telemetry:
  otel_sample_ratio: 0.25
  stall_after: 45m
api:
  rate_limit: 7
  rate_burst: 3
logging:
  level: debug
  format: json
"#;

#[test]
fn reload_applies_every_tier_one_and_two_key_exactly() {
    let (live, file) = live_from("");
    let runtime_keys: Vec<&str> = keys()
        .iter()
        .filter(|k| matches!(k.tier, Tier::Immediate | Tier::Warn))
        .map(|k| k.path)
        .collect();
    let sources = live.sources().clone();

    for text in [EVERY_RUNTIME_KEY.to_owned(), BASE.to_owned()] {
        file.write(&text);
        let applied = live.reload().expect("the reload succeeds");
        assert_eq!(paths(&applied.changed), runtime_keys);
        assert!(applied.skipped.is_empty(), "{:?}", paths(&applied.skipped));
        let want = load(&sources).expect("the file loads").config;
        assert_eq!(serialized(&live.current()), serialized(&want));
        assert_eq!(*live.current(), want);
        assert!(diff(&live.current(), &want).is_empty());
        let tier_two: Vec<&String> = applied
            .warnings
            .iter()
            .filter(|w| w.starts_with("changing "))
            .collect();
        assert_eq!(tier_two.len(), 4, "{:?}", applied.warnings);
    }
}

#[test]
fn diff_lists_every_differing_key_in_table_order() {
    let (live, _file) = live_from("");
    let old = live.current();
    let mut new = (*old).clone();
    assert!(diff(&old, &new).is_empty());
    new.logging.level = LogLevel::Error;
    new.dedup.ttl = Duration::from_secs(1);
    new.ua = "x".to_owned();
    new.api.keys.clear();
    new.crawling.allow_cidrs = vec!["10.0.0.0/8".parse().expect("a CIDR")];
    assert_eq!(
        paths(&diff(&old, &new)),
        ["ua", "crawling.allow_cidrs", "dedup.ttl", "logging.level"]
    );
}

/// Counts counter increments by `name{label=value,...}`.
#[derive(Clone, Default)]
struct CountingRecorder {
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

struct CounterSlot {
    name: String,
    counts: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CounterFn for CounterSlot {
    fn increment(&self, value: u64) {
        *self
            .counts
            .lock()
            .expect("counts lock")
            .entry(self.name.clone())
            .or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.counts
            .lock()
            .expect("counts lock")
            .insert(self.name.clone(), value);
    }
}

impl Recorder for CountingRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Counter::from_arc(Arc::new(CounterSlot {
            name: format!("{}{{{}}}", key.name(), labels.join(",")),
            counts: Arc::clone(&self.counts),
        }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[test]
fn reloads_are_counted_by_result_and_patches_are_not() {
    let recorder = CountingRecorder::default();
    let (live, file) = live_from("");
    metrics::with_local_recorder(&recorder, || {
        live.reload().expect("an unchanged reload succeeds");
        file.write(&format!("{BASE}ua: B\ndedup:\n  ttl: 1h\n"));
        let applied = live.reload().expect("a reload with skipped keys succeeds");
        assert_eq!(paths(&applied.skipped), ["dedup.ttl"]);
        file.write("crawling: [");
        live.reload().expect_err("a broken file fails");
        live.patch(&json!({"ua": "C"})).expect("a patch applies");
    });
    let counts = recorder.counts.lock().expect("counts lock").clone();
    let want: BTreeMap<String, u64> = [
        ("spyder_config_reloads_total{result=failure}".to_owned(), 1),
        ("spyder_config_reloads_total{result=success}".to_owned(), 2),
    ]
    .into_iter()
    .collect();
    assert_eq!(counts, want);
}

/// A value at `kind`'s maximum and one just past it, as a PATCH sends them; `None`
/// for kinds without a range.
fn maximum_and_beyond(kind: ValueKind) -> Option<(Value, Value)> {
    match kind {
        ValueKind::Int { max, .. } => Some((json!(max), json!(max + 1))),
        ValueKind::Duration { max, .. } => Some((
            json!(format_duration(max)),
            json!(format_duration(max + Duration::from_nanos(1))),
        )),
        ValueKind::Float { max } => Some((json!(max), json!(max * (1.0 + f64::EPSILON)))),
        _ => None,
    }
}

/// `{"section": {"key": value}}` (or `{"key": value}`) for `path`.
fn nested(path: &str, value: Value) -> Value {
    match path.split_once('.') {
        Some((section, key)) => json!({ section: { key: value } }),
        None => json!({ path: value }),
    }
}

/// Everything derived from a configuration must survive its extreme values.
fn derive_everything(config: &Config) {
    let _ = config.redacted();
    let _ = serialized(config);
}

/// SPEC issue 10: PATCHing any key to its maximum, or past it, never panics and never
/// changes the configuration when refused.
#[test]
fn every_key_at_its_maximum_and_past_it() {
    let mut ranged = 0;
    for key in keys() {
        let Some((max, beyond)) = maximum_and_beyond(key.kind) else {
            continue;
        };
        ranged += 1;
        let (live, _file) = live_from("");
        let before = serialized(&live.current());

        // Past the maximum: refused with the range, nothing changes.
        for past in [beyond, json!(u64::MAX), json!("18446744073709551616")] {
            let error = live
                .patch(&nested(key.path, past.clone()))
                .expect_err("past the maximum is refused");
            assert_eq!(error.code(), "INVALID_CONFIG", "{} = {past}", key.path);
            let message = error.message();
            assert!(
                message.starts_with(&format!("{}: must be ", key.path))
                    && (message.contains(" between ") || message.contains(" at most ")),
                "{} = {past}: {message}",
                key.path
            );
            assert_eq!(serialized(&live.current()), before, "{}", key.path);
        }

        // At the maximum: applied (Tier 1 and 2), or refused with a message and
        // nothing changed (Tier 3; a task timeout above the lease).
        let pointer = format!("/{}", key.path.replace('.', "/"));
        match live.patch(&nested(key.path, max.clone())) {
            Ok(applied) => {
                assert!(key.tier != Tier::Restart, "{}", key.path);
                let shown = serialized(&applied.config);
                let got = shown.pointer(&pointer).expect("the key is serialized");
                match key.kind {
                    ValueKind::Float { max: want } => assert_eq!(got.as_f64(), Some(want)),
                    _ => assert_eq!(got, &max, "{}", key.path),
                }
                derive_everything(&applied.config);
            }
            Err(error) => {
                let expected = match (key.tier, key.path) {
                    (Tier::Restart, _) => "APPLY_ERROR",
                    (_, "crawling.task_timeout") => "INVALID_CONFIG",
                    _ => panic!("{} = {max} refused: {}", key.path, error.message()),
                };
                assert_eq!(error.code(), expected, "{}: {}", key.path, error.message());
                assert!(!error.message().is_empty());
                assert_eq!(serialized(&live.current()), before, "{}", key.path);
            }
        }

        // Loaded at the maximum (how Tier 3 keys get there), every derived setting
        // can be built.
        let lease = FlagValue::new("-set", "redis.lease_timeout", "24h");
        let text = max.as_str().map_or_else(|| max.to_string(), str::to_owned);
        let at_max = FlagValue::new("-set", key.path, text);
        let file = ConfigFile::new(BASE);
        let loaded = load(&sources(&file.path, &[], vec![lease, at_max]))
            .unwrap_or_else(|e| panic!("{} loads at its maximum: {e}", key.path));
        derive_everything(&loaded.config);
    }
    assert!(ranged >= 20, "only {ranged} ranged keys");
}

#[test]
fn every_timeout_at_its_maximum_together_derives_and_adds_to_an_instant() {
    let file = ConfigFile::new(BASE);
    let flags = FlagValue::every_maximum();
    let config = load(&sources(&file.path, &[], flags))
        .expect("every maximum at once loads")
        .config;
    derive_everything(&config);
    let now = std::time::Instant::now();
    for d in [
        config.crawling.task_timeout,
        config.crawling.dns_timeout,
        config.crawling.tls_timeout,
        config.crawling.http_timeout,
        config.dns.query_timeout,
        config.batch.flush_interval,
        config.redis.lease_timeout,
        config.dedup.ttl * 2 + Duration::from_secs(60),
        config.telemetry.stall_after,
        config.crawling.shutdown_grace + Duration::from_secs(15),
    ] {
        assert!(now.checked_add(d).is_some(), "{d:?}");
    }
}

//! The deployment files (`deploy/`, `examples/spyder.yaml`, docs/deploy.md) against
//! the code they drive: the example configuration names every key at its default and
//! passes `spyder -check`; every spyder and seed command line in compose.yaml and the
//! systemd unit parses with the binary's own parser and loads; compose mounts files
//! that exist and sets only documented variables; Prometheus scrapes the probes
//! compose runs; the unit passes `systemd-analyze verify` and rates at most 2.5 in
//! `systemd-analyze security`; the Dockerfile builds and ships what the rest runs.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_yaml::Value;
use spyder::cli::{self, Command, RunArgs};
use spyder_config::{
    Config, DnsConfig, FlagValue, Loaded, Origin, Sources, keys, load, parse_duration,
};
use spyder_queue::{InputLine, InputReader};

use crate::support::{finish, spyder};

const LIMIT: Duration = Duration::from_secs(60);
const EXAMPLE: &str = "examples/spyder.yaml";
const COMPOSE: &str = "deploy/compose.yaml";
const UNIT: &str = "deploy/systemd/spyder.service";
const DOCKERFILE: &str = "deploy/docker/Dockerfile";
const PROMETHEUS: &str = "deploy/prometheus/prometheus.yml";
/// How much longer than `crawling.shutdown_grace` a shutdown may take
/// (docs/operations.md, "Shutdown").
const SHUTDOWN_SLACK: Duration = Duration::from_secs(15);
/// Keys the example shows commented out, since setting them differs from leaving
/// them unset: `run` and `dns.servers` default to the clock and the machine's
/// resolv.conf; a busy default `telemetry.metrics_addr` only warns in a one-shot
/// file run, a set one is fatal.
const LEFT_UNSET: [&str; 3] = ["run", "dns.servers", "telemetry.metrics_addr"];
/// Keep in step with `systemd-analyze security` on deploy/systemd/spyder.service.
const MAX_EXPOSURE: f64 = 2.5;

// ---------------------------------------------------------------- files

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml(relative: &str) -> Value {
    serde_yaml::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative} is YAML: {e}"))
}

/// `value` as text, for scalars (compose accepts numbers and booleans as strings).
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => panic!("not a scalar: {other:?}"),
    }
}

fn args(words: &[String]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

fn run_args(words: &[String], what: &str) -> RunArgs {
    match cli::parse(args(words)) {
        Ok(Command::Run(run)) => run,
        other => panic!("{what}: {words:?} gave {other:?}"),
    }
}

/// Loads like the binary: the file, then `env`, then the command line's flags.
fn load_like_the_binary(file: &Path, env: Vec<(String, String)>, flags: &[FlagValue]) -> Loaded {
    load(&Sources {
        file: Some(file.to_owned()),
        env,
        flags: flags.to_vec(),
    })
    .unwrap_or_else(|e| panic!("{} with {flags:?} loads: {e}", file.display()))
}

// ---------------------------------------------------------------- examples/spyder.yaml

/// The dotted paths a YAML mapping sets, leaves only.
fn leaf_paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    let Value::Mapping(map) = value else {
        out.push(prefix.to_owned());
        return;
    };
    for (key, value) in map {
        let key = key.as_str().expect("keys are strings");
        let path = if prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{prefix}.{key}")
        };
        leaf_paths(value, &path, out);
    }
}

/// The comment block that documents `path`: from `# <path> — ` to the next line that
/// is not a comment, joined into one line.
fn key_comment(text: &str, path: &str) -> Option<String> {
    let head = format!("# {path} — ");
    let mut lines = text.lines().map(str::trim_start);
    let mut block = lines.find(|l| l.starts_with(&head))?.to_owned();
    for line in lines {
        let Some(rest) = line.strip_prefix('#') else {
            break;
        };
        block.push(' ');
        block.push_str(rest.trim());
    }
    Some(block)
}

#[test]
fn the_example_config_names_every_key_with_its_tier_flag_and_variable() {
    let text = read(EXAMPLE);
    let mut set = Vec::new();
    leaf_paths(&yaml(EXAMPLE), "", &mut set);
    let known: BTreeSet<&str> = keys().iter().map(|k| k.path).collect();
    let unknown: Vec<&String> = set.iter().filter(|p| !known.contains(p.as_str())).collect();
    assert!(unknown.is_empty(), "not canonical key paths: {unknown:?}");

    let mut problems = Vec::new();
    for spec in keys() {
        let leaf = spec.path.rsplit('.').next().unwrap_or(spec.path);
        if LEFT_UNSET.contains(&spec.path) {
            // Shown, commented out, with an example value.
            if set.iter().any(|p| p == spec.path) {
                problems.push(format!(
                    "{}: its default is per machine; leave it unset",
                    spec.path
                ));
            }
            if !text
                .lines()
                .any(|l| l.trim_start().starts_with(&format!("# {leaf}: ")))
            {
                problems.push(format!("{}: no commented-out example line", spec.path));
            }
        } else if !set.iter().any(|p| p == spec.path) {
            problems.push(format!("{}: not set", spec.path));
        }
        let Some(comment) = key_comment(&text, spec.path) else {
            problems.push(format!("{}: no `# {} — ` comment", spec.path, spec.path));
            continue;
        };
        if !comment.contains(&format!("tier {}.", spec.tier.mark())) {
            problems.push(format!(
                "{}: comment lacks `tier {}`",
                spec.path,
                spec.tier.mark()
            ));
        }
        if !comment.contains("Default") {
            problems.push(format!("{}: comment lacks the default", spec.path));
        }
        for name in [spec.flag, spec.alias, spec.env].into_iter().flatten() {
            if !comment.contains(name) {
                problems.push(format!("{}: comment does not name {name}", spec.path));
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn the_example_config_loads_to_the_defaults_without_warnings() {
    // dns.servers from a flag: the comparison must not depend on this machine's
    // resolv.conf (whose absence is a warning of its own).
    let servers = FlagValue::flag("dns_servers", "127.0.0.1:53");
    let loaded = load_like_the_binary(&root().join(EXAMPLE), Vec::new(), &[servers]);
    assert_eq!(loaded.warnings, Vec::<String>::new());
    // Set keys come from the file; the rest keep the default's own behaviour.
    let example = root().join(EXAMPLE);
    for spec in keys() {
        let origin = loaded.origin(spec.path);
        match spec.path {
            "dns.servers" => assert_eq!(origin, Origin::Flag("-dns_servers".into())),
            path if LEFT_UNSET.contains(&path) => assert_eq!(origin, Origin::Default, "{path}"),
            path => assert_eq!(origin, Origin::File(example.clone()), "{path}"),
        }
    }
    let got = loaded.config;
    assert!(got.run.starts_with("run-"), "{}", got.run);
    let defaults = Config::default();
    let want = Config {
        run: got.run.clone(),
        dns: DnsConfig {
            servers: vec!["127.0.0.1:53".parse().expect("address")],
            ..defaults.dns.clone()
        },
        ..defaults
    };
    assert_eq!(got, want);
}

#[tokio::test]
async fn spyder_check_accepts_the_example_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let domains = dir.path().join("domains.txt");
    std::fs::write(&domains, "example.com\n").expect("write domains");
    let example = root().join(EXAMPLE);
    let mut cmd = spyder();
    cmd.arg("-check")
        .arg("-config")
        .arg(&example)
        .arg("-domains")
        .arg(&domains)
        .current_dir(dir.path());
    let run = finish(cmd, LIMIT).await;
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr.contains("the configuration is valid"),
        "{}",
        run.stderr
    );
    // stdout is the effective configuration: the example's defaults and -domains.
    let mut shown: serde_json::Value =
        serde_json::from_slice(&run.stdout).expect("-check prints the configuration as JSON");
    let domains_flag = FlagValue::flag("domains", domains.display().to_string());
    let mut want = load_like_the_binary(&example, Vec::new(), &[domains_flag])
        .config
        .redacted();
    for json in [&mut shown, &mut want] {
        // Stamped at load time: the binary's second may differ from this one.
        json.as_object_mut().expect("an object").remove("run");
    }
    assert_eq!(shown, want);
    // Nothing was created beside it (no spool directory, no output file).
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read temp dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, vec![OsString::from("domains.txt")]);
}

// ---------------------------------------------------------------- compose.yaml

struct Mount {
    source: String,
    target: String,
}

impl Mount {
    /// A host path (relative to compose.yaml) rather than a named volume.
    fn is_bind(&self) -> bool {
        self.source.starts_with('.') || self.source.starts_with('/')
    }
}

fn services(compose: &Value) -> Vec<(String, &Value)> {
    compose["services"]
        .as_mapping()
        .expect("compose has services")
        .iter()
        .map(|(name, service)| (scalar(name), service))
        .collect()
}

fn mounts(service: &Value) -> Vec<Mount> {
    let Some(volumes) = service.get("volumes").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    volumes
        .iter()
        .map(|v| match v {
            Value::String(short) => {
                let mut parts = short.splitn(3, ':');
                let source = parts.next().expect("a source").to_owned();
                let target = parts.next().unwrap_or_else(|| panic!("{short}: no target"));
                Mount {
                    source,
                    target: target.to_owned(),
                }
            }
            long => Mount {
                source: scalar(&long["source"]),
                target: scalar(&long["target"]),
            },
        })
        .collect()
}

/// The host file behind `container_path` in `service` (a bind mount of the file or
/// of a directory holding it).
fn host_path(service: &Value, container_path: &str) -> Option<PathBuf> {
    mounts(service)
        .into_iter()
        .filter(Mount::is_bind)
        .find_map(|m| {
            let rest = container_path.strip_prefix(&m.target)?;
            let rest = if rest.is_empty() {
                ""
            } else {
                rest.strip_prefix('/')?
            };
            let source = root().join("deploy").join(&m.source);
            Some(if rest.is_empty() {
                source
            } else {
                source.join(rest)
            })
        })
}

/// A list of words (`["a", "b"]`) or a string split on spaces.
fn words(value: &Value) -> Vec<String> {
    match value {
        Value::Sequence(items) => items.iter().map(scalar).collect(),
        Value::String(line) => {
            assert!(!line.contains(['"', '\'']), "quoted command line: {line}");
            line.split_whitespace().map(str::to_owned).collect()
        }
        other => panic!("not a command: {other:?}"),
    }
}

fn environment(service: &Value) -> Vec<(String, String)> {
    match service.get("environment") {
        None => Vec::new(),
        Some(Value::Mapping(map)) => map.iter().map(|(k, v)| (scalar(k), scalar(v))).collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|item| {
                let item = scalar(item);
                let (k, v) = item.split_once('=').unwrap_or((&item, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        Some(other) => panic!("environment: {other:?}"),
    }
}

/// The program a service of the spyder image runs: its `entrypoint`, else the
/// Dockerfile's ENTRYPOINT. `None` for other images.
fn spyder_image_program(service: &Value) -> Option<String> {
    let built_here = service
        .get("build")
        .and_then(|b| b.get("dockerfile"))
        .is_some_and(|d| scalar(d) == DOCKERFILE);
    if !built_here {
        return None;
    }
    Some(match service.get("entrypoint") {
        Some(entrypoint) => words(entrypoint).remove(0),
        None => docker_entrypoint().remove(0),
    })
}

struct Probe {
    name: String,
    service: Value,
    args: RunArgs,
    loaded: Loaded,
}

/// The compose services that run spyder, parsed and loaded as the binary would in
/// its container.
fn compose_probes(compose: &Value) -> Vec<Probe> {
    let mut probes = Vec::new();
    for (name, service) in services(compose) {
        if spyder_image_program(service).as_deref() != Some("/usr/local/bin/spyder") {
            continue;
        }
        let command = words(service.get("command").unwrap_or(&Value::Null));
        let args = run_args(&command, &name);
        let config = args
            .config_file
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: no -config"));
        let config = config.to_str().expect("a UTF-8 path");
        let file =
            host_path(service, config).unwrap_or_else(|| panic!("{name}: {config} is not mounted"));
        let loaded = load_like_the_binary(&file, environment(service), &args.flags);
        probes.push(Probe {
            name,
            service: service.clone(),
            args,
            loaded,
        });
    }
    probes
}

#[test]
fn compose_spyder_command_lines_parse_and_load_in_queue_mode() {
    let compose = yaml(COMPOSE);
    let probes = compose_probes(&compose);
    assert!(probes.len() >= 2, "compose runs several probes");
    let mut ids = BTreeSet::new();
    for Probe {
        name,
        service,
        args,
        loaded,
    } in &probes
    {
        assert_eq!(loaded.warnings, Vec::<String>::new(), "{name}");
        assert!(!args.check, "{name}");
        let config = &loaded.config;
        assert!(
            ids.insert(config.probe.clone()),
            "{name}: probe id repeated"
        );
        assert!(
            !config.redis.queue_addr.is_empty(),
            "{name}: not in queue mode"
        );
        // What a probe writes must outlive its container: on a volume.
        let targets: Vec<String> = mounts(service).into_iter().map(|m| m.target).collect();
        for path in [&config.output.file, &config.output.spool_dir] {
            assert!(
                path.is_absolute() && targets.iter().any(|t| path.starts_with(t)),
                "{name}: {} is on no volume ({targets:?})",
                path.display()
            );
        }
    }
}

#[tokio::test]
async fn compose_seed_fills_the_queue_the_probes_read() {
    let compose = yaml(COMPOSE);
    let probes = compose_probes(&compose);
    let mut seeds = 0;
    for (name, service) in services(&compose) {
        if spyder_image_program(service).as_deref() != Some("/usr/local/bin/seed") {
            continue;
        }
        seeds += 1;
        let command = words(service.get("command").unwrap_or(&Value::Null));
        let args = match seed::parse(args(&command)) {
            Ok(seed::Command::Seed(args)) => args,
            other => panic!("{name}: {command:?} gave {other:?}"),
        };
        let domains = args.domains.as_deref().expect("seed is given -domains");
        let file = host_path(service, domains)
            .unwrap_or_else(|| panic!("{name}: {domains} is not mounted"));
        // Read with the input rules seed and spyder share: every line a host.
        let mut reader = InputReader::open(&file.display().to_string())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let mut hosts = 0;
        while let Some(line) = reader.next().await {
            match line {
                InputLine::Host { .. } => hosts += 1,
                invalid => panic!("{}: {invalid}", file.display()),
            }
        }
        assert!(hosts > 0, "{}: no hosts", file.display());
        for probe in &probes {
            assert_eq!(
                args.redis, probe.loaded.config.redis.queue_addr,
                "{}",
                probe.name
            );
            assert_eq!(
                args.key, probe.loaded.config.redis.queue_key,
                "{}",
                probe.name
            );
        }
    }
    assert_eq!(seeds, 1, "one seed service");
}

/// The variables docs/configuration.md's "Environment" table lists.
fn documented_variables() -> BTreeSet<String> {
    let docs = read("docs/configuration.md");
    let section = docs
        .split("\n## Environment\n")
        .nth(1)
        .expect("docs/configuration.md has an Environment section");
    let section = section.split("\n## ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('`'))
        .map(|(name, _)| name.to_owned())
        .collect()
}

#[test]
fn compose_sets_only_variables_spyder_reads() {
    let compose = yaml(COMPOSE);
    let from_keys: BTreeSet<String> = keys()
        .iter()
        .filter_map(|k| k.env)
        .map(str::to_owned)
        .collect();
    let documented = documented_variables();
    let mut seen = 0;
    for (name, service) in services(&compose) {
        if spyder_image_program(service).is_none() {
            continue;
        }
        for (var, _) in environment(service) {
            seen += 1;
            assert!(
                from_keys.contains(&var) || documented.contains(&var),
                "{name}: {var} is neither a key's variable ({from_keys:?}) nor documented \
                 in docs/configuration.md ({documented:?})"
            );
        }
    }
    assert!(seen > 0, "the probes get their Redis from the environment");
}

#[test]
fn compose_mounts_files_that_exist_and_declares_its_volumes() {
    let compose = yaml(COMPOSE);
    let declared: BTreeSet<String> = compose["volumes"]
        .as_mapping()
        .expect("top-level volumes")
        .keys()
        .map(scalar)
        .collect();
    let mut used = BTreeSet::new();
    let mut binds = 0;
    for (name, service) in services(&compose) {
        for mount in mounts(service) {
            if mount.is_bind() {
                binds += 1;
                let host = root().join("deploy").join(&mount.source);
                assert!(host.exists(), "{name}: {} does not exist", host.display());
            } else {
                assert!(
                    declared.contains(&mount.source),
                    "{name}: volume {} is not declared",
                    mount.source
                );
                used.insert(mount.source);
            }
        }
    }
    assert!(binds > 0);
    assert_eq!(used, declared, "declared volumes no service mounts");
    // The image's build: the context holds the Dockerfile and its ignore file.
    for (name, service) in services(&compose) {
        if let Some(build) = service.get("build") {
            let context = root().join("deploy").join(scalar(&build["context"]));
            let dockerfile = context.join(scalar(&build["dockerfile"]));
            assert!(dockerfile.is_file(), "{name}: {}", dockerfile.display());
            let ignore = PathBuf::from(format!("{}.dockerignore", dockerfile.display()));
            assert!(ignore.is_file(), "{name}: {}", ignore.display());
        }
    }
}

#[test]
fn compose_stop_grace_outlasts_the_probes_shutdown() {
    let compose = yaml(COMPOSE);
    for probe in compose_probes(&compose) {
        let grace = probe
            .service
            .get("stop_grace_period")
            .map(scalar)
            .unwrap_or_else(|| panic!("{}: no stop_grace_period (docker's is 10 s)", probe.name));
        let grace = parse_duration(&grace).expect("a duration");
        let deadline = probe.loaded.config.crawling.shutdown_grace + SHUTDOWN_SLACK;
        assert!(
            grace > deadline,
            "{}: stop_grace_period {grace:?} <= shutdown deadline {deadline:?}",
            probe.name
        );
    }
}

#[test]
fn prometheus_scrapes_every_probe_with_the_alert_rules_mounted() {
    let compose = yaml(COMPOSE);
    let prometheus = yaml(PROMETHEUS);
    let jobs = prometheus["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs");
    // The alert rules and the dashboard select job="spyder".
    assert!(read("docs/prometheus/spyder-alerts.yml").contains("job=\"spyder\""));
    let job = jobs
        .iter()
        .find(|j| j["job_name"] == "spyder")
        .expect("a job named spyder");
    assert_eq!(job["metrics_path"], "/metrics");
    let targets: BTreeSet<String> = job["static_configs"]
        .as_sequence()
        .expect("static_configs")
        .iter()
        .flat_map(|c| c["targets"].as_sequence().expect("targets"))
        .map(scalar)
        .collect();
    let probes: BTreeSet<String> = compose_probes(&compose)
        .iter()
        .map(|p| {
            let addr = &p.loaded.config.telemetry.metrics_addr;
            let port = addr.rsplit(':').next().expect("host:port");
            format!("{}:{port}", p.name)
        })
        .collect();
    assert_eq!(targets, probes);

    // The rule files Prometheus loads are mounted into its container.
    let (_, service) = services(&compose)
        .into_iter()
        .find(|(name, _)| name == "prometheus")
        .expect("a prometheus service");
    let command = words(&service["command"]);
    let config = command
        .iter()
        .find_map(|w| w.strip_prefix("--config.file="))
        .expect("--config.file");
    let config_host = host_path(service, config).expect("prometheus.yml is mounted");
    assert_eq!(
        std::fs::canonicalize(config_host).expect("exists"),
        std::fs::canonicalize(root().join(PROMETHEUS)).expect("exists")
    );
    for rule_file in prometheus["rule_files"].as_sequence().expect("rule_files") {
        let rule_file = scalar(rule_file);
        let host =
            host_path(service, &rule_file).unwrap_or_else(|| panic!("{rule_file} is not mounted"));
        assert!(host.is_file(), "{}", host.display());
    }
}

#[test]
fn grafana_gets_the_dashboard_with_the_provisioned_data_source() {
    let compose = yaml(COMPOSE);
    let all = services(&compose);
    let service = |name: &str| {
        all.iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| *s)
            .unwrap_or_else(|| panic!("a {name} service"))
    };
    let (grafana, prepare) = (service("grafana"), service("grafana-dashboards"));
    let datasources = host_path(
        grafana,
        "/etc/grafana/provisioning/datasources/prometheus.yaml",
    )
    .expect("datasources are provisioned");
    let datasources: Value =
        serde_yaml::from_str(&std::fs::read_to_string(datasources).expect("read")).expect("YAML");
    let source = &datasources["datasources"][0];
    assert_eq!(source["type"], "prometheus");
    assert_eq!(source["url"], "http://prometheus:9090");
    let uid = scalar(&source["uid"]);

    // The one-shot step puts that uid in place of the import input ${DS_PROMETHEUS}
    // (compose's `$$` is a literal `$`).
    let script = words(&prepare["command"]).join(" ");
    assert!(
        script.contains(&format!("s/\\$${{DS_PROMETHEUS}}/{uid}/g")),
        "{script}"
    );
    let json_source = host_path(prepare, "/src/spyder-dashboard.json").expect("dashboard mounted");
    let dashboard = std::fs::read_to_string(json_source)
        .expect("read dashboard")
        .replace("${DS_PROMETHEUS}", &uid);
    assert!(!dashboard.contains("${DS_"), "another import input is left");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("JSON");
    assert!(
        dashboard["panels"]
            .as_array()
            .is_some_and(|p| !p.is_empty())
    );

    // Grafana's provider reads the directory the prepared copy's volume is mounted on.
    let providers = host_path(grafana, "/etc/grafana/provisioning/dashboards/spyder.yaml")
        .expect("dashboards are provisioned");
    let providers: Value =
        serde_yaml::from_str(&std::fs::read_to_string(providers).expect("read")).expect("YAML");
    let dir = scalar(&providers["providers"][0]["options"]["path"]);
    let volume = mounts(prepare)
        .into_iter()
        .find(|m| !m.is_bind())
        .expect("the prepared dashboards volume")
        .source;
    assert!(
        mounts(grafana)
            .iter()
            .any(|m| m.source == volume && m.target == dir),
        "grafana does not mount {volume} on {dir}"
    );
}

// ---------------------------------------------------------------- systemd unit

/// `(section, key, value)` of every assignment in a unit file, in order.
fn unit_entries(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continued lines are not parsed: {line}"
        );
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
        out.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    out
}

fn unit_value(entries: &[(String, String, String)], key: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|(section, k, _)| section == "Service" && k == key)
        .map(|(_, _, v)| v.clone())
        .collect()
}

/// An Exec line's words, its prefixes (`-`, `@`, `+`, `!`, `:`) dropped.
fn exec_words(line: &str) -> Vec<String> {
    assert!(!line.contains(['"', '\'']), "quoted Exec line: {line}");
    let line = line.trim_start_matches(['-', '@', '+', '!', ':']);
    line.split_whitespace().map(str::to_owned).collect()
}

/// Where the unit's install comment puts each repository file: target -> source.
fn unit_installs(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix('#'))
        .filter_map(|l| l.trim().strip_prefix("install "))
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let (source, target) = (words.get(words.len() - 2)?, words.last()?);
            Some(((*target).to_owned(), (*source).to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn the_units_command_lines_parse_load_and_check_what_runs() {
    let text = read(UNIT);
    let entries = unit_entries(&text);
    let start = unit_value(&entries, "ExecStart");
    let pre = unit_value(&entries, "ExecStartPre");
    assert_eq!(
        (start.len(), pre.len()),
        (1, 1),
        "one ExecStart and one ExecStartPre"
    );
    let (start, pre) = (exec_words(&start[0]), exec_words(&pre[0]));
    assert_eq!(start[0], pre[0], "the same binary");
    let installs = unit_installs(&text);
    assert_eq!(
        installs.get(&start[0]).map(String::as_str),
        Some("target/release/spyder"),
        "the install comment puts the binary at {}",
        start[0]
    );

    let run = run_args(&start[1..], "ExecStart");
    let check = run_args(&pre[1..], "ExecStartPre");
    assert!(!run.check && check.check, "ExecStartPre is the -check");
    assert_eq!(
        RunArgs {
            check: false,
            ..check.clone()
        },
        run,
        "ExecStartPre checks exactly what ExecStart runs"
    );
    let config = run.config_file.clone().expect("-config");
    let config = config.to_str().expect("UTF-8");
    let source = installs
        .get(config)
        .unwrap_or_else(|| panic!("the install comment does not say what {config} is"));
    assert_eq!(source, EXAMPLE);
    let loaded = load_like_the_binary(&root().join(source), Vec::new(), &run.flags);
    assert_eq!(loaded.warnings, Vec::<String>::new());

    // systemd's stop timeout outlasts the probe's own shutdown deadline.
    let stop = unit_value(&entries, "TimeoutStopSec");
    let stop = parse_duration(stop.last().expect("TimeoutStopSec")).expect("a duration");
    let deadline = loaded.config.crawling.shutdown_grace + SHUTDOWN_SLACK;
    assert!(stop > deadline, "TimeoutStopSec {stop:?} <= {deadline:?}");
    assert_eq!(unit_value(&entries, "KillSignal"), ["SIGTERM"]);
    assert_eq!(
        unit_value(&entries, "ExecReload"),
        ["/bin/kill -HUP $MAINPID"]
    );
    // Relative paths (the spool) land in the writable state directory.
    assert_eq!(unit_value(&entries, "StateDirectory"), ["spyder"]);
    assert_eq!(
        unit_value(&entries, "WorkingDirectory"),
        ["/var/lib/spyder"]
    );
    assert!(loaded.config.output.spool_dir.is_relative());

    // As installed (the example has no input), ExecStartPre stops the start with the
    // reason; with an input it passes.
    let dir = tempfile::tempdir().expect("temp dir");
    let example = root().join(EXAMPLE);
    let as_installed = |extra: &[&str]| {
        let mut cmd = spyder();
        for word in &pre[1..] {
            cmd.arg(if word == config {
                example.as_os_str()
            } else {
                std::ffi::OsStr::new(word)
            });
        }
        cmd.args(extra).current_dir(dir.path());
        cmd
    };
    let failed = finish(as_installed(&[]), LIMIT).await;
    assert_eq!(failed.code, Some(1), "{}", failed.stderr);
    assert!(
        failed.stderr.starts_with("spyder: no input"),
        "{}",
        failed.stderr
    );
    let domains = dir.path().join("domains.txt");
    std::fs::write(&domains, "example.com\n").expect("write domains");
    let domains = domains.display().to_string();
    let passed = finish(as_installed(&["-domains", &domains]), LIMIT).await;
    assert_eq!(passed.code, Some(0), "{}", passed.stderr);
}

/// systemd-analyze's path; `None` (the caller says what it skips) only outside CI:
/// under `CI` a missing systemd-analyze fails the test, since .ci/run installs it.
fn systemd_analyze() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("systemd-analyze"))
            .find(|candidate| candidate.is_file())
    });
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "systemd-analyze is not on PATH under CI: .ci/run installs it (Debian package systemd)"
    );
    found
}

/// A copy of the unit, named as installed, whose spyder path is the binary under test
/// (`verify` checks that the executables exist).
fn unit_copy(dir: &Path) -> PathBuf {
    let text = read(UNIT);
    let start = exec_words(&unit_value(&unit_entries(&text), "ExecStart")[0]);
    let text = text.replace(&start[0], env!("CARGO_BIN_EXE_spyder"));
    let path = dir.join("spyder.service");
    std::fs::write(&path, text).expect("write the unit");
    path
}

fn run_systemd_analyze(tool: &Path, args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(tool)
        .args(args)
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run systemd-analyze")
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    let Some(tool) = systemd_analyze() else {
        eprintln!(
            "systemd-analyze not on PATH: skipping `systemd-analyze verify` (CI installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_copy(dir.path());
    let out = run_systemd_analyze(
        &tool,
        &["verify".as_ref(), "--man=no".as_ref(), unit.as_ref()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "systemd-analyze verify: {stderr}");
    // Unknown keys and bad values are only warnings, exit 0: none may name the unit.
    let about_the_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("spyder.service") || l.contains(&*dir.path().to_string_lossy()))
        .collect();
    assert!(about_the_unit.is_empty(), "{about_the_unit:#?}");
}

#[test]
fn systemd_analyze_security_rates_the_unit_at_most_2_5() {
    let Some(tool) = systemd_analyze() else {
        eprintln!(
            "systemd-analyze not on PATH: skipping `systemd-analyze security` (CI installs it)"
        );
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let unit = unit_copy(dir.path());
    let out = run_systemd_analyze(
        &tool,
        &[
            "security".as_ref(),
            "--offline=true".as_ref(),
            "--no-pager".as_ref(),
            unit.as_ref(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "systemd-analyze security: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "→ Overall exposure level for spyder.service: 1.1 OK 🙂"
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for spyder.service:"))
        .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{stdout}"
    );
}

// ---------------------------------------------------------------- Dockerfile

/// The Dockerfile's instructions `(KEYWORD, arguments)`, comments dropped and
/// continued lines joined.
fn docker_instructions() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in read(DOCKERFILE).lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && pending.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                pending.push_str(head);
                pending.push(' ');
            }
            None => {
                pending.push_str(trimmed);
                let (keyword, rest) = pending.split_once(' ').unwrap_or((&pending, ""));
                out.push((keyword.to_uppercase(), rest.trim().to_owned()));
                pending.clear();
            }
        }
    }
    out
}

fn docker_entrypoint() -> Vec<String> {
    let instructions = docker_instructions();
    let (_, entrypoint) = instructions
        .iter()
        .rev()
        .find(|(k, _)| k == "ENTRYPOINT")
        .expect("an ENTRYPOINT");
    serde_json::from_str(entrypoint).expect("ENTRYPOINT in exec form (a JSON array)")
}

#[test]
fn the_dockerfile_builds_both_binaries_into_a_distroless_nonroot_image() {
    let instructions = docker_instructions();
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|(k, _)| k == "FROM")
        .map(|(_, a)| a)
        .collect();
    assert!(froms.len() >= 2, "multi-stage: {froms:?}");
    let last_from = instructions
        .iter()
        .rposition(|(k, _)| k == "FROM")
        .expect("FROM");
    let runtime = &instructions[last_from..];
    let image = &runtime[0].1;
    assert!(
        image.contains("/distroless/") && image.ends_with(":nonroot"),
        "runtime image {image}"
    );
    // The builder's glibc is the runtime's: bookworm is Debian 12.
    let builder = froms[0];
    for (builder_release, runtime_release) in [("bookworm", "debian12"), ("bullseye", "debian11")] {
        if builder.contains(builder_release) {
            assert!(image.contains(runtime_release), "{builder} vs {image}");
        }
    }
    let user = runtime
        .iter()
        .rev()
        .find(|(k, _)| k == "USER")
        .map(|(_, a)| a.clone())
        .expect("the runtime stage sets USER");
    let uid = user.split(':').next().unwrap_or_default();
    assert!(!matches!(uid, "" | "0" | "root"), "USER {user} is root");
    assert_eq!(docker_entrypoint(), ["/usr/local/bin/spyder"]);

    let build = instructions
        .iter()
        .find(|(k, a)| k == "RUN" && a.contains("cargo build"))
        .map(|(_, a)| a.split_whitespace().collect::<Vec<_>>())
        .expect("a RUN with cargo build");
    for flag in ["--release", "--locked"] {
        assert!(build.contains(&flag), "cargo build without {flag}");
    }
    for package in ["spyder", "seed"] {
        assert!(
            build.windows(2).any(|w| w == ["-p", package]),
            "cargo build without -p {package}"
        );
    }
    // Every program compose runs from this image is installed into it.
    let compose = yaml(COMPOSE);
    let text = read(DOCKERFILE);
    let programs: BTreeSet<String> = services(&compose)
        .into_iter()
        .filter_map(|(_, s)| spyder_image_program(s))
        .collect();
    assert!(programs.contains("/usr/local/bin/seed"), "{programs:?}");
    for program in &programs {
        let name = Path::new(program)
            .file_name()
            .expect("a name")
            .to_string_lossy();
        assert!(
            text.contains(&format!("target/release/{name} /out{program}")),
            "{program} is not installed from target/release/{name}"
        );
    }
    assert!(runtime.iter().any(|(k, a)| k == "COPY"
        && a.starts_with("--from=builder")
        && a.ends_with("/out/usr/local/bin/ /usr/local/bin/")));
    // The build context is the repository: target/ and .git stay out of it.
    let ignore = read("deploy/docker/Dockerfile.dockerignore");
    for entry in ["target", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            "{entry} not ignored"
        );
    }
}

#[test]
fn the_dockerfiles_rust_is_the_workspace_rust_version() {
    let manifest = read("Cargo.toml");
    let Some(rust_version) = manifest.lines().find_map(|l| {
        let value = l.strip_prefix("rust-version")?.trim().strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_owned())
    }) else {
        eprintln!("Cargo.toml sets no rust-version: nothing to match");
        return;
    };
    let instructions = docker_instructions();
    let arg = instructions
        .iter()
        .take_while(|(k, _)| k != "FROM")
        .find_map(|(k, a)| {
            (k == "ARG")
                .then(|| a.strip_prefix("RUST_VERSION="))
                .flatten()
        })
        .expect("ARG RUST_VERSION=<version> before the first FROM");
    assert_eq!(arg, rust_version);
    let (_, builder) = instructions
        .iter()
        .find(|(k, _)| k == "FROM")
        .expect("FROM");
    assert!(builder.contains("rust:${RUST_VERSION}"), "{builder}");
}

// ---------------------------------------------------------------- docs/deploy.md

#[test]
fn the_deploy_guide_links_every_deploy_file_and_its_links_resolve() {
    let guide = read("docs/deploy.md");
    let mut problems = Vec::new();
    // Markdown links `](target)` that are not URLs or anchors.
    for target in guide
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
    {
        if target.starts_with("http") || target.starts_with('#') {
            continue;
        }
        let path = target.split('#').next().unwrap_or(target);
        if !root().join("docs").join(path).exists() {
            problems.push(format!("broken link {target}"));
        }
    }
    for file in [
        EXAMPLE,
        COMPOSE,
        UNIT,
        DOCKERFILE,
        PROMETHEUS,
        "deploy/domains.txt",
        "deploy/grafana/provisioning/datasources/prometheus.yaml",
        "deploy/grafana/provisioning/dashboards/spyder.yaml",
    ] {
        if !guide.contains(file) {
            problems.push(format!("{file} not named"));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(
        read("README.md").contains("docs/deploy.md"),
        "README links the guide"
    );
}

//! Layered loading: defaults < file < environment < flags, merged with figment (which
//! remembers where each value came from), then typed and validated once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use figment::providers::{Format as _, Json, Yaml};
use figment::value::{Dict, Map, Tag};
use figment::{Figment, Metadata, Profile, Provider};
use serde_json::Value;

use crate::duration::format_duration;
use crate::error::{ConfigError, Origin};
use crate::keys::{KeySpec, Tier, ValueKind, find_key, is_section, keys};
use crate::schema::{Config, KeySource, default_run_id};
use crate::values::{api_keys, apply, display_value};

const RESOLV_CONF: &str = "/etc/resolv.conf";
const API_KEYS_ENV: &str = "SPYDER_API_KEYS";
const MONGODB_WARNING: &str =
    "mongodb storage is not implemented in this version; mongodb.* ignored";

/// Where configuration comes from. The environment is passed in (usually
/// `std::env::vars()`) so that loading is hermetic in tests.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The configuration file (`-config`).
    pub file: Option<PathBuf>,
    /// Environment variables; only those named in SPEC §2.4 are read.
    pub env: Vec<(String, String)>,
    /// Flags, in command-line order (a later one wins).
    pub flags: Vec<FlagValue>,
}

/// One command-line setting of one configuration key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagValue {
    /// The flag as the user wrote it, for messages: `-concurrency`,
    /// `-set crawling.concurrency`.
    pub flag: String,
    /// The key's canonical path or alias.
    pub key: String,
    /// The raw value; lists are comma-separated, `api.keys` is JSON.
    pub value: String,
}

impl FlagValue {
    /// A setting of `key` to `value`, given as `flag`.
    pub fn new(flag: impl Into<String>, key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            flag: flag.into(),
            key: key.into(),
            value: value.into(),
        }
    }

    /// `-name value`: the key whose flag is `name` (SPEC §2.5), or the key named
    /// `name` when no key has that flag (validation then names it).
    pub fn flag(name: &str, value: impl Into<String>) -> Self {
        let key = keys()
            .iter()
            .find(|k| k.flag == Some(name))
            .map_or(name, |k| k.path);
        Self::new(format!("-{name}"), key, value)
    }

    /// `-set path=value`.
    pub fn set(path: &str, value: impl Into<String>) -> Self {
        Self::new(format!("-set {path}"), path, value)
    }

    /// Every ranged key (durations, and whole numbers a file may set) at its
    /// maximum, as `-set` flags: what tests of extreme values load.
    #[doc(hidden)]
    pub fn every_maximum() -> Vec<Self> {
        keys()
            .iter()
            .filter_map(|k| match k.kind {
                ValueKind::Duration { max, .. } => Some(Self::set(k.path, format_duration(max))),
                ValueKind::Int { max, .. } if k.tier != Tier::ApiOnly => {
                    Some(Self::set(k.path, max.to_string()))
                }
                _ => None,
            })
            .collect()
    }
}

/// A loaded, validated configuration.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// The merged configuration.
    pub config: Config,
    /// Things the operator should see at startup (unknown keys, shadowed aliases,
    /// fallbacks); log each as a warning.
    pub warnings: Vec<String>,
    /// The file that was read, if any.
    pub file: Option<PathBuf>,
    /// Where each key that a source set (file, environment, flag) came from; keys
    /// not here are at their default ([`Loaded::origin`]).
    pub origins: HashMap<&'static str, Origin>,
}

impl Loaded {
    /// Where `path`'s value came from: [`Origin::Default`] when no source set it
    /// (even a source that repeats the default counts as setting it).
    pub fn origin(&self, path: &str) -> Origin {
        self.origins.get(path).cloned().unwrap_or(Origin::Default)
    }
}

/// Loads defaults < file < env < flags and validates the merged result.
pub fn load(sources: &Sources) -> Result<Loaded, ConfigError> {
    load_with_run(sources, default_run_id())
}

/// [`load`] with `default_run` as the `run` id when no source sets one; a reload
/// passes the running id so that an unset `run` does not look like a change.
pub(crate) fn load_with_run(sources: &Sources, default_run: String) -> Result<Loaded, ConfigError> {
    let mut warnings = Vec::new();
    let mut layers = Vec::new();
    if let Some(path) = &sources.file {
        let map = read_file(path)?;
        let origin = Origin::File(path.clone());
        let mut unknown = Vec::new();
        let entries = flatten(map, &origin, &mut warnings, &mut unknown)?;
        warnings.extend(unknown.iter().map(|path| {
            let hint = crate::keys::did_you_mean(path);
            format!("config: unknown key \"{path}\" ignored{hint}")
        }));
        layers.push(Layer::new(origin, entries)?);
    }
    for spec in keys()
        .iter()
        .filter(|k| k.env.is_some() && k.env != Some(API_KEYS_ENV))
    {
        let Some(var) = spec.env else { continue };
        if let Some(value) = env_value(&sources.env, var) {
            let entries = vec![(spec, Value::String(value.to_owned()))];
            layers.push(Layer::new(Origin::Env(var.to_owned()), entries)?);
        }
    }
    for flag in &sources.flags {
        let origin = Origin::Flag(flag.flag.clone());
        let spec = find_key(&flag.key).ok_or_else(|| ConfigError::UnknownKey {
            key: flag.key.clone(),
            origin: origin.clone(),
        })?;
        layers.push(Layer::new(
            origin,
            vec![(spec, Value::String(flag.value.clone()))],
        )?);
    }

    let mut origins_by_name = HashMap::new();
    let mut figment = Figment::new();
    for layer in layers {
        origins_by_name.insert(layer.name.clone(), layer.origin.clone());
        figment = figment.merge(layer);
    }

    let mut config = Config::defaults(default_run, Vec::new());
    let mut origins: HashMap<&'static str, Origin> = HashMap::new();
    for spec in keys() {
        let Ok(found) = figment.find_value(spec.path) else {
            continue;
        };
        let origin = origin_of(&figment, found.tag(), &origins_by_name);
        let value: Value = found.deserialize().map_err(|e| ConfigError::Invalid {
            key: spec.path.to_owned(),
            value: None,
            origin: origin.clone(),
            reason: e.to_string(),
        })?;
        apply(&mut config, spec, &value, &origin)?;
        origins.insert(spec.path, origin);
    }

    if !origins.contains_key("dns.servers") {
        config.dns.servers = system_dns_servers(&mut warnings);
    }
    merge_env_api_keys(&mut config, &sources.env, &mut warnings)?;
    check_combinations(&config, &|path| {
        origins.get(path).cloned().unwrap_or(Origin::Default)
    })?;
    if !config.mongodb.uri.is_empty() {
        warnings.push(MONGODB_WARNING.to_owned());
    }
    Ok(Loaded {
        config,
        warnings,
        file: sources.file.clone(),
        origins,
    })
}

/// An environment variable's value; unset and empty are the same.
fn env_value<'a>(env: &'a [(String, String)], var: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(name, _)| name == var)
        .map(|(_, value)| value.as_str())
        .filter(|value| !value.is_empty())
}

/// The file's top-level mapping; YAML or JSON by extension.
fn read_file(path: &Path) -> Result<serde_json::Map<String, Value>, ConfigError> {
    let fail = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let yaml = match extension.as_deref() {
        Some("yaml" | "yml") => true,
        Some("json") => false,
        _ => {
            return Err(fail(
                "unsupported file type; name it .yaml, .yml or .json".to_owned(),
            ));
        }
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    if text.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    let parsed: Value = if yaml {
        Yaml::from_str(text).map_err(|e| fail(format!("invalid YAML: {e}")))?
    } else {
        Json::from_str(text).map_err(|e| fail(format!("invalid JSON: {e}")))?
    };
    match parsed {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(serde_json::Map::new()),
        _ => Err(fail(
            "the top level must be a mapping of configuration keys".to_owned(),
        )),
    }
}

/// A file's keys as canonical keys: aliases resolved (the nested key wins, with a
/// warning), unknown keys dropped with a warning.
/// Unknown keys are collected in `unknown` (full dotted paths).
fn flatten(
    map: serde_json::Map<String, Value>,
    origin: &Origin,
    warnings: &mut Vec<String>,
    unknown: &mut Vec<String>,
) -> Result<Vec<(&'static KeySpec, Value)>, ConfigError> {
    let mut entries: Vec<(&'static KeySpec, Value)> = Vec::new();
    let mut aliased = Vec::new();
    for (name, value) in map {
        if let Some(spec) = keys().iter().find(|k| k.path == name) {
            entries.push((spec, value));
        } else if let Some(spec) = keys().iter().find(|k| k.alias == Some(name.as_str())) {
            aliased.push((name, spec, value));
        } else if is_section(&name) {
            match value {
                Value::Object(section) => {
                    for (sub, value) in section {
                        let path = format!("{name}.{sub}");
                        match keys().iter().find(|k| k.path == path) {
                            Some(spec) => entries.push((spec, value)),
                            None => unknown.push(path),
                        }
                    }
                }
                Value::Null => {}
                other => {
                    return Err(ConfigError::Invalid {
                        key: name.clone(),
                        value: Some(display_value(&other, crate::ValueKind::String)),
                        origin: origin.clone(),
                        reason: format!("must be a mapping of {name}.* keys"),
                    });
                }
            }
        } else {
            unknown.push(name);
        }
    }
    for (alias, spec, value) in aliased {
        if entries.iter().any(|(k, _)| k.path == spec.path) {
            warnings.push(format!(
                "config: \"{alias}\" and \"{}\" are both set; using {} (\"{alias}\" is its old name)",
                spec.path, spec.path
            ));
        } else {
            entries.push((spec, value));
        }
    }
    Ok(entries)
}

/// One source's values as a figment provider named after the source.
#[derive(Debug)]
struct Layer {
    name: String,
    origin: Origin,
    data: Dict,
}

impl Layer {
    fn new(origin: Origin, entries: Vec<(&'static KeySpec, Value)>) -> Result<Self, ConfigError> {
        let mut nested = serde_json::Map::new();
        for (spec, value) in entries {
            match spec.path.split_once('.') {
                Some((section, key)) => {
                    let slot = nested
                        .entry(section)
                        .or_insert_with(|| Value::Object(serde_json::Map::new()));
                    if let Value::Object(section) = slot {
                        section.insert(key.to_owned(), value);
                    }
                }
                None => {
                    nested.insert(spec.path.to_owned(), value);
                }
            }
        }
        let name = match &origin {
            Origin::Default => "default".to_owned(),
            Origin::File(path) => format!("file {}", path.display()),
            Origin::Env(var) => format!("env {var}"),
            Origin::Flag(flag) => format!("flag {flag}"),
            Origin::Api => "api".to_owned(),
            Origin::Current => "current".to_owned(),
        };
        let data = figment::value::Value::serialize(Value::Object(nested))
            .ok()
            .and_then(|v| v.into_dict())
            .ok_or_else(|| ConfigError::Invalid {
                key: "config".to_owned(),
                value: None,
                origin: origin.clone(),
                reason: "cannot represent these values (internal error)".to_owned(),
            })?;
        Ok(Self { name, origin, data })
    }
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name.clone())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.data.clone()))
    }
}

fn origin_of(figment: &Figment, tag: Tag, origins: &HashMap<String, Origin>) -> Origin {
    figment
        .get_metadata(tag)
        .and_then(|meta| origins.get(meta.name.as_ref()))
        .cloned()
        .unwrap_or(Origin::Default)
}

/// `nameserver` lines of resolv.conf, else `127.0.0.1:53` with a warning.
fn system_dns_servers(warnings: &mut Vec<String>) -> Vec<SocketAddr> {
    let servers = std::fs::read_to_string(RESOLV_CONF)
        .map(|text| spyder_model::resolv_conf::parse_resolv_conf(&text))
        .unwrap_or_default();
    if servers.is_empty() {
        warnings.push(format!(
            "dns.servers: no nameserver in {RESOLV_CONF}; using 127.0.0.1:53 (set dns.servers or -dns_servers)"
        ));
        return vec![SocketAddr::from(([127, 0, 0, 1], 53))];
    }
    servers
}

/// Adds `SPYDER_API_KEYS` (base64 of a JSON array) to `api.keys`; env wins on a name
/// clash.
fn merge_env_api_keys(
    config: &mut Config,
    env: &[(String, String)],
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let Some(encoded) = env_value(env, API_KEYS_ENV) else {
        return Ok(());
    };
    let origin = Origin::Env(API_KEYS_ENV.to_owned());
    let fail = |reason: String| ConfigError::Invalid {
        key: "api.keys".to_owned(),
        value: None,
        origin: origin.clone(),
        reason,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|e| fail(format!("must be standard base64 without line breaks: {e}")))?;
    let json: Value = serde_json::from_slice(&bytes).map_err(|e| {
        fail(format!(
            "must be base64 of a JSON array of {{key, name, scope}}: {e}"
        ))
    })?;
    if !json.is_array() {
        return Err(fail(
            "must be base64 of a JSON array of {key, name, scope}".to_owned(),
        ));
    }
    for key in api_keys(&json, KeySource::Env, &origin)? {
        match config.api.keys.iter_mut().find(|k| k.name == key.name) {
            Some(existing) => {
                warnings.push(format!(
                    "api.keys: key \"{}\" from {API_KEYS_ENV} replaces the one in the config",
                    key.name
                ));
                *existing = key;
            }
            None => config.api.keys.push(key),
        }
    }
    Ok(())
}

/// Rules that tie two keys together.
fn check_combinations(config: &Config, origin: &dyn Fn(&str) -> Origin) -> Result<(), ConfigError> {
    let text = |s: &str| Value::String(s.to_owned());
    if config.redis.lease_timeout <= config.crawling.task_timeout {
        let task = crate::format_duration(config.crawling.task_timeout);
        let task_origin = origin("crawling.task_timeout");
        return Err(crate::values::invalid(
            "redis.lease_timeout",
            &text(&crate::format_duration(config.redis.lease_timeout)),
            crate::ValueKind::Duration {
                min: std::time::Duration::ZERO,
                max: std::time::Duration::MAX,
            },
            &origin("redis.lease_timeout"),
            format!(
                "must be greater than crawling.task_timeout ({task}, {task_origin}); raise it or lower the task timeout"
            ),
        ));
    }
    let cert = &config.mtls.cert;
    let key = &config.mtls.key;
    if cert.as_os_str().is_empty() != key.as_os_str().is_empty() {
        let (set, missing, path) = if key.as_os_str().is_empty() {
            ("mtls.cert", "mtls.key", cert)
        } else {
            ("mtls.key", "mtls.cert", key)
        };
        return Err(crate::values::invalid(
            set,
            &text(&path.display().to_string()),
            crate::ValueKind::Path,
            &origin(set),
            format!("{missing} must be set too (mtls.cert and mtls.key go together)"),
        ));
    }
    if config.output.status_records && config.output.format == crate::OutputFormat::Json {
        return Err(crate::values::invalid(
            "output.status_records",
            &Value::Bool(true),
            crate::ValueKind::Bool,
            &origin("output.status_records"),
            "status records need output.format jsonl or csv (a json batch has no place for them); set -output_format jsonl",
        ));
    }
    Ok(())
}

/// A configuration with a change set applied (`PATCH /api/v1/config`).
#[derive(Clone, Debug)]
pub struct Patched {
    /// The new configuration, validated.
    pub config: Config,
    /// Keys whose value actually changed, in SPEC §2.6 order; their `tier` and
    /// `reload_warning` say how to apply them.
    pub changed: Vec<&'static KeySpec>,
    /// Warnings (a nested key shadowing its alias in the same change set).
    pub warnings: Vec<String>,
}

impl Config {
    /// Applies a partial nested change set (aliases accepted) to a copy of `self`.
    /// Unknown keys and `api.keys` are refused; the result is validated as a whole.
    pub fn patched(&self, changes: &Value, origin: Origin) -> Result<Patched, ConfigError> {
        let Value::Object(map) = changes else {
            return Err(ConfigError::Invalid {
                key: "config".to_owned(),
                value: None,
                origin,
                reason: "must be a JSON object of configuration keys".to_owned(),
            });
        };
        let mut warnings = Vec::new();
        let mut unknown = Vec::new();
        let entries = flatten(map.clone(), &origin, &mut warnings, &mut unknown)?;
        if let Some(key) = unknown.into_iter().next() {
            return Err(ConfigError::UnknownKey { key, origin });
        }
        let mut config = self.clone();
        for (spec, value) in &entries {
            if spec.kind == crate::ValueKind::ApiKeys {
                return Err(ConfigError::Invalid {
                    key: spec.path.to_owned(),
                    value: None,
                    origin,
                    reason: "manage keys via /api/v1/keys".to_owned(),
                });
            }
            apply(&mut config, spec, value, &origin)?;
        }
        let touched = |path: &str| entries.iter().any(|(k, _)| k.path == path);
        check_combinations(&config, &|path| {
            if touched(path) {
                origin.clone()
            } else {
                Origin::Current
            }
        })?;
        let before = serde_json::to_value(self).unwrap_or(Value::Null);
        let after = serde_json::to_value(&config).unwrap_or(Value::Null);
        let changed = keys()
            .iter()
            .filter(|k| touched(k.path))
            .filter(|k| {
                let pointer = format!("/{}", k.path.replace('.', "/"));
                before.pointer(&pointer) != after.pointer(&pointer)
            })
            .collect();
        Ok(Patched {
            config,
            changed,
            warnings,
        })
    }
}

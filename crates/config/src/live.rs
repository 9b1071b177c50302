//! The running configuration (SPEC §2.10): a snapshot others read without locking,
//! runtime changes (`PATCH /api/v1/config`) and SIGHUP reloads applied atomically by
//! tier, and listeners told about each change in order.

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use arc_swap::ArcSwap;
use serde_json::{Map, Value};
use spyder_model::telemetry;

use crate::error::{ConfigError, Origin};
use crate::keys::{KeySpec, Tier, keys};
use crate::load::{Sources, load_with_run};
use crate::schema::Config;

/// The counter of SIGHUP reloads, labelled `result="success"|"failure"`.
pub const RELOADS_METRIC: &str = telemetry::CONFIG_RELOADS.name;

/// The running configuration. Cloning is cheap and every clone shares the same
/// state: the current snapshot, the sources a reload reads again, the listeners.
///
/// Changes are serialized: each one is computed against the latest configuration,
/// swapped in whole and announced to the listeners before the next one starts.
#[derive(Clone)]
pub struct LiveConfig {
    inner: Arc<Inner>,
}

struct Inner {
    current: ArcSwap<Config>,
    sources: Sources,
    /// Held while a change is computed, swapped in and announced.
    apply_lock: Mutex<()>,
    listeners: RwLock<Vec<Arc<Listener>>>,
}

struct Listener {
    name: &'static str,
    callback: Box<dyn Fn(&ConfigChange) + Send + Sync>,
}

/// One applied change, as listeners see it.
#[derive(Clone, Debug)]
pub struct ConfigChange {
    /// The configuration before the change.
    pub old: Arc<Config>,
    /// The configuration now current.
    pub new: Arc<Config>,
    /// The keys whose value changed, in SPEC §2.6 order; never empty.
    pub changed: Vec<&'static KeySpec>,
}

impl ConfigChange {
    /// Whether the change touches `path`: a key (`crawling.concurrency`) or a whole
    /// section (`output`).
    pub fn touches(&self, path: &str) -> bool {
        self.changed
            .iter()
            .any(|k| k.path == path || k.section() == Some(path))
    }
}

/// What a runtime change or a reload did.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The configuration now current (the old one if nothing changed).
    pub config: Arc<Config>,
    /// The keys whose value changed, in SPEC §2.6 order.
    pub changed: Vec<&'static KeySpec>,
    /// Warnings to log: the §2.10 text of each changed Tier 2 key, a nested key
    /// shadowing its alias, and for a reload the loader's warnings (unknown keys...).
    pub warnings: Vec<String>,
    /// Tier 3 keys a reload found changed but did not apply (they keep their running
    /// values until a restart), in SPEC §2.6 order. Always empty for a runtime change.
    pub skipped: Vec<&'static KeySpec>,
}

impl Applied {
    /// `config reload: fields require restart: <f1>, <f2>`, the error a reload logs
    /// when it skipped Tier 3 keys; `None` when it skipped none.
    pub fn skipped_message(&self) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let paths: Vec<&str> = self.skipped.iter().map(|k| k.path).collect();
        Some(format!("config reload: {}", restart_message(&paths)))
    }
}

/// `fields require restart: <f1>, <f2>` (SPEC §2.10).
pub fn restart_message(fields: &[&str]) -> String {
    format!("fields require restart: {}", fields.join(", "))
}

/// Why a change was refused; nothing was applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApplyError {
    /// The change set is not a JSON object, or it sets `api.keys`.
    #[error("{0}")]
    BadRequest(String),
    /// A key is unknown or a value invalid; for a reload, the file cannot be read
    /// or parsed, or a value in the file, environment or flags is invalid. The
    /// error names the file (or variable, or flag), the key and the reason.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// A runtime change sets Tier 3 keys to new values; SPEC §2.6 order.
    #[error("{}", restart_message(fields))]
    Restart {
        /// The Tier 3 keys' paths, in SPEC §2.6 order.
        fields: Vec<&'static str>,
    },
}

impl ApplyError {
    /// The API error code: `BAD_REQUEST`, `UNKNOWN_FIELD`, `INVALID_CONFIG` or
    /// `APPLY_ERROR` (SPEC §3.12).
    pub fn code(&self) -> &'static str {
        match self {
            ApplyError::BadRequest(_) => "BAD_REQUEST",
            ApplyError::Invalid(ConfigError::UnknownKey { .. }) => "UNKNOWN_FIELD",
            ApplyError::Invalid(_) => "INVALID_CONFIG",
            ApplyError::Restart { .. } => "APPLY_ERROR",
        }
    }

    /// The API error text: `<path>: <reason>` for an invalid value, `fields require
    /// restart: <f1>, <f2>` for Tier 3 keys. It never contains a secret.
    pub fn message(&self) -> String {
        match self {
            ApplyError::BadRequest(message) => message.clone(),
            ApplyError::Invalid(ConfigError::UnknownKey { key, .. }) => {
                format!("{key}: unknown field; see docs/configuration.md for the keys")
            }
            ApplyError::Invalid(ConfigError::Invalid { key, reason, .. }) => {
                format!("{key}: {reason}")
            }
            ApplyError::Invalid(ConfigError::File { path, reason }) => {
                format!("{}: {reason}", path.display())
            }
            ApplyError::Restart { fields } => restart_message(fields),
        }
    }
}

/// The message of a `PATCH` that sets `api.keys` (SPEC §3.12).
const API_KEYS_REFUSED: &str = "api.keys: manage keys via /api/v1/keys";

impl LiveConfig {
    /// Starts from `config` (usually `load(&sources)?.config`); `sources` are kept
    /// for [`reload`](Self::reload).
    pub fn new(config: Config, sources: Sources) -> Self {
        Self {
            inner: Arc::new(Inner {
                current: ArcSwap::from_pointee(config),
                sources,
                apply_lock: Mutex::new(()),
                listeners: RwLock::new(Vec::new()),
            }),
        }
    }

    /// The current configuration. A task takes one snapshot and uses it throughout,
    /// so it never sees half of a change.
    pub fn current(&self) -> Arc<Config> {
        self.inner.current.load_full()
    }

    /// The sources a reload reads again.
    pub fn sources(&self) -> &Sources {
        &self.inner.sources
    }

    /// Calls `listener` after every applied change, in subscription order, with the
    /// old and new snapshots and the changed keys. Listeners run one change at a
    /// time, in the order the changes were applied; they must return quickly and
    /// must not call [`patch`](Self::patch) or [`reload`](Self::reload) (that would
    /// wait for itself). A listener that panics is logged under `name` and the
    /// others still run.
    pub fn subscribe(
        &self,
        name: &'static str,
        listener: impl Fn(&ConfigChange) + Send + Sync + 'static,
    ) {
        let listener = Arc::new(Listener {
            name,
            callback: Box::new(listener),
        });
        self.inner
            .listeners
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }

    /// Applies a partial nested change set (`PATCH /api/v1/config`; aliases
    /// accepted) to the current configuration. All or nothing: an unknown key, an
    /// invalid value, `api.keys` or a Tier 3 key set to a new value applies nothing.
    /// Setting a key to its current value is not a change.
    pub fn patch(&self, changes: &Value) -> Result<Applied, ApplyError> {
        if !changes.is_object() {
            return Err(ApplyError::BadRequest(
                "the body must be a JSON object of configuration keys".to_owned(),
            ));
        }
        let _guard = self.lock();
        let current = self.current();
        let patched = current
            .patched(changes, Origin::Api)
            .map_err(|error| match error {
                ConfigError::Invalid { key, .. } if key == "api.keys" => {
                    ApplyError::BadRequest(API_KEYS_REFUSED.to_owned())
                }
                other => ApplyError::Invalid(other),
            })?;
        let restart: Vec<&'static str> = patched
            .changed
            .iter()
            .filter(|k| !applies_at_runtime(k))
            .map(|k| k.path)
            .collect();
        if !restart.is_empty() {
            return Err(ApplyError::Restart { fields: restart });
        }
        let mut warnings = patched.warnings;
        warnings.extend(reload_warnings(&patched.changed));
        let config = self.commit(current, patched.config, &patched.changed);
        Ok(Applied {
            config,
            changed: patched.changed,
            warnings,
            skipped: Vec::new(),
        })
    }

    /// SIGHUP: loads the file, environment and flags again and applies the
    /// difference to the running configuration over all keys, so earlier runtime
    /// changes are dropped. Tier 1 and 2 keys apply; Tier 3 keys keep their running
    /// values and are listed in [`Applied::skipped`]; `api.keys` keeps its running
    /// value (keys are managed through the API). If loading fails nothing changes.
    /// Counted in `spyder_config_reloads_total{result}`.
    pub fn reload(&self) -> Result<Applied, ApplyError> {
        let _guard = self.lock();
        let result = self.reload_locked();
        let label = if result.is_ok() { "success" } else { "failure" };
        telemetry::config_reloads(label).increment(1);
        result
    }

    fn reload_locked(&self) -> Result<Applied, ApplyError> {
        let current = self.current();
        let loaded = load_with_run(&self.inner.sources, current.run.clone())?;
        let differing = diff(&current, &loaded.config);
        let skipped: Vec<&'static KeySpec> = differing
            .iter()
            .copied()
            .filter(|k| k.tier == Tier::Restart)
            .collect();
        let to_apply: Vec<&'static KeySpec> = differing
            .iter()
            .copied()
            .filter(|k| applies_at_runtime(k))
            .collect();
        let mut warnings = loaded.warnings;
        if to_apply.is_empty() {
            return Ok(Applied {
                config: current,
                changed: Vec::new(),
                warnings,
                skipped,
            });
        }
        let origin = self
            .inner
            .sources
            .file
            .clone()
            .map_or(Origin::Default, Origin::File);
        let changes = nested_values(&loaded.config, &to_apply, &origin)?;
        let patched = current.patched(&changes, origin.clone())?;
        // Every applied value must arrive exactly as loaded.
        if let Some(missed) = diff(&patched.config, &loaded.config)
            .into_iter()
            .find(|k| to_apply.iter().any(|a| a.path == k.path))
        {
            return Err(ApplyError::Invalid(ConfigError::Invalid {
                key: missed.path.to_owned(),
                value: None,
                origin,
                reason: "the reloaded value could not be applied (internal error)".to_owned(),
            }));
        }
        warnings.extend(patched.warnings);
        warnings.extend(reload_warnings(&patched.changed));
        let config = self.commit(current, patched.config, &patched.changed);
        Ok(Applied {
            config,
            changed: patched.changed,
            warnings,
            skipped,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ()> {
        self.inner
            .apply_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Swaps `new` in and tells the listeners; keeps `old` when nothing changed.
    /// Called with the apply lock held.
    fn commit(&self, old: Arc<Config>, new: Config, changed: &[&'static KeySpec]) -> Arc<Config> {
        if changed.is_empty() {
            return old;
        }
        let new = Arc::new(new);
        self.inner.current.store(Arc::clone(&new));
        let change = ConfigChange {
            old,
            new: Arc::clone(&new),
            changed: changed.to_vec(),
        };
        self.notify(&change);
        new
    }

    fn notify(&self, change: &ConfigChange) {
        let listeners = self
            .inner
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in listeners {
            let call = AssertUnwindSafe(|| (listener.callback)(change));
            if let Err(payload) = catch_unwind(call) {
                tracing::error!(
                    listener = listener.name,
                    "config listener {} panicked: {}",
                    listener.name,
                    panic_text(payload.as_ref())
                );
            }
        }
    }
}

impl fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self
            .inner
            .listeners
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|l| l.name)
            .collect();
        f.debug_struct("LiveConfig")
            .field("current", &self.current())
            .field("sources", &self.inner.sources)
            .field("listeners", &names)
            .finish()
    }
}

/// Every key whose value differs between `old` and `new`, in SPEC §2.6 order
/// (values compared in their serialized form, as `GET /api/v1/config` shows them,
/// keys of `api.keys` included).
pub fn diff(old: &Config, new: &Config) -> Vec<&'static KeySpec> {
    let old = serde_json::to_value(old).unwrap_or(Value::Null);
    let new = serde_json::to_value(new).unwrap_or(Value::Null);
    keys()
        .iter()
        .filter(|k| {
            let pointer = json_pointer(k.path);
            old.pointer(&pointer) != new.pointer(&pointer)
        })
        .collect()
}

/// Tiers 1 and 2.
fn applies_at_runtime(spec: &KeySpec) -> bool {
    matches!(spec.tier, Tier::Immediate | Tier::Warn)
}

/// The §2.10 warning of each changed Tier 2 key.
fn reload_warnings(changed: &[&'static KeySpec]) -> Vec<String> {
    changed
        .iter()
        .filter_map(|k| k.reload_warning)
        .map(str::to_owned)
        .collect()
}

fn json_pointer(path: &str) -> String {
    format!("/{}", path.replace('.', "/"))
}

/// `config`'s values of `keys` as a nested change set for [`Config::patched`].
fn nested_values(
    config: &Config,
    keys: &[&'static KeySpec],
    origin: &Origin,
) -> Result<Value, ConfigError> {
    let fail = |key: &str, reason: String| ConfigError::Invalid {
        key: key.to_owned(),
        value: None,
        origin: origin.clone(),
        reason,
    };
    let full = serde_json::to_value(config)
        .map_err(|e| fail("config", format!("cannot represent the configuration: {e}")))?;
    let mut changes = Map::new();
    for spec in keys {
        let value = full
            .pointer(&json_pointer(spec.path))
            .cloned()
            .ok_or_else(|| fail(spec.path, "no value (internal error)".to_owned()))?;
        match spec.path.split_once('.') {
            Some((section, key)) => {
                let slot = changes
                    .entry(section)
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(section) = slot {
                    section.insert(key.to_owned(), value);
                }
            }
            None => {
                changes.insert(spec.path.to_owned(), value);
            }
        }
    }
    Ok(Value::Object(changes))
}

/// A panic's message, when it has one.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

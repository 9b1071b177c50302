//! spyder's configuration: one key table (aliases, flags, env vars, tiers), the typed
//! [`Config`] with its documented defaults, layered loading (defaults < file < env <
//! flags, only the merged result validated), and Go-style [`flags`] for the binaries.
//! [`LiveConfig`] holds the running configuration: snapshots, runtime changes and
//! SIGHUP reloads applied by tier (SPEC §2.10), and listeners told of each change.
//!
//! ```no_run
//! use spyder_config::{Sources, load};
//! let sources = Sources {
//!     file: Some("spyder.yaml".into()),
//!     env: std::env::vars().collect(),
//!     flags: Vec::new(),
//! };
//! let loaded = load(&sources)?;
//! for warning in &loaded.warnings {
//!     eprintln!("{warning}");
//! }
//! let concurrency = loaded.config.crawling.concurrency;
//! # Ok::<(), spyder_config::ConfigError>(())
//! ```
//!
//! Every key is listed in `docs/configuration.md`; a test keeps that page and
//! [`keys()`] in step.
//!
//! # Layout
//!
//! * `keys`: the key table ([`KeySpec`] with its [`Tier`] and [`ValueKind`]; [`keys()`],
//!   [`find_key`], [`tier_of`], [`keys_named`], [`patch_scope`]).
//! * `schema`: [`Config`] and its sections ([`CrawlingConfig`], [`DnsConfig`], ...),
//!   with the value types ([`OutputFormat`], [`TrustRoots`], [`ApiKey`], [`Scope`],
//!   ...); `values` parses one key's value into it, `redact` hides secrets in its
//!   serialized form.
//! * `load`: [`load`] from [`Sources`] into a [`Loaded`] configuration, and
//!   [`Config::patched`] for a partial change set ([`Patched`]).
//! * `live`: [`LiveConfig`], with [`ConfigChange`], [`Applied`], [`ApplyError`] and
//!   [`diff`].
//! * `error`: [`ConfigError`] and the [`Origin`] of a value; `duration`: Go-style
//!   durations ([`parse_duration`], [`format_duration`]).
//! * [`flags`]: Go-style command-line flags for both binaries.
//!
//! The private modules' items are re-exported here.

#![deny(missing_docs)]

mod duration;
mod error;
pub mod flags;
mod keys;
mod live;
mod load;
mod redact;
mod schema;
mod values;

pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, Origin};
pub use keys::{
    KeySpec, LOG_FORMATS, LOG_LEVELS, OUTPUT_FORMATS, Tier, ValueKind, find_key, keys, keys_named,
    patch_scope, similar_key, tier_of,
};
pub use live::{
    Applied, ApplyError, ConfigChange, LiveConfig, RELOADS_METRIC, diff, restart_message,
};
pub use load::{FlagValue, Loaded, Patched, Sources, load};
pub use schema::{
    ApiConfig, ApiKey, BatchConfig, Config, CrawlingConfig, DashboardConfig, DedupConfig,
    DnsConfig, KeySource, LogFormat, LogLevel, LoggingConfig, MongoDbConfig, MtlsConfig,
    OutputConfig, OutputFormat, RedisConfig, Scope, TelemetryConfig, TrustRoots,
};

//! Configuration errors; each names where the value came from, the key, the value
//! and what is expected.

use std::fmt;
use std::path::PathBuf;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// A command-line flag, as typed (`-concurrency`, `-set crawling.concurrency`).
    Flag(String),
    /// A runtime change through the REST API.
    Api,
    /// The value the running configuration already has.
    Current,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "from {}", path.display()),
            Origin::Env(var) => write!(f, "from env {var}"),
            Origin::Flag(flag) => write!(f, "from {flag}"),
            Origin::Api => f.write_str("from the API"),
            Origin::Current => f.write_str("current value"),
        }
    }
}

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file cannot be read or parsed, or its extension is not `.yaml`, `.yml`
    /// or `.json`.
    #[error("config: {}: {reason}", path.display())]
    File {
        /// The file named.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A value is invalid. `value` is `None` for secrets.
    #[error("{}", invalid_message(key, value.as_deref(), origin, reason))]
    Invalid {
        /// The key's path.
        key: String,
        /// The value as given; `None` for secrets.
        value: Option<String>,
        /// Where the value came from.
        origin: Origin,
        /// Why it is refused, usually what is expected.
        reason: String,
    },
    /// A flag, `-set` or runtime change set names no configuration key.
    #[error(
        "config: unknown key \"{key}\" ({origin}){}: see docs/configuration.md for the keys",
        crate::keys::did_you_mean(.key)
    )]
    UnknownKey {
        /// The name as given.
        key: String,
        /// Where the name came from.
        origin: Origin,
    },
}

fn invalid_message(key: &str, value: Option<&str>, origin: &Origin, reason: &str) -> String {
    match value {
        Some(value) => format!("config: {key} = {value} ({origin}): {reason}"),
        None => format!("config: {key} ({origin}): {reason}"),
    }
}

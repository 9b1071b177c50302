//! Logs on stderr (SPEC §3.14): text on a TTY, JSON otherwise or when asked, with
//! `timestamp`, `level`, `message`, `target` and the event's fields as top-level keys.

use std::io::IsTerminal;

use spyder_config::{LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Fails only if one is already installed.
pub fn init(level: LogLevel, format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::new(directive(level));
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
    result.map_err(|e| e.to_string())
}

/// Our crates log at `level`; dependencies only from `warn` (hyper and rustls are chatty).
fn directive(level: LogLevel) -> String {
    let ours = match level {
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let deps = match level {
        LogLevel::Error => "error",
        _ => "warn",
    };
    format!(
        "{deps},spyder={ours},spyder_probe={ours},spyder_config={ours},spyder_queue={ours},\
         spyder_sink={ours},spyder_emitter={ours}"
    )
}

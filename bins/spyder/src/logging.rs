//! Logs on stderr (SPEC §3.14): text on a TTY, JSON otherwise or when asked, with
//! `timestamp`, `level`, `message`, `target` and the event's fields as top-level keys.
//! `logging.level` and `logging.format` are Tier 1: [`Logs::apply`] switches both in
//! the running process.

use std::io::IsTerminal;

use spyder_config::{LogFormat, LogLevel};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

type Filtered = tracing_subscriber::layer::Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

/// The installed subscriber's switches.
#[derive(Clone)]
pub struct Logs {
    filter: reload::Handle<EnvFilter, Registry>,
    output: reload::Handle<Output, Filtered>,
    /// Colours allowed (`-no_color` and `NO_COLOR` say no).
    color: bool,
}

/// Installs the global subscriber; text logs on a terminal are coloured unless
/// `color` is false. Fails only if one is already installed.
pub fn init(level: LogLevel, format: LogFormat, color: bool) -> Result<Logs, String> {
    let (filter, filter_handle) = reload::Layer::new(EnvFilter::new(directive(level)));
    let (output, output_handle) = reload::Layer::new(output_layer(format, color));
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .map_err(|e| e.to_string())?;
    Ok(Logs {
        filter: filter_handle,
        output: output_handle,
        color,
    })
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").finish_non_exhaustive()
    }
}

impl Logs {
    /// Switches level and format for every later event.
    pub fn apply(&self, level: LogLevel, format: LogFormat) -> Result<(), String> {
        self.filter
            .reload(EnvFilter::new(directive(level)))
            .map_err(|e| e.to_string())?;
        self.output
            .reload(output_layer(format, self.color))
            .map_err(|e| e.to_string())
    }
}

fn output_layer(format: LogFormat, color: bool) -> Output {
    let json = match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if json {
        layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed()
    } else {
        layer
            .with_ansi(color && std::io::stderr().is_terminal())
            .boxed()
    }
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
         spyder_sink={ours},spyder_emitter={ours},spyder_health={ours}"
    )
}

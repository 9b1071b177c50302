//! Logs on stderr (SPEC §3.14): text on a TTY, JSON otherwise or when asked, with
//! `timestamp`, `level`, `message`, `target` and the event's fields as top-level keys.
//! `logging.level` and `logging.format` are Tier 1: [`Logs::apply`] switches both in
//! the running process.

use std::io::IsTerminal;

use spyder_config::{LogFormat, LogLevel};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// A layer of the one subscriber; each has its own filter.
pub type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;
type Output = BoxedLayer;

/// The installed subscriber's switches.
#[derive(Clone)]
pub struct Logs {
    filter: reload::Handle<EnvFilter, Registry>,
    output: reload::Handle<Output, Registry>,
    /// Colours allowed (`-no_color` and `NO_COLOR` say no).
    color: bool,
}

/// Installs the global subscriber; text logs on a terminal are coloured unless
/// `color` is false. Fails only if one is already installed.
///
/// Logs and traces filter apart: `logging.level` decides which events are logged,
/// while trace spans (spyder's own, at INFO) reach the trace layer whatever the level.
///
/// `traces` is the trace export layer when `telemetry.otel_endpoint` is set; it is
/// installed here, not swapped in later, because `tracing-opentelemetry` finds its
/// span contexts by downcasting through the layers (a reloadable slot hides them).
pub fn init(
    level: LogLevel,
    format: LogFormat,
    color: bool,
    traces: Option<BoxedLayer>,
) -> Result<Logs, String> {
    let (filter, filter_handle) = reload::Layer::new(EnvFilter::new(directive(level)));
    let (output, output_handle) = reload::Layer::new(output_layer(format, color));
    let spans_only = tracing_subscriber::filter::filter_fn(|meta| {
        meta.is_span() && meta.target().starts_with("spyder")
    });
    let mut layers: Vec<BoxedLayer> = vec![output.with_filter(filter).boxed()];
    if let Some(traces) = traces {
        layers.push(traces.with_filter(spans_only).boxed());
    }
    tracing_subscriber::registry()
        .with(layers)
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
    if json {
        tracing_subscriber::fmt::layer()
            .with_writer(ListFields)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(color && std::io::stderr().is_terminal())
            .boxed()
    }
}

/// Fields that hold lists. tracing records them as text (`["gov","mil","int"]`); in
/// JSON logs they become JSON arrays, so a log pipeline reads values, not strings
/// to parse again.
const LIST_FIELDS: &[&str] = &["exclude_tlds", "changed", "hosts", "keys", "errors"];

/// stderr for JSON logs, turning [`LIST_FIELDS`] that hold a JSON array as text into
/// the array. tracing-subscriber writes each event whole into one writer and drops
/// it, so one writer is one line.
struct ListFields;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for ListFields {
    type Writer = ListFieldsLine;

    fn make_writer(&'a self) -> Self::Writer {
        ListFieldsLine(Vec::with_capacity(256))
    }
}

/// One JSON log line, written to stderr with its list fields as arrays on drop.
struct ListFieldsLine(Vec<u8>);

impl std::io::Write for ListFieldsLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for ListFieldsLine {
    fn drop(&mut self) {
        use std::io::Write as _;
        let line = lists_as_arrays(&self.0);
        // Nowhere to report a failed log write.
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// `line` with every [`LIST_FIELDS`] value that is a string holding a JSON array
/// replaced by that array; anything else stays byte for byte.
fn lists_as_arrays(line: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: std::borrow::Cow<'_, [u8]> = std::borrow::Cow::Borrowed(line);
    for field in LIST_FIELDS {
        let key = format!("\"{field}\":");
        // A key, not the same text inside an escaped string (a message quoting it).
        let Some(at) = find_key(&out, key.as_bytes()) else {
            continue;
        };
        let start = at + key.len();
        let mut values = serde_json::Deserializer::from_slice(&out[start..]).into_iter::<String>();
        let Some(Ok(text)) = values.next() else {
            continue;
        };
        let end = start + values.byte_offset();
        let Ok(array @ serde_json::Value::Array(_)) =
            serde_json::from_str::<serde_json::Value>(&text)
        else {
            continue;
        };
        let mut fixed = Vec::with_capacity(out.len());
        fixed.extend_from_slice(&out[..start]);
        fixed.extend_from_slice(array.to_string().as_bytes());
        fixed.extend_from_slice(&out[end..]);
        out = std::borrow::Cow::Owned(fixed);
    }
    out
}

/// The first `needle` in `haystack` not preceded by a backslash.
fn find_key(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .position(|(i, window)| window == needle && (i == 0 || haystack[i - 1] != b'\\'))
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

#[cfg(test)]
mod tests {
    use super::lists_as_arrays;

    #[test]
    fn list_fields_become_arrays_and_the_rest_stays() {
        // As tracing-subscriber writes them: list values as strings.
        let mut line = serde_json::json!({
            "message": "starting spyder",
            "exclude_tlds": "[\"gov\",\"mil\"]",
            "ua": "[x]",
            "changed": "[\"ua\", \"dns.servers\"]",
        })
        .to_string();
        line.push('\n');
        let fixed: serde_json::Value =
            serde_json::from_slice(&lists_as_arrays(line.as_bytes())).expect("still JSON");
        assert_eq!(fixed["exclude_tlds"], serde_json::json!(["gov", "mil"]));
        assert_eq!(fixed["changed"], serde_json::json!(["ua", "dns.servers"]));
        assert_eq!(fixed["ua"], "[x]", "not a list field");
        assert!(lists_as_arrays(line.as_bytes()).ends_with(b"\n"));
        // The key's text quoted inside a message is not the key.
        let mut quoted = serde_json::json!({
            "message": "\"exclude_tlds\":\"[\\\"x\\\"]\"",
            "exclude_tlds": "[\"gov\"]",
        })
        .to_string();
        quoted.push('\n');
        let fixed: serde_json::Value =
            serde_json::from_slice(&lists_as_arrays(quoted.as_bytes())).expect("still JSON");
        assert_eq!(fixed["exclude_tlds"], serde_json::json!(["gov"]));
        // Not a string holding an array: untouched.
        let odd = br#"{"exclude_tlds":"[not json","hosts":3}"#;
        assert_eq!(&*lists_as_arrays(odd), &odd[..]);
    }
}

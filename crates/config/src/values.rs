//! Turning one key's raw value (from a file, env var or flag) into its typed field,
//! with the key's range checks.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde_json::Value;

use crate::duration::{DURATION_TOO_LARGE, format_duration, parse_duration};
use crate::error::{ConfigError, Origin};
use crate::keys::{KeySpec, ValueKind};
use crate::redact::hide_url_password;
use crate::schema::{
    ApiKey, Config, KeySource, LogFormat, LogLevel, OutputFormat, Scope, TrustRoots,
};

/// Shortest API key accepted.
const MIN_API_KEY_LEN: usize = 8;
const DNS_PORT: u16 = 53;

/// Sets `spec`'s field of `config` from `value`, checking type and range.
pub(crate) fn apply(
    config: &mut Config,
    spec: &KeySpec,
    value: &Value,
    origin: &Origin,
) -> Result<(), ConfigError> {
    if spec.kind == ValueKind::ApiKeys {
        config.api.keys = api_keys(value, KeySource::Config, origin)?;
        return Ok(());
    }
    set(config, spec, value).map_err(|reason| invalid(spec.path, value, spec.kind, origin, reason))
}

/// The error for `key = value` from `origin`.
pub(crate) fn invalid(
    key: &str,
    value: &Value,
    kind: ValueKind,
    origin: &Origin,
    reason: impl Into<String>,
) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        value: Some(display_value(value, kind)),
        origin: origin.clone(),
        reason: reason.into(),
    }
}

/// A value as an error message shows it: numbers, booleans and durations bare, text
/// quoted, passwords in URLs hidden.
pub(crate) fn display_value(value: &Value, kind: ValueKind) -> String {
    match value {
        Value::String(text) => {
            let text = hide_url_password(text).unwrap_or_else(|| text.clone());
            let bare = matches!(
                kind,
                ValueKind::Bool
                    | ValueKind::Int { .. }
                    | ValueKind::Float { .. }
                    | ValueKind::Duration { .. }
            );
            if bare && !text.is_empty() && !text.contains(char::is_whitespace) {
                text
            } else {
                format!("{text:?}")
            }
        }
        Value::Object(_) => "{...}".to_owned(),
        other => other.to_string(),
    }
}

fn set(c: &mut Config, spec: &KeySpec, v: &Value) -> Result<(), String> {
    match spec.path {
        "domains" => c.domains = text(v)?,
        "probe" => c.probe = non_empty(text(v)?)?,
        "run" => c.run = non_empty(text(v)?)?,
        "ua" => c.ua = text(v)?,
        "exclude_tlds" => c.exclude_tlds = suffixes(v)?,
        "crawling.concurrency" => c.crawling.concurrency = int(spec, v)?,
        "crawling.rate_per_host" => c.crawling.rate_per_host = float(spec, v)?,
        "crawling.rate_burst" => c.crawling.rate_burst = int(spec, v)?,
        "crawling.rate_global" => c.crawling.rate_global = int(spec, v)?,
        "crawling.max_conns_per_ip" => c.crawling.max_conns_per_ip = int(spec, v)?,
        "crawling.max_domains" => c.crawling.max_domains = int(spec, v)?,
        "crawling.continuous" => c.crawling.continuous = boolean(v)?,
        "crawling.http_fallback" => c.crawling.http_fallback = boolean(v)?,
        "crawling.allow_private" => c.crawling.allow_private = boolean(v)?,
        "crawling.task_timeout" => c.crawling.task_timeout = duration(spec, v)?,
        "crawling.dns_timeout" => c.crawling.dns_timeout = duration(spec, v)?,
        "crawling.tls_timeout" => c.crawling.tls_timeout = duration(spec, v)?,
        "crawling.http_timeout" => c.crawling.http_timeout = duration(spec, v)?,
        "crawling.body_max_bytes" => c.crawling.body_max_bytes = int(spec, v)?,
        "crawling.max_redirects" => c.crawling.max_redirects = int(spec, v)?,
        "crawling.allow_cidrs" => c.crawling.allow_cidrs = cidrs(v)?,
        "crawling.https_port" => c.crawling.https_port = int(spec, v)?,
        "crawling.http_port" => c.crawling.http_port = int(spec, v)?,
        "crawling.redirect_ports" => c.crawling.redirect_ports = ports(v)?,
        "crawling.tls_roots" => c.crawling.tls_roots = tls_roots(v)?,
        "crawling.shutdown_grace" => c.crawling.shutdown_grace = duration(spec, v)?,
        "dns.servers" => c.dns.servers = dns_servers(v)?,
        "dns.query_timeout" => c.dns.query_timeout = duration(spec, v)?,
        "dns.retries" => c.dns.retries = int(spec, v)?,
        "dns.max_inflight" => c.dns.max_inflight = int(spec, v)?,
        "dns.sockets" => c.dns.sockets = int(spec, v)?,
        "dns.cache_size" => c.dns.cache_size = int(spec, v)?,
        "batch.max_edges" => c.batch.max_edges = int(spec, v)?,
        "batch.flush_interval" => c.batch.flush_interval = duration(spec, v)?,
        "batch.node_threshold_ratio" => c.batch.node_threshold_ratio = float(spec, v)?,
        "output.format" => {
            c.output.format = match choice(spec, v)? {
                "jsonl" => OutputFormat::Jsonl,
                "csv" => OutputFormat::Csv,
                _ => OutputFormat::Json,
            }
        }
        "output.ingest" => c.output.ingest = ingest_url(v)?,
        "output.spool_dir" => c.output.spool_dir = PathBuf::from(text(v)?),
        "output.file" => c.output.file = PathBuf::from(text(v)?),
        "output.status_records" => c.output.status_records = boolean(v)?,
        "redis.addr" => c.redis.addr = redis_addr(v)?,
        "redis.queue_addr" => c.redis.queue_addr = redis_addr(v)?,
        "redis.queue_key" => c.redis.queue_key = non_empty(text(v)?)?,
        "redis.lease_timeout" => c.redis.lease_timeout = duration(spec, v)?,
        "redis.max_attempts" => c.redis.max_attempts = int(spec, v)?,
        "dedup.ttl" => c.dedup.ttl = duration(spec, v)?,
        "dedup.memory_max_entries" => c.dedup.memory_max_entries = int(spec, v)?,
        "mtls.cert" => c.mtls.cert = existing_file(v)?,
        "mtls.key" => c.mtls.key = existing_file(v)?,
        "mtls.ca" => c.mtls.ca = existing_file(v)?,
        "telemetry.metrics_addr" => c.telemetry.metrics_addr = listen_addr(v)?,
        "telemetry.otel_endpoint" => c.telemetry.otel_endpoint = text(v)?,
        "telemetry.otel_insecure" => c.telemetry.otel_insecure = boolean(v)?,
        "telemetry.otel_service" => c.telemetry.otel_service = text(v)?,
        "telemetry.otel_sample_ratio" => c.telemetry.otel_sample_ratio = float(spec, v)?,
        "telemetry.stall_after" => c.telemetry.stall_after = duration(spec, v)?,
        "api.rate_limit" => c.api.rate_limit = int(spec, v)?,
        "api.rate_burst" => c.api.rate_burst = int(spec, v)?,
        "logging.level" => {
            c.logging.level = match choice(spec, v)? {
                "debug" => LogLevel::Debug,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                _ => LogLevel::Info,
            }
        }
        "logging.format" => {
            c.logging.format = match choice(spec, v)? {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => LogFormat::Auto,
            }
        }
        "mongodb.uri" => c.mongodb.uri = mongodb_uri(v)?,
        "mongodb.database" => c.mongodb.database = database_name(v)?,
        "dashboard.history_size" => c.dashboard.history_size = int(spec, v)?,
        other => return Err(format!("key {other} has no field (internal error)")),
    }
    Ok(())
}

/// One scalar as text: strings as they are, numbers and booleans printed, null empty.
fn text(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Ok(String::new()),
        Value::Array(_) | Value::Object(_) => Err("expected a single value".to_owned()),
    }
}

fn non_empty(s: String) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(s)
    }
}

/// Go's `strconv.ParseBool` spellings.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

fn boolean(v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) => parse_bool(s.trim()).ok_or_else(|| "must be true or false".to_owned()),
        _ => Err("must be true or false".to_owned()),
    }
}

/// A whole number within the key's range, converted to the field's type. A whole
/// number out of range, however large, is told the range.
fn int<T: TryFrom<u64>>(spec: &KeySpec, v: &Value) -> Result<T, String> {
    let ValueKind::Int { min, max } = spec.kind else {
        return Err("not an integer key (internal error)".to_owned());
    };
    let range = || format!("must be between {min} and {max}");
    const WHOLE: &str = "must be a whole number";
    let number: i128 = match v {
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => i128::from(u),
            (None, Some(i), _) => i128::from(i),
            // Beyond 64 bits: whole, but out of every range.
            (None, None, Some(f)) if f.is_finite() && f.fract() == 0.0 => return Err(range()),
            _ => return Err(WHOLE.to_owned()),
        },
        Value::String(s) => {
            let s = s.trim();
            match s.parse() {
                Ok(n) => n,
                Err(_) if is_whole(s) => return Err(range()),
                Err(_) => return Err(WHOLE.to_owned()),
            }
        }
        _ => return Err(WHOLE.to_owned()),
    };
    if number < i128::from(min) || number > i128::from(max) {
        return Err(range());
    }
    u64::try_from(number)
        .ok()
        .and_then(|n| T::try_from(n).ok())
        .ok_or_else(range)
}

/// Digits with an optional sign: a whole number, whatever its size.
fn is_whole(s: &str) -> bool {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

fn float(spec: &KeySpec, v: &Value) -> Result<f64, String> {
    let ValueKind::Float { max } = spec.kind else {
        return Err("not a number key (internal error)".to_owned());
    };
    let reason = || format!("must be greater than 0 and at most {max}");
    let number = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .ok_or_else(|| "must be a number".to_owned())?;
    if !number.is_finite() || number <= 0.0 || number > max {
        return Err(reason());
    }
    Ok(number)
}

fn duration(spec: &KeySpec, v: &Value) -> Result<Duration, String> {
    let ValueKind::Duration { min, max } = spec.kind else {
        return Err("not a duration key (internal error)".to_owned());
    };
    const EXPECTED: &str = "must be a duration like 500ms, 1m30s or integer seconds";
    let range = || {
        format!(
            "must be between {} and {}",
            format_duration(min),
            format_duration(max)
        )
    };
    let d = match v {
        Value::Number(n) => match (n.as_u64(), n.as_f64()) {
            (Some(secs), _) => Duration::from_secs(secs),
            // Whole seconds beyond 64 bits.
            (None, Some(f)) if f.is_finite() && f.fract() == 0.0 && f > 0.0 => {
                return Err(range());
            }
            _ => return Err(EXPECTED.to_owned()),
        },
        Value::String(s) => match parse_duration(s) {
            Ok(d) => d,
            Err(e) if e == DURATION_TOO_LARGE => return Err(range()),
            Err(e) => return Err(format!("{EXPECTED} ({e})")),
        },
        _ => return Err(EXPECTED.to_owned()),
    };
    if d < min || d > max {
        return Err(range());
    }
    Ok(d)
}

/// The lower-cased word if it is one of the key's choices.
fn choice(spec: &KeySpec, v: &Value) -> Result<&'static str, String> {
    let ValueKind::Choice(options) = spec.kind else {
        return Err("not a choice key (internal error)".to_owned());
    };
    let word = text(v)?.trim().to_ascii_lowercase();
    options
        .iter()
        .find(|o| **o == word)
        .copied()
        .ok_or_else(|| format!("must be one of {}", options.join(", ")))
}

/// A list: a sequence, or one comma-separated string (flags, env); empty items dropped.
fn list(v: &Value) -> Result<Vec<String>, String> {
    match v {
        Value::Null => Ok(Vec::new()),
        Value::String(s) => Ok(s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Array(_) | Value::Object(_) | Value::Null => {
                    Err("list items must be single values".to_owned())
                }
                other => text(other).map(|s| s.trim().to_owned()),
            })
            .filter(|item| !matches!(item, Ok(s) if s.is_empty()))
            .collect(),
        _ => Err("must be a list".to_owned()),
    }
}

/// `exclude_tlds`: lower case, no leading or trailing dot.
fn suffixes(v: &Value) -> Result<Vec<String>, String> {
    Ok(list(v)?
        .into_iter()
        .map(|s| s.trim_matches('.').to_ascii_lowercase())
        .filter(|s| !s.is_empty())
        .collect())
}

/// CIDRs; a bare address means just that address.
fn cidrs(v: &Value) -> Result<Vec<IpNet>, String> {
    list(v)?
        .iter()
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("invalid CIDR {item:?}; want e.g. 10.0.0.0/8 or fd00::/8"))
        })
        .collect()
}

/// `crawling.redirect_ports`: port numbers 1–65535, repeats dropped.
fn ports(v: &Value) -> Result<Vec<u16>, String> {
    let mut out: Vec<u16> = Vec::new();
    for item in list(v)? {
        let port = item
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("invalid port {item:?}; want a whole number from 1 to 65535"))?;
        if !out.contains(&port) {
            out.push(port);
        }
    }
    Ok(out)
}

/// `ip`, `ip:port`, `[v6]:port` or a bare IPv6 address; port 53 when absent.
pub(crate) fn dns_server(item: &str) -> Option<SocketAddr> {
    if let Ok(addr) = item.parse::<SocketAddr>() {
        return Some(addr);
    }
    let bare = item
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(item);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, DNS_PORT))
}

fn dns_servers(v: &Value) -> Result<Vec<SocketAddr>, String> {
    let servers = list(v)?
        .iter()
        .map(|item| {
            dns_server(item).ok_or_else(|| {
                format!("invalid server {item:?}; want ip or ip:port ([::1]:53 for IPv6)")
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if servers.is_empty() {
        return Err("must list at least one server".to_owned());
    }
    Ok(servers)
}

fn tls_roots(v: &Value) -> Result<TrustRoots, String> {
    let s = text(v)?;
    match s.trim() {
        "webpki" => Ok(TrustRoots::Webpki),
        "system" => Ok(TrustRoots::System),
        "" => Err("must be webpki, system or a PEM file path".to_owned()),
        path => {
            check_file(Path::new(path))
                .map_err(|e| format!("{e}; want webpki, system or a PEM file path"))?;
            Ok(TrustRoots::PemFile(PathBuf::from(path)))
        }
    }
}

fn check_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err("not a file".to_owned()),
        Err(e) => Err(format!("cannot read the file: {e}")),
    }
}

/// A path that must name a readable file when not empty.
fn existing_file(v: &Value) -> Result<PathBuf, String> {
    let s = text(v)?;
    if !s.is_empty() {
        check_file(Path::new(&s))?;
    }
    Ok(PathBuf::from(s))
}

fn ingest_url(v: &Value) -> Result<String, String> {
    let s = text(v)?;
    if s.is_empty() {
        return Ok(s);
    }
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"));
    match rest {
        Some(rest) if !rest.is_empty() && !rest.starts_with('/') => Ok(s),
        _ => Err("must be an http:// or https:// URL, or empty".to_owned()),
    }
}

/// `host:port` with a port of 1–65535 (`[v6]:port` for IPv6).
fn host_port(authority: &str, allow_zero_port: bool, allow_empty_host: bool) -> bool {
    let Some((host, port)) = authority.rsplit_once(':') else {
        return false;
    };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0 || allow_zero_port);
    let host_ok = if host.is_empty() {
        allow_empty_host
    } else if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.contains(['/', '@', ' ', '[', ']', ':'])
    };
    port_ok && host_ok
}

/// `host:port`, `redis://[user:pass@]host:port[/db]` or `rediss://...`; empty = unset.
fn redis_addr(v: &Value) -> Result<String, String> {
    const EXPECTED: &str = "must be host:port, redis://[user:pass@]host:port[/db] or rediss://[user:pass@]host:port[/db]";
    let s = text(v)?.trim().to_owned();
    if s.is_empty() {
        return Ok(s);
    }
    let valid = match s
        .strip_prefix("redis://")
        .or_else(|| s.strip_prefix("rediss://"))
    {
        Some(rest) => {
            let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            host_port(host, false, false) && db.bytes().all(|b| b.is_ascii_digit())
        }
        None => !s.contains("://") && host_port(&s, false, false),
    };
    if valid {
        Ok(s)
    } else {
        Err(EXPECTED.to_owned())
    }
}

/// `host:port` or `:port` to listen on; empty = off.
fn listen_addr(v: &Value) -> Result<String, String> {
    let s = text(v)?.trim().to_owned();
    if s.is_empty() || host_port(&s, true, true) {
        Ok(s)
    } else {
        Err("must be host:port or :port, or empty to turn the server off".to_owned())
    }
}

fn mongodb_uri(v: &Value) -> Result<String, String> {
    let s = text(v)?;
    if s.is_empty() || s.starts_with("mongodb://") || s.starts_with("mongodb+srv://") {
        Ok(s)
    } else {
        Err("must be empty, mongodb://... or mongodb+srv://...".to_owned())
    }
}

fn database_name(v: &Value) -> Result<String, String> {
    let s = text(v)?;
    let valid = (1..=63).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if valid {
        Ok(s)
    } else {
        Err("must be 1 to 63 characters of A-Z, a-z, 0-9, _ and -".to_owned())
    }
}

/// The entries of `api.keys`: a sequence, or the JSON text of one; none when empty.
fn api_key_entries(value: &Value) -> Result<Vec<Value>, String> {
    const SHAPE: &str = "must be an array of {key, name, scope}";
    match value {
        Value::Array(items) => Ok(items.clone()),
        Value::Null => Ok(Vec::new()),
        Value::String(text) if text.trim().is_empty() => Ok(Vec::new()),
        Value::String(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err(SHAPE.to_owned()),
            Err(e) => Err(format!("must be a JSON array of {{key, name, scope}}: {e}")),
        },
        _ => Err(SHAPE.to_owned()),
    }
}

/// `[{key, name, scope}]`, from a sequence or (flags, env) JSON text. An error names
/// the entry's index and never prints a key.
pub(crate) fn api_keys(
    value: &Value,
    source: KeySource,
    origin: &Origin,
) -> Result<Vec<ApiKey>, ConfigError> {
    let fail = |key: String, value: Option<String>, reason: String| ConfigError::Invalid {
        key,
        value,
        origin: origin.clone(),
        reason,
    };
    let entries =
        api_key_entries(value).map_err(|reason| fail("api.keys".to_owned(), None, reason))?;
    let mut names = HashSet::new();
    let mut keys = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        let at = |field: &str| format!("api.keys[{index}]{field}");
        let Value::Object(fields) = entry else {
            return Err(fail(
                at(""),
                None,
                "must be an object {key, name, scope}".to_owned(),
            ));
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !matches!(k.as_str(), "key" | "name" | "scope"))
        {
            return Err(fail(
                at(""),
                None,
                format!("unknown field {unknown:?}; entries have key, name and scope"),
            ));
        }
        let field = |name: &str| fields.get(name).and_then(Value::as_str).unwrap_or_default();
        let key = field("key");
        if key.chars().count() < MIN_API_KEY_LEN {
            return Err(fail(
                at(".key"),
                None,
                format!("must be a string of at least {MIN_API_KEY_LEN} characters"),
            ));
        }
        let name = field("name");
        if name.trim().is_empty() {
            return Err(fail(at(".name"), None, "must not be empty".to_owned()));
        }
        if !names.insert(name.to_owned()) {
            return Err(fail(
                at(".name"),
                Some(format!("{name:?}")),
                "names must be unique".to_owned(),
            ));
        }
        let scope_text = field("scope");
        let scope = Scope::parse(scope_text).ok_or_else(|| {
            fail(
                at(".scope"),
                Some(format!("{scope_text:?}")),
                "must be read, write or admin".to_owned(),
            )
        })?;
        keys.push(ApiKey {
            key: key.to_owned(),
            name: name.to_owned(),
            scope,
            source,
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_server_forms() {
        let cases = [
            ("1.1.1.1", "1.1.1.1:53"),
            ("1.1.1.1:5353", "1.1.1.1:5353"),
            ("::1", "[::1]:53"),
            ("[::1]", "[::1]:53"),
            ("[::1]:5300", "[::1]:5300"),
        ];
        for (input, want) in cases {
            assert_eq!(
                dns_server(input).map(|a| a.to_string()).as_deref(),
                Some(want)
            );
        }
        assert_eq!(dns_server("dns.example"), None);
        assert_eq!(dns_server("1.1.1.1:x"), None);
    }

    #[test]
    fn host_port_forms() {
        assert!(host_port("127.0.0.1:6379", false, false));
        assert!(host_port("redis.internal:6379", false, false));
        assert!(host_port("[::1]:6379", false, false));
        assert!(!host_port("127.0.0.1", false, false));
        assert!(!host_port("127.0.0.1:0", false, false));
        assert!(!host_port(":6379", false, false));
        assert!(host_port(":0", true, true));
        assert!(!host_port("::1:6379", false, false));
    }
}

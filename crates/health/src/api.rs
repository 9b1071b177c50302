//! Request handling: the health endpoints, `/metrics`, and the REST API of SPEC §3.12.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{
    ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;
use spyder_config::Scope;
use spyder_model::{
    HostError, HostName, ListLine, MAX_LINE_BYTES, TOO_LONG_PREVIEW_BYTES, Timestamp, list_line,
};

use crate::checks::{CheckReport, CheckStatus, worst};
use crate::server::{Metadata, Served};
use crate::{ApiError, EnqueueError, KeyIdentity, KeyStoreError};

/// The response type of every endpoint.
pub(crate) type HttpResponse = Response<Full<Bytes>>;

/// Largest body of every endpoint but bulk (SPEC §3.12: 1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Largest body of `POST /api/v1/domains/bulk` (10 MiB).
pub const BULK_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// After a body is found too large, how much more is read and dropped so the client
/// sees the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// How long one piece of a request body may take to arrive.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Most bulk errors listed in a response.
const MAX_BULK_ERRORS: usize = 100;
/// The `warning` of `POST /api/v1/keys`.
const NEW_KEY_WARNING: &str = "this key is shown once and kept in memory only; add it to api.keys or SPYDER_API_KEYS to keep it after a restart";
const JSON: &str = "application/json";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// Answers one request.
pub(crate) async fn handle(
    served: &Arc<Served>,
    request: Request<Incoming>,
    peer: SocketAddr,
) -> HttpResponse {
    match request.uri().path() {
        "/live" | "/ready" | "/health" | "/metrics" => ops_endpoint(served, &request).await,
        _ => api(served, request, peer).await,
    }
}

// ---------------------------------------------------------------- health endpoints

#[derive(Serialize)]
struct LiveBody {
    alive: bool,
    timestamp: Timestamp,
}

#[derive(Serialize)]
struct ReadyBody<'a> {
    ready: bool,
    timestamp: Timestamp,
    metadata: &'a Metadata,
}

#[derive(Serialize)]
struct HealthBody<'a> {
    status: CheckStatus,
    timestamp: Timestamp,
    checks: &'a [CheckReport],
    metadata: &'a Metadata,
}

async fn ops_endpoint(served: &Served, request: &Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = error_response(&ApiError::method_not_allowed(request.method(), path));
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let inner = &served.state.inner;
    match path {
        "/live" => json_response(
            StatusCode::OK,
            &LiveBody {
                alive: true,
                timestamp: Timestamp::now(),
            },
        ),
        "/ready" => {
            let checks = current_checks(served).await;
            let gate_failed = checks
                .iter()
                .any(|c| c.gates_readiness && c.status == CheckStatus::Unhealthy);
            let readiness = &inner.readiness;
            let ready = readiness.is_marked_ready() && !readiness.is_stopping() && !gate_failed;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(
                status,
                &ReadyBody {
                    ready,
                    timestamp: Timestamp::now(),
                    metadata: &inner.metadata,
                },
            )
        }
        "/health" => {
            let checks = current_checks(served).await;
            let overall = worst(&checks);
            let status = if overall == CheckStatus::Unhealthy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            json_response(
                status,
                &HealthBody {
                    status: overall,
                    timestamp: Timestamp::now(),
                    checks: &checks,
                    metadata: &inner.metadata,
                },
            )
        }
        _ => metrics_response(served),
    }
}

/// The latest check results; waits for the first round (bounded) when the server
/// has just started.
async fn current_checks(served: &Served) -> Arc<Vec<CheckReport>> {
    let mut cache = served.checks.clone();
    let bound = first_round_bound(served.state.inner.check_timeout);
    match tokio::time::timeout(bound, cache.wait_for(Option::is_some)).await {
        Ok(Ok(reports)) => reports.as_ref().map(Arc::clone).unwrap_or_default(),
        _ => Arc::default(),
    }
}

/// How long a request waits for the first check round: twice the check timeout plus
/// 5 s, saturating (tokio treats a huge timeout as none).
fn first_round_bound(check_timeout: Duration) -> Duration {
    check_timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(5))
}

fn metrics_response(served: &Served) -> HttpResponse {
    match &served.state.inner.metrics {
        Some(handle) => respond(
            StatusCode::OK,
            PROMETHEUS_TEXT,
            Bytes::from(handle.render()),
        ),
        None => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"metrics recorder not installed\n"),
        ),
    }
}

// ---------------------------------------------------------------- API routing

/// One API endpoint of SPEC §3.12.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    ConfigGet,
    ConfigPatch,
    Stats,
    Domain,
    Bulk,
    Pause,
    Resume,
    Stop,
    KeysList,
    KeysCreate,
    KeysDelete(String),
}

impl Endpoint {
    fn scope(&self) -> Scope {
        match self {
            Self::ConfigGet | Self::Stats => Scope::Read,
            Self::ConfigPatch | Self::Domain | Self::Bulk | Self::Pause | Self::Resume => {
                Scope::Write
            }
            Self::Stop | Self::KeysList | Self::KeysCreate | Self::KeysDelete(_) => Scope::Admin,
        }
    }

    /// Reading endpoints keep answering while the service stops; the others answer
    /// `503 UNAVAILABLE` (SPEC §3.14 step 1).
    fn reads_only(&self) -> bool {
        matches!(self, Self::ConfigGet | Self::Stats | Self::KeysList)
    }

    /// The body limit of endpoints that take a body (every one but the `GET`s;
    /// bodies of pause, resume, stop and key deletion are read and ignored).
    fn body_limit(&self) -> Option<usize> {
        match self {
            Self::ConfigGet | Self::Stats | Self::KeysList => None,
            Self::Bulk => Some(BULK_BODY_LIMIT),
            _ => Some(BODY_LIMIT),
        }
    }
}

/// Why a path does not route.
enum RouteError {
    NotFound,
    MethodNotAllowed(&'static str),
}

fn route(method: &Method, path: &str) -> Result<Endpoint, RouteError> {
    let only = |wanted: Method, endpoint: Endpoint, allow: &'static str| {
        if *method == wanted {
            Ok(endpoint)
        } else {
            Err(RouteError::MethodNotAllowed(allow))
        }
    };
    match path {
        "/api/v1/config" => match *method {
            Method::GET => Ok(Endpoint::ConfigGet),
            Method::PATCH => Ok(Endpoint::ConfigPatch),
            _ => Err(RouteError::MethodNotAllowed("GET, PATCH")),
        },
        "/api/v1/stats" => only(Method::GET, Endpoint::Stats, "GET"),
        "/api/v1/domains" => only(Method::POST, Endpoint::Domain, "POST"),
        "/api/v1/domains/bulk" => only(Method::POST, Endpoint::Bulk, "POST"),
        "/api/v1/control/pause" => only(Method::POST, Endpoint::Pause, "POST"),
        "/api/v1/control/resume" => only(Method::POST, Endpoint::Resume, "POST"),
        "/api/v1/control/stop" => only(Method::POST, Endpoint::Stop, "POST"),
        "/api/v1/keys" => match *method {
            Method::GET => Ok(Endpoint::KeysList),
            Method::POST => Ok(Endpoint::KeysCreate),
            _ => Err(RouteError::MethodNotAllowed("GET, POST")),
        },
        _ => match path.strip_prefix("/api/v1/keys/") {
            Some(name) if !name.is_empty() && !name.contains('/') => only(
                Method::DELETE,
                Endpoint::KeysDelete(percent_decode(name)),
                "DELETE",
            ),
            _ => Err(RouteError::NotFound),
        },
    }
}

/// Decodes `%XX` escapes of a path segment; malformed escapes stay as they are.
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The key of `Authorization: Bearer <key>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, key) = value.trim().split_once(' ')?;
    let key = key.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then_some(key)
}

/// The API: rate limit, key, route, scope, shutdown, body size, then the endpoint.
async fn api(served: &Served, request: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
    let inner = &served.state.inner;
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if !inner.rate_limiter.try_acquire() {
        tracing::debug!(%peer, %method, %path, "api request rate limited");
        let mut response = error_response(&ApiError::rate_limited());
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    }
    if inner.keys.is_empty() {
        tracing::info!(%peer, %method, %path, "api request refused: no API keys configured");
        return error_response(&ApiError::no_api_keys());
    }
    let Some(identity) = bearer(request.headers()).and_then(|key| inner.keys.authenticate(key))
    else {
        tracing::info!(%peer, %method, %path, "api request refused: missing or invalid API key");
        let mut response = error_response(&ApiError::unauthorized());
        response
            .headers_mut()
            .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    };
    let response = match authorized(served, request, &identity, &method, &path).await {
        Ok(response) => response,
        Err(error) => error_response(&error),
    };
    let status = response.status().as_u16();
    if method == Method::GET {
        tracing::debug!(key_name = %identity.name, %peer, %method, %path, status, "api request");
    } else {
        tracing::info!(key_name = %identity.name, %peer, %method, %path, status, "api request");
    }
    response
}

/// Everything after authentication.
async fn authorized(
    served: &Served,
    request: Request<Incoming>,
    identity: &KeyIdentity,
    method: &Method,
    path: &str,
) -> Result<HttpResponse, ApiError> {
    let inner = &served.state.inner;
    let endpoint = match route(method, path) {
        Ok(endpoint) => endpoint,
        Err(RouteError::NotFound) => {
            return Err(ApiError::not_found(format!("no endpoint {path}")));
        }
        Err(RouteError::MethodNotAllowed(allow)) => {
            let mut response = error_response(&ApiError::method_not_allowed(method, path));
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            return Ok(response);
        }
    };
    let required = endpoint.scope();
    if identity.scope < required {
        return Err(ApiError::forbidden(required));
    }
    if inner.readiness.is_stopping() && !endpoint.reads_only() {
        return Err(ApiError::unavailable("shutting down"));
    }
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = match endpoint.body_limit() {
        Some(limit) => read_body(request, limit).await?,
        None => Bytes::new(),
    };
    let control = &inner.control;
    match endpoint {
        Endpoint::ConfigGet => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "config": with_live_keys(control.config(), &inner.keys) }),
        )),
        Endpoint::ConfigPatch => {
            let changes: Value = parse_json(&body)?;
            // Keys that widen what the probe reads, writes or dials need admin,
            // checked before anything is applied (the change set is all or nothing).
            let needed = spyder_config::patch_scope(&changes);
            if identity.scope < needed {
                let admin_keys: Vec<&str> = spyder_config::keys_named(&changes)
                    .iter()
                    .filter(|k| k.scope > identity.scope)
                    .map(|k| k.path)
                    .collect();
                tracing::info!(key_name = %identity.name, keys = ?admin_keys, "config change refused: admin scope required");
                return Err(ApiError::forbidden(needed));
            }
            let outcome = control.patch_config(changes)?;
            Ok(json_response(
                StatusCode::OK,
                &PatchBody {
                    config: with_live_keys(outcome.config, &inner.keys),
                    warnings: outcome.warnings,
                },
            ))
        }
        Endpoint::Stats => Ok(json_response(StatusCode::OK, &control.stats())),
        Endpoint::Domain => submit_domain(served, &body).await,
        Endpoint::Bulk => submit_bulk(served, body, &content_type).await,
        Endpoint::Pause => {
            control.pause();
            Ok(json_response(
                StatusCode::OK,
                &PausedBody {
                    paused: true,
                    message: "Workers paused",
                },
            ))
        }
        Endpoint::Resume => {
            control.resume();
            Ok(json_response(
                StatusCode::OK,
                &PausedBody {
                    paused: false,
                    message: "Workers resumed",
                },
            ))
        }
        Endpoint::Stop => {
            tracing::info!(key_name = %identity.name, "stop requested through the API");
            inner.readiness.begin_shutdown();
            control.stop();
            Ok(json_response(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "stopping": true }),
            ))
        }
        Endpoint::KeysList => Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({ "keys": inner.keys.list() }),
        )),
        Endpoint::KeysCreate => create_key(served, &body, identity),
        Endpoint::KeysDelete(name) => {
            if inner.keys.remove(&name) {
                tracing::info!(key_name = %name, by = %identity.name, "api key deleted");
                Ok(respond(StatusCode::NO_CONTENT, "", Bytes::new()))
            } else {
                Err(ApiError::not_found(format!("no key named {name:?}")))
            }
        }
    }
}

/// `config` with `api.keys` as the API accepts them now (configured, env and created
/// keys, minus deleted ones), each `{"key":"***","name","scope"}`: the run loop's
/// configuration keeps the keys it started with.
fn with_live_keys(mut config: Value, keys: &crate::KeyStore) -> Value {
    let live: Vec<Value> = keys
        .list()
        .into_iter()
        .map(|k| serde_json::json!({"key": "***", "name": k.name, "scope": k.scope}))
        .collect();
    if let Some(api) = config.get_mut("api").and_then(Value::as_object_mut) {
        api.insert("keys".to_owned(), Value::Array(live));
    }
    config
}

#[derive(Serialize)]
struct PatchBody {
    config: Value,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct PausedBody {
    paused: bool,
    message: &'static str,
}

// ---------------------------------------------------------------- domains

#[derive(Serialize)]
struct AcceptedBody {
    accepted: bool,
    host: HostName,
}

async fn submit_domain(served: &Served, body: &[u8]) -> Result<HttpResponse, ApiError> {
    let value: Value = parse_json(body)?;
    let Some(raw) = value.get("host").and_then(Value::as_str) else {
        return Err(ApiError::bad_request(
            r#"body must be a JSON object {"host":"<name>"}"#,
        ));
    };
    let host = HostName::from_input(raw)
        .map_err(|e| ApiError::invalid_host(format!("invalid host {:?}: {e}", quote(raw))))?;
    served
        .state
        .inner
        .control
        .enqueue(host.clone())
        .await
        .map_err(enqueue_error)?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &AcceptedBody {
            accepted: true,
            host,
        },
    ))
}

fn enqueue_error(error: EnqueueError) -> ApiError {
    match error {
        EnqueueError::QueueFull => ApiError::queue_full(),
        EnqueueError::Unavailable(message) => ApiError::unavailable(message),
    }
}

#[derive(Serialize)]
struct BulkBody {
    accepted: usize,
    rejected: usize,
    total: usize,
    errors: Vec<BulkError>,
}

#[derive(Serialize)]
struct BulkError {
    index: usize,
    host: String,
    error: String,
}

/// One submitted entry: its text (for error messages) and what it parsed to.
struct Entry {
    value: String,
    parsed: Result<HostName, HostError>,
}

async fn submit_bulk(
    served: &Served,
    body: Bytes,
    content_type: &str,
) -> Result<HttpResponse, ApiError> {
    // Up to 10 MiB of names: parse them off the async workers.
    let text = is_text_plain(content_type);
    let entries = tokio::task::spawn_blocking(move || {
        if text {
            Ok(text_entries(&body))
        } else {
            json_entries(&body)
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("parsing the body failed: {e}")))??;
    let total = entries.len();
    let mut errors: Vec<BulkError> = Vec::new();
    let mut rejected = 0usize;
    let mut valid: Vec<(usize, HostName)> = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        match entry.parsed {
            Ok(host) => valid.push((index, host)),
            Err(e) => {
                rejected += 1;
                errors.push(BulkError {
                    index,
                    host: entry.value,
                    error: e.to_string(),
                });
            }
        }
    }
    let (indexes, hosts): (Vec<usize>, Vec<HostName>) = valid.into_iter().unzip();
    let results = if hosts.is_empty() {
        Vec::new()
    } else {
        served.state.inner.control.enqueue_many(hosts.clone()).await
    };
    let mut accepted = 0usize;
    let mut first_queue_error: Option<EnqueueError> = None;
    for ((index, host), result) in indexes
        .into_iter()
        .zip(hosts)
        .zip(
            results
                .into_iter()
                .chain(std::iter::repeat(Err(EnqueueError::Unavailable(
                    "not queued".to_owned(),
                )))),
        )
    {
        match result {
            Ok(()) => accepted += 1,
            Err(e) => {
                rejected += 1;
                errors.push(BulkError {
                    index,
                    host: host.into_string(),
                    error: e.to_string(),
                });
                first_queue_error.get_or_insert(e);
            }
        }
    }
    // Nothing got in because of the queue (not because of bad names): answer like the
    // single-domain endpoint so the client retries the whole request.
    if accepted == 0
        && let Some(error) = first_queue_error
    {
        return Err(enqueue_error(error));
    }
    errors.sort_by_key(|e| e.index);
    errors.truncate(MAX_BULK_ERRORS);
    Ok(json_response(
        StatusCode::OK,
        &BulkBody {
            accepted,
            rejected,
            total,
            errors,
        },
    ))
}

fn is_text_plain(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("text/plain")
}

/// A JSON array of strings, every element one entry.
fn json_entries(body: &[u8]) -> Result<Vec<Entry>, ApiError> {
    let shape =
        || ApiError::bad_request("body must be a JSON array of strings, or text/plain lines");
    let Value::Array(items) = parse_json::<Value>(body)? else {
        return Err(shape());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) => Ok(Entry {
                parsed: HostName::from_input(&text),
                value: quote(&text),
            }),
            _ => Err(shape()),
        })
        .collect()
}

/// One bulk entry as [`parse_bulk_body`] gives it: the text quoted back, and its host.
#[doc(hidden)]
pub type BulkEntry = (String, Result<HostName, HostError>);

/// The body parsing of `POST /api/v1/domains/bulk`, for the fuzz targets (`fuzz/`):
/// each entry's text as quoted back to the client and its host or why not, or the
/// `400` a malformed JSON body gets. Not part of the API.
#[doc(hidden)]
pub fn parse_bulk_body(body: &[u8], content_type: &str) -> Result<Vec<BulkEntry>, ApiError> {
    let entries = if is_text_plain(content_type) {
        text_entries(body)
    } else {
        json_entries(body)?
    };
    Ok(entries.into_iter().map(|e| (e.value, e.parsed)).collect())
}

/// `text/plain` lines, read like the input file (one rule:
/// [`spyder_model::list_line`]): a BOM on the first line, CR of CRLF and surrounding
/// white space are dropped; blank lines and `#` comments are skipped.
fn text_entries(body: &[u8]) -> Vec<Entry> {
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| match list_line(raw, i == 0, false) {
            ListLine::Skip => None,
            ListLine::Host { host, text } => Some(Entry {
                value: text.to_owned(),
                parsed: Ok(host),
            }),
            ListLine::Invalid { value, error } => Some(Entry {
                value,
                parsed: Err(error),
            }),
        })
        .collect()
}

/// `text` as quoted back to the client: over-long values are cut to their first bytes
/// and `...`.
fn quote(text: &str) -> String {
    if text.len() <= MAX_LINE_BYTES {
        return text.to_owned();
    }
    let mut end = TOO_LONG_PREVIEW_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

// ---------------------------------------------------------------- keys

#[derive(Serialize)]
struct CreatedKeyBody<'a> {
    key: &'a str,
    name: &'a str,
    scope: Scope,
    warning: &'static str,
}

fn create_key(
    served: &Served,
    body: &[u8],
    identity: &KeyIdentity,
) -> Result<HttpResponse, ApiError> {
    let value: Value = parse_json(body)?;
    let name = value.get("name").and_then(Value::as_str).ok_or_else(|| {
        ApiError::bad_request(
            r#"body must be a JSON object {"name":"<name>","scope":"read|write|admin"}"#,
        )
    })?;
    let scope = value
        .get("scope")
        .and_then(Value::as_str)
        .and_then(Scope::parse)
        .ok_or_else(|| ApiError::bad_request("scope must be read, write or admin"))?;
    let created = served
        .state
        .inner
        .keys
        .create(name, scope)
        .map_err(|e| match e {
            KeyStoreError::EmptyName => ApiError::bad_request("name must not be empty"),
            KeyStoreError::NameTaken(name) => ApiError::key_exists(&name),
        })?;
    tracing::info!(
        key_name = %created.name,
        scope = scope.as_str(),
        by = %identity.name,
        "api key created"
    );
    Ok(json_response(
        StatusCode::CREATED,
        &CreatedKeyBody {
            key: &created.key,
            name: &created.name,
            scope,
            warning: NEW_KEY_WARNING,
        },
    ))
}

// ---------------------------------------------------------------- bodies and responses

/// Reads the whole body, at most `limit` bytes: a larger body is `413 TOO_LARGE`
/// whatever its `Content-Length` says (or whether it has one).
async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > (limit + DRAIN_LIMIT) as u64) {
        return Err(ApiError::too_large(limit));
    }
    let mut body = request.into_body();
    let mut collected = BytesMut::new();
    let mut too_large = false;
    let mut dropped = 0usize;
    loop {
        let frame = match tokio::time::timeout(BODY_READ_TIMEOUT, body.frame()).await {
            Err(_) => return Err(ApiError::bad_request("timed out reading the request body")),
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(ApiError::bad_request(format!(
                    "could not read the request body: {e}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if too_large {
            dropped += data.len();
            if dropped > DRAIN_LIMIT {
                break;
            }
        } else if collected.len() + data.len() > limit {
            too_large = true;
            collected = BytesMut::new();
        } else {
            collected.extend_from_slice(&data);
        }
    }
    if too_large {
        Err(ApiError::too_large(limit))
    } else {
        Ok(collected.freeze())
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
    match serde_json::to_vec(body) {
        Ok(bytes) => respond(status, JSON, Bytes::from(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "could not serialize a response");
            respond(
                StatusCode::INTERNAL_SERVER_ERROR,
                JSON,
                Bytes::from_static(
                    br#"{"code":"INTERNAL","error":"could not serialize the response"}"#,
                ),
            )
        }
    }
}

fn error_response(error: &ApiError) -> HttpResponse {
    json_response(error.status(), &error.body())
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if !content_type.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_round_bound_saturates() {
        assert_eq!(
            first_round_bound(Duration::from_secs(5)),
            Duration::from_secs(15)
        );
        assert_eq!(first_round_bound(Duration::MAX), Duration::MAX);
        assert_eq!(first_round_bound(Duration::MAX / 2), Duration::MAX);
    }

    #[test]
    fn routes_and_methods() {
        assert!(matches!(
            route(&Method::GET, "/api/v1/config"),
            Ok(Endpoint::ConfigGet)
        ));
        assert!(matches!(
            route(&Method::DELETE, "/api/v1/keys/ops%20team"),
            Ok(Endpoint::KeysDelete(name)) if name == "ops team"
        ));
        assert!(matches!(
            route(&Method::GET, "/api/v1/control/stop"),
            Err(RouteError::MethodNotAllowed("POST"))
        ));
        assert!(matches!(
            route(&Method::GET, "/api/v1/nope"),
            Err(RouteError::NotFound)
        ));
        assert!(matches!(
            route(&Method::DELETE, "/api/v1/keys/"),
            Err(RouteError::NotFound)
        ));
    }

    #[test]
    fn text_lines_follow_the_input_file_rules() {
        let entries =
            text_entries(b"\xEF\xBB\xBFExample.COM\r\n\n  # note\n#x\n bad_name \nlast.net");
        let values: Vec<_> = entries.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(values, ["Example.COM", "bad_name", "last.net"]);
        assert_eq!(
            entries[0].parsed.as_ref().map(HostName::as_str),
            Ok("example.com")
        );
        assert!(entries[1].parsed.is_err());
    }

    #[test]
    fn bulk_body_entry_point_follows_the_content_type() {
        let text = parse_bulk_body(b"A.example\n# c\nbad_name\n", "Text/Plain; charset=utf-8")
            .map_err(|e| e.to_string())
            .expect("text/plain parses");
        let values: Vec<_> = text.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(values, ["A.example", "bad_name"]);
        assert_eq!(text[0].1.as_ref().map(HostName::as_str), Ok("a.example"));
        let json = parse_bulk_body(br#"["B.example"]"#, "application/json")
            .map_err(|e| e.to_string())
            .expect("a JSON array of strings parses");
        assert_eq!(json[0].1.as_ref().map(HostName::as_str), Ok("b.example"));
        assert!(parse_bulk_body(b"[1]", "application/json").is_err());
    }

    #[test]
    fn bearer_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("bearer abc"),
        );
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Basic abc"),
        );
        assert_eq!(bearer(&headers), None);
        headers.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static("Bearer "),
        );
        assert_eq!(bearer(&headers), None);
    }
}

//! Request handling: the health endpoints, `/metrics`, and the REST API of SPEC §3.12.
//!
//! This module routes a request and runs the API's gate (rate limit, key, scope,
//! shutdown, body size); each resource answers in its own module, as mini-redis's
//! `cmd/` does: [`ops`] (`/live`, `/ready`, `/health`, `/metrics`), [`config`],
//! [`stats`], [`events`] (the dashboard's event stream), [`control`] (pause, resume,
//! stop), [`domains`] (single and bulk) and [`keys`]; [`dashboard`] serves the static
//! page. [`body`] reads request bodies and builds responses for all of them.

mod body;
mod config;
mod control;
mod dashboard;
mod domains;
mod events;
mod keys;
mod ops;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request};
use hyper::body::Incoming;
use spyder_config::Scope;
use tokio_util::sync::CancellationToken;

pub use self::body::{BODY_LIMIT, BULK_BODY_LIMIT};
use self::body::{HttpResponse, error_response, error_response_with, read_body};
pub use self::domains::{BulkEntry, parse_bulk_body};
pub use self::events::KEY_SCOPE_HEADER;
use crate::state::Served;
use crate::{ApiError, KeyIdentity};

/// Answers one request; `kill` closes its connection (a too slow events client).
pub(crate) async fn handle(
    served: &Arc<Served>,
    request: Request<Incoming>,
    peer: SocketAddr,
    kill: &CancellationToken,
) -> HttpResponse {
    match request.uri().path() {
        "/live" | "/ready" | "/health" | "/metrics" => ops::ops_endpoint(served, &request).await,
        path if dashboard::owns(path) => dashboard::serve(&request),
        _ => api(served, request, peer, kill).await,
    }
}

// ---------------------------------------------------------------- API routing

/// One API endpoint of SPEC §3.12.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Endpoint {
    ConfigGet,
    ConfigPatch,
    Stats,
    Events,
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
            Self::ConfigGet | Self::Stats | Self::Events => Scope::Read,
            Self::ConfigPatch | Self::Domain | Self::Bulk | Self::Pause | Self::Resume => {
                Scope::Write
            }
            Self::Stop | Self::KeysList | Self::KeysCreate | Self::KeysDelete(_) => Scope::Admin,
        }
    }

    /// Reading endpoints keep answering while the service stops; the others answer
    /// `503 UNAVAILABLE` (SPEC §3.14 step 1).
    fn reads_only(&self) -> bool {
        matches!(
            self,
            Self::ConfigGet | Self::Stats | Self::Events | Self::KeysList
        )
    }

    /// The body limit of endpoints that take a body (every one but the `GET`s;
    /// bodies of pause, resume, stop and key deletion are read and ignored).
    fn body_limit(&self) -> Option<usize> {
        match self {
            Self::ConfigGet | Self::Stats | Self::Events | Self::KeysList => None,
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
        "/api/v1/events" => only(Method::GET, Endpoint::Events, "GET"),
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
async fn api(
    served: &Served,
    request: Request<Incoming>,
    peer: SocketAddr,
    kill: &CancellationToken,
) -> HttpResponse {
    let inner = &served.state.inner;
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if !inner.rate_limiter.try_acquire() {
        tracing::debug!(%peer, %method, %path, "api request rate limited");
        return error_response_with(&ApiError::rate_limited(), RETRY_AFTER, "1");
    }
    if inner.keys.is_empty() {
        tracing::info!(%peer, %method, %path, "api request refused: no API keys configured");
        return error_response(&ApiError::no_api_keys());
    }
    let Some(identity) = bearer(request.headers()).and_then(|key| inner.keys.authenticate(key))
    else {
        tracing::info!(%peer, %method, %path, "api request refused: missing or invalid API key");
        return error_response_with(&ApiError::unauthorized(), WWW_AUTHENTICATE, "Bearer");
    };
    let response = match authorized(served, request, &identity, &method, &path, kill).await {
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
    kill: &CancellationToken,
) -> Result<HttpResponse, ApiError> {
    let inner = &served.state.inner;
    let endpoint = match route(method, path) {
        Ok(endpoint) => endpoint,
        Err(RouteError::NotFound) => {
            return Err(ApiError::not_found(format!("no endpoint {path}")));
        }
        Err(RouteError::MethodNotAllowed(allow)) => {
            return Ok(error_response_with(
                &ApiError::method_not_allowed(method, path),
                ALLOW,
                allow,
            ));
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
    // A submitter's W3C trace context (SPEC §3.14): the queued items carry it.
    let traceparent = request
        .headers()
        .get("traceparent")
        .map(|v| v.to_str().ok().filter(|tp| crate::traces::parent_context(tp).is_some()))
        .map(|tp| {
            tp.map(str::to_owned)
                .ok_or_else(|| ApiError::bad_request("traceparent: not a W3C traceparent (00-<32 hex trace id>-<16 hex span id>-<2 hex flags>)"))
        })
        .transpose()?;
    let body = match endpoint.body_limit() {
        Some(limit) => read_body(request, limit).await?,
        None => Bytes::new(),
    };
    match endpoint {
        Endpoint::ConfigGet => Ok(config::get(served)),
        Endpoint::ConfigPatch => config::patch(served, &body, identity),
        Endpoint::Stats => Ok(stats::get(served)),
        Endpoint::Events => Ok(events::stream(served, kill, identity.scope)),
        Endpoint::Domain => domains::submit_domain(served, &body, traceparent).await,
        Endpoint::Bulk => domains::submit_bulk(served, body, &content_type, traceparent).await,
        Endpoint::Pause => Ok(control::pause(served)),
        Endpoint::Resume => Ok(control::resume(served)),
        Endpoint::Stop => Ok(control::stop(served, identity)),
        Endpoint::KeysList => Ok(keys::list(served)),
        Endpoint::KeysCreate => keys::create(served, &body, identity),
        Endpoint::KeysDelete(name) => keys::delete(served, &name, identity),
    }
}

#[cfg(test)]
mod tests {
    use http::header::HeaderValue;

    use super::*;

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

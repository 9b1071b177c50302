//! Request bodies in, responses out: the helpers every endpoint shares.

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::Serialize;

use crate::ApiError;

/// The response type of every endpoint: a whole body, or a stream (`/api/v1/events`).
pub(crate) type HttpResponse = Response<UnsyncBoxBody<Bytes, Infallible>>;

/// Largest body of every endpoint but bulk (SPEC §3.12: 1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Largest body of `POST /api/v1/domains/bulk` (10 MiB).
pub const BULK_BODY_LIMIT: usize = 10 * 1024 * 1024;
/// After a body is found too large, how much more is read and dropped so the client
/// sees the 413 instead of a reset connection.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// How long one piece of a request body may take to arrive.
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
const JSON: &str = "application/json";

/// Reads the whole body, at most `limit` bytes: a larger body is `413 TOO_LARGE`
/// whatever its `Content-Length` says (or whether it has one).
pub(super) async fn read_body(request: Request<Incoming>, limit: usize) -> Result<Bytes, ApiError> {
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

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

pub(super) fn json_response(status: StatusCode, body: &impl Serialize) -> HttpResponse {
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

pub(super) fn error_response(error: &ApiError) -> HttpResponse {
    json_response(error.status(), &error.body())
}

/// [`error_response`] with one more header (`Allow`, `Retry-After`, `WWW-Authenticate`).
pub(super) fn error_response_with(
    error: &ApiError,
    header: HeaderName,
    value: &'static str,
) -> HttpResponse {
    let mut response = error_response(error);
    response
        .headers_mut()
        .insert(header, HeaderValue::from_static(value));
    response
}

/// `405` with `Allow: GET, HEAD` unless `request` is a GET or a HEAD (the read-only
/// pages: health endpoints, `/metrics`, the dashboard).
pub(super) fn only_get_or_head<B>(request: &http::Request<B>) -> Option<HttpResponse> {
    let method = request.method();
    (method != http::Method::GET && method != http::Method::HEAD).then(|| {
        error_response_with(
            &ApiError::method_not_allowed(method, request.uri().path()),
            http::header::ALLOW,
            "GET, HEAD",
        )
    })
}

pub(super) fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> HttpResponse {
    let mut response = Response::new(Full::new(body).boxed_unsync());
    *response.status_mut() = status;
    if !content_type.is_empty() {
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    response
}

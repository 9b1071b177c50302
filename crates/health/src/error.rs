//! The crate's error type and the REST API's error responses.

use std::fmt;

use http::StatusCode;
use serde::Serialize;

/// Why the ops surface could not start.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// `telemetry.metrics_addr` is not an address to listen on.
    #[error("telemetry.metrics_addr: invalid listen address {addr:?}: {reason}")]
    InvalidAddress {
        /// The address as configured.
        addr: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The listener could not be bound (port busy, permission denied, …).
    #[error("telemetry.metrics_addr: cannot listen on {addr}: {source}")]
    Bind {
        /// The address as configured.
        addr: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The global metrics recorder could not be installed (for example, one is
    /// already installed).
    #[error("metrics: cannot install the Prometheus recorder: {0}")]
    MetricsInstall(String),
}

/// An error answer of the REST API (SPEC §3.12): an HTTP status and the body
/// `{"code":"<CODE>","error":"<message>"}`.
///
/// [`Control`](crate::Control) implementations return it from
/// [`patch_config`](crate::Control::patch_config) to choose the exact answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

/// The message of `401 NO_API_KEYS` (SPEC §3.12).
pub const NO_API_KEYS_MESSAGE: &str = "no API keys configured: add api.keys to the config file or set SPYDER_API_KEYS (base64 JSON array of {key,name,scope})";

impl ApiError {
    /// The answer to a refused `PATCH /api/v1/config` (SPEC §3.12): `409
    /// APPLY_ERROR` for Tier 3 keys, `400` with the config error's code otherwise.
    pub fn config_refused(error: &spyder_config::ApplyError) -> Self {
        let status = match error {
            spyder_config::ApplyError::Restart { .. } => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.code(), error.message())
    }

    /// Any status, code and message; prefer the named constructors.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// `400 BAD_REQUEST`: the body is not what the endpoint takes.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// `400 INVALID_HOST`: a submitted name is not a valid host.
    pub fn invalid_host(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_HOST", message)
    }

    /// `400 UNKNOWN_FIELD`: a configuration change names a key that does not exist.
    pub fn unknown_field(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "UNKNOWN_FIELD", message)
    }

    /// `400 INVALID_CONFIG` with the message `<path>: <reason>`.
    pub fn invalid_config(path: &str, reason: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "INVALID_CONFIG",
            format!("{path}: {reason}"),
        )
    }

    /// `401 UNAUTHORIZED`: no bearer key, or one that matches no key.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "missing or invalid API key",
        )
    }

    /// `401 NO_API_KEYS`: no key is configured at all.
    pub fn no_api_keys() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "NO_API_KEYS", NO_API_KEYS_MESSAGE)
    }

    /// `403 FORBIDDEN`: `insufficient scope: <scope> required`.
    pub fn forbidden(required: spyder_config::Scope) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "FORBIDDEN",
            format!("insufficient scope: {} required", required.as_str()),
        )
    }

    /// `404 NOT_FOUND`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// `405 METHOD_NOT_ALLOWED`.
    pub fn method_not_allowed(method: &http::Method, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            format!("method {method} not allowed on {path}"),
        )
    }

    /// `409 APPLY_ERROR`: `fields require restart: <f1>, <f2>` (fields in SPEC §2.6 order).
    pub fn apply_error<S: AsRef<str>>(fields: &[S]) -> Self {
        let list: Vec<&str> = fields.iter().map(AsRef::as_ref).collect();
        Self::new(
            StatusCode::CONFLICT,
            "APPLY_ERROR",
            format!("fields require restart: {}", list.join(", ")),
        )
    }

    /// `409 KEY_EXISTS`: a key with that name exists.
    pub fn key_exists(name: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "KEY_EXISTS",
            format!("a key named {name:?} already exists"),
        )
    }

    /// `413 TOO_LARGE`: the body is larger than `limit` bytes.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!("request body larger than {limit} bytes"),
        )
    }

    /// `429 RATE_LIMITED` (sent with `Retry-After: 1`).
    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            "rate limit exceeded, retry later",
        )
    }

    /// `503 QUEUE_FULL`: the memory queue is full.
    pub fn queue_full() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "QUEUE_FULL", "queue full")
    }

    /// `503 UNAVAILABLE`: stopping, or the queue Redis is down.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }

    /// `500 INTERNAL`: a bug on our side (not in SPEC §3.12's table; never expected).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code, e.g. `INVALID_HOST`.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The human-readable message (the body's `error`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response body.
    pub(crate) fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            code: self.code,
            error: &self.message,
        }
    }
}

/// `{"code","error"}`.
#[derive(Serialize)]
pub(crate) struct ErrorBody<'a> {
    pub(crate) code: &'a str,
    pub(crate) error: &'a str,
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use spyder_config::{LiveConfig, Sources, load};

    use super::*;

    /// The statuses of SPEC §3.12 for refused PATCHes (moved here from the config
    /// crate's tests with the mapping): Tier 3 keys 409, everything else 400.
    #[test]
    fn refused_patches_answer_409_for_tier_three_and_400_otherwise() {
        let sources = Sources::default();
        let loaded = load(&sources).expect("defaults load");
        let live = LiveConfig::new(loaded.config, sources);
        for (body, status, code) in [
            (json!({"dedup": {"ttl": "1h"}}), 409, "APPLY_ERROR"),
            (
                json!({"crawling": {"concurrency": 0}}),
                400,
                "INVALID_CONFIG",
            ),
            (json!({"api": {"keys": []}}), 400, "BAD_REQUEST"),
            (json!({"crawling": {"speed": 9}}), 400, "UNKNOWN_FIELD"),
        ] {
            let error = live.patch(&body).expect_err("refused");
            let answer = ApiError::config_refused(&error);
            assert_eq!(answer.status().as_u16(), status, "{body}");
            assert_eq!(answer.code(), code, "{body}");
            assert_eq!(answer.message(), error.message());
        }
    }
}

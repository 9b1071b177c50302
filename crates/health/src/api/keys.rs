//! `GET /api/v1/keys`, `POST /api/v1/keys` and `DELETE /api/v1/keys/{name}`
//! (SPEC §3.12): the API keys the listener accepts, listed, created, deleted.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use spyder_config::Scope;

use super::body::{HttpResponse, json_response, parse_json, respond};
use crate::state::Served;
use crate::{ApiError, KeyIdentity, KeyStoreError};

/// The `warning` of `POST /api/v1/keys`.
const NEW_KEY_WARNING: &str = "this key is shown once and kept in memory only; add it to api.keys or SPYDER_API_KEYS to keep it after a restart";

/// `GET /api/v1/keys`.
pub(super) fn list(served: &Served) -> HttpResponse {
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "keys": served.state.inner.keys.list() }),
    )
}

/// `DELETE /api/v1/keys/{name}`.
pub(super) fn delete(
    served: &Served,
    name: &str,
    identity: &KeyIdentity,
) -> Result<HttpResponse, ApiError> {
    if served.state.inner.keys.remove(name) {
        tracing::info!(key_name = %name, by = %identity.name, "api key deleted");
        Ok(respond(StatusCode::NO_CONTENT, "", Bytes::new()))
    } else {
        Err(ApiError::not_found(format!("no key named {name:?}")))
    }
}

#[derive(Serialize)]
struct CreatedKeyBody<'a> {
    key: &'a str,
    name: &'a str,
    scope: Scope,
    warning: &'static str,
}

pub(super) fn create(
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

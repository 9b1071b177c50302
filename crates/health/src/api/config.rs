//! `GET /api/v1/config` and `PATCH /api/v1/config` (SPEC §3.12): the running
//! configuration, redacted, and live changes to it.

use http::StatusCode;
use serde::Serialize;
use serde_json::Value;

use super::body::{HttpResponse, json_response, parse_json};
use crate::state::Served;
use crate::{ApiError, KeyIdentity};

/// `GET /api/v1/config`.
pub(super) fn get(served: &Served) -> HttpResponse {
    let inner = &served.state.inner;
    json_response(
        StatusCode::OK,
        &serde_json::json!({ "config": with_live_keys(inner.control.config(), &inner.keys) }),
    )
}

/// `PATCH /api/v1/config`.
pub(super) fn patch(
    served: &Served,
    body: &[u8],
    identity: &KeyIdentity,
) -> Result<HttpResponse, ApiError> {
    let inner = &served.state.inner;
    let changes: Value = parse_json(body)?;
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
    let outcome = inner.control.patch_config(changes)?;
    Ok(json_response(
        StatusCode::OK,
        &PatchBody {
            config: with_live_keys(outcome.config, &inner.keys),
            warnings: outcome.warnings,
        },
    ))
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

//! Hiding secrets in the serialized configuration: API keys and URL passwords.

use serde_json::Value;

use spyder_model::secret::HIDDEN;

/// Replaces every `api.keys[].key` and every password in a `scheme://user:pass@host`
/// string with `"***"`.
pub(crate) fn redact(config: &mut Value) {
    if let Some(keys) = config
        .pointer_mut("/api/keys")
        .and_then(Value::as_array_mut)
    {
        for entry in keys {
            if let Some(key) = entry.get_mut("key") {
                *key = Value::String(HIDDEN.to_owned());
            }
        }
    }
    redact_urls(config);
}

fn redact_urls(value: &mut Value) {
    match value {
        Value::String(text) => {
            if let Some(hidden) = hide_url_password(text) {
                *text = hidden;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_urls),
        Value::Object(map) => map.values_mut().for_each(redact_urls),
        _ => {}
    }
}

pub(crate) use spyder_model::secret::hide_url_password;

//! Hiding secrets in the serialized configuration: API keys and URL passwords.

use serde_json::Value;

const HIDDEN: &str = "***";

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

/// `redis://user:pass@host:6379/0` → `redis://user:***@host:6379/0`; `None` when the
/// text has no password.
pub(crate) fn hide_url_password(text: &str) -> Option<String> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let (userinfo, host) = authority.rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':')?;
    if password.is_empty() {
        return None;
    }
    Some(format!(
        "{scheme}://{user}:{HIDDEN}@{host}{}",
        &rest[authority_end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_only() {
        assert_eq!(
            hide_url_password("redis://user:pass@h:6379/0").as_deref(),
            Some("redis://user:***@h:6379/0")
        );
        assert_eq!(
            hide_url_password("rediss://:s3cret@h:6380").as_deref(),
            Some("rediss://:***@h:6380")
        );
        assert_eq!(
            hide_url_password("https://u:p@w@ingest.example/x?a=b").as_deref(),
            Some("https://u:***@ingest.example/x?a=b")
        );
        assert_eq!(hide_url_password("redis://h:6379"), None);
        assert_eq!(hide_url_password("127.0.0.1:6379"), None);
        assert_eq!(hide_url_password("https://user@h/"), None);
    }
}

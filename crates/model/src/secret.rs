//! Secrets inside addresses: URL passwords are never printed.
//!
//! Every crate that logs or reports an address (the ingest URL, Redis addresses,
//! the served configuration) shows it through [`redact_url`].

use std::borrow::Cow;

/// What a hidden secret shows as.
pub const HIDDEN: &str = "***";

/// `redis://user:pass@host:6379/0` → `redis://user:***@host:6379/0`; text without a
/// password comes back unchanged.
pub fn redact_url(text: &str) -> Cow<'_, str> {
    match hide_url_password(text) {
        Some(hidden) => Cow::Owned(hidden),
        None => Cow::Borrowed(text),
    }
}

/// [`redact_url`], `None` when the text has no password.
pub fn hide_url_password(text: &str) -> Option<String> {
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

/// Splits `scheme://user:pass@host/…` into the URL without its userinfo and the
/// `(user, password)` pair, as written (still percent-encoded); `None` for a URL
/// without userinfo.
pub fn split_url_userinfo(text: &str) -> Option<(String, (String, String))> {
    let (scheme, rest) = text.split_once("://")?;
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, host) = rest[..authority_end].rsplit_once('@')?;
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    Some((
        format!("{scheme}://{host}{}", &rest[authority_end..]),
        (user.to_owned(), password.to_owned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_only() {
        assert_eq!(
            redact_url("redis://user:pass@h:6379/0"),
            "redis://user:***@h:6379/0"
        );
        assert_eq!(
            redact_url("rediss://:s3cret@h:6380"),
            "rediss://:***@h:6380"
        );
        assert_eq!(
            redact_url("https://u:p@w@ingest.example/x?a=b"),
            "https://u:***@ingest.example/x?a=b"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
        assert_eq!(redact_url("127.0.0.1:6379"), "127.0.0.1:6379");
        assert_eq!(redact_url("https://user@h/"), "https://user@h/");
    }

    #[test]
    fn splits_userinfo_off() {
        assert_eq!(
            split_url_userinfo("https://u:p%40ss@ingest.example:8443/v1?x=@"),
            Some((
                "https://ingest.example:8443/v1?x=@".to_owned(),
                ("u".to_owned(), "p%40ss".to_owned())
            ))
        );
        assert_eq!(
            split_url_userinfo("http://token@h/"),
            Some(("http://h/".to_owned(), ("token".to_owned(), String::new())))
        );
        assert_eq!(split_url_userinfo("http://h/a@b"), None);
    }
}

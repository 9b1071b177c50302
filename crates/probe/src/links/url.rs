//! Links resolved with the `url` crate, where the fast path cannot tell: the
//! URL standard's reading of a link against its base, and the host it yields.

use spyder_model::{HostName, NameKind};
use url::{Host, Url};

/// The validated host of an http(s) URL with a domain host.
pub(super) fn domain_of(url: &Url) -> Option<HostName> {
    if !is_http(url) {
        return None;
    }
    match url.host() {
        Some(Host::Domain(domain)) => HostName::parse(domain, NameKind::Strict).ok(),
        _ => None,
    }
}

/// `link` resolved against `base` as the URL standard does it.
///
/// With an http(s) base, the standard reads any run of `/` and `\` before a
/// host as the two slashes of an authority (its "special authority ignore
/// slashes" state): `///host/x` names `host`. The `url` crate does so after a
/// scheme, but fails on a link without one whose run is longer than two (a
/// deviation its own test suite lists), so such a link is handed to it with
/// the run written as `//`.
pub(super) fn join(base: &Url, link: &str) -> Option<Url> {
    if is_http(base)
        && let Some(link) = with_two_slashes(link)
    {
        return base.join(&link).ok();
    }
    base.join(link).ok()
}

/// A link without a scheme that starts with three or more `/` or `\`, written
/// with two `/` instead, its surrounding C0 controls and spaces and every tab
/// and newline removed (the URL parser ignores them there); `None` for any
/// other link.
fn with_two_slashes(link: &str) -> Option<String> {
    let s = link.trim_matches(|c: char| c <= ' ');
    if !s.starts_with(['/', '\\']) {
        return None;
    }
    let s: String = s
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let run = s.bytes().take_while(|&b| matches!(b, b'/' | b'\\')).count();
    (run > 2).then(|| format!("//{}", &s[run..]))
}

/// True for an http or https URL.
pub(super) fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

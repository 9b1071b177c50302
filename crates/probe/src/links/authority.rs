//! The fast path: what the text of a link says about its host, read the way the
//! URL parser reads it but without building a URL. Most links are relative or
//! name a plain ASCII host after `https://` or `//`; only the rest need the
//! parser.

/// The length of the run of `/` and `\` that `bytes` starts with.
fn slash_run(bytes: &[u8]) -> usize {
    bytes
        .iter()
        .take_while(|&&b| matches!(b, b'/' | b'\\'))
        .count()
}

/// What the text of a link says about its host, read the way the URL parser
/// reads it but without building a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LinkForm<'s> {
    /// A scheme other than http(s) (`javascript:`, `mailto:`, `data:` …): no host.
    OtherScheme,
    /// No scheme and no authority: the host is the document base's.
    Relative,
    /// `//host…`, `///host…` (any run of slashes or backslashes): `host` if
    /// the base is http(s).
    SchemeRelative(WrittenHost<'s>),
    /// `http://host…` or `https://host…` (any case, any run of two or more
    /// slashes or backslashes).
    Absolute(WrittenHost<'s>),
    /// Anything else (tabs or newlines where they matter, percent-escapes or
    /// non-ASCII in the host, IP addresses, `xn--` labels, `http:x` …): only the
    /// URL parser can tell.
    NeedsParse,
}

/// Reads `raw` as the URL parser would, as far as its host goes. A host it
/// returns is plain ASCII (`[A-Za-z0-9.-]`), and the URL parser would give
/// the same host lower-cased.
pub(super) fn link_form(raw: &str) -> LinkForm<'_> {
    // The URL parser trims C0 controls and spaces, and drops tabs and newlines
    // anywhere; those inside what decides the form are left to it.
    let s = raw.trim_matches(|c: char| c <= ' ');
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'+' | b'-' | b'.' => {}
            b'\t' | b'\n' | b'\r' => return LinkForm::NeedsParse,
            b':' if i > 0 && bytes[0].is_ascii_alphabetic() => {
                let scheme = &s[..i];
                if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                    return LinkForm::OtherScheme;
                }
                // `http:` then two or more slashes starts the authority after
                // them, whatever the base; `http:x` and `http:/x` depend on it.
                let run = slash_run(&bytes[i + 1..]);
                if run < 2 {
                    return LinkForm::NeedsParse;
                }
                return plain_host(s, i + 1 + run).map_or(LinkForm::NeedsParse, LinkForm::Absolute);
            }
            _ => break,
        }
    }
    match bytes {
        [b'/' | b'\\', b'\t' | b'\n' | b'\r', ..] => LinkForm::NeedsParse,
        // With an http(s) base, the authority starts after the whole run.
        [b'/' | b'\\', b'/' | b'\\', ..] => {
            plain_host(s, slash_run(bytes)).map_or(LinkForm::NeedsParse, LinkForm::SchemeRelative)
        }
        _ => LinkForm::Relative,
    }
}

/// A host as a link wrote it, known to be plain ASCII (see [`plain_host`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct WrittenHost<'s> {
    pub(super) text: &'s str,
    /// True when `text` holds upper-case letters.
    pub(super) has_upper: bool,
    /// The link up to the end of its authority (`https://user@Host:443`): any
    /// link starting with it and then `/`, `\`, `?`, `#` or nothing has this host.
    pub(super) prefix: &'s str,
}

/// How [`plain_host`] treats each byte of an authority.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthorityByte {
    /// `a-z`, `0-9`, `.`
    Lower,
    /// `A-Z`
    Upper,
    Hyphen,
    /// `/`, `\`, `?`, `#`: the authority ends.
    End,
    At,
    Colon,
    /// Anything the fast path leaves to the URL parser.
    Other,
}

const AUTHORITY_BYTES: [AuthorityByte; 256] = {
    let mut table = [AuthorityByte::Other; 256];
    let mut i = 0;
    while i < table.len() {
        table[i] = match i as u8 {
            b'a'..=b'z' | b'0'..=b'9' | b'.' => AuthorityByte::Lower,
            b'A'..=b'Z' => AuthorityByte::Upper,
            b'-' => AuthorityByte::Hyphen,
            b'/' | b'\\' | b'?' | b'#' => AuthorityByte::End,
            b'@' => AuthorityByte::At,
            b':' => AuthorityByte::Colon,
            _ => AuthorityByte::Other,
        };
        i += 1;
    }
    table
};

/// The host of the http(s) authority of `link` that starts at `authority_start`,
/// after the two slashes (`user:pass@host:port/…`), when the URL parser would
/// keep it as written but lower-cased: `[A-Za-z0-9.-]` only, no `xn--` label,
/// not an IPv4 address by the URL standard, and a valid port. `None` leaves the
/// link to the URL parser.
fn plain_host(link: &str, authority_start: usize) -> Option<WrittenHost<'_>> {
    let after_slashes = link.get(authority_start..)?;
    let bytes = after_slashes.as_bytes();
    let mut end = bytes.len();
    let mut host_start = 0;
    let mut colon = None;
    let mut plain = true;
    let mut has_upper = false;
    let mut double_hyphen = false;
    let mut i = 0;
    loop {
        // Runs of lower-case host bytes are the common case.
        while i < bytes.len() && AUTHORITY_BYTES[usize::from(bytes[i])] == AuthorityByte::Lower {
            i += 1;
        }
        let Some(&b) = bytes.get(i) else {
            break;
        };
        match AUTHORITY_BYTES[usize::from(b)] {
            AuthorityByte::Lower => {}
            AuthorityByte::Upper => has_upper = true,
            AuthorityByte::Hyphen => double_hyphen |= i > 0 && bytes[i - 1] == b'-',
            // `\` ends it too: it counts as `/` in http(s) URLs.
            AuthorityByte::End => {
                end = i;
                break;
            }
            // Everything so far was user info; the host starts after the last `@`.
            AuthorityByte::At => {
                host_start = i + 1;
                colon = None;
                plain = true;
                has_upper = false;
                double_hyphen = false;
            }
            AuthorityByte::Colon if colon.is_none() => colon = Some(i),
            AuthorityByte::Colon | AuthorityByte::Other => plain = false,
        }
        i += 1;
    }
    let host_end = colon.unwrap_or(end);
    if !plain || host_start == host_end {
        return None;
    }
    if let Some(colon) = colon
        && !valid_port(&bytes[colon + 1..end])
    {
        return None;
    }
    let host = &bytes[host_start..host_end];
    if (double_hyphen && has_ace_label(host)) || ends_in_a_number(host) {
        return None;
    }
    Some(WrittenHost {
        text: after_slashes.get(host_start..host_end)?,
        has_upper,
        prefix: link.get(..authority_start + end)?,
    })
}

/// A port the URL parser accepts: empty, or digits worth at most 65,535.
fn valid_port(port: &[u8]) -> bool {
    let mut value: u32 = 0;
    for &b in port {
        if !b.is_ascii_digit() {
            return false;
        }
        value = value * 10 + u32::from(b - b'0');
        if value > u32::from(u16::MAX) {
            return false;
        }
    }
    true
}

/// True when a label starts with `xn--` (any case): the URL parser checks its
/// punycode.
fn has_ace_label(host: &[u8]) -> bool {
    host.split(|&b| b == b'.').any(|label| {
        label
            .get(..4)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"xn--"))
    })
}

/// The URL standard's "ends in a number": the last label (a trailing dot aside)
/// is all digits, or `0x` and hex digits, so the host is read as IPv4.
fn ends_in_a_number(host: &[u8]) -> bool {
    let host = host.strip_suffix(b".").unwrap_or(host);
    let last = host
        .iter()
        .rposition(|&b| b == b'.')
        .map_or(host, |dot| &host[dot + 1..]);
    match last {
        [] => false,
        [b'0', b'x' | b'X', hex @ ..] => hex.iter().all(u8::is_ascii_hexdigit),
        digits => digits.iter().all(u8::is_ascii_digit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_forms() {
        let written = |text, has_upper, prefix| WrittenHost {
            text,
            has_upper,
            prefix,
        };
        assert_eq!(
            link_form(" HTTPS://u:p@Host.example.org:8443/x "),
            LinkForm::Absolute(written(
                "Host.example.org",
                true,
                "HTTPS://u:p@Host.example.org:8443"
            ))
        );
        assert_eq!(
            link_form("\\\\cdn.example.org?x"),
            LinkForm::SchemeRelative(written("cdn.example.org", false, "\\\\cdn.example.org"))
        );
        for relative in [
            "", "x", "/x", "../x:y", "?q", "#f", "1a:b", ":x", "/\u{0}/x",
        ] {
            assert_eq!(link_form(relative), LinkForm::Relative, "{relative:?}");
        }
        for other in [
            "mailto:a@b.example",
            "JavaScript:x",
            "ftp://f.example/",
            "a+b:c",
        ] {
            assert_eq!(link_form(other), LinkForm::OtherScheme, "{other:?}");
        }
        for parse in [
            "http:x.example",
            "https:/x.example",
            "ht\ttp://x.example",
            "/\t/x.example",
            "http://b%C3%BC.example/",
            "http://bü.example/",
            "http://xn--bcher-kva.de/",
            "http://1.0x7f/",
            "http://example.09./",
            "http://x.example:65536/",
            "http://x.example:8a/",
            "http://[::1]/",
            "http://@/",
        ] {
            assert_eq!(link_form(parse), LinkForm::NeedsParse, "{parse:?}");
        }
    }

    #[test]
    fn link_forms_skip_a_run_of_slashes_before_the_host() {
        let written = |text, prefix| WrittenHost {
            text,
            has_upper: false,
            prefix,
        };
        for (link, prefix) in [
            ("///x.example/p", "///x.example"),
            ("/\\/x.example", "/\\/x.example"),
            ("\\\\\\\\x.example?q", "\\\\\\\\x.example"),
        ] {
            assert_eq!(
                link_form(link),
                LinkForm::SchemeRelative(written("x.example", prefix)),
                "{link:?}"
            );
        }
        for (link, prefix) in [
            ("http:///x.example", "http:///x.example"),
            ("https:\\\\/x.example/", "https:\\\\/x.example"),
        ] {
            assert_eq!(
                link_form(link),
                LinkForm::Absolute(written("x.example", prefix)),
                "{link:?}"
            );
        }
    }
}

//! Host names: normalisation and validation per SPEC §3.3, apex per the full PSL.

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Longest accepted input line, in bytes.
pub const MAX_LINE_BYTES: usize = 4096;
/// Bytes of an over-long line kept in its report (then `...`).
pub const TOO_LONG_PREVIEW_BYTES: usize = 64;
/// The UTF-8 byte-order mark a list may start with.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// What one line of a domains list holds: the input file and the bulk API's
/// `text/plain` body are read by this one rule ([`list_line`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListLine<'a> {
    /// Blank, or a `#` comment: skipped without a report.
    Skip,
    /// A valid host: normalised, and the trimmed text it was read from.
    Host {
        /// The normalised host.
        host: HostName,
        /// The line as written, trimmed (a `https://` URL stays one).
        text: &'a str,
    },
    /// Not a host: the value as reported (trimmed; an over-long line's first
    /// [`TOO_LONG_PREVIEW_BYTES`] and `...`) and why.
    Invalid {
        /// The offending line as reported.
        value: String,
        /// One of the reasons of SPEC §3.3.
        error: HostError,
    },
}

/// Reads one line of a domains list. `raw` is the line without its `\n` (a final
/// `\r` is dropped here, and a byte-order mark when `first`); `too_long` says the line
/// was longer than [`MAX_LINE_BYTES`] even if `raw` holds only its start (a reader
/// that does not buffer such lines whole). Surrounding white space is ignored;
/// invalid UTF-8 is an invalid character.
pub fn list_line(raw: &[u8], first: bool, too_long: bool) -> ListLine<'_> {
    let mut bytes = raw.strip_suffix(b"\r").unwrap_or(raw);
    if first {
        bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    }
    let too_long = too_long || bytes.len() > MAX_LINE_BYTES;
    let bytes = bytes.trim_ascii();
    if bytes.first() == Some(&b'#') || (bytes.is_empty() && !too_long) {
        return ListLine::Skip;
    }
    if too_long {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(TOO_LONG_PREVIEW_BYTES + 4)]);
        let mut end = text.len().min(TOO_LONG_PREVIEW_BYTES);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return ListLine::Invalid {
            value: format!("{}...", &text[..end]),
            error: HostError::LineTooLong,
        };
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => match HostName::from_input(text) {
            Ok(host) => ListLine::Host { host, text },
            Err(error) => ListLine::Invalid {
                value: text.to_owned(),
                error,
            },
        },
        Err(_) => ListLine::Invalid {
            value: String::from_utf8_lossy(bytes).into_owned(),
            error: HostError::InvalidCharacter(char::REPLACEMENT_CHARACTER),
        },
    }
}
const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// Which validation rules apply to a name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// Input and link hosts: strict LDH, TLD not all-numeric.
    Strict,
    /// CNAME, NS and MX targets and certificate SANs: `_` is also allowed.
    DnsTarget,
}

/// Why a name was rejected. The `Display` text is the reason of SPEC §3.3.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// The name is empty or has an empty label.
    #[error("empty label")]
    EmptyLabel,
    /// A label is over 63 octets.
    #[error("label longer than 63 characters")]
    LabelTooLong,
    /// The name is over 253 octets.
    #[error("name longer than 253 characters")]
    NameTooLong,
    /// A character the rules do not allow (U+FFFD for invalid UTF-8).
    #[error("invalid character '{0}'")]
    InvalidCharacter(char),
    /// A label starts or ends with `-`.
    #[error("label starts or ends with '-'")]
    Hyphen,
    /// An IP address, or (strict rules) a name whose TLD is all digits.
    #[error("IP address literal is not a domain")]
    IpLiteral,
    /// UTS-46 rejected the name; the detail says why.
    #[error("invalid IDN: {0}")]
    InvalidIdn(String),
    /// The line is over [`MAX_LINE_BYTES`].
    #[error("line too long")]
    LineTooLong,
}

/// A normalised, validated DNS name: lower-case ASCII (IDNs as punycode), no trailing dot.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(String);

impl HostName {
    /// Parses one input line or API value: surrounding white space is ignored and an
    /// `http://` or `https://` URL gives its host. Strict rules apply.
    pub fn from_input(input: &str) -> Result<Self, HostError> {
        if input.len() > MAX_LINE_BYTES {
            return Err(HostError::LineTooLong);
        }
        let trimmed = input.trim_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
        Self::parse(host_of_url(trimmed).unwrap_or(trimmed), NameKind::Strict)
    }

    /// Normalises and validates a bare name under the rules of `kind`.
    pub fn parse(name: &str, kind: NameKind) -> Result<Self, HostError> {
        let name = name.strip_suffix('.').unwrap_or(name);
        if is_ip_literal(name) {
            return Err(HostError::IpLiteral);
        }
        if name.is_ascii() && !has_ace_label(name) {
            // The common case: plain ASCII, lower-cased once, no IDNA pass.
            let ascii = name.to_ascii_lowercase();
            validate(&ascii, kind)?;
            return Ok(Self(ascii));
        }
        let ascii = to_ascii_uts46(name)?;
        validate(&ascii, kind)?;
        let mut s = ascii.into_owned();
        s.make_ascii_lowercase();
        Ok(Self(s))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The registrable domain (eTLD+1) by the full Public Suffix List, private section
    /// included; the name itself when it has none (e.g. it is a public suffix).
    pub fn apex(&self) -> &str {
        apex_of(&self.0)
    }

    /// True when `other` lies under a different registrable domain.
    pub fn is_external_to(&self, other: &HostName) -> bool {
        self.apex() != other.apex()
    }

    /// `localhost` and `*.localhost`, refused as private targets (SPEC §3.5).
    pub fn is_localhost(&self) -> bool {
        self.0 == "localhost" || self.0.ends_with(".localhost")
    }

    /// True when the name equals `suffix` or ends in `.suffix` (ASCII case-insensitive).
    pub fn is_within(&self, suffix: &str) -> bool {
        let suffix = suffix.trim_start_matches('.');
        let suffix = suffix.strip_suffix('.').unwrap_or(suffix);
        if suffix.is_empty() {
            return false;
        }
        let n = self.0.len();
        let s = suffix.len();
        if n == s {
            return self.0.eq_ignore_ascii_case(suffix);
        }
        n > s
            && self.0.as_bytes()[n - s - 1] == b'.'
            && self.0[n - s..].eq_ignore_ascii_case(suffix)
    }

    /// Consumes the name, giving its string.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The registrable domain of an already-normalised name, or the name itself.
pub fn apex_of(host: &str) -> &str {
    match psl::domain_str(host) {
        Some(d) => d,
        None => host,
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl AsRef<str> for HostName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for HostName {
    type Err = HostError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s, NameKind::Strict)
    }
}

impl Serialize for HostName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HostName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s, NameKind::DnsTarget).map_err(serde::de::Error::custom)
    }
}

/// The host part of an `http://` or `https://` URL, if `s` is one.
fn host_of_url(s: &str) -> Option<&str> {
    let lower_prefix = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
    let rest = if lower_prefix("http://") {
        &s[7..]
    } else if lower_prefix("https://") {
        &s[8..]
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        // Bracketed IPv6 literal: hand back the whole literal so it is refused as such.
        return Some(host_port.split(']').next().map_or(host_port, |h| &h[1..]));
    }
    Some(match host_port.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    })
}

fn is_ip_literal(name: &str) -> bool {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    // Only digits and dots can make an IPv4 literal, and IPv6 needs a colon: most names
    // are neither and skip the parse.
    let maybe_ip = bare.contains(':') || bare.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    maybe_ip && bare.parse::<IpAddr>().is_ok()
}

fn has_ace_label(name: &str) -> bool {
    name.split('.')
        .any(|l| l.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("xn--")))
}

fn to_ascii_uts46(name: &str) -> Result<Cow<'_, str>, HostError> {
    use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
    Uts46::new()
        .to_ascii(
            name.as_bytes(),
            AsciiDenyList::EMPTY,
            Hyphens::Allow,
            DnsLength::Ignore,
        )
        .map_err(|_| HostError::InvalidIdn(idn_detail(name)))
}

fn idn_detail(name: &str) -> String {
    match name
        .chars()
        .find(|c| !c.is_ascii() && idna::domain_to_ascii(&c.to_string()).is_err())
    {
        Some(c) => format!("disallowed character U+{:04X}", c as u32),
        None => "not a valid internationalised name (bad punycode or mixed rules)".to_owned(),
    }
}

fn validate(name: &str, kind: NameKind) -> Result<(), HostError> {
    if name.is_empty() {
        return Err(HostError::EmptyLabel);
    }
    let mut last_label = "";
    for label in name.split('.') {
        if label.is_empty() {
            return Err(HostError::EmptyLabel);
        }
        if label.len() > MAX_LABEL {
            return Err(HostError::LabelTooLong);
        }
        if let Some(c) = label.chars().find(|&c| !allowed(c, kind)) {
            return Err(HostError::InvalidCharacter(c));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(HostError::Hyphen);
        }
        last_label = label;
    }
    if name.len() > MAX_NAME {
        return Err(HostError::NameTooLong);
    }
    if kind == NameKind::Strict && last_label.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::IpLiteral);
    }
    Ok(())
}

fn allowed(c: char, kind: NameKind) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || (c == '_' && kind == NameKind::DnsTarget)
}

#[cfg(test)]
mod tests {
    #[test]
    fn list_lines_follow_one_rule() {
        let host = |t: &str| HostName::from_input(t).expect("a valid test host");
        assert_eq!(
            list_line(b"\xEF\xBB\xBF Example.COM \r", true, false),
            ListLine::Host {
                host: host("example.com"),
                text: "Example.COM"
            }
        );
        // A BOM after the first line stays in the text (the host parser ignores it).
        assert_eq!(
            list_line(b"\xEF\xBB\xBFa.com", false, false),
            ListLine::Host {
                host: host("a.com"),
                text: "\u{feff}a.com"
            }
        );
        for skipped in [&b""[..], b"   \r", b"# note", b"  #x"] {
            assert_eq!(
                list_line(skipped, false, false),
                ListLine::Skip,
                "{skipped:?}"
            );
        }
        assert_eq!(
            list_line(b"bad_name", false, false),
            ListLine::Invalid {
                value: "bad_name".into(),
                error: HostError::InvalidCharacter('_')
            }
        );
        assert_eq!(
            list_line(b"\xff\xfeA", false, false),
            ListLine::Invalid {
                value: "\u{fffd}\u{fffd}A".into(),
                error: HostError::InvalidCharacter(char::REPLACEMENT_CHARACTER)
            }
        );
        // Too long: measured whole, reported by its first 64 bytes, on a char boundary.
        let long = "é".repeat(3000);
        let ListLine::Invalid { value, error } = list_line(long.as_bytes(), false, false) else {
            panic!("a 6,000-byte line is too long");
        };
        assert_eq!(error, HostError::LineTooLong);
        assert_eq!(value, format!("{}...", "é".repeat(32)));
        // A reader that stopped buffering says so; even blank, the line is reported.
        assert!(matches!(
            list_line(b"   ", false, true),
            ListLine::Invalid {
                error: HostError::LineTooLong,
                ..
            }
        ));
    }

    use super::*;

    fn input(s: &str) -> Result<String, String> {
        HostName::from_input(s)
            .map(HostName::into_string)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn normalises_case_trailing_dot_urls_and_idn() {
        assert_eq!(input("WWW.Example.COM."), Ok("www.example.com".into()));
        assert_eq!(input("bücher.de"), Ok("xn--bcher-kva.de".into()));
        assert_eq!(input("BÜCHER.de"), Ok("xn--bcher-kva.de".into()));
        assert_eq!(input("XN--BCHER-KVA.DE"), Ok("xn--bcher-kva.de".into()));
        assert_eq!(
            input("https://Example.com:8443/path?q#f"),
            Ok("example.com".into())
        );
        assert_eq!(
            input("HTTP://user:pw@example.org"),
            Ok("example.org".into())
        );
        assert_eq!(input("  example.net \r"), Ok("example.net".into()));
        assert_eq!(input("\u{feff}example.net"), Ok("example.net".into()));
    }

    #[test]
    fn rejects_with_the_spec_reasons() {
        assert_eq!(input(""), Err("empty label".into()));
        assert_eq!(input("a..b"), Err("empty label".into()));
        assert_eq!(
            input(&format!("{}.com", "a".repeat(64))),
            Err("label longer than 63 characters".into())
        );
        let long = vec!["a".repeat(60); 5].join(".");
        assert_eq!(input(&long), Err("name longer than 253 characters".into()));
        assert_eq!(input("exa mple.com"), Err("invalid character ' '".into()));
        assert_eq!(
            input("under_score.com"),
            Err("invalid character '_'".into())
        );
        assert_eq!(input("-a.com"), Err("label starts or ends with '-'".into()));
        assert_eq!(
            input("1.2.3.4"),
            Err("IP address literal is not a domain".into())
        );
        assert_eq!(
            input("http://1.2.3.4/"),
            Err("IP address literal is not a domain".into())
        );
        assert_eq!(
            input("http://[::1]:80/"),
            Err("IP address literal is not a domain".into())
        );
        assert_eq!(
            input("example.123"),
            Err("IP address literal is not a domain".into())
        );
        assert_eq!(input(&"a".repeat(5000)), Err("line too long".into()));
        assert!(
            input("xn--zz.com")
                .expect_err("bad punycode")
                .starts_with("invalid IDN: ")
        );
        assert_eq!(input("ftp://ö"), Err("invalid character ':'".into()));
    }

    #[test]
    fn dns_targets_may_carry_underscores() {
        let t = HostName::parse("_dmarc.Example.com.", NameKind::DnsTarget).expect("valid target");
        assert_eq!(t.as_str(), "_dmarc.example.com");
        assert!(HostName::parse("1.2.3.4", NameKind::DnsTarget).is_err());
    }

    #[test]
    fn apex_uses_the_full_psl() {
        let apex = |s: &str| HostName::from_input(s).expect("valid").apex().to_owned();
        assert_eq!(apex("www.example.co.uk"), "example.co.uk");
        assert_eq!(apex("a.b.example.com"), "example.com");
        // private section
        assert_eq!(apex("foo.bar.github.io"), "bar.github.io");
        // a public suffix is its own apex
        assert_eq!(apex("co.uk"), "co.uk");
        assert_eq!(apex("example.com"), "example.com");
    }

    #[test]
    fn within_and_localhost() {
        let h = HostName::from_input("a.b.GOV").expect("valid");
        assert!(h.is_within("gov"));
        assert!(h.is_within("GOV"));
        assert!(h.is_within("b.gov"));
        assert!(!h.is_within("ov"));
        assert!(
            HostName::from_input("x.localhost")
                .expect("valid")
                .is_localhost()
        );
    }
}

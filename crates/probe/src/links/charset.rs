//! The page's character encoding (SPEC §3.4): the Content-Type charset, else a
//! `<meta>` prescan of the first 1,024 bytes (HTML "prescan a byte stream to
//! determine its encoding"), else UTF-8.

use encoding_rs::Encoding;

/// Bytes examined by the `<meta>` charset prescan.
const PRESCAN_BYTES: usize = 1024;

/// Picks the encoding: Content-Type charset, else the `<meta>` prescan, else UTF-8.
pub(super) fn sniff_encoding(body: &[u8], content_type: Option<&str>) -> &'static Encoding {
    if let Some(encoding) = content_type
        .and_then(|ct| charset_in(ct.as_bytes()))
        .and_then(Encoding::for_label)
    {
        return encoding;
    }
    prescan(&body[..body.len().min(PRESCAN_BYTES)]).unwrap_or(encoding_rs::UTF_8)
}

/// The `charset=` value in a Content-Type-like string (HTML "extracting a
/// character encoding from a meta element"; also fits the HTTP header).
fn charset_in(s: &[u8]) -> Option<&[u8]> {
    let is_space = |b: &u8| b.is_ascii_whitespace();
    let mut i = 0;
    while i + 7 <= s.len() {
        if !s[i..i + 7].eq_ignore_ascii_case(b"charset") {
            i += 1;
            continue;
        }
        i += 7;
        while s.get(i).is_some_and(is_space) {
            i += 1;
        }
        if s.get(i) != Some(&b'=') {
            continue;
        }
        i += 1;
        while s.get(i).is_some_and(is_space) {
            i += 1;
        }
        return match s.get(i) {
            Some(&q) if q == b'"' || q == b'\'' => {
                let value = &s[i + 1..];
                let end = value.iter().position(|&b| b == q)?;
                Some(&value[..end])
            }
            Some(_) => {
                let value = &s[i..];
                let end = value
                    .iter()
                    .position(|b| is_space(b) || *b == b';')
                    .unwrap_or(value.len());
                Some(&value[..end])
            }
            None => None,
        };
    }
    None
}

/// A simplified HTML "prescan a byte stream to determine its encoding": looks for
/// `<meta charset>` or `<meta http-equiv=content-type content="…charset=…">`,
/// skipping comments and other tags.
fn prescan(bytes: &[u8]) -> Option<&'static Encoding> {
    let mut i = 0;
    while i < bytes.len() {
        let rest = &bytes[i..];
        if rest.starts_with(b"<!--") {
            // "-->" may share its dashes with the opening "<!--".
            i += 2 + find(&rest[2..], b"-->")? + 3;
            continue;
        }
        if rest.len() >= 6
            && rest[..5].eq_ignore_ascii_case(b"<meta")
            && (rest[5].is_ascii_whitespace() || rest[5] == b'/')
        {
            i += 5;
            if let Some(encoding) = meta_encoding(bytes, &mut i) {
                return Some(encoding);
            }
            continue;
        }
        let tag_start = match rest {
            [b'<', b'/', c, ..] | [b'<', c, ..] if c.is_ascii_alphabetic() => true,
            [b'<', b'!' | b'/' | b'?', ..] => false,
            _ => {
                i += 1;
                continue;
            }
        };
        if tag_start {
            // Skip the tag name, then its attributes (their values may hold '>').
            i += rest
                .iter()
                .position(|b| b.is_ascii_whitespace() || *b == b'>')
                .unwrap_or(rest.len());
            while get_attribute(bytes, &mut i).is_some() {}
        } else {
            i += rest.iter().position(|&b| b == b'>').unwrap_or(rest.len());
        }
        i += 1;
    }
    None
}

/// Reads the attributes of one `<meta` (position just after the tag name) and
/// returns the encoding it declares, per the prescan rules.
fn meta_encoding(bytes: &[u8], i: &mut usize) -> Option<&'static Encoding> {
    let mut got_pragma = false;
    let mut need_pragma = None;
    let mut charset: Option<Vec<u8>> = None;
    let mut seen_http_equiv = false;
    let mut seen_content = false;
    let mut seen_charset = false;
    while let Some((name, value)) = get_attribute(bytes, i) {
        match name.as_slice() {
            b"http-equiv" if !seen_http_equiv => {
                seen_http_equiv = true;
                got_pragma = value == b"content-type";
            }
            b"content" if !seen_content => {
                seen_content = true;
                if charset.is_none()
                    && let Some(found) = charset_in(&value)
                {
                    charset = Some(found.to_vec());
                    need_pragma = Some(true);
                }
            }
            b"charset" if !seen_charset => {
                seen_charset = true;
                charset = Some(value);
                need_pragma = Some(false);
            }
            _ => {}
        }
    }
    match need_pragma {
        None => return None,
        Some(true) if !got_pragma => return None,
        _ => {}
    }
    let encoding = Encoding::for_label(&charset?)?;
    Some(
        if encoding == encoding_rs::UTF_16BE || encoding == encoding_rs::UTF_16LE {
            encoding_rs::UTF_8
        } else if encoding == encoding_rs::X_USER_DEFINED {
            encoding_rs::WINDOWS_1252
        } else {
            encoding
        },
    )
}

/// The prescan's "get an attribute": the next `(name, value)`, lower-cased, or
/// `None` at `>` or the end of input. `i` is left after what was read.
fn get_attribute(bytes: &[u8], i: &mut usize) -> Option<(Vec<u8>, Vec<u8>)> {
    let at = |i: usize| bytes.get(i).copied();
    while at(*i).is_some_and(|b| b.is_ascii_whitespace() || b == b'/') {
        *i += 1;
    }
    if at(*i)? == b'>' {
        return None;
    }
    let mut name = Vec::new();
    let mut value = Vec::new();
    // Name.
    loop {
        let b = at(*i)?;
        if b == b'=' && !name.is_empty() {
            *i += 1;
            break;
        }
        if b.is_ascii_whitespace() {
            while at(*i)?.is_ascii_whitespace() {
                *i += 1;
            }
            if at(*i)? != b'=' {
                return Some((name, value));
            }
            *i += 1;
            break;
        }
        if b == b'/' || b == b'>' {
            return Some((name, value));
        }
        name.push(b.to_ascii_lowercase());
        *i += 1;
    }
    // Value.
    while at(*i)?.is_ascii_whitespace() {
        *i += 1;
    }
    let b = at(*i)?;
    if b == b'"' || b == b'\'' {
        *i += 1;
        loop {
            let c = at(*i)?;
            *i += 1;
            if c == b {
                return Some((name, value));
            }
            value.push(c.to_ascii_lowercase());
        }
    }
    if b == b'>' {
        return Some((name, value));
    }
    loop {
        let Some(c) = at(*i) else {
            return Some((name, value));
        };
        if c.is_ascii_whitespace() || c == b'>' {
            return Some((name, value));
        }
        value.push(c.to_ascii_lowercase());
        *i += 1;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::links::tests::{hosts_with, page};

    #[test]
    fn charset_from_header() {
        // "bücher" in windows-1252 / ISO-8859-1: ü is 0xFC.
        let mut body = b"<a href=\"https://b".to_vec();
        body.push(0xfc);
        body.extend_from_slice(b"cher.de/\">x</a>");
        let got = hosts_with(&body, Some("text/html; charset=ISO-8859-1"), &page(), 10);
        assert_eq!(got, ["xn--bcher-kva.de"]);
        let got = hosts_with(
            &body,
            Some("text/html;charset=\"windows-1252\""),
            &page(),
            10,
        );
        assert_eq!(got, ["xn--bcher-kva.de"]);
        // Decoded as UTF-8 the byte is invalid: U+FFFD is not a valid host character.
        assert!(hosts_with(&body, Some("text/html"), &page(), 10).is_empty());
    }

    #[test]
    fn charset_from_meta() {
        for head in [
            "<meta charset=windows-1252>",
            "<meta charset='ISO-8859-1'>",
            r#"<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1">"#,
            r#"<!-- <meta charset=utf-8> --><meta content="text/html; charset=latin1" http-equiv=content-type>"#,
        ] {
            let mut body =
                format!("<html><head>{head}</head><body><a href=\"https://b").into_bytes();
            body.push(0xfc);
            body.extend_from_slice(b"cher.de/\">x</a>");
            assert_eq!(
                hosts_with(&body, None, &page(), 10),
                ["xn--bcher-kva.de"],
                "{head}"
            );
        }
        // The header beats the meta; the meta without http-equiv is ignored.
        let body = "<meta charset=windows-1252><a href=https://bücher.de/>".as_bytes();
        assert_eq!(
            hosts_with(body, Some("text/html; charset=utf-8"), &page(), 10),
            ["xn--bcher-kva.de"]
        );
        assert_eq!(prescan(b"<meta content='text/html; charset=latin1'>"), None);
        // A meta past the first 1,024 bytes is not seen.
        let late = format!("{}<meta charset=windows-1252>", " ".repeat(1100));
        assert_eq!(sniff_encoding(late.as_bytes(), None), encoding_rs::UTF_8);
        // Declared UTF-16 in a meta means UTF-8; x-user-defined means windows-1252.
        assert_eq!(
            prescan(b"<meta charset=utf-16le>"),
            Some(encoding_rs::UTF_8)
        );
        assert_eq!(
            prescan(b"<meta charset=x-user-defined>"),
            Some(encoding_rs::WINDOWS_1252)
        );
        // Attribute values of other tags may contain '>' without ending the tag.
        assert_eq!(
            prescan(b"<div title='a>b <meta charset=koi8-r>'><meta charset=iso-8859-2>"),
            Some(encoding_rs::ISO_8859_2)
        );
    }

    #[test]
    fn bom_wins() {
        let mut body = vec![0xef, 0xbb, 0xbf];
        body.extend_from_slice("<a href=https://bücher.de/>x</a>".as_bytes());
        let got = hosts_with(&body, Some("text/html; charset=windows-1252"), &page(), 10);
        assert_eq!(got, ["xn--bcher-kva.de"]);
        let mut utf16 = vec![0xff, 0xfe];
        for unit in "<a href=https://x.example.org/>".encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        assert_eq!(hosts_with(&utf16, None, &page(), 10), ["x.example.org"]);
    }
}

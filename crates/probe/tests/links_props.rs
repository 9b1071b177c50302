//! Property tests for link extraction (SPEC §3.4): random bytes and generated
//! hostile HTML never panic, and every result is a bounded, duplicate-free list
//! of hosts that are already in normal form.

use std::collections::HashSet;

use proptest::prelude::*;
use spyder_model::{HostName, NameKind};
use spyder_probe::links::link_hosts;
use url::Url;

fn page_url() -> Url {
    Url::parse("https://www.example.com/dir/page.html").expect("static URL parses")
}

/// The invariants every result must satisfy.
fn check(hosts: &[HostName], max_hosts: usize) -> Result<(), TestCaseError> {
    prop_assert!(
        hosts.len() <= max_hosts,
        "{} hosts > {max_hosts}",
        hosts.len()
    );
    let mut seen = HashSet::new();
    for host in hosts {
        prop_assert!(seen.insert(host.as_str()), "duplicate {host}");
        let again = HostName::parse(host.as_str(), NameKind::Strict);
        prop_assert_eq!(
            again.as_ref(),
            Ok(host),
            "{} does not re-parse unchanged",
            host
        );
        prop_assert!(
            host.as_str().parse::<std::net::IpAddr>().is_err(),
            "IP literal {host}"
        );
    }
    Ok(())
}

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::sample::select(vec![
        None,
        Some("text/html"),
        Some("text/html; charset=utf-8"),
        Some("text/html; charset=windows-1252"),
        Some("text/html; charset=\"iso-8859-1\""),
        Some("text/html; charset=utf-16"),
        Some("text/html; charset=shift_jis"),
        Some("text/html; charset=bogus"),
        Some("text/html; charset="),
        Some(";;charset=\"unterminated"),
    ])
}

/// Link-like values: absolute, relative, protocol-relative, other schemes, IP
/// literals, IDNs, broken escapes and junk.
fn link_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "https?://[a-z0-9]{1,8}(\\.[a-z0-9-]{1,8}){0,3}\\.(com|org|de|xn--p1ai|123|localhost)/?[a-z]{0,4}",
        "//[a-zA-Z0-9äöü_.-]{1,20}/x",
        "(HTTP|HtTpS|javascript|mailto|data|tel|ftp|ws):[ -~]{0,20}",
        "https?://\\[?[0-9a-f:.]{1,20}\\]?/",
        "https?://[a-z]{1,6}%[0-9A-Fa-f]{0,2}[a-z]{0,4}\\.com/",
        "[ -~]{0,30}",
        "[\\PC]{0,12}",
        "(\\.\\./)*[a-z]{0,5}(\\?[a-z=&]{0,8})?(#[a-z]{0,4})?",
        Just(String::new()),
    ]
}

/// One fragment of hostile HTML.
fn fragment() -> impl Strategy<Value = String> {
    let tag = prop::sample::select(vec![
        "a",
        "A",
        "link",
        "area",
        "script",
        "SCRIPT",
        "img",
        "iframe",
        "source",
        "form",
        "meta",
        "base",
        "style",
        "title",
        "textarea",
        "xmp",
        "noembed",
        "noframes",
        "plaintext",
        "svg",
        "math",
        "template",
        "noscript",
        "div",
        "a\0",
    ]);
    let attr = prop::sample::select(vec![
        "href",
        "HREF",
        "src",
        "srcset",
        "action",
        "content",
        "http-equiv",
        "charset",
        "x",
    ]);
    let quote = prop::sample::select(vec!["", "'", "\""]);
    let attrs = prop::collection::vec((attr, quote, link_value()), 0..4).prop_map(|attrs| {
        attrs
            .into_iter()
            .map(|(name, q, value)| format!(" {name}={q}{value}{q}"))
            .collect::<String>()
    });
    prop_oneof![
        4 => (tag.clone(), attrs, any::<bool>()).prop_map(|(t, a, close)| {
            format!("<{t}{a}{}>", if close { "/" } else { "" })
        }),
        2 => tag.prop_map(|t| format!("</{t}>")),
        1 => link_value().prop_map(|v| format!("<meta http-equiv=refresh content=\"0; url={v}\">")),
        1 => prop::collection::vec(link_value(), 0..4)
            .prop_map(|v| format!("<img srcset=\"{}\">", v.join(" 1x, "))),
        1 => prop::sample::select(vec![
            "<!--", "-->", "<!doctype html>", "<![CDATA[", "]]>", "&amp;", "&#0;", "&#x110000;",
            "<", ">", "\0", "\r\n", "\u{feff}", "<meta charset=windows-1252>", "</script",
            "<?xml?>", "<a href=", "'", "\"",
        ])
        .prop_map(str::to_owned),
        1 => "[\\PC]{0,20}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(
        body in prop::collection::vec(any::<u8>(), 0..4096),
        ct in content_type(),
        max in 0usize..20,
    ) {
        let hosts = link_hosts(&body, ct, &page_url(), max);
        check(&hosts, max)?;
    }

    #[test]
    fn hostile_html(
        fragments in prop::collection::vec(fragment(), 0..60),
        ct in content_type(),
        max in 0usize..20,
        cut in any::<prop::sample::Index>(),
    ) {
        let html = fragments.concat();
        let hosts = link_hosts(html.as_bytes(), ct, &page_url(), max);
        check(&hosts, max)?;
        // A truncated document (possibly mid-character) is just as safe.
        let bytes = html.as_bytes();
        let truncated = &bytes[..cut.index(bytes.len() + 1)];
        let hosts = link_hosts(truncated, ct, &page_url(), max);
        check(&hosts, max)?;
    }

    #[test]
    fn plain_links_come_back_in_first_seen_order(
        labels in prop::collection::vec("[a-z]{1,3}", 0..40),
        max in 0usize..30,
    ) {
        let html: String = labels
            .iter()
            .map(|l| format!("<p><a href=\"https://{l}.example.org/p\">{l}</a>\n"))
            .collect();
        let hosts = link_hosts(html.as_bytes(), Some("text/html"), &page_url(), max);
        check(&hosts, max)?;
        let mut expected: Vec<String> = Vec::new();
        for l in &labels {
            let host = format!("{l}.example.org");
            if !expected.contains(&host) {
                expected.push(host);
            }
        }
        expected.truncate(max);
        let got: Vec<String> = hosts.into_iter().map(HostName::into_string).collect();
        prop_assert_eq!(got, expected);
    }
}

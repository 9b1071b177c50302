//! Property tests for link extraction (SPEC §3.4): random bytes and generated
//! hostile HTML never panic, and every result is a bounded, duplicate-free list
//! of hosts that are already in normal form. Links whose host the extractor reads
//! without the URL parser give exactly the host `Url::join` gives.

use std::collections::HashSet;

use proptest::prelude::*;
use spyder_model::{HostName, NameKind};
use spyder_probe::links::link_hosts;
use url::{Host, Url};

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

// ---------------------------------------------------------------------------------
// The extractor reads most links' hosts straight from their text; the URL parser
// is the reference it must agree with.

/// Leading text the URL parser trims (C0 controls and space) or drops (tabs and
/// newlines).
const LEADS: &[&str] = &["", " ", "\t", "\u{1}", "\n ", " \r\n"];

/// How a link may start: schemes of every case, slash forms, near misses.
const STARTS: &[&str] = &[
    "http://",
    "https://",
    "HTTP://",
    "HtTpS://",
    "http:",
    "https:",
    "http:/",
    "https:/",
    "http:\\\\",
    "http:/\\",
    "https:\\/",
    "http:///",
    "//",
    "\\\\",
    "/\\",
    "\\/",
    "///",
    "////",
    "//\\",
    "\\\\\\",
    "/",
    "",
    "./",
    "../",
    "ftp://",
    "ws://",
    "javascript:",
    "mailto:",
    "data:",
    "tel:",
    "ht\ttp://",
    "http:/\t/",
    "http:\n//",
    "h\ntps://",
    "1http://",
    "http+x://",
    "web+http://",
    "http::",
    "http: //",
    " http://",
    "http://\t",
    "https://:@",
    "?",
    "#",
    "a:",
    "x-y.z+1:",
];

const USERINFOS: &[&str] = &[
    "", "", "", "user@", "u:p@", "@", "a@b@", "us%40er@", "x:y:z@", "[::1]@", "ü@", "a/b@", "a?b@",
    "a#b@", "a\\b@", "U\tser@", "Ab-@",
];

/// Whole hosts the generated labels rarely hit: IDNs, escapes, IP-like and bad
/// names.
const ODD_HOSTS: &[&str] = &[
    "xn--bcher-kva.de",
    "XN--BCHER-KVA.de",
    "xn--zz.de",
    "xn--.de",
    "a.xn--p1ai",
    "bücher.de",
    "BÜCHER.DE",
    "b%C3%BCcher.de",
    "ex%61mple.com",
    "%41.com",
    "1.2.3.4",
    "0x7f",
    "0x",
    "0X1F",
    "010",
    "09",
    "1.0x7f",
    "1.0X",
    "a.0x1g",
    "example.123",
    "example.123.",
    "a.09",
    "a..b",
    ".",
    "..",
    "",
    "[2001:db8::1]",
    "[::1",
    "a_b.com",
    "ex\tample.com",
    "ex\nample.com",
    "-a.com",
    "a-.com",
    "a--b.com",
    "ab--cd.com",
    "localhost",
    "LOCALHOST.",
    "a.b.c.d.e",
    "日本.jp",
    "a\u{ad}b.com",
    "ａｂｃ.com",
    "a b.com",
    "a<b.com",
    "a^b.com",
    "a|b.com",
];

const PORTS: &[&str] = &[
    "",
    "",
    "",
    ":",
    ":80",
    ":443",
    ":65535",
    ":65536",
    ":0080",
    ":99999999999",
    ":x",
    ":8080:1",
    "::",
    ":8\t0",
    ":-1",
];

const TAILS: &[&str] = &[
    "",
    "",
    "/",
    "/x?y#z",
    "?q",
    "#f",
    "\\path",
    "/a b",
    "/\t",
    " ",
    "\u{1}",
    "/%zz",
    "?@x.org",
    "#@x.org",
    "/@x.org",
    "\\@x.org",
    ".",
    "@x.org/",
    ":80@x.org/",
];

/// One generated host: random labels (any case, digits, hyphens) or an odd one.
fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (
            prop::collection::vec("[a-zA-Z0-9-]{1,8}", 1..4),
            prop::sample::select(vec!["com", "ORG", "de", "xn--p1ai", "123", "0x1f", "a1", ""]),
            any::<bool>(),
        )
            .prop_map(|(labels, tld, dot)| {
                let mut host = labels.join(".");
                if !tld.is_empty() {
                    host.push('.');
                    host.push_str(tld);
                }
                if dot {
                    host.push('.');
                }
                host
            }),
        2 => prop::sample::select(ODD_HOSTS).prop_map(str::to_owned),
    ]
}

/// One generated link: assembled from the parts above, relative, or arbitrary.
fn link() -> impl Strategy<Value = String> {
    let assembled = (
        prop::sample::select(LEADS),
        prop::sample::select(STARTS),
        prop::sample::select(USERINFOS),
        host(),
        prop::sample::select(PORTS),
        prop::sample::select(TAILS),
        prop::sample::select(LEADS),
    )
        .prop_map(|(lead, start, user, host, port, tail, trail)| {
            format!("{lead}{start}{user}{host}{port}{tail}{trail}")
        });
    prop_oneof![
        6 => assembled,
        1 => "(\\.\\./)*[a-z]{0,5}(\\?[a-z=&]{0,8})?(#[a-z]{0,4})?",
        1 => "[a-zA-Z0-9:/\\\\@.%?#\\[\\] \t\n_-]{0,24}",
        1 => "(https?:)?[/\\\\]{0,3}[a-zA-Z0-9:@.%\\[\\]-]{0,16}[/?#\\\\]?",
        1 => "[ -~]{0,30}",
        1 => "[\\PC]{0,12}",
    ]
}

/// A second link: unrelated, or the first one with something after it (the same
/// host, or text that changes it).
fn second_link(first: String) -> impl Strategy<Value = String> {
    prop_oneof![
        link(),
        prop::sample::select(vec![
            "",
            "/",
            "/more",
            "?q",
            "#f",
            "\\x",
            ".evil.org/",
            "@evil.org/",
            ":81/",
            "x/",
            "\t/",
            " ",
            "-a.org",
            "%2e",
        ])
        .prop_map(move |tail| format!("{first}{tail}")),
    ]
}

/// `<base href>`s to put before the links: none, another http(s) host, other
/// schemes, an IP address, a relative one and an unusable one.
const BASES: &[Option<&str>] = &[
    None,
    None,
    Some("https://Other.Example.net/dir/"),
    Some("HTTP://xn--bcher-kva.de./x"),
    Some("ftp://files.example.org/"),
    Some("http://192.168.1.1/"),
    Some("/relative/"),
    Some("javascript:void(0)"),
    Some("mailto:someone@example.org"),
];

/// `value` as a double-quoted attribute value, and the string the tokenizer
/// will hand back for it.
fn attribute(value: &str) -> (String, String) {
    let mut html = String::new();
    let mut decoded = String::new();
    for c in value.chars() {
        match c {
            '&' | '"' | '\u{0}'..='\u{1f}' | '\u{7f}' => {
                html.push_str(&format!("&#{};", u32::from(c)));
            }
            _ => html.push(c),
        }
        decoded.push(if c == '\0' { '\u{fffd}' } else { c });
    }
    (html, decoded)
}

/// `link` resolved against `base` by the URL standard, with the URL parser.
///
/// The `url` crate fails on a link without a scheme that starts with more than
/// two slashes (`///host`) where the standard skips them all before the host
/// of an http(s) URL; with the base's scheme written in front (which, the
/// scheme being the base's, means the same) it skips them.
fn standard_join(base: &Url, link: &str) -> Option<Url> {
    let trimmed = link.trim_matches(|c: char| c <= ' ');
    if matches!(base.scheme(), "http" | "https") && trimmed.starts_with(['/', '\\']) {
        return base.join(&format!("{}:{trimmed}", base.scheme())).ok();
    }
    base.join(link).ok()
}

/// What the extractor must report for a page of `links` with `<base href=base>`
/// before link number `base_at` (if any), worked out with the URL parser alone:
/// every link resolved by [`standard_join`]; links before the base against the page
/// URL with a stand-in host that marks "the base's host, still unknown"; http(s)
/// domain hosts that pass the strict name rules; de-duplicated, first-seen order,
/// the stand-in's place taken by the base's host.
fn reference_hosts(page: &Url, base: Option<(usize, &str)>, links: &[String]) -> Vec<String> {
    const STAND_IN: &str = "pending.invalid";
    let mut pending_url = page.clone();
    pending_url
        .set_host(Some(STAND_IN))
        .expect("an http(s) URL takes any domain");
    let domain_of = |url: &Url| match url.host() {
        Some(Host::Domain(domain)) if matches!(url.scheme(), "http" | "https") => {
            HostName::parse(domain, NameKind::Strict)
                .ok()
                .map(HostName::into_string)
        }
        _ => None,
    };
    // `None` is the stand-in's slot.
    let mut slots: Vec<Option<String>> = Vec::new();
    let mut resolved_base: Option<Url> = None;
    let resolve = |slots: &mut Vec<Option<String>>, host: Option<String>| {
        let Some(index) = slots.iter().position(Option::is_none) else {
            return;
        };
        match host {
            Some(host) => match slots.iter().position(|s| s.as_deref() == Some(&*host)) {
                Some(earlier) if earlier < index => {
                    slots.remove(index);
                }
                Some(later) => {
                    slots.remove(later);
                    slots[index] = Some(host);
                }
                None => slots[index] = Some(host),
            },
            None => {
                slots.remove(index);
            }
        }
    };
    for (i, link) in links.iter().enumerate() {
        if let Some((at, href)) = base
            && at == i
        {
            let url = standard_join(page, href)
                .filter(|url| !matches!(url.scheme(), "data" | "javascript"))
                .unwrap_or_else(|| page.clone());
            resolve(&mut slots, domain_of(&url));
            resolved_base = Some(url);
        }
        let Some(url) = standard_join(resolved_base.as_ref().unwrap_or(&pending_url), link) else {
            continue;
        };
        if resolved_base.is_none()
            && url.host_str() == Some(STAND_IN)
            && matches!(url.scheme(), "http" | "https")
        {
            if !slots.contains(&None) {
                slots.push(None);
            }
            continue;
        }
        if let Some(host) = domain_of(&url)
            && !slots.contains(&Some(host.clone()))
        {
            slots.push(Some(host));
        }
    }
    if let Some((at, href)) = base
        && at >= links.len()
    {
        let url = standard_join(page, href)
            .filter(|url| !matches!(url.scheme(), "data" | "javascript"))
            .unwrap_or_else(|| page.clone());
        resolve(&mut slots, domain_of(&url));
    }
    resolve(&mut slots, domain_of(page));
    slots.into_iter().flatten().collect()
}

/// The page `link_hosts` sees and what it returns (at most `max_hosts`).
fn extracted_hosts(
    page: &Url,
    base: Option<(usize, &str)>,
    links: &[String],
    max_hosts: usize,
) -> (Vec<String>, String) {
    let mut html = String::new();
    let base_tag = |html: &mut String, href: &str| {
        html.push_str(&format!("<base href=\"{}\">", attribute(href).0));
    };
    for (i, link) in links.iter().enumerate() {
        if let Some((at, href)) = base
            && at == i
        {
            base_tag(&mut html, href);
        }
        html.push_str(&format!("<a href=\"{}\">x</a>", attribute(link).0));
    }
    if let Some((at, href)) = base
        && at >= links.len()
    {
        base_tag(&mut html, href);
    }
    let hosts = link_hosts(
        html.as_bytes(),
        Some("text/html; charset=utf-8"),
        page,
        max_hosts,
    )
    .into_iter()
    .map(HostName::into_string)
    .collect();
    (hosts, html)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn hosts_read_from_link_text_match_the_url_parser(
        (first, second) in link().prop_flat_map(|first| (Just(first.clone()), second_link(first))),
        third in link(),
        count in 1usize..=3,
        base in prop::sample::select(BASES),
        base_at in 0usize..=3,
        http_page in any::<bool>(),
        max in 1usize..=3,
    ) {
        let page = if http_page {
            Url::parse("http://www.example.com/dir/page.html")
        } else {
            Url::parse("https://WWW.Example.com:8443/dir/page.html")
        }
        .expect("static URL parses");
        let links: Vec<String> = [first, second, third][..count]
            .iter()
            .map(|link| attribute(link).1)
            .collect();
        let base = base.map(|href| (base_at, href));
        let mut expected = reference_hosts(&page, base, &links);
        expected.truncate(max);
        let (got, html) = extracted_hosts(&page, base, &links, max);
        prop_assert_eq!(got, expected, "page {} with {}", page, html);
    }
}

#[test]
fn reference_cases_match_the_url_parser() {
    let page = Url::parse("https://www.example.com/dir/page.html").expect("static URL parses");
    let cases = [
        "https://User:Pw@Host.Example.ORG:443/x",
        "HTTP://a.example.org.",
        "//b.example.org/x",
        "\\\\c.example.org\\x",
        "/\\d.example.org/",
        "http:\\\\e.example.org",
        "https:/f.example.org",
        "http:g.example.org",
        "http://1.0x7f/",
        "http://0x7f.example/",
        "http://example.0x7f/",
        "http://h.example.org:65536/",
        "http://i.example.org:/",
        "http://xn--bcher-kva.de/",
        "http://XN--zz.de/",
        "http://ex%61mple.org/",
        "http://a@b@j.example.org/",
        "http://k.example.org@evil.example.org/",
        "  \u{1}https://l.example.org/ \u{1}",
        "ht\ttps://m.example.org/",
        "https://n.exa\tmple.org/",
        "/\t/o.example.org/",
        "///s.example.org/",
        "//\\t.example.org/",
        "\\/\\/u.example.org/",
        "/\t//v.example.org/",
        "?q",
        "#frag",
        "",
        "mailto:p@q.example.org",
    ];
    for case in cases {
        let links = [case.to_owned()];
        let (got, html) = extracted_hosts(&page, None, &links, 10);
        assert_eq!(got, reference_hosts(&page, None, &links), "{html}");
    }
    // A protocol-relative link means another scheme once a base says so.
    let links = [
        "//r.example.org/".to_owned(),
        "//r.example.org/x".to_owned(),
    ];
    let base = Some((1, "ftp://files.example.org/"));
    let (got, html) = extracted_hosts(&page, base, &links, 10);
    assert_eq!(got, reference_hosts(&page, base, &links), "{html}");
    assert_eq!(got, ["r.example.org"], "{html}");
}

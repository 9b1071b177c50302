//! A web page's bytes through the link extractor: charset sniffing (BOM, Content-Type,
//! `<meta>` prescan), html5ever's tokenizer and our sink (`<base href>`, srcset,
//! meta refresh, the URL shortcut and `Url::join`).
//!
//! Input: one selector byte (Content-Type, page URL, host limit), then the body.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use spyder_probe::links::link_hosts;
use spyder_probe::model::{HostName, NameKind};
use url::Url;

const CONTENT_TYPES: [Option<&str>; 8] = [
    None,
    Some("text/html"),
    Some("text/html; charset=utf-8"),
    Some("text/html; charset=windows-1252"),
    Some("text/html; charset=shift_jis"),
    Some("text/html; charset=utf-16le"),
    Some("text/html;charset=\"ISO-2022-JP\""),
    Some("application/xhtml+xml; charset=gb18030"),
];

const PAGES: [&str; 4] = [
    "https://example.com/",
    "https://www.example.co.uk/dir/page.html?q=1#frag",
    "http://example.org:8080/a/b/",
    "https://xn--bcher-kva.example/",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(selector & 7)];
    let page = Url::parse(PAGES[usize::from((selector >> 3) & 3)]).expect("a valid page URL");
    let max_hosts = match selector >> 5 {
        0 => 1,
        1 => 3,
        _ => 1000,
    };
    let hosts = link_hosts(body, content_type, &page, max_hosts);
    assert!(hosts.len() <= max_hosts, "more hosts than the limit");
    let mut seen = HashSet::new();
    for host in &hosts {
        assert!(seen.insert(host.as_str()), "duplicate host {host}");
        assert!(
            HostName::parse(host.as_str(), NameKind::Strict).is_ok(),
            "host {host} is not a strict host name"
        );
    }
});

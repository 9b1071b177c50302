//! The WHATWG URL tests (`urltestdata.json`) against the probe's link-host
//! extraction (SPEC §3.4).
//!
//! Each case is a link: its input is the `href` of the one `<a>` of a page
//! whose URL is the case's base (`about:blank` when it has none, which, like no
//! base, lets only a link with a scheme resolve). What the standard says the
//! link's host is becomes the host set [`link_hosts`] must return:
//!
//! - a failure: no host;
//! - a scheme other than http(s): no host by design (only http(s) links
//!   count, SPEC §3.4);
//! - an IP address host: no host by design (IP literals are never domain
//!   nodes, SPEC §3.3);
//! - a domain that fails spyder's strict link-host rules (LDH, SPEC §3.3): no
//!   host by design;
//! - else that domain in spyder's normal form.
//!
//! Inputs holding U+0000 cannot be written in an HTML attribute (the tokenizer
//! turns it into U+FFFD) and are left out, counted. `url_expected_failures.txt`
//! lists the cases the `url` crate itself gets wrong; a failing case listed
//! there says so.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::Value;
use spyder_model::{HostName, NameKind};
use spyder_probe::links::link_hosts;
use url::Url;

use crate::expected::Suite;
use crate::support::{self, Report, Verdict};

#[test]
fn whatwg_url_cases_as_links() {
    let Some(dir) = support::data_dir() else {
        return;
    };
    let data = support::read_json(&dir, "urltestdata.json");
    let url_crate_fails: HashSet<String> = support::read(&dir, "url_expected_failures.txt")
        .lines()
        .map(str::to_owned)
        .collect();
    let cases = data.as_array().expect("urltestdata.json is an array");
    let mut report = Report::new(Suite::Url);
    let mut not_html = 0;
    for case in cases.iter().filter(|c| c.is_object()) {
        let input = case["input"].as_str().expect("every case has an input");
        let base = case["base"].as_str();
        let id = case_id(input, base);
        if input.contains('\0') {
            not_html += 1;
            continue;
        }
        let page = Url::parse(base.unwrap_or("about:blank"))
            .unwrap_or_else(|e| panic!("{id}: the base does not parse: {e}"));
        let html = format!("<a href=\"{}\">x</a>", escape(input));
        let got: Vec<String> = link_hosts(html.as_bytes(), None, &page, 10)
            .into_iter()
            .map(HostName::into_string)
            .collect();
        let (want, rule) = expected_hosts(case);
        let verdict = match (got == want, rule) {
            (true, None) => Verdict::Pass,
            (true, Some(rule)) => Verdict::ByDesign { rule },
            (false, _) => {
                let known = if url_crate_fails.contains(&id) {
                    " (listed in url_expected_failures.txt: the url crate's own deviation)"
                } else {
                    ""
                };
                Verdict::Differs {
                    detail: format!(
                        "hosts {got:?}, the standard's result {} means {want:?}{known}",
                        case.get("href")
                            .map_or("failure".to_owned(), Value::to_string)
                    ),
                }
            }
        };
        report.record(&id, verdict);
    }
    println!("Url conformance: {not_html} cases left out (U+0000 in the input)");
    report.finish();
}

/// The host set the standard's result for `case` means, and the spec rule that
/// mapped it when it is not the plain host.
fn expected_hosts(case: &Value) -> (Vec<String>, Option<&'static str>) {
    if case["failure"].as_bool() == Some(true) {
        return (Vec::new(), None);
    }
    let protocol = case["protocol"].as_str().expect("a result has a protocol");
    if !matches!(protocol, "http:" | "https:") {
        return (Vec::new(), Some("not an http(s) link (SPEC §3.4)"));
    }
    let hostname = case["hostname"].as_str().expect("a result has a hostname");
    if hostname.starts_with('[') || hostname.parse::<Ipv4Addr>().is_ok() {
        return (Vec::new(), Some("IP-literal host (SPEC §3.3)"));
    }
    match HostName::parse(hostname, NameKind::Strict) {
        Ok(host) => (vec![host.into_string()], None),
        Err(_) => (Vec::new(), Some("not a strict LDH host name (SPEC §3.3)")),
    }
}

/// How `url_expected_failures.txt` names a case: `<input>` or `<input> against
/// <base>`, with `\`, tab and newlines escaped as in Rust.
fn case_id(input: &str, base: Option<&str>) -> String {
    let show = |s: &str| {
        s.chars()
            .map(|c| match c {
                '\\' => "\\\\".to_owned(),
                '\t' => "\\t".to_owned(),
                '\n' => "\\n".to_owned(),
                '\r' => "\\r".to_owned(),
                c => c.to_string(),
            })
            .collect::<String>()
    };
    match base {
        Some(base) => format!("<{}> against <{}>", show(input), show(base)),
        None => format!("<{}>", show(input)),
    }
}

/// `value` as the text of a double-quoted HTML attribute.
fn escape(value: &str) -> String {
    value.replace('&', "&amp;").replace('"', "&quot;")
}

//! Google's robotstxt test vectors (`robots_cases.json`, extracted from
//! `robots_test.cc`) against the probe's robots.txt rules (SPEC §3.6).
//!
//! Each case asks whether robots.txt `robotstxt` lets user agent `ua` fetch
//! `url`. spyder answers with [`RobotsRules::from_response`] for a 200 response
//! with that body and `ua` as its User-Agent, asked about the URL's path, query
//! and parameters the way Google's `GetPathParamsQuery` cuts them (its port,
//! [`path_params_query`], is checked against the file's `path_selftest`).

use serde_json::Value;
use spyder_probe::robots::RobotsRules;

use crate::expected::Suite;
use crate::support::{self, Report, Verdict};

#[test]
fn google_robotstxt_cases() {
    let Some(dir) = support::data_dir() else {
        return;
    };
    let data = support::read_json(&dir, "robots_cases.json");

    let selftest = data["path_selftest"]
        .as_array()
        .expect("robots_cases.json has path_selftest");
    assert!(!selftest.is_empty());
    for pair in selftest {
        let (url, path) = (str_at(pair, 0), str_at(pair, 1));
        assert_eq!(path_params_query(url), path, "GetPathParamsQuery({url:?})");
    }

    let cases = data["cases"]
        .as_array()
        .expect("robots_cases.json has cases");
    let mut report = Report::new(Suite::Robots);
    for case in cases {
        let id = case["id"].as_str().expect("every case has an id");
        let body = match (&case["robotstxt"], case["robotstxt_hex"].as_str()) {
            (Value::String(text), _) => text.as_bytes().to_vec(),
            (Value::Null, Some(hex)) => hex::decode(hex).expect("robotstxt_hex is hex"),
            _ => panic!("{id}: no robots.txt body"),
        };
        let ua = case["ua"].as_str().expect("every case has a ua");
        let url = case["url"].as_str().expect("every case has a url");
        let expected = case["expected"].as_bool().expect("expected is a bool");
        let path = path_params_query(url);
        let got = RobotsRules::from_response(200, &body, ua).allows(&path);
        let verdict = if got == expected {
            Verdict::Pass
        } else {
            Verdict::Differs {
                detail: format!(
                    "{} (line {}): ua {ua:?} path {:?} allowed={got}, expected {expected}; \
                     robots.txt {:?}",
                    case["test"].as_str().unwrap_or("?"),
                    case["line"],
                    abbreviated(path.as_bytes()),
                    abbreviated(&body),
                ),
            }
        };
        report.record(id, verdict);
    }
    report.finish();
}

fn str_at(pair: &Value, index: usize) -> &str {
    pair[index]
        .as_str()
        .expect("path_selftest holds [url, path] pairs")
}

fn abbreviated(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.chars().count() > 100 {
        format!(
            "{}… ({} bytes)",
            text.chars().take(100).collect::<String>(),
            body.len()
        )
    } else {
        text.into_owned()
    }
}

/// Google's `GetPathParamsQuery` (robots.cc): the path, parameters and query of
/// `url`, without the fragment, starting with `/` (`/` when there is none).
/// Two leading slashes are skipped; `://` counts as the end of a scheme only
/// before the first `/`, `?` or `;`.
fn path_params_query(url: &str) -> String {
    let find_any = |from: usize, set: &[u8]| {
        url.as_bytes()[from.min(url.len())..]
            .iter()
            .position(|b| set.contains(b))
            .map(|i| i + from)
    };
    let search_start = if url.starts_with("//") { 2 } else { 0 };
    let early_path = find_any(search_start, b"/?;");
    let protocol_end = url
        .get(search_start..)
        .and_then(|rest| rest.find("://"))
        .map(|i| i + search_start)
        .filter(|&end| early_path.is_none_or(|early| early >= end));
    let path_from = protocol_end.map_or(search_start, |end| end + 3);
    let Some(path_start) = find_any(path_from, b"/?;") else {
        return "/".to_owned();
    };
    let hash = find_any(search_start, b"#");
    if hash.is_some_and(|hash| hash < path_start) {
        return "/".to_owned();
    }
    let path = &url[path_start..hash.unwrap_or(url.len())];
    if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    }
}

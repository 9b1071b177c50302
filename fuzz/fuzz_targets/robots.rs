//! A robots.txt body through the parser (`texting_robots`, our product token) and the
//! matcher, as the crawl uses them.
//!
//! Input: the first line is a path to check (with query), the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyder_probe::robots::RobotsRules;

const AGENTS: [&str; 3] = [
    "SPYDERProbe/1.0 (+https://github.com/gustycube/spyder)",
    "spyderprobe",
    "",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (path, body) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b"/"[..], rest),
    };
    let path = String::from_utf8_lossy(path);
    let agent = AGENTS[usize::from(selector % 3)];
    let rules = RobotsRules::from_response(200, body, agent);
    for p in [path.as_ref(), "/", "/robots.txt", "/index.html?x=1", ""] {
        let _ = rules.allows(p);
    }
});

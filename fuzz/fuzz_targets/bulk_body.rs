//! The body of `POST /api/v1/domains/bulk`: a JSON array of strings, or `text/plain`
//! lines (BOM, CRLF, comments, over-long lines), each entry normalised as a host
//! (`spyder_health::parse_bulk_body`).
//!
//! Input: one selector byte (bit 0: `text/plain` or `application/json`), then the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyder_health::parse_bulk_body;
use spyder_probe::model::HostName;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let content_type = if selector & 1 == 0 {
        "text/plain; charset=utf-8"
    } else {
        "application/json"
    };
    let Ok(entries) = parse_bulk_body(body, content_type) else {
        return;
    };
    if selector & 1 == 0 {
        assert!(entries.len() <= body.iter().filter(|&&b| b == b'\n').count() + 1);
    }
    for (value, parsed) in &entries {
        // Quoted values are bounded (over-long ones are cut to a preview).
        // (Invalid UTF-8 is quoted lossily: one byte may become three.)
        assert!(value.len() <= 3 * 4096, "over-long value quoted whole");
        if let Ok(host) = parsed {
            assert_eq!(
                HostName::from_input(host.as_str()).ok().as_ref(),
                Some(host)
            );
        }
    }
});

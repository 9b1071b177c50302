//! `POST /api/v1/domains` and `POST /api/v1/domains/bulk` (SPEC §3.12): names
//! submitted to the run loop's queue, one or many.

use bytes::Bytes;
use http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use spyder_model::{
    HostError, HostName, ListLine, MAX_LINE_BYTES, TOO_LONG_PREVIEW_BYTES, list_line,
};

use super::body::{HttpResponse, json_response, parse_json};
use crate::state::Served;
use crate::{ApiError, EnqueueError};

/// Most bulk errors listed in a response.
const MAX_BULK_ERRORS: usize = 100;

#[derive(Serialize)]
struct AcceptedBody {
    accepted: bool,
    host: HostName,
}

pub(super) async fn submit_domain(
    served: &Served,
    body: &[u8],
    traceparent: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let value: Value = parse_json(body)?;
    let Some(raw) = value.get("host").and_then(Value::as_str) else {
        return Err(ApiError::bad_request(
            r#"body must be a JSON object {"host":"<name>"}"#,
        ));
    };
    let host = HostName::from_input(raw)
        .map_err(|e| ApiError::invalid_host(format!("invalid host {:?}: {e}", quote(raw))))?;
    let control = &served.state.inner.control;
    match traceparent {
        None => control.enqueue(host.clone()).await,
        Some(tp) => control
            .enqueue_traced(vec![host.clone()], tp)
            .await
            .pop()
            .unwrap_or_else(|| Err(EnqueueError::Unavailable("no result".to_owned()))),
    }
    .map_err(enqueue_error)?;
    Ok(json_response(
        StatusCode::ACCEPTED,
        &AcceptedBody {
            accepted: true,
            host,
        },
    ))
}

fn enqueue_error(error: EnqueueError) -> ApiError {
    match error {
        EnqueueError::QueueFull => ApiError::queue_full(),
        EnqueueError::Unavailable(message) => ApiError::unavailable(message),
    }
}

#[derive(Serialize)]
struct BulkBody {
    accepted: usize,
    rejected: usize,
    total: usize,
    errors: Vec<BulkError>,
}

#[derive(Serialize)]
struct BulkError {
    index: usize,
    host: String,
    error: String,
}

/// One submitted entry: its text (for error messages) and what it parsed to.
struct Entry {
    value: String,
    parsed: Result<HostName, HostError>,
}

pub(super) async fn submit_bulk(
    served: &Served,
    body: Bytes,
    content_type: &str,
    traceparent: Option<String>,
) -> Result<HttpResponse, ApiError> {
    // Up to 10 MiB of names: parse them off the async workers.
    let text = is_text_plain(content_type);
    let entries = tokio::task::spawn_blocking(move || {
        if text {
            Ok(text_entries(&body))
        } else {
            json_entries(&body)
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("parsing the body failed: {e}")))??;
    let total = entries.len();
    let mut errors: Vec<BulkError> = Vec::new();
    let mut rejected = 0usize;
    let mut valid: Vec<(usize, HostName)> = Vec::new();
    for (index, entry) in entries.into_iter().enumerate() {
        match entry.parsed {
            Ok(host) => valid.push((index, host)),
            Err(e) => {
                rejected += 1;
                errors.push(BulkError {
                    index,
                    host: entry.value,
                    error: e.to_string(),
                });
            }
        }
    }
    let (indexes, hosts): (Vec<usize>, Vec<HostName>) = valid.into_iter().unzip();
    let results = if hosts.is_empty() {
        Vec::new()
    } else {
        let control = &served.state.inner.control;
        match traceparent {
            None => control.enqueue_many(hosts.clone()).await,
            Some(tp) => control.enqueue_traced(hosts.clone(), tp).await,
        }
    };
    let mut accepted = 0usize;
    let mut first_queue_error: Option<EnqueueError> = None;
    for ((index, host), result) in indexes
        .into_iter()
        .zip(hosts)
        .zip(
            results
                .into_iter()
                .chain(std::iter::repeat(Err(EnqueueError::Unavailable(
                    "not queued".to_owned(),
                )))),
        )
    {
        match result {
            Ok(()) => accepted += 1,
            Err(e) => {
                rejected += 1;
                errors.push(BulkError {
                    index,
                    host: host.into_string(),
                    error: e.to_string(),
                });
                first_queue_error.get_or_insert(e);
            }
        }
    }
    // Nothing got in because of the queue (not because of bad names): answer like the
    // single-domain endpoint so the client retries the whole request.
    if accepted == 0
        && let Some(error) = first_queue_error
    {
        return Err(enqueue_error(error));
    }
    errors.sort_by_key(|e| e.index);
    errors.truncate(MAX_BULK_ERRORS);
    Ok(json_response(
        StatusCode::OK,
        &BulkBody {
            accepted,
            rejected,
            total,
            errors,
        },
    ))
}

fn is_text_plain(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("text/plain")
}

/// A JSON array of strings, every element one entry.
fn json_entries(body: &[u8]) -> Result<Vec<Entry>, ApiError> {
    let shape =
        || ApiError::bad_request("body must be a JSON array of strings, or text/plain lines");
    let Value::Array(items) = parse_json::<Value>(body)? else {
        return Err(shape());
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::String(text) => Ok(Entry {
                parsed: HostName::from_input(&text),
                value: quote(&text),
            }),
            _ => Err(shape()),
        })
        .collect()
}

/// One bulk entry as [`parse_bulk_body`] gives it: the text quoted back, and its host.
#[doc(hidden)]
pub type BulkEntry = (String, Result<HostName, HostError>);

/// The body parsing of `POST /api/v1/domains/bulk`, for the fuzz targets (`fuzz/`):
/// each entry's text as quoted back to the client and its host or why not, or the
/// `400` a malformed JSON body gets. Not part of the API.
#[doc(hidden)]
pub fn parse_bulk_body(body: &[u8], content_type: &str) -> Result<Vec<BulkEntry>, ApiError> {
    let entries = if is_text_plain(content_type) {
        text_entries(body)
    } else {
        json_entries(body)?
    };
    Ok(entries.into_iter().map(|e| (e.value, e.parsed)).collect())
}

/// `text/plain` lines, read like the input file (one rule:
/// [`spyder_model::list_line`]): a BOM on the first line, CR of CRLF and surrounding
/// white space are dropped; blank lines and `#` comments are skipped.
fn text_entries(body: &[u8]) -> Vec<Entry> {
    let mut lines: Vec<&[u8]> = body.split(|&b| b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| match list_line(raw, i == 0, false) {
            ListLine::Skip => None,
            ListLine::Host { host, text } => Some(Entry {
                value: text.to_owned(),
                parsed: Ok(host),
            }),
            ListLine::Invalid { value, error } => Some(Entry {
                value,
                parsed: Err(error),
            }),
        })
        .collect()
}

/// `text` as quoted back to the client: over-long values are cut to their first bytes
/// and `...`.
fn quote(text: &str) -> String {
    if text.len() <= MAX_LINE_BYTES {
        return text.to_owned();
    }
    let mut end = TOO_LONG_PREVIEW_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_lines_follow_the_input_file_rules() {
        let entries =
            text_entries(b"\xEF\xBB\xBFExample.COM\r\n\n  # note\n#x\n bad_name \nlast.net");
        let values: Vec<_> = entries.iter().map(|e| e.value.as_str()).collect();
        assert_eq!(values, ["Example.COM", "bad_name", "last.net"]);
        assert_eq!(
            entries[0].parsed.as_ref().map(HostName::as_str),
            Ok("example.com")
        );
        assert!(entries[1].parsed.is_err());
    }

    #[test]
    fn bulk_body_entry_point_follows_the_content_type() {
        let text = parse_bulk_body(b"A.example\n# c\nbad_name\n", "Text/Plain; charset=utf-8")
            .map_err(|e| e.to_string())
            .expect("text/plain parses");
        let values: Vec<_> = text.iter().map(|(v, _)| v.as_str()).collect();
        assert_eq!(values, ["A.example", "bad_name"]);
        assert_eq!(text[0].1.as_ref().map(HostName::as_str), Ok("a.example"));
        let json = parse_bulk_body(br#"["B.example"]"#, "application/json")
            .map_err(|e| e.to_string())
            .expect("a JSON array of strings parses");
        assert_eq!(json[0].1.as_ref().map(HostName::as_str), Ok("b.example"));
        assert!(parse_bulk_body(b"[1]", "application/json").is_err());
    }
}

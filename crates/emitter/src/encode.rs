//! Serialisation of a batch as `json`, `jsonl` or `csv` (SPEC §3.1) into a reused buffer.

use std::io::{self, Write as _};

use serde::Serialize;
use spyder_model::{Batch, Edge, NodeCert, NodeDomain, NodeIp, TaskStatus, Timestamp};

use crate::Format;

/// The CSV header line (without its line end), written once per stream, file or body.
pub const CSV_HEADER: &str = "record,batch_id,timestamp,probe_id,run_id,type,source,target,observed_at,host,apex,ip,first_seen,last_seen,spki_sha256,subject_cn,issuer_cn,not_before,not_after,sans,fingerprint_sha256,verified,verify_error";

/// The columns a CSV stream gains with `output.status_records`, after [`CSV_HEADER`]'s.
pub const CSV_STATUS_COLUMNS: &str =
    "outcome,reason,attempt,dns_ms,tls_ms,robots_ms,fetch_ms,total_ms";

/// Cells of [`CSV_STATUS_COLUMNS`].
const STATUS_CELLS: usize = 8;

impl Format {
    /// Appends `batch` to `out` in this format. For `csv`, `with_header` puts the header
    /// line first; the other formats ignore it. Every line ends with `\n`. Status
    /// records are written in `jsonl` and left out otherwise (see
    /// [`Format::encode_with_status`]).
    ///
    /// Fails only if serialisation fails, which the model types never do.
    pub fn encode(self, batch: &Batch, with_header: bool, out: &mut Vec<u8>) -> io::Result<()> {
        self.encode_with_status(batch, with_header, false, out)
    }

    /// [`Format::encode`], and with `status_columns` (`output.status_records`) a CSV
    /// header and every row carry [`CSV_STATUS_COLUMNS`] too, and the batch's status
    /// records are rows of their own (`record` = `status`). A `json` batch carries
    /// them as its `status` array when there are any.
    pub fn encode_with_status(
        self,
        batch: &Batch,
        with_header: bool,
        status_columns: bool,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        match self {
            Self::Json => {
                serde_json::to_writer(&mut *out, batch)?;
                out.push(b'\n');
                Ok(())
            }
            Self::Jsonl => encode_jsonl(batch, out),
            Self::Csv => encode_csv(batch, with_header, status_columns, out),
        }
    }
}

fn encode_jsonl(batch: &Batch, out: &mut Vec<u8>) -> io::Result<()> {
    // The batch-level tail of every line, built once per batch.
    let mut edge_tail = Vec::with_capacity(96);
    edge_tail.extend_from_slice(b",\"batch_id\":\"");
    write!(edge_tail, "{}", batch.batch_id)?;
    edge_tail.extend_from_slice(b"\",\"timestamp\":\"");
    write!(edge_tail, "{}", batch.timestamp)?;
    edge_tail.extend_from_slice(b"\"}\n");
    let mut node_tail = Vec::with_capacity(edge_tail.len() + 64);
    node_tail.extend_from_slice(b",\"probe_id\":");
    serde_json::to_writer(&mut node_tail, &batch.probe_id)?;
    node_tail.extend_from_slice(b",\"run_id\":");
    serde_json::to_writer(&mut node_tail, &batch.run_id)?;
    node_tail.extend_from_slice(&edge_tail);

    for node in &batch.nodes_domain {
        jsonl_line(out, "node_domain", node, &node_tail)?;
    }
    for node in &batch.nodes_ip {
        jsonl_line(out, "node_ip", node, &node_tail)?;
    }
    for node in &batch.nodes_cert {
        jsonl_line(out, "node_cert", node, &node_tail)?;
    }
    for edge in &batch.edges {
        jsonl_line(out, "edge", edge, &edge_tail)?;
    }
    for status in &batch.status {
        jsonl_line(out, "status", status, &node_tail)?;
    }
    Ok(())
}

/// `{"record":"<kind>",<the record's fields>` + `tail`. The record is serialised in
/// place; its opening brace becomes the comma and its closing brace is dropped.
fn jsonl_line<T: Serialize>(
    out: &mut Vec<u8>,
    kind: &str,
    record: &T,
    tail: &[u8],
) -> io::Result<()> {
    out.extend_from_slice(b"{\"record\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.push(b'"');
    let start = out.len();
    serde_json::to_writer(&mut *out, record)?;
    // Every record is a non-empty JSON object: `{...}`.
    if out.get(start) != Some(&b'{') || out.last() != Some(&b'}') || out.len() - start < 3 {
        return Err(io::Error::other(
            "record did not serialise as a JSON object",
        ));
    }
    out[start] = b',';
    out.pop();
    out.extend_from_slice(tail);
    Ok(())
}

/// One CSV cell.
#[derive(Clone, Copy)]
enum Cell<'a> {
    Empty,
    Text(&'a str),
    Time(Timestamp),
    Ip(std::net::IpAddr),
    Flag(bool),
    Sans(&'a [String]),
    Int(u64),
}

/// Cells of one row after the five leading ones (`record` … `run_id`).
const TAIL_CELLS: usize = 18;

fn encode_csv(
    batch: &Batch,
    with_header: bool,
    status_columns: bool,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    if with_header {
        out.extend_from_slice(CSV_HEADER.as_bytes());
        if status_columns {
            out.push(b',');
            out.extend_from_slice(CSV_STATUS_COLUMNS.as_bytes());
        }
        out.push(b'\n');
    }
    // Rows of records have the status cells empty; without the columns, none.
    let none = status_columns.then_some([Cell::Empty; STATUS_CELLS]);
    let batch_id = batch.batch_id.to_string();
    let timestamp = batch.timestamp.to_string();

    for node in &batch.nodes_domain {
        csv_row(
            out,
            [
                "node_domain",
                &batch_id,
                &timestamp,
                &batch.probe_id,
                &batch.run_id,
            ],
            domain_cells(node),
            none,
        )?;
    }
    for node in &batch.nodes_ip {
        csv_row(
            out,
            [
                "node_ip",
                &batch_id,
                &timestamp,
                &batch.probe_id,
                &batch.run_id,
            ],
            ip_cells(node),
            none,
        )?;
    }
    for node in &batch.nodes_cert {
        csv_row(
            out,
            [
                "node_cert",
                &batch_id,
                &timestamp,
                &batch.probe_id,
                &batch.run_id,
            ],
            cert_cells(node),
            none,
        )?;
    }
    for edge in &batch.edges {
        csv_row(
            out,
            ["edge", &batch_id, &timestamp, &edge.probe_id, &edge.run_id],
            edge_cells(edge),
            none,
        )?;
    }
    if status_columns {
        for status in &batch.status {
            csv_row(
                out,
                [
                    "status",
                    &batch_id,
                    &timestamp,
                    &batch.probe_id,
                    &batch.run_id,
                ],
                status_record_cells(status),
                Some(status_cells(status)),
            )?;
        }
    }
    Ok(())
}

/// A status row's record columns: its observation time and host.
fn status_record_cells(s: &TaskStatus) -> [Cell<'_>; TAIL_CELLS] {
    let mut cells = [Cell::Empty; TAIL_CELLS];
    cells[3] = Cell::Time(s.observed_at);
    cells[4] = Cell::Text(&s.host);
    cells
}

/// [`CSV_STATUS_COLUMNS`] of a status row.
fn status_cells(s: &TaskStatus) -> [Cell<'_>; STATUS_CELLS] {
    let ms = |v: Option<u64>| v.map_or(Cell::Empty, Cell::Int);
    [
        Cell::Text(&s.outcome),
        s.reason.as_deref().map_or(Cell::Empty, Cell::Text),
        Cell::Int(u64::from(s.attempt)),
        ms(s.dns_ms),
        ms(s.tls_ms),
        ms(s.robots_ms),
        ms(s.fetch_ms),
        Cell::Int(s.total_ms),
    ]
}

// Columns after run_id: type source target observed_at host apex ip first_seen last_seen
// spki_sha256 subject_cn issuer_cn not_before not_after sans fingerprint_sha256 verified
// verify_error.

fn domain_cells(n: &NodeDomain) -> [Cell<'_>; TAIL_CELLS] {
    use Cell::{Empty, Text, Time};
    [
        Empty,
        Empty,
        Empty,
        Empty,
        Text(&n.host),
        Text(&n.apex),
        Empty,
        Time(n.first_seen),
        Time(n.last_seen),
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
    ]
}

fn ip_cells(n: &NodeIp) -> [Cell<'_>; TAIL_CELLS] {
    use Cell::{Empty, Ip, Time};
    [
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Ip(n.ip),
        Time(n.first_seen),
        Time(n.last_seen),
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
    ]
}

fn cert_cells(n: &NodeCert) -> [Cell<'_>; TAIL_CELLS] {
    use Cell::{Empty, Flag, Sans, Text, Time};
    [
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Text(&n.spki_sha256),
        Text(&n.subject_cn),
        Text(&n.issuer_cn),
        Time(n.not_before),
        Time(n.not_after),
        Sans(&n.sans),
        Text(&n.fingerprint_sha256),
        Flag(n.verified),
        match n.verify_error {
            Some(e) => Text(e.as_str()),
            None => Empty,
        },
    ]
}

fn edge_cells(e: &Edge) -> [Cell<'_>; TAIL_CELLS] {
    use Cell::{Empty, Text, Time};
    [
        Text(e.kind.as_str()),
        Text(&e.source),
        Text(&e.target),
        Time(e.observed_at),
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
        Empty,
    ]
}

fn csv_row(
    out: &mut Vec<u8>,
    head: [&str; 5],
    tail: [Cell<'_>; TAIL_CELLS],
    status: Option<[Cell<'_>; STATUS_CELLS]>,
) -> io::Result<()> {
    for (i, text) in head.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_text(out, text);
    }
    for cell in tail.into_iter().chain(status.into_iter().flatten()) {
        out.push(b',');
        match cell {
            Cell::Empty => {}
            Cell::Text(text) => csv_text(out, text),
            Cell::Time(t) => write!(out, "{t}")?,
            Cell::Ip(ip) => write!(out, "{ip}")?,
            Cell::Flag(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            Cell::Sans(sans) => csv_joined(out, sans),
            Cell::Int(n) => write!(out, "{n}")?,
        }
    }
    out.push(b'\n');
    Ok(())
}

fn needs_quotes(text: &str) -> bool {
    text.bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

/// One cell, quoted per RFC 4180 when it holds a comma, quote or line break.
fn csv_text(out: &mut Vec<u8>, text: &str) {
    if needs_quotes(text) {
        out.push(b'"');
        quoted_body(out, text);
        out.push(b'"');
    } else {
        out.extend_from_slice(text.as_bytes());
    }
}

/// The items joined by `;` as one cell, quoted as a whole when needed.
fn csv_joined(out: &mut Vec<u8>, items: &[String]) {
    let quote = items.iter().any(|s| needs_quotes(s));
    if quote {
        out.push(b'"');
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b';');
        }
        if quote {
            quoted_body(out, item);
        } else {
            out.extend_from_slice(item.as_bytes());
        }
    }
    if quote {
        out.push(b'"');
    }
}

fn quoted_body(out: &mut Vec<u8>, text: &str) {
    for part in text.split_inclusive('"') {
        out.extend_from_slice(part.as_bytes());
        if part.ends_with('"') {
            out.push(b'"');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_doubles_quotes_and_wraps_specials() {
        let mut out = Vec::new();
        csv_text(&mut out, "plain");
        out.push(b'|');
        csv_text(&mut out, "a,b");
        out.push(b'|');
        csv_text(&mut out, "say \"hi\"");
        out.push(b'|');
        csv_text(&mut out, "line\nbreak");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"line\nbreak\""
        );
    }

    #[test]
    fn header_has_23_columns() {
        assert_eq!(CSV_HEADER.split(',').count(), 5 + TAIL_CELLS);
        assert_eq!(CSV_STATUS_COLUMNS.split(',').count(), STATUS_CELLS);
    }
}

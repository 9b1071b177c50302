//! Output formats (SPEC §3.1): exact bytes, CSV quoting, one CSV header per file (B-26).

use std::time::Duration;

use spyder_emitter::{CSV_HEADER, Delivery, Destination, Emitter, Format};
use spyder_model::{Batch, Edge, EdgeType, NodeCert, NodeDomain, NodeIp, VerifyError};

use crate::common::{bounded, config, records, ts};

const T1: &str = "2025-08-10T16:45:12.1234Z";
const BATCH_ID: &str = "01912345-6789-7abc-8def-0123456789ab";
const FLUSHED: &str = "2025-08-10T16:45:13Z";

fn golden_batch() -> Batch {
    Batch {
        probe_id: "p1".into(),
        run_id: "r1".into(),
        nodes_domain: vec![NodeDomain {
            host: "www.example.com".into(),
            apex: "example.com".into(),
            first_seen: ts(T1),
            last_seen: ts(T1),
        }],
        nodes_ip: vec![NodeIp {
            ip: "93.184.216.34".parse().expect("ip"),
            first_seen: ts(T1),
            last_seen: ts(T1),
        }],
        nodes_cert: vec![NodeCert {
            spki_sha256: "abc=".into(),
            subject_cn: "www.example.com".into(),
            issuer_cn: "Test, \"CA\"".into(),
            not_before: ts("2025-01-01T00:00:00Z"),
            not_after: ts("2026-01-01T00:00:00Z"),
            sans: vec!["www.example.com".into(), "example.com".into()],
            fingerprint_sha256: "00ff".into(),
            verified: false,
            verify_error: Some(VerifyError::UnknownIssuer),
        }],
        edges: vec![Edge {
            kind: EdgeType::ResolvesTo,
            source: "www.example.com".into(),
            target: "93.184.216.34".into(),
            observed_at: ts(T1),
            probe_id: "p1".into(),
            run_id: "r1".into(),
        }],
        batch_id: BATCH_ID.parse().expect("uuid"),
        timestamp: ts(FLUSHED),
        status: Vec::new(),
    }
}

fn encoded(format: Format, batch: &Batch, header: bool) -> String {
    let mut out = Vec::new();
    format.encode(batch, header, &mut out).expect("encodes");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn json_is_one_compact_envelope_per_line() {
    let expected = concat!(
        r#"{"probe_id":"p1","run_id":"r1","#,
        r#""nodes_domain":[{"host":"www.example.com","apex":"example.com","first_seen":"2025-08-10T16:45:12.1234Z","last_seen":"2025-08-10T16:45:12.1234Z"}],"#,
        r#""nodes_ip":[{"ip":"93.184.216.34","first_seen":"2025-08-10T16:45:12.1234Z","last_seen":"2025-08-10T16:45:12.1234Z"}],"#,
        r#""nodes_cert":[{"spki_sha256":"abc=","subject_cn":"www.example.com","issuer_cn":"Test, \"CA\"","not_before":"2025-01-01T00:00:00Z","not_after":"2026-01-01T00:00:00Z","sans":["www.example.com","example.com"],"fingerprint_sha256":"00ff","verified":false,"verify_error":"unknown_issuer"}],"#,
        r#""edges":[{"type":"RESOLVES_TO","source":"www.example.com","target":"93.184.216.34","observed_at":"2025-08-10T16:45:12.1234Z","probe_id":"p1","run_id":"r1"}],"#,
        r#""batch_id":"01912345-6789-7abc-8def-0123456789ab","timestamp":"2025-08-10T16:45:13Z"}"#,
        "\n"
    );
    assert_eq!(encoded(Format::Json, &golden_batch(), true), expected);
}

#[test]
fn json_keeps_empty_arrays() {
    let batch = Batch {
        nodes_ip: Vec::new(),
        nodes_cert: Vec::new(),
        edges: Vec::new(),
        ..golden_batch()
    };
    let line = encoded(Format::Json, &batch, false);
    assert!(
        line.contains(r#""nodes_ip":[],"nodes_cert":[],"edges":[],"#),
        "{line}"
    );
}

#[test]
fn jsonl_is_one_record_per_line_with_batch_fields() {
    let expected = concat!(
        r#"{"record":"node_domain","host":"www.example.com","apex":"example.com","first_seen":"2025-08-10T16:45:12.1234Z","last_seen":"2025-08-10T16:45:12.1234Z","probe_id":"p1","run_id":"r1","batch_id":"01912345-6789-7abc-8def-0123456789ab","timestamp":"2025-08-10T16:45:13Z"}"#,
        "\n",
        r#"{"record":"node_ip","ip":"93.184.216.34","first_seen":"2025-08-10T16:45:12.1234Z","last_seen":"2025-08-10T16:45:12.1234Z","probe_id":"p1","run_id":"r1","batch_id":"01912345-6789-7abc-8def-0123456789ab","timestamp":"2025-08-10T16:45:13Z"}"#,
        "\n",
        r#"{"record":"node_cert","spki_sha256":"abc=","subject_cn":"www.example.com","issuer_cn":"Test, \"CA\"","not_before":"2025-01-01T00:00:00Z","not_after":"2026-01-01T00:00:00Z","sans":["www.example.com","example.com"],"fingerprint_sha256":"00ff","verified":false,"verify_error":"unknown_issuer","probe_id":"p1","run_id":"r1","batch_id":"01912345-6789-7abc-8def-0123456789ab","timestamp":"2025-08-10T16:45:13Z"}"#,
        "\n",
        r#"{"record":"edge","type":"RESOLVES_TO","source":"www.example.com","target":"93.184.216.34","observed_at":"2025-08-10T16:45:12.1234Z","probe_id":"p1","run_id":"r1","batch_id":"01912345-6789-7abc-8def-0123456789ab","timestamp":"2025-08-10T16:45:13Z"}"#,
        "\n",
    );
    assert_eq!(encoded(Format::Jsonl, &golden_batch(), true), expected);
}

#[test]
fn csv_rows_fill_their_own_columns() {
    let b = BATCH_ID;
    let t = FLUSHED;
    let expected = [
        CSV_HEADER.to_owned(),
        format!("node_domain,{b},{t},p1,r1,,,,,www.example.com,example.com,,{T1},{T1},,,,,,,,,"),
        format!("node_ip,{b},{t},p1,r1,,,,,,,93.184.216.34,{T1},{T1},,,,,,,,,"),
        format!(
            "node_cert,{b},{t},p1,r1,,,,,,,,,,abc=,www.example.com,\"Test, \"\"CA\"\"\",2025-01-01T00:00:00Z,2026-01-01T00:00:00Z,www.example.com;example.com,00ff,false,unknown_issuer"
        ),
        format!(
            "edge,{b},{t},p1,r1,RESOLVES_TO,www.example.com,93.184.216.34,{T1},,,,,,,,,,,,,,"
        ),
    ]
    .map(|line| line + "\n")
    .concat();
    assert_eq!(encoded(Format::Csv, &golden_batch(), true), expected);
    assert_eq!(
        CSV_HEADER,
        "record,batch_id,timestamp,probe_id,run_id,type,source,target,observed_at,host,apex,ip,first_seen,last_seen,spki_sha256,subject_cn,issuer_cn,not_before,not_after,sans,fingerprint_sha256,verified,verify_error"
    );
    // Without the header flag, rows only.
    let rows = encoded(Format::Csv, &golden_batch(), false);
    assert!(rows.starts_with("node_domain,"));
}

/// A minimal RFC 4180 reader: rows of cells.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        !quoted && cell.is_empty() && row.is_empty(),
        "CSV ends with LF"
    );
    rows
}

#[test]
fn csv_quoting_round_trips_commas_quotes_and_line_breaks() {
    let mut batch = golden_batch();
    batch.nodes_cert[0].subject_cn = "a,b \"c\"\nd".into();
    batch.nodes_cert[0].sans = vec!["x.example".into(), "odd,name".into()];
    batch.nodes_cert[0].verify_error = None;
    batch.nodes_cert[0].verified = true;
    let text = encoded(Format::Csv, &batch, true);
    assert!(!text.contains('\r'), "LF line ends only");
    let rows = parse_csv(&text);
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.len() == 23), "23 cells in every row");
    let header = &rows[0];
    let cert = &rows[3];
    let col = |name: &str| header.iter().position(|h| h == name).expect("column");
    assert_eq!(cert[col("record")], "node_cert");
    assert_eq!(cert[col("subject_cn")], "a,b \"c\"\nd");
    assert_eq!(cert[col("sans")], "x.example;odd,name");
    assert_eq!(cert[col("verified")], "true");
    assert_eq!(cert[col("verify_error")], "");
    assert_eq!(cert[col("host")], "");
}

#[tokio::test]
async fn csv_file_gets_one_header_even_across_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("out.csv");
    let spool = dir.path().join("spool");

    // B-26: a single row still gets its header, and it is on disk when the receipt resolves.
    let emitter = Emitter::start(config(Destination::File(file.clone()), Format::Csv, &spool))
        .await
        .expect("starts");
    let one_row = spyder_model::Records {
        nodes_domain: records(1, 0).nodes_domain,
        ..Default::default()
    };
    let delivery = bounded("receipt", emitter.submit(one_row))
        .await
        .expect("written");
    assert_eq!(delivery, Delivery::Written);
    let text = std::fs::read_to_string(&file).expect("file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0], CSV_HEADER);
    assert!(lines[1].starts_with("node_domain,"));

    // A second batch in the same run: no second header.
    bounded("receipt", emitter.submit(records(2, 1)))
        .await
        .expect("written");
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;

    // A second run appending to the non-empty file: still one header.
    let emitter = Emitter::start(config(Destination::File(file.clone()), Format::Csv, &spool))
        .await
        .expect("starts again");
    bounded("receipt", emitter.submit(records(3, 1)))
        .await
        .expect("written");
    bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;

    let text = std::fs::read_to_string(&file).expect("file");
    let rows = parse_csv(&text);
    assert_eq!(
        rows.iter().filter(|r| r[0] == "record").count(),
        1,
        "exactly one header: {text}"
    );
    assert_eq!(rows[0][0], "record");
    let hosts: Vec<&str> = rows
        .iter()
        .filter(|r| r[0] == "node_domain")
        .map(|r| r[9].as_str())
        .collect();
    assert_eq!(hosts, ["host1.example", "host2.example", "host3.example"]);
    assert_eq!(rows.iter().filter(|r| r[0] == "edge").count(), 2);
    assert!(!spool.exists(), "file mode does not create a spool");
}

#[tokio::test]
async fn json_and_jsonl_files_hold_what_was_submitted() {
    let dir = tempfile::tempdir().expect("temp dir");
    for format in [Format::Json, Format::Jsonl] {
        let file = dir.path().join(format!("out.{format}"));
        let emitter = Emitter::start(config(Destination::File(file.clone()), format, dir.path()))
            .await
            .expect("starts");
        bounded("receipt", emitter.submit(records(1, 2)))
            .await
            .expect("written");
        let text = std::fs::read_to_string(&file).expect("file");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        match format {
            Format::Json => {
                assert_eq!(lines.len(), 1);
                let batch: Batch = serde_json::from_value(lines[0].clone()).expect("a batch");
                assert_eq!(batch.probe_id, "p1");
                assert_eq!(batch.nodes_domain, records(1, 2).nodes_domain);
                assert_eq!(batch.edges, records(1, 2).edges);
                assert_eq!(batch.batch_id.get_version_num(), 7);
            }
            _ => {
                let kinds: Vec<&str> = lines
                    .iter()
                    .map(|l| l["record"].as_str().expect("record"))
                    .collect();
                assert_eq!(kinds, ["node_domain", "edge", "edge"]);
                let ids: Vec<&serde_json::Value> = lines.iter().map(|l| &l["batch_id"]).collect();
                assert!(ids.windows(2).all(|w| w[0] == w[1]), "one batch id");
                assert_eq!(lines[0]["probe_id"], "p1");
            }
        }
        bounded("shutdown", emitter.shutdown(Duration::from_secs(5))).await;
    }
}

//! spyder's graph read back: the edges of its output in any format, to compare with
//! what a [`World`](crate::world::World) expects.

use std::collections::BTreeSet;

use spyder_model::EdgeType;

use crate::world::ExpectedEdge;

/// Every edge of a `json`, `jsonl` or `csv` graph (docs/output.md): a csv graph
/// starts with its `record,…` header, every other is one JSON object per line, a
/// batch with its `edges` or one record. Other records are passed over.
pub fn edges(text: &str) -> Result<BTreeSet<ExpectedEdge>, String> {
    if text.starts_with("record,") {
        return csv_edges(text);
    }
    let mut edges = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("line {}: not JSON: {e}", n + 1))?;
        let edge = |v: &serde_json::Value| -> Result<ExpectedEdge, String> {
            let field = |name: &str| {
                v[name]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("line {}: an edge without {name}", n + 1))
            };
            Ok((
                edge_type(&field("type")?)?,
                field("source")?,
                field("target")?,
            ))
        };
        if let Some(batch_edges) = value.get("edges").and_then(|e| e.as_array()) {
            for e in batch_edges {
                edges.insert(edge(e)?);
            }
        } else if value["record"] == "edge" {
            edges.insert(edge(&value)?);
        }
    }
    Ok(edges)
}

fn edge_type(name: &str) -> Result<EdgeType, String> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| format!("unknown edge type {name:?}"))
}

/// The edges of a csv graph: the rows whose `record` is `edge`.
fn csv_edges(text: &str) -> Result<BTreeSet<ExpectedEdge>, String> {
    let rows = parse_csv(text);
    let header = rows.first().ok_or("no header")?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("no {name} column"))
    };
    let (record, kind, source, target) = (
        column("record")?,
        column("type")?,
        column("source")?,
        column("target")?,
    );
    let mut edges = BTreeSet::new();
    for (n, row) in rows.iter().enumerate().skip(1) {
        if row.get(record).map(String::as_str) != Some("edge") {
            continue;
        }
        let cell = |i: usize| {
            row.get(i)
                .cloned()
                .ok_or_else(|| format!("row {}: too few cells", n + 1))
        };
        edges.insert((edge_type(&cell(kind)?)?, cell(source)?, cell(target)?));
    }
    Ok(edges)
}

/// RFC 4180 records: quoted fields, doubled quotes, line breaks inside quotes, LF or
/// CRLF record ends.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(kind: EdgeType, source: &str, target: &str) -> ExpectedEdge {
        (kind, source.to_owned(), target.to_owned())
    }

    #[test]
    fn edges_from_every_output_format() {
        let want: BTreeSet<ExpectedEdge> = [
            edge(EdgeType::ResolvesTo, "a.example", "127.0.0.2"),
            edge(EdgeType::LinksTo, "a.example", "b.example"),
        ]
        .into();
        let json = concat!(
            r#"{"probe_id":"p","run_id":"r","nodes_domain":[],"nodes_ip":[],"nodes_cert":[],"edges":[{"type":"RESOLVES_TO","source":"a.example","target":"127.0.0.2","observed_at":"t"}],"batch_id":"1","timestamp":"t"}"#,
            "\n",
            r#"{"probe_id":"p","run_id":"r","nodes_domain":[],"nodes_ip":[],"nodes_cert":[],"edges":[{"type":"LINKS_TO","source":"a.example","target":"b.example","observed_at":"t"}],"batch_id":"2","timestamp":"t"}"#,
            "\n",
        );
        assert_eq!(edges(json), Ok(want.clone()));

        let jsonl = concat!(
            r#"{"record":"node_domain","host":"a.example","apex":"a.example","batch_id":"1"}"#,
            "\n",
            r#"{"record":"edge","type":"RESOLVES_TO","source":"a.example","target":"127.0.0.2","batch_id":"1"}"#,
            "\n",
            r#"{"record":"status","host":"a.example","outcome":"complete","batch_id":"1"}"#,
            "\n",
            r#"{"record":"edge","type":"LINKS_TO","source":"a.example","target":"b.example","batch_id":"1"}"#,
            "\n",
        );
        assert_eq!(edges(jsonl), Ok(want.clone()));

        let csv = "record,batch_id,timestamp,probe_id,run_id,type,source,target,observed_at,subject_cn\n\
                   node_cert,1,t,p,r,,,,,\"Org, \"\"Inc\"\"\nline two\"\n\
                   edge,1,t,p,r,RESOLVES_TO,a.example,127.0.0.2,t,\n\
                   edge,1,t,p,r,LINKS_TO,a.example,b.example,t,\n";
        assert_eq!(edges(csv), Ok(want));

        assert!(edges("not json\n").is_err());
        assert!(edges(r#"{"record":"edge","type":"HAS_CERT","source":"a","target":"b"}"#).is_err());
        assert!(
            edges("record,batch_id\nedge,1\n").is_err(),
            "no type column"
        );
        assert_eq!(edges(""), Ok(BTreeSet::new()));
    }

    #[test]
    fn csv_quotes_and_line_ends() {
        assert_eq!(
            parse_csv("a,\"b,\"\"c\"\"\r\nd\"\r\ne,\n"),
            [vec!["a", "b,\"c\"\r\nd"], vec!["e", ""]]
        );
        assert_eq!(parse_csv("x,y"), [vec!["x", "y"]], "no final line end");
    }
}

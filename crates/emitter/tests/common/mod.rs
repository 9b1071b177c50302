//! Helpers shared by the emitter's integration tests.

use std::path::{Path, PathBuf};
use std::time::Duration;

use spyder_emitter::{Destination, EmitterConfig, Format, IngestConfig, MtlsFiles};
use spyder_model::{Batch, Edge, EdgeType, NodeDomain, Records, Timestamp};
use tokio::io::{AsyncBufReadExt as _, BufReader, DuplexStream};

/// Bound of every wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn ts(text: &str) -> Timestamp {
    text.parse().expect("valid timestamp")
}

/// A config that flushes only on size (interval of an hour).
pub fn config(destination: Destination, format: Format, spool_dir: &Path) -> EmitterConfig {
    EmitterConfig {
        probe_id: "p1".into(),
        run_id: "r1".into(),
        format,
        destination,
        spool_dir: spool_dir.to_path_buf(),
        max_edges: 1,
        flush_interval: Duration::from_secs(3600),
        node_threshold_ratio: 1.0,
        status_records: false,
    }
}

pub fn ingest(url: String, spool_dir: &Path) -> Destination {
    Destination::Ingest(IngestConfig {
        url,
        spool_dir: spool_dir.to_path_buf(),
        mtls: MtlsFiles::default(),
    })
}

/// One domain node `host<tag>.example` and `edges` LINKS_TO edges from it.
pub fn records(tag: usize, edges: usize) -> Records {
    let at = ts("2025-08-10T16:45:12.1234Z");
    let host = format!("host{tag}.example");
    Records {
        nodes_domain: vec![NodeDomain {
            host: host.clone(),
            apex: host.clone(),
            first_seen: at,
            last_seen: at,
        }],
        edges: (0..edges)
            .map(|i| Edge {
                kind: EdgeType::LinksTo,
                source: host.clone(),
                target: format!("t{i}.example"),
                observed_at: at,
                probe_id: "p1".into(),
                run_id: "r1".into(),
            })
            .collect(),
        ..Records::default()
    }
}

/// Only edges, no nodes.
pub fn edges_only(tag: usize, edges: usize) -> Records {
    Records {
        nodes_domain: Vec::new(),
        ..records(tag, edges)
    }
}

/// Hosts of the domain nodes of `batch`.
pub fn hosts(batch: &Batch) -> Vec<String> {
    batch.nodes_domain.iter().map(|n| n.host.clone()).collect()
}

/// Finished spool files, sorted by name.
pub fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.expect("dir entry").path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                !name.starts_with('.') && name.ends_with(".json")
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Every entry of `dir` with its bytes, sorted by name.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut all: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("dir readable")
        .map(|e| {
            let e = e.expect("dir entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("file readable"))
        })
        .collect();
    all.sort();
    all
}

pub fn decode(bytes: &[u8]) -> Batch {
    serde_json::from_slice(bytes).expect("a JSON batch")
}

/// Polls `check` every 10 ms until it holds; panics after [`WAIT`].
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Awaits `fut` for at most [`WAIT`].
pub async fn bounded<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// An in-memory pipe: the destination end and a line reader for the other end.
pub fn pipe() -> (Destination, Lines) {
    let (writer, reader) = tokio::io::duplex(1 << 20);
    (
        Destination::Writer(Box::new(writer)),
        Lines(BufReader::new(reader)),
    )
}

#[derive(Debug)]
pub struct Lines(pub BufReader<DuplexStream>);

impl Lines {
    /// The next line (without its `\n`), or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        let n = bounded("a line", self.0.read_line(&mut line))
            .await
            .expect("pipe readable");
        if n == 0 {
            return None;
        }
        assert!(line.ends_with('\n'), "every line ends with LF: {line:?}");
        line.pop();
        Some(line)
    }
}

/// True when `name` is `<YYYYMMDDTHHMMSS.nnnnnnnnn>-<uuid>.json`.
pub fn is_spool_name(name: &str) -> bool {
    let Some(rest) = name.strip_suffix(".json") else {
        return false;
    };
    let Some((stamp, id)) = rest.split_once('-') else {
        return false;
    };
    let b = stamp.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'.'
        && b[16..].iter().all(u8::is_ascii_digit)
        && uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}

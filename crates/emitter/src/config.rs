//! What an [`Emitter`](crate::Emitter) is started with: format, destination, batching.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::AsyncWrite;

use crate::EmitterError;

/// The output format (`output.format`, SPEC §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Format {
    /// One compact batch envelope per line.
    #[default]
    Json,
    /// One record per line, batch fields inline.
    Jsonl,
    /// RFC 4180 rows with LF line ends and one header per stream, file or body.
    Csv,
}

impl Format {
    /// The configuration name: `json`, `jsonl` or `csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Jsonl => "jsonl",
            Self::Csv => "csv",
        }
    }

    /// The `Content-Type` of an ingest POST body in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Jsonl => "application/x-ndjson",
            Self::Csv => "text/csv",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = EmitterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "jsonl" => Ok(Self::Jsonl),
            "csv" => Ok(Self::Csv),
            other => Err(EmitterError::Config {
                key: "output.format",
                reason: format!("unknown format {other:?}; use json, jsonl or csv"),
            }),
        }
    }
}

/// Where batches go.
pub enum Destination {
    /// Standard output, flushed per batch.
    Stdout,
    /// A file, appended to, flushed and fsynced per batch (`output.file`).
    File(PathBuf),
    /// An HTTP(S) ingest endpoint, with a spool for what cannot be delivered.
    Ingest(IngestConfig),
    /// Any writer, flushed per batch; used by tests to simulate a closed pipe.
    Writer(Box<dyn AsyncWrite + Send + Unpin>),
}

impl fmt::Debug for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdout => f.write_str("Stdout"),
            Self::File(path) => f.debug_tuple("File").field(path).finish(),
            Self::Ingest(cfg) => f.debug_tuple("Ingest").field(cfg).finish(),
            Self::Writer(_) => f.write_str("Writer(..)"),
        }
    }
}

/// The ingest endpoint and its spool (`output.ingest`, `output.spool_dir`, `mtls.*`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IngestConfig {
    /// `http://` or `https://` URL batches are POSTed to.
    pub url: String,
    /// Directory undeliverable batches are spooled to and replayed from.
    pub spool_dir: PathBuf,
    /// Client certificate and trust roots for the ingest server.
    pub mtls: MtlsFiles,
}

/// PEM files for mutual TLS with the ingest server (`mtls.cert`, `mtls.key`, `mtls.ca`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MtlsFiles {
    /// Client certificate chain; requires `key`.
    pub cert: Option<PathBuf>,
    /// Private key of the client certificate; requires `cert`.
    pub key: Option<PathBuf>,
    /// CA certificates that replace the default (webpki) roots for the ingest server.
    pub ca: Option<PathBuf>,
}

/// Everything [`Emitter::start`](crate::Emitter::start) needs.
#[derive(Debug)]
pub struct EmitterConfig {
    /// `probe`: written into every batch and node line.
    pub probe_id: String,
    /// `run`: written into every batch and node line.
    pub run_id: String,
    /// `output.format`: how batches are encoded.
    pub format: Format,
    /// Where batches go: stdout, `output.file` or `output.ingest`.
    pub destination: Destination,
    /// `output.spool_dir`. In stdout and file mode it is only counted at start (never
    /// read, replayed or cleaned) and written to if the output breaks.
    pub spool_dir: PathBuf,
    /// `batch.max_edges`: a batch is flushed once it holds this many edges.
    pub max_edges: usize,
    /// `batch.flush_interval`: a batch is flushed at the latest this long after its first record.
    pub flush_interval: Duration,
    /// `batch.node_threshold_ratio`: a batch is flushed once it holds
    /// max(1, ⌊`max_edges` × ratio⌋) nodes.
    pub node_threshold_ratio: f64,
    /// `output.status_records`: CSV streams carry [`CSV_STATUS_COLUMNS`](crate::CSV_STATUS_COLUMNS)
    /// and the status records submitted are written (jsonl, csv).
    pub status_records: bool,
}

impl EmitterConfig {
    /// The batching limits this config starts with.
    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_edges: self.max_edges,
            flush_interval: self.flush_interval,
            node_threshold_ratio: self.node_threshold_ratio,
        }
    }

    /// The node count that flushes a batch: max(1, ⌊`max_edges` × `node_threshold_ratio`⌋).
    pub fn max_nodes(&self) -> usize {
        self.batch_limits().max_nodes()
    }

    pub(crate) fn validate(&self) -> Result<(), EmitterError> {
        self.batch_limits().validate()
    }

    /// Checks what [`Emitter::start`](crate::Emitter::start) would refuse, without
    /// its side effects (no file created, no spool directory touched, nothing sent):
    /// the batch limits, and for an ingest output its URL and mTLS files. `spyder
    /// -check` calls it.
    pub async fn check(&self) -> Result<(), EmitterError> {
        self.validate()?;
        if let Destination::Ingest(ingest) = &self.destination {
            crate::output::check_ingest(ingest, self.format).await?;
        }
        Ok(())
    }
}

/// The batching limits (`batch.*`, Tier 1), changed at runtime with
/// [`Emitter::set_batch_limits`](crate::Emitter::set_batch_limits).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchLimits {
    /// `batch.max_edges`: a batch is flushed once it holds this many edges.
    pub max_edges: usize,
    /// `batch.flush_interval`: a batch is flushed at the latest this long after its first record.
    pub flush_interval: Duration,
    /// `batch.node_threshold_ratio`: a batch is flushed once it holds
    /// max(1, ⌊`max_edges` × ratio⌋) nodes.
    pub node_threshold_ratio: f64,
}

impl BatchLimits {
    /// The node count that flushes a batch: max(1, ⌊`max_edges` × `node_threshold_ratio`⌋).
    pub fn max_nodes(&self) -> usize {
        // Truncation is the floor here: both factors are positive.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let nodes = (self.max_edges as f64 * self.node_threshold_ratio).floor() as usize;
        nodes.max(1)
    }

    /// Checks every limit is in range; the error names the key.
    pub fn validate(&self) -> Result<(), EmitterError> {
        if self.max_edges == 0 {
            return Err(EmitterError::Config {
                key: "batch.max_edges",
                reason: "must be at least 1".to_owned(),
            });
        }
        if self.flush_interval.is_zero() {
            return Err(EmitterError::Config {
                key: "batch.flush_interval",
                reason: "must be positive".to_owned(),
            });
        }
        let ratio = self.node_threshold_ratio;
        if !(ratio > 0.0 && ratio <= 1.0) {
            return Err(EmitterError::Config {
                key: "batch.node_threshold_ratio",
                reason: format!("{ratio} is outside (0, 1]"),
            });
        }
        Ok(())
    }
}

/// Where and how batches are written (`output.format`, `output.ingest`, `output.file`,
/// `output.spool_dir`; Tier 2), changed at runtime with
/// [`Emitter::reconfigure_output`](crate::Emitter::reconfigure_output).
#[derive(Debug)]
pub struct OutputSettings {
    /// `output.format`.
    pub format: Format,
    /// `output.ingest` or `output.file`, else stdout.
    pub destination: Destination,
    /// `output.spool_dir` in stdout and file mode; with ingest the spool directory is
    /// [`IngestConfig::spool_dir`].
    pub spool_dir: PathBuf,
}

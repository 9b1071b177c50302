//! The emitter's errors.

use std::io;
use std::path::PathBuf;

/// Why the emitter could not start, or why records were not made safe.
#[derive(Debug, thiserror::Error)]
pub enum EmitterError {
    /// A setting is out of range or malformed.
    #[error("{key}: {reason}")]
    Config {
        /// The setting's key, e.g. `batch.max_edges`.
        key: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// An mTLS file is missing, unreadable or not usable PEM.
    #[error("{key}: cannot use {path:?}: {reason}; set {key} to a readable PEM file")]
    Mtls {
        /// The setting naming the file: `mtls.cert`, `mtls.key` or `mtls.ca`.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// The spool directory cannot be created or written (ingest mode).
    #[error(
        "output.spool_dir: {path:?} is not writable: {source}; create it or point output.spool_dir elsewhere"
    )]
    SpoolDir {
        /// The spool directory.
        path: PathBuf,
        /// The failed create, write or delete.
        source: io::Error,
    },
    /// The output file cannot be opened for appending.
    #[error("output.file: cannot open {path:?} for appending: {source}")]
    OutputFile {
        /// The output file.
        path: PathBuf,
        /// The failed open.
        source: io::Error,
    },
    /// A batch could be neither delivered nor spooled: its records are not safe.
    #[error("cannot spool batch {batch_id} to {dir:?}: {reason}")]
    Spool {
        /// The batch's id.
        batch_id: String,
        /// The spool directory it could not be written to.
        dir: PathBuf,
        /// Why the spool write failed.
        reason: String,
    },
    /// stdout or the output file broke (a closed pipe, a full disk): the records were
    /// not written, and stdout and file mode spool nothing (SPEC §3.1).
    #[error("the output is closed ({reason}); records not written")]
    OutputClosed {
        /// The write error that closed the output.
        reason: String,
    },
    /// The emitter was shut down before the records were accepted.
    #[error("the emitter is shut down; records not accepted")]
    Closed,
}

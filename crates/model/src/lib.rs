//! spyder's graph vocabulary.
//!
//! Everything the probe emits is built from the types here: validated, normalised
//! [`HostName`]s, the graph records ([`NodeDomain`], [`NodeIp`], [`NodeCert`], [`Edge`])
//! with the exact JSON field names and order of the original Go SPYDER, and the
//! [`Batch`] envelope that carries them to stdout, a file or an ingest endpoint.
//! [`finalize`] is the acknowledgement that travels with one item's records;
//! [`backoff`] the one retry pause every loop uses; [`telemetry`] the table of every
//! metric spyder exports and the typed handles the code records them through.

pub mod backoff;
mod batch;
pub mod finalize;
mod host;
mod record;
pub mod secret;
pub mod telemetry;
mod timestamp;

pub use batch::{Batch, Records};
pub use host::{
    HostError, HostName, ListLine, MAX_LINE_BYTES, NameKind, TOO_LONG_PREVIEW_BYTES, apex_of,
    list_line,
};
pub use record::{Edge, EdgeType, NodeCert, NodeDomain, NodeIp, VerifyError};
pub use timestamp::Timestamp;

//! spyder's graph vocabulary.
//!
//! Everything the probe emits is built from the types here: validated, normalised
//! [`HostName`]s, the graph records ([`NodeDomain`], [`NodeIp`], [`NodeCert`], [`Edge`])
//! with the exact JSON field names and order of the original Go SPYDER, and the
//! [`Batch`] envelope that carries them to stdout, a file or an ingest endpoint.
//! [`finalize`] is the acknowledgement that travels with one item's records;
//! [`backoff`] the one retry pause every loop uses; [`rate`] the one token bucket
//! every rate limit uses.

pub mod backoff;
mod batch;
pub mod finalize;
mod host;
pub mod rate;
mod record;
pub mod resolv_conf;
pub mod secret;
mod timestamp;

pub use batch::{Batch, Records};
pub use host::{
    HostError, HostName, ListLine, MAX_LINE_BYTES, NameKind, TOO_LONG_PREVIEW_BYTES, apex_of,
    list_line,
};
pub use record::{Edge, EdgeType, NodeCert, NodeDomain, NodeIp, VerifyError};
pub use timestamp::Timestamp;

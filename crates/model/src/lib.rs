//! spyder's graph vocabulary.
//!
//! Everything the probe emits is built from the types here: validated, normalised
//! [`HostName`]s, the graph records ([`NodeDomain`], [`NodeIp`], [`NodeCert`], [`Edge`])
//! with the exact JSON field names and order of the original Go SPYDER, and the
//! [`Batch`] envelope that carries them to stdout, a file or an ingest endpoint.

mod batch;
mod host;
mod record;
pub mod secret;
mod timestamp;

pub use batch::{Batch, Records};
pub use host::{HostError, HostName, NameKind, apex_of};
pub use record::{Edge, EdgeType, NodeCert, NodeDomain, NodeIp, VerifyError};
pub use timestamp::Timestamp;

//! spyder's graph vocabulary: the types every other crate speaks.
//!
//! Everything the probe emits is built from the types here: validated, normalised
//! [`HostName`]s, the graph records ([`NodeDomain`], [`NodeIp`], [`NodeCert`], [`Edge`])
//! with the exact JSON field names and order of the original Go SPYDER, and the
//! [`Batch`] envelope that carries them to stdout, a file or an ingest endpoint.
//!
//! # Layout
//!
//! * `host`: [`HostName`] with its [`NameKind`] rules and [`HostError`]s (SPEC §3.3),
//!   [`apex_of`], and [`list_line`], the one rule for a line of a domains list.
//! * `record`: the nodes and the [`Edge`] with its [`EdgeType`] (SPEC §2.1);
//!   `batch`: [`Records`] and the [`Batch`] envelope (SPEC §2.2); `timestamp`:
//!   [`Timestamp`], formatted as Go formats it.
//! * [`finalize`]: the acknowledgement that travels with one item's records.
//! * [`backoff`]: the one retry pause every loop uses; [`rate`]: the one token
//!   bucket every rate limit uses.
//! * [`telemetry`]: the table of every metric spyder exports and the typed handles
//!   the code records them through.
//! * [`resolv_conf`]: the system's DNS resolvers; [`secret`]: URL passwords hidden
//!   in what is printed.
//!
//! What the private modules define is re-exported here.

#![deny(missing_docs)]

pub mod backoff;
mod batch;
pub mod finalize;
mod host;
pub mod rate;
mod record;
pub mod resolv_conf;
pub mod secret;
mod status;
pub mod telemetry;
mod timestamp;

pub use batch::{Batch, Records};
pub use host::{
    HostError, HostName, ListLine, MAX_LINE_BYTES, NameKind, TOO_LONG_PREVIEW_BYTES, apex_of,
    list_line,
};
pub use record::{Edge, EdgeType, NodeCert, NodeDomain, NodeIp, VerifyError};
pub use status::TaskStatus;
pub use timestamp::{Timestamp, default_run_id, unix_millis_now, unix_seconds_now};

//! The spyder probe engine: one domain in, its graph out.
//!
//! A [`Probe`] resolves a domain with its own DNS client, captures the leaf TLS
//! certificate (verified or not), reads robots.txt and the root page over one
//! connection, and extracts links to other registrable domains. Each call to
//! [`Probe::crawl`] is one bounded task that yields a [`CrawlReport`]: the graph
//! records, the discovery candidates, a typed [`Outcome`] and phase timings.
//!
//! ```no_run
//! # async fn run() -> Result<(), spyder_probe::BuildError> {
//! use spyder_probe::{Probe, ProbeConfig};
//! let probe = Probe::new(ProbeConfig::default()).await?;
//! let report = probe.crawl("example.com").await;
//! println!("{:?}: {} edges", report.outcome, report.records.edges.len());
//! # Ok(()) }
//! ```
//!
//! Settings that operators may change while a probe runs live in [`ProbeSettings`];
//! each task reads one snapshot of them, and [`Probe::update_settings`] swaps it.

mod config;
mod contain;
mod engine;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
mod fetch;
mod report;

// The engine's building blocks, public for tools that want one piece (and for tests
// and benchmarks); most embedders need only the items re-exported below.
pub mod dns;
pub mod http;
pub mod links;
pub mod policy;
pub mod politeness;
pub mod resources;
pub mod robots;
pub mod tls;

pub use config::{DnsSettings, ProbeConfig, ProbeSettings, TlsRoots};
pub use contain::{CatchPanic, catch_panic, panic_is_contained};
pub use engine::{BuildError, Probe};
pub use report::{CrawlReport, Outcome, PhaseTimings, Status};
pub use spyder_model as model;

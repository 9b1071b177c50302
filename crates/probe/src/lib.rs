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
//! use std::time::Duration;
//! use spyder_probe::{Probe, ProbeSettings, TlsRoots};
//!
//! let mut settings = ProbeSettings::default();
//! settings.task_timeout = Duration::from_secs(20);
//! // Not async, but inside a tokio runtime (see `ProbeBuilder::build`).
//! let probe = Probe::builder()
//!     .probe_id("probe-1")
//!     .tls_roots(TlsRoots::System)
//!     .settings(settings)
//!     .build()?;
//! let report = probe.crawl("example.com").await;
//! println!("{}: {} edges", report.outcome, report.records.edges.len());
//! # Ok(()) }
//! ```
//!
//! # The embedding API
//!
//! - [`Probe`], built by [`ProbeBuilder`] from a [`ProbeConfig`] (what is fixed for
//!   the probe's life) and cheap to clone: clones share one engine. Each task reads
//!   one snapshot of the [`ProbeSettings`] (with its [`DnsSettings`]), which
//!   [`Probe::update_settings`] swaps while the probe runs.
//! - [`CrawlReport`], with its [`Outcome`] (and that outcome's [`Status`]) and
//!   [`PhaseTimings`].
//! - [`catch_panic`] and [`panic_is_contained`]: the panic containment every task
//!   runs under (outcome `internal`), for callers that run work of their own around
//!   a crawl and for a process-wide panic hook.
//! - [`model`]: the graph records (`spyder-model`), re-exported.
//!
//! # How the crate is laid out
//!
//! | module | job |
//! | --- | --- |
//! | `engine` | the task: SPEC §1 steps 1–10 under one deadline, records and candidates |
//! | `fetch` | the web phase: connect, robots.txt, root page, redirects |
//! | `dns` | the DNS client (UDP multiplexing, TCP fallback, cache) and step 3 |
//! | `tls` | connect and handshake, certificate capture and verification |
//! | `http` | HTTP/1.1 over one connection, bounded bodies |
//! | `links` | link hosts from HTML (charset, authority fast path, tokenizer sink) |
//! | `robots` | robots.txt rules and their cache |
//! | `policy` | which addresses and names may be contacted (SPEC §3.5) |
//! | `politeness` | per-host token buckets and per-address connection slots |
//! | `resources` | the process's descriptor limit |
//! | `config`, `report`, `contain` | the types above |
//!
//! The modules are not part of the API. The building blocks that the binary, the
//! benchmarks, the fuzz targets and this crate's tests reach into (`dns`, `http`,
//! `links`, `robots`, `resources`, `tls`) are public but hidden from the
//! documentation, and may change without notice.

#![deny(missing_docs)]

mod config;
mod contain;
mod engine;
mod fetch;
mod policy;
mod politeness;
mod report;

#[doc(hidden)]
pub mod dns;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
#[doc(hidden)]
pub mod http;
#[doc(hidden)]
pub mod links;
#[doc(hidden)]
pub mod resources;
#[doc(hidden)]
pub mod robots;
#[doc(hidden)]
pub mod tls;

pub use config::{DnsSettings, ProbeConfig, ProbeSettings, TlsRoots};
pub use contain::{CatchPanic, catch_panic, panic_is_contained};
pub use engine::{BuildError, Probe, ProbeBuilder};
pub use report::{CrawlReport, Outcome, PhaseTimings, Status};
pub use spyder_model as model;

//! spyder's emitter: batches graph records and delivers them (SPEC §3.1, §3.11).
//!
//! Records from many crawls are gathered into [`Batch`](spyder_model::Batch)es, flushed
//! by size or age, and written as `json`, `jsonl` or `csv` to stdout, a file, or an
//! HTTP(S) ingest endpoint (with retries and mTLS). What the ingest endpoint cannot
//! take is spooled to disk as JSON and replayed later; a closed stdout or file spools
//! nothing and counts what it did not write. Every [`Emitter::submit`] returns a [`Receipt`]
//! that resolves only once the records are delivered, written or spooled, so a queue
//! item is acked only when its records are safe.
//!
//! Settings change at runtime (SPEC §2.10): [`Emitter::set_batch_limits`] at once (Tier 1),
//! [`Emitter::reconfigure_output`] at a batch boundary (Tier 2).
//!
//! # Layout
//!
//! The modules are private; what callers use is re-exported here.
//!
//! * `handle`: [`Emitter`], the cloneable handle, and its [`Receipt`]s; starts the
//!   tasks and sets the stop mode.
//! * `status`: what the caller is told: [`Delivery`], [`EmitterStatus`],
//!   [`ShutdownReport`].
//! * `config`: [`EmitterConfig`], [`BatchLimits`], [`OutputSettings`] and the
//!   [`Destination`]s; `error`: [`EmitterError`]; `encode`: the [`Format`]s' bytes.
//! * `batcher`: the task that seals batches by size or age and switches outputs at a
//!   batch boundary.
//! * `output`: opening and checking an output, and its task: `output::stream`
//!   (stdout, a file, a writer), `output::ingest` (POST with retries, spool replay;
//!   its HTTP client in `output::ingest::client`) and `output::spool` (the spool
//!   files and the order batches reach them in).
//! * `shared` (sealed batches, counters) and `mode` (how the tasks stop, deadlines):
//!   what all the tasks use.
//!
//! ```no_run
//! # async fn run() -> Result<(), spyder_emitter::EmitterError> {
//! use std::time::Duration;
//! use spyder_emitter::{Destination, Emitter, EmitterConfig, Format};
//! let emitter = Emitter::start(EmitterConfig {
//!     probe_id: "local-1".into(),
//!     run_id: "run-1".into(),
//!     format: Format::Json,
//!     destination: Destination::Stdout,
//!     spool_dir: "spool".into(),
//!     max_edges: 10_000,
//!     flush_interval: Duration::from_secs(2),
//!     node_threshold_ratio: 0.5,
//!     status_records: false,
//! })
//! .await?;
//! let delivery = emitter.submit(spyder_model::Records::default()).await?;
//! let report = emitter.shutdown(Duration::from_secs(10)).await;
//! # let _ = (delivery, report); Ok(()) }
//! ```

#![deny(missing_docs)]

mod batcher;
mod config;
mod encode;
mod error;
mod handle;
mod mode;
mod output;
mod shared;
mod status;

pub use config::{
    BatchLimits, Destination, EmitterConfig, Format, IngestConfig, MtlsFiles, OutputSettings,
};
pub use encode::{CSV_HEADER, CSV_STATUS_COLUMNS};
pub use error::EmitterError;
pub use handle::{Emitter, Receipt};
pub use status::{Delivery, EmitterStatus, ShutdownReport};

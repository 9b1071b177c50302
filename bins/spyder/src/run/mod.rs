//! The run loop: input -> queue -> probe -> dedup -> emitter/sink, and the shutdown of
//! SPEC §3.14.
//!
//! `wiring` builds the components from the configuration (the one place that maps
//! config keys to library settings); `input` streams the domains file into the
//! memory queue; `pool` is the worker pool that takes leases from the
//! `WorkQueue` and runs `task` on each; `reload` applies live changes (API,
//! SIGHUP); `ops` serves health, metrics and the API; `shutdown` is SPEC §3.14 as
//! one sequence under one deadline.
//!
//! One item's path: a [`Leased`](spyder_queue::Leased) host splits into a hold and a
//! finalizer; the task claims it in dedup, crawls, settles its records (dedup's marks
//! ride with the finalizer) and submits them; the finalizer resolves when the emitter
//! says the batch is delivered, written or spooled (ack) or lost (the item returns).

mod fleet;
mod input;
mod ops;
mod pool;
mod reload;
mod resume;
mod shutdown;
mod task;
mod wiring;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use spyder_config::{LiveConfig, Loaded};
use spyder_emitter::Emitter;
use spyder_model::HostName;
use spyder_probe::Probe;
use spyder_queue::{QueueLengths, WorkQueue};
use spyder_sink::{Dedup, DiscoverySink, SinkSettings};
use tokio_util::task::TaskTracker;

use crate::progress::{StallWatch, Stats};

use pool::Pool;
pub(crate) use pool::set_paused;
pub use wiring::build_traces;

/// Leases held beyond `concurrency` while their records wait for delivery (SPEC §3.8).
const EXTRA_HELD_LEASES: usize = 32;

/// Command-line switches that are not configuration, and what live changes need.
#[derive(Debug)]
pub struct Options {
    pub quiet: bool,
    pub progress: bool,
    /// `-fail_on_error`: exit 2 when tasks ran and every one failed.
    pub fail_on_error: bool,
    /// The log subscriber's switches (`logging.*` is Tier 1).
    pub logs: crate::logging::Logs,
    /// The running configuration; PATCH and SIGHUP change it.
    pub live: LiveConfig,
    /// `-resume FILE`: the file-mode checkpoint.
    pub resume: Option<std::path::PathBuf>,
    /// The trace export (`telemetry.otel_endpoint`), its layer already installed.
    pub traces: Option<spyder_health::traces::Traces>,
}

/// Runs one probe until its input is done or a signal stops it.
pub async fn run(loaded: Loaded, options: Options) -> ExitCode {
    match shutdown::Run::start(loaded, options).await {
        Ok(run) => run.finish().await,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Everything a worker needs, shared.
pub(crate) struct Shared {
    probe: Probe,
    pub(crate) emitter: Emitter,
    pub(crate) queue: Arc<dyn WorkQueue>,
    dedup: Arc<dyn Dedup>,
    pub(crate) sink: Option<Box<dyn DiscoverySink>>,
    /// Finalizers resolving (acks, dedup commits): shutdown waits for them.
    acks: TaskTracker,
    /// Read by every crawl; replaced when `exclude_tlds`, `allow_private` or
    /// `max_domains` change.
    sink_settings: ArcSwap<SinkSettings>,
    pub(crate) live: LiveConfig,
    pub(crate) stats: Arc<Stats>,
    in_flight: Mutex<HashMap<u64, HostName>>,
    next_task: AtomicU64,
    pub(crate) pool: Pool,
    /// Stall detection (SPEC §5 P-8), also the `progress` health check.
    stall: StallWatch,
    /// The last queue depth read (SPEC §3.13 `spyder_queue_depth{list}`).
    pub(crate) depth: Mutex<QueueLengths>,
    pub(crate) started: std::time::Instant,
    /// `-resume`: which hosts of the input are finished.
    resume: Option<Arc<spyder_queue::ResumeTracker>>,
    /// The trace export, when `telemetry.otel_endpoint` is set and it started.
    pub(crate) traces: Option<spyder_health::traces::Traces>,
    /// The probes of the shared queue, as the last heartbeat read them.
    pub(crate) fleet: Mutex<Vec<spyder_queue::fleet::FleetMember>>,
    /// Why the last SIGHUP reload was refused, until one succeeds (the dashboard's
    /// `config_error` state).
    pub(crate) config_error: Arc<Mutex<Option<String>>>,
}

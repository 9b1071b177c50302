//! The run loop: input -> queue -> probe -> dedup -> emitter/sink, and the shutdown of
//! SPEC §3.14.
//!
//! A reader task streams the domains file into the bounded memory queue; a pool of
//! `crawling.concurrency` workers takes leases from it, crawls, de-duplicates, and
//! hands records to the emitter and discoveries to the sink. A lease is released once
//! both are handed off, so the queue reports "done" only when no task can add more
//! work; the emitter's shutdown then delivers or spools whatever is pending.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use spyder_config::{Config, ConfigChange, LiveConfig, Loaded, OutputFormat};
use spyder_emitter::{Destination, Emitter, EmitterConfig, Format, IngestConfig, MtlsFiles};
use spyder_model::HostName;
use spyder_probe::{Outcome, Probe};
use spyder_queue::{
    InputLine, InputReader, Lease, MemoryQueue, RedisLease, RedisQueue, RedisQueueConfig,
};
use spyder_sink::{
    ChannelSink, Dedup, DiscoverySink, MemoryDedup, RedisDedup, RedisSink, SinkSettings,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::progress::{self, Display, StallWatch, Stats};

/// Discoveries waiting behind the file input (SPEC §3.10).
const DISCOVERY_CAPACITY: usize = 100_000;
/// Budget for delivering pending batches at shutdown (SPEC §3.14 step 3).
const DELIVERY_BUDGET: Duration = Duration::from_secs(10);
/// Exit code after a second signal.
const EXIT_INTERRUPTED: u8 = 130;
/// Exit code when some batches were neither delivered nor spooled.
const EXIT_RECORDS_LOST: u8 = 3;
/// In-flight hosts named when a shutdown cancels tasks.
const CANCELLED_HOSTS_SHOWN: usize = 10;
/// Leases held beyond `concurrency` while their records wait for delivery (SPEC §3.8).
const EXTRA_HELD_LEASES: usize = 32;
/// Queue lengths are read every this many seconds (one Redis round trip in queue mode).
const DEPTH_EVERY_TICKS: u64 = 5;
/// Budget for sending the last acks at shutdown (SPEC §3.14 step 4).
const ACK_BUDGET: Duration = Duration::from_secs(10);
/// What a shutdown may take beyond `shutdown_grace` (SPEC §3.14), less a margin for
/// the process to exit.
const SHUTDOWN_AFTER_GRACE: Duration = Duration::from_millis(14_000);
/// Kept back from the emitter's share for acks, dedup marks and the ops listener.
const AFTER_EMITTER_RESERVE: Duration = Duration::from_secs(2);
/// Budget for the ops listener to stop.
const OPS_STOP_BUDGET: Duration = Duration::from_secs(2);

/// The one deadline of a shutdown: every step takes at most what is left of it.
struct ShutdownClock {
    deadline: tokio::time::Instant,
}

impl ShutdownClock {
    fn start(shutdown_grace: Duration) -> Self {
        let now = tokio::time::Instant::now();
        let limit = shutdown_grace.saturating_add(SHUTDOWN_AFTER_GRACE);
        Self {
            // A grace too long for an Instant (it is bounded by validation) waits as
            // long as the clock can count.
            deadline: now.checked_add(limit).unwrap_or_else(|| {
                now.checked_add(Duration::from_secs(365 * 24 * 3600))
                    .unwrap_or(now)
            }),
        }
    }

    /// Time left until the deadline.
    fn left(&self) -> Duration {
        self.deadline
            .saturating_duration_since(tokio::time::Instant::now())
    }

    /// What the steps after the emitter keep back: 2 s, or a quarter of what is left.
    fn reserve(&self) -> Duration {
        AFTER_EMITTER_RESERVE.min(self.left() / 4)
    }
}

/// Where work comes from: the memory queue fed by the domains file (file mode) or
/// the shared Redis list (queue mode).
pub(crate) enum WorkQueue {
    Memory(MemoryQueue),
    Redis(RedisQueue),
}

/// One leased host.
enum Work {
    Memory(Lease),
    Redis(RedisLease),
}

impl WorkQueue {
    /// Reads the lengths (one round trip in queue mode).
    async fn lengths(&self) -> Option<QueueLengths> {
        match self {
            Self::Memory(q) => {
                let d = q.depth();
                Some(QueueLengths {
                    pending: (d.input + d.discovered) as u64,
                    processing: d.held as u64,
                    dead: 0,
                })
            }
            Self::Redis(q) => q.depth().await.ok().map(|d| QueueLengths {
                pending: d.pending,
                processing: d.processing,
                dead: d.dead,
            }),
        }
    }

    /// Leases held by this probe.
    pub(crate) fn held(&self) -> usize {
        match self {
            Self::Memory(q) => q.depth().held,
            Self::Redis(q) => q.held(),
        }
    }

    async fn next(&self) -> Option<Work> {
        match self {
            Self::Memory(q) => q.next().await.map(Work::Memory),
            Self::Redis(q) => q.next().await.map(Work::Redis),
        }
    }

    fn stop(&self) {
        match self {
            Self::Memory(q) => q.stop(),
            Self::Redis(q) => q.stop(),
        }
    }

    /// Work waiting or running that this probe knows of.
    fn pending(&self) -> bool {
        match self {
            Self::Memory(q) => {
                let d = q.depth();
                d.input + d.discovered + d.held > 0
            }
            Self::Redis(q) => q.held() > 0,
        }
    }
}

impl Work {
    fn host(&self) -> &HostName {
        match self {
            Self::Memory(l) => &l.host,
            Self::Redis(l) => &l.item.host,
        }
    }
}

/// Command-line switches that are not configuration, and what live changes need.
#[derive(Clone, Debug)]
pub struct Options {
    pub quiet: bool,
    pub progress: bool,
    /// The log subscriber's switches (`logging.*` is Tier 1).
    pub logs: crate::logging::Logs,
    /// The running configuration; PATCH and SIGHUP change it.
    pub live: LiveConfig,
}

/// Runs one probe until its input is done or a signal stops it.
pub async fn run(loaded: Loaded, options: Options) -> ExitCode {
    match Run::start(loaded, options).await {
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
    pub(crate) queue: WorkQueue,
    dedup: Arc<dyn Dedup>,
    pub(crate) sink: Option<Box<dyn DiscoverySink>>,
    /// Acks waiting for their records to be safe (queue mode).
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
}

/// Queue lengths as the stats endpoint and `spyder_queue_depth{list}` show them.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct QueueLengths {
    pub pending: u64,
    pub processing: u64,
    pub dead: u64,
}

/// The worker pool: `crawling.concurrency` workers, resized at runtime (SPEC §2.10:
/// growing spawns workers at once; shrinking lets running tasks finish, and the
/// surplus workers leave before taking their next lease) and paused by the API.
#[derive(Debug)]
pub(crate) struct Pool {
    target: std::sync::atomic::AtomicUsize,
    running: std::sync::atomic::AtomicUsize,
    /// Workers crawling right now (`spyder_active_workers`).
    active: std::sync::atomic::AtomicUsize,
    tasks: TaskTracker,
    aborts: Mutex<Vec<tokio::task::AbortHandle>>,
    paused: tokio::sync::watch::Sender<bool>,
}

impl Pool {
    fn new() -> Self {
        Self {
            target: std::sync::atomic::AtomicUsize::new(0),
            running: std::sync::atomic::AtomicUsize::new(0),
            active: std::sync::atomic::AtomicUsize::new(0),
            tasks: TaskTracker::new(),
            aborts: Mutex::new(Vec::new()),
            paused: tokio::sync::watch::Sender::new(false),
        }
    }

    /// Workers wanted now.
    pub(crate) fn target(&self) -> usize {
        self.target.load(Ordering::Relaxed)
    }

    /// Workers crawling now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Whether leasing is paused.
    pub(crate) fn paused(&self) -> bool {
        *self.paused.borrow()
    }

    /// True (once) for a worker that should leave because the pool shrank.
    fn should_leave(&self) -> bool {
        self.running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running > self.target()).then(|| running - 1)
            })
            .is_ok()
    }

    /// Waits until every worker has left.
    async fn drained(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Aborts every worker (their tasks are dropped where they stand).
    fn abort_all(&self) {
        if let Ok(aborts) = self.aborts.lock() {
            for abort in aborts.iter() {
                abort.abort();
            }
        }
    }
}

/// Sets the pool to `target` workers: spawns the missing ones; surplus ones leave
/// after their current task.
///
/// Spawns at most the number missing when called: a worker that finds the queue
/// done leaves at once, and refilling behind it would never end (with an empty
/// input and a large `concurrency` this used to spin forever).
fn resize(shared: &Arc<Shared>, target: usize) {
    let pool = &shared.pool;
    pool.target.store(target, Ordering::Relaxed);
    let missing = target.saturating_sub(pool.running.load(Ordering::Acquire));
    let mut handles = Vec::with_capacity(missing);
    for _ in 0..missing {
        let claimed = pool
            .running
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |running| {
                (running < pool.target()).then_some(running + 1)
            });
        if claimed.is_err() {
            break;
        }
        handles.push(pool.tasks.spawn(work(Arc::clone(shared))).abort_handle());
    }
    if let Ok(mut aborts) = pool.aborts.lock() {
        aborts.retain(|a| !a.is_finished());
        aborts.extend(handles);
    }
}

/// Pauses (`true`) or resumes leasing; running tasks go on (SPEC §3.12, §3.8).
pub(crate) fn set_paused(shared: &Shared, paused: bool) {
    shared.pool.paused.send_replace(paused);
    if let WorkQueue::Redis(q) = &shared.queue {
        q.pause(paused);
    }
}

struct Run {
    shared: Arc<Shared>,
    reader: Option<tokio::task::JoinHandle<()>>,
    progress: Option<tokio::task::JoinHandle<()>>,
    stall_watch: tokio::task::JoinHandle<()>,
    display: Display,
    quiet: bool,
    signals: Signals,
    ops: Option<Ops>,
}

/// The ops listener (health, metrics, API) and how to stop it.
struct Ops {
    readiness: spyder_health::Readiness,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Run {
    async fn start(loaded: Loaded, options: Options) -> Result<Self, String> {
        let config = loaded.config;
        tracing::info!(
            probe = %config.probe,
            run = %config.run,
            concurrency = config.crawling.concurrency,
            exclude_tlds = ?config.exclude_tlds,
            config_file = ?loaded.file,
            "starting spyder"
        );
        if let Some(file) = &loaded.file {
            tracing::info!(file = %file.display(), "loaded config from file");
        }
        // The ops listener first: a busy port ends the run before anything connects.
        let ops_server = match config.telemetry.metrics_addr.as_str() {
            "" => None,
            addr => Some(
                spyder_health::OpsServer::bind(addr)
                    .await
                    .map_err(|e| format!("telemetry.metrics_addr: {e}"))?,
            ),
        };
        // The recorder before anything that counts: the queue's first reaper pass,
        // the emitter's spool scan and the first tasks all run before the ops
        // server is composed, and whatever they record with no recorder is lost.
        let metrics = match &ops_server {
            None => None,
            Some(_) => match spyder_health::install_metrics() {
                Ok(metrics) => Some(metrics),
                Err(e) => {
                    tracing::warn!(error = %e, "metrics unavailable");
                    None
                }
            },
        };
        let signals = Signals::install()?;
        let concurrency = config.crawling.concurrency as usize;
        let queue_mode = !config.redis.queue_addr.is_empty();
        if queue_mode && !config.domains.is_empty() {
            tracing::warn!("queue mode: domains is ignored");
        }

        let probe = Probe::builder()
            .config(config.probe_config())
            .build()
            .map_err(|e| format!("cannot start the probe: {e}"))?;
        let emitter = Emitter::start(emitter_config(&config))
            .await
            .map_err(|e| e.to_string())?;

        let mut redis_dedup = None;
        let dedup: Arc<dyn Dedup> = if config.redis.addr.is_empty() {
            tracing::info!("memory dedupe enabled");
            Arc::new(MemoryDedup::new(
                config.dedup.ttl,
                config.dedup.memory_max_entries as usize,
            ))
        } else {
            let redis = Arc::new(
                RedisDedup::connect(
                    &config.redis.addr,
                    config.dedup.ttl,
                    config.dedup.memory_max_entries as usize,
                )
                .await
                .map_err(|e| e.to_string())?,
            );
            tracing::info!("redis dedupe enabled");
            redis_dedup = Some(Arc::clone(&redis));
            redis
        };

        let (queue, reader, memory) = if queue_mode {
            let redis = RedisQueue::connect(RedisQueueConfig {
                addr: config.redis.queue_addr.clone(),
                setting: "redis.queue_addr".to_owned(),
                key: config.redis.queue_key.clone(),
                lease_timeout: config.redis.lease_timeout,
                max_attempts: config.redis.max_attempts,
                capacity: concurrency + EXTRA_HELD_LEASES,
            })
            .await
            .map_err(|e| e.to_string())?;
            tracing::info!(key = %config.redis.queue_key, "redis queue enabled");
            (WorkQueue::Redis(redis), None, None)
        } else {
            let reader = InputReader::open(&config.domains)
                .await
                .map_err(|e| format!("domains: cannot open {:?}: {e}", config.domains))?;
            let memory = MemoryQueue::new(concurrency.max(64) * 2, DISCOVERY_CAPACITY);
            (
                WorkQueue::Memory(memory.clone()),
                Some(reader),
                Some(memory),
            )
        };

        // The sink exists whether or not `crawling.continuous` is on: the key is Tier 1,
        // and each crawl reads it from its config snapshot.
        let sink: Option<Box<dyn DiscoverySink>> = match &memory {
            Some(memory) => Some(Box::new(ChannelSink::new(
                memory.clone(),
                Arc::clone(&dedup),
            ))),
            None => {
                if config.crawling.continuous && config.redis.addr.is_empty() {
                    spyder_sink::warn_without_shared_dedup();
                }
                let sink = RedisSink::connect(
                    &config.redis.queue_addr,
                    &config.redis.queue_key,
                    Arc::clone(&dedup),
                )
                .await
                .map_err(|e| e.to_string())?;
                Some(Box::new(sink))
            }
        };
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            probe,
            emitter,
            queue,
            dedup,
            sink,
            acks: TaskTracker::new(),
            sink_settings: ArcSwap::from_pointee(sink_settings(&config)),
            live: options.live.clone(),
            stats: Arc::clone(&stats),
            in_flight: Mutex::new(HashMap::new()),
            next_task: AtomicU64::new(0),
            pool: Pool::new(),
            stall: StallWatch::default(),
            depth: Mutex::new(QueueLengths::default()),
            started: std::time::Instant::now(),
        });

        let read_progress = Arc::new(ReadProgress::default());
        let reader = match (reader, memory) {
            (Some(reader), Some(memory)) => Some(tokio::spawn(feed(
                reader,
                memory,
                Arc::clone(&shared),
                Arc::clone(&read_progress),
            ))),
            _ => {
                read_progress.finished();
                None
            }
        };
        resize(&shared, concurrency);
        subscribe(&shared, &options);
        spawn_reload_on_sighup(shared.live.clone())?;
        let ops = match ops_server {
            Some(server) => Some(serve_ops(
                server,
                &shared,
                &config,
                redis_dedup,
                metrics,
                signals.first.clone(),
            )),
            None => {
                tracing::info!("service marked as ready");
                None
            }
        };
        let display = Display::choose(options.progress, options.quiet);
        let progress = progress::spawn(display, Arc::clone(&stats), {
            let read_progress = Arc::clone(&read_progress);
            move || read_progress.percent()
        });
        let stall_watch = tokio::spawn(watch_stalls(Arc::clone(&shared), read_progress));
        Ok(Self {
            shared,
            reader,
            progress,
            stall_watch,
            display,
            quiet: options.quiet,
            signals,
            ops,
        })
    }

    /// Waits for the end of the input, a signal or a closed output, then shuts down
    /// (SPEC §3.14) as one sequence under one deadline: `shutdown_grace` + 15 s from
    /// the signal, whatever hangs (ingest, Redis, the ops listener).
    async fn finish(mut self) -> ExitCode {
        let graceful = tokio::select! {
            () = self.shared.pool.drained() => false,
            () = self.signals.first.cancelled() => true,
            () = self.shared.emitter.closed() => {
                tracing::warn!("output closed; shutting down");
                true
            }
            () = self.shared.emitter.overflowed() => {
                tracing::error!("batches can be neither delivered nor spooled; intake stops and the run shuts down");
                true
            }
        };
        let shutdown_grace = if graceful {
            self.shared.live.current().crawling.shutdown_grace
        } else {
            Duration::ZERO
        };
        let clock = ShutdownClock::start(shutdown_grace);
        if graceful {
            // Step 1: /ready answers 503, the API refuses changes, intake stops.
            if let Some(ops) = &self.ops {
                ops.readiness.begin_shutdown();
            }
            self.shared.queue.stop();
            // Paused workers wake up to find the queue stopped, and leave.
            set_paused(&self.shared, false);
            if let Some(reader) = &self.reader {
                reader.abort();
            }
            // Step 2: in-flight tasks get the grace period, then are cancelled.
            let grace =
                tokio::time::timeout(clock.left().min(shutdown_grace), self.shared.pool.drained());
            tokio::select! {
                result = grace => if result.is_err() { self.cancel_in_flight().await },
                () = self.signals.second.cancelled() => return self.interrupted().await,
            }
        }
        if let Some(reader) = &self.reader {
            reader.abort();
        }
        // Step 3: pending batches get one try within the budget; the rest is spooled.
        // What follows (acks, dedup marks, the ops listener) keeps a reserve.
        let emitter = self.shared.emitter.clone();
        let total = clock.left().saturating_sub(clock.reserve());
        let report = tokio::select! {
            report = emitter.shutdown_within(DELIVERY_BUDGET.min(total), total) => report,
            () = self.signals.second.cancelled() => return self.interrupted().await,
        };
        // Step 4: acks for what is now delivered or spooled; the rest stays leased.
        self.shared.acks.close();
        tokio::select! {
            done = tokio::time::timeout(clock.left().min(ACK_BUDGET), self.shared.acks.wait()) => {
                if done.is_err() {
                    tracing::warn!("some acks were not sent; their items stay in :processing");
                }
            }
            () = self.signals.second.cancelled() => return self.interrupted().await,
        }
        // Marks of acked work still waiting in this process go to the shared dedup.
        if tokio::time::timeout(clock.left().min(ACK_BUDGET), self.shared.dedup.flush())
            .await
            .is_err()
        {
            tracing::warn!("dedup marks not sent; other probes may emit some records again");
        }
        self.end_progress();
        self.stop_ops(clock.left().min(OPS_STOP_BUDGET)).await;
        tracing::info!("shutdown complete");
        if report.batches_lost > 0 {
            tracing::error!(
                batches = report.batches_lost,
                "records were neither delivered nor spooled (see the errors above)"
            );
            return ExitCode::from(EXIT_RECORDS_LOST);
        }
        ExitCode::SUCCESS
    }

    async fn stop_ops(&mut self, budget: Duration) {
        if let Some(ops) = self.ops.take() {
            ops.readiness.begin_shutdown();
            ops.stop.cancel();
            let _ = tokio::time::timeout(budget, ops.task).await;
        }
    }

    async fn cancel_in_flight(&mut self) {
        let hosts: Vec<HostName> = self
            .shared
            .in_flight
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        self.shared.pool.abort_all();
        self.shared.pool.drained().await;
        if !hosts.is_empty() {
            let shown: Vec<&str> = hosts
                .iter()
                .take(CANCELLED_HOSTS_SHOWN)
                .map(HostName::as_str)
                .collect();
            tracing::warn!(
                cancelled = hosts.len(),
                hosts = ?shown,
                "shutdown grace elapsed; in-flight tasks cancelled and their records dropped"
            );
        }
    }

    /// Second signal: spool what is in memory and leave with 130.
    async fn interrupted(mut self) -> ExitCode {
        // Aborting only requests cancellation: a worker being polled on another thread
        // may still submit. Wait until they are all gone so nothing is submitted after
        // the emitter stopped taking records.
        self.shared.pool.abort_all();
        self.shared.pool.drained().await;
        let report = self.shared.emitter.clone().abort().await;
        tracing::warn!(?report, "second signal: in-memory records spooled; exiting");
        self.end_progress();
        ExitCode::from(EXIT_INTERRUPTED)
    }

    fn end_progress(&mut self) {
        self.stall_watch.abort();
        if let Some(p) = self.progress.take() {
            p.abort();
        }
        progress::finish(self.display);
        if !self.quiet {
            eprintln!("{}", self.shared.stats.snapshot().summary());
        }
    }
}

/// Streams the input into the queue, logging and counting invalid lines.
async fn feed(
    mut reader: InputReader,
    queue: MemoryQueue,
    shared: Arc<Shared>,
    read: Arc<ReadProgress>,
) {
    let mut invalid_lines = InvalidLines::default();
    while let Some(line) = reader.next().await {
        read.update(&reader);
        match line {
            InputLine::Host { host, .. } => {
                if queue.push_input(host).await.is_err() {
                    return;
                }
            }
            invalid @ InputLine::Invalid { .. } => {
                invalid_lines.log(&invalid);
                shared.stats.task_done(Outcome::Invalid, 0);
            }
        }
    }
    invalid_lines.finish();
    read.update(&reader);
    read.finished();
    queue.close_input();
}

/// Invalid input lines shown one by one.
const INVALID_LINES_SHOWN: u64 = 100;
/// After those, one summary line at most this often.
const INVALID_SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Logs invalid input lines: the first [`INVALID_LINES_SHOWN`] each, then a count
/// every [`INVALID_SUMMARY_EVERY`], so a file of garbage does not flood stderr.
#[derive(Default)]
struct InvalidLines {
    seen: u64,
    unshown: u64,
    last_summary: Option<std::time::Instant>,
}

impl InvalidLines {
    fn log(&mut self, line: &InputLine) {
        self.seen += 1;
        if self.seen <= INVALID_LINES_SHOWN {
            tracing::warn!("{line}");
            if self.seen == INVALID_LINES_SHOWN {
                tracing::warn!(
                    "{INVALID_LINES_SHOWN} invalid lines shown; further ones are counted and summarised every {}s",
                    INVALID_SUMMARY_EVERY.as_secs()
                );
                self.last_summary = Some(std::time::Instant::now());
            }
            return;
        }
        self.unshown += 1;
        if self
            .last_summary
            .is_none_or(|at| at.elapsed() >= INVALID_SUMMARY_EVERY)
        {
            self.summarise();
        }
    }

    fn summarise(&mut self) {
        if self.unshown > 0 {
            tracing::warn!(
                not_shown = self.unshown,
                invalid_total = self.seen,
                "more invalid input lines (counted as invalid, not shown)"
            );
            self.unshown = 0;
        }
        self.last_summary = Some(std::time::Instant::now());
    }

    fn finish(&mut self) {
        self.summarise();
    }
}

/// One worker: crawl leases until the queue is done or the pool shrinks.
async fn work(shared: Arc<Shared>) {
    let mut paused = shared.pool.paused.subscribe();
    loop {
        if shared.pool.should_leave() {
            return;
        }
        // Paused: take no new lease (running tasks of other workers go on).
        if paused.wait_for(|p| !*p).await.is_err() {
            return;
        }
        let Some(lease) = shared.queue.next().await else {
            shared.pool.running.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let id = shared.next_task.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = shared.in_flight.lock() {
            m.insert(id, lease.host().clone());
        }
        let active = shared.pool.active.fetch_add(1, Ordering::Relaxed) + 1;
        metrics::gauge!("spyder_active_workers").set(active as f64);
        let host = lease.host().clone();
        // A panic outside the probe's own containment (dedup, sink, emitter hand-off)
        // ends this task as `internal`; the worker goes on with its next lease.
        if let Err(panic) = spyder_probe::catch_panic(crawl_one(&shared, lease)).await {
            tracing::error!(host = %host, outcome = "internal", reason = %format!("panic: {panic}"), "task failed");
            shared.stats.task_done(Outcome::Internal, 0);
        }
        let active = shared.pool.active.fetch_sub(1, Ordering::Relaxed) - 1;
        metrics::gauge!("spyder_active_workers").set(active as f64);
        if let Ok(mut m) = shared.in_flight.lock() {
            m.remove(&id);
        }
    }
}

/// SPEC §1 steps 1–12 for one lease.
async fn crawl_one(shared: &Shared, lease: Work) {
    let host = lease.host().clone();
    if let Work::Redis(lease) = lease {
        if already_taken(shared.dedup.as_ref(), &lease.item).await {
            // A host is crawled once per run (SPEC §3.6): this copy is not needed.
            tracing::debug!(host = %host, "already crawled or being crawled; item skipped");
            metrics::counter!("spyder_queue_skipped_total", "reason" => "already_taken")
                .increment(1);
            shared.acks.spawn(async move {
                if let Err(e) = lease.ack().await {
                    tracing::error!(host = %host, error = %e, "ack failed; the item stays in :processing");
                }
            });
            return;
        }
        // Claim the host; the mark rides with this probe's next dedup call.
        let claim = [spyder_sink::DedupKey::Crawling(host.as_str()).digest()];
        shared.dedup.mark(&claim).await;
        return crawl_leased(shared, host, Work::Redis(lease)).await;
    }
    crawl_leased(shared, host, lease).await;
}

/// Whether a queue item can be skipped, in at most one dedup call:
/// - an item back from an expired lease (`attempt > 0`) when `crawled|<host>` is
///   marked: some probe crawled the host since, and its records are safe;
/// - a fresh discovered item when the host is crawled or claimed (`crawling|<host>`):
///   the claimed item is crawled, or comes back from its expired lease;
/// - never a fresh seeded item ("seeding twice crawls twice").
async fn already_taken(dedup: &dyn Dedup, item: &spyder_queue::QueueItem) -> bool {
    use spyder_sink::DedupKey;
    let host = item.host.as_str();
    let keys: Vec<spyder_sink::KeyDigest> = if item.attempt > 0 {
        vec![DedupKey::Crawled(host).digest()]
    } else if item.discovered {
        vec![
            DedupKey::Crawled(host).digest(),
            DedupKey::Crawling(host).digest(),
        ]
    } else {
        return false;
    };
    dedup.check(&keys).await.iter().any(|seen| *seen)
}

async fn crawl_leased(shared: &Shared, host: HostName, lease: Work) {
    let report = shared.probe.crawl(host.as_str()).await;
    metrics::histogram!("spyder_task_duration_seconds").record(report.timings.total.as_secs_f64());
    tracing::debug!(host = %host, outcome = %report.outcome, "task done");
    if report.outcome == Outcome::Internal {
        let reason = report.detail.as_deref().unwrap_or("unknown");
        tracing::error!(host = %host, outcome = "internal", reason, "task failed");
    }

    // One dedup call for the records' keys, `queued|`/`crawled|<host>` and the
    // discoveries' `queued|` keys; the sink queues the new discoveries.
    let sink_settings = shared.sink_settings.load();
    let continuous = shared.live.current().crawling.continuous;
    let sink = shared.sink.as_deref().filter(|_| continuous);
    let discoveries = sink.map(|sink| spyder_sink::Discoveries {
        sink,
        candidates: report.candidates,
        settings: &sink_settings,
    });
    let settled =
        spyder_sink::settle_crawl(shared.dedup.as_ref(), &host, report.records, discoveries).await;
    let records = settled.records;
    shared.stats.records_emitted(&records);
    shared.stats.task_done(report.outcome, records.edges.len());
    let receipt = shared.emitter.submit(records);
    match lease {
        // The memory queue keeps nothing durable: its lease only says "this task may
        // still add work". Once records and discoveries are handed off it is released,
        // and the emitter's shutdown delivers or spools whatever is pending.
        Work::Memory(lease) => {
            settled.pending.mark(shared.dedup.as_ref()).await;
            lease.ack();
        }
        // A Redis item is acked only once its records are delivered, written or
        // spooled (SPEC §3.8); until then it stays in :processing under its lease.
        // Its dedup marks wait as long, so a probe killed before its flush leaves
        // nothing marked that the re-crawl would drop.
        Work::Redis(lease) => {
            // Held leases are capped (concurrency + 32, SPEC §3.8) and those waiting
            // for their batch count too: once half the margin waits, seal the batch
            // rather than let the workers idle until the flush interval.
            if let WorkQueue::Redis(q) = &shared.queue
                && q.held().saturating_sub(shared.pool.active()) >= EXTRA_HELD_LEASES / 2
            {
                shared.emitter.flush_now();
            }
            let dedup = Arc::clone(&shared.dedup);
            let pending = settled.pending;
            shared.acks.spawn(async move {
                match receipt.await {
                    Ok(_) => {
                        pending.mark(dedup.as_ref()).await;
                        if let Err(e) = lease.ack().await {
                            tracing::error!(host = %host, error = %e, "ack failed; the item stays in :processing");
                        }
                    }
                    Err(e) => {
                        pending.release(dedup.as_ref()).await;
                        tracing::error!(host = %host, error = %e, "records not safe; not acking");
                    }
                }
            });
        }
    }
}

fn sink_settings(config: &Config) -> SinkSettings {
    SinkSettings {
        exclude_tlds: config.exclude_tlds.clone(),
        allow_private: config.crawling.allow_private,
        max_domains: config.crawling.max_domains,
    }
}

/// Tier 1 keys take effect in the running process (SPEC §2.10); each task reads one
/// snapshot, so a change applies from the next task on.
fn subscribe(shared: &Arc<Shared>, options: &Options) {
    let live = &shared.live;
    let weak = Arc::downgrade(shared);
    live.subscribe("workers", move |change: &ConfigChange| {
        if change.touches("crawling.concurrency")
            && let Some(shared) = weak.upgrade()
        {
            let target = change.new.crawling.concurrency as usize;
            tracing::info!(concurrency = target, "worker pool resized");
            spyder_probe::resources::warn_if_short(
                &spyder_probe::resources::descriptor_limit(),
                target,
                change.new.dns.sockets as usize,
            );
            if let WorkQueue::Redis(q) = &shared.queue {
                q.set_capacity(target + EXTRA_HELD_LEASES);
            }
            resize(&shared, target);
        }
    });
    let weak = Arc::downgrade(shared);
    live.subscribe("probe", move |change: &ConfigChange| {
        if let Some(shared) = weak.upgrade() {
            shared
                .probe
                .update_settings(Arc::new(change.new.probe_settings()));
            shared
                .sink_settings
                .store(Arc::new(sink_settings(&change.new)));
        }
    });
    let weak = Arc::downgrade(shared);
    live.subscribe("queue", move |change: &ConfigChange| {
        if change.touches("redis")
            && let Some(shared) = weak.upgrade()
            && let WorkQueue::Redis(q) = &shared.queue
        {
            q.set_lease_settings(
                change.new.redis.lease_timeout,
                change.new.redis.max_attempts,
            );
        }
    });
    let weak = Arc::downgrade(shared);
    live.subscribe("emitter", move |change: &ConfigChange| {
        let Some(shared) = weak.upgrade() else { return };
        if change.touches("batch") {
            let limits = emitter_config(&change.new).batch_limits();
            if let Err(e) = shared.emitter.set_batch_limits(limits) {
                tracing::error!(error = %e, "batch settings not applied");
            }
        }
        if change.touches("output") {
            // Opening the new output may touch the disk or the network: switch in the
            // background, at the next batch boundary.
            let config = emitter_config(&change.new);
            let settings = spyder_emitter::OutputSettings {
                format: config.format,
                destination: config.destination,
                spool_dir: config.spool_dir,
            };
            let emitter = shared.emitter.clone();
            tokio::spawn(async move {
                match emitter.reconfigure_output(settings).await {
                    Ok(()) => tracing::info!("output switched"),
                    Err(e) => {
                        tracing::error!(error = %e, "output not switched; the old output stays")
                    }
                }
            });
        }
    });
    let logs = options.logs.clone();
    live.subscribe("logging", move |change: &ConfigChange| {
        if change.touches("logging")
            && let Err(e) = logs.apply(change.new.logging.level, change.new.logging.format)
        {
            tracing::error!(error = %e, "cannot switch logging");
        }
    });
}

/// Starts the ops listener: health checks, `/metrics`, the REST API over this run.
fn serve_ops(
    server: spyder_health::OpsServer,
    shared: &Arc<Shared>,
    config: &Config,
    redis_dedup: Option<Arc<RedisDedup>>,
    metrics: Option<spyder_health::MetricsHandle>,
    stop_run: CancellationToken,
) -> Ops {
    use spyder_health::{CheckOutcome, FnCheck, KeyStore, Metadata, OpsState, RateLimiter};
    let control = Arc::new(crate::control::RunControl {
        shared: Arc::clone(shared),
        stop: stop_run,
    });
    let metadata = Metadata {
        probe: config.probe.clone(),
        run: config.run.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let readiness = spyder_health::Readiness::new();
    let mut builder = OpsState::builder(metadata, control)
        .readiness(readiness.clone())
        .keys(KeyStore::new(config.api.keys.clone()))
        .rate_limiter(RateLimiter::new(
            f64::from(config.api.rate_limit),
            config.api.rate_burst,
        ));
    if let Some(metrics) = metrics {
        builder = builder.metrics(metrics);
    }
    if let Some(dedup) = redis_dedup {
        builder = builder.check(FnCheck::new("redis", false, move || {
            let dedup = Arc::clone(&dedup);
            async move {
                // A dedup call that failed since the last check shows for one round
                // (SPEC §3.9) even if this PING gets through; the PING clears it.
                let calls_ok = dedup.healthy();
                match dedup.ping().await {
                    Ok(()) if !calls_ok => redis_outcome(Err(
                        "a dedup call failed; its keys counted as new".to_owned(),
                    )),
                    result => redis_outcome(result),
                }
            }
        }));
    }
    if matches!(shared.queue, WorkQueue::Redis(_)) {
        let weak = Arc::downgrade(shared);
        builder = builder.check(FnCheck::new("redis_queue", true, move || {
            let shared = weak.upgrade();
            async move {
                match shared.as_deref().map(|s| &s.queue) {
                    Some(WorkQueue::Redis(q)) => redis_outcome(q.ping().await),
                    _ => CheckOutcome::unhealthy("queue gone"),
                }
            }
        }));
    }
    let emitter = shared.emitter.clone();
    builder = builder.check(FnCheck::new("ingest", false, move || {
        let status = emitter.status();
        async move {
            if status.ingest_failing {
                CheckOutcome::degraded(format!(
                    "ingest failing; {} batches spooled",
                    status.spool_files
                ))
            } else {
                CheckOutcome::healthy("")
            }
        }
    }));
    let weak = Arc::downgrade(shared);
    builder = builder.check(FnCheck::new("progress", false, move || {
        let stalled = weak.upgrade().is_some_and(|s| s.stall.stalled());
        async move {
            if stalled {
                CheckOutcome::degraded(
                    "work is pending but no task finished within telemetry.stall_after",
                )
            } else {
                CheckOutcome::healthy("")
            }
        }
    }));
    let state = builder.build();
    let limiter = state.rate_limiter().clone();
    shared.live.subscribe("api", move |change: &ConfigChange| {
        if change.touches("api") {
            limiter.set(
                f64::from(change.new.api.rate_limit),
                change.new.api.rate_burst,
            );
        }
    });
    tracing::info!(addr = %server.local_addr(), "ops listener (health, metrics, API) started");
    let stop = CancellationToken::new();
    let task = server.serve(state, stop.clone());
    readiness.mark_ready();
    Ops {
        readiness,
        stop,
        task,
    }
}

fn redis_outcome(result: Result<(), String>) -> spyder_health::CheckOutcome {
    match result {
        Ok(()) => spyder_health::CheckOutcome::healthy("Redis connection OK"),
        Err(e) => spyder_health::CheckOutcome::unhealthy(format!("Redis connection failed: {e}")),
    }
}

/// SIGHUP re-reads the file and re-applies env and flags (SPEC §2.10); never exits.
fn spawn_reload_on_sighup(live: LiveConfig) -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("signals: {e}"))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let live = live.clone();
            // Reading the file is blocking I/O.
            let result = tokio::task::spawn_blocking(move || live.reload()).await;
            match result {
                Ok(Ok(applied)) => {
                    for warning in &applied.warnings {
                        tracing::warn!("{warning}");
                    }
                    if let Some(message) = applied.skipped_message() {
                        tracing::error!("{message}");
                    }
                    let changed: Vec<&str> = applied.changed.iter().map(|k| k.path).collect();
                    tracing::info!(changed = ?changed, "config reloaded");
                }
                Ok(Err(e)) => tracing::error!("config reload failed, nothing changed: {e}"),
                Err(e) => tracing::error!("config reload failed: {e}"),
            }
        }
    });
    Ok(())
}

fn emitter_config(config: &Config) -> EmitterConfig {
    let out = &config.output;
    let destination = if !out.ingest.is_empty() {
        Destination::Ingest(IngestConfig {
            url: out.ingest.clone(),
            spool_dir: out.spool_dir.clone(),
            mtls: MtlsFiles {
                cert: non_empty(&config.mtls.cert),
                key: non_empty(&config.mtls.key),
                ca: non_empty(&config.mtls.ca),
            },
        })
    } else if !out.file.as_os_str().is_empty() {
        Destination::File(out.file.clone())
    } else {
        Destination::Stdout
    };
    EmitterConfig {
        probe_id: config.probe.clone(),
        run_id: config.run.clone(),
        format: match out.format {
            OutputFormat::Json => Format::Json,
            OutputFormat::Jsonl => Format::Jsonl,
            OutputFormat::Csv => Format::Csv,
        },
        destination,
        spool_dir: out.spool_dir.clone(),
        max_edges: config.batch.max_edges as usize,
        flush_interval: config.batch.flush_interval,
        node_threshold_ratio: config.batch.node_threshold_ratio,
    }
}

fn non_empty(p: &std::path::Path) -> Option<std::path::PathBuf> {
    (!p.as_os_str().is_empty()).then(|| p.to_path_buf())
}

/// Checks for a stall every second (SPEC §5 P-8).
async fn watch_stalls(shared: Arc<Shared>, read: Arc<ReadProgress>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks = 0u64;
    loop {
        tick.tick().await;
        ticks += 1;
        let pending = shared.queue.pending() || !read.done();
        let stall_after = shared.live.current().telemetry.stall_after;
        shared.stall.check(&shared.stats, pending, stall_after);
        if ticks % DEPTH_EVERY_TICKS != 1 {
            continue;
        }
        if let Ok(Some(lengths)) =
            tokio::time::timeout(Duration::from_secs(2), shared.queue.lengths()).await
        {
            for (list, n) in [
                ("pending", lengths.pending),
                ("processing", lengths.processing),
                ("dead", lengths.dead),
            ] {
                metrics::gauge!("spyder_queue_depth", "list" => list).set(n as f64);
            }
            if let Ok(mut depth) = shared.depth.lock() {
                *depth = lengths;
            }
        }
    }
}

/// How far the reader got, for the progress display.
#[derive(Debug, Default)]
struct ReadProgress {
    read: AtomicU64,
    total: AtomicU64,
    done: std::sync::atomic::AtomicBool,
}

impl ReadProgress {
    fn update(&self, reader: &InputReader) {
        let p = reader.progress();
        self.read.store(p.bytes_read, Ordering::Relaxed);
        self.total
            .store(p.total_bytes.unwrap_or(0), Ordering::Relaxed);
    }

    fn finished(&self) {
        self.done.store(true, Ordering::Relaxed);
    }

    fn done(&self) -> bool {
        self.done.load(Ordering::Relaxed)
    }

    fn percent(&self) -> Option<f64> {
        let total = self.total.load(Ordering::Relaxed);
        (total > 0).then(|| 100.0 * self.read.load(Ordering::Relaxed) as f64 / total as f64)
    }
}

/// SIGINT/SIGTERM: the first starts a graceful shutdown, the second an immediate one.
struct Signals {
    first: CancellationToken,
    second: CancellationToken,
}

impl Signals {
    fn install() -> Result<Self, String> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("signals: {e}"))?;
        let mut term = signal(SignalKind::terminate()).map_err(|e| format!("signals: {e}"))?;
        let first = CancellationToken::new();
        let second = CancellationToken::new();
        let (f, s) = (first.clone(), second.clone());
        tokio::spawn(async move {
            for token in [f, s] {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                if !token.is_cancelled() {
                    tracing::info!("signal received; shutting down");
                }
                token.cancel();
            }
        });
        Ok(Self { first, second })
    }
}

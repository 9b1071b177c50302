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

use spyder_config::{Config, Loaded, OutputFormat};
use spyder_emitter::{Destination, Emitter, EmitterConfig, Format, IngestConfig, MtlsFiles};
use spyder_model::{HostName, Records};
use spyder_probe::{Outcome, Probe};
use spyder_queue::{
    InputLine, InputReader, Lease, MemoryQueue, RedisLease, RedisQueue, RedisQueueConfig,
};
use spyder_sink::{
    ChannelSink, Dedup, DiscoverySink, MemoryDedup, RedisDedup, RedisSink, SinkSettings,
};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::progress::{self, Display, StallWatch, Stats};

/// Discoveries waiting behind the file input (SPEC §3.10).
const DISCOVERY_CAPACITY: usize = 100_000;
/// Budget for delivering pending batches at shutdown (SPEC §3.14 step 3).
const DELIVERY_BUDGET: Duration = Duration::from_secs(10);
/// Exit code after a second signal.
const EXIT_INTERRUPTED: u8 = 130;
/// In-flight hosts named when a shutdown cancels tasks.
const CANCELLED_HOSTS_SHOWN: usize = 10;
/// Leases held beyond `concurrency` while their records wait for delivery (SPEC §3.8).
const EXTRA_HELD_LEASES: usize = 32;
/// Budget for sending the last acks at shutdown (SPEC §3.14 step 4).
const ACK_BUDGET: Duration = Duration::from_secs(10);

/// Where work comes from: the memory queue fed by the domains file (file mode) or
/// the shared Redis list (queue mode).
enum WorkQueue {
    Memory(MemoryQueue),
    Redis(RedisQueue),
}

/// One leased host.
enum Work {
    Memory(Lease),
    Redis(RedisLease),
}

impl WorkQueue {
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

/// Command-line switches that are not configuration.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub quiet: bool,
    pub progress: bool,
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
struct Shared {
    probe: Probe,
    emitter: Emitter,
    queue: WorkQueue,
    dedup: Arc<dyn Dedup>,
    sink: Option<Box<dyn DiscoverySink>>,
    /// Acks waiting for their records to be safe (queue mode).
    acks: TaskTracker,
    sink_settings: SinkSettings,
    stats: Arc<Stats>,
    in_flight: Mutex<HashMap<u64, HostName>>,
    next_task: AtomicU64,
}

struct Run {
    shared: Arc<Shared>,
    workers: JoinSet<()>,
    reader: Option<tokio::task::JoinHandle<()>>,
    progress: Option<tokio::task::JoinHandle<()>>,
    stall_watch: tokio::task::JoinHandle<()>,
    display: Display,
    quiet: bool,
    shutdown_grace: Duration,
    signals: Signals,
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
        let concurrency = config.crawling.concurrency as usize;
        let queue_mode = !config.redis.queue_addr.is_empty();
        if queue_mode && !config.domains.is_empty() {
            tracing::warn!("queue mode: domains is ignored");
        }

        let probe = Probe::new(config.probe_config())
            .await
            .map_err(|e| format!("cannot start the probe: {e}"))?;
        let emitter = Emitter::start(emitter_config(&config))
            .await
            .map_err(|e| e.to_string())?;

        let dedup: Arc<dyn Dedup> = if config.redis.addr.is_empty() {
            tracing::info!("memory dedupe enabled");
            Arc::new(MemoryDedup::new(
                config.dedup.ttl,
                config.dedup.memory_max_entries as usize,
            ))
        } else {
            let redis = RedisDedup::connect(
                &config.redis.addr,
                config.dedup.ttl,
                config.dedup.memory_max_entries as usize,
            )
            .await
            .map_err(|e| e.to_string())?;
            tracing::info!("redis dedupe enabled");
            Arc::new(redis)
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

        let sink: Option<Box<dyn DiscoverySink>> = match (&memory, config.crawling.continuous) {
            (_, false) => None,
            (Some(memory), true) => Some(Box::new(ChannelSink::new(
                memory.clone(),
                Arc::clone(&dedup),
            ))),
            (None, true) => {
                if config.redis.addr.is_empty() {
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
            sink_settings: SinkSettings {
                exclude_tlds: config.exclude_tlds.clone(),
                allow_private: config.crawling.allow_private,
                max_domains: config.crawling.max_domains,
            },
            stats: Arc::clone(&stats),
            in_flight: Mutex::new(HashMap::new()),
            next_task: AtomicU64::new(0),
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
        let mut workers = JoinSet::new();
        for _ in 0..concurrency {
            workers.spawn(work(Arc::clone(&shared)));
        }
        let display = Display::choose(options.progress, options.quiet);
        let progress = progress::spawn(display, Arc::clone(&stats), {
            let read_progress = Arc::clone(&read_progress);
            move || read_progress.percent()
        });
        let stall_watch = tokio::spawn(watch_stalls(
            Arc::clone(&shared),
            read_progress,
            config.telemetry.stall_after,
        ));
        Ok(Self {
            shared,
            workers,
            reader,
            progress,
            stall_watch,
            display,
            quiet: options.quiet,
            shutdown_grace: config.crawling.shutdown_grace,
            signals: Signals::install()?,
        })
    }

    /// Waits for the end of the input, a signal or a closed output, then shuts down.
    async fn finish(mut self) -> ExitCode {
        let graceful = tokio::select! {
            () = drain(&mut self.workers) => false,
            () = self.signals.first.cancelled() => true,
            () = self.shared.emitter.closed() => {
                tracing::warn!("output closed; shutting down");
                true
            }
        };
        if graceful {
            // Step 1: intake stops.
            self.shared.queue.stop();
            if let Some(reader) = &self.reader {
                reader.abort();
            }
            // Step 2: in-flight tasks get the grace period, then are cancelled.
            let grace = tokio::time::timeout(self.shutdown_grace, drain(&mut self.workers));
            tokio::select! {
                result = grace => if result.is_err() { self.cancel_in_flight().await },
                () = self.signals.second.cancelled() => return self.interrupted().await,
            }
        }
        if let Some(reader) = &self.reader {
            reader.abort();
        }
        // Step 3: pending batches get one try within the budget; the rest is spooled.
        let emitter = self.shared.emitter.clone();
        tokio::select! {
            report = emitter.shutdown(DELIVERY_BUDGET) => tracing::debug!(?report, "emitter stopped"),
            () = self.signals.second.cancelled() => return self.interrupted().await,
        }
        // Step 4: acks for what is now delivered or spooled; the rest stays leased.
        self.shared.acks.close();
        tokio::select! {
            done = tokio::time::timeout(ACK_BUDGET, self.shared.acks.wait()) => {
                if done.is_err() {
                    tracing::warn!("some acks were not sent; their items stay in :processing");
                }
            }
            () = self.signals.second.cancelled() => return self.interrupted().await,
        }
        self.end_progress();
        tracing::info!("shutdown complete");
        ExitCode::SUCCESS
    }

    async fn cancel_in_flight(&mut self) {
        let hosts: Vec<HostName> = self
            .shared
            .in_flight
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        self.workers.abort_all();
        drain(&mut self.workers).await;
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
        self.workers.abort_all();
        drain(&mut self.workers).await;
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
    while let Some(line) = reader.next().await {
        read.update(&reader);
        match line {
            InputLine::Host { host, .. } => {
                if queue.push_input(host).await.is_err() {
                    return;
                }
            }
            invalid @ InputLine::Invalid { .. } => {
                tracing::warn!("{invalid}");
                shared.stats.task_done(Outcome::Invalid, 0);
            }
        }
    }
    read.update(&reader);
    read.finished();
    queue.close_input();
}

/// One worker: crawl leases until the queue is done.
async fn work(shared: Arc<Shared>) {
    while let Some(lease) = shared.queue.next().await {
        let id = shared.next_task.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut m) = shared.in_flight.lock() {
            m.insert(id, lease.host().clone());
        }
        metrics::gauge!("spyder_active_workers").increment(1.0);
        crawl_one(&shared, lease).await;
        metrics::gauge!("spyder_active_workers").decrement(1.0);
        if let Ok(mut m) = shared.in_flight.lock() {
            m.remove(&id);
        }
    }
}

/// SPEC §1 steps 1–12 for one lease.
async fn crawl_one(shared: &Shared, lease: Work) {
    let host = lease.host().clone();
    let report = shared.probe.crawl(host.as_str()).await;
    metrics::histogram!("spyder_task_duration_seconds").record(report.timings.total.as_secs_f64());
    tracing::debug!(host = %host, outcome = %report.outcome, "task done");

    // One dedup call: the records' keys plus `queued|<host>` for the crawled host.
    let records = spyder_sink::dedup_records(shared.dedup.as_ref(), &host, report.records).await;
    count_records(&records);
    shared.stats.task_done(report.outcome, records.edges.len());
    let receipt = shared.emitter.submit(records);
    if let Some(sink) = &shared.sink {
        sink.offer(&host, report.candidates, &shared.sink_settings)
            .await;
    }
    match lease {
        // The memory queue keeps nothing durable: its lease only says "this task may
        // still add work". Once records and discoveries are handed off it is released,
        // and the emitter's shutdown delivers or spools whatever is pending.
        Work::Memory(lease) => lease.ack(),
        // A Redis item is acked only once its records are delivered, written or
        // spooled (SPEC §3.8); until then it stays in :processing under its lease.
        Work::Redis(lease) => {
            shared.acks.spawn(async move {
                match receipt.await {
                    Ok(_) => {
                        if let Err(e) = lease.ack().await {
                            tracing::error!(host = %host, error = %e, "ack failed; the item stays in :processing");
                        }
                    }
                    Err(e) => tracing::error!(host = %host, error = %e, "records not safe; not acking"),
                }
            });
        }
    }
}

fn count_records(records: &Records) {
    for e in &records.edges {
        metrics::counter!("spyder_edges_total", "type" => e.kind.as_str()).increment(1);
    }
    let nodes = [
        ("domain", records.nodes_domain.len()),
        ("ip", records.nodes_ip.len()),
        ("cert", records.nodes_cert.len()),
    ];
    for (kind, n) in nodes {
        if n > 0 {
            metrics::counter!("spyder_nodes_discovered_total", "type" => kind).increment(n as u64);
        }
    }
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

/// Waits until every task of `set` has ended.
async fn drain(set: &mut JoinSet<()>) {
    while set.join_next().await.is_some() {}
}

/// Checks for a stall every second (SPEC §5 P-8).
async fn watch_stalls(shared: Arc<Shared>, read: Arc<ReadProgress>, stall_after: Duration) {
    let watch = StallWatch::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let pending = shared.queue.pending() || !read.done();
        watch.check(&shared.stats, pending, stall_after);
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

//! Builds the run's components from the configuration: the one place where config
//! keys become the library crates' own settings (ripgrep's `HiArgs` is the model).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use spyder_config::{Config, Loaded};
use spyder_emitter::Emitter;
use spyder_probe::Probe;
use spyder_queue::{
    InputReader, MemoryQueue, QueueLengths, RedisQueue, RedisQueueConfig, WorkQueue,
};
use spyder_sink::{ChannelSink, Dedup, DiscoverySink, MemoryDedup, RedisDedup, RedisSink};

use tokio_util::task::TaskTracker;

use super::input::{ReadProgress, feed};
use super::ops::{serve_ops, watch_stalls};
use super::pool::{Pool, resize};
use super::reload::{spawn_reload_on_sighup, subscribe};
use super::resume::{self, Resume};
use super::shutdown::Checkpoints;
use super::shutdown::{Run, Signals};
use super::{EXTRA_HELD_LEASES, Options, Shared};
use crate::progress::{self, Display, StallWatch, Stats};
use crate::settings::{emitter_config, probe_config, sink_settings};

/// Discoveries waiting behind the file input (SPEC §3.10).
const DISCOVERY_CAPACITY: usize = 100_000;

/// What a run is made of, built from one configuration.
pub(super) struct Components {
    pub probe: Probe,
    pub emitter: Emitter,
    pub dedup: Arc<dyn Dedup>,
    /// The same dedup when it is Redis (its health check pings it).
    pub redis_dedup: Option<Arc<RedisDedup>>,
    pub queue: Arc<dyn WorkQueue>,
    /// File mode: the input and the memory queue it feeds.
    pub input: Option<(InputReader, MemoryQueue)>,
    pub sink: Option<Box<dyn DiscoverySink>>,
}

impl Components {
    /// Connects and opens everything; the error names the setting at fault.
    pub async fn build(config: &Config) -> Result<Self, String> {
        let concurrency = config.crawling.concurrency as usize;
        let queue_mode = !config.redis.queue_addr.is_empty();
        if queue_mode && !config.domains.is_empty() {
            tracing::warn!("queue mode: domains is ignored");
        }
        let probe = Probe::builder()
            .config(probe_config(config))
            .build()
            .map_err(|e| format!("cannot start the probe: {e}"))?;
        let emitter = Emitter::start(emitter_config(config))
            .await
            .map_err(|e| e.to_string())?;
        let (dedup, redis_dedup) = dedup(config).await?;
        let (queue, input): (Arc<dyn WorkQueue>, _) = if queue_mode {
            let redis = RedisQueue::connect(RedisQueueConfig {
                addr: config.redis.queue_addr.clone(),
                setting: "redis.queue_addr".to_owned(),
                key: config.redis.queue_key.clone(),
                lease_timeout: config.redis.lease_timeout,
                max_attempts: config.redis.max_attempts,
                capacity: concurrency.saturating_add(EXTRA_HELD_LEASES),
            })
            .await
            .map_err(|e| e.to_string())?;
            tracing::info!(key = %config.redis.queue_key, "redis queue enabled");
            (Arc::new(redis), None)
        } else {
            let reader = InputReader::open(&config.domains)
                .await
                .map_err(|e| format!("domains: cannot open {:?}: {e}", config.domains))?;
            let memory =
                MemoryQueue::new(concurrency.max(64).saturating_mul(2), DISCOVERY_CAPACITY);
            (Arc::new(memory.clone()), Some((reader, memory)))
        };
        // The sink exists whether or not `crawling.continuous` is on: the key is Tier 1,
        // and each crawl reads it from its config snapshot.
        let sink: Box<dyn DiscoverySink> = match &input {
            Some((_, memory)) => Box::new(ChannelSink::new(memory.clone(), Arc::clone(&dedup))),
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
                Box::new(sink)
            }
        };
        Ok(Self {
            probe,
            emitter,
            dedup,
            redis_dedup,
            queue,
            input,
            sink: Some(sink),
        })
    }
}

/// The memory dedup, or the Redis one when `redis.addr` is set.
async fn dedup(config: &Config) -> Result<(Arc<dyn Dedup>, Option<Arc<RedisDedup>>), String> {
    let max_entries = config.dedup.memory_max_entries as usize;
    if config.redis.addr.is_empty() {
        tracing::info!("memory dedupe enabled");
        return Ok((
            Arc::new(MemoryDedup::new(config.dedup.ttl, max_entries)),
            None,
        ));
    }
    let redis = Arc::new(
        RedisDedup::connect(&config.redis.addr, config.dedup.ttl, max_entries)
            .await
            .map_err(|e| e.to_string())?,
    );
    tracing::info!("redis dedupe enabled");
    Ok((Arc::clone(&redis) as Arc<dyn Dedup>, Some(redis)))
}

impl Run {
    /// Composes a run from the loaded configuration and starts it: the ops listener
    /// first (a busy port ends the run before anything connects), then the
    /// components, the input reader, the workers, the live-change listeners.
    pub(super) async fn start(loaded: Loaded, mut options: Options) -> Result<Self, String> {
        let metrics_addr_is_default =
            loaded.origin("telemetry.metrics_addr") == spyder_config::Origin::Default;
        log_start(&loaded);
        let config = loaded.config;
        let ops_server = bind_ops(&config, metrics_addr_is_default).await?;
        // The recorder before anything that counts: the queue's first reaper pass,
        // the emitter's spool scan and the first tasks all run before the ops
        // server is composed, and whatever they record with no recorder is lost.
        let metrics = ops_server.as_ref().and_then(|_| {
            spyder_health::install_metrics()
                .map_err(|e| tracing::warn!(error = %e, "metrics unavailable"))
                .ok()
        });
        let signals = Signals::install()?;
        let mut resume = match &options.resume {
            Some(path) => Some(Resume::open(path, &config)?),
            None => None,
        };
        let components = Components::build(&config).await?;
        let redis_dedup = components.redis_dedup;
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            probe: components.probe,
            emitter: components.emitter,
            queue: components.queue,
            dedup: components.dedup,
            sink: components.sink,
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
            resume: resume.as_ref().map(|r| Arc::clone(&r.tracker)),
            traces: options.traces.take(),
            fleet: Mutex::new(Vec::new()),
            config_error: Arc::new(Mutex::new(None)),
        });

        if let Some(traces) = &shared.traces {
            tracing::info!(
                url = %spyder_model::secret::redact_url(traces.url()),
                sample_ratio = config.telemetry.otel_sample_ratio,
                "traces exported over OTLP/HTTP"
            );
        }
        let read_progress = Arc::new(ReadProgress::default());
        let reader = spawn_reader(components.input, &shared, &read_progress, resume.as_mut());
        resize(&shared, config.crawling.concurrency as usize);
        subscribe(&shared, &options);
        spawn_reload_on_sighup(shared.live.clone(), Arc::clone(&shared.config_error))?;
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
        let progress = spawn_progress(display, &shared, &read_progress);
        let checkpoints = resume.map(|r| Checkpoints {
            writer: tokio::spawn(resume::keep_writing(r.path.clone(), Arc::clone(&r.tracker))),
            path: r.path,
            tracker: r.tracker,
            read: Arc::clone(&read_progress),
        });
        let heartbeat = shared
            .queue
            .is_shared()
            .then(|| tokio::spawn(super::fleet::keep_beating(Arc::clone(&shared))));
        let stall_watch = tokio::spawn(watch_stalls(Arc::clone(&shared), read_progress));
        Ok(Run {
            shared,
            reader,
            progress,
            stall_watch,
            display,
            quiet: options.quiet,
            fail_on_error: options.fail_on_error,
            signals,
            ops,
            checkpoints,
            heartbeat,
        })
    }
}

/// File mode: the input reader feeding the memory queue (with `-resume`, from the
/// checkpoint). Queue mode has no input to read.
fn spawn_reader(
    input: Option<(InputReader, MemoryQueue)>,
    shared: &Arc<Shared>,
    read_progress: &Arc<ReadProgress>,
    resume: Option<&mut Resume>,
) -> Option<tokio::task::JoinHandle<()>> {
    let Some((reader, memory)) = input else {
        read_progress.finished();
        return None;
    };
    Some(tokio::spawn(feed(
        reader,
        memory,
        Arc::clone(shared),
        Arc::clone(read_progress),
        resume.map(|r| (Arc::clone(&r.tracker), r.from.take())),
    )))
}

/// The progress display, reading the counts, the input read and the stall watch.
fn spawn_progress(
    display: Display,
    shared: &Arc<Shared>,
    read_progress: &Arc<ReadProgress>,
) -> Option<progress::Progress> {
    progress::spawn(
        display,
        Arc::clone(&shared.stats),
        {
            let read_progress = Arc::clone(read_progress);
            move || read_progress.percent()
        },
        {
            let shared = Arc::clone(shared);
            move || shared.stall.stalled()
        },
    )
}

/// The `starting spyder` line and what a user should know about the configuration.
fn log_start(loaded: &Loaded) {
    let config = &loaded.config;
    // Values, not Debug text: the list as a JSON array, the path as a path.
    let exclude_tlds = serde_json::to_string(&config.exclude_tlds).unwrap_or_default();
    let config_file = loaded.file.as_deref().map(|f| f.display().to_string());
    tracing::info!(
        probe = %config.probe,
        run = %config.run,
        concurrency = config.crawling.concurrency,
        exclude_tlds = %exclude_tlds,
        config_file = config_file.unwrap_or_default(),
        "starting spyder"
    );
    if let Some(file) = &loaded.file {
        tracing::info!(config_file = %file.display(), "loaded config from file");
    }
    if config.exclude_tlds.is_empty() {
        // `-exclude_tlds=` or `exclude_tlds: []` clears the list (SPEC §4 B-15),
        // which a Go SPYDER user may not expect.
        tracing::warn!(
            "exclude_tlds is empty: every suffix is contacted, gov, mil and int included"
        );
    }
}

/// The ops listener on `telemetry.metrics_addr` (none when it is empty). SPEC §4
/// B-23: the default :9090 (Prometheus' own default) busy must not end a one-shot
/// file run; an address someone chose, continuous or queue mode (where the endpoints
/// are how it is watched) still do.
async fn bind_ops(
    config: &Config,
    metrics_addr_is_default: bool,
) -> Result<Option<spyder_health::OpsServer>, String> {
    let addr = config.telemetry.metrics_addr.as_str();
    if addr.is_empty() {
        return Ok(None);
    }
    match spyder_health::OpsServer::bind(addr).await {
        Ok(server) => Ok(Some(server)),
        Err(e @ spyder_health::HealthError::Bind { .. })
            if metrics_addr_is_default
                && config.redis.queue_addr.is_empty()
                && !config.crawling.continuous =>
        {
            tracing::warn!(
                error = %e,
                "running without the metrics, health and API endpoints: the default telemetry.metrics_addr is not available; set telemetry.metrics_addr (-metrics_addr) to a free address, or to \"\" to turn them off"
            );
            Ok(None)
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The trace export of `telemetry.otel_*` (SPEC §3.14), when `otel_endpoint` is
/// set: the pipeline, and its export task for the runtime to spawn.
pub fn build_traces(
    config: &Config,
) -> Result<
    Option<(
        spyder_health::traces::Traces,
        spyder_health::traces::ExportTask,
    )>,
    String,
> {
    let t = &config.telemetry;
    if t.otel_endpoint.is_empty() {
        return Ok(None);
    }
    let mut settings = spyder_health::traces::TraceSettings::new(&t.otel_endpoint);
    settings.insecure = t.otel_insecure;
    settings.service = t.otel_service.clone();
    settings.sample_ratio = t.otel_sample_ratio;
    spyder_health::traces::Traces::build(&settings)
        .map(Some)
        .map_err(|e| e.to_string())
}

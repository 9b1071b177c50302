//! `cargo xtask bench-coordination [N] [--aof] [-- spyder flags]`: what coordinating
//! probes through one Redis costs (issue #4; SPEC §3.8–§3.10, §4 B-02).
//!
//! - Run A: N seeded items, one release `spyder` at concurrency 63.
//! - Run B: the same N items, three probes at concurrency 21 each.
//!
//!   Both use one `redis-server` as queue and dedup, in plain queue mode (not
//!   continuous), so they do identical work. Wall time, probe CPU (`/proc/<pid>/stat`)
//!   and Redis CPU (`INFO cpu`) run from the first probe's start until the queue,
//!   `:processing` and `:leases` are empty. Targets: B takes at most 1.2 times A's
//!   wall time, and Redis stays under 15 % of one core during B.
//! - Run C (B-02): a probe idling on the empty queue loses its Redis for 5 s; its CPU
//!   over the outage must stay under 0.5 s, and after the restart it drains new work.
//!
//! The testkit world (DNS, HTTPS/HTTP hosts) runs inside this process. Redis runs
//! as Redis ships (no AOF, so no fsync per write); `--aof` turns on the testkit's
//! `appendonly yes` + `appendfsync always`, where every write waits for the disk.

mod redis_ops;
mod report;

use std::fs::File;
use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use spyder_testkit::redis::{RedisOptions, RedisServer};
use spyder_testkit::world::World;
use tokio::process::{Child, Command};

use crate::proc_stat::{cpu_seconds, own_cpu_seconds};
use redis_ops::{
    command, command_stats, expect_no_dead_items, info_field, queue_counts, redis_cpu_seconds, seed,
};
use report::{OutageMeasure, Report, RunMeasure};

/// Sites in the world, and so items per run, unless given.
const DEFAULT_SITES: usize = 2_000;
/// The world's seed: every run of the benchmark crawls the same world.
const WORLD_SEED: u64 = 0x5eed_c00d;
/// The queue key (the default `redis.queue_key`).
const KEY: &str = "spyder:queue";
/// `ts` of the seeded items.
const SEEDED_AT: i64 = 1_723_300_000;
/// Items per `LPUSH`, as `seed` chunks them.
const LPUSH_CHUNK: usize = 1_000;
/// Concurrency of the lone probe of run A; run B splits it among its probes.
const TOTAL_CONCURRENCY: usize = 63;
/// Probes of run B.
const SHARED_PROBES: usize = 3;
/// Run B may take at most this multiple of run A's wall time.
const WALL_RATIO_TARGET: f64 = 1.2;
/// Redis CPU during run B must stay under this share of one core.
const REDIS_CORE_TARGET: f64 = 0.15;
/// Length of the Redis outage of run C, and of the idle baseline before it.
const OUTAGE: Duration = Duration::from_secs(5);
/// Probe CPU allowed during the outage (B-02).
const OUTAGE_CPU_TARGET_S: f64 = 0.5;
/// Items pushed after the outage to prove the probe works again.
const AFTER_OUTAGE_ITEMS: usize = 10;
/// Bounds of the waits (generous: a loaded 2-core machine).
const DRAIN_LIMIT: Duration = Duration::from_secs(900);
const RESUME_LIMIT: Duration = Duration::from_secs(60);
const IDLE_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(60);
/// How often the queue lengths are polled while waiting for the drain.
const POLL: Duration = Duration::from_millis(100);

type Result<T> = std::result::Result<T, String>;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Options {
    sites: usize,
    /// Redis with `appendonly yes` and `appendfsync always` (the testkit default).
    aof: bool,
    /// Flags after `--`, appended to every probe's command line.
    probe_flags: Vec<String>,
}

impl Options {
    /// `[N] [--aof] [-- spyder flags]`; N and `--aof` in any order.
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            sites: DEFAULT_SITES,
            aof: false,
            probe_flags: Vec::new(),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--aof" => options.aof = true,
                "--" => {
                    options.probe_flags = args.cloned().collect();
                    break;
                }
                n => {
                    options.sites = n
                        .parse()
                        .map_err(|e| format!("N must be a number, not {n:?}: {e}"))?;
                }
            }
        }
        Ok(options)
    }

    fn persistence(&self) -> &'static str {
        if self.aof {
            "appendonly yes, appendfsync always"
        } else {
            "none (no AOF, no RDB snapshots)"
        }
    }
}

/// Entry point of `cargo xtask bench-coordination [N] [--aof] [-- spyder flags]`.
pub fn bench_coordination(args: &[String]) -> ExitCode {
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("xtask bench-coordination: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!("xtask bench-coordination: building the release spyder");
    let binary = match crate::release::build_spyder() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("xtask bench-coordination: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask bench-coordination: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(measure(binary, options)) {
        Ok(report) => report.publish(),
        Err(e) => {
            eprintln!("xtask bench-coordination: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Everything the runs share: the world, its trust roots, one Redis, the binary.
struct Bench {
    probe_flags: Vec<String>,
    world: World,
    hosts: Vec<String>,
    redis: RedisServer,
    binary: PathBuf,
    dir: tempfile::TempDir,
    roots: PathBuf,
}

async fn measure(binary: PathBuf, options: Options) -> Result<Report> {
    let mut bench = Bench::start(binary, options.clone()).await?;
    eprintln!(
        "xtask bench-coordination: {} sites, Redis persistence: {}, extra probe flags: {:?}; run A: 1 probe x {TOTAL_CONCURRENCY}",
        options.sites,
        options.persistence(),
        options.probe_flags
    );
    let single = bench.timed_run("A", 1).await?;
    eprintln!(
        "xtask bench-coordination: run B: {SHARED_PROBES} probes x {}",
        TOTAL_CONCURRENCY / SHARED_PROBES
    );
    let shared = bench.timed_run("B", SHARED_PROBES).await?;
    eprintln!(
        "xtask bench-coordination: run C: a {} s Redis outage",
        OUTAGE.as_secs()
    );
    let outage = bench.outage_run().await?;
    Ok(Report {
        options,
        single,
        shared,
        outage,
    })
}

impl Bench {
    async fn start(binary: PathBuf, options: Options) -> Result<Self> {
        let generating = Instant::now();
        let world = World::generate(WORLD_SEED, options.sites)
            .await
            .map_err(|e| format!("cannot start the world: {e}"))?;
        eprintln!(
            "xtask bench-coordination: world of {} sites ready in {:.1} s",
            options.sites,
            generating.elapsed().as_secs_f64()
        );
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let roots = dir.path().join("ca.pem");
        std::fs::write(&roots, world.ca.root_pem())
            .map_err(|e| format!("cannot write {}: {e}", roots.display()))?;
        let redis = RedisServer::start_with(RedisOptions {
            appendonly: options.aof,
            maxmemory: None,
        })
        .map_err(|e| format!("redis-server: {e}"))?;
        Ok(Self {
            probe_flags: options.probe_flags,
            hosts: world.hosts(),
            world,
            redis,
            binary,
            dir,
            roots,
        })
    }

    /// Seeds every host, starts `probes` probes sharing [`TOTAL_CONCURRENCY`], and
    /// measures until the queue is drained.
    async fn timed_run(&self, run: &'static str, probes: usize) -> Result<RunMeasure> {
        command(&self.redis, &["FLUSHALL"])?;
        seed(&self.redis, &self.hosts)?;
        command(&self.redis, &["CONFIG", "RESETSTAT"])?;
        let concurrency = TOTAL_CONCURRENCY / probes;
        let redis_before = redis_cpu_seconds(&self.redis)?;
        let world_before = own_cpu_seconds()?;
        let started = Instant::now();
        let mut running = Vec::with_capacity(probes);
        for i in 1..=probes {
            running.push(self.spawn_probe(&format!("bench-{run}{i}"), concurrency)?);
        }
        let drained = wait_drained(&self.redis, &mut running, DRAIN_LIMIT).await;
        let wall = started.elapsed();
        let cpu: Result<Vec<f64>> = running.iter().map(Probe::cpu_seconds).collect();
        let redis_after = redis_cpu_seconds(&self.redis);
        let world_after = own_cpu_seconds();
        let commands = command_stats(&self.redis);
        let stopped = stop_all(running).await;
        drained?;
        stopped?;
        expect_no_dead_items(&self.redis)?;
        Ok(RunMeasure {
            run,
            probes,
            concurrency,
            items: self.hosts.len(),
            wall,
            probe_cpu_s: cpu?.iter().sum(),
            redis_cpu_s: redis_after? - redis_before,
            world_cpu_s: world_after? - world_before,
            commands: commands?,
        })
    }

    /// Run C: a probe idles on the empty queue, Redis dies for [`OUTAGE`], comes back,
    /// and the probe drains [`AFTER_OUTAGE_ITEMS`] new items.
    async fn outage_run(&mut self) -> Result<OutageMeasure> {
        command(&self.redis, &["FLUSHALL"])?;
        let probe = self.spawn_probe("bench-C1", TOTAL_CONCURRENCY)?;
        let mut running = vec![probe];
        let result = self.outage_phases(&mut running).await;
        let stopped = stop_all(running).await;
        let measure = result?;
        stopped?;
        Ok(measure)
    }

    async fn outage_phases(&mut self, running: &mut [Probe]) -> Result<OutageMeasure> {
        wait_blocked(&self.redis, running, IDLE_LIMIT).await?;
        let idle_cpu_s = cpu_over(&running[0], OUTAGE).await?;
        self.redis
            .kill()
            .map_err(|e| format!("cannot kill redis-server: {e}"))?;
        let outage_cpu_s = cpu_over(&running[0], OUTAGE).await?;
        self.redis
            .restart()
            .map_err(|e| format!("cannot restart redis-server: {e}"))?;
        let restarted = Instant::now();
        seed(
            &self.redis,
            &self.hosts[..AFTER_OUTAGE_ITEMS.min(self.hosts.len())],
        )?;
        wait_drained(&self.redis, running, RESUME_LIMIT)
            .await
            .map_err(|e| format!("after the outage: {e}"))?;
        expect_no_dead_items(&self.redis)?;
        Ok(OutageMeasure {
            idle_cpu_s,
            outage_cpu_s,
            resumed_in: restarted.elapsed(),
        })
    }

    /// Starts one queue-mode probe; its stderr goes to a file kept for error reports.
    fn spawn_probe(&self, name: &str, concurrency: usize) -> Result<Probe> {
        let log = self.dir.path().join(format!("{name}.log"));
        let stderr = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let mut cmd = Command::new(&self.binary);
        crate::release::without_spyder_env(&mut cmd);
        cmd.env("REDIS_QUEUE_ADDR", self.redis.addr())
            .env("REDIS_ADDR", self.redis.addr())
            .args(self.world.probe_flags(&self.roots))
            .arg(format!("-probe={name}"))
            .arg(format!("-concurrency={concurrency}"))
            .arg("-output=/dev/null")
            .arg("-set=batch.flush_interval=1s")
            .arg("-progress=false")
            .arg("-set=logging.level=warn")
            .args(&self.probe_flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true);
        let child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.binary.display()))?;
        let pid = child.id().ok_or_else(|| format!("{name} exited at once"))?;
        Ok(Probe {
            name: name.to_owned(),
            child,
            pid,
            log,
        })
    }
}

/// One running probe.
struct Probe {
    name: String,
    child: Child,
    pid: u32,
    log: PathBuf,
}

impl Probe {
    fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid).map_err(|e| format!("{}: {e}", self.name))
    }

    /// An error when the probe has exited (it should run until stopped).
    fn expect_running(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!(
                "{} exited with {status}; its log ends:\n{}",
                self.name,
                self.log_tail()
            )),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// SIGTERM, then a clean exit within [`STOP_LIMIT`].
    async fn stop(mut self) -> Result<()> {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !sent.success() {
            return Err(format!("kill -TERM {} failed ({sent})", self.name));
        }
        let status = tokio::time::timeout(STOP_LIMIT, self.child.wait())
            .await
            .map_err(|_| format!("{} did not exit within {STOP_LIMIT:?}", self.name))?
            .map_err(|e| format!("{}: {e}", self.name))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} exited with {status} after SIGTERM; its log ends:\n{}",
                self.name,
                self.log_tail()
            ))
        }
    }

    /// The last lines of the probe's stderr.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// Stops every probe, reporting the first failure.
async fn stop_all(probes: Vec<Probe>) -> Result<()> {
    let mut first_error = None;
    for probe in probes {
        if let Err(e) = probe.stop().await {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// The probe's CPU seconds over the next `window`.
async fn cpu_over(probe: &Probe, window: Duration) -> Result<f64> {
    let before = probe.cpu_seconds()?;
    tokio::time::sleep(window).await;
    Ok(probe.cpu_seconds()? - before)
}

/// Waits until the queue, `:processing` and `:leases` are all empty: every item was
/// crawled, delivered and acked. Fails early when a probe exits.
async fn wait_drained(redis: &RedisServer, probes: &mut [Probe], limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let counts = queue_counts(redis);
        if matches!(counts, Ok([0, 0, 0])) {
            return Ok(());
        }
        for probe in probes.iter_mut() {
            probe.expect_running()?;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not drained within {limit:?} (pending, processing, leases: {counts:?})"
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Waits until a probe blocks in `BLMOVE` on the empty queue: it is idle.
async fn wait_blocked(redis: &RedisServer, probes: &mut [Probe], limit: Duration) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        let info = command(redis, &["INFO", "clients"])?;
        if info_field(&info, "blocked_clients").is_some_and(|n| n >= 1.0) {
            return Ok(());
        }
        for probe in probes.iter_mut() {
            probe.expect_running()?;
        }
        if Instant::now() > deadline {
            return Err(format!("no probe blocked on the queue within {limit:?}"));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_take_n_and_aof_in_any_order() {
        let args = |list: &[&str]| list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
        let parse = |list: &[&str]| Options::parse(&args(list));
        assert_eq!(
            parse(&[]),
            Ok(Options {
                sites: DEFAULT_SITES,
                aof: false,
                probe_flags: Vec::new(),
            })
        );
        assert_eq!(
            parse(&["--aof", "300", "--", "-set=a=1", "--aof"]),
            Ok(Options {
                sites: 300,
                aof: true,
                probe_flags: args(&["-set=a=1", "--aof"]),
            })
        );
        assert!(parse(&["many"]).is_err());
    }
}

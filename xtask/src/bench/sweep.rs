//! `cargo xtask bench --rtt 100ms --dns-rtt 40ms --dns-loss 1% --blackhole 2%
//! [--concurrency 256,1024,4096,16384] [N]`: the internet-conditions sweep (issue #11).
//!
//! For every concurrency of the list, spyder crawls the same world twice: once behind
//! the slow network (`world-serve` adds the TCP round trip, the DNS round trip and
//! loss, and black-holes a share of the sites' addresses at the connect level), once
//! with no delay at all (the same seed, so the same sites). Each run reads its domains
//! from stdin, which stays open until spyder's own `/metrics` count every domain as
//! done; spyder's counters are scraped every [`SCRAPE_EVERY`] meanwhile, so the
//! progress curve, the task-time percentiles and the DNS split into queueing and
//! network are spyder's own measurements, not the benchmark's guesses. Then stdin
//! closes and spyder drains and exits.
//!
//! Per run: domains/s in the steady part (between 10 % and 90 % of the domains
//! done), the time until every domain was done, task time p50/p90/p99, DNS lookup
//! time split into waiting for a slot and network time, timeouts by phase, CPU ms per
//! domain, peak RSS, and the share of domains whose expected edges are all in the
//! output (`expected_edges.tsv`, written by the world).
//!
//! Targets (issue #11): at 4,096 the slow steady rate is at least 70 % of the
//! zero-delay one, every domain is done within the steady time (domains / steady
//! rate) plus `tls_timeout` + 2 s, every domain has its records, peak RSS ≤ 256 MiB;
//! at 16,384 peak RSS ≤ 768 MiB with the same completeness.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spyder_testkit::prometheus::Scrape;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Result;
use super::pinning::Pinning;
use super::world::{self, Conditions, DOMAINS_FILE, EXPECTED_EDGES_FILE, Hello, WorldProcess};
use crate::proc_stat::{peak_rss_kib, reaped_children_cpu_seconds};

/// spyder's counters are read this often while it runs.
const SCRAPE_EVERY: Duration = Duration::from_millis(100);
/// Bound on one scrape.
const SCRAPE_LIMIT: Duration = Duration::from_secs(5);
/// Bound on spyder's exit after its stdin closed (its own shutdown is shorter).
const EXIT_LIMIT: Duration = Duration::from_secs(60);
/// spyder's `crawling.tls_timeout` default (SPEC §2.4: 8 s), which the tail target
/// adds.
const TLS_TIMEOUT_S: f64 = 8.0;
/// Set to keep each world's directory (domains, expected edges, spyder's output and
/// log per concurrency) for a look after the sweep.
const KEEP_ENV: &str = "SPYDER_BENCH_KEEP";
/// The concurrencies swept unless given.
pub(super) const DEFAULT_SWEEP: [usize; 4] = [256, 1_024, 4_096, 16_384];

/// `256,1024,4096`.
pub(super) fn parse_list(text: &str) -> Result<Vec<usize>> {
    let list: Vec<usize> = text
        .split(',')
        .map(|n| super::positive(n.trim(), "--concurrency"))
        .collect::<Result<_>>()?;
    if list.is_empty() {
        return Err("--concurrency needs at least one value".to_owned());
    }
    Ok(list)
}

/// One run of spyder against one world at one concurrency.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct LiveRun {
    pub(super) concurrency: usize,
    /// `slow` or `zero`.
    pub(super) network: String,
    pub(super) domains: usize,
    /// Seconds from spawn until spyder counted every domain done.
    pub(super) done_s: f64,
    /// Seconds from spawn until spyder exited (after its stdin closed at `done_s`).
    pub(super) exit_s: f64,
    pub(super) exit_code: Option<i32>,
    /// Domains/s between 10 % and 90 % done.
    pub(super) steady_rate: f64,
    pub(super) task_p50_s: f64,
    pub(super) task_p90_s: f64,
    pub(super) task_p99_s: f64,
    /// Mean per-query wait for a DNS slot, and the network time of a try.
    pub(super) dns_queue_mean_ms: f64,
    pub(super) dns_queue_p99_ms: f64,
    pub(super) dns_network_mean_ms: f64,
    pub(super) dns_network_p99_ms: f64,
    /// Mean DNS phase of a task (`spyder_dns_lookup_duration_seconds`).
    pub(super) dns_phase_mean_ms: f64,
    /// Timeouts by phase: `dns` (tasks ending `dns_error`), `tls` (TLS errors with
    /// reason `timeout`), `task` (outcome `timeout`).
    pub(super) timeouts: BTreeMap<String, u64>,
    /// Task outcomes.
    pub(super) outcomes: BTreeMap<String, u64>,
    pub(super) cpu_ms_per_domain: f64,
    pub(super) peak_rss_mib: f64,
    /// Domains with every expected edge in the output, and the names of some without.
    pub(super) complete_domains: usize,
    pub(super) incomplete_sample: Vec<String>,
    /// `(seconds since spawn, domains done)` as scraped.
    pub(super) progress: Vec<(f64, u64)>,
    /// Connections the world had descriptors for when it started.
    #[serde(default)]
    pub(super) world_room: u64,
    /// The world's failed `accept` calls during this run: non-zero means spyder's
    /// connects waited on the world (out of descriptors), and the run measures it.
    #[serde(default)]
    pub(super) world_accept_errors: u64,
    /// DNS queries the world's server received during this run (UDP and TCP, lost
    /// ones not counted): per domain, the retries spyder sent show.
    #[serde(default)]
    pub(super) world_dns_queries: u64,
}

impl LiveRun {
    /// Share of domains with all their expected edges.
    pub(super) fn completeness(&self) -> f64 {
        if self.domains == 0 {
            return 1.0;
        }
        self.complete_domains as f64 / self.domains as f64
    }
}

/// What every run of a sweep shares.
pub(super) struct Plan<'a> {
    /// The release spyder.
    pub(super) binary: &'a Path,
    pub(super) pinning: &'a Pinning,
    pub(super) sites: usize,
    pub(super) seed: u64,
    pub(super) concurrencies: &'a [usize],
    /// Appended to spyder's command line.
    pub(super) spyder_flags: &'a [String],
    /// Bound on generating and starting a world.
    pub(super) ready_limit: Duration,
}

/// Starts a world with `network` and runs spyder at each concurrency against it.
async fn sweep_world(plan: &Plan<'_>, network: &Conditions) -> Result<Vec<LiveRun>> {
    let Plan {
        binary,
        pinning,
        sites,
        seed,
        concurrencies,
        spyder_flags,
        ready_limit,
    } = *plan;
    let label = if network.is_slow() { "slow" } else { "zero" };
    let mut dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    if std::env::var_os(KEEP_ENV).is_some() {
        dir.disable_cleanup(true);
        eprintln!(
            "xtask bench: {label} world files kept in {}",
            dir.path().display()
        );
    }
    let (mut world, hello) =
        WorldProcess::start_with(pinning, sites, seed, network, dir.path(), ready_limit).await?;
    eprintln!(
        "xtask bench: {label} world ready ({} sites; {}); room for {} connections",
        hello.sites,
        network.describe(),
        hello.connection_room()
    );
    // A task has about one connection open at a time, and no more tasks run than
    // there are sites.
    let in_flight = |c: usize| (c as u64).min(hello.sites as u64);
    if let Some(&c) = concurrencies
        .iter()
        .find(|&&c| in_flight(c) > hello.connection_room())
    {
        eprintln!(
            "xtask bench: WARNING: the {label} world has descriptors for {} connections, fewer than the {} tasks concurrency {c} keeps in flight: its accepts will fail and its listen queues fill, so such runs measure the world, not spyder (the report counts the failed accepts)",
            hello.connection_room(),
            in_flight(c)
        );
    }
    let expected = read_expected(&dir.path().join(EXPECTED_EDGES_FILE))?;
    let names = world::read_domains(dir.path())?;
    let mut runs = Vec::new();
    for &c in concurrencies {
        let limit = Duration::from_secs(120) + Duration::from_millis(20) * sites as u32;
        let before = world.stats().await?;
        let mut run = run_live(binary, pinning, &hello, dir.path(), c, spyder_flags, limit)
            .await
            .map_err(|e| format!("{label} world, concurrency {c}: {e}"))?;
        run.network = label.to_owned();
        run.world_room = hello.connection_room();
        let during = world.stats().await?.since(&before);
        run.world_accept_errors = during.accept_errors;
        run.world_dns_queries = during.dns_queries;
        let output = read_output_edges(&dir.path().join(output_file(c)))?;
        let (complete, missing) = completeness(&names, &expected, &output);
        run.complete_domains = complete;
        run.incomplete_sample = missing;
        eprintln!(
            "xtask bench: {label} c={c}: {} domains done in {:.1} s, steady {:.0}/s, {:.1} % complete, peak RSS {:.0} MiB",
            run.domains,
            run.done_s,
            run.steady_rate,
            run.completeness() * 100.0,
            run.peak_rss_mib
        );
        runs.push(run);
    }
    world.stop().await?;
    Ok(runs)
}

fn output_file(concurrency: usize) -> String {
    format!("sweep-output-{concurrency}.jsonl")
}

/// Runs spyder once, domains on stdin, until its metrics count every one done.
async fn run_live(
    binary: &Path,
    pinning: &Pinning,
    hello: &Hello,
    dir: &Path,
    concurrency: usize,
    spyder_flags: &[String],
    limit: Duration,
) -> Result<LiveRun> {
    let domains_text = std::fs::read_to_string(dir.join(DOMAINS_FILE))
        .map_err(|e| format!("cannot read the domains: {e}"))?;
    let domains = domains_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let metrics_port = free_port()?;
    let args = live_args(hello, dir, concurrency, metrics_port, spyder_flags);
    let log_path = dir.join(format!("sweep-{concurrency}.log"));
    let log =
        std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = pinning.client_command(binary);
    crate::release::without_spyder_env(&mut cmd);
    cmd.args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);

    let reaped_before = reaped_children_cpu_seconds()?;
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let pid = child.id().ok_or("spyder exited at once")?;
    let mut stdin = child.stdin.take().ok_or("no stdin for spyder")?;
    // Written by a task: spyder reads its input as fast as its queue allows.
    let feeder = tokio::spawn(async move {
        let result = stdin.write_all(domains_text.as_bytes()).await;
        (stdin, result)
    });

    let watch = Watch {
        metrics_port,
        started,
        limit,
        domains,
        log_path: &log_path,
    };
    let (done_s, scrape, progress, peak_rss) = watch.until_done(&mut child, pid).await?;
    let (stdin, written) = feeder
        .await
        .map_err(|e| format!("the stdin feeder failed: {e}"))?;
    written.map_err(|e| format!("writing spyder's stdin: {e}"))?;
    drop(stdin);
    let status = tokio::time::timeout(EXIT_LIMIT, child.wait())
        .await
        .map_err(|_| format!("spyder did not exit within {EXIT_LIMIT:?} of EOF"))?
        .map_err(|e| format!("waiting for spyder: {e}"))?;
    let exit_s = started.elapsed().as_secs_f64();
    let cpu_s = reaped_children_cpu_seconds()? - reaped_before;

    let histogram = |name: &str, q: f64| quantile(&scrape, name, q);
    let mean = |name: &str| {
        let count = scrape.sum(&format!("{name}_count"), &[]);
        if count > 0.0 {
            scrape.sum(&format!("{name}_sum"), &[]) / count
        } else {
            0.0
        }
    };
    let outcomes = task_outcomes(&scrape);
    let timeouts = timeouts(&scrape, &outcomes);
    Ok(LiveRun {
        concurrency,
        network: String::new(),
        domains,
        done_s,
        exit_s,
        exit_code: status.code(),
        steady_rate: steady_rate(&progress, domains as u64),
        task_p50_s: histogram("spyder_task_duration_seconds", 0.50),
        task_p90_s: histogram("spyder_task_duration_seconds", 0.90),
        task_p99_s: histogram("spyder_task_duration_seconds", 0.99),
        dns_queue_mean_ms: mean(DNS_QUEUE_METRIC) * 1e3,
        dns_queue_p99_ms: histogram(DNS_QUEUE_METRIC, 0.99) * 1e3,
        dns_network_mean_ms: mean(DNS_NETWORK_METRIC) * 1e3,
        dns_network_p99_ms: histogram(DNS_NETWORK_METRIC, 0.99) * 1e3,
        dns_phase_mean_ms: mean("spyder_dns_lookup_duration_seconds") * 1e3,
        timeouts,
        outcomes,
        cpu_ms_per_domain: cpu_s * 1e3 / domains.max(1) as f64,
        peak_rss_mib: peak_rss as f64 / 1024.0,
        complete_domains: 0,
        incomplete_sample: Vec::new(),
        progress,
        world_room: 0,
        world_accept_errors: 0,
        world_dns_queries: 0,
    })
}

/// The probe's arguments for one live run: the world's DNS, ports and roots, the
/// concurrency, JSONL output, metrics on `metrics_port`, then `spyder_flags`.
fn live_args(
    hello: &Hello,
    dir: &Path,
    concurrency: usize,
    metrics_port: u16,
    spyder_flags: &[String],
) -> Vec<String> {
    let output = dir.join(output_file(concurrency));
    let mut args = super::probe::world_crawl_args(hello, dir, "-", &output, concurrency);
    args.push(format!("-metrics_addr=127.0.0.1:{metrics_port}"));
    args.extend(spyder_flags.iter().cloned());
    args
}

/// How a live run is watched until every domain is done.
struct Watch<'a> {
    metrics_port: u16,
    started: Instant,
    limit: Duration,
    domains: usize,
    log_path: &'a Path,
}

/// What watching a live run saw: when every domain was done, the last scrape, the
/// progress curve and the peak RSS in KiB.
type Watched = (f64, Scrape, Vec<(f64, u64)>, u64);

impl Watch<'_> {
    /// Scrapes the probe every [`SCRAPE_EVERY`] until it reports every domain done,
    /// tracking its peak RSS; fails if it exits first or runs past the limit.
    async fn until_done(&self, child: &mut tokio::process::Child, pid: u32) -> Result<Watched> {
        let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], self.metrics_port));
        let mut progress = Vec::new();
        let mut peak_rss = 0_u64;
        let deadline = self.started + self.limit;
        loop {
            if let Ok(kib) = peak_rss_kib(pid) {
                peak_rss = peak_rss.max(kib);
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "spyder exited ({status}) before every domain was done; its log: {}",
                    self.log_path.display()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill().await;
                return Err(format!(
                    "not every domain done within {:?}; log: {}",
                    self.limit,
                    self.log_path.display()
                ));
            }
            if let Ok(scrape) = scrape(metrics).await {
                let done = scrape.sum("spyder_tasks_total", &[]) as u64;
                let t = self.started.elapsed().as_secs_f64();
                progress.push((t, done));
                if done >= self.domains as u64 {
                    return Ok((t, scrape, progress, peak_rss));
                }
            }
            tokio::time::sleep(SCRAPE_EVERY).await;
        }
    }
}

/// Finished tasks by outcome label.
fn task_outcomes(scrape: &Scrape) -> BTreeMap<String, u64> {
    scrape
        .by_label("spyder_task_outcomes_total", "outcome")
        .into_iter()
        .map(|(k, v)| (k, v as u64))
        .collect()
}

/// Timeouts by phase: DNS errors and task timeouts from the outcomes, TLS timeouts
/// from the TLS error counter.
fn timeouts(scrape: &Scrape, outcomes: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    let mut timeouts = BTreeMap::new();
    timeouts.insert(
        "dns".to_owned(),
        outcomes.get("dns_error").copied().unwrap_or(0),
    );
    timeouts.insert(
        "tls".to_owned(),
        scrape.sum("spyder_tls_errors_total", &[("reason", "timeout")]) as u64,
    );
    timeouts.insert(
        "task".to_owned(),
        outcomes.get("timeout").copied().unwrap_or(0),
    );
    timeouts
}

/// Time a DNS query waited for a slot (socket, ID, `max_inflight`).
const DNS_QUEUE_METRIC: &str = "spyder_dns_queue_wait_seconds";
/// Network time of one DNS try.
const DNS_NETWORK_METRIC: &str = "spyder_dns_query_duration_seconds";

/// A free TCP port on 127.0.0.1 (free when asked; spyder binds it next).
fn free_port() -> Result<u16> {
    let listener =
        std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("free port: {e}"))
}

/// `GET /metrics` from spyder.
async fn scrape(addr: std::net::SocketAddr) -> Result<Scrape> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: spyder\r\nConnection: close\r\n\r\n")
            .await
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .map_err(|e| format!("read: {e}"))?;
        let text = String::from_utf8_lossy(&raw);
        let (head, body) = text.split_once("\r\n\r\n").ok_or("no response head")?;
        if !head.starts_with("HTTP/1.1 200") {
            return Err(format!(
                "status {:?}",
                head.lines().next().unwrap_or_default()
            ));
        }
        Scrape::parse(body).map_err(|e| format!("metrics: {e:?}"))
    };
    tokio::time::timeout(SCRAPE_LIMIT, exchange)
        .await
        .map_err(|_| "scrape timed out".to_owned())?
}

/// The `q` quantile of histogram `name`, interpolated linearly inside its bucket
/// (0 without samples; the largest finite bound when it falls in `+Inf`).
pub(super) fn quantile(scrape: &Scrape, name: &str, q: f64) -> f64 {
    let bucket = format!("{name}_bucket");
    let mut bounds: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let mut infinite = 0.0;
    for s in scrape.samples().iter().filter(|s| s.name == bucket) {
        let Some(le) = s.labels.get("le") else {
            continue;
        };
        if le == "+Inf" {
            infinite += s.value;
            continue;
        }
        let Ok(bound) = le.parse::<f64>() else {
            continue;
        };
        // Keyed by the bound's bits so that series of several label sets add up.
        bounds.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += s.value;
    }
    let mut cumulative: Vec<(f64, f64)> = bounds.into_values().collect();
    cumulative.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = infinite.max(cumulative.last().map_or(0.0, |b| b.1));
    if total <= 0.0 {
        return 0.0;
    }
    let rank = q * total;
    let (mut lower, mut below) = (0.0, 0.0);
    for (bound, count) in &cumulative {
        if *count >= rank {
            let inside = count - below;
            let share = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return lower + (bound - lower) * share;
        }
        lower = *bound;
        below = *count;
    }
    lower
}

/// Domains/s between 10 % and 90 % of `total` done, interpolated on the curve.
pub(super) fn steady_rate(progress: &[(f64, u64)], total: u64) -> f64 {
    let at = |share: f64| -> Option<f64> {
        let goal = share * total as f64;
        let mut prev = (0.0, 0.0);
        for &(t, done) in progress {
            let done = done as f64;
            if done >= goal {
                let span = done - prev.1;
                let frac = if span > 0.0 {
                    (goal - prev.1) / span
                } else {
                    1.0
                };
                return Some(prev.0 + (t - prev.0) * frac);
            }
            prev = (t, done);
        }
        None
    };
    match (at(0.1), at(0.9)) {
        (Some(a), Some(b)) if b > a => 0.8 * total as f64 / (b - a),
        _ => 0.0,
    }
}

/// Expected edges by source host: `host\ttype\tsource\ttarget` lines.
type Expected = HashMap<String, Vec<(String, String, String)>>;

fn read_expected(path: &Path) -> Result<Expected> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out: Expected = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        let mut f = line.split('\t');
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some(host), Some(kind), Some(source), Some(target)) => out
                .entry(host.to_owned())
                .or_default()
                .push((kind.to_owned(), source.to_owned(), target.to_owned())),
            _ => {
                return Err(format!(
                    "{}:{}: not host, type, source, target",
                    path.display(),
                    n + 1
                ));
            }
        }
    }
    Ok(out)
}

/// Every `(type, source, target)` edge of a `jsonl` output.
fn read_output_edges(path: &Path) -> Result<BTreeSet<(String, String, String)>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut edges = BTreeSet::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with(r#"{"record":"edge""#))
    {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}: {e}", path.display()))?;
        let field = |k: &str| value.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        if let (Some(kind), Some(source), Some(target)) =
            (field("type"), field("source"), field("target"))
        {
            edges.insert((kind, source, target));
        }
    }
    Ok(edges)
}

/// `(domains with every expected edge, up to 10 names without)`.
fn completeness(
    names: &[String],
    expected: &Expected,
    output: &BTreeSet<(String, String, String)>,
) -> (usize, Vec<String>) {
    let mut complete = 0;
    let mut missing = Vec::new();
    for name in names {
        let all = expected
            .get(name)
            .is_none_or(|edges| edges.iter().all(|e| output.contains(e)));
        if all {
            complete += 1;
        } else if missing.len() < 10 {
            missing.push(name.clone());
        }
    }
    (complete, missing)
}

/// The sweep's verdict lines: `(met, text)`.
pub(super) fn targets(slow: &[LiveRun], zero: &[LiveRun]) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let find = |runs: &[LiveRun], c: usize| runs.iter().find(|r| r.concurrency == c).cloned();
    if let (Some(s), Some(z)) = (find(slow, 4_096), find(zero, 4_096)) {
        let ratio = s.steady_rate / z.steady_rate.max(f64::MIN_POSITIVE);
        out.push((
            ratio >= 0.70,
            format!(
                "c=4096 steady rate {:.0}/s is {:.0} % of the zero-delay {:.0}/s (target ≥ 70 %)",
                s.steady_rate,
                ratio * 100.0,
                z.steady_rate
            ),
        ));
        let budget = s.domains as f64 / s.steady_rate.max(f64::MIN_POSITIVE) + TLS_TIMEOUT_S + 2.0;
        out.push((
            s.done_s <= budget,
            format!(
                "c=4096 every domain done in {:.1} s (target ≤ steady time + tls_timeout + 2 s = {budget:.1} s)",
                s.done_s
            ),
        ));
        out.push((
            s.peak_rss_mib <= 256.0,
            format!("c=4096 peak RSS {:.0} MiB (target ≤ 256)", s.peak_rss_mib),
        ));
    }
    if let Some(s) = find(slow, 16_384) {
        out.push((
            s.peak_rss_mib <= 768.0,
            format!("c=16384 peak RSS {:.0} MiB (target ≤ 768)", s.peak_rss_mib),
        ));
    }
    for r in slow.iter().chain(zero) {
        out.push((
            r.complete_domains == r.domains,
            format!(
                "{} c={}: {} of {} domains have every expected record",
                r.network, r.concurrency, r.complete_domains, r.domains
            ),
        ));
    }
    out
}

/// The sweep as a table.
pub(super) fn render(network: &Conditions, slow: &[LiveRun], zero: &[LiveRun]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "spyder internet-conditions sweep: {}",
        network.describe()
    );
    let _ = writeln!(
        s,
        "{:<5} {:>6} {:>8} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9} {:>9} {:>8} {:>5} {:>11} {:>7} {:>7} {:>9}",
        "net",
        "conc",
        "steady/s",
        "done s",
        "exit s",
        "p50 s",
        "p90 s",
        "p99 s",
        "dns q ms",
        "dns net",
        "dns phase",
        "q/dom",
        "timeouts",
        "cpu ms",
        "RSS MiB",
        "complete"
    );
    for r in slow.iter().chain(zero) {
        let t = |k: &str| r.timeouts.get(k).copied().unwrap_or(0);
        let _ = writeln!(
            s,
            "{:<5} {:>6} {:>8.0} {:>7.1} {:>7.1} {:>6.2} {:>6.2} {:>6.2} {:>4.1}/{:<4.0} {:>4.1}/{:<4.0} {:>8.0} {:>5.2} {:>3}/{:>3}/{:>3} {:>7.2} {:>7.0} {:>8.2}%",
            r.network,
            r.concurrency,
            r.steady_rate,
            r.done_s,
            r.exit_s,
            r.task_p50_s,
            r.task_p90_s,
            r.task_p99_s,
            r.dns_queue_mean_ms,
            r.dns_queue_p99_ms,
            r.dns_network_mean_ms,
            r.dns_network_p99_ms,
            r.dns_phase_mean_ms,
            r.world_dns_queries as f64 / r.domains.max(1) as f64,
            t("dns"),
            t("tls"),
            t("task"),
            r.cpu_ms_per_domain,
            r.peak_rss_mib,
            r.completeness() * 100.0
        );
    }
    let _ = writeln!(
        s,
        "(dns q / dns net: mean/p99 ms of slot waiting and of one try's network time; q/dom: DNS queries the world received per domain; timeouts: dns_error tasks / TLS timeouts / task deadlines)"
    );
    for (met, line) in targets(slow, zero) {
        let _ = writeln!(s, "  [{}] {line}", if met { "met" } else { "MISSED" });
    }
    for r in slow
        .iter()
        .chain(zero)
        .filter(|r| r.world_accept_errors > 0)
    {
        let _ = writeln!(
            s,
            "  CAUTION {} c={}: the world failed {} accepts (descriptors for {} connections): spyder's connects waited on the world, so this run measures the world, not spyder",
            r.network, r.concurrency, r.world_accept_errors, r.world_room
        );
    }
    for r in slow
        .iter()
        .chain(zero)
        .filter(|r| !r.incomplete_sample.is_empty())
    {
        let _ = writeln!(
            s,
            "  {} c={} incomplete, e.g.: {}",
            r.network,
            r.concurrency,
            r.incomplete_sample.join(", ")
        );
    }
    s
}

/// The whole sweep as JSON.
#[derive(Debug, Serialize)]
struct SweepReport<'a> {
    network: &'a Conditions,
    sites: usize,
    slow: &'a [LiveRun],
    zero: &'a [LiveRun],
    targets: Vec<(bool, String)>,
}

/// Runs the sweep and publishes it: table on stdout, JSON under `dir`.
pub(super) async fn run(
    plan: Plan<'_>,
    network: &Conditions,
    strict: bool,
    dir: PathBuf,
) -> ExitCode {
    let slow = match sweep_world(&plan, network).await {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("xtask bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let zero = match sweep_world(&plan, &Conditions::default()).await {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("xtask bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", render(network, &slow, &zero));
    let report = SweepReport {
        network,
        sites: plan.sites,
        slow: &slow,
        zero: &zero,
        targets: targets(&slow, &zero),
    };
    let missed = report.targets.iter().any(|(met, _)| !met);
    let path = dir.join("sweep-latest.json");
    let written = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|()| serde_json::to_string_pretty(&report).map_err(|e| e.to_string()))
        .and_then(|json| std::fs::write(&path, json).map_err(|e| e.to_string()));
    match written {
        Ok(()) => eprintln!("xtask bench: wrote {}", path.display()),
        Err(e) => {
            eprintln!("xtask bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    if strict && missed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let text = "\
# TYPE x_seconds histogram
x_seconds_bucket{le=\"0.1\"} 50
x_seconds_bucket{le=\"1\"} 90
x_seconds_bucket{le=\"10\"} 100
x_seconds_bucket{le=\"+Inf\"} 100
x_seconds_sum 80
x_seconds_count 100
";
        let scrape = Scrape::parse(text).expect("valid exposition");
        assert!((quantile(&scrape, "x_seconds", 0.5) - 0.1).abs() < 1e-9);
        assert!((quantile(&scrape, "x_seconds", 0.7) - 0.55).abs() < 1e-9);
        assert!((quantile(&scrape, "x_seconds", 0.99) - 9.1).abs() < 1e-9);
        assert_eq!(quantile(&scrape, "missing_seconds", 0.5), 0.0);
    }

    #[test]
    fn steady_rate_is_the_middle_of_the_curve() {
        // 1000 domains: 100 done at 1 s, 900 at 5 s → 800 in 4 s.
        let progress = [(0.5, 0), (1.0, 100), (3.0, 500), (5.0, 900), (9.0, 1000)];
        assert!((steady_rate(&progress, 1000) - 200.0).abs() < 1e-9);
        assert_eq!(steady_rate(&[], 1000), 0.0);
    }

    #[test]
    fn a_domain_is_complete_only_with_all_its_edges() {
        let mut expected = Expected::new();
        let edge = |t: &str| ("RESOLVES_TO".to_owned(), "a.com".to_owned(), t.to_owned());
        expected.insert(
            "a.com".to_owned(),
            vec![edge("127.0.0.1"), edge("127.0.0.2")],
        );
        let names = vec!["a.com".to_owned(), "b.com".to_owned()];
        let mut output = BTreeSet::from([edge("127.0.0.1")]);
        assert_eq!(
            completeness(&names, &expected, &output),
            (1, vec!["a.com".to_owned()])
        );
        output.insert(edge("127.0.0.2"));
        assert_eq!(completeness(&names, &expected, &output), (2, vec![]));
    }
}

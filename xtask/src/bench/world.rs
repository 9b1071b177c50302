//! The world as a separate process: `xtask world-serve` and the handle that drives it.
//!
//! `xtask world-serve --sites N --seed S --dir D [conditions]` generates
//! `World::generate_with(S, N, options)`, writes `D/domains.txt` (the names to crawl),
//! `D/ca.pem` (the roots to trust) and
//! `D/https_sites.txt` (`host ip` of every site that completes a TLS handshake), prints
//! one [`Hello`] JSON line on stdout and then answers commands read from stdin, one
//! per line: `stats` answers one [`WorldStats`] JSON line. EOF on stdin ends it.
//! Progress and warnings go to stderr.
//!
//! Running the world in its own process lets it be pinned to its own core and its
//! CPU and memory be measured apart from the probe's.
//!
//! The optional conditions ([`Conditions`]) make it a slow, lossy, partly filtered
//! internet: `--rtt 100ms` (every TCP exchange), `--jitter 10ms`, `--dns-rtt 40ms`,
//! `--dns-jitter 5ms`, `--dns-loss 1%` (of UDP datagrams, each way), `--blackhole 2%`
//! (sites whose address never completes a connect, on either port) and
//! `--shared-ips 20%` (HTTPS sites moved onto a few skewed shared addresses).
//! Durations take `us`, `ms` or `s`; shares take `%` or a fraction (`0.01`). The
//! network draws are seeded by `--seed` too.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spyder_model::EdgeType;
use spyder_testkit::world::{World, WorldOptions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::Result;
use super::pinning::Pinning;

/// The names to crawl, one per line.
pub(super) const DOMAINS_FILE: &str = "domains.txt";
/// The world CA's root certificate.
pub(super) const ROOTS_FILE: &str = "ca.pem";
/// `host ip` per site whose HTTPS port completes a handshake.
pub(super) const HTTPS_SITES_FILE: &str = "https_sites.txt";
/// `host\ttype\tsource\ttarget` per edge a correct crawl of `host` emits.
pub(super) const EXPECTED_EDGES_FILE: &str = "expected_edges.tsv";
/// File descriptors asked for beyond two listeners per site: room for the
/// connections of spyder at high concurrency and of the ceiling clients.
const FD_MARGIN: u64 = 4_096;

/// The first line `world-serve` prints: where the world listens and what it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Hello {
    /// The DNS server (UDP and TCP).
    pub(super) dns: SocketAddr,
    /// The HTTPS port every site shares.
    pub(super) https_port: u16,
    /// The plain-HTTP port every site shares.
    pub(super) http_port: u16,
    /// Distinct edges a correct crawl of every site emits.
    pub(super) expected_edges: usize,
    /// Sites in the world.
    pub(super) sites: usize,
    /// Lines of `https_sites.txt`.
    pub(super) https_sites: usize,
    /// The world process's open-file limit (soft) after any raise.
    pub(super) fd_limit: u64,
    /// Descriptors the world holds once it serves (listeners, sockets, stdio): the
    /// limit minus this is the room left for connections.
    pub(super) open_fds: u64,
    /// Seconds spent generating and starting the world.
    pub(super) generate_s: f64,
    /// The network conditions the world was started with.
    #[serde(default)]
    pub(super) conditions: Conditions,
    /// Sites whose address is filtered (`--blackhole`): they end `no_web`.
    #[serde(default)]
    pub(super) filtered_sites: usize,
}

/// The internet conditions between the world and its clients (all zero by default:
/// loopback speed, no loss, no filtered addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Conditions {
    /// Round trip of every TCP exchange (`--rtt`), in seconds in JSON.
    #[serde(with = "seconds")]
    pub(super) rtt: Duration,
    /// Up to this much more per TCP exchange (`--jitter`).
    #[serde(with = "seconds")]
    pub(super) jitter: Duration,
    /// Round trip of every DNS answer (`--dns-rtt`).
    #[serde(with = "seconds")]
    pub(super) dns_rtt: Duration,
    /// Up to this much more per DNS answer (`--dns-jitter`).
    #[serde(with = "seconds")]
    pub(super) dns_jitter: Duration,
    /// Share of UDP DNS datagrams lost, each way (`--dns-loss`).
    pub(super) dns_loss: f64,
    /// Share of sites whose address never completes a connect (`--blackhole`).
    pub(super) blackhole: f64,
    /// Share of HTTPS sites on shared, skewed addresses (`--shared-ips`).
    pub(super) shared_ips: f64,
}

impl Conditions {
    /// Takes `flag value` if it is one of the conditions' flags; `Ok(false)` if not.
    fn take(&mut self, flag: &str, value: &str) -> Result<bool> {
        let duration = |v: &str| parse_duration(v).map_err(|e| format!("{flag} {v}: {e}"));
        let share = |v: &str| parse_share(v).map_err(|e| format!("{flag} {v}: {e}"));
        match flag {
            "--rtt" => self.rtt = duration(value)?,
            "--jitter" => self.jitter = duration(value)?,
            "--dns-rtt" => self.dns_rtt = duration(value)?,
            "--dns-jitter" => self.dns_jitter = duration(value)?,
            "--dns-loss" => self.dns_loss = share(value)?,
            "--blackhole" => self.blackhole = share(value)?,
            "--shared-ips" => self.shared_ips = share(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The `world-serve` arguments that reproduce these conditions (none for zero).
    pub(super) fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let durations = [
            ("--rtt", self.rtt),
            ("--jitter", self.jitter),
            ("--dns-rtt", self.dns_rtt),
            ("--dns-jitter", self.dns_jitter),
        ];
        for (flag, value) in durations {
            if !value.is_zero() {
                args.extend([flag.to_owned(), format!("{}us", value.as_micros())]);
            }
        }
        let shares = [
            ("--dns-loss", self.dns_loss),
            ("--blackhole", self.blackhole),
            ("--shared-ips", self.shared_ips),
        ];
        for (flag, value) in shares {
            if value > 0.0 {
                args.extend([flag.to_owned(), value.to_string()]);
            }
        }
        args
    }

    /// The world's options for these conditions, network draws seeded by `seed`.
    pub(super) fn world_options(&self, seed: u64) -> WorldOptions {
        WorldOptions {
            filtered: self.blackhole,
            shared_ip_sites: self.shared_ips,
            tcp_rtt: self.rtt,
            tcp_jitter: self.jitter,
            dns_rtt: self.dns_rtt,
            dns_jitter: self.dns_jitter,
            dns_loss: self.dns_loss,
            seed,
            ..WorldOptions::default()
        }
    }
}

/// `100ms`, `1s`, `1.5s`, `250us`, or `0`.
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err("needs a unit: us, ms or s".into());
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|e| format!("not a number: {e}"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("not a duration: {e}"))
}

/// `1%` or `0.01`, within 0–1.
fn parse_share(text: &str) -> Result<f64> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (text, 1.0),
    };
    let value = number
        .parse::<f64>()
        .map_err(|e| format!("not a number: {e}"))?
        * scale;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 100 %".into())
    }
}

/// A [`Duration`] as seconds (a JSON number).
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

/// The answer to `stats`: the world's counters and the process's own costs so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct WorldStats {
    /// DNS messages received, UDP and TCP.
    pub(super) dns_queries: u64,
    pub(super) dns_udp: u64,
    pub(super) dns_tcp: u64,
    /// Completed TLS handshakes on every site's HTTPS port.
    pub(super) handshakes: u64,
    /// HTTP requests received (both ports).
    pub(super) requests: u64,
    /// UDP DNS queries the network lost before the server saw them (`--dns-loss`).
    #[serde(default)]
    pub(super) dns_lost_queries: u64,
    /// UDP DNS answers the network lost on their way back.
    #[serde(default)]
    pub(super) dns_lost_answers: u64,
    /// Failed `accept` calls of the web server (out of descriptors: clients' connects
    /// waited on the world, so their timings are the world's).
    #[serde(default)]
    pub(super) accept_errors: u64,
    /// `utime + stime` of the world process.
    pub(super) cpu_s: f64,
    /// `VmHWM` of the world process.
    pub(super) peak_rss_kib: u64,
}

impl Hello {
    /// Connections the world can accept at once before running out of descriptors.
    pub(super) fn connection_room(&self) -> u64 {
        self.fd_limit.saturating_sub(self.open_fds)
    }
}

impl WorldStats {
    /// The counters of `self` minus those of `before`; CPU as a difference, the peak
    /// as `self`'s (a high-water mark has no difference).
    pub(super) fn since(&self, before: &Self) -> Self {
        Self {
            dns_queries: self.dns_queries.saturating_sub(before.dns_queries),
            dns_udp: self.dns_udp.saturating_sub(before.dns_udp),
            dns_tcp: self.dns_tcp.saturating_sub(before.dns_tcp),
            handshakes: self.handshakes.saturating_sub(before.handshakes),
            requests: self.requests.saturating_sub(before.requests),
            dns_lost_queries: self
                .dns_lost_queries
                .saturating_sub(before.dns_lost_queries),
            dns_lost_answers: self
                .dns_lost_answers
                .saturating_sub(before.dns_lost_answers),
            accept_errors: self.accept_errors.saturating_sub(before.accept_errors),
            cpu_s: (self.cpu_s - before.cpu_s).max(0.0),
            peak_rss_kib: self.peak_rss_kib,
        }
    }
}

// ---------------------------------------------------------------------------------
// The server side: `xtask world-serve`.

/// What `world-serve` is asked for.
#[derive(Clone, Debug, PartialEq)]
struct ServeOptions {
    sites: usize,
    seed: u64,
    dir: PathBuf,
    conditions: Conditions,
}

impl ServeOptions {
    fn parse(args: &[String]) -> Result<Self> {
        let (mut sites, mut seed, mut dir) = (None, None, None);
        let mut conditions = Conditions::default();
        let mut args = args.iter();
        while let Some(flag) = args.next() {
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            if conditions.take(flag, value)? {
                continue;
            }
            match flag.as_str() {
                "--sites" => {
                    sites = Some(value.parse().map_err(|e| format!("--sites {value}: {e}"))?);
                }
                "--seed" => {
                    seed = Some(value.parse().map_err(|e| format!("--seed {value}: {e}"))?);
                }
                "--dir" => dir = Some(PathBuf::from(value)),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(Self {
            sites: sites.ok_or("--sites is required")?,
            seed: seed.ok_or("--seed is required")?,
            dir: dir.ok_or("--dir is required")?,
            conditions,
        })
    }
}

/// Entry point of the hidden `xtask world-serve --sites N --seed S --dir D [conditions]`.
pub fn world_serve(args: &[String]) -> ExitCode {
    match ServeOptions::parse(args).and_then(serve) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask world-serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(options: ServeOptions) -> Result<()> {
    // Two listeners per site; a filtered site holds two more sockets (the fillers of
    // its holes), counted here with a margin for the draw.
    let filtered_bound = (options.sites as f64 * options.conditions.blackhole * 1.2).ceil();
    let fd_limit = raise_fd_limit(2 * options.sites as u64 + 2 * filtered_bound as u64 + FD_MARGIN);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    eprintln!(
        "xtask world-serve: generating a world of {} sites (seed {:#x}, conditions {:?})",
        options.sites, options.seed, options.conditions
    );
    let started = Instant::now();
    let world_options = options.conditions.world_options(options.seed);
    let world = runtime
        .block_on(World::generate_with(
            options.seed,
            options.sites,
            world_options,
        ))
        .map_err(|e| format!("cannot start the world: {e}"))?;
    let generate_s = started.elapsed().as_secs_f64();
    eprintln!(
        "xtask world-serve: {} sites up in {generate_s:.1} s; writing {}",
        options.sites,
        options.dir.display()
    );
    let https_sites = write_files(&world, &options.dir)?;
    let hello = Hello {
        dns: world.dns_addr(),
        https_port: world.web.https_port(),
        http_port: world.web.http_port(),
        expected_edges: world.expected_edges().len(),
        sites: options.sites,
        https_sites,
        fd_limit,
        open_fds: open_fds(),
        generate_s,
        conditions: options.conditions,
        // Each filtered address holds two holes.
        filtered_sites: world.web.filtered().len() / 2,
    };
    answer(&hello)?;
    // The runtime's workers serve the world; this thread only reads commands.
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        match line.trim() {
            "stats" => answer(&stats(&world)?)?,
            "" => {}
            other => answer(&serde_json::json!({ "error": format!("unknown command {other:?}") }))?,
        }
    }
    {
        let _runtime = runtime.enter();
        drop(world);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// One JSON line on stdout, flushed.
fn answer<T: Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| format!("JSON: {e}"))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}

fn stats(world: &World) -> Result<WorldStats> {
    // The peak first: `requests()` copies the request log for a moment.
    let peak_rss_kib = crate::proc_stat::own_peak_rss_kib()?;
    let cpu_s = crate::proc_stat::own_cpu_seconds()?;
    Ok(WorldStats {
        dns_queries: world.dns.query_count(),
        dns_udp: world.dns.udp_query_count(),
        dns_tcp: world.dns.tcp_query_count(),
        handshakes: world.web.handshakes(),
        requests: world.web.requests().len() as u64,
        dns_lost_queries: world.dns.lost_queries(),
        dns_lost_answers: world.dns.lost_answers(),
        accept_errors: world.web.accept_errors(),
        cpu_s,
        peak_rss_kib,
    })
}

/// Writes the domains, the roots and the HTTPS sites; returns the number of the latter.
fn write_files(world: &World, dir: &Path) -> Result<usize> {
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    write(DOMAINS_FILE, world.hosts().join("\n") + "\n")?;
    write(ROOTS_FILE, world.ca.root_pem())?;
    let https: Vec<String> = world
        .sites
        .iter()
        .filter(|site| {
            site.edges
                .iter()
                .any(|(kind, _, _)| *kind == EdgeType::UsesCert)
        })
        .filter_map(|site| {
            site.edges.iter().find_map(|(kind, _, target)| {
                let ip = target.parse::<Ipv4Addr>().ok()?;
                (*kind == EdgeType::ResolvesTo).then(|| format!("{} {ip}", site.host))
            })
        })
        .collect();
    write(HTTPS_SITES_FILE, https.join("\n") + "\n")?;
    let mut expected = String::new();
    for site in &world.sites {
        for (kind, source, target) in &site.edges {
            let _ = writeln!(expected, "{}\t{kind}\t{source}\t{target}", site.host);
        }
    }
    write(EXPECTED_EDGES_FILE, expected)?;
    Ok(https.len())
}

/// Raises the soft open-file limit of this process to `need` (and the hard one when
/// allowed) with `prlimit`: every site holds two listening sockets. Returns the soft
/// limit in force afterwards; says so on stderr when it stays below `need` (the
/// benchmark then checks the room actually left, see [`Hello::connection_room`]).
fn raise_fd_limit(need: u64) -> u64 {
    let Some((soft, hard)) = fd_limits() else {
        eprintln!("xtask world-serve: cannot read the open-file limit; leaving it");
        return 0;
    };
    if soft >= need {
        return soft;
    }
    let pid = std::process::id().to_string();
    let attempts = [(need, hard.max(need)), (hard.min(need), hard)];
    for (want_soft, want_hard) in attempts {
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={want_soft}:{want_hard}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if fd_limits().is_some_and(|(soft, _)| soft >= need) {
            break;
        }
    }
    let soft = fd_limits().map_or(soft, |(soft, _)| soft);
    if soft < need {
        eprintln!(
            "xtask world-serve: open-file limit stays {soft} (asked for {need}; raising it needs CAP_SYS_RESOURCE or a higher hard limit)"
        );
    }
    soft
}

/// Entries of `/proc/self/fd` (0 when unreadable).
fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count() as u64)
}

/// `(soft, hard)` of `Max open files` in `/proc/self/limits`.
fn fd_limits() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_fd_limits(&text)
}

fn parse_fd_limits(limits: &str) -> Option<(u64, u64)> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let mut values = line["Max open files".len()..].split_whitespace().map(|v| {
        if v == "unlimited" {
            Some(u64::MAX)
        } else {
            v.parse().ok()
        }
    });
    Some((values.next()??, values.next()??))
}

// ---------------------------------------------------------------------------------
// The client side: the benchmark's handle on the world process.

/// A running `world-serve` process. Killed when dropped.
#[derive(Debug)]
pub(super) struct WorldProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// Bound on one `stats` answer.
const ANSWER_LIMIT: Duration = Duration::from_secs(30);
/// Bound on the process's exit after EOF.
const EXIT_LIMIT: Duration = Duration::from_secs(30);

impl WorldProcess {
    /// Starts `xtask world-serve` (this very executable) under the world's pinning and
    /// waits up to `ready_limit` for its [`Hello`].
    pub(super) async fn start(
        pinning: &Pinning,
        sites: usize,
        seed: u64,
        dir: &Path,
        ready_limit: Duration,
    ) -> Result<(Self, Hello)> {
        let conditions = Conditions::default();
        Self::start_with(pinning, sites, seed, &conditions, dir, ready_limit).await
    }

    /// Like [`WorldProcess::start`], with the world behind `conditions`.
    pub(super) async fn start_with(
        pinning: &Pinning,
        sites: usize,
        seed: u64,
        conditions: &Conditions,
        dir: &Path,
        ready_limit: Duration,
    ) -> Result<(Self, Hello)> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = pinning
            .world_command(&exe)
            .arg("world-serve")
            .args(["--sites", &sites.to_string()])
            .args(["--seed", &seed.to_string()])
            .args(conditions.args())
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {} world-serve: {e}", exe.display()))?;
        let stdin = child.stdin.take().ok_or("no stdin for the world process")?;
        let stdout = child
            .stdout
            .take()
            .ok_or("no stdout for the world process")?;
        let mut world = Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
        };
        let line = world
            .read_line(ready_limit)
            .await
            .map_err(|e| format!("world of {sites} sites not ready: {e}"))?;
        let hello =
            serde_json::from_str(&line).map_err(|e| format!("world hello {line:?}: {e}"))?;
        Ok((world, hello))
    }

    /// The world's counters and costs now.
    pub(super) async fn stats(&mut self) -> Result<WorldStats> {
        let stdin = self.stdin.as_mut().ok_or("the world's stdin is closed")?;
        stdin
            .write_all(b"stats\n")
            .await
            .and(stdin.flush().await)
            .map_err(|e| format!("world stdin: {e}"))?;
        let line = self.read_line(ANSWER_LIMIT).await?;
        serde_json::from_str(&line).map_err(|e| format!("world stats {line:?}: {e}"))
    }

    /// Closes stdin and waits for a clean exit.
    pub(super) async fn stop(mut self) -> Result<()> {
        drop(self.stdin.take());
        match tokio::time::timeout(EXIT_LIMIT, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("the world process exited with {status}")),
            Ok(Err(e)) => Err(format!("world process: {e}")),
            Err(_) => Err(format!(
                "the world process did not exit within {EXIT_LIMIT:?} of EOF (killed)"
            )),
        }
    }

    async fn read_line(&mut self, limit: Duration) -> Result<String> {
        let mut line = String::new();
        let read = tokio::time::timeout(limit, self.stdout.read_line(&mut line))
            .await
            .map_err(|_| format!("no answer within {limit:?}"))?
            .map_err(|e| format!("world stdout: {e}"))?;
        if read == 0 {
            let status = self.child.try_wait().ok().flatten();
            return Err(format!(
                "the world process closed its stdout (exit status: {status:?}); see its stderr above"
            ));
        }
        Ok(line.trim_end().to_owned())
    }
}

/// `host ip` lines of `https_sites.txt`.
pub(super) fn read_https_sites(dir: &Path) -> Result<Vec<(String, Ipv4Addr)>> {
    let path = dir.join(HTTPS_SITES_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (host, ip) = line
                .split_once(' ')
                .ok_or_else(|| format!("{}: bad line {line:?}", path.display()))?;
            let ip = ip
                .trim()
                .parse()
                .map_err(|e| format!("{}: bad address in {line:?}: {e}", path.display()))?;
            Ok((host.to_owned(), ip))
        })
        .collect()
}

/// The names of `domains.txt`, in order.
pub(super) fn read_domains(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(DOMAINS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    #[test]
    fn serve_options_need_all_three() {
        assert_eq!(
            ServeOptions::parse(&args(&["--seed", "7", "--sites", "10", "--dir", "/tmp/w"])),
            Ok(ServeOptions {
                sites: 10,
                seed: 7,
                dir: PathBuf::from("/tmp/w"),
                conditions: Conditions::default(),
            })
        );
        assert!(ServeOptions::parse(&args(&["--sites", "10", "--dir", "/tmp/w"])).is_err());
        assert!(ServeOptions::parse(&args(&["--sites"])).is_err());
        assert!(
            ServeOptions::parse(&args(&["--sites", "x", "--seed", "1", "--dir", "d"])).is_err()
        );
        assert!(ServeOptions::parse(&args(&["--what", "1"])).is_err());
    }

    #[test]
    fn serve_options_take_the_network_conditions() {
        let parsed = ServeOptions::parse(&args(&[
            "--sites",
            "10",
            "--seed",
            "7",
            "--dir",
            "/tmp/w",
            "--rtt",
            "100ms",
            "--jitter",
            "10ms",
            "--dns-rtt",
            "0.04s",
            "--dns-jitter",
            "500us",
            "--dns-loss",
            "1%",
            "--blackhole",
            "0.02",
            "--shared-ips",
            "20 %",
        ]))
        .expect("parses");
        let want = Conditions {
            rtt: Duration::from_millis(100),
            jitter: Duration::from_millis(10),
            dns_rtt: Duration::from_millis(40),
            dns_jitter: Duration::from_micros(500),
            dns_loss: 0.01,
            blackhole: 0.02,
            shared_ips: 0.2,
        };
        assert_eq!(parsed.conditions, want);
        let options = want.world_options(7);
        assert_eq!(
            (
                options.tcp_rtt,
                options.dns_rtt,
                options.filtered,
                options.seed
            ),
            (want.rtt, want.dns_rtt, 0.02, 7)
        );
        assert_eq!(options.black_holes, 0.0);
        // The arguments a client passes reproduce the conditions exactly.
        let mut again = vec!["--sites", "1", "--seed", "1", "--dir", "d"]
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<_>>();
        again.extend(want.args());
        assert_eq!(
            ServeOptions::parse(&again).expect("parses").conditions,
            want
        );
        assert!(Conditions::default().args().is_empty());
        for bad in [
            ["--rtt", "100"],
            ["--rtt", "fast"],
            ["--rtt", "-1s"],
            ["--dns-loss", "101%"],
            ["--blackhole", "-0.1"],
            ["--dns-loss", "x%"],
        ] {
            let mut list = vec!["--sites", "1", "--seed", "1", "--dir", "d"];
            list.extend(bad);
            assert!(ServeOptions::parse(&args(&list)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn durations_and_shares_parse() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("ms").is_err());
        assert_eq!(parse_share("1%"), Ok(0.01));
        assert_eq!(parse_share("0.01"), Ok(0.01));
        assert_eq!(parse_share("100%"), Ok(1.0));
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("NaN").is_err());
    }

    #[test]
    fn reads_the_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max cpu time              unlimited            unlimited            seconds   \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_fd_limits(limits), Some((1024, 524_288)));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_fd_limits(unlimited), Some((u64::MAX, u64::MAX)));
        assert_eq!(parse_fd_limits("Max processes 1 2 processes\n"), None);
        assert!(fd_limits().is_some(), "/proc/self/limits");
    }

    #[test]
    fn stats_since_subtracts_counters_and_keeps_the_peak() {
        let before = WorldStats {
            dns_queries: 100,
            dns_udp: 90,
            dns_tcp: 10,
            handshakes: 5,
            requests: 12,
            dns_lost_queries: 1,
            dns_lost_answers: 2,
            accept_errors: 7,
            cpu_s: 1.5,
            peak_rss_kib: 1_000,
        };
        let after = WorldStats {
            dns_queries: 160,
            dns_udp: 140,
            dns_tcp: 20,
            handshakes: 8,
            requests: 20,
            dns_lost_queries: 4,
            dns_lost_answers: 2,
            accept_errors: 19,
            cpu_s: 2.0,
            peak_rss_kib: 1_200,
        };
        let delta = after.since(&before);
        assert_eq!(
            (delta.dns_queries, delta.dns_udp, delta.dns_tcp),
            (60, 50, 10)
        );
        assert_eq!((delta.handshakes, delta.requests), (3, 8));
        assert_eq!((delta.dns_lost_queries, delta.dns_lost_answers), (3, 0));
        assert_eq!(delta.accept_errors, 12);
        assert!((delta.cpu_s - 0.5).abs() < 1e-9);
        assert_eq!(delta.peak_rss_kib, 1_200);
    }

    #[test]
    fn hello_and_stats_round_trip_as_json_lines() {
        let hello = Hello {
            dns: "127.0.0.1:5353".parse().expect("address"),
            https_port: 4433,
            http_port: 8080,
            expected_edges: 1234,
            sites: 100,
            https_sites: 90,
            fd_limit: 20_000,
            open_fds: 19_500,
            generate_s: 0.5,
            conditions: Conditions {
                rtt: Duration::from_millis(100),
                dns_loss: 0.01,
                ..Conditions::default()
            },
            filtered_sites: 2,
        };
        let line = serde_json::to_string(&hello).expect("serialises");
        assert!(line.contains(r#""dns":"127.0.0.1:5353""#), "{line}");
        assert!(line.contains(r#""rtt":0.1"#), "{line}");
        assert_eq!(serde_json::from_str::<Hello>(&line).expect("parses"), hello);
        assert_eq!(hello.connection_room(), 500);
        let stats = WorldStats {
            dns_queries: 3,
            ..WorldStats::default()
        };
        let line = serde_json::to_string(&stats).expect("serialises");
        assert_eq!(
            serde_json::from_str::<WorldStats>(&line).expect("parses"),
            stats
        );
    }
}

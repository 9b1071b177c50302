//! The server side: `xtask world-serve`.

use std::fmt::Write as _;
use std::io::{BufRead, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use spyder_model::EdgeType;
use spyder_testkit::pki::TestCa;
use spyder_testkit::world::{Part, World};

use super::process::WorldProcess;
use super::{
    Conditions, DOMAINS_FILE, EXPECTED_EDGES_FILE, HTTPS_SITES_FILE, Hello, ROOTS_FILE, WorldStats,
};
use crate::bench::Result;

/// File descriptors asked for beyond two listeners per site: room for the
/// connections of spyder at high concurrency and of the ceiling clients.
const FD_MARGIN: u64 = 4_096;

/// What `world-serve` is asked for.
#[derive(Clone, Debug, PartialEq)]
struct ServeOptions {
    sites: usize,
    seed: u64,
    dir: PathBuf,
    conditions: Conditions,
    /// `--parts K`: serve the world in K processes (default: as many as the
    /// open-file limit needs).
    parts: Option<usize>,
    /// Given to the processes after the first: `--part i/K`, `--ports h,p` and
    /// `--ca FILE` (the first's exported CA).
    part: Option<ChildPart>,
}

/// What a process serving part of a world is told by the first.
#[derive(Clone, Debug, PartialEq)]
struct ChildPart {
    part: Part,
    ports: (u16, u16),
    ca: PathBuf,
}

impl ServeOptions {
    fn parse(args: &[String]) -> Result<Self> {
        let (mut sites, mut seed, mut dir) = (None, None, None);
        let (mut parts, mut part, mut ports, mut ca) = (None, None, None, None);
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
                "--parts" => match value.parse() {
                    Ok(k) if k >= 1 => parts = Some(k),
                    _ => return Err(format!("--parts {value}: a whole number ≥ 1")),
                },
                "--part" => {
                    let parsed = value.split_once('/').and_then(|(i, k)| {
                        let (index, count) = (i.parse().ok()?, k.parse().ok()?);
                        (index < count).then_some(Part { index, count })
                    });
                    part = Some(parsed.ok_or_else(|| format!("--part {value}: i/K, i < K"))?);
                }
                "--ports" => {
                    let parsed = value
                        .split_once(',')
                        .and_then(|(h, p)| Some((h.parse().ok()?, p.parse().ok()?)));
                    ports = Some(parsed.ok_or_else(|| format!("--ports {value}: HTTPS,HTTP"))?);
                }
                "--ca" => ca = Some(PathBuf::from(value)),
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        let part = match (part, ports, ca) {
            (None, None, None) => None,
            (Some(part), Some(ports), Some(ca)) => Some(ChildPart { part, ports, ca }),
            _ => return Err("--part, --ports and --ca go together".into()),
        };
        Ok(Self {
            sites: sites.ok_or("--sites is required")?,
            seed: seed.ok_or("--seed is required")?,
            dir: dir.ok_or("--dir is required")?,
            conditions,
            parts,
            part,
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

/// Where the parts after the first keep their files, under the world's directory.
fn part_dir(dir: &Path, index: usize) -> PathBuf {
    dir.join(format!("part-{index}"))
}

/// The first part's exported CA, for the others.
const CA_EXPORT_FILE: &str = "world-ca.txt";
/// Bound on a part's start (generating and binding its sites).
const PART_READY_LIMIT: Duration = Duration::from_secs(300);

/// Listening sockets a world of `sites` holds at most: two per site, and two more per
/// filtered site (the fillers of its holes), with a margin for the draw.
fn listener_fds(sites: usize, conditions: &Conditions) -> u64 {
    let filtered_bound = (sites as f64 * conditions.blackhole * 1.2).ceil() as u64;
    2 * sites as u64 + 2 * filtered_bound
}

/// Processes a world of `listeners` sockets needs under an open-file limit of
/// `limit`: each holds at most half its limit in listeners, leaving the other half
/// for connections. 1 when the limit is unknown (0).
fn parts_for(listeners: u64, limit: u64) -> usize {
    if limit == 0 {
        return 1;
    }
    let per_part = (limit / 2).max(1);
    usize::try_from(listeners.div_ceil(per_part)).map_or(1, |k| k.clamp(1, 64))
}

fn serve(options: ServeOptions) -> Result<()> {
    let listeners = listener_fds(options.sites, &options.conditions);
    let parts = match &options.part {
        Some(child) => child.part.count,
        None => {
            let limit = fd_limits().map_or(0, |(_, hard)| hard);
            options
                .parts
                .unwrap_or_else(|| parts_for(listeners + FD_MARGIN, limit))
        }
    };
    let own_listeners = listeners.div_ceil(parts as u64);
    let fd_limit = raise_fd_limit(own_listeners + FD_MARGIN);
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    let (part, ca, ports) = own_part(options.part.as_ref(), parts)?;
    eprintln!(
        "xtask world-serve: generating a world of {} sites (seed {:#x}; {}){}",
        options.sites,
        options.seed,
        options.conditions.describe(),
        if parts > 1 {
            format!(", part {} of {parts}", part.index + 1)
        } else {
            String::new()
        }
    );
    let started = Instant::now();
    let world_options = options.conditions.world_options(options.seed);
    let exported = ca.export();
    let world = runtime
        .block_on(World::generate_part(
            options.seed,
            options.sites,
            world_options,
            part,
            ca,
            ports,
        ))
        .map_err(|e| format!("cannot start the world: {e}"))?;
    let own_dir = if parts > 1 && options.part.is_none() {
        part_dir(&options.dir, 0)
    } else {
        options.dir.clone()
    };
    std::fs::create_dir_all(&own_dir)
        .map_err(|e| format!("cannot create {}: {e}", own_dir.display()))?;
    let https_sites = write_files(&world, &own_dir)?;
    let mut hello = Hello {
        dns: world.dns_addr(),
        https_port: world.web.https_port(),
        http_port: world.web.http_port(),
        expected_edges: world.expected_edges().len(),
        sites: world.sites.len(),
        https_sites,
        fd_limit,
        open_fds: open_fds(),
        generate_s: started.elapsed().as_secs_f64(),
        conditions: options.conditions,
        // Each filtered address holds two holes.
        filtered_sites: world.web.filtered().len() / 2,
    };
    // The first of several parts starts the others on its ports and CA.
    let mut others = Vec::new();
    if parts > 1 && options.part.is_none() {
        others = runtime.block_on(start_other_parts(&options, parts, &exported, &mut hello))?;
        hello.sites = options.sites;
        hello.generate_s = started.elapsed().as_secs_f64();
        hello.expected_edges = merge_parts(&options.dir, parts)?;
        eprintln!(
            "xtask world-serve: {} sites up in {:.1} s in {parts} processes (an open-file limit of {} holds {} listening sockets); writing {}",
            options.sites,
            hello.generate_s,
            fd_limit,
            listeners,
            options.dir.display()
        );
    } else if options.part.is_none() {
        eprintln!(
            "xtask world-serve: {} sites up in {:.1} s; writing {}",
            options.sites,
            hello.generate_s,
            options.dir.display()
        );
    }
    answer(&hello)?;
    read_commands(&runtime, &world, &mut others)?;
    for other in others {
        if let Err(e) = runtime.block_on(other.stop()) {
            eprintln!("xtask world-serve: {e}");
        }
    }
    {
        let _runtime = runtime.enter();
        drop(world);
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// What [`own_part`] returns.
type OwnPart = (Part, TestCa, Option<(u16, u16)>);

/// The part this process serves, the CA it signs with and the ports it must serve
/// on: a child's from its arguments and the first part's exported CA, else the first
/// of `parts` with a fresh CA on ports of its choosing.
fn own_part(child: Option<&ChildPart>, parts: usize) -> Result<OwnPart> {
    Ok(match child {
        Some(child) => {
            let text = std::fs::read_to_string(&child.ca)
                .map_err(|e| format!("cannot read {}: {e}", child.ca.display()))?;
            let ca =
                TestCa::from_export(&text).map_err(|e| format!("{}: {e}", child.ca.display()))?;
            (child.part, ca, Some(child.ports))
        }
        None => (
            Part {
                index: 0,
                count: parts,
            },
            TestCa::new(),
            None,
        ),
    })
}

/// Answers commands on stdin until it closes: `stats` sums this part's and the other
/// parts' counters; blank lines are ignored.
fn read_commands(
    runtime: &tokio::runtime::Runtime,
    world: &World,
    others: &mut [WorldProcess],
) -> Result<()> {
    // The runtime's workers serve the world; this thread only reads commands.
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("stdin: {e}"))?;
        match line.trim() {
            "stats" => {
                let mut total = stats(world)?;
                for other in others.iter_mut() {
                    total.add_part(&runtime.block_on(other.stats())?);
                }
                answer(&total)?;
            }
            "" => {}
            other => answer(&serde_json::json!({ "error": format!("unknown command {other:?}") }))?,
        }
    }
    Ok(())
}

/// Starts parts 2..=`parts` of the world on the first part's ports and CA
/// (`exported`), each in its own process and directory, and adds their sites and
/// descriptors to `hello`.
async fn start_other_parts(
    options: &ServeOptions,
    parts: usize,
    exported: &str,
    hello: &mut Hello,
) -> Result<Vec<WorldProcess>> {
    let ca_file = options.dir.join(CA_EXPORT_FILE);
    std::fs::write(&ca_file, exported)
        .map_err(|e| format!("cannot write {}: {e}", ca_file.display()))?;
    let ports = (hello.https_port, hello.http_port);
    let mut others = Vec::with_capacity(parts.saturating_sub(1));
    for index in 1..parts {
        let dir = part_dir(&options.dir, index);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let child = ChildPart {
            part: Part {
                index,
                count: parts,
            },
            ports,
            ca: ca_file.clone(),
        };
        let (process, part_hello) = WorldProcess::start_part(options, &child, &dir).await?;
        hello.add_part(&part_hello);
        others.push(process);
    }
    Ok(others)
}

/// Writes the whole world's files in `dir` from those of its parts
/// (`part-<i>/`): the domains interleaved part by part, the expected edges and the
/// HTTPS sites concatenated, the roots of the first. Returns the distinct expected
/// edges.
fn merge_parts(dir: &Path, parts: usize) -> Result<usize> {
    let read = |index: usize, name: &str| {
        let path = part_dir(dir, index).join(name);
        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
    };
    let mut domains: Vec<Vec<String>> = Vec::with_capacity(parts);
    let (mut expected, mut https) = (String::new(), String::new());
    for index in 0..parts {
        domains.push(
            read(index, DOMAINS_FILE)?
                .lines()
                .map(str::to_owned)
                .collect(),
        );
        expected.push_str(&read(index, EXPECTED_EDGES_FILE)?);
        for line in read(index, HTTPS_SITES_FILE)?
            .lines()
            .filter(|l| !l.is_empty())
        {
            https.push_str(line);
            https.push('\n');
        }
    }
    let longest = domains.iter().map(Vec::len).max().unwrap_or(0);
    let mut interleaved = String::new();
    for i in 0..longest {
        for part in &domains {
            if let Some(host) = part.get(i).filter(|h| !h.is_empty()) {
                interleaved.push_str(host);
                interleaved.push('\n');
            }
        }
    }
    let distinct: std::collections::BTreeSet<(&str, &str, &str)> = expected
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t').skip(1);
            Some((fields.next()?, fields.next()?, fields.next()?))
        })
        .collect();
    let count = distinct.len();
    write(DOMAINS_FILE, interleaved)?;
    write(EXPECTED_EDGES_FILE, expected.clone())?;
    write(HTTPS_SITES_FILE, https)?;
    write(ROOTS_FILE, read(0, ROOTS_FILE)?)?;
    Ok(count)
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

impl WorldProcess {
    /// Starts the process serving part `child` of the world `options` describes
    /// (this very executable, inheriting this process's CPU pinning).
    async fn start_part(
        options: &ServeOptions,
        child: &ChildPart,
        dir: &Path,
    ) -> Result<(Self, Hello)> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut command = tokio::process::Command::new(&exe);
        command
            .arg("world-serve")
            .args(["--sites", &options.sites.to_string()])
            .args(["--seed", &options.seed.to_string()])
            .args(options.conditions.args())
            .arg("--dir")
            .arg(dir)
            .args([
                "--part".to_owned(),
                format!("{}/{}", child.part.index, child.part.count),
                "--ports".to_owned(),
                format!("{},{}", child.ports.0, child.ports.1),
            ])
            .arg("--ca")
            .arg(&child.ca);
        let what = format!("part {} of the world", child.part.index + 1);
        Self::spawn(command, &what, PART_READY_LIMIT).await
    }
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
                parts: None,
                part: None,
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
    fn a_world_too_big_for_one_open_file_limit_is_served_in_parts() {
        // Two sockets per site, plus holes: 10,000 sites at 2 % filtered.
        let slow = Conditions {
            blackhole: 0.02,
            ..Conditions::default()
        };
        assert_eq!(listener_fds(10_000, &slow), 20_480);
        // Half of each process's limit for listeners, the other half for connections.
        assert_eq!(parts_for(20_480 + FD_MARGIN, 20_000), 3);
        assert_eq!(parts_for(2_000, 20_000), 1);
        assert_eq!(parts_for(2_000, 0), 1, "an unknown limit: one process");
        assert_eq!(parts_for(u64::MAX, 2), 64, "capped");
        let child = ServeOptions::parse(&args(&[
            "--sites", "10", "--seed", "7", "--dir", "/tmp/w", "--part", "1/3", "--ports",
            "443,80", "--ca", "/tmp/ca",
        ]))
        .expect("parses");
        assert_eq!(
            child.part,
            Some(ChildPart {
                part: Part { index: 1, count: 3 },
                ports: (443, 80),
                ca: PathBuf::from("/tmp/ca"),
            })
        );
        for bad in [
            &["--part", "3/3", "--ports", "1,2", "--ca", "c"][..],
            &["--part", "1/3"][..],
            &["--parts", "0"][..],
            &["--part", "1/3", "--ports", "1", "--ca", "c"][..],
        ] {
            let mut all = args(&["--sites", "10", "--seed", "7", "--dir", "d"]);
            all.extend(args(bad));
            assert!(ServeOptions::parse(&all).is_err(), "{bad:?}");
        }
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
}

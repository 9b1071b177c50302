//! The benchmark's results: derived figures, targets, the table, the JSON files and
//! the comparison with an earlier run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde::{Deserialize, Serialize};

use super::ceiling::{Ceiling, Phase, TLS_IN_FLIGHT, combined_domains_per_second};
use super::pinning::Pinning;
use super::probe::ProbeRun;
use super::world::{Hello, WorldStats};
use super::{Options, Result, WORLD_SEED};

/// Version of the JSON layout, bumped when a field changes meaning.
const SCHEMA: u32 = 1;
/// Targets of issue #6.
const HANDSHAKES_PER_DOMAIN_MAX: f64 = 1.0;
const DNS_QUERIES_PER_DOMAIN_MAX: f64 = 6.0;
const CPU_MS_PER_DOMAIN_MAX: f64 = 0.6;
const PEAK_RSS_MIB_MAX: f64 = 64.0;
/// The RSS target is stated for this run size and concurrency.
const PEAK_RSS_SITES: usize = 10_000;
const PEAK_RSS_CONCURRENCY: usize = 512;
const CEILING_FRACTION_MIN: f64 = 0.7;
/// A ceiling phase whose world was busier than this share of a core saturated it.
const SATURATED_WORLD: f64 = 0.9;
/// Other processes using more than this share of a core make a stretch noisy.
const NOISY_OTHERS: f64 = 0.2;

/// What was asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Inputs {
    pub(super) sites: usize,
    pub(super) seed: u64,
    pub(super) concurrency: usize,
    /// Extra spyder flags given after `--`.
    pub(super) extra_spyder_flags: Vec<String>,
    /// The full spyder command line (paths are the run's temporary directory).
    pub(super) spyder_args: Vec<String>,
    pub(super) strict: bool,
}

/// Where it ran.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Machine {
    /// `available_parallelism` when the benchmark started.
    pub(super) nproc: usize,
    pub(super) kernel: Option<String>,
    pub(super) cpu_model: Option<String>,
    pub(super) memory_mib: Option<u64>,
    /// `git rev-parse HEAD` of the workspace, when git answers.
    pub(super) git_rev: Option<String>,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages when the benchmark started.
    pub(super) load_average: Option<String>,
}

impl Machine {
    pub(super) fn detect() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).ok();
        Self {
            nproc: std::thread::available_parallelism().map_or(1, usize::from),
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()),
            cpu_model: read("/proc/cpuinfo").and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, model)| model.trim().to_owned())
            }),
            memory_mib: read("/proc/meminfo").and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("MemTotal:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                    .map(|kib| kib / 1024)
            }),
            git_rev: std::process::Command::new("git")
                .args(["rev-parse", "HEAD"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stderr(std::process::Stdio::null())
                .output()
                .ok()
                .filter(|out| out.status.success())
                .and_then(|out| String::from_utf8(out.stdout).ok())
                .map(|rev| rev.trim().to_owned()),
            load_average: read("/proc/loadavg")
                .map(|avg| avg.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
        }
    }
}

/// The probe's figures over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct ProbeFigures {
    pub(super) wall_s: f64,
    pub(super) domains_per_s: f64,
    pub(super) edges: u64,
    pub(super) edges_per_s: f64,
    pub(super) cpu_s: f64,
    pub(super) cpu_ms_per_domain: f64,
    /// Probe CPU over wall time (1.0 = one core busy).
    pub(super) cpu_core_share: f64,
    pub(super) peak_rss_mib: f64,
    /// Counted at the world's DNS server.
    pub(super) dns_queries_per_domain: f64,
    pub(super) dns_tcp_queries: u64,
    /// Counted at the world's web servers.
    pub(super) handshakes_per_domain: f64,
    pub(super) requests_per_domain: f64,
    /// Machine CPU used by neither spyder, the world nor xtask during the run (other
    /// processes, interrupts), in cores: high values mean a noisy run.
    pub(super) others_core_share: f64,
}

/// The world's figures over the same run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct WorldFigures {
    pub(super) cpu_s: f64,
    pub(super) cpu_ms_per_domain: f64,
    /// World CPU over the run's wall time (1.0 = its core saturated).
    pub(super) cpu_core_share: f64,
    /// `VmHWM` of the world process when the run ended (generation included).
    pub(super) peak_rss_mib: f64,
    pub(super) dns_queries: u64,
    pub(super) handshakes: u64,
    pub(super) requests: u64,
    /// Failed `accept` calls of the world during the run (out of descriptors).
    #[serde(default)]
    pub(super) accept_errors: u64,
}

/// The ceiling's rates and what they make of spyder's run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct CeilingFigures {
    pub(super) phases: Ceiling,
    pub(super) dns_queries_per_s: f64,
    pub(super) handshakes_per_s: f64,
    pub(super) visits_per_s: f64,
    /// `1 / (dns_per_domain / dns_qps + visits_per_domain / visits_per_s)`.
    pub(super) domains_per_s: Option<f64>,
    /// spyder's domains/s over `domains_per_s`.
    pub(super) spyder_fraction: Option<f64>,
    /// The same formula with each rate scaled to a whole world core (operations per
    /// world CPU second): the world's own limit, whatever the client could drive.
    pub(super) world_core_domains_per_s: Option<f64>,
    /// Phases whose world stayed under 90 % of a core: the client held them back.
    pub(super) client_bound_phases: Vec<String>,
}

/// One target and how the run did against it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Target {
    pub(super) name: String,
    pub(super) value: Option<f64>,
    pub(super) limit: f64,
    /// `true`: value <= limit is met; `false`: value >= limit is met.
    pub(super) at_most: bool,
    pub(super) met: bool,
    /// Whether the target is stated for this run (else shown for information only).
    pub(super) applies: bool,
    pub(super) note: Option<String>,
}

/// Everything one run of the benchmark produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Report {
    pub(super) schema: u32,
    pub(super) unix_time: u64,
    pub(super) inputs: Inputs,
    pub(super) machine: Machine,
    pub(super) pinning: Pinning,
    pub(super) world_setup: Hello,
    pub(super) probe: ProbeFigures,
    pub(super) world: WorldFigures,
    pub(super) ceiling: CeilingFigures,
    pub(super) targets: Vec<Target>,
    /// Why the run does not count (empty when it does).
    pub(super) problems: Vec<String>,
    /// Stretches (the spyder run, ceiling phases) during which other processes used
    /// more than 20 % of a core: their figures are suspect on a shared machine.
    pub(super) noisy: Vec<String>,
    /// The raw measurements of the spyder run.
    pub(super) run: ProbeRun,
    /// The world's counters at the end (whole life of the world process).
    pub(super) world_final: WorldStats,
    /// The whole command, release build included.
    pub(super) total_wall_s: f64,
}

/// What [`Report::new`] is built from.
#[derive(Debug)]
pub(super) struct Measured {
    pub(super) options: Options,
    pub(super) machine: Machine,
    pub(super) pinning: Pinning,
    pub(super) hello: Hello,
    pub(super) run: ProbeRun,
    pub(super) ceiling: Ceiling,
    pub(super) world_final: WorldStats,
}

impl Report {
    pub(super) fn new(m: Measured, unix_time: u64, total_wall_s: f64) -> Self {
        let n = m.options.sites.max(1) as f64;
        let run = &m.run;
        let wall = run.wall_s.max(f64::MIN_POSITIVE);
        let probe = ProbeFigures {
            wall_s: run.wall_s,
            domains_per_s: n / wall,
            edges: run.edges,
            edges_per_s: run.edges as f64 / wall,
            cpu_s: run.cpu_s,
            cpu_ms_per_domain: run.cpu_s * 1000.0 / n,
            cpu_core_share: run.cpu_s / wall,
            peak_rss_mib: run.peak_rss_kib as f64 / 1024.0,
            dns_queries_per_domain: run.world.dns_queries as f64 / n,
            dns_tcp_queries: run.world.dns_tcp,
            handshakes_per_domain: run.world.handshakes as f64 / n,
            requests_per_domain: run.world.requests as f64 / n,
            others_core_share: (run.machine_cpu_s - run.cpu_s - run.world.cpu_s - run.xtask_cpu_s)
                .max(0.0)
                / wall,
        };
        let world = WorldFigures {
            cpu_s: run.world.cpu_s,
            cpu_ms_per_domain: run.world.cpu_s * 1000.0 / n,
            cpu_core_share: run.world.cpu_s / wall,
            peak_rss_mib: run.world.peak_rss_kib as f64 / 1024.0,
            dns_queries: run.world.dns_queries,
            handshakes: run.world.handshakes,
            requests: run.world.requests,
            accept_errors: run.world.accept_errors,
        };
        let noisy = [
            ("spyder run", probe.others_core_share),
            ("ceiling DNS", m.ceiling.dns.others_busy()),
            ("ceiling TLS handshakes", m.ceiling.handshakes.others_busy()),
            ("ceiling site visits", m.ceiling.visits.others_busy()),
        ]
        .iter()
        .filter(|(_, others)| *others > NOISY_OTHERS)
        .map(|(stretch, others)| format!("{stretch} ({:.0}% of a core)", others * 100.0))
        .collect();
        let ceiling = ceiling_figures(m.ceiling, &probe);
        let targets = targets(&m.options, &probe, &ceiling);
        Self {
            schema: SCHEMA,
            unix_time,
            inputs: Inputs {
                sites: m.options.sites,
                seed: WORLD_SEED,
                concurrency: m.options.concurrency,
                extra_spyder_flags: m.options.spyder_flags.clone(),
                spyder_args: run.args.clone(),
                strict: m.options.strict,
            },
            machine: m.machine,
            pinning: m.pinning,
            problems: run.problems(m.options.sites),
            noisy,
            world_setup: m.hello,
            probe,
            world,
            ceiling,
            targets,
            run: m.run,
            world_final: m.world_final,
            total_wall_s,
        }
    }

    /// Prints the table (and the comparison), writes the JSON files, and says how the
    /// command should exit.
    pub(super) fn publish(
        &self,
        dir: &Path,
        compare: Option<&(PathBuf, serde_json::Value)>,
    ) -> ExitCode {
        print!("{}", self.render());
        if let Some((path, earlier)) = compare {
            match serde_json::to_value(self) {
                Ok(now) => print!("{}", render_comparison(path, earlier, &now)),
                Err(e) => eprintln!("xtask bench: cannot compare: {e}"),
            }
        }
        let written = [
            dir.join("latest.json"),
            dir.join(format!("{}.json", self.unix_time)),
        ]
        .iter()
        .try_for_each(|path| self.write_json(path));
        match written {
            Ok(()) => println!(
                "JSON: {} (and {}.json)",
                dir.join("latest.json").display(),
                self.unix_time
            ),
            Err(e) => {
                eprintln!("xtask bench: {e}");
                return ExitCode::FAILURE;
            }
        }
        if !self.problems.is_empty() {
            eprintln!(
                "xtask bench: the run does not count: {}",
                self.problems.join("; ")
            );
            return ExitCode::FAILURE;
        }
        let missed = self.targets.iter().any(|t| t.applies && !t.met);
        if self.inputs.strict && missed {
            eprintln!("xtask bench: --strict and a target was missed");
            return ExitCode::FAILURE;
        }
        ExitCode::SUCCESS
    }

    /// The table.
    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        self.render_inputs(&mut out);
        self.render_figures(&mut out);
        self.render_ceiling(&mut out);
        self.render_verdicts(&mut out);
        let _ = writeln!(out, "total wall time: {:.1} s", self.total_wall_s);
        out
    }

    /// What was run, on what, at which revision.
    fn render_inputs(&self, out: &mut String) {
        let rev = self
            .machine
            .git_rev
            .as_deref()
            .map_or("unknown", |r| &r[..r.len().min(12)]);
        let _ = writeln!(
            out,
            "bench: {} domains (world seed {:#x}), concurrency {}, spyder at {rev}; {}; load average at start {}",
            self.inputs.sites,
            self.inputs.seed,
            self.inputs.concurrency,
            self.pinning.describe(),
            self.machine.load_average.as_deref().unwrap_or("unknown")
        );
        if !self.inputs.extra_spyder_flags.is_empty() {
            let _ = writeln!(
                out,
                "extra spyder flags: {}",
                self.inputs.extra_spyder_flags.join(" ")
            );
        }
    }

    /// The world, the run's summary and the figures of probe and world.
    fn render_figures(&self, out: &mut String) {
        let p = &self.probe;
        let w = &self.world;
        let summary = self.run.summary.unwrap_or_default();
        let _ = writeln!(
            out,
            "world: generated in {:.1} s, {} HTTPS sites, {} expected edges, room for {} connections; spyder: {} processed, {} successful, {} failed, {} edge records, {} log lines, exit {:?}",
            self.world_setup.generate_s,
            self.world_setup.https_sites,
            self.world_setup.expected_edges,
            self.world_setup.connection_room(),
            summary.processed,
            summary.successful,
            summary.failed,
            p.edges,
            self.run.log_lines,
            self.run.exit_code
        );
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>10} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10} {:>10}",
            "",
            "wall s",
            "domains/s",
            "edges/s",
            "CPU s",
            "CPU ms/d",
            "CPU core",
            "peak MiB",
            "DNS q/d",
            "TLS hs/d"
        );
        let _ = writeln!(
            out,
            "{:<16} {:>7.1} {:>10.1} {:>10.1} {:>9.2} {:>9.3} {:>8.0}% {:>10.1} {:>10.2} {:>10.3}",
            "spyder probe",
            p.wall_s,
            p.domains_per_s,
            p.edges_per_s,
            p.cpu_s,
            p.cpu_ms_per_domain,
            p.cpu_core_share * 100.0,
            p.peak_rss_mib,
            p.dns_queries_per_domain,
            p.handshakes_per_domain
        );
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>10} {:>10} {:>9.2} {:>9.3} {:>8.0}% {:>10.1} {:>10} {:>10}",
            "world servers",
            "-",
            "-",
            "-",
            w.cpu_s,
            w.cpu_ms_per_domain,
            w.cpu_core_share * 100.0,
            w.peak_rss_mib,
            "-",
            "-"
        );
        let _ = writeln!(
            out,
            "  (DNS and TLS per domain are counted at the world's servers: {} queries, {} of them over TCP; {} handshakes; {:.2} HTTP requests per domain. The world's peak includes generating the world. Other processes and interrupts used {:.0}% of a core during the run.)",
            w.dns_queries,
            p.dns_tcp_queries,
            w.handshakes,
            p.requests_per_domain,
            p.others_core_share * 100.0
        );
    }

    /// What the world can serve at most, and spyder's share of it.
    fn render_ceiling(&self, out: &mut String) {
        let p = &self.probe;
        let c = &self.ceiling;
        let _ = writeln!(
            out,
            "ceiling of the world (minimal clients pinned like spyder, {:.0} s per phase):",
            c.phases.dns.seconds
        );
        for (label, phase, unit) in [
            ("DNS", &c.phases.dns, "queries/s"),
            ("TLS handshakes", &c.phases.handshakes, "handshakes/s"),
            ("site visits", &c.phases.visits, "visits/s"),
        ] {
            let _ = writeln!(out, "  {}", phase_line(label, phase, unit));
        }
        match (c.domains_per_s, c.spyder_fraction) {
            (Some(ceiling), Some(fraction)) => {
                let _ = writeln!(
                    out,
                    "  world ceiling  {ceiling:>10.1} domains/s = 1 / ({:.2} q/d / {:.0} q/s + {:.3} visits/d / {:.0} visits/s)",
                    p.dns_queries_per_domain,
                    c.dns_queries_per_s,
                    p.handshakes_per_domain,
                    c.visits_per_s
                );
                let _ = writeln!(
                    out,
                    "  spyder / ceiling {:>8.1}%  ({:.1} of {ceiling:.1} domains/s)",
                    fraction * 100.0,
                    p.domains_per_s
                );
            }
            _ => {
                let _ = writeln!(out, "  world ceiling: not measurable (a rate was zero)");
            }
        }
        if let Some(world_core) = c.world_core_domains_per_s {
            let _ = writeln!(
                out,
                "  world-core limit {world_core:>8.1} domains/s (same formula, rates per world CPU second: what the world would serve with its core saturated)"
            );
        }
        if !c.client_bound_phases.is_empty() {
            let _ = writeln!(
                out,
                "  note: the world stayed under {:.0}% of its core in {}: the client limited those phases, so the ceiling is a lower bound there",
                SATURATED_WORLD * 100.0,
                c.client_bound_phases.join(", ")
            );
        }
    }

    /// Targets, cautions, log sample and problems.
    fn render_verdicts(&self, out: &mut String) {
        let _ = writeln!(out, "targets:");
        for t in &self.targets {
            let _ = writeln!(out, "  {}", target_line(t));
        }
        let room = self.world_setup.connection_room();
        let wanted = (self.inputs.concurrency + TLS_IN_FLIGHT) as u64;
        if room < wanted {
            let _ = writeln!(
                out,
                "CAUTION: the world has descriptors for {room} connections (limit {}, {} held by listeners and sockets), fewer than concurrency {} + {TLS_IN_FLIGHT}: its accepts may have stalled",
                self.world_setup.fd_limit, self.world_setup.open_fds, self.inputs.concurrency
            );
        }
        if self.world.accept_errors > 0 {
            let _ = writeln!(
                out,
                "CAUTION: the world failed {} accepts during the run (out of descriptors): spyder's connects waited on the world, so the run measures the world",
                self.world.accept_errors
            );
        }
        if !self.noisy.is_empty() {
            let _ = writeln!(
                out,
                "NOISY: other processes used more than {:.0}% of a core during: {}. Those figures are suspect; rerun on a quiet machine.",
                NOISY_OTHERS * 100.0,
                self.noisy.join(", ")
            );
        }
        for line in &self.run.log_sample {
            let _ = writeln!(out, "spyder log: {line}");
        }
        for problem in &self.problems {
            let _ = writeln!(out, "RUN DOES NOT COUNT: {problem}");
        }
    }
    fn write_json(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| format!("JSON: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

fn ceiling_figures(phases: Ceiling, probe: &ProbeFigures) -> CeilingFigures {
    let dns_queries_per_s = phases.dns.per_second();
    let visits_per_s = phases.visits.per_second();
    let domains_per_s = combined_domains_per_second(
        probe.dns_queries_per_domain,
        dns_queries_per_s,
        probe.handshakes_per_domain,
        visits_per_s,
    );
    let world_core_domains_per_s = combined_domains_per_second(
        probe.dns_queries_per_domain,
        phases.dns.per_world_cpu_second(),
        probe.handshakes_per_domain,
        phases.visits.per_world_cpu_second(),
    );
    let client_bound_phases = [
        ("DNS", &phases.dns),
        ("TLS handshakes", &phases.handshakes),
        ("site visits", &phases.visits),
    ]
    .iter()
    .filter(|(_, phase)| phase.world_busy() < SATURATED_WORLD)
    .map(|(name, _)| (*name).to_owned())
    .collect();
    CeilingFigures {
        dns_queries_per_s,
        handshakes_per_s: phases.handshakes.per_second(),
        visits_per_s,
        domains_per_s,
        spyder_fraction: domains_per_s
            .filter(|c| *c > 0.0)
            .map(|c| probe.domains_per_s / c),
        world_core_domains_per_s,
        client_bound_phases,
        phases,
    }
}

fn targets(options: &Options, probe: &ProbeFigures, ceiling: &CeilingFigures) -> Vec<Target> {
    let target = |name: &str, value: Option<f64>, limit: f64, at_most: bool| Target {
        name: name.to_owned(),
        value,
        limit,
        at_most,
        met: value.is_some_and(|v| if at_most { v <= limit } else { v >= limit }),
        applies: true,
        note: None,
    };
    let rss_applies =
        options.sites == PEAK_RSS_SITES && options.concurrency == PEAK_RSS_CONCURRENCY;
    vec![
        target(
            "TLS handshakes per domain",
            Some(probe.handshakes_per_domain),
            HANDSHAKES_PER_DOMAIN_MAX,
            true,
        ),
        target(
            "DNS queries per domain",
            Some(probe.dns_queries_per_domain),
            DNS_QUERIES_PER_DOMAIN_MAX,
            true,
        ),
        target(
            "probe CPU ms per domain",
            Some(probe.cpu_ms_per_domain),
            CPU_MS_PER_DOMAIN_MAX,
            true,
        ),
        Target {
            applies: rss_applies,
            note: (!rss_applies).then(|| {
                format!(
                    "stated for {PEAK_RSS_SITES} domains at concurrency {PEAK_RSS_CONCURRENCY}: informative here"
                )
            }),
            ..target(
                "probe peak RSS MiB",
                Some(probe.peak_rss_mib),
                PEAK_RSS_MIB_MAX,
                true,
            )
        },
        Target {
            note: ceiling
                .domains_per_s
                .is_none()
                .then(|| "no ceiling measured".to_owned()),
            ..target(
                "throughput / world ceiling",
                ceiling.spyder_fraction,
                CEILING_FRACTION_MIN,
                false,
            )
        },
    ]
}

fn phase_line(label: &str, phase: &Phase, unit: &str) -> String {
    let mut line = format!(
        "{label:<14} {:>10.1} {unit:<13} ({} in flight, {} done, {} failed, world counted {}; busy: world {:.0}%, client {:.0}%, others {:.0}% of a core; {:.0} per world CPU s)",
        phase.per_second(),
        phase.in_flight,
        phase.completed,
        phase.failed,
        phase.world_counted,
        phase.world_busy() * 100.0,
        phase.client_busy() * 100.0,
        phase.others_busy() * 100.0,
        phase.per_world_cpu_second()
    );
    if let Some(e) = &phase.first_error {
        let _ = write!(line, "; first failure: {e}");
    }
    line
}

fn target_line(t: &Target) -> String {
    let verdict = match (t.met, t.applies) {
        (true, true) => "met",
        (false, true) => "MISSED",
        (true, false) => "met (n/a)",
        (false, false) => "missed (n/a)",
    };
    let value = t.value.map_or("-".to_owned(), |v| format!("{v:.3}"));
    let op = if t.at_most { "<=" } else { ">=" };
    let mut line = format!("{:<28} {value:>9} {op} {:<6} {verdict}", t.name, t.limit);
    if let Some(note) = &t.note {
        let _ = write!(line, " ({note})");
    }
    line
}

/// Figures compared by `--compare`: label and JSON pointer.
const COMPARED: [(&str, &str); 14] = [
    ("domains/s", "/probe/domains_per_s"),
    ("edges/s", "/probe/edges_per_s"),
    ("probe CPU ms/domain", "/probe/cpu_ms_per_domain"),
    ("probe peak RSS MiB", "/probe/peak_rss_mib"),
    ("DNS queries/domain", "/probe/dns_queries_per_domain"),
    ("TLS handshakes/domain", "/probe/handshakes_per_domain"),
    ("world CPU ms/domain", "/world/cpu_ms_per_domain"),
    ("world peak RSS MiB", "/world/peak_rss_mib"),
    ("ceiling DNS queries/s", "/ceiling/dns_queries_per_s"),
    ("ceiling handshakes/s", "/ceiling/handshakes_per_s"),
    ("ceiling visits/s", "/ceiling/visits_per_s"),
    ("ceiling domains/s", "/ceiling/domains_per_s"),
    ("spyder / ceiling", "/ceiling/spyder_fraction"),
    ("total wall s", "/total_wall_s"),
];

/// Inputs that make two runs not comparable when they differ.
const INPUTS: [(&str, &str); 5] = [
    ("domains", "/inputs/sites"),
    ("concurrency", "/inputs/concurrency"),
    ("extra flags", "/inputs/extra_spyder_flags"),
    ("pinning", "/pinning/world"),
    ("git rev", "/machine/git_rev"),
];

/// The deltas of `now` against `earlier` (both report JSON; missing figures are shown
/// as `-`, so older or newer layouts still compare).
pub(super) fn render_comparison(
    path: &Path,
    earlier: &serde_json::Value,
    now: &serde_json::Value,
) -> String {
    let mut out = format!("compared with {}:\n", path.display());
    for (label, pointer) in INPUTS {
        let (a, b) = (earlier.pointer(pointer), now.pointer(pointer));
        if a != b {
            let show = |v: Option<&serde_json::Value>| v.map_or("-".to_owned(), |v| v.to_string());
            let _ = writeln!(out, "  differs: {label}: {} -> {}", show(a), show(b));
        }
    }
    let _ = writeln!(
        out,
        "  {:<24} {:>12} {:>12} {:>12} {:>9}",
        "figure", "earlier", "now", "delta", "change"
    );
    for (label, pointer) in COMPARED {
        let a = earlier.pointer(pointer).and_then(serde_json::Value::as_f64);
        let b = now.pointer(pointer).and_then(serde_json::Value::as_f64);
        let show = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.3}"));
        let (delta, change) = match (a, b) {
            (Some(a), Some(b)) => (
                format!("{:+.3}", b - a),
                if a == 0.0 {
                    "-".to_owned()
                } else {
                    format!("{:+.1}%", (b - a) / a.abs() * 100.0)
                },
            ),
            _ => ("-".to_owned(), "-".to_owned()),
        };
        let _ = writeln!(
            out,
            "  {label:<24} {:>12} {:>12} {delta:>12} {change:>9}",
            show(a),
            show(b)
        );
    }
    out
}

/// Reads an earlier report for `--compare`.
pub(super) fn read_earlier(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("--compare {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("--compare {}: {e}", path.display()))
}

/// `<target dir>/bench`. The target directory is `CARGO_TARGET_DIR` when set
/// (relative to the workspace), else the one cargo built `spyder` in (the binary is
/// `<target>/release/spyder`, which also honours `build.target-dir`), else the
/// workspace's `target/`.
pub(super) fn bench_dir(spyder: &Path) -> PathBuf {
    target_dir(std::env::var_os("CARGO_TARGET_DIR"), spyder).join("bench")
}

fn target_dir(cargo_target_dir: Option<std::ffi::OsString>, spyder: &Path) -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = xtask.parent().unwrap_or(xtask);
    let from_binary = spyder
        .parent()
        .filter(|profile| profile.file_name().is_some_and(|n| n == "release"))
        .and_then(Path::parent);
    match cargo_target_dir.filter(|d| !d.is_empty()) {
        Some(dir) => workspace.join(dir),
        None => from_binary.map_or_else(|| workspace.join("target"), Path::to_path_buf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::probe::Summary;

    fn sample(sites: usize, concurrency: usize) -> Report {
        Report::new(measured(sites, concurrency), 1_800_000_000, 42.0)
    }

    fn measured(sites: usize, concurrency: usize) -> Measured {
        let phase = |completed, world_cpu_s| Phase {
            completed,
            failed: 0,
            first_error: None,
            in_flight: 32,
            seconds: 3.0,
            world_cpu_s,
            world_counted: completed,
            client_cpu_s: 3.0,
            machine_cpu_s: 3.0 + world_cpu_s,
        };
        let run = ProbeRun {
            wall_s: 10.0,
            cpu_s: 5.0,
            polled_cpu_s: 4.9,
            peak_rss_kib: 50 * 1024,
            edges: 80_000,
            records: 100_000,
            exit_code: Some(0),
            summary: Some(Summary {
                processed: sites as u64,
                successful: sites as u64 - 10,
                failed: 10,
                edges: 80_000,
            }),
            log_lines: 0,
            log_sample: Vec::new(),
            world: WorldStats {
                dns_queries: 5 * sites as u64,
                dns_udp: 5 * sites as u64,
                dns_tcp: 0,
                handshakes: sites as u64 * 9 / 10,
                requests: 2 * sites as u64,
                cpu_s: 6.0,
                peak_rss_kib: 400 * 1024,
                dns_lost_queries: 0,
                dns_lost_answers: 0,
                accept_errors: 0,
            },
            xtask_cpu_s: 0.1,
            machine_cpu_s: 12.1,
            args: vec!["-concurrency=512".to_owned()],
        };
        Measured {
            options: Options {
                sites,
                concurrency,
                strict: false,
                network: super::super::world::Conditions::default(),
                sweep: None,
                compare: None,
                spyder_flags: Vec::new(),
            },
            machine: Machine {
                nproc: 2,
                kernel: Some("6.1".to_owned()),
                cpu_model: None,
                memory_mib: Some(24_000),
                git_rev: Some("0123456789abcdef".to_owned()),
                load_average: Some("0.10 0.20 0.30".to_owned()),
            },
            pinning: Pinning::detect(),
            hello: Hello {
                dns: "127.0.0.1:5353".parse().expect("address"),
                https_port: 4433,
                http_port: 8080,
                expected_edges: 80_000,
                sites,
                https_sites: sites * 9 / 10,
                fd_limit: 65_536,
                open_fds: 20_000,
                generate_s: 4.0,
                conditions: super::super::world::Conditions::default(),
                filtered_sites: 0,
            },
            run,
            ceiling: Ceiling {
                dns: phase(150_000, 2.9),
                handshakes: phase(9_000, 2.95),
                visits: phase(6_000, 2.0),
            },
            world_final: WorldStats {
                peak_rss_kib: 500 * 1024,
                ..WorldStats::default()
            },
        }
    }

    #[test]
    fn figures_and_targets_follow_from_the_measures() {
        let report = sample(10_000, 512);
        assert!((report.probe.domains_per_s - 1_000.0).abs() < 1e-9);
        assert!((report.probe.edges_per_s - 8_000.0).abs() < 1e-9);
        assert!((report.probe.cpu_ms_per_domain - 0.5).abs() < 1e-9);
        assert!((report.probe.dns_queries_per_domain - 5.0).abs() < 1e-9);
        assert!((report.probe.handshakes_per_domain - 0.9).abs() < 1e-9);
        assert!((report.world.cpu_ms_per_domain - 0.6).abs() < 1e-9);
        // 5 / 50,000 + 0.9 / 2,000 = 0.00055 s per domain.
        let ceiling = report.ceiling.domains_per_s.expect("a ceiling");
        assert!((ceiling - 1.0 / 0.00055).abs() < 1e-6, "{ceiling}");
        let fraction = report.ceiling.spyder_fraction.expect("a fraction");
        assert!((fraction - 0.55).abs() < 1e-9, "{fraction}");
        assert_eq!(report.ceiling.client_bound_phases, ["site visits"]);
        // 5 / (150,000 / 2.9) + 0.9 / (6,000 / 2.0) s per domain.
        let world_core = report.ceiling.world_core_domains_per_s.expect("a limit");
        let expected = 1.0 / (5.0 * 2.9 / 150_000.0 + 0.9 * 2.0 / 6_000.0);
        assert!((world_core - expected).abs() < 1e-6, "{world_core}");
        // 12.1 - 5 - 6 - 0.1 = 1 s of other CPU over 10 s.
        assert!((report.probe.others_core_share - 0.1).abs() < 1e-9);
        assert!(report.noisy.is_empty(), "{:?}", report.noisy);
        let verdicts: Vec<(bool, bool)> =
            report.targets.iter().map(|t| (t.met, t.applies)).collect();
        assert_eq!(
            verdicts,
            [
                (true, true),
                (true, true),
                (true, true),
                (true, true),
                (false, true)
            ]
        );
        assert!(report.problems.is_empty());
        let table = report.render();
        assert!(table.contains("spyder probe"), "{table}");
        assert!(table.contains("throughput / world ceiling"), "{table}");
        assert!(table.contains("MISSED"), "{table}");
    }

    #[test]
    fn other_processes_busy_during_a_stretch_make_it_noisy() {
        let mut m = measured(10_000, 512);
        m.run.machine_cpu_s += 3.0; // 30 % of a core over the 10 s run
        m.ceiling.visits.machine_cpu_s += 1.5; // 50 % over 3 s
        let report = Report::new(m, 1, 1.0);
        assert_eq!(
            report.noisy,
            [
                "spyder run (40% of a core)",
                "ceiling site visits (50% of a core)"
            ]
        );
        assert!(report.render().contains("NOISY: "));
    }

    #[test]
    fn the_rss_target_applies_to_its_stated_run_only() {
        let small = sample(2_000, 512);
        let rss = &small.targets[3];
        assert!(rss.met && !rss.applies, "{rss:?}");
        assert!(target_line(rss).contains("met (n/a)"));
    }

    /// `a` and `b` are equal but for floats within a relative 1e-12.
    fn assert_close(a: &serde_json::Value, b: &serde_json::Value, at: &str) {
        use serde_json::Value;
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => {
                let (x, y) = (
                    x.as_f64().unwrap_or(f64::NAN),
                    y.as_f64().unwrap_or(f64::NAN),
                );
                assert!(
                    (x - y).abs() <= 1e-12 * x.abs().max(y.abs()),
                    "{at}: {x} != {y}"
                );
            }
            (Value::Array(x), Value::Array(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                for (i, (x, y)) in x.iter().zip(y).enumerate() {
                    assert_close(x, y, &format!("{at}/{i}"));
                }
            }
            (Value::Object(x), Value::Object(y)) => {
                assert_eq!(x.len(), y.len(), "{at}");
                for (key, x) in x {
                    let y = y.get(key).unwrap_or(&Value::Null);
                    assert_close(x, y, &format!("{at}/{key}"));
                }
            }
            _ => assert_eq!(a, b, "{at}"),
        }
    }

    #[test]
    fn the_json_round_trips() {
        let report = sample(2_000, 512);
        let text = serde_json::to_string_pretty(&report).expect("serialises");
        let back: Report = serde_json::from_str(&text).expect("parses");
        // serde_json's float parsing may be off in the last bit: compare closely.
        assert_close(
            &serde_json::to_value(&back).expect("value"),
            &serde_json::to_value(&report).expect("value"),
            "",
        );
        assert_eq!(back.targets.len(), report.targets.len());
        assert_eq!(back.inputs, report.inputs);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nested").join("latest.json");
        report.write_json(&path).expect("writes");
        let read = read_earlier(&path).expect("reads");
        assert_eq!(read["inputs"]["sites"], 2_000);
        assert_eq!(read["schema"], SCHEMA);
    }

    #[test]
    fn results_go_under_the_target_dir() {
        let binary = Path::new("/t/custom/release/spyder");
        assert_eq!(target_dir(None, binary), Path::new("/t/custom"));
        assert_eq!(
            target_dir(Some("/elsewhere".into()), binary),
            Path::new("/elsewhere")
        );
        let relative = target_dir(Some("target-x".into()), binary);
        assert!(
            relative.is_absolute() && relative.ends_with("target-x"),
            "{relative:?}"
        );
        assert!(target_dir(None, Path::new("spyder")).ends_with("target"));
    }

    #[test]
    fn comparison_shows_deltas_and_differing_inputs() {
        let earlier = serde_json::to_value(sample(2_000, 512)).expect("value");
        let mut now = earlier.clone();
        now["probe"]["domains_per_s"] = serde_json::json!(220.0);
        now["inputs"]["concurrency"] = serde_json::json!(256);
        if let Some(ceiling) = now.get_mut("ceiling").and_then(|c| c.as_object_mut()) {
            ceiling.remove("visits_per_s");
        }
        let text = render_comparison(Path::new("old.json"), &earlier, &now);
        assert!(text.contains("differs: concurrency: 512 -> 256"), "{text}");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("domains/s"))
            .expect("a domains/s line");
        assert!(
            line.contains("+20.000") && line.contains("+10.0%"),
            "{line}"
        );
        let visits = text
            .lines()
            .find(|l| l.trim_start().starts_with("ceiling visits/s"))
            .expect("a visits line");
        assert!(visits.trim_end().ends_with('-'), "{visits}");
    }
}

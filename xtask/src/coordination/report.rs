//! The benchmark's results: the table on stdout, the JSON file and the verdicts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use super::redis_ops::CommandStat;
use super::{
    AFTER_OUTAGE_ITEMS, OUTAGE, OUTAGE_CPU_TARGET_S, Options, REDIS_CORE_TARGET, Result,
    WALL_RATIO_TARGET, WORLD_SEED,
};

/// What one of runs A and B measured.
#[derive(Debug)]
pub(super) struct RunMeasure {
    pub(super) run: &'static str,
    pub(super) probes: usize,
    pub(super) concurrency: usize,
    pub(super) items: usize,
    pub(super) wall: Duration,
    pub(super) probe_cpu_s: f64,
    pub(super) redis_cpu_s: f64,
    /// CPU of this process: the testkit DNS and web servers the probes crawl.
    pub(super) world_cpu_s: f64,
    /// Redis commands during the run (the probes' and this benchmark's polling).
    pub(super) commands: Vec<CommandStat>,
}

impl RunMeasure {
    fn wall_s(&self) -> f64 {
        self.wall.as_secs_f64()
    }

    fn domains_per_s(&self) -> f64 {
        self.items as f64 / self.wall_s()
    }

    fn cpu_ms_per_domain(&self) -> f64 {
        self.probe_cpu_s * 1000.0 / self.items as f64
    }

    /// Redis CPU as a share of one core over the run.
    fn redis_core_share(&self) -> f64 {
        self.redis_cpu_s / self.wall_s()
    }

    /// `name calls/domain` of the most called commands.
    fn commands_per_domain(&self) -> String {
        self.commands
            .iter()
            .take(8)
            .map(|c| format!("{} {:.2}", c.name, c.calls as f64 / self.items as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn label(&self) -> String {
        let plural = if self.probes == 1 { "" } else { "s" };
        format!(
            "{}: {} probe{plural} x {}",
            self.run, self.probes, self.concurrency
        )
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "probes": self.probes,
            "concurrency_each": self.concurrency,
            "items": self.items,
            "wall_s": self.wall_s(),
            "domains_per_s": self.domains_per_s(),
            "probe_cpu_s": self.probe_cpu_s,
            "cpu_ms_per_domain": self.cpu_ms_per_domain(),
            "redis_cpu_s": self.redis_cpu_s,
            "redis_core_share": self.redis_core_share(),
            "world_cpu_s": self.world_cpu_s,
            "redis_commands": self
                .commands
                .iter()
                .map(|c| (c.name.clone(), serde_json::json!({ "calls": c.calls, "usec": c.usec })))
                .collect::<serde_json::Map<_, _>>(),
        })
    }
}

/// What run C measured.
#[derive(Debug)]
pub(super) struct OutageMeasure {
    /// Probe CPU over [`OUTAGE`] idling with Redis up (the baseline).
    pub(super) idle_cpu_s: f64,
    /// Probe CPU over the [`OUTAGE`] with Redis down (B-02).
    pub(super) outage_cpu_s: f64,
    /// From the restart until the new items were drained.
    pub(super) resumed_in: Duration,
}

/// The three runs and their verdicts.
#[derive(Debug)]
pub(super) struct Report {
    pub(super) options: Options,
    pub(super) single: RunMeasure,
    pub(super) shared: RunMeasure,
    pub(super) outage: OutageMeasure,
}

impl Report {
    fn wall_ratio(&self) -> f64 {
        self.shared.wall_s() / self.single.wall_s()
    }

    fn wall_ok(&self) -> bool {
        self.wall_ratio() <= WALL_RATIO_TARGET
    }

    fn redis_ok(&self) -> bool {
        self.shared.redis_core_share() < REDIS_CORE_TARGET
    }

    fn outage_ok(&self) -> bool {
        self.outage.outage_cpu_s < OUTAGE_CPU_TARGET_S
    }

    /// Prints the table, writes the JSON; success when every target is met.
    pub(super) fn publish(&self) -> ExitCode {
        self.print();
        let path = json_path();
        match self.write_json(&path) {
            Ok(()) => println!("JSON: {}", path.display()),
            Err(e) => {
                eprintln!("xtask bench-coordination: {e}");
                return ExitCode::FAILURE;
            }
        }
        if self.wall_ok() && self.redis_ok() && self.outage_ok() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    fn print(&self) {
        println!(
            "bench-coordination: {} sites, plain queue mode, one redis-server (queue + dedup; persistence: {})",
            self.options.sites,
            self.options.persistence()
        );
        if !self.options.probe_flags.is_empty() {
            println!("extra probe flags: {}", self.options.probe_flags.join(" "));
        }
        println!(
            "{:<20} {:>8} {:>10} {:>12} {:>14} {:>12} {:>13} {:>12}",
            "run",
            "wall s",
            "domains/s",
            "probe CPU s",
            "CPU ms/domain",
            "Redis CPU s",
            "Redis % core",
            "world CPU s"
        );
        for run in [&self.single, &self.shared] {
            println!(
                "{:<20} {:>8.1} {:>10.1} {:>12.2} {:>14.2} {:>12.2} {:>12.1}% {:>12.2}",
                run.label(),
                run.wall_s(),
                run.domains_per_s(),
                run.probe_cpu_s,
                run.cpu_ms_per_domain(),
                run.redis_cpu_s,
                run.redis_core_share() * 100.0,
                run.world_cpu_s
            );
        }
        for run in [&self.single, &self.shared] {
            println!(
                "Redis calls per domain in {} (script-internal calls and this benchmark's polling included): {}",
                run.run,
                run.commands_per_domain()
            );
        }
        println!(
            "B/A wall time: {:.2} (target <= {WALL_RATIO_TARGET}: {})",
            self.wall_ratio(),
            verdict(self.wall_ok())
        );
        println!(
            "Redis during B: {:.1}% of one core (target < {:.0}%: {})",
            self.shared.redis_core_share() * 100.0,
            REDIS_CORE_TARGET * 100.0,
            verdict(self.redis_ok())
        );
        println!(
            "B-02: probe CPU over a {} s Redis outage: {:.2} s (target < {OUTAGE_CPU_TARGET_S} s: {}); idle with Redis up: {:.2} s; {AFTER_OUTAGE_ITEMS} new items drained {:.1} s after the restart",
            OUTAGE.as_secs(),
            self.outage.outage_cpu_s,
            verdict(self.outage_ok()),
            self.outage.idle_cpu_s,
            self.outage.resumed_in.as_secs_f64()
        );
    }

    fn write_json(&self, path: &Path) -> Result<()> {
        let json = serde_json::json!({
            "sites": self.options.sites,
            "redis_persistence": self.options.persistence(),
            "probe_flags": self.options.probe_flags,
            "world_seed": WORLD_SEED,
            "machine_cpus": std::thread::available_parallelism().map_or(0, usize::from),
            "run_a": self.single.json(),
            "run_b": self.shared.json(),
            "wall_ratio_b_over_a": self.wall_ratio(),
            "wall_ratio_target": WALL_RATIO_TARGET,
            "wall_ratio_ok": self.wall_ok(),
            "redis_core_share_target": REDIS_CORE_TARGET,
            "redis_ok": self.redis_ok(),
            "outage": {
                "seconds": OUTAGE.as_secs(),
                "idle_cpu_s": self.outage.idle_cpu_s,
                "outage_cpu_s": self.outage.outage_cpu_s,
                "outage_cpu_target_s": OUTAGE_CPU_TARGET_S,
                "outage_ok": self.outage_ok(),
                "items_after": AFTER_OUTAGE_ITEMS,
                "resumed_in_s": self.outage.resumed_in.as_secs_f64(),
            },
        });
        let text = serde_json::to_string_pretty(&json).map_err(|e| format!("JSON: {e}"))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// `target/bench-coordination.json` in the workspace.
fn json_path() -> PathBuf {
    let xtask = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask
        .parent()
        .unwrap_or(xtask)
        .join("target")
        .join("bench-coordination.json")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_numbers_and_verdicts() {
        let run = |run, probes, wall_s: f64, redis_cpu_s| RunMeasure {
            run,
            probes,
            concurrency: 63 / probes,
            items: 2_000,
            wall: Duration::from_secs_f64(wall_s),
            probe_cpu_s: 40.0,
            redis_cpu_s,
            world_cpu_s: 10.0,
            commands: Vec::new(),
        };
        let report = Report {
            options: Options {
                sites: 2_000,
                aof: false,
                probe_flags: Vec::new(),
            },
            single: run("A", 1, 50.0, 1.0),
            shared: run("B", 3, 55.0, 11.0),
            outage: OutageMeasure {
                idle_cpu_s: 0.01,
                outage_cpu_s: 0.02,
                resumed_in: Duration::from_secs(3),
            },
        };
        assert!((report.single.domains_per_s() - 40.0).abs() < 1e-9);
        assert!((report.single.cpu_ms_per_domain() - 20.0).abs() < 1e-9);
        assert!((report.wall_ratio() - 1.1).abs() < 1e-9);
        assert!(report.wall_ok());
        assert!(!report.redis_ok(), "11 s of 55 s is 20 %");
        assert!(report.outage_ok());
        assert_eq!(report.shared.label(), "B: 3 probes x 21");
    }
}

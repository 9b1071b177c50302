//! Keeping the world and the probe on different cores.
//!
//! With at least two usable CPUs and `taskset` on `PATH`, the world process gets the
//! last CPU and everything that plays the client (spyder, the ceiling clients in
//! xtask itself) gets the others, so the two sides never steal each other's time
//! slices and the world's CPU is one core's worth. Otherwise nothing is pinned and
//! the report says so.

use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

/// Where the world and the clients run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Pinning {
    /// CPUs this process could use when the benchmark started.
    pub(super) cpus: Vec<usize>,
    /// `taskset -c` list of the world process, `None` when unpinned.
    pub(super) world: Option<String>,
    /// `taskset -c` list of spyder and the ceiling clients, `None` when unpinned.
    pub(super) clients: Option<String>,
    /// Why nothing is pinned, when it is not.
    pub(super) unpinned_because: Option<String>,
}

impl Pinning {
    /// Decides the pinning for this machine.
    pub(super) fn detect() -> Self {
        let cpus = allowed_cpus();
        let taskset = taskset_available();
        Self::plan(cpus, taskset)
    }

    /// The plan for `cpus` usable CPUs, `taskset` present or not.
    fn plan(cpus: Vec<usize>, taskset: bool) -> Self {
        let reason = if cpus.len() < 2 {
            Some(format!(
                "{} usable CPU: world and probe share it",
                cpus.len()
            ))
        } else if !taskset {
            Some("taskset not found on PATH".to_owned())
        } else {
            None
        };
        match (reason, cpus.split_last()) {
            (None, Some((last, rest))) => Self {
                world: Some(last.to_string()),
                clients: Some(cpu_list(rest)),
                cpus,
                unpinned_because: None,
            },
            (reason, _) => Self {
                cpus,
                world: None,
                clients: None,
                unpinned_because: reason.or_else(|| Some("no usable CPU found".to_owned())),
            },
        }
    }

    /// One line for the table header.
    pub(super) fn describe(&self) -> String {
        match (&self.world, &self.clients, &self.unpinned_because) {
            (Some(world), Some(clients), _) => format!(
                "pinned: world on CPU {world}, spyder and ceiling clients on CPU {clients} ({} CPUs)",
                self.cpus.len()
            ),
            (_, _, reason) => format!(
                "UNPINNED ({}): world, spyder and ceiling clients share {} CPU(s)",
                reason.as_deref().unwrap_or("unknown reason"),
                self.cpus.len()
            ),
        }
    }

    /// `program args...` for a client process: behind `taskset -c` when pinned.
    pub(super) fn client_command(&self, program: &std::path::Path) -> tokio::process::Command {
        pinned_command(self.clients.as_deref(), program)
    }

    /// `program args...` for the world process: behind `taskset -c` when pinned.
    pub(super) fn world_command(&self, program: &std::path::Path) -> tokio::process::Command {
        pinned_command(self.world.as_deref(), program)
    }

    /// Moves every thread of this process onto the client CPUs, so the ceiling
    /// clients (and the runtime built after this call, which sizes itself from the
    /// affinity mask) run where spyder runs. A no-op when unpinned.
    pub(super) fn pin_this_process(&self) -> Result<(), String> {
        let Some(clients) = &self.clients else {
            return Ok(());
        };
        let status = Command::new("taskset")
            .args(["-a", "-p", "-c", clients, &std::process::id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("cannot run taskset: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "taskset -a -p -c {clients} <xtask> failed ({status})"
            ))
        }
    }
}

fn pinned_command(cpus: Option<&str>, program: &std::path::Path) -> tokio::process::Command {
    match cpus {
        Some(list) => {
            // taskset execs the program: the pid stays the program's.
            let mut cmd = tokio::process::Command::new("taskset");
            cmd.arg("-c").arg(list).arg(program);
            cmd
        }
        None => tokio::process::Command::new(program),
    }
}

/// The CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`),
/// else `0..available_parallelism`.
fn allowed_cpus() -> Vec<usize> {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .and_then(|list| parse_cpu_list(list.trim()))
        })
        .unwrap_or_else(|| {
            let n = std::thread::available_parallelism().map_or(1, usize::from);
            (0..n).collect()
        })
}

/// `0-3,6,8-9` → `[0, 1, 2, 3, 6, 8, 9]`; `None` when malformed.
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to): (usize, usize) = (from.parse().ok()?, to.parse().ok()?);
                if from > to {
                    return None;
                }
                cpus.extend(from..=to);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    (!cpus.is_empty()).then_some(cpus)
}

/// `[0, 1, 2, 5]` → `0,1,2,5` (taskset accepts the plain list).
fn cpu_list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `taskset --version` runs.
fn taskset_available() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_lists() {
        assert_eq!(parse_cpu_list("0-1"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(vec![0, 1, 2, 3, 6, 8, 9]));
        assert_eq!(parse_cpu_list("5"), Some(vec![5]));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a-b"), None);
    }

    #[test]
    fn the_world_gets_the_last_cpu() {
        let plan = Pinning::plan(vec![0, 1, 2, 3], true);
        assert_eq!(plan.world.as_deref(), Some("3"));
        assert_eq!(plan.clients.as_deref(), Some("0,1,2"));
        assert_eq!(plan.unpinned_because, None);
        assert!(plan.describe().starts_with("pinned"));
    }

    #[test]
    fn one_cpu_or_no_taskset_runs_unpinned() {
        let single = Pinning::plan(vec![0], true);
        assert_eq!((&single.world, &single.clients), (&None, &None));
        assert!(single.describe().starts_with("UNPINNED (1 usable CPU"));
        let without = Pinning::plan(vec![0, 1], false);
        assert_eq!(
            without.unpinned_because.as_deref(),
            Some("taskset not found on PATH")
        );
    }
}

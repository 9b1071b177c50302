//! The measured run: the release `spyder` crawling every name of the world once.
//!
//! Wall time runs from spawn to exit. Probe CPU is exact: the change of this
//! process's `cutime + cstime` around reaping spyder (`taskset` execs it, so the
//! child is spyder itself); `/proc/<pid>/stat` polled every [`POLL`] is kept as a
//! cross-check. Peak RSS is the largest `VmHWM` polled. The world's counters are read
//! before and after, so the DNS queries and handshakes are the run's own.

use spyder_testkit::world::probe_flags;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::meter::CpuMark;
use super::pinning::Pinning;
use super::world::{DOMAINS_FILE, Hello, ROOTS_FILE, WorldProcess, WorldStats};
use super::{Options, Result};
use crate::proc_stat::{cpu_seconds, peak_rss_kib, reaped_children_cpu_seconds};

/// How often spyder's CPU and `VmHWM` are read while it runs (often enough that a
/// run of a fraction of a second still shows its peak; each read costs microseconds).
const POLL: Duration = Duration::from_millis(20);
/// Log lines kept for the report.
const LOG_SAMPLE: usize = 5;
/// The run's output file, in the world's directory.
const OUTPUT_FILE: &str = "spyder-output.jsonl";
/// spyder's stderr, in the world's directory.
const LOG_FILE: &str = "spyder.log";

/// What the run measured, raw.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct ProbeRun {
    pub(super) wall_s: f64,
    /// `utime + stime` of spyder (exact, from reaping it).
    pub(super) cpu_s: f64,
    /// The last polled `utime + stime` (up to [`POLL`] short of the end).
    pub(super) polled_cpu_s: f64,
    pub(super) peak_rss_kib: u64,
    /// Edge records in the output.
    pub(super) edges: u64,
    /// All records in the output.
    pub(super) records: u64,
    /// spyder's exit code (`None`: killed by a signal).
    pub(super) exit_code: Option<i32>,
    /// spyder's final summary line, parsed.
    pub(super) summary: Option<Summary>,
    /// Lines spyder logged (warnings and errors; the summary excluded).
    pub(super) log_lines: usize,
    /// The first of them.
    pub(super) log_sample: Vec<String>,
    /// The world's counters and CPU over the run.
    pub(super) world: WorldStats,
    /// This process's CPU over the run (polling, waiting).
    pub(super) xtask_cpu_s: f64,
    /// The whole machine's busy CPU over the run.
    pub(super) machine_cpu_s: f64,
    /// The full command line (after the program).
    pub(super) args: Vec<String>,
}

/// `Final summary: P processed, S successful, F failed (...), E edges, ...`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Summary {
    pub(super) processed: u64,
    pub(super) successful: u64,
    pub(super) failed: u64,
    pub(super) edges: u64,
}

impl Summary {
    /// Parses the numbers of spyder's final summary line.
    fn parse(line: &str) -> Option<Self> {
        let rest = line.split_once("Final summary: ")?.1;
        let number_before = |label: &str| -> Option<u64> {
            let end = rest.find(label)?;
            rest[..end].split_whitespace().last()?.parse().ok()
        };
        Some(Self {
            processed: number_before(" processed")?,
            successful: number_before(" successful")?,
            failed: number_before(" failed")?,
            edges: number_before(" edges")?,
        })
    }
}

impl ProbeRun {
    /// Problems that make the run not count: a failed exit, domains left over.
    pub(super) fn problems(&self, sites: usize) -> Vec<String> {
        let mut problems = Vec::new();
        if self.exit_code != Some(0) {
            problems.push(format!("spyder exited with code {:?}", self.exit_code));
        }
        match self.summary {
            None => problems.push("spyder printed no final summary".to_owned()),
            Some(s) if s.processed != sites as u64 => problems.push(format!(
                "spyder processed {} of {sites} domains",
                s.processed
            )),
            Some(_) => {}
        }
        problems
    }
}

/// spyder's arguments for a run against the world described by `hello`.
pub(super) fn spyder_args(options: &Options, hello: &Hello, dir: &Path) -> Vec<String> {
    let input = dir.join(DOMAINS_FILE).display().to_string();
    let output = dir.join(OUTPUT_FILE);
    let mut args = world_crawl_args(hello, dir, &input, &output, options.concurrency);
    args.extend(options.spyder_flags.iter().cloned());
    args
}

/// The flags of every benchmark crawl of a world: its resolver, ports and roots,
/// `input` and `output` (JSON lines), no progress lines, warnings only.
pub(super) fn world_crawl_args(
    hello: &Hello,
    dir: &Path,
    input: &str,
    output: &Path,
    concurrency: usize,
) -> Vec<String> {
    let mut args = vec![format!("-domains={input}")];
    args.extend(probe_flags(
        hello.dns,
        hello.https_port,
        hello.http_port,
        &dir.join(ROOTS_FILE),
    ));
    args.extend([
        format!("-concurrency={concurrency}"),
        format!("-output={}", output.display()),
        "-output_format=jsonl".to_owned(),
        "-progress=false".to_owned(),
        "-set=logging.level=warn".to_owned(),
    ]);
    args
}

/// Runs spyder once over the whole world, within `limit`.
pub(super) async fn run(
    binary: &Path,
    pinning: &Pinning,
    options: &Options,
    hello: &Hello,
    dir: &Path,
    world: &mut WorldProcess,
    limit: Duration,
) -> Result<ProbeRun> {
    let args = spyder_args(options, hello, dir);
    let log_path = dir.join(LOG_FILE);
    let log = File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
    let mut cmd = pinning.client_command(binary);
    crate::release::without_spyder_env(&mut cmd);
    cmd.args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true);

    let world_before = world.stats().await?;
    let reaped_before = reaped_children_cpu_seconds()?;
    let mark = CpuMark::now()?;
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let pid = child.id().ok_or("spyder exited at once")?;
    let (mut polled_cpu_s, mut peak_rss) = (0.0_f64, 0_u64);
    let deadline = started + limit;
    let status = loop {
        // Either read fails once the process is gone; the last good values stand.
        if let Ok(cpu) = cpu_seconds(pid) {
            polled_cpu_s = polled_cpu_s.max(cpu);
        }
        if let Ok(kib) = peak_rss_kib(pid) {
            peak_rss = peak_rss.max(kib);
        }
        if Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(format!(
                "spyder did not finish within {limit:?}; its log ends:\n{}",
                log_tail(&log_path)
            ));
        }
        tokio::select! {
            status = child.wait() => break status.map_err(|e| format!("waiting for spyder: {e}"))?,
            () = tokio::time::sleep(POLL) => {}
        }
    };
    let wall_s = started.elapsed().as_secs_f64();
    let reaped_cpu_s = reaped_children_cpu_seconds()? - reaped_before;
    let spent = mark.spent()?;
    let world_after = world.stats().await?;

    let (log_lines, log_sample, summary) = read_log(&log_path)?;
    let (records, edges) = count_records(&dir.join(OUTPUT_FILE))?;
    Ok(ProbeRun {
        wall_s,
        // The reaped figure misses nothing; fall back to polling if it saw nothing.
        cpu_s: if reaped_cpu_s > 0.0 {
            reaped_cpu_s
        } else {
            polled_cpu_s
        },
        polled_cpu_s,
        peak_rss_kib: peak_rss,
        edges,
        records,
        exit_code: status.code(),
        summary,
        log_lines,
        log_sample,
        world: world_after.since(&world_before),
        xtask_cpu_s: spent.own_s,
        machine_cpu_s: spent.machine_s,
        args,
    })
}

/// `(log lines, the first few, the parsed summary)` of spyder's stderr.
fn read_log(path: &Path) -> Result<(usize, Vec<String>, Option<Summary>)> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut summary = None;
    let mut lines = 0;
    let mut sample = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(parsed) = Summary::parse(line) {
            summary = Some(parsed);
            continue;
        }
        lines += 1;
        if sample.len() < LOG_SAMPLE {
            sample.push(line.chars().take(300).collect());
        }
    }
    Ok((lines, sample, summary))
}

/// The last lines of spyder's stderr.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// `(records, edge records)` of a `jsonl` output file.
fn count_records(path: &Path) -> Result<(u64, u64)> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut records, mut edges) = (0, 0);
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        records += 1;
        if is_edge_record(&line) {
            edges += 1;
        }
    }
    Ok((records, edges))
}

/// spyder's `jsonl` writes every record as `{"record":"<kind>",...}`.
fn is_edge_record(line: &str) -> bool {
    line.starts_with(r#"{"record":"edge""#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_final_summary() {
        let line = "Final summary: 10000 processed, 9400 successful, 600 failed (6.0% errors), 123456 edges, 812.3 domains/sec";
        assert_eq!(
            Summary::parse(line),
            Some(Summary {
                processed: 10_000,
                successful: 9_400,
                failed: 600,
                edges: 123_456,
            })
        );
        assert_eq!(Summary::parse("Final summary: broken"), None);
        assert_eq!(Summary::parse(r#"{"level":"WARN"}"#), None);
    }

    #[test]
    fn a_run_counts_only_when_complete() {
        let complete = ProbeRun {
            exit_code: Some(0),
            summary: Some(Summary {
                processed: 100,
                ..Summary::default()
            }),
            ..ProbeRun::default()
        };
        assert!(complete.problems(100).is_empty());
        assert_eq!(complete.problems(101).len(), 1);
        let crashed = ProbeRun {
            exit_code: None,
            ..ProbeRun::default()
        };
        assert_eq!(crashed.problems(100).len(), 2);
    }

    #[test]
    fn recognises_edge_records() {
        assert!(is_edge_record(
            r#"{"record":"edge","type":"RESOLVES_TO","source":"a.com","target":"127.1.0.1"}"#
        ));
        assert!(!is_edge_record(r#"{"record":"domain","host":"a.com"}"#));
    }
}

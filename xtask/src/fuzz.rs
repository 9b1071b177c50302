//! `cargo xtask fuzz`: builds the libFuzzer targets of `fuzz/` with cargo-fuzz and runs
//! each for a time, one after the other (docs/fuzzing.md).
//!
//! ```sh
//! cargo xtask fuzz --seconds 60                 # every target, 60 s each
//! cargo xtask fuzz --seconds 600 --target robots
//! cargo xtask fuzz --seconds 60 -- -dict=my.dict # extra libFuzzer flags
//! ```
//!
//! Each target runs on its committed seeds, `fuzz/corpus/<target>/` (libFuzzer adds
//! what it finds there; git ignores all but the seeds), single process, with a memory
//! limit and a per-input timeout, so an OOM or a hang is a finding like a crash. The
//! run reports per target how many inputs ran and which artifacts (`crash-*`, `oom-*`,
//! `timeout-*`, `leak-*`) appeared in `fuzz/artifacts/<target>/`, and fails if any did.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// Every target of `fuzz/Cargo.toml`, in the order they run.
pub const TARGETS: [&str; 7] = [
    "dns_reply",
    "http_response",
    "link_hosts",
    "robots",
    "config_load",
    "queue_item",
    "bulk_body",
];

/// Memory one fuzzing process may use before libFuzzer reports an OOM (MiB).
const RSS_LIMIT_MB: u32 = 2048;
/// One input running longer than this (seconds) is reported as a hang.
const INPUT_TIMEOUT_S: u32 = 10;
/// Artifact name prefixes that mean a finding (`slow-unit-*` is informational).
const FINDINGS: [&str; 5] = ["crash-", "oom-", "timeout-", "leak-", "deadly-"];

const USAGE: &str =
    "usage: cargo xtask fuzz [--seconds N] [--target NAME] [--toolchain T] [-- libFuzzer flags]";

#[derive(Debug)]
struct Options {
    seconds: u64,
    targets: Vec<&'static str>,
    toolchain: String,
    extra: Vec<String>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut seconds = 60;
    let mut targets: Vec<&'static str> = TARGETS.to_vec();
    let mut toolchain = "nightly".to_owned();
    let mut extra = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match arg.as_str() {
            "--seconds" => {
                let v = value("--seconds")?;
                seconds = v
                    .parse()
                    .ok()
                    .filter(|&s| s > 0)
                    .ok_or_else(|| format!("--seconds must be a positive number, not {v:?}"))?;
            }
            "--target" => {
                let v = value("--target")?;
                let target = TARGETS.iter().find(|t| **t == v).ok_or_else(|| {
                    format!("no fuzz target {v:?}; targets: {}", TARGETS.join(", "))
                })?;
                targets = vec![target];
            }
            "--toolchain" => toolchain = value("--toolchain")?,
            "--" => {
                extra = it.by_ref().cloned().collect();
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Options {
        seconds,
        targets,
        toolchain,
        extra,
    })
}

/// The workspace root (xtask lives one level below it).
fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `cargo +<toolchain> fuzz …` through rustup's `cargo` proxy, in the workspace root.
fn cargo_fuzz(toolchain: &str) -> Command {
    let mut cmd = Command::new("cargo");
    crate::release::without_cargo_run_env(&mut cmd);
    cmd.arg(format!("+{toolchain}"))
        .arg("fuzz")
        .current_dir(root())
        // The workspace's target dir must not take the sanitizer-instrumented build:
        // cargo-fuzz uses fuzz/target unless told otherwise.
        .env_remove("CARGO_TARGET_DIR")
        .env("CARGO_INCREMENTAL", "0");
    cmd
}

/// Fails with the install command when cargo-fuzz (or the toolchain) is missing.
fn check_cargo_fuzz(toolchain: &str) -> Result<(), String> {
    let out = cargo_fuzz(toolchain)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("no such command") || stderr.contains("no such subcommand") {
        return Err(
            "cargo-fuzz is not installed: run `cargo install cargo-fuzz --locked`".to_owned(),
        );
    }
    Err(format!(
        "`cargo +{toolchain} fuzz --version` failed (is the {toolchain} toolchain installed? \
         cargo-fuzz needs nightly for its sanitizers; `rustup toolchain install {toolchain}`):\n{stderr}"
    ))
}

/// The finding artifacts of `target` present now.
fn findings(target: &str) -> BTreeSet<PathBuf> {
    let dir = root().join("fuzz/artifacts").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeSet::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| FINDINGS.iter().any(|f| n.starts_with(f)))
        })
        .collect()
}

/// What one target's run did.
#[derive(Debug)]
struct Outcome {
    target: &'static str,
    runs: Option<u64>,
    new_findings: Vec<PathBuf>,
    exit: String,
    ok: bool,
}

/// The executions count of a libFuzzer status line: `#12345\tpulse …` or
/// `Done 12345 runs in 60 second(s)`.
fn runs_in(line: &str) -> Option<u64> {
    if let Some(rest) = line.strip_prefix("Done ") {
        return rest.split_whitespace().next()?.parse().ok();
    }
    let rest = line.strip_prefix('#')?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

fn run_one(target: &'static str, o: &Options) -> Result<Outcome, String> {
    let before = findings(target);
    let corpus = root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus).map_err(|e| format!("{}: {e}", corpus.display()))?;
    eprintln!("xtask fuzz: {target}: {} s", o.seconds);
    let mut child = cargo_fuzz(&o.toolchain)
        .args(["run", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={}", o.seconds))
        .arg(format!("-rss_limit_mb={RSS_LIMIT_MB}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg("-print_final_stats=1")
        .args(&o.extra)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo fuzz: {e}"))?;
    let mut runs = None;
    if let Some(stderr) = child.stderr.take() {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = runs_in(&line) {
                runs = Some(n);
            }
            eprintln!("{line}");
        }
    }
    let status = child.wait().map_err(|e| format!("cargo fuzz: {e}"))?;
    let new_findings: Vec<PathBuf> = findings(target).difference(&before).cloned().collect();
    Ok(Outcome {
        target,
        runs,
        ok: status.success() && new_findings.is_empty(),
        exit: status.to_string(),
        new_findings,
    })
}

/// `cargo xtask fuzz …`.
pub fn fuzz(args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("xtask fuzz: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = check_cargo_fuzz(&o.toolchain) {
        eprintln!("xtask fuzz: {e}");
        return ExitCode::FAILURE;
    }
    // Build every target first, so a compile error shows before any time is spent.
    let mut build = cargo_fuzz(&o.toolchain);
    build.arg("build");
    if let [one] = o.targets.as_slice() {
        build.arg(one);
    }
    match build.stdin(Stdio::null()).status() {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("xtask fuzz: cargo fuzz build failed ({s})");
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("xtask fuzz: cannot run cargo fuzz build: {e}");
            return ExitCode::FAILURE;
        }
    }
    let mut outcomes = Vec::new();
    for target in &o.targets {
        match run_one(target, &o) {
            Ok(outcome) => outcomes.push(outcome),
            Err(e) => {
                eprintln!("xtask fuzz: {target}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("fuzz: {} s per target", o.seconds);
    for r in &outcomes {
        let runs = r.runs.map_or("?".to_owned(), |n| n.to_string());
        println!(
            "  {:<14} {:>12} runs  {} finding(s)  {}",
            r.target,
            runs,
            r.new_findings.len(),
            if r.ok { "ok" } else { "FAILED" }
        );
        for f in &r.new_findings {
            println!("      {}", f.display());
        }
        if !r.ok && r.new_findings.is_empty() {
            println!("      cargo fuzz run exited with {}", r.exit);
        }
    }
    if outcomes.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options() {
        let o = parse(&args(&[
            "--seconds",
            "5",
            "--target",
            "robots",
            "--",
            "-dict=x",
        ]))
        .expect("valid");
        assert_eq!(
            (o.seconds, o.targets, o.extra),
            (5, vec!["robots"], args(&["-dict=x"]))
        );
        let all = parse(&[]).expect("valid");
        assert_eq!((all.seconds, all.targets.len()), (60, TARGETS.len()));
        assert!(parse(&args(&["--target", "nope"])).is_err());
        assert!(parse(&args(&["--seconds", "0"])).is_err());
        assert!(parse(&args(&["--seconds"])).is_err());
    }

    #[test]
    fn libfuzzer_status_lines() {
        assert_eq!(runs_in("Done 123456 runs in 60 second(s)"), Some(123_456));
        assert_eq!(
            runs_in("#65536\tpulse  cov: 2167 ft: 9053 corp: 700/88Kb exec/s: 3276"),
            Some(65_536)
        );
        assert_eq!(runs_in("INFO: Seed: 42"), None);
    }

    #[test]
    fn targets_match_the_fuzz_manifest() {
        let manifest =
            std::fs::read_to_string(root().join("fuzz/Cargo.toml")).expect("fuzz/Cargo.toml");
        let declared: Vec<&str> = manifest
            .lines()
            .filter_map(|l| l.strip_prefix("name = \""))
            .filter_map(|l| l.strip_suffix('"'))
            .filter(|n| *n != "spyder-fuzz")
            .collect();
        assert_eq!(declared, TARGETS);
        for t in TARGETS {
            assert!(
                root()
                    .join("fuzz/fuzz_targets")
                    .join(format!("{t}.rs"))
                    .is_file()
            );
        }
    }
}

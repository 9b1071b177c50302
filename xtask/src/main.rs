//! Project automation, run as `cargo xtask <command>`.
//!
//! - `demo [N] [--keep]`: starts an offline testkit world of N sites (default 25) — DNS
//!   server, HTTPS/HTTP hosts, a private CA — and runs the real `spyder` binary against
//!   it, so the whole pipeline can be seen without the internet. The graph goes to
//!   stdout; the demo then says whether every edge the world expects was found
//!   (exit 1 if not). `--keep` keeps the world up until Ctrl-C and its files. See
//!   [`demo`].
//! - `bench-memory [LINES]`: SPEC §5 P-2. Streams LINES (default 1,000,000) distinct
//!   names through a release `spyder` at concurrency 256 against a local DNS server
//!   that answers NXDOMAIN, and reports the probe's peak RSS (limit: 512 MiB).
//! - `bench-coordination [N] [--aof]`: issue #4. One probe at concurrency 63, then three at 21
//!   each, drain N (default 2,000) seeded items of a testkit world through one
//!   `redis-server`; compares wall time and CPU, then checks B-02 (a probe's CPU over
//!   a 5 s Redis outage). See [`coordination`].
//! - `bench [N] [--concurrency C] [--strict] [--compare FILE] [-- spyder flags]`:
//!   issue #6. spyder against a world of N sites (default 10,000) served by a separate,
//!   pinned process: throughput, CPU and memory, DNS queries and TLS handshakes per
//!   domain, and the world's own ceiling. See [`mod@bench`]. (`world-serve` is the hidden
//!   subcommand that process runs.)
//! - `fuzz [--seconds N] [--target NAME]`: builds the libFuzzer targets of `fuzz/`
//!   (cargo-fuzz, nightly) and runs each for N seconds (default 60), one at a time;
//!   fails if any crash, hang or OOM artifact appears. See [`fuzz`] and
//!   docs/fuzzing.md.

mod bench;
mod coordination;
mod demo;
mod fuzz;
mod proc_stat;
mod release;

use std::process::{ExitCode, Stdio};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::demo(&args[1..]),
        Some("bench-memory") => bench_memory(args.get(1).map(String::as_str)),
        Some("bench-coordination") => coordination::bench_coordination(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        Some("world-serve") => bench::world_serve(&args[1..]),
        Some("fuzz") => fuzz::fuzz(&args[1..]),
        Some("man") => man(args.get(1).map(String::as_str)),
        _ => {
            eprintln!(
                "usage: cargo xtask demo [SITES] [--keep] [-- extra spyder flags]\n       cargo xtask bench-memory [LINES]\n       cargo xtask bench-coordination [SITES] [--aof] [-- extra spyder flags]\n       cargo xtask bench [SITES] [--concurrency C] [--strict] [--compare FILE] [-- extra spyder flags]\n       cargo xtask fuzz [--seconds N] [--target NAME] [-- libFuzzer flags]\n       cargo xtask man [DIR]"
            );
            ExitCode::from(2)
        }
    }
}

/// `cargo xtask man [DIR]`: writes spyder(1) to DIR (default `target/man`), from the
/// same flag table as `spyder -h`; `man -l DIR/spyder.1` reads it.
fn man(dir: Option<&str>) -> ExitCode {
    let dir = std::path::PathBuf::from(dir.unwrap_or("target/man"));
    let path = dir.join("spyder.1");
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, spyder::cli::man_page()));
    match written {
        Ok(()) => {
            println!(
                "wrote {} (read it with: man -l {})",
                path.display(),
                path.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask man: cannot write {}: {e}", path.display());
            ExitCode::FAILURE
        }
    }
}

/// Peak RSS allowed for a 1,000,000-line run at concurrency 256 (SPEC §5 P-2).
const P2_LIMIT_KIB: u64 = 512 * 1024;

fn bench_memory(lines: Option<&str>) -> ExitCode {
    let lines: u64 = match lines.map(str::parse).transpose() {
        Ok(n) => n.unwrap_or(1_000_000),
        Err(e) => {
            eprintln!("xtask bench-memory: LINES must be a number: {e}");
            return ExitCode::from(2);
        }
    };
    let binary = match release::build_spyder() {
        Ok(path) => path,
        Err(e) => {
            eprintln!("xtask bench-memory: cannot build the release spyder: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask bench-memory: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match run_memory_bench(&binary, lines).await {
            Ok((peak_kib, elapsed)) => {
                let verdict = if peak_kib <= P2_LIMIT_KIB { "ok" } else { "OVER LIMIT" };
                println!(
                    "bench-memory: {lines} lines, concurrency 256: peak RSS {:.1} MiB (limit 512 MiB: {verdict}), {:.1} s, {:.0} lines/s",
                    peak_kib as f64 / 1024.0,
                    elapsed.as_secs_f64(),
                    lines as f64 / elapsed.as_secs_f64()
                );
                if peak_kib <= P2_LIMIT_KIB {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("xtask bench-memory: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

async fn run_memory_bench(
    binary: &std::path::Path,
    lines: u64,
) -> Result<(u64, std::time::Duration), String> {
    use std::io::Write as _;
    let dns = spyder_testkit::dns::DnsServer::start(spyder_testkit::dns::Zone::new())
        .await
        .map_err(|e| format!("dns server: {e}"))?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let domains = dir.path().join("domains.txt");
    {
        let file = std::fs::File::create(&domains).map_err(|e| e.to_string())?;
        let mut out = std::io::BufWriter::new(file);
        for i in 0..lines {
            writeln!(out, "host{i}.bench-{}.example", i % 997).map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())?;
    }
    let started = std::time::Instant::now();
    let mut child = tokio::process::Command::new(binary)
        .arg(format!("-domains={}", domains.display()))
        .arg(format!("-dns_servers={}", dns.addr()))
        .arg("-concurrency=256")
        .arg("-output=/dev/null")
        .arg("-metrics_addr=")
        .arg("-progress=false")
        .arg("-set=logging.level=error")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let pid = child.id().ok_or("spyder exited at once")?;
    let mut stderr = child.stderr.take().ok_or("no stderr")?;
    let stderr_text = tokio::spawn(async move {
        let mut text = String::new();
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut text).await;
        text
    });
    let mut peak = 0;
    let status = loop {
        if let Ok(kib) = proc_stat::peak_rss_kib(pid) {
            peak = peak.max(kib);
        }
        tokio::select! {
            status = child.wait() => break status.map_err(|e| e.to_string())?,
            () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
        }
    };
    let elapsed = started.elapsed();
    let stderr = stderr_text.await.unwrap_or_default();
    if !status.success() {
        return Err(format!("spyder exited with {status}:\n{stderr}"));
    }
    // An honest number needs the whole input processed, not a run cut short.
    let expected = format!("Final summary: {lines} processed");
    if !stderr.contains(&expected) {
        return Err(format!("the run did not process every line:\n{stderr}"));
    }
    Ok((peak, elapsed))
}

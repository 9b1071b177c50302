//! `cargo xtask bench [N] [--concurrency C] [--strict] [--compare FILE] [-- spyder flags]`:
//! the end-to-end benchmark (issue #6).
//!
//! 1. Builds the release `spyder`.
//! 2. Starts a testkit world of N sites (default 10,000; fixed seed) in a separate
//!    process, `xtask world-serve` ([`world`]), pinned to its own core where the
//!    machine allows ([`pinning`]).
//! 3. Runs spyder once over every name of the world at concurrency C (default 512)
//!    and measures it ([`probe`]): domains/s, edges/s, CPU ms per domain (spyder's
//!    own `utime + stime`), peak RSS, and DNS queries and TLS handshakes per domain
//!    as the world's servers counted them; and the same costs for the world.
//! 4. Measures the world's ceiling with minimal clients on spyder's cores
//!    ([`ceiling`]): DNS queries/s, TLS handshakes/s, site visits/s.
//! 5. Prints one table with the targets met or missed and writes the JSON to
//!    `<target>/bench/latest.json` and `<target>/bench/<unix time>.json`
//!    ([`report`]); `--compare FILE` adds the deltas against an earlier JSON.
//!
//! # The ceiling
//!
//! The world process runs on one core, so its costs add up: a domain that makes
//! spyder send `q` DNS queries and open `v` TLS connections (a visit: handshake,
//! `robots.txt`, `/`) costs the world `q / dns_qps + v / visits_per_s` seconds,
//! where `dns_qps` and `visits_per_s` are the rates the world reaches with clients
//! that do nothing but that one kind of work. The world's ceiling in domains/s,
//! given the work spyder actually caused, is therefore
//!
//! ```text
//! ceiling = 1 / (dns_queries_per_domain / dns_qps + visits_per_domain / visits_per_s)
//! ```
//!
//! with `visits_per_domain` = handshakes per domain (each TLS connection spyder
//! opens is one visit). spyder's throughput is reported as a fraction of it (target:
//! at least 70 %). Plain-HTTP fetches and redirect hops beyond their handshake are
//! left out of the sum, which makes the ceiling slightly high, never low. A ceiling
//! phase in which the world stayed under 90 % of its core was limited by the client,
//! and the table says so.
//!
//! With a slow network (`--rtt 100ms --jitter 10ms --dns-rtt 40ms --dns-loss 1%
//! --blackhole 2%`) or a list (`--concurrency 256,1024,4096,16384`, the default list
//! with a slow network) it runs the internet-conditions sweep instead ([`sweep`]):
//! the same world behind the slow network and with none, spyder's own metrics
//! scraped while it runs.
//!
//! Exit status: 0 when the run succeeded (every domain processed, spyder exited 0),
//! whatever the targets; with `--strict`, 1 when a target is missed; 1 when the run
//! failed; 2 for bad arguments.

mod ceiling;
mod http1;
mod meter;
mod pinning;
mod probe;
mod report;
mod sweep;
mod world;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pinning::Pinning;
use report::{Machine, Measured, Report};
use world::WorldProcess;

/// Environment variable naming a prebuilt spyder binary to measure.
const BIN_ENV: &str = "SPYDER_BENCH_BIN";
pub use world::world_serve;

/// Sites in the world, and so domains crawled, unless given.
const DEFAULT_SITES: usize = 10_000;
/// spyder's `-concurrency` unless given.
const DEFAULT_CONCURRENCY: usize = 512;
/// The world's seed: every run of the benchmark crawls the same world.
const WORLD_SEED: u64 = 0x5eed_0b3c;
/// Bound on generating and starting the world.
const WORLD_READY_LIMIT: Duration = Duration::from_secs(300);
/// Bound on the spyder run: this much, plus [`RUN_LIMIT_PER_DOMAIN`] per domain.
const RUN_LIMIT_BASE: Duration = Duration::from_secs(60);
const RUN_LIMIT_PER_DOMAIN: Duration = Duration::from_millis(30);

type Result<T> = std::result::Result<T, String>;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Options {
    sites: usize,
    concurrency: usize,
    /// Exit 1 when a target is missed.
    strict: bool,
    /// The network between spyder and the world; anything but the default sweeps.
    network: world::Conditions,
    /// `--concurrency a,b,c`: the concurrencies of the sweep.
    sweep: Option<Vec<usize>>,
    /// An earlier JSON to compare with.
    compare: Option<PathBuf>,
    /// Flags after `--`, appended to spyder's command line.
    spyder_flags: Vec<String>,
}

impl Options {
    /// `[N] [--concurrency C] [--strict] [--compare FILE] [-- spyder flags]`, in any
    /// order before `--`; `--flag=value` works too.
    fn parse(args: &[String]) -> Result<Self> {
        let mut options = Self {
            sites: DEFAULT_SITES,
            concurrency: DEFAULT_CONCURRENCY,
            strict: false,
            network: world::Conditions::default(),
            sweep: None,
            compare: None,
            spyder_flags: Vec::new(),
        };
        let mut sites_given = false;
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if arg.starts_with("--") => (flag, Some(value.to_owned())),
                _ => (arg.as_str(), None),
            };
            let mut value = |name: &str| {
                inline
                    .clone()
                    .or_else(|| args.next().cloned())
                    .ok_or_else(|| format!("{name} needs a value"))
            };
            match flag {
                "--" => {
                    options.spyder_flags = args.cloned().collect();
                    break;
                }
                "--strict" => options.strict = true,
                "--concurrency" => {
                    let text = value("--concurrency")?;
                    if text.contains(',') {
                        options.sweep = Some(sweep::parse_list(&text)?);
                    } else {
                        options.concurrency = positive(&text, "--concurrency")?;
                    }
                }
                flag if world::Conditions::FLAGS.contains(&flag) => {
                    options.network.take(flag, &value(flag)?)?;
                }
                "--compare" => options.compare = Some(PathBuf::from(value("--compare")?)),
                other if other.starts_with('-') => {
                    return Err(format!("unknown flag {other:?}"));
                }
                n if sites_given => return Err(format!("N given twice (second: {n:?})")),
                n => {
                    options.sites = positive(n, "N")?;
                    sites_given = true;
                }
            }
        }
        if options.network.is_slow() && options.sweep.is_none() {
            // A single value given with a slow network sweeps just it.
            options.sweep = Some(if options.concurrency == DEFAULT_CONCURRENCY {
                sweep::DEFAULT_SWEEP.to_vec()
            } else {
                vec![options.concurrency]
            });
        }
        Ok(options)
    }
}

/// `text` as a number of at least 1.
fn positive(text: &str, what: &str) -> Result<usize> {
    match text.parse::<usize>() {
        Ok(0) => Err(format!("{what} must be at least 1")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("{what} must be a number, not {text:?}: {e}")),
    }
}

/// Entry point of `cargo xtask bench`.
pub fn bench(args: &[String]) -> ExitCode {
    let started = Instant::now();
    let options = match Options::parse(args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("xtask bench: {e}");
            return ExitCode::from(2);
        }
    };
    // Read the earlier run first: a bad path should not wait for the benchmark.
    let compare = match options
        .compare
        .as_deref()
        .map(report::read_earlier)
        .transpose()
    {
        Ok(earlier) => options.compare.clone().zip(earlier),
        Err(e) => {
            eprintln!("xtask bench: {e}");
            return ExitCode::from(2);
        }
    };
    let machine = Machine::detect();
    let pinning = Pinning::detect();
    // `SPYDER_BENCH_BIN=<path>` measures a spyder built elsewhere (another commit,
    // for a before/after in one session) instead of building this tree's.
    let binary = match std::env::var_os(BIN_ENV) {
        Some(path) => {
            eprintln!(
                "xtask bench: measuring {}",
                std::path::Path::new(&path).display()
            );
            std::path::PathBuf::from(path)
        }
        None => {
            eprintln!("xtask bench: building the release spyder");
            match crate::release::build_spyder() {
                Ok(path) => path,
                Err(e) => {
                    eprintln!("xtask bench: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    // After the build (which should use every core), before the runtime (which
    // sizes itself from the affinity mask).
    if let Err(e) = pinning.pin_this_process() {
        eprintln!("xtask bench: cannot pin the ceiling clients: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!("xtask bench: {}", pinning.describe());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(concurrencies) = options.sweep.clone() {
        let plan = sweep::Plan {
            binary: &binary,
            pinning: &pinning,
            sites: options.sites,
            seed: WORLD_SEED,
            concurrencies: &concurrencies,
            spyder_flags: &options.spyder_flags,
            ready_limit: WORLD_READY_LIMIT,
        };
        let dir = report::bench_dir(&binary);
        return runtime.block_on(sweep::run(plan, &options.network, options.strict, dir));
    }
    let measured = runtime.block_on(measure(&binary, options, machine, pinning));
    match measured {
        Ok(measured) => {
            let unix_time = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let report = Report::new(measured, unix_time, started.elapsed().as_secs_f64());
            report.publish(&report::bench_dir(&binary), compare.as_ref())
        }
        Err(e) => {
            eprintln!("xtask bench: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn measure(
    binary: &Path,
    options: Options,
    machine: Machine,
    pinning: Pinning,
) -> Result<Measured> {
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let (mut world, hello) = WorldProcess::start(
        &pinning,
        options.sites,
        WORLD_SEED,
        dir.path(),
        WORLD_READY_LIMIT,
    )
    .await?;
    eprintln!(
        "xtask bench: world ready ({} sites, {} HTTPS, generated in {:.1} s, room for {} connections); running spyder at concurrency {}",
        hello.sites,
        hello.https_sites,
        hello.generate_s,
        hello.connection_room(),
        options.concurrency
    );
    let limit =
        RUN_LIMIT_BASE + RUN_LIMIT_PER_DOMAIN * u32::try_from(options.sites).unwrap_or(u32::MAX);
    let run = probe::run(
        binary,
        &pinning,
        &options,
        &hello,
        dir.path(),
        &mut world,
        limit,
    )
    .await?;
    eprintln!(
        "xtask bench: spyder done in {:.1} s ({:.0} domains/s); measuring the world's ceiling",
        run.wall_s,
        options.sites as f64 / run.wall_s.max(f64::MIN_POSITIVE)
    );
    let names = world::read_domains(dir.path())?;
    let https_sites = world::read_https_sites(dir.path())?;
    let ceiling = ceiling::measure(&mut world, &hello, &names, &https_sites).await?;
    let world_final = world.stats().await?;
    world.stop().await?;
    Ok(Measured {
        options,
        machine,
        pinning,
        hello,
        run,
        ceiling,
        world_final,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(list: &[&str]) -> Result<Options> {
        Options::parse(&list.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults() {
        assert_eq!(
            parse(&[]),
            Ok(Options {
                sites: DEFAULT_SITES,
                concurrency: DEFAULT_CONCURRENCY,
                strict: false,
                network: world::Conditions::default(),
                sweep: None,
                compare: None,
                spyder_flags: Vec::new(),
            })
        );
    }

    #[test]
    fn a_slow_network_sweeps() {
        let o = parse(&[
            "--rtt",
            "100ms",
            "--dns-rtt=40ms",
            "--dns-loss",
            "1%",
            "--blackhole=2%",
        ])
        .expect("valid");
        assert_eq!(o.network.rtt, Duration::from_millis(100));
        assert_eq!(o.network.dns_loss, 0.01);
        assert_eq!(o.sweep, Some(sweep::DEFAULT_SWEEP.to_vec()));
        let o = parse(&["--rtt=50ms", "--concurrency=64"]).expect("valid");
        assert_eq!(o.sweep, Some(vec![64]));
        let o = parse(&["--concurrency=64,128"]).expect("valid");
        assert_eq!(o.sweep, Some(vec![64, 128]));
        assert!(parse(&["--rtt=fast"]).is_err());
    }

    #[test]
    fn flags_in_any_order_and_spyder_flags_after_the_separator() {
        assert_eq!(
            parse(&[
                "--strict",
                "2000",
                "--concurrency",
                "64",
                "--compare=old.json",
                "--",
                "-set=dns.cache_size=10",
                "--strict",
            ]),
            Ok(Options {
                sites: 2_000,
                concurrency: 64,
                strict: true,
                network: world::Conditions::default(),
                sweep: None,
                compare: Some(PathBuf::from("old.json")),
                spyder_flags: vec!["-set=dns.cache_size=10".to_owned(), "--strict".to_owned()],
            })
        );
        assert_eq!(
            parse(&["--concurrency=8", "--compare", "a.json"]).map(|o| (o.concurrency, o.compare)),
            Ok((8, Some(PathBuf::from("a.json"))))
        );
    }

    #[test]
    fn bad_arguments_are_refused() {
        assert!(parse(&["many"]).is_err());
        assert!(parse(&["0"]).is_err());
        assert!(parse(&["10", "20"]).is_err());
        assert!(parse(&["--concurrency"]).is_err());
        assert!(parse(&["--concurrency", "0"]).is_err());
        assert!(parse(&["--fast"]).is_err());
        assert!(parse(&["--compare"]).is_err());
    }
}

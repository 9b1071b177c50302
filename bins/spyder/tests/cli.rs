//! The `spyder` binary's command line (the `spyder::cli` module), tested against the
//! configuration its flags feed.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use spyder::cli::{self, CliError, Command, RunArgs};
use spyder_config::flags::FlagError;
use spyder_config::{FlagValue, LogLevel, Sources, keys, load};

fn parse(args: &[&str]) -> Result<Command, CliError> {
    cli::parse(args.iter().map(OsString::from))
}

fn run_args(args: &[&str]) -> RunArgs {
    match parse(args) {
        Ok(Command::Run(run)) => run,
        other => panic!("{args:?} gave {other:?}"),
    }
}

fn load_flags(flags: Vec<FlagValue>) -> spyder_config::Config {
    let mut all = vec![FlagValue::new(
        "-dns_servers",
        "dns.servers",
        "127.0.0.1:53",
    )];
    all.extend(flags);
    load(&Sources {
        file: None,
        env: Vec::new(),
        flags: all,
    })
    .expect("flags load")
    .config
}

#[test]
fn defaults_without_flags() {
    let run = run_args(&[]);
    assert_eq!(
        run,
        RunArgs {
            config_file: None,
            flags: Vec::new(),
            quiet: false,
            verbose: false,
            progress: true,
            fail_on_error: false,
            silent: false,
            no_color: false,
            check: false,
            resume: None,
        }
    );
}

#[test]
fn every_spec_flag_exists() {
    let flags = [
        "domains",
        "probe",
        "run",
        "ua",
        "exclude_tlds",
        "concurrency",
        "batch_max_edges",
        "batch_flush_sec",
        "ingest",
        "spool_dir",
        "output_format",
        "mtls_cert",
        "mtls_key",
        "mtls_ca",
        "metrics_addr",
        "otel_endpoint",
        "otel_insecure",
        "otel_service",
        "redis_queue_addr",
        "redis_queue_key",
        "redis_addr",
        "continuous",
        "max_domains",
        "output",
        "dns_servers",
        "allow_private",
        "allow_cidrs",
        "log_format",
    ];
    for name in flags {
        let spec = keys()
            .iter()
            .find(|k| k.flag == Some(name))
            .unwrap_or_else(|| panic!("no key has flag -{name}"));
        let arg = format!("-{name}={}", spec.default);
        let run = run_args(&[&arg]);
        assert_eq!(run.flags.len(), 1, "{name}");
        assert_eq!(run.flags[0].key, spec.path);
        assert_eq!(run.flags[0].flag, format!("-{name}"));
    }
    let usage = cli::usage();
    for name in flags
        .iter()
        .chain(&["config", "quiet", "verbose", "progress", "version", "set"])
    {
        assert!(
            usage.contains(&format!("\n  -{name}")),
            "usage lacks -{name}"
        );
    }
}

#[test]
fn flags_reach_the_configuration() {
    let run = run_args(&[
        "-config",
        "spyder.yaml",
        "-domains",
        "-",
        "-concurrency=12",
        "--batch_flush_sec",
        "3",
        "-output_format=csv",
        "-output",
        "out.csv",
        "-continuous",
        "-max_domains=40",
        "-allow_private",
        "-allow_cidrs=127.0.0.0/8,10.0.0.0/8",
        "-log_format=json",
        "-otel_insecure=false",
        "-exclude_tlds=",
        "-metrics_addr=",
    ]);
    assert_eq!(run.config_file, Some(PathBuf::from("spyder.yaml")));
    let config = load_flags(run.flags);
    assert_eq!(config.domains, "-");
    assert_eq!(config.crawling.concurrency, 12);
    assert_eq!(config.batch.flush_interval, Duration::from_secs(3));
    assert_eq!(config.output.format, spyder_config::OutputFormat::Csv);
    assert_eq!(config.output.file, PathBuf::from("out.csv"));
    assert!(config.crawling.continuous);
    assert_eq!(config.crawling.max_domains, 40);
    assert!(config.crawling.allow_private);
    assert_eq!(config.crawling.allow_cidrs.len(), 2);
    assert_eq!(config.logging.format, spyder_config::LogFormat::Json);
    assert!(!config.telemetry.otel_insecure);
    assert!(config.exclude_tlds.is_empty());
    assert_eq!(config.telemetry.metrics_addr, "");
}

#[test]
fn run_switches() {
    let run = run_args(&["-quiet", "-progress=false"]);
    assert!(run.quiet && !run.progress && !run.verbose);
    assert!(run.flags.is_empty());

    let run = run_args(&["-verbose", "-set", "logging.level=error"]);
    assert!(run.verbose);
    assert_eq!(load_flags(run.flags).logging.level, LogLevel::Debug);

    let run = run_args(&["-verbose=false"]);
    assert!(!run.verbose);
    assert!(run.flags.is_empty());

    assert!(run_args(&["-config="]).config_file.is_none());
}

#[test]
fn the_short_flags_of_projectdiscovery_tools_mean_the_same() {
    // Issue #13: -o, -c, -rl, -jsonl and -silent as httpx, dnsx and tlsx have them.
    let run = run_args(&["-o", "out.jsonl", "-c=8", "-rl", "50", "-jsonl", "-silent"]);
    assert!(run.silent && run.quiet && !run.progress);
    let config = load_flags(run.flags.clone());
    assert_eq!(config.output.file, std::path::PathBuf::from("out.jsonl"));
    assert_eq!(config.crawling.concurrency, 8);
    assert_eq!(config.crawling.rate_global, 50);
    assert_eq!(config.output.format, spyder_config::OutputFormat::Jsonl);
    assert_eq!(config.logging.level, LogLevel::Error);
    // Errors name the flag as written.
    let err = load(&Sources {
        file: None,
        env: Vec::new(),
        flags: run_args(&["-c=0"]).flags,
    })
    .expect_err("0 is out of range");
    assert!(err.to_string().contains("-c"), "{err}");
    assert!(run_args(&["-jsonl=false"]).flags.is_empty());
    assert!(run_args(&["-no_color"]).no_color);
    let usage = cli::usage();
    for line in [
        "  -o path",
        "  -c int",
        "  -rl int",
        "  -jsonl",
        "  -silent",
        "  -no_color",
    ] {
        assert!(usage.contains(&format!("{line}\n")), "{line} in the usage");
    }
    assert!(usage.contains("same as -output"), "{usage}");
}

#[test]
fn set_takes_any_key_or_alias() {
    let run = run_args(&[
        "-set",
        "crawling.rate_per_host=2.5",
        "-set=concurrency=9",
        "--set",
        "dedup.ttl=1h",
        "-set",
        "ua=",
    ]);
    assert_eq!(run.flags[0].flag, "-set crawling.rate_per_host");
    let config = load_flags(run.flags);
    assert_eq!(config.crawling.rate_per_host, 2.5);
    assert_eq!(config.crawling.concurrency, 9);
    assert_eq!(config.dedup.ttl, Duration::from_secs(3600));
    assert_eq!(config.ua, "");

    assert_eq!(
        parse(&["-set", "crawling.nope=1"]),
        Err(CliError::UnknownKey("crawling.nope".into()))
    );
    assert_eq!(
        parse(&["-set", "novalue"]),
        Err(CliError::SetSyntax("novalue".into()))
    );
}

#[test]
fn errors_a_flag_value_names_the_flag() {
    let run = run_args(&["-concurrency", "0"]);
    let err = load(&Sources {
        file: None,
        env: Vec::new(),
        flags: run.flags,
    })
    .expect_err("out of range");
    assert_eq!(
        err.to_string(),
        "config: crawling.concurrency = 0 (from -concurrency): must be between 1 and 65536"
    );
}

#[test]
fn go_syntax_errors() {
    assert_eq!(
        parse(&["-nope"]).expect_err("unknown").to_string(),
        "flag provided but not defined: -nope"
    );
    assert_eq!(
        parse(&["-continuous", "false"]),
        Err(CliError::Flag(FlagError::StrayArgument("false".into())))
    );
    assert_eq!(
        parse(&["-concurrency"]),
        Err(CliError::Flag(FlagError::MissingValue(
            "concurrency".into()
        )))
    );
}

#[test]
fn help_and_version() {
    for args in [&["-h"][..], &["-help"], &["--help"]] {
        assert_eq!(parse(args), Ok(Command::Help));
    }
    assert_eq!(parse(&["-version"]), Ok(Command::Version));
    assert_eq!(parse(&["-domains=x", "-version"]), Ok(Command::Version));
    let text = cli::version_text();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some(format!("SPYDER Probe v{}", env!("CARGO_PKG_VERSION")).as_str())
    );
    assert!(lines.next().is_some_and(|l| l.starts_with("built for ")));
}

#[test]
fn usage_opens_with_the_name_and_lists_examples_and_env() {
    let usage = cli::usage();
    assert!(
        usage.starts_with("SPYDER (System for Probing and Yielding DNS-based Entity Relations)\n")
    );
    for needle in [
        "spyder -domains domains.txt",
        "-domains -",
        "-continuous",
        "REDIS_QUEUE_ADDR=",
        "-ingest https://",
        "  -concurrency int\n    \tconcurrent crawl tasks [crawling.concurrency] (default 256)",
        "  -progress\n    \tprogress bar on stderr when it is a TTY (default true)",
        "REDIS_ADDR",
        "REDIS_QUEUE_KEY",
        "LOG_LEVEL",
        "SPYDER_API_KEYS",
    ] {
        assert!(usage.contains(needle), "usage lacks {needle:?}");
    }
}

/// spyder(1) (issue #13 step 6): every flag of the usage, and roff that groff reads
/// without a warning. groff is in Debian's groff-base (`.ci/run` installs it).
#[test]
fn the_man_page_has_every_flag_and_groff_reads_it_cleanly() {
    let page = spyder::cli::man_page();
    let usage = spyder::cli::usage();
    for line in usage.lines() {
        let Some(flag) = line.strip_prefix("  -") else {
            continue;
        };
        let name = flag.split(' ').next().unwrap_or(flag);
        let roff = format!("\\fB\\-{}\\fR", name.replace('-', "\\-"));
        assert!(page.contains(&roff), "-{name} is not in the man page");
    }
    let mut groff = std::process::Command::new("groff")
        .args(["-man", "-Tutf8", "-ww", "-z"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("groff runs (Debian package groff-base)");
    {
        use std::io::Write as _;
        let mut stdin = groff.stdin.take().expect("stdin");
        stdin.write_all(page.as_bytes()).expect("write the page");
    }
    let out = groff.wait_with_output().expect("groff finishes");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "groff warnings");
}

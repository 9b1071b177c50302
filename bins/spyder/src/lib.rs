//! The `spyder` probe binary as a library: command line, logging, progress and the
//! run loop that composes the workspace crates (input -> queue -> probe -> dedup ->
//! emitter/sink). `main.rs` only calls [`main`]; tests drive the real binary.

mod check;
pub mod cli;
pub mod completions;
mod control;
pub mod locate;
pub mod logging;
mod man;
pub mod progress;
pub mod run;
pub mod settings;

use std::ffi::OsString;
use std::process::ExitCode;

use spyder_config::{FlagValue, Sources, load};

/// Exit code for bad flags, as Go's `flag` package.
const EXIT_USAGE: u8 = 2;

/// Runs the `spyder` command line: parses `args` (program name first), loads the
/// configuration, and runs until the input is done or a signal stops it.
pub fn main(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let command = match cli::parse(args.into_iter().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            if let Some(hint) = e.hint() {
                eprintln!("{hint}");
            }
            eprint!("{}", cli::usage());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let args = match command {
        cli::Command::Help => {
            print!("{}", cli::usage());
            return ExitCode::SUCCESS;
        }
        cli::Command::Version => {
            println!("{}", cli::version_text());
            return ExitCode::SUCCESS;
        }
        cli::Command::Completions(shell) => {
            print!("{}", cli::completions(shell));
            return ExitCode::SUCCESS;
        }
        cli::Command::Run(args) => args,
    };

    let env: Vec<(String, String)> = std::env::vars().collect();
    let found_config = match &args.config_file {
        Some(_) => None,
        None => locate::user_config_file(&env),
    };
    let mut sources = Sources {
        file: args.config_file.clone().or_else(|| found_config.clone()),
        env,
        flags: args.flags.clone(),
    };
    let mut loaded = match load(&sources) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let no_input =
        |c: &spyder_config::Config| c.domains.is_empty() && c.redis.queue_addr.is_empty();
    let from_stdin = no_input(&loaded.config) && locate::stdin_has_data();
    if from_stdin {
        // httpx and dnsx read a pipe without being told; so does spyder.
        sources
            .flags
            .insert(0, FlagValue::new("stdin", "domains", "-"));
        loaded = match load(&sources) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("{e}");
                return ExitCode::FAILURE;
            }
        };
    }
    let config = &loaded.config;
    if no_input(config) {
        eprintln!("{}", locate::NO_INPUT);
        eprint!("{}", cli::usage());
        return ExitCode::FAILURE;
    }

    let level = if args.verbose {
        spyder_config::LogLevel::Debug
    } else {
        config.logging.level
    };
    let color = !args.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Traces are built before the subscriber, which installs their layer; their
    // export task starts with the runtime. A failure is said once logging runs.
    let (traces, trace_error) = match run::build_traces(config) {
        Ok(Some((traces, task))) => (Some((traces, task)), None),
        Ok(None) => (None, None),
        Err(e) => (None, Some(e)),
    };
    let trace_layer = traces.as_ref().map(|(traces, _)| {
        use tracing_subscriber::Layer as _;
        traces.layer().boxed()
    });
    let logs = match logging::init(level, config.logging.format, color, trace_layer) {
        Ok(logs) => logs,
        Err(e) => {
            eprintln!("spyder: cannot start logging: {e}");
            return ExitCode::FAILURE;
        }
    };
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(e) = trace_error {
        tracing::warn!(error = %e, "traces not exported; the run goes on without them");
    }
    if let Some(path) = &found_config {
        tracing::info!(config_file = %path.display(), "configuration file found (no -config given)");
    }
    if from_stdin {
        tracing::info!(
            "reading domains from stdin (no -domains given and stdin is not a terminal)"
        );
    }
    // Before anything opens a descriptor (SPEC §2.4 / issue 11): a default soft limit of
    // 1,024 must not cap a crawl of thousands of tasks.
    let descriptors = spyder_probe::resources::raise_descriptor_limit();
    spyder_probe::resources::log_descriptor_limit(
        &descriptors,
        config.crawling.concurrency as usize,
        config.dns.sockets as usize,
    );

    // A panic inside a task is caught, and logged once with its host by the run loop
    // (outcome `internal`); the default hook would print it a second time, unstructured.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !spyder_probe::panic_is_contained() {
            default_hook(info);
        }
    }));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("spyder")
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("spyder: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.check {
        return runtime.block_on(check::run(&loaded));
    }
    let traces = traces.map(|(traces, task)| {
        runtime.spawn(task.run());
        traces
    });
    let live = spyder_config::LiveConfig::new(loaded.config.clone(), sources);
    let options = run::Options {
        quiet: args.quiet,
        progress: args.progress,
        fail_on_error: args.fail_on_error,
        logs,
        live,
        resume: args.resume.clone(),
        traces,
    };
    let code = runtime.block_on(run::run(loaded, options));
    // Dropping the runtime waits for its blocking threads, and a read of stdin or a
    // FIFO whose writer never closes never returns. Everything that matters (spool
    // writes, the output's last flush) was awaited by the run; leave the rest.
    runtime.shutdown_timeout(RUNTIME_EXIT_BUDGET);
    code
}

/// How long the exit waits for blocking threads still running (a stuck input read).
const RUNTIME_EXIT_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

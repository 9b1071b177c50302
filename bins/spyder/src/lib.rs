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
    let args = match run_args(args) {
        Ok(args) => args,
        Err(code) => return code,
    };
    let located = match locate_config(&args) {
        Ok(located) => located,
        Err(code) => return code,
    };
    let (logs, traces) = match start_logging(&args, &located) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let Located {
        sources, loaded, ..
    } = located;
    let config = &loaded.config;
    // Before anything opens a descriptor (SPEC §2.4 / issue 11): a default soft limit of
    // 1,024 must not cap a crawl of thousands of tasks.
    let descriptors = spyder_probe::resources::raise_descriptor_limit();
    spyder_probe::resources::log_descriptor_limit(
        &descriptors,
        config.crawling.concurrency as usize,
        config.dns.sockets as usize,
    );
    contain_task_panics();

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

/// The run's arguments; help, version and completions are printed here, and a bad
/// command line is the Go-style error with the usage (exit 2).
fn run_args(args: impl IntoIterator<Item = OsString>) -> Result<cli::RunArgs, ExitCode> {
    let command = match cli::parse(args.into_iter().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            if let Some(hint) = e.hint() {
                eprintln!("{hint}");
            }
            eprint!("{}", cli::usage());
            return Err(ExitCode::from(EXIT_USAGE));
        }
    };
    match command {
        cli::Command::Help => print!("{}", cli::usage()),
        cli::Command::Version => println!("{}", cli::version_text()),
        cli::Command::Completions(shell) => print!("{}", cli::completions(shell)),
        cli::Command::Run(args) => return Ok(args),
    }
    Err(ExitCode::SUCCESS)
}

/// The loaded configuration and where its parts came from.
struct Located {
    sources: Sources,
    loaded: spyder_config::Loaded,
    /// The user configuration file found without `-config`.
    found_config: Option<std::path::PathBuf>,
    /// The domains come from a piped stdin (no `-domains`).
    from_stdin: bool,
}

/// Loads the configuration (an XDG file when `-config` is absent), with stdin as
/// the input when no other input is set and stdin is a pipe; no input at all is
/// said before the usage (exit 1).
fn locate_config(args: &cli::RunArgs) -> Result<Located, ExitCode> {
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
    let load_or_exit = |sources: &Sources| {
        load(sources).map_err(|e| {
            eprintln!("{e}");
            ExitCode::FAILURE
        })
    };
    let mut loaded = load_or_exit(&sources)?;
    let no_input =
        |c: &spyder_config::Config| c.domains.is_empty() && c.redis.queue_addr.is_empty();
    let from_stdin = no_input(&loaded.config) && locate::stdin_has_data();
    if from_stdin {
        // httpx and dnsx read a pipe without being told; so does spyder.
        sources
            .flags
            .insert(0, FlagValue::new("stdin", "domains", "-"));
        loaded = load_or_exit(&sources)?;
    }
    if no_input(&loaded.config) {
        eprintln!("{}", locate::NO_INPUT);
        eprint!("{}", cli::usage());
        return Err(ExitCode::FAILURE);
    }
    Ok(Located {
        sources,
        loaded,
        found_config,
        from_stdin,
    })
}

/// A trace pipeline and the export task the runtime will run.
type TracePipeline = (
    spyder_health::traces::Traces,
    spyder_health::traces::ExportTask,
);

/// The subscriber (logs, and the trace layer when `telemetry.otel_endpoint` is set:
/// it is built first so the subscriber installs it), then the start-up messages.
fn start_logging(
    args: &cli::RunArgs,
    located: &Located,
) -> Result<(logging::Logs, Option<TracePipeline>), ExitCode> {
    let config = &located.loaded.config;
    let level = if args.verbose {
        spyder_config::LogLevel::Debug
    } else {
        config.logging.level
    };
    let color = !args.no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let (traces, trace_error) = match run::build_traces(config) {
        Ok(traces) => (traces, None),
        Err(e) => (None, Some(e)),
    };
    let trace_layer = traces.as_ref().map(|(traces, _)| {
        use tracing_subscriber::Layer as _;
        traces.layer().boxed()
    });
    let logs = logging::init(level, config.logging.format, color, trace_layer).map_err(|e| {
        eprintln!("spyder: cannot start logging: {e}");
        ExitCode::FAILURE
    })?;
    for warning in &located.loaded.warnings {
        tracing::warn!("{warning}");
    }
    if let Some(e) = trace_error {
        tracing::warn!(error = %e, "traces not exported; the run goes on without them");
    }
    if let Some(path) = &located.found_config {
        tracing::info!(config_file = %path.display(), "configuration file found (no -config given)");
    }
    if located.from_stdin {
        tracing::info!(
            "reading domains from stdin (no -domains given and stdin is not a terminal)"
        );
    }
    Ok((logs, traces))
}

/// A panic inside a task is caught, and logged once with its host by the run loop
/// (outcome `internal`); the default hook would print it a second time, unstructured.
fn contain_task_panics() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !spyder_probe::panic_is_contained() {
            default_hook(info);
        }
    }));
}

/// How long the exit waits for blocking threads still running (a stuck input read).
const RUNTIME_EXIT_BUDGET: std::time::Duration = std::time::Duration::from_millis(500);

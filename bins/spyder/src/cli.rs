//! The `spyder` command line (SPEC §2.5): Go-style flags, usage and version text.
//!
//! Every key of the configuration table that has a flag name is a flag; the rest of
//! the keys are reachable with `-set path=value`.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::PathBuf;

use spyder_config::flags::{self, FlagError, FlagSpec, Parsed};
use spyder_config::{FlagValue, ValueKind, find_key, keys};

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Crawl with these settings.
    Run(RunArgs),
    /// `-h`, `-help`, `--help`: print the usage, exit 0.
    Help,
    /// `-version`: print [`version_text`], exit 0.
    Version,
    /// `-completions SHELL`: print the shell's completion script, exit 0.
    Completions(crate::completions::Shell),
}

/// The settings of a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunArgs {
    /// `-config`.
    pub config_file: Option<PathBuf>,
    /// Configuration keys set by flags, in command-line order.
    pub flags: Vec<FlagValue>,
    /// `-quiet`: no progress bar and no summary.
    pub quiet: bool,
    /// `-verbose` (also in `flags` as `logging.level=debug`).
    pub verbose: bool,
    /// `-progress`: a progress bar on stderr when it is a TTY.
    pub progress: bool,
    /// `-fail_on_error`: exit 2 when tasks ran and every one failed.
    pub fail_on_error: bool,
    /// `-silent`: data only; no progress, no summary and no logs below ERROR (also
    /// in `flags` as `logging.level=error`).
    pub silent: bool,
    /// `-no_color`, or `NO_COLOR` set in the environment: no ANSI colours in logs.
    pub no_color: bool,
    /// `-check`: validate the configuration and inputs, print the effective
    /// configuration, exit 0 or 1; no crawl.
    pub check: bool,
    /// `-resume FILE`: checkpoint the file-mode input there, and continue from it.
    pub resume: Option<PathBuf>,
}

/// A command line that does not parse; the binary prints it with the usage and
/// exits 2.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Flag(#[from] FlagError),
    #[error("-set {0:?}: want path=value, e.g. -set crawling.rate_per_host=2")]
    SetSyntax(String),
    #[error("-set {0}: unknown configuration key{hint}; see docs/configuration.md", hint = spyder_config::similar_key(.0).map(|k| format!(" (did you mean {k}?)")).unwrap_or_default())]
    UnknownKey(String),
    #[error("-completions {0:?}: want bash, zsh or fish")]
    Shell(String),
}

impl CliError {
    /// `Did you mean -concurrency?` for a mistyped flag name, printed under the
    /// Go-style error line.
    pub fn hint(&self) -> Option<String> {
        let CliError::Flag(FlagError::NotDefined(name)) = self else {
            return None;
        };
        flags::similar_flag(&flag_specs(), name).map(|flag| format!("Did you mean -{flag}?"))
    }
}

const CONFIG: &str = "config";
const QUIET: &str = "quiet";
const VERBOSE: &str = "verbose";
const PROGRESS: &str = "progress";
const VERSION: &str = "version";
const FAIL_ON_ERROR: &str = "fail_on_error";
const SILENT: &str = "silent";
const NO_COLOR: &str = "no_color";
const JSONL: &str = "jsonl";
const CHECK: &str = "check";
const RESUME: &str = "resume";
const COMPLETIONS: &str = "completions";
const SET: &str = "set";

/// Short names users of ProjectDiscovery's httpx, dnsx and tlsx know, each the same
/// as the flag it names.
const ALIASES: &[(&str, &str)] = &[("o", "output"), ("c", "concurrency"), ("rl", "rate_global")];

/// Every flag `spyder` accepts.
fn flag_specs() -> Vec<FlagSpec> {
    let mut specs: Vec<FlagSpec> = keys()
        .iter()
        .filter_map(|key| {
            let name = key.flag?;
            let help = format!("{} [{}]", key.help, key.path);
            Some(match key.kind {
                ValueKind::Bool => FlagSpec::boolean_default(name, key.default, help),
                kind => FlagSpec::value(name, kind.type_name(), key.default, help),
            })
        })
        .collect();
    specs.extend([
        FlagSpec::value(
            CONFIG,
            "path",
            "",
            "configuration file (.yaml, .yml or .json)",
        ),
        FlagSpec::boolean(QUIET, "no progress bar and no summary"),
        FlagSpec::boolean(VERBOSE, "debug logs (sets logging.level=debug)"),
        FlagSpec::boolean_default(PROGRESS, "true", "progress bar on stderr when it is a TTY"),
        FlagSpec::boolean(VERSION, "print the version and exit"),
        FlagSpec::boolean(
            FAIL_ON_ERROR,
            "exit 2 when every task failed (nothing resolved or answered)",
        ),
        FlagSpec::boolean(
            SILENT,
            "data only: no progress, no summary, no logs below error",
        ),
        FlagSpec::boolean(NO_COLOR, "no colours in logs (also when NO_COLOR is set)"),
        FlagSpec::boolean(JSONL, "same as -output_format jsonl"),
        FlagSpec::boolean(
            CHECK,
            "validate the configuration and inputs, print the effective configuration (secrets hidden), exit 0 or 1",
        ),
        FlagSpec::value(
            COMPLETIONS,
            "shell",
            "",
            "print a completion script for bash, zsh or fish, e.g. spyder -completions bash > ~/.local/share/bash-completion/completions/spyder",
        ),
        FlagSpec::value(
            RESUME,
            "path",
            "",
            "checkpoint file: a run killed and started again with it goes on where it stopped (file mode)",
        ),
        FlagSpec::value(
            SET,
            "path=value",
            "",
            "set any configuration key, e.g. -set crawling.rate_per_host=2 (repeatable)",
        ),
    ]);
    for (alias, target) in ALIASES {
        let Some(spec) = specs.iter().find(|s| s.name == *target) else {
            continue;
        };
        let alias = FlagSpec::value(
            alias,
            spec.value_type.unwrap_or("string"),
            "",
            format!("same as -{target}"),
        );
        specs.push(alias);
    }
    specs
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let given = match flags::parse(&flag_specs(), args)? {
        Parsed::Help => return Ok(Command::Help),
        Parsed::Flags(given) => given,
    };
    let mut run = RunArgs {
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
    };
    let mut version = false;
    let mut completions = None;
    for flag in given {
        let on = flag.value == "true";
        match flag.name {
            CONFIG => run.config_file = (!flag.value.is_empty()).then(|| flag.value.into()),
            QUIET => run.quiet = on,
            VERBOSE => run.verbose = on,
            PROGRESS => run.progress = on,
            VERSION => version = on,
            FAIL_ON_ERROR => run.fail_on_error = on,
            SILENT => run.silent = on,
            NO_COLOR => run.no_color = on,
            CHECK => run.check = on,
            COMPLETIONS => {
                completions = Some(
                    crate::completions::Shell::parse(&flag.value)
                        .ok_or(CliError::Shell(flag.value))?,
                );
            }
            RESUME => run.resume = (!flag.value.is_empty()).then(|| flag.value.into()),
            JSONL if on => run
                .flags
                .push(FlagValue::new("-jsonl", "output.format", "jsonl")),
            JSONL => {}
            SET => {
                let Some((path, value)) = flag.value.split_once('=') else {
                    return Err(CliError::SetSyntax(flag.value));
                };
                let path = path.trim();
                if find_key(path).is_none() {
                    return Err(CliError::UnknownKey(path.to_owned()));
                }
                run.flags.push(FlagValue::set(path, value));
            }
            name => match ALIASES.iter().find(|(alias, _)| *alias == name) {
                Some((alias, target)) => {
                    let mut value = FlagValue::flag(target, flag.value);
                    value.flag = format!("-{alias}");
                    run.flags.push(value);
                }
                // Every other flag comes from the key table.
                None => run.flags.push(FlagValue::flag(name, flag.value)),
            },
        }
    }
    if version {
        return Ok(Command::Version);
    }
    if let Some(shell) = completions {
        return Ok(Command::Completions(shell));
    }
    if run.verbose {
        run.flags
            .push(FlagValue::new("-verbose", "logging.level", "debug"));
    }
    if run.silent {
        run.quiet = true;
        run.progress = false;
        run.flags
            .push(FlagValue::new("-silent", "logging.level", "error"));
    }
    Ok(Command::Run(run))
}

/// The completion script for `shell`, over every flag of the usage.
pub fn completions(shell: crate::completions::Shell) -> String {
    crate::completions::script(shell, &flag_specs())
}

/// The environment variables spyder reads, with their help (usage and man page).
const ENVIRONMENT: [(&str, &str); 5] = [
    (
        "REDIS_ADDR",
        "shared dedup Redis (redis.addr); unset or empty = memory dedup",
    ),
    (
        "REDIS_QUEUE_ADDR",
        "queue Redis (redis.queue_addr); selects queue mode",
    ),
    (
        "REDIS_QUEUE_KEY",
        "queue list key (redis.queue_key), default spyder:queue",
    ),
    (
        "LOG_LEVEL",
        "debug, info, warn or error, any case (logging.level)",
    ),
    (
        "SPYDER_API_KEYS",
        "standard base64 of [{\"key\":\"...\",\"name\":\"ops\",\"scope\":\"admin\"}]",
    ),
];

/// The man page, spyder(1) in roff, from the same flag table as the usage
/// (`cargo xtask man` writes it).
pub fn man_page() -> String {
    crate::man::page(&flag_specs(), &ENVIRONMENT, env!("CARGO_PKG_VERSION"))
}

/// The usage: what spyder is, how to run it, examples, flags and environment.
pub fn usage() -> String {
    let mut out = String::from(
        "SPYDER (System for Probing and Yielding DNS-based Entity Relations)\n\
         \n\
         Maps how internet domains relate (DNS, TLS certificates, links) and emits the graph.\n\
         \n\
         Usage:\n  spyder [-config spyder.yaml] [flags]\n\
         \n\
         Examples:\n\
         \x20 # crawl a file of domains, batches to stdout\n\
         \x20 spyder -domains domains.txt\n\
         \x20 # domains from a pipe (-domains - may be left out), JSON lines into a file\n\
         \x20 cat domains.txt | spyder -domains - -jsonl -o graph.jsonl\n\
         \x20 # also crawl what is discovered, up to 10000 new domains\n\
         \x20 spyder -domains seeds.txt -continuous -max_domains 10000\n\
         \x20 # queue mode: lease domains from Redis (fill it with `seed`)\n\
         \x20 REDIS_QUEUE_ADDR=127.0.0.1:6379 REDIS_ADDR=127.0.0.1:6379 spyder -config spyder.yaml\n\
         \x20 # POST batches to an ingest endpoint with mTLS, spooling when it is down\n\
         \x20 spyder -domains domains.txt -ingest https://ingest.example/v1/batches \\\n\
         \x20     -mtls_cert client.pem -mtls_key client.key -spool_dir /var/lib/spyder/spool\n\
         \n\
         Flags (-name=value, -name value or --name value; booleans -name or -name=false):\n",
    );
    out.push_str(&flags::usage(&flag_specs()));
    out.push_str("\nEnvironment:\n");
    for (var, help) in ENVIRONMENT {
        let _ = writeln!(out, "  {var:<17} {help}");
    }
    out.push_str(
        "\nPrecedence: defaults < config file < environment < flags. \
         Every key: docs/configuration.md.\n",
    );
    out
}

/// `SPYDER Probe v<version>` and a build line.
pub fn version_text() -> String {
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    format!(
        "SPYDER Probe v{}\nbuilt for {}-{} ({profile} profile)",
        env!("CARGO_PKG_VERSION"),
        std::env::consts::ARCH,
        std::env::consts::OS,
    )
}

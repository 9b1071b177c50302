//! `spyder -check`: validates the configuration and the inputs without crawling,
//! prints the effective configuration (secrets redacted) on stdout, and exits 0 when
//! a run would start, 1 when it would not. Nothing is created, connected or sent,
//! so a service manager can run it before every start (`ExecStartPre=`).

use std::process::ExitCode;

use spyder_config::Loaded;
use spyder_probe::Probe;
use spyder_queue::{InputLine, InputReader};

use crate::settings::{emitter_config, probe_config};

/// Invalid input lines named one by one; the rest are counted.
const INVALID_LINES_SHOWN: u64 = 20;

/// Checks `loaded` as a run would use it; the report goes to stderr, the effective
/// configuration to stdout.
pub async fn run(loaded: &Loaded) -> ExitCode {
    match check(loaded).await {
        Ok(inputs) => {
            let config = serde_json::to_string_pretty(&loaded.config.redacted())
                .unwrap_or_else(|e| format!("{{\"error\": \"cannot show the config: {e}\"}}"));
            println!("{config}");
            eprintln!("spyder -check: the configuration is valid; {inputs}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("spyder -check: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What a run would refuse at start, in the order it builds things; on success a
/// sentence about the input.
async fn check(loaded: &Loaded) -> Result<String, String> {
    let config = &loaded.config;
    // Trust roots, DNS sockets: what the probe's builder loads and binds.
    Probe::builder()
        .config(probe_config(config))
        .build()
        .map_err(|e| format!("cannot start the probe: {e}"))?;
    emitter_config(config)
        .check()
        .await
        .map_err(|e| e.to_string())?;
    if !config.redis.queue_addr.is_empty() {
        return Ok(format!(
            "queue mode on {} (not contacted by -check)",
            spyder_queue::connection::redact_addr(&config.redis.queue_addr)
        ));
    }
    if config.domains == "-" {
        return Ok("domains from stdin (not read by -check)".to_owned());
    }
    check_domains(&config.domains).await
}

/// Reads the whole domains file with the run's line rules.
async fn check_domains(path: &str) -> Result<String, String> {
    let mut reader = InputReader::open(path)
        .await
        .map_err(|e| format!("domains: cannot open {path:?}: {e}"))?;
    let (mut hosts, mut invalid) = (0u64, 0u64);
    while let Some(line) = reader.next().await {
        match line {
            InputLine::Host { .. } => hosts += 1,
            bad @ InputLine::Invalid { .. } => {
                invalid += 1;
                if invalid <= INVALID_LINES_SHOWN {
                    eprintln!("spyder -check: {bad}");
                }
            }
        }
    }
    if hosts == 0 {
        return Err(format!(
            "domains: {path} holds no valid host ({invalid} invalid lines)"
        ));
    }
    Ok(format!(
        "{path}: {hosts} hosts, {invalid} invalid lines (a run skips them)"
    ))
}

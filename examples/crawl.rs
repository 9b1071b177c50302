//! Embedding example: crawl the hosts named on the command line and print, per host,
//! one JSON batch of its graph records (the same envelope `spyder` emits).
//!
//! ```sh
//! cargo run -p spyder-probe --example crawl -- example.com https://www.rust-lang.org/
//! # against a local resolver and private test hosts:
//! cargo run -p spyder-probe --example crawl -- --dns 127.0.0.1:5353 --allow 127.0.0.0/8 \
//!     --roots ca.pem --https-port 8443 --http-port 8080 site.test
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use spyder_probe::model::Batch;
use spyder_probe::{Probe, ProbeConfig, TlsRoots};

fn usage() -> ExitCode {
    eprintln!(
        "usage: crawl [--dns ip:port]... [--allow cidr]... [--roots ca.pem] \
         [--https-port n] [--http-port n] host..."
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut config = ProbeConfig::default();
    let mut custom_dns = Vec::new();
    let mut hosts = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let parsed: Result<(), String> = match arg.as_str() {
            "--dns" => value("--dns").and_then(|v| {
                custom_dns.push(v.parse().map_err(|e| format!("--dns {v}: {e}"))?);
                Ok(())
            }),
            "--allow" => value("--allow").and_then(|v| {
                config
                    .settings
                    .allow_cidrs
                    .push(v.parse().map_err(|e| format!("--allow {v}: {e}"))?);
                Ok(())
            }),
            "--roots" => value("--roots").map(|v| config.tls_roots = TlsRoots::PemFile(v.into())),
            "--https-port" => value("--https-port").and_then(|v| {
                config.settings.https_port =
                    v.parse().map_err(|e| format!("--https-port {v}: {e}"))?;
                Ok(())
            }),
            "--http-port" => value("--http-port").and_then(|v| {
                config.settings.http_port =
                    v.parse().map_err(|e| format!("--http-port {v}: {e}"))?;
                Ok(())
            }),
            "-h" | "--help" => return usage(),
            _ if arg.starts_with("--") => Err(format!("unknown option {arg}")),
            _ => {
                hosts.push(arg);
                Ok(())
            }
        };
        if let Err(e) = parsed {
            eprintln!("crawl: {e}");
            return usage();
        }
    }
    if hosts.is_empty() {
        return usage();
    }
    if !custom_dns.is_empty() {
        config.settings.dns.servers = custom_dns;
    }
    let (probe_id, run_id) = (config.probe_id.clone(), config.run_id.clone());
    let probe = match Probe::new(config).await {
        Ok(p) => Arc::new(p),
        Err(e) => {
            eprintln!("crawl: {e}");
            return ExitCode::FAILURE;
        }
    };

    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|h| {
            let probe = Arc::clone(&probe);
            tokio::spawn(async move { probe.crawl(&h).await })
        })
        .collect();
    for task in tasks {
        let Ok(report) = task.await else {
            eprintln!("crawl: a task panicked");
            return ExitCode::FAILURE;
        };
        let name = report.host.as_ref().map_or("-", |h| h.as_str()).to_owned();
        eprintln!(
            "{name}: {} ({} nodes, {} edges, {:?})",
            report.outcome,
            report.records.node_count(),
            report.records.edges.len(),
            report.timings.total
        );
        if let Some(detail) = &report.detail {
            eprintln!("{name}: {detail}");
        }
        let batch = Batch::seal(probe_id.clone(), run_id.clone(), report.records);
        match serde_json::to_string(&batch) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("crawl: {e}"),
        }
    }
    ExitCode::SUCCESS
}

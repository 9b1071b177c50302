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

use spyder_probe::model::Batch;
use spyder_probe::{Probe, ProbeSettings, TlsRoots};

fn usage() -> ExitCode {
    eprintln!(
        "usage: crawl [--dns ip:port]... [--allow cidr]... [--roots ca.pem] \
         [--https-port n] [--http-port n] host..."
    );
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut settings = ProbeSettings::default();
    let mut builder = Probe::builder();
    let (mut dns, mut hosts) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let takes_value = arg.starts_with("--") && arg != "--help";
        let value = if takes_value { args.next() } else { None };
        let parsed = match (arg.as_str(), value) {
            ("-h" | "--help", _) => return usage(),
            ("--dns", Some(v)) => v.parse().map(|server| dns.push(server)).is_ok(),
            ("--allow", Some(v)) => v
                .parse()
                .map(|cidr| settings.allow_cidrs.push(cidr))
                .is_ok(),
            ("--roots", Some(v)) => {
                builder = builder.tls_roots(TlsRoots::PemFile(v.into()));
                true
            }
            ("--https-port", Some(v)) => v.parse().map(|p| settings.https_port = p).is_ok(),
            ("--http-port", Some(v)) => v.parse().map(|p| settings.http_port = p).is_ok(),
            (_, None) if !arg.starts_with("--") => {
                hosts.push(arg);
                true
            }
            _ => false,
        };
        if !parsed {
            return usage();
        }
    }
    if hosts.is_empty() {
        return usage();
    }
    if !dns.is_empty() {
        settings.dns.servers = dns;
    }
    let probe = match builder.settings(settings).build() {
        Ok(probe) => probe,
        Err(e) => {
            eprintln!("crawl: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tasks: Vec<_> = hosts
        .into_iter()
        .map(|host| {
            let probe = probe.clone();
            tokio::spawn(async move { probe.crawl(&host).await })
        })
        .collect();
    for task in tasks {
        let Ok(report) = task.await else {
            eprintln!("crawl: a task panicked");
            return ExitCode::FAILURE;
        };
        let name = report.host.as_ref().map_or("-", |h| h.as_str());
        eprintln!(
            "{name}: {} ({} nodes, {} edges, {:?}) {}",
            report.outcome,
            report.records.node_count(),
            report.records.edges.len(),
            report.timings.total,
            report.detail.as_deref().unwrap_or(""),
        );
        let batch = Batch::seal(probe.probe_id(), probe.run_id(), report.records);
        match serde_json::to_string(&batch) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("crawl: {e}"),
        }
    }
    ExitCode::SUCCESS
}

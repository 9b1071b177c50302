//! Project automation, run as `cargo xtask <command>`.
//!
//! - `demo [N]`: starts an offline testkit world of N sites (default 25) — DNS server,
//!   HTTPS/HTTP hosts, a private CA — and runs the real `spyder` binary against it, so
//!   the whole pipeline can be seen without the internet. The graph goes to stdout.

use std::process::{ExitCode, Stdio};

use spyder_testkit::world::World;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo(args.get(1).map(String::as_str)),
        _ => {
            eprintln!("usage: cargo xtask demo [SITES] [-- extra spyder flags]");
            ExitCode::from(2)
        }
    }
}

fn demo(sites: Option<&str>) -> ExitCode {
    let sites: usize = match sites.map(str::parse).transpose() {
        Ok(n) => n.unwrap_or(25),
        Err(e) => {
            eprintln!("xtask demo: SITES must be a number: {e}");
            return ExitCode::from(2);
        }
    };
    let extra: Vec<String> = std::env::args().skip_while(|a| a != "--").skip(1).collect();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("xtask demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let world = match World::generate(2026, sites).await {
            Ok(w) => w,
            Err(e) => {
                eprintln!("xtask demo: cannot start the world: {e}");
                return ExitCode::FAILURE;
            }
        };
        let dir = match tempfile::tempdir() {
            Ok(d) => d,
            Err(e) => {
                eprintln!("xtask demo: {e}");
                return ExitCode::FAILURE;
            }
        };
        let domains = dir.path().join("domains.txt");
        let roots = dir.path().join("ca.pem");
        if let Err(e) = std::fs::write(&domains, world.hosts().join("\n") + "\n")
            .and_then(|()| std::fs::write(&roots, world.ca.root_pem()))
        {
            eprintln!("xtask demo: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!(
            "xtask demo: {sites} sites; DNS at {}, HTTPS port {}, HTTP port {}",
            world.dns_addr(),
            world.web.https_port(),
            world.web.http_port()
        );
        let status = tokio::process::Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--release", "-p", "spyder", "--"])
            .arg(format!("-domains={}", domains.display()))
            .arg(format!("-dns_servers={}", world.dns_addr()))
            .arg("-allow_cidrs=127.0.0.0/8")
            .arg(format!(
                "-set=crawling.https_port={}",
                world.web.https_port()
            ))
            .arg(format!("-set=crawling.http_port={}", world.web.http_port()))
            .arg(format!("-set=crawling.tls_roots={}", roots.display()))
            .arg("-set=crawling.rate_per_host=100")
            .arg("-metrics_addr=")
            .args(&extra)
            .stdin(Stdio::null())
            .status()
            .await;
        match status {
            Ok(s) if s.success() => {
                eprintln!(
                    "xtask demo: done; the world expects {} distinct edges",
                    world.expected_edges().len()
                );
                ExitCode::SUCCESS
            }
            Ok(s) => {
                eprintln!("xtask demo: spyder exited with {s}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("xtask demo: cannot run spyder: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

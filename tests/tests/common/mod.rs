//! What the engine-level world tests share: a probe configured for a world, and a
//! bounded-concurrency crawl of its hosts.
#![allow(dead_code)] // each test binary uses its own share of these helpers

use std::sync::Arc;
use std::time::Duration;

use spyder_probe::{CrawlReport, Probe, ProbeConfig, ProbeSettings, TlsRoots};
use std::collections::BTreeSet;

use spyder_testkit::world::{ExpectedEdge, World};

/// A probe configuration pointed at `world`: its DNS server, ports and CA, loopback
/// allowed, politeness raised for many sites on few addresses.
pub fn config_for(world: &World) -> ProbeConfig {
    let mut settings = ProbeSettings::default();
    settings.allow_cidrs = vec!["127.0.0.0/8".parse().expect("cidr")];
    settings.https_port = world.web.https_port();
    settings.http_port = world.web.http_port();
    settings.rate_per_host = 1000.0;
    settings.rate_burst = 10;
    settings.task_timeout = Duration::from_secs(20);
    settings.dns_timeout = Duration::from_secs(5);
    settings.tls_timeout = Duration::from_secs(5);
    settings.http_timeout = Duration::from_secs(5);
    settings.dns.servers = vec![world.dns_addr()];
    settings.dns.query_timeout = Duration::from_millis(500);
    let mut config = ProbeConfig::default();
    config.tls_roots = TlsRoots::Pem(world.ca.root_pem());
    config.settings = settings;
    config
}

/// Crawls `hosts` with at most `concurrency` tasks at once; reports in input order.
pub async fn crawl_all(
    probe: Arc<Probe>,
    hosts: Vec<String>,
    concurrency: usize,
) -> Vec<CrawlReport> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for host in hosts {
        let probe = Arc::clone(&probe);
        let sem = Arc::clone(&sem);
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            probe.crawl(&host).await
        }));
    }
    let mut reports = Vec::new();
    for t in tasks {
        reports.push(t.await.expect("crawl task does not panic"));
    }
    reports
}

/// Every task of `world` (reports in `world.hosts()` order) ended with its expected
/// outcome.
pub fn assert_outcomes(world: &World, reports: &[CrawlReport]) {
    let mut wrong_outcomes = Vec::new();
    for (site, report) in world.sites.iter().zip(reports) {
        if report.outcome.as_str() != site.outcome {
            wrong_outcomes.push(format!(
                "{}: {} != expected {} (detail: {}; timings: {:?})",
                site.host,
                report.outcome,
                site.outcome,
                report.detail.as_deref().unwrap_or("none"),
                report.timings
            ));
        }
    }
    assert!(
        wrong_outcomes.is_empty(),
        "wrong outcomes:\n{}",
        wrong_outcomes.join("\n")
    );
}

/// Every edge of `reports`, as the world states its expectations.
pub fn edges_of(reports: &[CrawlReport]) -> BTreeSet<ExpectedEdge> {
    reports
        .iter()
        .flat_map(|r| r.records.edges.iter())
        .map(|e| (e.kind, e.source.clone(), e.target.clone()))
        .collect()
}

/// `got` holds exactly the edges of `want`; `context` leads the failure message.
pub fn assert_exact_edges(
    got: &BTreeSet<ExpectedEdge>,
    want: &BTreeSet<ExpectedEdge>,
    context: &str,
) {
    let missing: Vec<_> = want.difference(got).collect();
    let extra: Vec<_> = got.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{context}missing {} edges: {missing:#?}\nextra {} edges: {extra:#?}",
        missing.len(),
        extra.len()
    );
}

//! The probe engine against generated testkit worlds: every expected edge is produced,
//! with no extra ones, and every task ends with the expected outcome.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use spyder_probe::model::EdgeType;
use spyder_probe::{CrawlReport, Probe, ProbeConfig, ProbeSettings, TlsRoots};
use spyder_testkit::world::{ExpectedEdge, World};

fn config_for(world: &World) -> ProbeConfig {
    let mut settings = ProbeSettings {
        allow_cidrs: vec!["127.0.0.0/8".parse().expect("cidr")],
        https_port: world.web.https_port(),
        http_port: world.web.http_port(),
        rate_per_host: 1000.0,
        rate_burst: 10,
        task_timeout: Duration::from_secs(20),
        dns_timeout: Duration::from_secs(5),
        tls_timeout: Duration::from_secs(5),
        http_timeout: Duration::from_secs(5),
        ..ProbeSettings::default()
    };
    settings.dns.servers = vec![world.dns_addr()];
    settings.dns.query_timeout = Duration::from_millis(500);
    ProbeConfig {
        tls_roots: TlsRoots::Pem(world.ca.root_pem()),
        settings,
        ..ProbeConfig::default()
    }
}

async fn crawl_all(probe: Arc<Probe>, hosts: Vec<String>, concurrency: usize) -> Vec<CrawlReport> {
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

fn edges_of(reports: &[CrawlReport]) -> BTreeSet<ExpectedEdge> {
    reports
        .iter()
        .flat_map(|r| r.records.edges.iter())
        .map(|e| (e.kind, e.source.clone(), e.target.clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_site_world_yields_exactly_the_expected_edges() {
    let world = World::generate(0x5eed_0300, 300)
        .await
        .expect("world starts");
    let probe = Arc::new(Probe::new(config_for(&world)).await.expect("probe builds"));
    let reports = tokio::time::timeout(
        Duration::from_secs(120),
        crawl_all(probe, world.hosts(), 64),
    )
    .await
    .expect("the world is crawled within two minutes");

    // Outcomes, per host.
    let mut wrong_outcomes = Vec::new();
    for (site, report) in world.sites.iter().zip(&reports) {
        if report.outcome.as_str() != site.outcome {
            wrong_outcomes.push(format!(
                "{}: {} != expected {}",
                site.host, report.outcome, site.outcome
            ));
        }
    }
    assert!(
        wrong_outcomes.is_empty(),
        "wrong outcomes:\n{}",
        wrong_outcomes.join("\n")
    );

    // Edges, exactly.
    let got = edges_of(&reports);
    let want = world.expected_edges();
    let missing: Vec<_> = want.difference(&got).collect();
    let extra: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {} edges: {missing:#?}\nextra {} edges: {extra:#?}",
        missing.len(),
        extra.len()
    );

    // Every type appears, and every edge endpoint has its node in the same report.
    let kinds: BTreeMap<EdgeType, usize> = got.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.0).or_default() += 1;
        m
    });
    for kind in EdgeType::ALL {
        assert!(
            kinds.get(&kind).copied().unwrap_or(0) > 0,
            "no {kind} edge in the world"
        );
    }
    for r in &reports {
        let domains: BTreeSet<&str> = r
            .records
            .nodes_domain
            .iter()
            .map(|d| d.host.as_str())
            .collect();
        let ips: BTreeSet<String> = r
            .records
            .nodes_ip
            .iter()
            .map(|n| n.ip.to_string())
            .collect();
        let certs: BTreeSet<&str> = r
            .records
            .nodes_cert
            .iter()
            .map(|c| c.spki_sha256.as_str())
            .collect();
        let host = r.host.as_ref().expect("valid host").as_str();
        assert!(domains.contains(host), "{host}: self NodeDomain missing");
        for e in &r.records.edges {
            assert!(
                domains.contains(e.source.as_str()),
                "{host}: source node of {e:?} missing"
            );
            let target_ok = match e.kind {
                EdgeType::ResolvesTo => ips.contains(&e.target),
                EdgeType::UsesCert => certs.contains(e.target.as_str()),
                _ => domains.contains(e.target.as_str()),
            };
            assert!(target_ok, "{host}: target node of {e:?} missing");
        }
    }
}

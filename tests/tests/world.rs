//! The probe engine against generated testkit worlds: every expected edge is produced,
//! with no extra ones, and every task ends with the expected outcome.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use common::{assert_exact_edges, assert_outcomes, config_for, crawl_all, edges_of};
use spyder_probe::Probe;
use spyder_probe::model::EdgeType;
use spyder_testkit::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_300_site_world_yields_exactly_the_expected_edges() {
    let world = World::generate(0x5eed_0300, 300)
        .await
        .expect("world starts");
    let probe = Arc::new(
        Probe::builder()
            .config(config_for(&world))
            .build()
            .expect("probe builds"),
    );
    let reports = tokio::time::timeout(
        Duration::from_secs(120),
        crawl_all(probe, world.hosts(), 64),
    )
    .await
    .expect("the world is crawled within two minutes");

    // Outcomes, per host.
    assert_outcomes(&world, &reports);

    // Edges, exactly.
    let got = edges_of(&reports);
    let want = world.expected_edges();
    assert_exact_edges(&got, &want, "");

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

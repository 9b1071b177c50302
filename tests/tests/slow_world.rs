//! The probe across a slow, lossy network with black holes (issue 11, SPEC §3.6,
//! §3.7): a generated world behind a 100 ms TCP round trip, 40 ms DNS round trip, 1 %
//! DNS datagram loss each way, filtered and black-holed hosts and skewed shared
//! hosting addresses gives exactly its expected edges at concurrency 64 and at 2,048;
//! every unreachable host ends within `tls_timeout` + 1 s by the probe's own phase
//! timings; and the per-address connection cap holds as the server counts it.
//!
//! No timing goals here (those are `cargo xtask bench --rtt ...`): the bounds below
//! are the spec's, asserted with the loose margin a loaded 2-core machine needs.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_exact_edges, assert_outcomes, config_for, crawl_all, edges_of};
use spyder_probe::Probe;
use spyder_probe::model::EdgeType;
use spyder_testkit::world::{World, WorldOptions};

/// Sites: enough that 2,048 tasks are in flight at once.
const SITES: usize = 2_100;
/// The probe's `tls_timeout` (shorter than production so the test stays short, long
/// enough that a fallback given a whole `tls_timeout` would break the bound below).
const TLS_TIMEOUT: Duration = Duration::from_secs(4);
/// `max_conns_per_ip`: low enough that the shared addresses hit it at 2,048 tasks.
const CONN_CAP: usize = 8;
/// Bound on one whole crawl (a failure, not a timing goal).
const LIMIT: Duration = Duration::from_secs(300);
/// The spec's bound on an unreachable host beyond its DNS phase is `tls_timeout`
/// plus one second; this much more absorbs a 2-core machine running the world and
/// 2,048 tasks at once (scheduling, not network, time: a tokio worker fires timers
/// between polls, and in a debug build one TLS handshake poll takes milliseconds;
/// 1 s of margin was overrun by up to 0.3 s once the world ran on its own threads).
const LOADED_MACHINE: Duration = Duration::from_secs(2);

/// Addresses that several of the world's sites resolve to: the shared hosting ones.
fn shared_addresses(world: &World) -> Vec<Ipv4Addr> {
    let mut hosts_per_ip: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (kind, source, target) in world.expected_edges() {
        if kind == EdgeType::ResolvesTo {
            hosts_per_ip.entry(target).or_default().insert(source);
        }
    }
    hosts_per_ip
        .into_iter()
        .filter(|(_, hosts)| hosts.len() > 1)
        .filter_map(|(ip, _)| ip.parse().ok())
        .collect()
}

/// A two-worker runtime (the machine's two cores) of its own.
fn runtime(name: &str) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime starts")
}

/// The world serves from a runtime of its own, as separate servers would from their
/// own processes: on the probe's runtime its DNS server waited behind 2,048 crawl
/// tasks for its turn, and answers the network delivered in time came seconds late
/// (the probe's CPU, not the network, lost them).
#[test]
fn a_slow_lossy_world_gives_exactly_its_edges_at_concurrency_64_and_2048() {
    let world_runtime = runtime("world");
    let probe_runtime = runtime("probe");
    probe_runtime.block_on(crawl_the_slow_world(&world_runtime));
    world_runtime.shutdown_background();
}

async fn crawl_the_slow_world(world_runtime: &tokio::runtime::Runtime) {
    let metrics = spyder_health::install_metrics().expect("the only recorder of this binary");
    let options = WorldOptions {
        tcp_rtt: Duration::from_millis(100),
        tcp_jitter: Duration::from_millis(20),
        dns_rtt: Duration::from_millis(40),
        dns_jitter: Duration::from_millis(10),
        dns_loss: 0.01,
        filtered: 0.02,
        black_holes: 0.01,
        shared_ip_sites: 0.05,
        seed: 0x5eed_1111,
    };
    let world = world_runtime
        .spawn(World::generate_with(0x5eed_1110, SITES, options))
        .await
        .expect("world generation does not panic")
        .expect("world starts");
    let shared = shared_addresses(&world);
    assert!(!shared.is_empty(), "the world has shared hosting addresses");
    let unreachable: BTreeSet<&str> = world
        .sites
        .iter()
        .filter(|s| s.metrics.tls_error == Some("timeout"))
        .map(|s| s.host.as_str())
        .collect();
    assert!(
        unreachable.len() > SITES / 100,
        "the world has filtered and black-holed hosts: {}",
        unreachable.len()
    );
    let want = world.expected_edges();

    for concurrency in [64, 2048] {
        let mut config = config_for(&world);
        config.settings.tls_timeout = TLS_TIMEOUT;
        config.settings.max_conns_per_ip = CONN_CAP;
        // The production per-try ceiling (the fast worlds use 500 ms): the world's
        // DNS server shares this process's two cores with 2,048 tasks, and its
        // answers come late when they are busy.
        config.settings.dns.query_timeout = spyder_probe::DnsSettings::default().query_timeout;
        // Waiting for a connection slot counts against the task deadline; on the
        // busiest shared address a task may wait for many others.
        config.settings.task_timeout = Duration::from_secs(60);
        let probe = Arc::new(
            Probe::builder()
                .config(config)
                .build()
                .expect("probe builds"),
        );
        let reports = tokio::time::timeout(LIMIT, crawl_all(probe, world.hosts(), concurrency))
            .await
            .unwrap_or_else(|_| panic!("concurrency {concurrency}: crawled within {LIMIT:?}"));

        // Every domain's records, exactly, and its outcome.
        assert_outcomes(&world, &reports);
        let context = format!("concurrency {concurrency}: ");
        assert_exact_edges(&edges_of(&reports), &want, &context);

        // An unreachable host costs at most tls_timeout + 1 s beyond its DNS phase
        // (the HTTP fallback after a timeout gets only what is left).
        let bound = TLS_TIMEOUT + Duration::from_secs(1) + LOADED_MACHINE;
        let slow: Vec<String> = reports
            .iter()
            .filter_map(|r| {
                let host = r.host.as_ref()?.as_str();
                let web = r
                    .timings
                    .total
                    .saturating_sub(r.timings.dns.unwrap_or_default());
                (unreachable.contains(host) && web > bound).then(|| format!("{host}: {web:?}"))
            })
            .collect();
        assert!(
            slow.is_empty(),
            "concurrency {concurrency}: unreachable hosts beyond {bound:?}:\n{}",
            slow.join("\n")
        );
    }

    // The cap held at every shared address, as the server counts it (a lower bound
    // of what the client had open), and the crawl pressed it: connects waited for it,
    // and the server saw an address near it (else this would prove nothing).
    let scrape = spyder_testkit::prometheus::Scrape::parse(&metrics.render())
        .expect("the recorder renders valid text");
    let waits = scrape.sum("spyder_conn_waits_total", &[]);
    assert!(waits > 0.0, "no connect waited for the cap of {CONN_CAP}");
    let peaks: Vec<(Ipv4Addr, usize)> = shared
        .iter()
        .map(|ip| (*ip, world.web.peak_serving_connections(*ip)))
        .collect();
    assert!(
        peaks.iter().all(|(_, peak)| *peak <= CONN_CAP),
        "more than {CONN_CAP} connections at once to one address: {peaks:?}"
    );
    assert!(
        peaks.iter().any(|(_, peak)| *peak >= CONN_CAP / 2),
        "no shared address came near the cap of {CONN_CAP}: {peaks:?}"
    );
}

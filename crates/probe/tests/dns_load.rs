//! The DNS client under load (SPEC §3.7 "Under load", issue #11): thousands of
//! concurrent step-3 lookups against a server 40 ms away that loses 1 % of the
//! datagrams. Every name must resolve to exactly its address; nothing here asserts
//! time. (P-7, a server that sheds what it cannot take, is in `dns.rs`.)
//!
//! Its own test binary, not a module of `tests.rs`: tests of one binary run side
//! by side, and this one saturates the CPU for tens of seconds, which would turn
//! the other tests' deadlines, and its own, into timing tests.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use spyder_probe::DnsSettings;
use spyder_probe::dns::{DnsClient, ResolveStatus, resolve};
use spyder_probe::model::{HostName, NameKind};
use spyder_testkit::dns::{DnsServer, NetworkConditions, ServerOptions, Zone};
use tokio::task::JoinSet;

/// Bound on a whole load run: it never hangs, whatever breaks.
const RUN_LIMIT: Duration = Duration::from_secs(240);
/// The DNS phase deadline of each lookup: three times the default
/// `crawling.dns_timeout` (SPEC §2.6). All 16,384 lookups start at once and the
/// 82k queries are CPU work for this debug build and the in-process server: on one
/// busy core they take ~15 s, so the default 10 s would make this a timing test
/// (CI failed it so). Here the mechanism is proved (no name lost to queueing or
/// loss); "within the default dns_timeout" is the release benchmark's target
/// (`cargo xtask bench`).
const DNS_TIMEOUT: Duration = Duration::from_secs(30);

fn address(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0a00_0000 + i)
}

fn name(i: u32) -> String {
    format!("host{i}.load.example")
}

fn zone(n: u32) -> Zone {
    let mut zone = Zone::new();
    for i in 0..n {
        zone.a(&name(i), address(i));
    }
    zone
}

/// Resolves `n` names with `concurrency` lookups in flight at once through one client
/// with the default settings (but `server`); returns the names that did not resolve
/// to exactly their address.
async fn resolve_all(server: &DnsServer, n: u32, concurrency: usize) -> Vec<String> {
    let client = Arc::new(DnsClient::new(4, 0).expect("client"));
    let mut settings = DnsSettings::default();
    settings.servers = vec![server.addr()];
    let settings = Arc::new(settings);
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = JoinSet::new();
    for i in 0..n {
        let (client, settings, permits) = (
            Arc::clone(&client),
            Arc::clone(&settings),
            Arc::clone(&permits),
        );
        tasks.spawn(async move {
            let _slot = permits.acquire_owned().await.expect("open semaphore");
            let host = HostName::parse(&name(i), NameKind::DnsTarget).expect("valid");
            let r = resolve(&client, &host, &settings, DNS_TIMEOUT).await;
            let ok =
                r.status == ResolveStatus::Resolved && r.addresses == vec![IpAddr::V4(address(i))];
            (!ok).then(|| format!("{}: {:?} {:?}", name(i), r.status, r.addresses))
        });
    }
    let run = async {
        let mut failed = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            if let Some(f) = joined.expect("lookup task") {
                failed.push(f);
            }
        }
        failed
    };
    tokio::time::timeout(RUN_LIMIT, run)
        .await
        .expect("the load run ends within its bound")
}

fn lossy(seed: u64) -> ServerOptions {
    ServerOptions {
        network: NetworkConditions {
            rtt: Duration::from_millis(40),
            jitter: Duration::from_millis(5),
            query_loss: 0.005,
            answer_loss: 0.005,
            seed,
        },
        ..ServerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_thousand_lookups_at_once_across_a_lossy_path_all_resolve() {
    let n = 16_384;
    let server = DnsServer::start_with(zone(n), lossy(11))
        .await
        .expect("dns server");
    let failed = resolve_all(&server, n, n as usize).await;
    let lost = server.lost_queries() + server.lost_answers();
    assert!(lost > 0, "the path lost nothing: the test proves nothing");
    assert!(
        failed.is_empty(),
        "{} of {n} names failed under load ({lost} datagrams lost, {} queries seen), e.g. {:?}",
        failed.len(),
        server.query_count(),
        &failed[..failed.len().min(5)]
    );
    // A lost datagram costs a retry of that query, not a storm: the queries the
    // server saw stay near five per name.
    let per_name = server.query_count() as f64 / f64::from(n);
    assert!(per_name < 6.0, "{per_name:.2} queries per name");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_concurrency_one_the_same_names_resolve() {
    // The baseline the load test compares with.
    let n = 64;
    let server = DnsServer::start_with(zone(n), lossy(12))
        .await
        .expect("dns server");
    assert!(resolve_all(&server, n, 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_answer_costs_one_retry_of_that_query() {
    // 1 % answer loss: names whose A answer was lost were asked again, but no
    // question is asked more than a couple of times.
    let n = 2_000;
    let options = ServerOptions {
        network: NetworkConditions {
            rtt: Duration::from_millis(20),
            answer_loss: 0.01,
            seed: 13,
            ..NetworkConditions::default()
        },
        ..ServerOptions::default()
    };
    let server = DnsServer::start_with(zone(n), options)
        .await
        .expect("dns server");
    assert!(resolve_all(&server, n, 512).await.is_empty());
    let most = (0..n)
        .map(|i| server.queries_for(&name(i), RecordType::A))
        .max()
        .unwrap_or(0);
    assert!(server.lost_answers() > 0);
    assert!(most <= 3, "a name's A query was sent {most} times");
}

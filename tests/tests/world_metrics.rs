//! The probe's own metrics (SPEC §2.8, §3.13) after crawling a generated world, each
//! asserted by value against what the world says a correct probe does and what its
//! servers saw: one DNS observation per task, one DNS query timing per answer the DNS
//! server sent and one slot wait per lookup, one TLS observation per attempt (refused
//! and timed-out ones included, with their reasons), one HTTP observation per request
//! by kind, robots.txt blocks, and DNS replies dropped only as late answers.
//!
//! The recorder is the one `/metrics` renders (`spyder_health::install_metrics`); there
//! is one per process, so this file holds one test.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use common::{assert_outcomes, config_for, crawl_all};
use spyder_probe::Probe;
use spyder_testkit::prometheus::Scrape;
use spyder_testkit::world::{World, WorldOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_crawl_is_counted_exactly_in_the_probe_metrics() {
    let handle = spyder_health::install_metrics().expect("the only recorder of this binary");
    let options = WorldOptions {
        black_holes: 0.05,
        ..Default::default()
    };
    let world = World::generate_with(0x5eed_3130, 200, options)
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
        crawl_all(Arc::clone(&probe), world.hosts(), 64),
    )
    .await
    .expect("the world is crawled within two minutes");
    assert_outcomes(&world, &reports);
    let scrape = Scrape::parse(&handle.render()).expect("the recorder renders valid text");
    let count = |name: &str, labels: &[(&str, &str)]| -> u64 {
        // Counts are whole numbers; a missing series is zero.
        scrape.sum(name, labels) as u64
    };

    // What the world says a correct probe does.
    let sites = &world.sites;
    let tasks = sites.len() as u64;
    let handshakes: u64 = sites.iter().map(|s| s.metrics.tls_handshakes).sum();
    let robots: u64 = sites.iter().map(|s| s.metrics.robots_requests).sum();
    let root: u64 = sites.iter().map(|s| s.metrics.root_requests).sum();
    let mut tls_errors: BTreeMap<String, u64> = BTreeMap::new();
    for reason in sites.iter().filter_map(|s| s.metrics.tls_error) {
        *tls_errors.entry(reason.to_owned()).or_default() += 1;
    }
    let blocked = sites
        .iter()
        .filter(|s| s.outcome == "robots_blocked")
        .count() as u64;
    // The world exercises every case asserted below.
    assert!(
        tls_errors.get("timeout").is_some_and(|&n| n > 0),
        "{tls_errors:?}"
    );
    assert!(
        tls_errors.get("connect_refused").is_some_and(|&n| n > 0),
        "{tls_errors:?}"
    );
    assert!(blocked > 0);
    assert!(root > robots - blocked, "some redirect hops");

    // DNS: one observation per task, whatever its lookups (redirect targets included).
    assert_eq!(
        count("spyder_dns_lookup_duration_seconds_count", &[]),
        tasks,
        "one DNS phase per task"
    );
    // In a clean world a reply is dropped only as the late answer of a try that timed
    // out (a loaded machine can stall a reply past the 50 ms floor of the adaptive
    // timeout); the counters are the client's own counts.
    let dropped = probe.dns().dropped_replies();
    let try_timeouts = probe.dns().try_timeouts();
    assert!(
        dropped <= try_timeouts,
        "{dropped} replies dropped, {try_timeouts} tries timed out"
    );
    assert_eq!(count("spyder_dns_dropped_replies_total", &[]), dropped);
    assert_eq!(count("spyder_dns_try_timeouts_total", &[]), try_timeouts);

    // Per query, against what the world's one DNS server received. It answers every
    // message it receives (the world scripts no loss, drops or failures), and each
    // answer the client reads is either matched to its try (one observation of
    // spyder_dns_query_duration_seconds: UDP, or TCP after truncation) or dropped. The
    // only answers not read yet are late ones to tries that timed out and whose
    // lookup another try answered: at most one per timed-out try, so with no timeout
    // (the usual run) both counts are exact.
    let served = world.dns.query_count();
    assert_eq!(
        served,
        world.dns.udp_query_count() + world.dns.tcp_query_count()
    );
    let answered = count("spyder_dns_query_duration_seconds_count", &[]);
    assert!(
        answered + dropped <= served && served <= answered + dropped + try_timeouts,
        "{answered} answered tries + {dropped} dropped replies against {served} queries \
         served ({try_timeouts} tries timed out)"
    );
    // spyder_dns_queue_wait_seconds: one observation per lookup sent to the wire, its
    // wait for a max_inflight slot of the world's one server; a retry keeps the slot
    // and is not observed again. So the UDP queries the server saw are the lookups
    // plus their retries, and here a retry follows only a try that timed out (no
    // SERVFAIL or REFUSED in this world, and loopback loses no datagram).
    let udp = world.dns.udp_query_count();
    let waits = count("spyder_dns_queue_wait_seconds_count", &[]);
    assert!(
        waits <= udp && udp <= waits + try_timeouts,
        "{waits} slot waits against {udp} UDP queries served ({try_timeouts} tries timed out)"
    );
    // 64 tasks of at most five lookups at once never fill the default 1024 slots: no
    // lookup waited for one, so every wait is the instant of taking a free slot, well
    // below 100 ms even on a loaded machine.
    assert_eq!(
        count("spyder_dns_queue_wait_seconds_bucket", &[("le", "0.1")]),
        waits,
        "no lookup waited for a slot"
    );

    // TLS: handshakes as the server counted them, errors by reason, and one timing per
    // attempt, failed ones included.
    assert_eq!(
        world.web.handshakes(),
        handshakes,
        "handshakes the server completed"
    );
    let got_errors: BTreeMap<String, u64> = scrape
        .by_label("spyder_tls_errors_total", "reason")
        .into_iter()
        .map(|(reason, n)| (reason, n as u64))
        .collect();
    assert_eq!(got_errors, tls_errors, "TLS errors by reason");
    let failed: u64 = tls_errors.values().sum();
    assert_eq!(
        count("spyder_tls_handshake_duration_seconds_count", &[]),
        handshakes + failed,
        "one timing per attempt"
    );

    // HTTP: one timing per request, by kind, as the servers received them.
    let log = world.web.requests();
    let robots_seen = log.iter().filter(|q| q.path == "/robots.txt").count() as u64;
    let root_seen = log.len() as u64 - robots_seen;
    assert_eq!(
        (robots_seen, root_seen),
        (robots, root),
        "requests the servers saw"
    );
    let http = "spyder_http_request_duration_seconds_count";
    assert_eq!(count(http, &[("kind", "robots")]), robots);
    assert_eq!(count(http, &[("kind", "root")]), root);

    // robots.txt blocks, and no redirect refused (every redirect of the world is to a
    // configured port).
    assert_eq!(count("spyder_robots_blocked_total", &[]), blocked);
    assert_eq!(count("spyder_redirects_refused_total", &[]), 0);
}

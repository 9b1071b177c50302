//! The DNS client against the testkit's loopback server (SPEC §1 step 3, §3.3, §3.7,
//! P-3, P-7), and against hand-written hostile "servers".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use spyder_probe::DnsSettings;
use spyder_probe::dns::{DnsClient, DnsError, ResolveStatus, resolve, resolve_addresses};
use spyder_probe::model::{HostName, NameKind};
use spyder_testkit::dns::{Behaviour, DnsServer, ServerOptions, Zone};
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

/// Generous bound on any single wait in these tests.
const GUARD: Duration = Duration::from_secs(8);

fn host(s: &str) -> HostName {
    HostName::parse(s, NameKind::DnsTarget).expect("test names are valid")
}

fn v4(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, last)
}

fn settings(servers: &[SocketAddr]) -> DnsSettings {
    let mut s = DnsSettings::new(servers.to_vec());
    s.query_timeout = Duration::from_millis(500);
    s.retries = 1;
    s.max_inflight = 64;
    s
}

fn client(cache: usize) -> DnsClient {
    DnsClient::new(2, cache).expect("client binds loopback sockets")
}

async fn start(zone: Zone) -> DnsServer {
    DnsServer::start(zone).await.expect("dns server starts")
}

/// Waits (bounded) until `cond` holds; false if it never did.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    tokio::time::timeout(GUARD, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .is_ok()
}

async fn resolve_in(c: &DnsClient, name: &str, s: &DnsSettings) -> spyder_probe::dns::Resolution {
    resolve_within(c, name, s, Duration::from_secs(5)).await
}

/// `resolve` under a DNS phase of `phase`, bounded by [`GUARD`].
async fn resolve_within(
    c: &DnsClient,
    name: &str,
    s: &DnsSettings,
    phase: Duration,
) -> spyder_probe::dns::Resolution {
    tokio::time::timeout(GUARD, resolve(c, &host(name), s, phase))
        .await
        .expect("resolve returns within the guard")
}

fn a_addresses(answer: &spyder_probe::dns::Answer) -> Vec<Ipv4Addr> {
    answer
        .records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn addresses_name_servers_and_mail_exchangers() {
    let mut zone = Zone::new();
    zone.a("Shop.Example.", v4(1))
        .a("shop.example", v4(2))
        .a("shop.example", v4(1))
        .aaaa("shop.example", "2001:db8::1".parse().expect("v6"))
        .ns("shop.example", "ns1.dns.example")
        .ns("shop.example", "NS2.dns.example.")
        .mx("shop.example", 10, "mx1.mail.example")
        .mx("shop.example", 20, "_mx2.mail.example")
        .a("nomail.example", v4(3))
        .null_mx("nomail.example");
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);

    let r = resolve_in(&c, "shop.example", &s).await;
    assert_eq!(r.status, ResolveStatus::Resolved);
    assert_eq!(
        r.addresses,
        vec![
            IpAddr::V4(v4(1)),
            IpAddr::V4(v4(2)),
            IpAddr::V6("2001:db8::1".parse().expect("v6")),
        ]
    );
    assert!(r.aliases.is_empty(), "no CNAME, no alias");
    assert_eq!(
        r.name_servers,
        vec![host("ns1.dns.example"), host("ns2.dns.example")]
    );
    assert_eq!(
        r.mail_exchangers,
        vec![host("mx1.mail.example"), host("_mx2.mail.example")]
    );
    for t in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::NS,
        RecordType::CNAME,
        RecordType::MX,
    ] {
        assert_eq!(server.queries_for("shop.example", t), 1, "{t:?} asked once");
    }

    let r = resolve_in(&c, "nomail.example", &s).await;
    assert_eq!(r.status, ResolveStatus::Resolved);
    assert!(r.mail_exchangers.is_empty(), "null MX is skipped");
}

#[tokio::test]
async fn cname_chain_gives_one_alias_per_hop() {
    let mut zone = Zone::new();
    zone.cname("a.example", "b.example")
        .cname("b.example", "c.example")
        .a("c.example", v4(3))
        .ns("c.example", "ns.c-dns.example")
        .mx("c.example", 5, "mx.c-mail.example")
        .ns("b.example", "ns.b-dns.example") // hidden by the CNAME at b
        .ns("unrelated.example", "ns.nope.example");
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);

    let r = resolve_in(&c, "a.example", &s).await;
    assert_eq!(r.status, ResolveStatus::Resolved);
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(3))]);
    assert_eq!(
        r.aliases,
        vec![
            (host("a.example"), host("b.example")),
            (host("b.example"), host("c.example")),
        ]
    );
    assert_eq!(r.name_servers, vec![host("ns.c-dns.example")]);
    assert_eq!(r.mail_exchangers, vec![host("mx.c-mail.example")]);

    let r = resolve_in(&c, "c.example", &s).await;
    assert!(r.aliases.is_empty());
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(3))]);
}

#[tokio::test]
async fn cname_loop_ends_the_chain() {
    let mut zone = Zone::new();
    zone.cname("loop1.example", "loop2.example")
        .cname("loop2.example", "loop1.example")
        .cname("self.example", "self.example");
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);

    let r = resolve_in(&c, "loop1.example", &s).await;
    assert_eq!(r.status, ResolveStatus::NoAddress);
    assert!(r.addresses.is_empty());
    assert_eq!(
        r.aliases,
        vec![
            (host("loop1.example"), host("loop2.example")),
            (host("loop2.example"), host("loop1.example")),
        ]
    );

    let r = resolve_in(&c, "self.example", &s).await;
    assert!(r.aliases.is_empty(), "never a self-loop");
    assert_eq!(r.status, ResolveStatus::NoAddress);
}

#[tokio::test]
async fn dangling_cname_is_nxdomain_with_its_alias() {
    let mut zone = Zone::new();
    zone.cname("dangling.example", "gone.example");
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);

    let answer = c
        .query(&host("dangling.example"), RecordType::A, &s)
        .await
        .expect("NXDOMAIN is an answer");
    assert_eq!(answer.rcode, ResponseCode::NXDomain);
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.records[0].record_type(), RecordType::CNAME);

    let r = resolve_in(&c, "dangling.example", &s).await;
    assert_eq!(r.status, ResolveStatus::NoAddress);
    assert_eq!(
        r.aliases,
        vec![(host("dangling.example"), host("gone.example"))]
    );
}

#[tokio::test]
async fn wildcard_answers_names_below_it() {
    let mut zone = Zone::new();
    zone.a("*.wild.example", v4(9))
        .a("exact.wild.example", v4(10));
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);

    let r = resolve_in(&c, "anything.wild.example", &s).await;
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(9))]);
    let r = resolve_in(&c, "deeper.anything.wild.example", &s).await;
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(9))]);
    let r = resolve_in(&c, "exact.wild.example", &s).await;
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(10))], "explicit names win");
    let r = resolve_in(&c, "wild.example", &s).await;
    assert_eq!(
        r.status,
        ResolveStatus::NoAddress,
        "the parent itself is NODATA"
    );
}

#[tokio::test]
async fn nxdomain_nodata_and_failures() {
    let mut zone = Zone::new();
    zone.ns("nodata.example", "ns.example.net")
        .behave("broken.example", Behaviour::ServFail)
        .behave("refused.example", Behaviour::Refused)
        .behave("gone.example", Behaviour::Drop)
        .a("half.example", v4(5))
        .behave("half.example", Behaviour::Drop);
    let server = start(zone).await;
    let c = client(0);
    let mut s = settings(&[server.addr()]);
    s.query_timeout = Duration::from_millis(200);
    s.retries = 0;

    let nx = c
        .query(&host("missing.example"), RecordType::A, &s)
        .await
        .expect("NXDOMAIN is an answer");
    assert_eq!(nx.rcode, ResponseCode::NXDomain);
    assert!(nx.records.is_empty());
    let nodata = c
        .query(&host("nodata.example"), RecordType::A, &s)
        .await
        .expect("NODATA is an answer");
    assert_eq!(nodata.rcode, ResponseCode::NoError);
    assert!(nodata.records.is_empty());
    assert!(matches!(
        c.query(&host("broken.example"), RecordType::A, &s).await,
        Err(DnsError::ServFail)
    ));
    assert!(matches!(
        c.query(&host("refused.example"), RecordType::A, &s).await,
        Err(DnsError::Refused)
    ));
    assert!(matches!(
        c.query(&host("gone.example"), RecordType::A, &s).await,
        Err(DnsError::Timeout)
    ));

    let r = resolve_in(&c, "missing.example", &s).await;
    assert_eq!(r.status, ResolveStatus::NoAddress);
    let r = resolve_in(&c, "nodata.example", &s).await;
    assert_eq!(r.status, ResolveStatus::NoAddress);
    assert_eq!(r.name_servers, vec![host("ns.example.net")]);
    let r = resolve_in(&c, "broken.example", &s).await;
    assert_eq!(r.status, ResolveStatus::Failed);
    let r = resolve_in(&c, "refused.example", &s).await;
    assert_eq!(r.status, ResolveStatus::Failed);
    let r = resolve_in(&c, "gone.example", &s).await;
    assert_eq!(r.status, ResolveStatus::Failed);
    assert!(r.addresses.is_empty() && r.aliases.is_empty());
}

#[tokio::test]
async fn truncated_replies_are_retried_over_tcp() {
    let mut zone = Zone::new();
    zone.a("tc.example", v4(7))
        .behave("tc.example", Behaviour::Truncate);
    // Too many addresses for 1,232 bytes: the server truncates by itself.
    for i in 1..=150u8 {
        zone.a("big.example", Ipv4Addr::new(198, 51, 100, i));
    }
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);

    let answer = c
        .query(&host("tc.example"), RecordType::A, &s)
        .await
        .expect("answer over TCP");
    assert_eq!(a_addresses(&answer), vec![v4(7)]);
    assert_eq!(server.udp_query_count(), 1);
    assert_eq!(server.tcp_query_count(), 1);

    let answer = c
        .query(&host("big.example"), RecordType::A, &s)
        .await
        .expect("answer over TCP");
    assert_eq!(a_addresses(&answer).len(), 150);
    assert_eq!(server.udp_query_count(), 2);
    assert_eq!(server.tcp_query_count(), 2);
    assert_eq!(server.queries_for("big.example", RecordType::A), 2);
}

#[tokio::test]
async fn retries_rotate_to_the_next_server() {
    let mut bad = Zone::new();
    bad.a("dropped.example", v4(66))
        .behave("dropped.example", Behaviour::Drop)
        .behave("failing.example", Behaviour::ServFail)
        .behave("refusing.example", Behaviour::Refused);
    let mut good = Zone::new();
    good.a("dropped.example", v4(1))
        .a("failing.example", v4(2))
        .a("refusing.example", v4(3))
        .a("onlygood.example", v4(4));
    let (bad, good) = (start(bad).await, start(good).await);
    let c = client(0);
    let mut s = settings(&[bad.addr(), good.addr()]);
    s.query_timeout = Duration::from_millis(300);
    s.retries = 1;

    for (name, ip) in [
        ("dropped.example", v4(1)),
        ("failing.example", v4(2)),
        ("refusing.example", v4(3)),
    ] {
        let answer = c
            .query(&host(name), RecordType::A, &s)
            .await
            .expect("second server answers");
        assert_eq!(a_addresses(&answer), vec![ip], "{name}");
        assert_eq!(bad.queries_for(name, RecordType::A), 1, "{name}");
        assert_eq!(good.queries_for(name, RecordType::A), 1, "{name}");
    }

    // NXDOMAIN is final: the second server is never asked.
    let answer = c
        .query(&host("onlygood.example"), RecordType::A, &s)
        .await
        .expect("NXDOMAIN is an answer");
    assert_eq!(answer.rcode, ResponseCode::NXDomain);
    assert_eq!(good.queries_for("onlygood.example", RecordType::A), 0);

    // Without retries the failure is returned.
    s.retries = 0;
    assert!(matches!(
        c.query(&host("failing.example"), RecordType::AAAA, &s)
            .await,
        Err(DnsError::ServFail)
    ));
}

#[tokio::test]
async fn answers_are_cached_errors_are_not() {
    let mut zone = Zone::new();
    zone.a("cached.example", v4(1))
        .behave("broken.example", Behaviour::ServFail)
        .ttl(0)
        .a("zero-ttl.example", v4(2));
    let server = start(zone).await;
    let c = client(100);
    let mut s = settings(&[server.addr()]);
    s.retries = 0;

    let first = c
        .query(&host("cached.example"), RecordType::A, &s)
        .await
        .expect("answer");
    let before = server.query_count();
    let second = c
        .query(&host("cached.example"), RecordType::A, &s)
        .await
        .expect("cached answer");
    assert_eq!(server.query_count(), before, "served from the cache");
    assert_eq!(a_addresses(&first), a_addresses(&second));

    // Negative answers are cached too.
    for _ in 0..3 {
        let nx = c
            .query(&host("missing.example"), RecordType::A, &s)
            .await
            .expect("answer");
        assert_eq!(nx.rcode, ResponseCode::NXDomain);
    }
    assert_eq!(server.queries_for("missing.example", RecordType::A), 1);

    // SERVFAIL and TTL 0 are asked again every time.
    for _ in 0..2 {
        assert!(
            c.query(&host("broken.example"), RecordType::A, &s)
                .await
                .is_err()
        );
        c.query(&host("zero-ttl.example"), RecordType::A, &s)
            .await
            .expect("answer");
    }
    assert_eq!(server.queries_for("broken.example", RecordType::A), 2);
    assert_eq!(server.queries_for("zero-ttl.example", RecordType::A), 2);

    // The cache is keyed by type as well as name.
    c.query(&host("cached.example"), RecordType::AAAA, &s)
        .await
        .expect("NODATA");
    assert_eq!(server.queries_for("cached.example", RecordType::AAAA), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_lookups_share_one_query() {
    let mut zone = Zone::new();
    zone.a("popular.example", v4(8));
    let opts = ServerOptions {
        delay: Some(Duration::from_millis(500)),
        ..ServerOptions::default()
    };
    let server = DnsServer::start_with(zone, opts)
        .await
        .expect("dns server starts");
    let c = Arc::new(client(0)); // single-flight works without the cache
    let mut s = settings(&[server.addr()]);
    s.query_timeout = Duration::from_secs(3);
    let mut set = JoinSet::new();
    for _ in 0..100 {
        let (c, s) = (Arc::clone(&c), s.clone());
        set.spawn(async move { c.query(&host("popular.example"), RecordType::A, &s).await });
    }
    let mut answers = 0;
    while let Some(res) = tokio::time::timeout(GUARD, set.join_next())
        .await
        .expect("lookups finish")
    {
        let answer = res.expect("task").expect("answer");
        assert_eq!(a_addresses(&answer), vec![v4(8)]);
        answers += 1;
    }
    assert_eq!(answers, 100);
    assert_eq!(server.queries_for("popular.example", RecordType::A), 1);
    assert_eq!(server.query_count(), 1);
}

/// P-3: spoofed replies (right ID wrong question, wrong ID, wrong sender) are dropped
/// and counted; the real answer is returned.
#[tokio::test]
async fn p3_spoofed_replies_are_never_accepted() {
    let mut zone = Zone::new();
    zone.a("target.example", v4(7))
        .behave("target.example", Behaviour::Spoof);
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);

    let answer = c
        .query(&host("target.example"), RecordType::A, &s)
        .await
        .expect("real answer");
    assert_eq!(a_addresses(&answer), vec![v4(7)], "no 6.6.6.6");
    assert!(c.dropped_replies() >= 2, "same-socket decoys counted first");
    assert!(
        eventually(|| c.dropped_replies() >= 3).await,
        "off-port decoy counted too: {}",
        c.dropped_replies()
    );

    let r = resolve_in(&c, "target.example", &s).await;
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(7))]);
}

/// P-3: a reply that arrives after its query timed out is dropped, not accepted by
/// a later query.
#[tokio::test]
async fn p3_late_replies_are_dropped() {
    let mut zone = Zone::new();
    zone.a("slow.example", v4(1))
        .behave("slow.example", Behaviour::Delay(Duration::from_millis(600)))
        .a("fast.example", v4(2));
    let server = start(zone).await;
    let c = client(0);
    let mut s = settings(&[server.addr()]);
    s.query_timeout = Duration::from_millis(100);
    s.retries = 0;

    assert!(matches!(
        c.query(&host("slow.example"), RecordType::A, &s).await,
        Err(DnsError::Timeout)
    ));
    assert!(
        eventually(|| c.dropped_replies() >= 1).await,
        "the late reply is counted"
    );
    let fast = c
        .query(&host("fast.example"), RecordType::A, &s)
        .await
        .expect("later queries are unaffected");
    assert_eq!(a_addresses(&fast), vec![v4(2)]);
}

/// A try that timed out keeps listening: when its reply arrives after the retry went
/// out (a slow answer, the retry's datagram lost), that reply ends the lookup. Before,
/// the reply was dropped as late and the lookup failed waiting for the lost retry.
#[tokio::test]
async fn a_late_reply_to_an_earlier_try_answers_the_lookup() {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind loopback");
    let addr = socket.local_addr().expect("local addr");
    // Holds the first query until the retry arrives, answers the first only.
    let server = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut queries = Vec::new();
        while queries.len() < 2 {
            let (n, peer) = socket.recv_from(&mut buf).await.expect("receive");
            queries.push((Message::from_vec(&buf[..n]).expect("a query"), peer));
        }
        let (first, peer) = &queries[0];
        socket
            .send_to(&answer_a(first, v4(7)), peer)
            .await
            .expect("send");
        queries.len()
    });
    let c = client(0);
    let mut s = settings(&[addr]);
    // No RTT sample yet: the first try waits 1 s, each later one the full 3 s.
    s.query_timeout = Duration::from_secs(3);
    s.retries = 1;
    let answer = tokio::time::timeout(GUARD, c.query(&host("late.example"), RecordType::A, &s))
        .await
        .expect("within the guard")
        .expect("the first try's reply is accepted");
    assert_eq!(a_addresses(&answer), vec![v4(7)]);
    assert_eq!(server.await.expect("server task"), 2, "one retry was sent");
    assert_eq!(c.try_timeouts(), 1);
    assert_eq!(c.dropped_replies(), 0, "the reply was not dropped as late");
}

/// P-3: the per-domain DNS deadline bounds the whole resolution, whatever the
/// per-query timeout and retries would allow.
#[tokio::test]
async fn p3_phase_deadline_bounds_resolution() {
    let mut zone = Zone::new();
    zone.behave("blackhole.example", Behaviour::Drop);
    let server = start(zone).await;
    let c = client(0);
    let mut s = DnsSettings::new(vec![server.addr()]);
    s.query_timeout = Duration::from_secs(30);
    s.retries = 10;
    s.max_inflight = 8;
    let r = tokio::time::timeout(
        GUARD,
        resolve(
            &c,
            &host("blackhole.example"),
            &s,
            Duration::from_millis(200),
        ),
    )
    .await
    .expect("the phase deadline ends the lookup");
    assert_eq!(r.status, ResolveStatus::Failed);
    assert!(r.addresses.is_empty());
}

/// A lookup whose callers gave up stops before its next try, so it does not keep
/// holding the server's open-query slots with retries nobody waits for.
#[tokio::test]
async fn abandoned_lookups_free_their_slots() {
    let mut zone = Zone::new();
    zone.behave("hole.example", Behaviour::Drop)
        .a("b.example", v4(2))
        .a("c.example", v4(3));
    let server = start(zone).await;
    let c = client(0);
    let mut s = DnsSettings::new(vec![server.addr()]);
    s.query_timeout = Duration::from_millis(200);
    s.retries = 5;
    s.max_inflight = 1;
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        c.query(&host("hole.example"), RecordType::A, &s),
    )
    .await;
    assert!(gave_up.is_err(), "the caller's deadline fired");
    // Both queue behind the abandoned lookup's first try (the semaphore is FIFO); a
    // second try of it would have queued before the query for c.example.
    for (name, ip) in [("b.example", v4(2)), ("c.example", v4(3))] {
        let answer = tokio::time::timeout(GUARD, c.query(&host(name), RecordType::A, &s))
            .await
            .expect("bounded")
            .expect("answer");
        assert_eq!(a_addresses(&answer), vec![ip]);
    }
    assert_eq!(server.queries_for("hole.example", RecordType::A), 1);
}

/// P-7: 1,024 concurrent names against a server answering 100 at a time: with the
/// client holding at most 100 open queries, every name resolves and none is shed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn p7_every_name_resolves_under_load() {
    const NAMES: usize = 1024;
    let mut zone = Zone::new();
    for i in 0..NAMES {
        zone.a(
            &format!("n{i}.load.example"),
            Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8),
        );
    }
    let opts = ServerOptions {
        max_concurrent: Some(100),
        delay: Some(Duration::from_millis(5)),
        ..ServerOptions::default()
    };
    let server = DnsServer::start_with(zone, opts)
        .await
        .expect("dns server starts");
    let c = Arc::new(DnsClient::new(4, 0).expect("client"));
    let mut s = DnsSettings::new(vec![server.addr()]);
    s.query_timeout = Duration::from_secs(3);
    s.retries = 2;
    s.max_inflight = 100;
    let mut set = JoinSet::new();
    for i in 0..NAMES {
        let (c, s) = (Arc::clone(&c), s.clone());
        set.spawn(async move {
            let name = host(&format!("n{i}.load.example"));
            (i, resolve(&c, &name, &s, Duration::from_secs(9)).await)
        });
    }
    let mut resolved = 0;
    while let Some(res) = tokio::time::timeout(Duration::from_secs(9), set.join_next())
        .await
        .expect("all lookups finish")
    {
        let (i, r) = res.expect("task");
        assert_eq!(r.status, ResolveStatus::Resolved, "n{i}");
        assert_eq!(
            r.addresses,
            vec![IpAddr::V4(Ipv4Addr::new(
                10,
                0,
                (i / 256) as u8,
                (i % 256) as u8
            ))]
        );
        resolved += 1;
    }
    assert_eq!(resolved, NAMES);
    // A retry keeps its lookup's slot (the timed-out datagram is presumed lost, as
    // TCP presumes a retransmitted segment left the flight), so the client exceeds
    // the server's 100 only by tries it had given up on: on a loaded machine a
    // timeout can fire before a slow answer.
    let retries = c.try_timeouts();
    assert!(
        server.overload_dropped() <= retries,
        "the client exceeded 100 beyond its retries: {} shed, {retries} retries",
        server.overload_dropped()
    );
    assert!(server.query_count() >= (NAMES * 5) as u64);
    assert!(server.query_count() <= (NAMES * 5) as u64 + retries);
}

/// The wire form of a reply to `query` answering each of its questions with `ip`.
fn answer_a(query: &Message, ip: Ipv4Addr) -> Vec<u8> {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.add_queries(query.queries.iter().cloned());
    for q in &query.queries {
        reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(ip))));
    }
    reply.to_vec().expect("encodes")
}

/// A hand-written UDP server on loopback: `answer` sees every decodable query and
/// gives the datagrams to send back (none: the query is lost). Abort the handle to
/// stop it.
async fn udp_server(
    mut answer: impl FnMut(&Message) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind loopback");
    let addr = socket.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            for datagram in answer(&query) {
                let _ = socket.send_to(&datagram, peer).await;
            }
        }
    });
    (addr, task)
}

/// A fake UDP server that answers every query with hostile datagrams and never a
/// valid reply.
async fn hostile_server() -> (SocketAddr, tokio::task::JoinHandle<()>) {
    udp_server(|query| {
        let id = query.metadata.id;
        let valid = answer_a(query, Ipv4Addr::new(6, 6, 6, 6));
        let random: Vec<u8> = (0..300).map(|_| rand::random::<u8>()).collect();
        let mut lying_header = id.to_be_bytes().to_vec();
        lying_header.extend_from_slice(&[0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0]);
        let mut bad_label = valid[..12].to_vec();
        bad_label.extend_from_slice(&[0xc0, 0xff, 0, 1, 0, 1]); // pointer past the end
        vec![
            random,
            valid[..valid.len() / 2].to_vec(),
            valid[..valid.len() - 1].to_vec(),
            lying_header,
            bad_label,
            Vec::new(),
            id.to_be_bytes().to_vec(),
        ]
    })
    .await
}

#[tokio::test]
async fn malformed_replies_are_dropped_without_panic() {
    let (addr, task) = hostile_server().await;
    let c = client(0);
    let mut s = settings(&[addr]);
    s.query_timeout = Duration::from_millis(300);
    s.retries = 1;

    let result = c.query(&host("victim.example"), RecordType::A, &s).await;
    assert!(matches!(result, Err(DnsError::Timeout)), "{result:?}");
    // Two tries, seven hostile datagrams each.
    assert!(
        eventually(|| c.dropped_replies() >= 14).await,
        "dropped {}",
        c.dropped_replies()
    );
    let r = resolve_in(&c, "victim.example", &s).await;
    assert_eq!(r.status, ResolveStatus::Failed);
    task.abort();
}

/// An IPv6 server is reached over the lazily bound `[::]:0` sockets.
#[tokio::test]
async fn ipv6_servers_work() {
    let Ok(socket) = UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).await else {
        eprintln!("no IPv6 loopback here; skipping");
        return;
    };
    let addr = socket.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(query) = Message::from_vec(&buf[..n]) else {
                continue;
            };
            let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            reply.add_queries(query.queries.iter().cloned());
            for q in &query.queries {
                reply.add_answer(Record::from_rdata(q.name().clone(), 60, RData::A(A(v4(6)))));
            }
            let _ = socket
                .send_to(&reply.to_vec().expect("encodes"), peer)
                .await;
        }
    });
    let c = client(0);
    let s = settings(&[addr]);
    let addrs = tokio::time::timeout(
        GUARD,
        resolve_addresses(&c, &host("six.example"), &s, Duration::from_secs(2)),
    )
    .await
    .expect("resolves");
    assert_eq!(addrs, vec![IpAddr::V4(v4(6))]);
    task.abort();
}

#[tokio::test]
async fn many_names_load_and_answer() {
    let mut zone = Zone::new();
    for i in 0..5_000u32 {
        zone.a(
            &format!("h{i}.bulk.example"),
            Ipv4Addr::from(0x0a00_0000 + i),
        );
    }
    let server = start(zone).await;
    let c = client(0);
    let s = settings(&[server.addr()]);
    let answer = c
        .query(&host("h4999.bulk.example"), RecordType::A, &s)
        .await
        .expect("answer");
    assert_eq!(
        a_addresses(&answer),
        vec![Ipv4Addr::from(0x0a00_0000u32 + 4999)]
    );
}

/// Issue 11: a retry keeps its lookup's open-query slot. With one slot, a lookup
/// whose first datagram is lost retries at once, ahead of the lookup queued behind
/// it; before, the retry went to the back of the queue (here: behind one lookup; at
/// 16,384 tasks, behind thousands, past its caller's deadline).
#[tokio::test]
async fn a_retry_keeps_its_slot_instead_of_queueing_behind_newer_lookups() {
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    // Loses the first query for lost.example, answers every other one at once.
    let mut lost_one = false;
    let (addr, server) = udp_server(move |query| {
        let name = query.queries[0].name().to_ascii();
        let _ = seen_tx.send(name.clone());
        let lose = name == "lost.example." && !std::mem::replace(&mut lost_one, true);
        if lose {
            Vec::new()
        } else {
            vec![answer_a(query, v4(9))]
        }
    })
    .await;
    let c = Arc::new(client(0));
    let mut s = settings(&[addr]);
    s.max_inflight = 1;
    s.query_timeout = Duration::from_millis(300);
    s.retries = 1;
    let first = {
        let (c, s) = (Arc::clone(&c), s.clone());
        tokio::spawn(async move { c.query(&host("lost.example"), RecordType::A, &s).await })
    };
    let got = tokio::time::timeout(GUARD, seen_rx.recv())
        .await
        .expect("in time");
    assert_eq!(got.as_deref(), Some("lost.example."));
    // The slot is held by lost.example's first try: this lookup queues.
    let second = {
        let (c, s) = (Arc::clone(&c), s.clone());
        tokio::spawn(async move { c.query(&host("queued.example"), RecordType::A, &s).await })
    };
    for task in [first, second] {
        let answer = tokio::time::timeout(GUARD, task)
            .await
            .expect("in time")
            .expect("task")
            .expect("answered");
        assert_eq!(a_addresses(&answer), vec![v4(9)]);
    }
    let mut order = Vec::new();
    while let Ok(name) = seen_rx.try_recv() {
        order.push(name);
    }
    assert_eq!(
        order,
        ["lost.example.", "queued.example."],
        "the retry went first"
    );
    server.abort();
}

/// Issue 11, SPEC §3.7 "Under load": waiting for a free slot is not network time.
/// A host whose five queries wait 600 ms for the only slot still resolves under a
/// 300 ms phase deadline; before, it failed without a datagram sent.
#[tokio::test]
async fn a_slot_wait_does_not_count_against_the_phase_deadline() {
    let mut zone = Zone::new();
    zone.a("slow.example", v4(1))
        .behave("slow.example", Behaviour::Delay(Duration::from_millis(600)))
        .a("fast.example", v4(2));
    let server = start(zone).await;
    let c = Arc::new(client(0));
    let mut s = settings(&[server.addr()]);
    s.max_inflight = 1;
    s.query_timeout = Duration::from_secs(2);
    s.retries = 0;
    let holder = {
        let (c, s) = (Arc::clone(&c), s.clone());
        tokio::spawn(async move { c.query(&host("slow.example"), RecordType::A, &s).await })
    };
    assert!(
        eventually(|| server.query_count() >= 1).await,
        "the slow query holds the slot"
    );
    let r = resolve_within(&c, "fast.example", &s, Duration::from_millis(300)).await;
    assert_eq!(r.status, ResolveStatus::Resolved);
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(2))]);
    let slow = tokio::time::timeout(GUARD, holder)
        .await
        .expect("in time")
        .expect("task")
        .expect("the slow answer");
    assert_eq!(a_addresses(&slow), vec![v4(1)]);
}

/// Issue 11: a server slowed past `query_timeout` (by load, its own or this
/// client's) still resolves the name while the DNS phase lasts: the last try listens
/// until the caller's deadline. Before, the lookup gave up after its tries' timeouts
/// (here 0.6 s) with 4 s of the phase left, and the name failed.
#[tokio::test]
async fn a_slow_answer_within_the_phase_deadline_resolves_the_name() {
    let mut zone = Zone::new();
    zone.a("slow.example", v4(3)).behave(
        "slow.example",
        Behaviour::Delay(Duration::from_millis(1500)),
    );
    let server = start(zone).await;
    let c = client(0);
    let mut s = settings(&[server.addr()]);
    s.query_timeout = Duration::from_millis(300);
    s.retries = 1;
    let r = resolve_within(&c, "slow.example", &s, Duration::from_secs(5)).await;
    assert_eq!(r.status, ResolveStatus::Resolved);
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(3))]);
    // Without a deadline of its own, a query still ends after its tries.
    let alone = tokio::time::timeout(GUARD, c.query(&host("slow.example"), RecordType::AAAA, &s))
        .await
        .expect("within the guard");
    assert!(matches!(alone, Err(DnsError::Timeout)), "{alone:?}");
}

/// Issue 11: at 1 % loss each way, three tries lose a name once in ~125,000
/// lookups, about once per 10,000-domain crawl. While the DNS phase lasts, a lookup
/// whose configured tries all timed out tries again: a server that loses the first
/// three datagrams of a name still resolves it. Before, the name failed.
#[tokio::test]
async fn tries_go_on_past_retries_while_the_phase_deadline_allows() {
    // Loses the first three A queries, answers everything else.
    let mut lost = 0;
    let (addr, server) = udp_server(move |query| {
        if query.queries[0].query_type() == RecordType::A && lost < 3 {
            lost += 1;
            return Vec::new();
        }
        vec![answer_a(query, v4(4))]
    })
    .await;
    let c = client(0);
    let mut s = settings(&[addr]);
    s.query_timeout = Duration::from_millis(200);
    s.retries = 2;
    let r = resolve_within(&c, "lossy.example", &s, Duration::from_secs(5)).await;
    assert_eq!(r.status, ResolveStatus::Resolved);
    assert_eq!(r.addresses, vec![IpAddr::V4(v4(4))]);
    assert!(c.try_timeouts() >= 3, "{}", c.try_timeouts());
    server.abort();
}

/// On a loaded machine a reply can sit in the socket while the receive task waits
/// behind other tasks, and the try's timer fires first: the try must count as
/// answered, not timed out. One worker thread, blocked (as by a busy CPU) from just
/// before the reply arrives until well past the try's timeout; the timer's wake-up
/// then runs the lookup before the receive task. Before, the lookup failed with a
/// timeout although its answer had arrived in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn an_answer_waiting_in_the_socket_is_not_a_timeout() {
    let server = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    server.set_read_timeout(Some(GUARD)).expect("read timeout");
    let addr = server.local_addr().expect("addr");
    let (query_seen_tx, query_seen) = std::sync::mpsc::channel::<()>();
    let (blocked_tx, blocked) = std::sync::mpsc::channel::<()>();
    let answering = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        let Ok((n, peer)) = server.recv_from(&mut buf) else {
            return;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            return;
        };
        let _ = query_seen_tx.send(());
        // Answer only once the client's only worker is blocked.
        if blocked.recv_timeout(GUARD).is_ok() {
            let _ = server.send_to(&answer_a(&query, v4(9)), peer);
        }
    });
    let c = Arc::new(client(0));
    let mut s = settings(&[addr]);
    s.query_timeout = Duration::from_millis(100);
    s.retries = 0;
    let lookup = {
        let (c, s) = (Arc::clone(&c), s.clone());
        tokio::spawn(async move { c.query(&host("waiting.example"), RecordType::A, &s).await })
    };
    query_seen
        .recv_timeout(GUARD)
        .expect("the query reaches the server");
    tokio::spawn(async move {
        let _ = blocked_tx.send(());
        std::thread::sleep(Duration::from_millis(400));
    });
    let answer = tokio::time::timeout(GUARD, lookup)
        .await
        .expect("within the guard")
        .expect("lookup task");
    let answer = answer.expect("the answer that arrived within the try's timeout");
    assert_eq!(a_addresses(&answer), vec![v4(9)]);
    answering.join().expect("server thread");
}

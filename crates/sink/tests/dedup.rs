//! Dedup keys, the memory backend and step 11 of SPEC §1.

use std::net::IpAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use spyder_model::{EdgeType, Records};
use spyder_sink::{Dedup, DedupKey, KeyDigest, MemoryDedup, dedup_records, mark_crawled};

use crate::common::{CountingDedup, domain, domain_hosts, edge, host, ip};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("valid address")
}

/// Distinct, well-spread test digests without hashing a string per key.
fn synthetic_digest(i: u64) -> KeyDigest {
    let mut x = i.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    let mut d = [0u8; 16];
    d[..8].copy_from_slice(&x.to_le_bytes());
    d[8..].copy_from_slice(&i.to_le_bytes());
    d
}

#[test]
fn key_strings_are_the_originals() {
    let cases = [
        (DedupKey::NodeIp(addr("192.0.2.1")), "nodeip|192.0.2.1"),
        (
            DedupKey::NodeIp(addr("2001:db8:0:0:0:0:0:1")),
            "nodeip|2001:db8::1",
        ),
        (DedupKey::Domain("example.com"), "domain|example.com"),
        (DedupKey::Cert("q1w2e3=="), "cert|q1w2e3=="),
        (
            DedupKey::Edge {
                source: "a.example",
                kind: EdgeType::ResolvesTo,
                target: "192.0.2.1",
            },
            "edge|a.example|RESOLVES_TO|192.0.2.1",
        ),
        (
            DedupKey::Edge {
                source: "a.example",
                kind: EdgeType::AliasOf,
                target: "b.example",
            },
            "edge|a.example|ALIAS_OF|b.example",
        ),
        (DedupKey::Queued("example.com"), "queued|example.com"),
    ];
    for (key, expected) in cases {
        assert_eq!(key.to_string(), expected);
        let sha = Sha256::digest(expected.as_bytes());
        assert_eq!(key.digest(), sha[..16], "digest of {expected}");
    }
}

#[test]
fn digests_are_stable() {
    // Fixed values: stored keys (and the shared Redis sets) must survive upgrades.
    let cases = [
        (
            DedupKey::Domain("example.com"),
            "ddbba431211af1f6d60324a3e1bc66c7",
        ),
        (
            DedupKey::NodeIp(addr("2001:db8::1")),
            "edbe4edc17d29173999377def70b4272",
        ),
        (
            DedupKey::Edge {
                source: "a.example",
                kind: EdgeType::LinksTo,
                target: "b.example",
            },
            "a5e98d21ebfca67eb47dd4ece60f3275",
        ),
        (
            DedupKey::Queued("example.com"),
            "6cdc9dff9ee2f78d213caae595334da0",
        ),
        (DedupKey::Cert("abc="), "2f817b6cf2811f19dd008c48e94c7cf3"),
    ];
    for (key, expected) in cases {
        assert_eq!(hex(&key.digest()), expected, "{key}");
    }
}

#[tokio::test]
async fn check_and_mark_reports_seen_and_marks_new_keys() {
    let dedup = MemoryDedup::new(Duration::from_secs(3600), 1000);
    assert_eq!(dedup.backend(), "memory");
    let (a, b) = (synthetic_digest(1), synthetic_digest(2));
    assert_eq!(dedup.check_and_mark(&[a, b, a]).await, [false, false, true]);
    assert_eq!(dedup.check_and_mark(&[b, a]).await, [true, true]);
    assert_eq!(dedup.len(), 2);
    dedup.release(&[a]).await;
    assert_eq!(dedup.check_and_mark(&[a, b]).await, [false, true]);
}

#[tokio::test]
async fn generations_rotate_by_size() {
    // max_entries 10: each generation holds at most 5 keys.
    let dedup = MemoryDedup::new(Duration::from_secs(3600), 10);
    let first: Vec<KeyDigest> = (0..5).map(synthetic_digest).collect();
    let second: Vec<KeyDigest> = (5..10).map(synthetic_digest).collect();
    assert!(dedup.check_and_mark(&first).await.iter().all(|s| !s));
    // The 5th key filled the current generation: it became the previous one.
    assert_eq!(dedup.len(), 5);
    assert!(
        dedup.check_and_mark(&first).await.iter().all(|s| *s),
        "the previous generation still counts"
    );
    assert_eq!(dedup.evictions(), 0);
    assert!(dedup.check_and_mark(&second).await.iter().all(|s| !s));
    assert_eq!(dedup.evictions(), 5, "the first generation was dropped");
    assert_eq!(dedup.len(), 5);
    assert!(dedup.check_and_mark(&second).await.iter().all(|s| *s));
    assert_eq!(
        dedup.check_and_mark(&first[..1]).await,
        [false],
        "an evicted key is new again"
    );
}

#[tokio::test(start_paused = true)]
async fn generations_rotate_by_ttl() {
    let ttl = Duration::from_secs(60);
    let dedup = MemoryDedup::new(ttl, 1_000_000);
    let (old, young) = (synthetic_digest(1), synthetic_digest(2));
    assert_eq!(dedup.check_and_mark(&[old]).await, [false]);

    tokio::time::advance(Duration::from_secs(59)).await;
    assert_eq!(dedup.check_and_mark(&[old]).await, [true]);
    assert_eq!(dedup.evictions(), 0);

    // One ttl: rotation; `old` is in the previous generation, still seen.
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(dedup.check_and_mark(&[old, young]).await, [true, false]);

    // Another ttl: `old`'s generation is dropped; `young` survives one more.
    tokio::time::advance(ttl).await;
    assert_eq!(dedup.check_and_mark(&[young]).await, [true]);
    assert_eq!(dedup.evictions(), 1);
    assert_eq!(dedup.check_and_mark(&[old]).await, [false]);

    // Two ttls of silence forget everything.
    tokio::time::advance(ttl * 2).await;
    assert_eq!(dedup.check_and_mark(&[young, old]).await, [false, false]);
    assert_eq!(dedup.len(), 2);
}

#[tokio::test]
async fn three_million_keys_never_exceed_the_cap() {
    // B-22: 3M distinct keys through a store capped at 2M entries.
    const CAP: usize = 2_000_000;
    const KEYS: u64 = 3_000_000;
    const CHUNK: u64 = 20_000;
    let dedup = MemoryDedup::new(Duration::from_secs(86_400), CAP);
    let mut peak = 0;
    let mut start = 0;
    while start < KEYS {
        let keys: Vec<KeyDigest> = (start..start + CHUNK).map(synthetic_digest).collect();
        let seen = dedup.check_and_mark(&keys).await;
        assert!(seen.iter().all(|s| !s), "distinct keys are all new");
        peak = peak.max(dedup.len());
        assert!(dedup.len() <= CAP, "{} keys held", dedup.len());
        start += CHUNK;
    }
    assert!(peak > CAP / 2, "the store was actually filled ({peak})");
    // Every key is either held or counted as evicted.
    assert_eq!(dedup.len() as u64 + dedup.evictions(), KEYS);
}

fn records_of(domains: &[&str], ips: &[&str], edges: &[(&str, EdgeType, &str)]) -> Records {
    Records {
        nodes_domain: domains.iter().map(|d| domain(d)).collect(),
        nodes_ip: ips.iter().map(|a| ip(a)).collect(),
        nodes_cert: Vec::new(),
        edges: edges.iter().map(|(s, k, t)| edge(s, *k, t)).collect(),
        status: Vec::new(),
    }
}

#[tokio::test]
async fn the_crawled_hosts_own_node_is_always_kept() {
    // B-05: N valid inputs give N self NodeDomains, repeats included.
    let dedup = CountingDedup::new();
    let inputs = [
        "a.example",
        "b.example",
        "a.example",
        "c.example",
        "a.example",
    ];
    let mut self_nodes = 0;
    for name in inputs {
        let crawled = host(name);
        let records = records_of(
            &[name],
            &["192.0.2.1"],
            &[(name, EdgeType::ResolvesTo, "192.0.2.1")],
        );
        let out = dedup_records(&dedup, &crawled, records).await;
        self_nodes += out.nodes_domain.iter().filter(|n| n.host == name).count();
    }
    assert_eq!(self_nodes, inputs.len());
    // One dedup call per domain (B-21).
    assert_eq!(dedup.checks(), inputs.len());
}

#[tokio::test]
async fn a_crawled_host_later_linked_gets_no_second_node() {
    // B-09.
    let dedup = CountingDedup::new();
    let a = host("a.example");
    let out = dedup_records(&dedup, &a, records_of(&["a.example"], &[], &[])).await;
    assert_eq!(domain_hosts(&out), ["a.example"]);

    let b = host("b.example");
    let b_records = || {
        records_of(
            &["b.example", "a.example"],
            &[],
            &[("b.example", EdgeType::LinksTo, "a.example")],
        )
    };
    let out = dedup_records(&dedup, &b, b_records()).await;
    assert_eq!(domain_hosts(&out), ["b.example"]);
    assert_eq!(out.edges.len(), 1, "the new edge is kept");

    // Crawling b again: its own node again, the known edge not.
    let out = dedup_records(&dedup, &b, b_records()).await;
    assert_eq!(domain_hosts(&out), ["b.example"]);
    assert!(out.edges.is_empty());
    assert_eq!(dedup.checks(), 3);
}

#[tokio::test]
async fn shared_nodes_and_edges_are_emitted_once() {
    let dedup = CountingDedup::new();
    let one = records_of(
        &["one.example", "ns.dns.example"],
        &["192.0.2.7", "2001:db8::7"],
        &[
            ("one.example", EdgeType::ResolvesTo, "192.0.2.7"),
            ("one.example", EdgeType::ResolvesTo, "2001:db8::7"),
            ("one.example", EdgeType::UsesNs, "ns.dns.example"),
        ],
    );
    let out = dedup_records(&dedup, &host("one.example"), one).await;
    assert_eq!(out.node_count(), 4);
    assert_eq!(out.edges.len(), 3);

    let two = records_of(
        &["two.example", "ns.dns.example"],
        &["192.0.2.7"],
        &[
            ("two.example", EdgeType::ResolvesTo, "192.0.2.7"),
            ("two.example", EdgeType::UsesNs, "ns.dns.example"),
        ],
    );
    let out = dedup_records(&dedup, &host("two.example"), two).await;
    assert_eq!(domain_hosts(&out), ["two.example"]);
    assert!(
        out.nodes_ip.is_empty(),
        "the shared address was already emitted"
    );
    assert_eq!(out.edges.len(), 2, "edges from a new source are new");
}

#[tokio::test]
async fn crawled_hosts_are_marked_queued() {
    let dedup = CountingDedup::new();
    let crawled = host("crawled.example");
    let queued = DedupKey::Queued("crawled.example").digest();
    dedup_records(&dedup, &crawled, Records::default()).await;
    assert_eq!(dedup.inner.check_and_mark(&[queued]).await, [true]);

    let other = host("other.example");
    mark_crawled(&dedup, &other).await;
    let key = DedupKey::Queued("other.example").digest();
    assert_eq!(dedup.inner.check_and_mark(&[key]).await, [true]);
}

//! Batch serialisation cost (issue #6): one batch of 100 crawled domains' records in
//! each output format, encoded into a reused buffer as the emitter does.
//!
//! Per domain: 4 domain nodes (the host and three linked hosts), 2 IP nodes, 1
//! certificate node and 10 edges (2 RESOLVES_TO, 2 USES_NS, 1 USES_MX, 1 USES_CERT,
//! 1 ALIAS_OF, 3 LINKS_TO): 1,700 records per batch. Counters: output bytes and
//! records per second.
//!
//! ```sh
//! cargo bench -p spyder-emitter --bench serialise
//! ```

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use divan::counter::{BytesCount, ItemsCount};
use divan::{Bencher, black_box};
use spyder_emitter::Format;
use spyder_model::{
    Batch, Edge, EdgeType, HostName, NodeCert, NodeDomain, NodeIp, Records, Timestamp, VerifyError,
};

fn main() {
    divan::main();
}

/// Domains per batch.
const DOMAINS: u32 = 100;

const FORMATS: [Format; 3] = [Format::Json, Format::Jsonl, Format::Csv];

#[divan::bench(args = FORMATS)]
fn encode(bencher: Bencher, format: Format) {
    let batch = batch();
    let records = batch.nodes_domain.len()
        + batch.nodes_ip.len()
        + batch.nodes_cert.len()
        + batch.edges.len();
    let mut out = Vec::new();
    format
        .encode(&batch, true, &mut out)
        .expect("the batch encodes");
    let bytes = out.len();
    bencher
        .counter(BytesCount::new(bytes))
        .counter(ItemsCount::new(records))
        .bench_local(|| {
            out.clear();
            format
                .encode(black_box(&batch), true, &mut out)
                .expect("the batch encodes");
            out.len()
        });
}

/// A batch of `DOMAINS` crawls' records.
fn batch() -> Batch {
    let mut records = Records::default();
    for n in 0..DOMAINS {
        let mut crawl = crawl(n);
        records.append(&mut crawl);
    }
    Batch::seal("probe-eu-west-1a", "run-2025-11-21T08:00:00Z", records)
}

fn crawl(n: u32) -> Records {
    let now = Timestamp::now();
    let host = host_name(&format!("www.site{n}.example.com"));
    let linked = [
        format!("cdn{}.static-assets.net", n % 17),
        format!("blog.site{n}.example.org"),
        format!("partner{}.shop-network.co.uk", n % 29),
    ];
    let alias = format!("site{n}.edgekey-cdn.net");
    let v4 = IpAddr::V4(Ipv4Addr::from(0xCB00_7100 | (n & 0xff)));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x71, 0, 0, 0, 0, n as u16));
    let spki = format!("{:064x}", u128::from(n) * 0x9e37_79b9_7f4a_7c15);
    let domain = |name: &str| {
        let h = host_name(name);
        NodeDomain {
            apex: h.apex().to_owned(),
            host: h.into_string(),
            first_seen: now,
            last_seen: now,
        }
    };
    let edge = |kind, target: &str| Edge {
        kind,
        source: host.as_str().to_owned(),
        target: target.to_owned(),
        observed_at: now,
        probe_id: "probe-eu-west-1a".to_owned(),
        run_id: "run-2025-11-21T08:00:00Z".to_owned(),
    };
    let not_after = Timestamp::from_unix_seconds(1_790_000_000).expect("valid time");
    let not_before = Timestamp::from_unix_seconds(1_760_000_000).expect("valid time");
    Records {
        nodes_domain: std::iter::once(host.as_str())
            .chain(linked.iter().map(String::as_str))
            .map(domain)
            .collect(),
        nodes_ip: [v4, v6]
            .into_iter()
            .map(|ip| NodeIp {
                ip,
                first_seen: now,
                last_seen: now,
            })
            .collect(),
        nodes_cert: vec![NodeCert {
            spki_sha256: spki.clone(),
            subject_cn: host.as_str().to_owned(),
            issuer_cn: "R11, Let's Encrypt".to_owned(),
            not_before,
            not_after,
            sans: vec![
                host.as_str().to_owned(),
                format!("site{n}.example.com"),
                format!("*.site{n}.example.com"),
            ],
            fingerprint_sha256: format!("{:064x}", u128::from(n) * 0x2545_f491_4f6c_dd1d),
            verified: !n.is_multiple_of(10),
            verify_error: n.is_multiple_of(10).then_some(VerifyError::UnknownIssuer),
        }],
        edges: vec![
            edge(EdgeType::ResolvesTo, &v4.to_string()),
            edge(EdgeType::ResolvesTo, &v6.to_string()),
            edge(EdgeType::UsesNs, "ns1.dns-provider.net"),
            edge(EdgeType::UsesNs, "ns2.dns-provider.net"),
            edge(EdgeType::UsesMx, "aspmx.mail-host.com"),
            edge(EdgeType::UsesCert, &spki),
            edge(EdgeType::AliasOf, &alias),
            edge(EdgeType::LinksTo, &linked[0]),
            edge(EdgeType::LinksTo, &linked[1]),
            edge(EdgeType::LinksTo, &linked[2]),
        ],
        status: Vec::new(),
    }
}

fn host_name(name: &str) -> HostName {
    HostName::from_input(name).expect("benchmark hosts are valid")
}

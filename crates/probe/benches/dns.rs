//! DNS costs of one crawl (issue #6): hickory-proto messages as the probe's client
//! builds and reads them, and the client's round trip against the testkit DNS server.
//!
//! - `message::encode_query`: name parse, query with RD and EDNS0 (payload 1232),
//!   `to_vec`, as the client's transport does for each try.
//! - `message::decode_response`: `Message::from_vec` of a realistic reply per record
//!   type and the check that it answers the question asked.
//! - `client::query_uncached`: one `DnsClient::query` per iteration, each for a name
//!   not asked before, so it goes to the wire (UDP on loopback) and fills the cache.
//! - `client::query_cached`: the same name every time, answered from the cache.
//! - `client::resolve_uncached`: step 3 of a crawl for a new host: A, AAAA, NS, CNAME
//!   and MX concurrently.
//!
//! `message::*` uses the client's own `Question` (re-exported, hidden, for benchmarks).
//! `decode_response` includes building the `Question` it matches against.
//!
//! ```sh
//! cargo bench -p spyder-probe --bench dns
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use divan::counter::BytesCount;
use divan::{Bencher, black_box};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use spyder_probe::DnsSettings;
use spyder_probe::dns::{DnsClient, Question, resolve};
use spyder_probe::model::HostName;
use spyder_testkit::dns::{DnsServer, Zone};
use tokio::runtime::Runtime;

fn main() {
    divan::main();
}

/// EDNS0 UDP payload size the client advertises.
const EDNS_PAYLOAD: u16 = 1232;

/// The name asked in the message benchmarks.
const QNAME: &str = "www.herald-news.com";

mod message {
    use super::*;

    #[divan::bench]
    fn encode_query(bencher: Bencher) {
        bencher.bench(|| super::encode_query(black_box(QNAME), RecordType::A, black_box(0x4d2)));
    }

    #[divan::bench(args = [RecordType::A, RecordType::AAAA, RecordType::CNAME, RecordType::NS, RecordType::MX])]
    fn decode_response(bencher: Bencher, rtype: RecordType) {
        let bytes = response(rtype);
        bencher
            .counter(BytesCount::new(bytes.len()))
            .bench(|| decode_answer(black_box(&bytes), QNAME, rtype));
    }
}

mod client {
    use super::*;

    #[divan::bench]
    fn query_uncached(bencher: Bencher) {
        let world = World::start();
        let before = world.server.query_count();
        world.query(&world.fresh_name());
        assert_eq!(
            world.server.query_count(),
            before + 1,
            "a new name goes to the wire"
        );
        bencher
            .with_inputs(|| world.fresh_name())
            .bench_local_values(|name| world.query(&name));
    }

    #[divan::bench]
    fn query_cached(bencher: Bencher) {
        let world = World::start();
        let name = world.fresh_name();
        world.query(&name);
        let before = world.server.query_count();
        world.query(&name);
        assert_eq!(
            world.server.query_count(),
            before,
            "a repeated name is cached"
        );
        bencher.bench_local(|| world.query(black_box(&name)));
    }

    #[divan::bench]
    fn resolve_uncached(bencher: Bencher) {
        let world = World::start();
        bencher
            .with_inputs(|| world.fresh_name())
            .bench_local_values(|name| {
                let resolution = world.runtime.block_on(resolve(
                    &world.client,
                    &name,
                    &world.settings,
                    Duration::from_secs(5),
                ));
                assert!(!resolution.addresses.is_empty(), "{name} resolves");
                resolution
            });
    }
}

/// The client's query for `name` as query `id` (the probe's `Question::new` and
/// `Question::encode`).
fn encode_query(name: &str, rtype: RecordType, id: u16) -> Vec<u8> {
    Question::new(name, rtype)
        .and_then(|q| q.encode(id))
        .expect("a query encodes")
}

/// Decodes a reply and checks it answers `name`/`rtype`, as the probe's receive task
/// does; the answer records.
fn decode_answer(bytes: &[u8], name: &str, rtype: RecordType) -> Vec<Record> {
    let msg = Message::from_vec(bytes).expect("the reply decodes");
    let question = Question::new(name, rtype).expect("the benchmark name is valid");
    assert!(question.answered_by(&msg), "the reply answers the question");
    msg.answers
}

fn fqdn(name: &str) -> Name {
    let mut n = Name::from_ascii(name).expect("benchmark names are valid");
    n.set_fqdn(true);
    n
}

/// A resolver's reply for `QNAME`/`rtype`, shaped like a CDN-fronted site's: A and
/// AAAA follow a CNAME to the CDN edge.
fn response(rtype: RecordType) -> Vec<u8> {
    let owner = fqdn(QNAME);
    let edge = fqdn("herald-news.com.edgekey-cdn.net");
    let mut msg = Message::new(0x4d2, MessageType::Response, OpCode::Query);
    msg.metadata.recursion_desired = true;
    msg.metadata.recursion_available = true;
    let mut query = Query::query(owner.clone(), rtype);
    query.set_query_class(DNSClass::IN);
    msg.add_query(query);
    let cname = Record::from_rdata(owner.clone(), 300, RData::CNAME(CNAME(edge.clone())));
    let answers: Vec<Record> = match rtype {
        RecordType::A => std::iter::once(cname)
            .chain((1..=4).map(|i| {
                Record::from_rdata(edge.clone(), 20, RData::A(A(Ipv4Addr::new(203, 0, 113, i))))
            }))
            .collect(),
        RecordType::AAAA => std::iter::once(cname)
            .chain((1..=2).map(|i| {
                let ip = Ipv6Addr::new(0x2001, 0xdb8, 0x4d, 0, 0, 0, 0, i);
                Record::from_rdata(edge.clone(), 20, RData::AAAA(AAAA(ip)))
            }))
            .collect(),
        RecordType::CNAME => vec![cname],
        RecordType::NS => (1..=4)
            .map(|i| {
                let ns = fqdn(&format!("ns{i}.dns-provider.net"));
                Record::from_rdata(owner.clone(), 86_400, RData::NS(NS(ns)))
            })
            .collect(),
        RecordType::MX => [
            (1, "aspmx.mail-host.com"),
            (5, "alt1.aspmx.mail-host.com"),
            (10, "alt2.aspmx.mail-host.com"),
        ]
        .into_iter()
        .map(|(preference, exchange)| {
            Record::from_rdata(
                owner.clone(),
                3600,
                RData::MX(MX::new(preference, fqdn(exchange))),
            )
        })
        .collect(),
        other => panic!("no reply for {other}"),
    };
    msg.add_answers(answers);
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD).set_version(0);
    msg.set_edns(edns);
    msg.to_vec().expect("the reply encodes")
}

/// A runtime, a testkit DNS server serving `*.bench.example`, and a caching client.
struct World {
    runtime: Runtime,
    server: DnsServer,
    client: DnsClient,
    settings: DnsSettings,
    next_name: AtomicU64,
}

impl World {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        let mut zone = Zone::new();
        zone.cname("*.bench.example", "edge.cdn.example")
            .a("edge.cdn.example", Ipv4Addr::new(192, 0, 2, 10))
            .a("edge.cdn.example", Ipv4Addr::new(192, 0, 2, 11))
            .aaaa("edge.cdn.example", "2001:db8::10".parse().expect("v6"))
            .ns("bench.example", "ns1.dns-provider.example")
            .mx("bench.example", 10, "mx.mail-host.example");
        let (server, client) = runtime.block_on(async {
            let server = DnsServer::start(zone).await.expect("dns server starts");
            let client = DnsClient::new(4, 10_000).expect("client binds its sockets");
            (server, client)
        });
        let mut settings = DnsSettings::new(vec![server.addr()]);
        settings.query_timeout = Duration::from_secs(2);
        settings.retries = 2;
        settings.max_inflight = 256;
        Self {
            runtime,
            server,
            client,
            settings,
            next_name: AtomicU64::new(0),
        }
    }

    /// A name under the wildcard not asked before.
    fn fresh_name(&self) -> HostName {
        let n = self.next_name.fetch_add(1, Ordering::Relaxed);
        HostName::from_input(&format!("h{n}.bench.example")).expect("valid name")
    }

    /// One A query; the answer must hold the CNAME and the edge's addresses.
    fn query(&self, name: &HostName) -> usize {
        let answer = self
            .runtime
            .block_on(self.client.query(name, RecordType::A, &self.settings))
            .expect("the testkit server answers");
        assert_eq!(
            answer.records.len(),
            3,
            "CNAME and two A records for {name}"
        );
        answer.records.len()
    }
}

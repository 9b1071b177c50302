//! An authoritative DNS server on loopback, built on hickory-proto messages.
//!
//! [`DnsServer`] answers UDP and TCP on the same random port of `127.0.0.1` from a
//! [`Zone`] built in the test. It behaves like a recursive resolver sitting in front of
//! that data: CNAME chains are followed inside the zone, absent names get NXDOMAIN
//! and present names without the asked type get NODATA, both with an SOA in the
//! authority section. Per-name [`Behaviour`]s script failures (SERVFAIL, REFUSED,
//! silence, truncation, delays, spoofed replies) and [`ServerOptions`] model an
//! overloaded server.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use spyder_testkit::dns::{Behaviour, DnsServer, Zone};
//! let mut zone = Zone::new();
//! zone.a("shop.example", "127.0.0.1".parse().unwrap())
//!     .cname("www.shop.example", "shop.example")
//!     .behave("broken.example", Behaviour::ServFail);
//! let server = DnsServer::start(zone).await?;
//! println!("resolver at {}", server.addr());
//! # Ok(()) }
//! ```

mod zone;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

pub use zone::Zone;
use zone::{Index, key, name_key};

/// TTL of records added without [`Zone::ttl`].
pub const DEFAULT_TTL: u32 = 300;
/// SOA `minimum` (negative-caching TTL) unless [`Zone::negative_ttl`] sets another.
pub const DEFAULT_NEGATIVE_TTL: u32 = 60;
/// Socket buffers of the server's UDP socket (capped by `net.core.rmem_max`).
const UDP_BUFFER: usize = 8 << 20;
/// UDP payload a client without EDNS may receive.
const CLASSIC_UDP_PAYLOAD: usize = 512;

/// How the server treats every query for one name (the question name, not names
/// reached through a CNAME).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer `SERVFAIL`.
    ServFail,
    /// Answer `REFUSED`.
    Refused,
    /// Never answer.
    Drop,
    /// Over UDP: `TC=1` and an empty answer; over TCP: the full answer.
    Truncate,
    /// Answer normally after this extra delay.
    Delay(Duration),
    /// Before the real answer, send (over UDP) a reply with the right ID but another
    /// question, a reply with a wrong ID, and a right-ID right-question reply from a
    /// different source port. All three carry the address `6.6.6.6`. Over TCP the first
    /// two precede the real answer on the same connection.
    Spoof,
    /// Answer with bytes that are not a DNS message (the query's ID and then garbage).
    Garbage,
}

/// Knobs that make the server behave like a loaded resolver.
#[derive(Clone, Debug, Default)]
pub struct ServerOptions {
    /// Queries being answered at once; excess UDP queries are dropped, excess TCP
    /// queries wait.
    pub max_concurrent: Option<usize>,
    /// Processing delay added to every query (holds a `max_concurrent` slot).
    pub delay: Option<Duration>,
    /// Network conditions between client and server: round trip, jitter, loss.
    pub network: NetworkConditions,
}

/// What the path between the probe and the server adds: a round trip to every
/// exchange, uniform jitter on top, and (over UDP only: TCP retransmits) a seeded
/// share of queries lost before the server sees them and of answers lost on the
/// way back. The answers themselves never change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NetworkConditions {
    /// Added to every answer (the whole round trip, applied once, outside any
    /// `max_concurrent` slot).
    pub rtt: Duration,
    /// Up to this much more, drawn uniformly per answer.
    pub jitter: Duration,
    /// Share of UDP queries dropped before they are answered (0.0–1.0).
    pub query_loss: f64,
    /// Share of UDP answers dropped after they are computed (0.0–1.0).
    pub answer_loss: f64,
    /// Seed of the loss and jitter draws (same seed, same sequence of draws).
    pub seed: u64,
}

/// Counters shared by the server's tasks.
#[derive(Debug, Default)]
struct Stats {
    queries: AtomicU64,
    udp: AtomicU64,
    tcp: AtomicU64,
    overload_dropped: AtomicU64,
    lost_queries: AtomicU64,
    lost_answers: AtomicU64,
    per_question: Mutex<HashMap<(String, RecordType), u64>>,
}

/// State shared by the server's tasks.
#[derive(Debug)]
struct Shared {
    index: Index,
    stats: Stats,
    opts: ServerOptions,
    limit: Option<Arc<Semaphore>>,
    /// Draws for loss and jitter, seeded by [`NetworkConditions::seed`].
    rng: Mutex<StdRng>,
    /// A second socket, the source of off-port spoofed replies.
    spoofer: UdpSocket,
}

/// Which transport a query came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    Udp,
    Tcp,
}

/// What to send back for one received message.
#[derive(Default)]
struct Plan {
    delay: Duration,
    /// Sent before the reply on the same socket or connection.
    decoys: Vec<Vec<u8>>,
    /// Sent over UDP from the spoofer socket before the reply.
    off_port: Option<Vec<u8>>,
    reply: Option<Vec<u8>>,
}

impl Shared {
    /// One exchange's fate on the path: query lost, answer lost (UDP only), and the
    /// round trip plus jitter it takes.
    fn path(&self, transport: Transport) -> (bool, bool, Duration) {
        let net = &self.opts.network;
        let mut rng = self.rng.lock().unwrap_or_else(PoisonError::into_inner);
        let udp = transport == Transport::Udp;
        let lose_query = udp && net.query_loss > 0.0 && rng.random_bool(net.query_loss.min(1.0));
        let lose_answer = udp && net.answer_loss > 0.0 && rng.random_bool(net.answer_loss.min(1.0));
        let jitter = if net.jitter.is_zero() {
            Duration::ZERO
        } else {
            net.jitter.mul_f64(rng.random::<f64>())
        };
        (lose_query, lose_answer, net.rtt.saturating_add(jitter))
    }

    /// Counts one received message and decides the answer.
    fn plan(&self, bytes: &[u8], transport: Transport) -> Plan {
        self.stats.queries.fetch_add(1, Ordering::Relaxed);
        match transport {
            Transport::Udp => self.stats.udp.fetch_add(1, Ordering::Relaxed),
            Transport::Tcp => self.stats.tcp.fetch_add(1, Ordering::Relaxed),
        };
        let mut plan = Plan {
            delay: self.opts.delay.unwrap_or_default(),
            ..Plan::default()
        };
        let query = match Message::from_vec(bytes) {
            Ok(q) => q,
            Err(_) => {
                plan.reply = formerr(bytes);
                return plan;
            }
        };
        if query.metadata.message_type != MessageType::Query {
            return plan; // never answer a response: no reflection loops
        }
        if query.metadata.op_code != OpCode::Query || query.queries.len() != 1 {
            let code = if query.metadata.op_code == OpCode::Query {
                ResponseCode::FormErr
            } else {
                ResponseCode::NotImp
            };
            let mut m = response_to(&query);
            m.metadata.response_code = code;
            plan.reply = m.to_vec().ok();
            return plan;
        }
        let q = &query.queries[0];
        let qkey = name_key(q.name());
        {
            let mut per = self
                .stats
                .per_question
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *per.entry((qkey.clone(), q.query_type())).or_default() += 1;
        }
        let behaviour = self.index.behaviour(&qkey).cloned();
        let mut m = response_to(&query);
        match behaviour {
            Some(Behaviour::Drop) => return plan,
            Some(Behaviour::ServFail) => m.metadata.response_code = ResponseCode::ServFail,
            Some(Behaviour::Refused) => m.metadata.response_code = ResponseCode::Refused,
            Some(Behaviour::Garbage) => {
                let mut g = bytes.get(..2).map(<[u8]>::to_vec).unwrap_or_default();
                g.extend_from_slice(&[0x81, 0x80, 0xff, 0xff, 0xde, 0xad, 0xbe, 0xef]);
                plan.reply = Some(g);
                return plan;
            }
            Some(Behaviour::Truncate) if transport == Transport::Udp => {
                m.metadata.truncation = true;
            }
            other => {
                if let Some(Behaviour::Delay(d)) = other {
                    plan.delay += d;
                }
                if other == Some(Behaviour::Spoof) {
                    plan.decoys = spoofs(&m, q, transport);
                    if transport == Transport::Udp {
                        plan.off_port = spoof_answer(&m, q).to_vec().ok();
                    }
                }
                let r = self.index.resolve(q.name(), q.query_type());
                m.metadata.response_code = r.rcode;
                m.answers = r.answers;
                m.authorities = r.authorities;
            }
        }
        let mut bytes = m.to_vec().ok();
        if transport == Transport::Udp {
            let limit = query
                .edns
                .as_ref()
                .map_or(CLASSIC_UDP_PAYLOAD, |e| usize::from(e.max_payload()))
                .max(CLASSIC_UDP_PAYLOAD);
            if bytes.as_ref().is_some_and(|b| b.len() > limit) {
                bytes = m.truncate().to_vec().ok();
            }
        }
        plan.reply = bytes;
        plan
    }
}

/// An empty response echoing the query's ID, flags, question and EDNS.
fn response_to(query: &Message) -> Message {
    let mut m = Message::response(query.metadata.id, query.metadata.op_code);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.add_queries(query.queries.iter().cloned());
    if let Some(edns) = &query.edns {
        let mut e = Edns::new();
        e.set_max_payload(edns.max_payload().max(512));
        e.set_version(0);
        m.set_edns(e);
    }
    m
}

/// FORMERR for an undecodable query, when it is long enough to be one.
fn formerr(bytes: &[u8]) -> Option<Vec<u8>> {
    let header = bytes.get(..12)?;
    if header[2] & 0x80 != 0 {
        return None; // QR set: not a query
    }
    let mut out = header.to_vec();
    out[2] = 0x80 | (header[2] & 0x79); // QR, opcode, RD
    out[3] = 0x80 | ResponseCode::FormErr.low();
    out[4..12].fill(0);
    Some(out)
}

/// The record spoofed replies carry.
fn spoof_answer(m: &Message, q: &Query) -> Message {
    let mut s = m.clone();
    s.answers = vec![Record::from_rdata(
        q.name().clone(),
        DEFAULT_TTL,
        RData::A(A(Ipv4Addr::new(6, 6, 6, 6))),
    )];
    s
}

/// A right-ID wrong-question reply and a wrong-ID right-question reply.
fn spoofs(m: &Message, q: &Query, _transport: Transport) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut wrong_question = spoof_answer(m, q);
    if let Ok(other) = q.name().prepend_label("spoof") {
        let mut oq = q.clone();
        oq.set_name(other.clone());
        wrong_question.queries = vec![oq];
        for r in &mut wrong_question.answers {
            r.name = other.clone();
        }
        out.extend(wrong_question.to_vec().ok());
    }
    let mut wrong_id = spoof_answer(m, q);
    wrong_id.metadata.id = m.metadata.id ^ 0x5a5a;
    out.extend(wrong_id.to_vec().ok());
    out
}

/// An authoritative DNS server on `127.0.0.1`, UDP and TCP on one port. Shuts down
/// when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .field("names", &self.shared.index.nodes.len())
            .field("queries", &self.query_count())
            .finish_non_exhaustive()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl DnsServer {
    /// Starts serving `zone` with default options.
    pub async fn start(zone: Zone) -> std::io::Result<Self> {
        Self::start_with(zone, ServerOptions::default()).await
    }

    /// Starts serving `zone` with `opts`.
    pub async fn start_with(zone: Zone, opts: ServerOptions) -> std::io::Result<Self> {
        let (udp, tcp) = bind_pair().await?;
        // A resolver's buffers: bursts of thousands of queries are not dropped by
        // the kernel before the server sees them (the loss knobs decide loss).
        let sock = socket2::SockRef::from(&udp);
        let _ = sock.set_recv_buffer_size(UDP_BUFFER);
        let _ = sock.set_send_buffer_size(UDP_BUFFER);
        let addr = udp.local_addr()?;
        let spoofer = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let shared = Arc::new(Shared {
            index: Index::new(zone),
            stats: Stats::default(),
            limit: opts
                .max_concurrent
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            rng: Mutex::new(StdRng::seed_from_u64(opts.network.seed)),
            opts,
            spoofer,
        });
        let udp = Arc::new(udp);
        let tasks = vec![
            tokio::spawn(serve_udp(udp, Arc::clone(&shared))),
            tokio::spawn(serve_tcp(tcp, Arc::clone(&shared))),
        ];
        Ok(Self {
            addr,
            shared,
            tasks,
        })
    }

    /// The address to send queries to (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// All messages received, UDP and TCP, malformed ones included.
    pub fn query_count(&self) -> u64 {
        self.shared.stats.queries.load(Ordering::Relaxed)
    }

    /// Messages received over UDP.
    pub fn udp_query_count(&self) -> u64 {
        self.shared.stats.udp.load(Ordering::Relaxed)
    }

    /// Messages received over TCP.
    pub fn tcp_query_count(&self) -> u64 {
        self.shared.stats.tcp.load(Ordering::Relaxed)
    }

    /// UDP queries dropped because `max_concurrent` were being answered.
    pub fn overload_dropped(&self) -> u64 {
        self.shared.stats.overload_dropped.load(Ordering::Relaxed)
    }

    /// UDP queries the network conditions dropped before the server saw them.
    pub fn lost_queries(&self) -> u64 {
        self.shared.stats.lost_queries.load(Ordering::Relaxed)
    }

    /// UDP answers the network conditions dropped on the way back.
    pub fn lost_answers(&self) -> u64 {
        self.shared.stats.lost_answers.load(Ordering::Relaxed)
    }

    /// Decodable queries for `name` (case-insensitive, dot optional) and `rtype`.
    pub fn queries_for(&self, name: &str, rtype: RecordType) -> u64 {
        self.shared
            .stats
            .per_question
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(key(name), rtype))
            .copied()
            .unwrap_or(0)
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1.
async fn bind_pair() -> std::io::Result<(UdpSocket, TcpListener)> {
    let mut last = None;
    for _ in 0..32 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = udp.local_addr()?;
        match TcpListener::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port pair")))
}

async fn serve_udp(socket: Arc<UdpSocket>, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "testkit dns: udp receive failed");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let (lose_query, lose_answer, transit) = shared.path(Transport::Udp);
        if lose_query {
            shared.stats.queries.fetch_add(1, Ordering::Relaxed);
            shared.stats.udp.fetch_add(1, Ordering::Relaxed);
            shared.stats.lost_queries.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let permit = match &shared.limit {
            None => None,
            Some(sem) => match Arc::clone(sem).try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    shared.stats.queries.fetch_add(1, Ordering::Relaxed);
                    shared.stats.udp.fetch_add(1, Ordering::Relaxed);
                    shared
                        .stats
                        .overload_dropped
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            },
        };
        let plan = shared.plan(&buf[..len], Transport::Udp);
        let socket = Arc::clone(&socket);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if !plan.delay.is_zero() {
                tokio::time::sleep(plan.delay).await;
            }
            // Free the slot before replying, so a client that waits for the reply
            // before sending its next query never finds the server full.
            drop(permit);
            if !transit.is_zero() {
                tokio::time::sleep(transit).await;
            }
            if lose_answer {
                shared.stats.lost_answers.fetch_add(1, Ordering::Relaxed);
                return;
            }
            for d in &plan.decoys {
                let _ = socket.send_to(d, peer).await;
            }
            if let Some(o) = &plan.off_port {
                let _ = shared.spoofer.send_to(o, peer).await;
            }
            if let Some(r) = &plan.reply {
                let _ = socket.send_to(r, peer).await;
            }
        });
    }
}

async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_conn(stream, Arc::clone(&shared)));
            }
            Err(e) => {
                tracing::debug!(error = %e, "testkit dns: tcp accept failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn serve_conn(mut stream: TcpStream, shared: Arc<Shared>) {
    loop {
        let len = match stream.read_u16().await {
            Ok(n) => usize::from(n),
            Err(_) => return,
        };
        let mut buf = vec![0u8; len];
        if stream.read_exact(&mut buf).await.is_err() {
            return;
        }
        let permit = match &shared.limit {
            None => None,
            Some(sem) => match Arc::clone(sem).acquire_owned().await {
                Ok(p) => Some(p),
                Err(_) => return,
            },
        };
        let plan = shared.plan(&buf, Transport::Tcp);
        if !plan.delay.is_zero() {
            tokio::time::sleep(plan.delay).await;
        }
        drop(permit);
        let (_, _, transit) = shared.path(Transport::Tcp);
        if !transit.is_zero() {
            tokio::time::sleep(transit).await;
        }
        for msg in plan.decoys.iter().chain(plan.reply.iter()) {
            let Ok(n) = u16::try_from(msg.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(msg.len() + 2);
            framed.extend_from_slice(&n.to_be_bytes());
            framed.extend_from_slice(msg);
            if stream.write_all(&framed).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::zone::{Resolved, fqdn};
    use super::*;
    use hickory_proto::rr::Name;

    fn ask(index: &Index, name: &str, t: RecordType) -> Resolved {
        index.resolve(&fqdn(name).unwrap(), t)
    }

    fn sample() -> Index {
        let mut z = Zone::new();
        z.a("Example.COM.", Ipv4Addr::new(192, 0, 2, 1))
            .cname("www.example.com", "example.com")
            .cname("a.example.com", "b.example.com")
            .cname("b.example.com", "a.example.com")
            .cname("dangling.example.com", "nowhere.example.net")
            .a("*.wild.example.com", Ipv4Addr::new(192, 0, 2, 9))
            .a("x.deep.example.com", Ipv4Addr::new(192, 0, 2, 3))
            .null_mx("example.com");
        Index::new(z)
    }

    #[test]
    fn answers_follow_the_zone() {
        let idx = sample();
        let r = ask(&idx, "WWW.example.com", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 2);
        assert_eq!(r.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(r.answers[1].data, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))));

        let r = ask(&idx, "a.example.com", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NoError);
        assert_eq!(r.answers.len(), 2, "loop: both CNAMEs, then stop");

        let r = ask(&idx, "dangling.example.com", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.authorities.len(), 1);

        let r = ask(&idx, "q.wild.example.com", RecordType::A);
        assert_eq!(r.answers.len(), 1);
        assert_eq!(name_key(&r.answers[0].name), "q.wild.example.com");

        let r = ask(&idx, "deep.example.com", RecordType::A);
        assert_eq!((r.rcode, r.answers.len()), (ResponseCode::NoError, 0));
        let r = ask(&idx, "example.com", RecordType::AAAA);
        assert_eq!((r.rcode, r.answers.len()), (ResponseCode::NoError, 0));
        assert_eq!(r.authorities.len(), 1);
        let r = ask(&idx, "missing.example.com", RecordType::A);
        assert_eq!(r.rcode, ResponseCode::NXDomain);
        let RData::SOA(soa) = &r.authorities[0].data else {
            panic!("SOA expected");
        };
        assert_eq!(soa.minimum, DEFAULT_NEGATIVE_TTL);

        let r = ask(&idx, "example.com", RecordType::MX);
        let RData::MX(mx) = &r.answers[0].data else {
            panic!("MX expected");
        };
        assert!(mx.exchange.is_root());
    }

    #[tokio::test]
    async fn malformed_queries_get_formerr_or_nothing() {
        let idx = sample();
        let shared = Shared {
            index: idx,
            stats: Stats::default(),
            opts: ServerOptions::default(),
            limit: None,
            rng: Mutex::new(StdRng::seed_from_u64(0)),
            spoofer: UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap(),
        };
        assert!(shared.plan(&[], Transport::Udp).reply.is_none());
        assert!(shared.plan(&[1, 2, 3], Transport::Udp).reply.is_none());
        let junk = [0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xde];
        let reply = shared.plan(&junk, Transport::Udp).reply.unwrap();
        let m = Message::from_vec(&reply).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
        assert_eq!(shared.stats.queries.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn thousands_of_names_load() {
        let mut z = Zone::new();
        for i in 0..5_000u32 {
            z.a(&format!("host{i}.example"), Ipv4Addr::from(i));
        }
        let idx = Index::new(z);
        let r = ask(&idx, "host4999.example", RecordType::A);
        assert_eq!(r.answers.len(), 1);
    }

    /// Loss is seeded and counted: of 400 queries with 10 % query and 10 % answer
    /// loss, exactly the uncounted ones are answered, and the same seed loses the
    /// same count again. Every answer that arrives took at least the round trip.
    #[tokio::test]
    async fn network_conditions_lose_and_delay_as_configured() {
        async fn run(seed: u64) -> (u64, u64, u64) {
            let mut zone = Zone::new();
            zone.a("example.com", Ipv4Addr::new(192, 0, 2, 1));
            let network = NetworkConditions {
                rtt: Duration::from_millis(20),
                jitter: Duration::from_millis(5),
                query_loss: 0.1,
                answer_loss: 0.1,
                seed,
            };
            let opts = ServerOptions {
                network,
                ..ServerOptions::default()
            };
            let server = DnsServer::start_with(zone, opts).await.unwrap();
            let client = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
            let mut q = Message::new(0, MessageType::Query, OpCode::Query);
            q.add_query(Query::query(
                Name::from_ascii("example.com.").unwrap(),
                RecordType::A,
            ));
            let started = tokio::time::Instant::now();
            for id in 0..400u16 {
                q.metadata.id = id;
                client
                    .send_to(&q.to_vec().unwrap(), server.addr())
                    .await
                    .unwrap();
            }
            let mut answered = 0u64;
            let mut buf = [0u8; 512];
            let expected = |s: &DnsServer| 400 - s.lost_queries() - s.lost_answers();
            while answered < expected(&server) {
                let got =
                    tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf)).await;
                assert!(
                    got.is_ok(),
                    "answer missing: {answered} of {}",
                    expected(&server)
                );
                answered += 1;
            }
            assert!(started.elapsed() >= Duration::from_millis(20));
            (answered, server.lost_queries(), server.lost_answers())
        }
        let (answered, lost_q, lost_a) = run(7).await;
        assert_eq!(answered + lost_q + lost_a, 400);
        assert!((10..=70).contains(&lost_q), "query loss {lost_q} of 400");
        assert!((10..=70).contains(&lost_a), "answer loss {lost_a} of 400");
        assert_eq!(
            run(7).await,
            (answered, lost_q, lost_a),
            "same seed, same loss"
        );
    }
}

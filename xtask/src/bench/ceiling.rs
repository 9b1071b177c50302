//! The world's ceiling: how fast its servers go with clients that do nothing else.
//!
//! Three phases of [`PHASE`] each, run in this process (pinned like spyder) against
//! the same world process, after the spyder run:
//!
//! - **DNS:** one UDP socket keeps [`DNS_IN_FLIGHT`] A queries for the world's names
//!   in flight (encoded once with hickory-proto, only the ID patched per send); every
//!   reply with a live ID frees its slot for the next query. Silence for
//!   [`DNS_RESEND_AFTER`] resends the whole window (counted as lost).
//! - **TLS handshakes:** [`TLS_IN_FLIGHT`] tasks, each in a loop: TCP connect to a
//!   world HTTPS site, full TLS handshake (SNI = the site's name, no resumption), then
//!   `close_notify` and wait for the server to close.
//! - **Site visits:** the same, plus `GET /robots.txt` and then `GET /` on the one
//!   kept-alive HTTP/1.1 connection, both responses read fully.
//!
//! The TLS client accepts any certificate (handshake signatures are still checked),
//! as spyder's own handshake does (it judges trust after the handshake), so expired
//! and self-signed sites count too.
//!
//! Each phase also reads the CPU of the world, of this process (the client) and of
//! the whole machine before and after. A world busy well under one core was held
//! back by the client (on a 2-core machine the client's own TLS work usually is the
//! limit), so the rate is what a minimal client on spyder's cores reaches, not the
//! world's own limit; operations per world CPU second estimate the latter. CPU used
//! by neither (other processes) marks a noisy phase.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;

use super::Result;
use super::http1;
use super::meter::CpuMark;
use super::world::{Hello, WorldProcess};

/// Length of each phase.
const PHASE: Duration = Duration::from_secs(3);
/// How long a phase may overrun [`PHASE`] while its last operations finish.
const PHASE_GRACE: Duration = Duration::from_secs(10);
/// Bound on one connection's work (connect, handshake, requests, close).
const CONNECTION_LIMIT: Duration = Duration::from_secs(5);
/// DNS queries in flight (a power of two: the low bits of the ID name the slot).
const DNS_IN_FLIGHT: usize = 64;
/// Silence after which every outstanding DNS query is sent again.
const DNS_RESEND_AFTER: Duration = Duration::from_millis(200);
/// Concurrent handshake or visit loops.
pub(super) const TLS_IN_FLIGHT: usize = 32;

const _: () = assert!(DNS_IN_FLIGHT.is_power_of_two() && DNS_IN_FLIGHT <= 1 << 12);

/// What one phase did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Phase {
    /// Operations completed (answers, handshakes or visits).
    pub(super) completed: u64,
    /// Operations that failed or were resent.
    pub(super) failed: u64,
    /// The first failure, for the report.
    pub(super) first_error: Option<String>,
    /// Operations kept in flight.
    pub(super) in_flight: usize,
    /// Wall time of the phase.
    pub(super) seconds: f64,
    /// The world's CPU over the phase.
    pub(super) world_cpu_s: f64,
    /// What the world counted over the phase (DNS messages or handshakes).
    pub(super) world_counted: u64,
    /// This process's CPU (the client) over the phase.
    pub(super) client_cpu_s: f64,
    /// The whole machine's busy CPU over the phase.
    pub(super) machine_cpu_s: f64,
}

impl Phase {
    /// Completed operations per second.
    pub(super) fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.completed as f64 / self.seconds
        } else {
            0.0
        }
    }

    /// The world's CPU as a share of one core over the phase.
    pub(super) fn world_busy(&self) -> f64 {
        self.share(self.world_cpu_s)
    }

    /// The client's CPU as a share of one core over the phase.
    pub(super) fn client_busy(&self) -> f64 {
        self.share(self.client_cpu_s)
    }

    /// CPU used by neither client nor world (other processes, interrupts), in cores.
    pub(super) fn others_busy(&self) -> f64 {
        self.share((self.machine_cpu_s - self.client_cpu_s - self.world_cpu_s).max(0.0))
    }

    /// Operations per second of world CPU: the rate the world would reach with its
    /// core to itself, if its cost per operation stayed the same.
    pub(super) fn per_world_cpu_second(&self) -> f64 {
        if self.world_cpu_s > 0.0 {
            self.completed as f64 / self.world_cpu_s
        } else {
            0.0
        }
    }

    fn share(&self, cpu_s: f64) -> f64 {
        if self.seconds > 0.0 {
            cpu_s / self.seconds
        } else {
            0.0
        }
    }
}

/// The three phases.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Ceiling {
    pub(super) dns: Phase,
    pub(super) handshakes: Phase,
    pub(super) visits: Phase,
}

/// Domains per second the world can serve when each domain costs `dns_per_domain`
/// DNS queries and `visits_per_domain` site visits, from the rates each kind of work
/// reaches alone: the world runs on one core, so the time per domain is the sum of
/// the time its queries take and the time its visits take. `None` when a rate is
/// missing or the domain costs nothing.
pub(super) fn combined_domains_per_second(
    dns_per_domain: f64,
    dns_per_second: f64,
    visits_per_domain: f64,
    visits_per_second: f64,
) -> Option<f64> {
    if dns_per_second <= 0.0 || visits_per_second <= 0.0 {
        return None;
    }
    let seconds_per_domain =
        dns_per_domain / dns_per_second + visits_per_domain / visits_per_second;
    (seconds_per_domain > 0.0).then(|| 1.0 / seconds_per_domain)
}

/// Runs the three phases against `world`.
pub(super) async fn measure(
    world: &mut WorldProcess,
    hello: &Hello,
    names: &[String],
    https_sites: &[(String, Ipv4Addr)],
) -> Result<Ceiling> {
    if names.is_empty() || https_sites.is_empty() {
        return Err("the world has no names or no HTTPS sites to measure".into());
    }
    let queries = encode_queries(names)?;
    let dns = phase(world, |w| w.dns_queries, dns_load(hello.dns, queries)).await?;
    progress("DNS", "queries", &dns);
    let sites = Arc::new(https_sites.to_vec());
    let handshakes = phase(
        world,
        |w| w.handshakes,
        tls_load(Arc::clone(&sites), hello.https_port, Work::Handshake),
    )
    .await?;
    progress("TLS", "handshakes", &handshakes);
    let visits = phase(
        world,
        |w| w.handshakes,
        tls_load(sites, hello.https_port, Work::Visit),
    )
    .await?;
    progress("visits", "visits", &visits);
    Ok(Ceiling {
        dns,
        handshakes,
        visits,
    })
}

/// One line on stderr per finished phase.
fn progress(label: &str, unit: &str, phase: &Phase) {
    eprintln!(
        "xtask bench: ceiling {label}: {:.0} {unit}/s (world busy {:.0}%, client {:.0}%, others {:.0}% of a core)",
        phase.per_second(),
        phase.world_busy() * 100.0,
        phase.client_busy() * 100.0,
        phase.others_busy() * 100.0
    );
}

/// Runs `load` between two readings of the world's stats.
async fn phase(
    world: &mut WorldProcess,
    counter: fn(&super::world::WorldStats) -> u64,
    load: impl Future<Output = Result<Phase>>,
) -> Result<Phase> {
    let before = world.stats().await?;
    let mark = CpuMark::now()?;
    let mut phase = tokio::time::timeout(PHASE + PHASE_GRACE, load)
        .await
        .map_err(|_| format!("a ceiling phase overran {:?}", PHASE + PHASE_GRACE))??;
    let spent = mark.spent()?;
    let delta = world.stats().await?.since(&before);
    phase.world_cpu_s = delta.cpu_s;
    phase.world_counted = counter(&delta);
    phase.client_cpu_s = spent.own_s;
    phase.machine_cpu_s = spent.machine_s;
    Ok(phase)
}

/// An A query per name, ID 0, recursion desired.
fn encode_queries(names: &[String]) -> Result<Vec<Vec<u8>>> {
    names
        .iter()
        .map(|name| {
            let qname = Name::from_ascii(format!("{name}."))
                .map_err(|e| format!("world name {name:?}: {e}"))?;
            let mut message = Message::new(0, MessageType::Query, OpCode::Query);
            message.metadata.recursion_desired = true;
            message.add_query(Query::query(qname, RecordType::A));
            message
                .to_vec()
                .map_err(|e| format!("cannot encode a query for {name}: {e}"))
        })
        .collect()
}

/// The DNS phase: see the module doc.
async fn dns_load(server: SocketAddr, queries: Vec<Vec<u8>>) -> Result<Phase> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| format!("dns client socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("dns client connect: {e}"))?;
    let mut client = DnsClient {
        socket,
        queries,
        next_query: 0,
        generation: [0; DNS_IN_FLIGHT],
        outstanding: [None; DNS_IN_FLIGHT],
    };
    let mut phase = Phase {
        in_flight: DNS_IN_FLIGHT,
        ..Phase::default()
    };
    let started = Instant::now();
    let deadline = started + PHASE;
    for slot in 0..DNS_IN_FLIGHT {
        client.send(slot).await?;
    }
    let mut reply = vec![0u8; 65_535];
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let wait = DNS_RESEND_AFTER.min(deadline - now);
        match tokio::time::timeout(wait, client.socket.recv(&mut reply)).await {
            Ok(Ok(len)) => {
                let Some((slot, rcode)) = client.accept(&reply[..len]) else {
                    continue; // late, duplicate or not a response
                };
                // The world's names all exist: anything but NOERROR is a failure.
                if rcode == 0 {
                    phase.completed += 1;
                } else {
                    phase.failed += 1;
                    phase
                        .first_error
                        .get_or_insert_with(|| format!("rcode {rcode}"));
                }
                client.send(slot).await?;
            }
            Ok(Err(e)) => return Err(format!("dns receive: {e}")),
            Err(_) if Instant::now() >= deadline => break,
            Err(_) => {
                for slot in 0..DNS_IN_FLIGHT {
                    if client.outstanding[slot].is_some() {
                        phase.failed += 1;
                        phase
                            .first_error
                            .get_or_insert_with(|| format!("no reply within {DNS_RESEND_AFTER:?}"));
                    }
                    client.send(slot).await?;
                }
            }
        }
    }
    phase.seconds = started.elapsed().as_secs_f64();
    Ok(phase)
}

/// The DNS client's window: one query per slot, its ID naming the slot in the low
/// bits and a per-slot generation in the high ones, so a late reply to an earlier
/// query of the slot is recognised and ignored.
#[derive(Debug)]
struct DnsClient {
    socket: UdpSocket,
    /// Encoded queries, sent round-robin.
    queries: Vec<Vec<u8>>,
    next_query: usize,
    generation: [u16; DNS_IN_FLIGHT],
    /// The ID awaited in each slot.
    outstanding: [Option<u16>; DNS_IN_FLIGHT],
}

impl DnsClient {
    /// Sends the next query in `slot`, replacing whatever the slot awaited.
    async fn send(&mut self, slot: usize) -> Result<()> {
        self.generation[slot] = self.generation[slot].wrapping_add(1);
        let id = slot_id(slot, self.generation[slot]);
        let index = self.next_query % self.queries.len();
        self.next_query += 1;
        let query = &mut self.queries[index];
        query[..2].copy_from_slice(&id.to_be_bytes());
        self.socket
            .send(query)
            .await
            .map_err(|e| format!("dns send: {e}"))?;
        self.outstanding[slot] = Some(id);
        Ok(())
    }

    /// The slot and RCODE of `reply` when it answers an outstanding query (which it
    /// then no longer is).
    fn accept(&mut self, reply: &[u8]) -> Option<(usize, u8)> {
        let header = reply.get(..4)?;
        let id = u16::from_be_bytes([header[0], header[1]]);
        let slot = usize::from(id) % DNS_IN_FLIGHT;
        let is_response = header[2] & 0x80 != 0;
        if !is_response || self.outstanding[slot] != Some(id) {
            return None;
        }
        self.outstanding[slot] = None;
        Some((slot, header[3] & 0x0f))
    }
}

/// The ID of `slot`'s query of `generation`.
fn slot_id(slot: usize, generation: u16) -> u16 {
    generation
        .wrapping_mul(DNS_IN_FLIGHT as u16)
        .wrapping_add(slot as u16)
}

/// What each connection of a TLS phase does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Work {
    Handshake,
    Visit,
}

/// A TLS phase: [`TLS_IN_FLIGHT`] loops of `work` over `sites` until [`PHASE`] ends.
async fn tls_load(sites: Arc<Vec<(String, Ipv4Addr)>>, port: u16, work: Work) -> Result<Phase> {
    let connector = tls_connector();
    let next_site = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + PHASE;
    let mut loops = JoinSet::new();
    for _ in 0..TLS_IN_FLIGHT {
        let (sites, connector, next_site) = (
            Arc::clone(&sites),
            connector.clone(),
            Arc::clone(&next_site),
        );
        loops.spawn(async move {
            let mut phase = Phase::default();
            while Instant::now() < deadline {
                let (host, ip) = &sites[next_site.fetch_add(1, Ordering::Relaxed) % sites.len()];
                let one = connection(&connector, host, (*ip, port).into(), work);
                match tokio::time::timeout(CONNECTION_LIMIT, one).await {
                    Ok(Ok(())) => phase.completed += 1,
                    Ok(Err(e)) => {
                        phase.failed += 1;
                        phase
                            .first_error
                            .get_or_insert_with(|| format!("{host}: {e}"));
                    }
                    Err(_) => {
                        phase.failed += 1;
                        phase
                            .first_error
                            .get_or_insert_with(|| format!("{host}: over {CONNECTION_LIMIT:?}"));
                    }
                }
            }
            phase
        });
    }
    let mut total = Phase {
        in_flight: TLS_IN_FLIGHT,
        ..Phase::default()
    };
    while let Some(joined) = loops.join_next().await {
        let phase = joined.map_err(|e| format!("a ceiling client task failed: {e}"))?;
        total.completed += phase.completed;
        total.failed += phase.failed;
        if total.first_error.is_none() {
            total.first_error = phase.first_error;
        }
    }
    total.seconds = started.elapsed().as_secs_f64();
    Ok(total)
}

/// One connection: connect, handshake, maybe the two requests, close.
async fn connection(
    connector: &tokio_rustls::TlsConnector,
    host: &str,
    addr: SocketAddr,
    work: Work,
) -> Result<()> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = ServerName::try_from(host.to_owned()).map_err(|e| format!("SNI {host}: {e}"))?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    if work == Work::Visit {
        let mut buf = Vec::new();
        http1::send_get(&mut tls, host, "/robots.txt", false).await?;
        let robots = http1::read_response(&mut tls, &mut buf).await?;
        if robots.close {
            return Err(format!("closed after robots.txt ({})", robots.status));
        }
        http1::send_get(&mut tls, host, "/", true).await?;
        http1::read_response(&mut tls, &mut buf).await?;
    }
    // close_notify, then wait for the server's end, so no RST cuts its last step.
    let _ = tls.shutdown().await;
    let mut rest = [0u8; 1024];
    while matches!(tls.read(&mut rest).await, Ok(n) if n > 0) {}
    Ok(())
}

/// TLS 1.2/1.3 with ALPN `http/1.1`, any certificate accepted (signatures checked),
/// no session resumption: every connection is a full handshake, as spyder's are.
fn tls_connector() -> tokio_rustls::TlsConnector {
    let mut config = (*spyder_testkit::web::insecure_client_config()).clone();
    config.resumption = rustls::client::Resumption::disabled();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_combined_ceiling_adds_the_time_of_each_kind_of_work() {
        // 5 queries at 50,000/s take 0.1 ms; 1 visit at 2,000/s takes 0.5 ms.
        let got = combined_domains_per_second(5.0, 50_000.0, 1.0, 2_000.0).expect("finite");
        assert!((got - 1.0 / 0.0006).abs() < 1e-6, "{got}");
        // No visits: DNS alone sets the pace.
        let dns_only = combined_domains_per_second(5.0, 50_000.0, 0.0, 2_000.0).expect("finite");
        assert!((dns_only - 10_000.0).abs() < 1e-6, "{dns_only}");
        assert_eq!(combined_domains_per_second(0.0, 1.0, 0.0, 1.0), None);
        assert_eq!(combined_domains_per_second(5.0, 0.0, 1.0, 2_000.0), None);
    }

    #[test]
    fn queries_are_well_formed_a_queries() {
        let queries = encode_queries(&["www.s1-alpha.com".to_owned()]).expect("encodes");
        let message = Message::from_vec(&queries[0]).expect("decodes");
        assert_eq!(message.metadata.id, 0);
        assert!(message.metadata.recursion_desired);
        assert_eq!(message.queries.len(), 1);
        assert_eq!(message.queries[0].query_type(), RecordType::A);
        assert_eq!(message.queries[0].name().to_ascii(), "www.s1-alpha.com.");
        assert!(encode_queries(&["bad..name".to_owned()]).is_err());
    }

    #[tokio::test]
    async fn the_dns_window_matches_replies_to_live_queries_only() {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("binds");
        let mut client = DnsClient {
            socket,
            queries: Vec::new(),
            next_query: 0,
            generation: [0; DNS_IN_FLIGHT],
            outstanding: [None; DNS_IN_FLIGHT],
        };
        let live = slot_id(5, 2);
        assert_eq!(usize::from(live) % DNS_IN_FLIGHT, 5);
        client.outstanding[5] = Some(live);
        let [hi, lo] = live.to_be_bytes();
        let stale = slot_id(5, 1).to_be_bytes();
        assert_eq!(client.accept(&[stale[0], stale[1], 0x81, 0x80]), None);
        assert_eq!(
            client.accept(&[hi, lo, 0x01, 0x00]),
            None,
            "a query, not a reply"
        );
        assert_eq!(client.accept(&[hi, lo]), None, "too short");
        assert_eq!(client.accept(&[hi, lo, 0x81, 0x83]), Some((5, 3)));
        assert_eq!(
            client.accept(&[hi, lo, 0x81, 0x80]),
            None,
            "already answered"
        );
    }

    #[test]
    fn phase_rates() {
        let phase = Phase {
            completed: 3_000,
            seconds: 3.0,
            world_cpu_s: 2.7,
            ..Phase::default()
        };
        assert!((phase.per_second() - 1_000.0).abs() < 1e-9);
        assert!((phase.world_busy() - 0.9).abs() < 1e-9);
        assert_eq!(Phase::default().per_second(), 0.0);
    }
}

//! Seeded worlds of linked sites, with the edges a correct probe must emit.
//!
//! [`World::generate`] builds `n` sites from a seed: DNS data (A, AAAA, NS, MX incl.
//! null MX, CNAME chains), certificates (valid, expired, self-signed, none), robots.txt
//! variants, redirects (same apex and cross apex) and pages whose links use every
//! source the probe must read — plus decoys it must ignore (links inside scripts,
//! `mailto:`, IP literals). Alongside, it states per crawled host the exact set of
//! edges and the outcome SPEC §1 requires, computed from the world's own data, never
//! by parsing what it served.
//!
//! [`WorldOptions`] add hazards (black holes, filtered addresses, shared hosting
//! addresses) that change what some sites expect, and internet conditions (TCP and
//! DNS round trips, jitter, DNS loss) that change nothing a correct probe emits: the
//! expected edges and outcomes of a world depend on its seed, size and hazards only.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use spyder_model::EdgeType;

use crate::dns::{DnsServer, NetworkConditions, ServerOptions, Zone};
use crate::netsim::TcpConditions;
use crate::pki::TestCa;
use crate::web::{WebOptions, WebServer};

/// One expected edge: type, source, target.
pub type ExpectedEdge = (EdgeType, String, String);

mod plan;

use plan::Plan;

/// What a correct probe reports for one crawled host.
#[derive(Clone, Debug)]
pub struct ExpectedSite {
    /// The input name (already normalised).
    pub host: String,
    /// The outcome label of SPEC §1 (`complete`, `robots_blocked`, ...).
    pub outcome: &'static str,
    /// Exactly the edges the crawl must emit.
    pub edges: BTreeSet<ExpectedEdge>,
    /// What the probe's own metrics count for this crawl.
    pub metrics: ExpectedMetrics,
}

/// What a correct probe counts in its §3.13 metrics while crawling one host of a
/// clean world (no reconnects, no lost requests).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExpectedMetrics {
    /// Completed TLS handshakes: the host's own, plus one per redirect hop to another
    /// https origin (`spyder_tls_handshake_duration_seconds` counts these and the
    /// failed attempts).
    pub tls_handshakes: u64,
    /// The `spyder_tls_errors_total` reason of the host's one failed TLS attempt:
    /// `connect_refused` (nothing on the HTTPS port) or `timeout` (a black hole or a
    /// filtered address).
    pub tls_error: Option<&'static str>,
    /// robots.txt requests (`spyder_http_request_duration_seconds{kind="robots"}`).
    pub robots_requests: u64,
    /// Root-page requests, each redirect hop one (`{kind="root"}`).
    pub root_requests: u64,
}

/// A running world: DNS server, web hosts and the CA that signed their certificates.
#[derive(Debug)]
pub struct World {
    /// The resolver every name of the world is answered by.
    pub dns: DnsServer,
    /// The web hosts on 127.0.0.x.
    pub web: WebServer,
    /// The CA that signed the hosts' certificates (the roots to trust).
    pub ca: TestCa,
    /// Every site with the records a correct crawl of it emits.
    pub sites: Vec<ExpectedSite>,
}

impl World {
    /// Generates and starts a world of `n` sites from `seed` (same seed, same world).
    pub async fn generate(seed: u64, n: usize) -> std::io::Result<Self> {
        Self::generate_with(seed, n, WorldOptions::default()).await
    }

    /// Like [`World::generate`], with extra hazards and network conditions mixed in.
    pub async fn generate_with(
        seed: u64,
        n: usize,
        options: WorldOptions,
    ) -> std::io::Result<Self> {
        Self::generate_part(seed, n, options, Part::WHOLE, TestCa::new(), None).await
    }

    /// One part of a world served by several processes (a machine's open-file limit
    /// holds two listening sockets per site for only so many sites). Every part draws
    /// the same world from `seed` and signs with the same `ca` (see
    /// [`TestCa::export`]); `part` picks the addresses this one serves
    /// ([`Part::owns`]), and `sites` holds only their expectations. The first part
    /// serves the whole world's DNS; the others serve an empty zone nobody asks.
    /// `ports` fixes the port pair (the parts after the first take the first's).
    pub async fn generate_part(
        seed: u64,
        n: usize,
        options: WorldOptions,
        part: Part,
        ca: TestCa,
        ports: Option<(u16, u16)>,
    ) -> std::io::Result<Self> {
        let plan = Plan::new(seed, n, options);
        let mut zone = Zone::new();
        let mut sites = Vec::with_capacity(n);
        let mut filtered = Vec::new();
        let mut expected = Vec::with_capacity(n);
        for spec in &plan.sites {
            let (site, exp) = spec.build(&plan, &ca, &mut zone);
            if !part.owns(spec.ip) {
                continue;
            }
            match site {
                Some(site) => sites.push(site),
                None => filtered.push(spec.ip),
            }
            expected.push(exp);
        }
        if part.index != 0 {
            zone = Zone::new();
        }
        let dns = DnsServer::start_with(zone, options.dns_server()).await?;
        let web_options = WebOptions {
            network: options.tcp_conditions(),
            filtered,
            ports,
        };
        let web = WebServer::start_with(sites, web_options).await?;
        Ok(Self {
            dns,
            web,
            ca,
            sites: expected,
        })
    }

    /// The names to crawl, in generation order.
    pub fn hosts(&self) -> Vec<String> {
        self.sites.iter().map(|s| s.host.clone()).collect()
    }

    /// The union of every site's expected edges.
    pub fn expected_edges(&self) -> BTreeSet<ExpectedEdge> {
        self.sites
            .iter()
            .flat_map(|s| s.edges.iter().cloned())
            .collect()
    }

    /// The DNS server address to configure as the probe's only resolver.
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns.addr()
    }

    /// `spyder` flags pointing a probe at this world; see [`probe_flags`].
    pub fn probe_flags(&self, roots: &Path) -> Vec<String> {
        probe_flags(
            self.dns_addr(),
            self.web.https_port(),
            self.web.http_port(),
            roots,
        )
    }
}

/// `spyder` flags pointing a probe at a world served at `dns` and the two ports, with
/// its CA in the PEM file `roots`: loopback allowed, per-host politeness raised so it
/// does not pace a crawl of many sites on few addresses, short DNS and task timeouts,
/// no metrics listener, JSON logs. Tests and benchmarks add their own flags after.
pub fn probe_flags(dns: SocketAddr, https_port: u16, http_port: u16, roots: &Path) -> Vec<String> {
    vec![
        format!("-dns_servers={dns}"),
        "-allow_cidrs=127.0.0.0/8".into(),
        format!("-set=crawling.https_port={https_port}"),
        format!("-set=crawling.http_port={http_port}"),
        format!("-set=crawling.tls_roots={}", roots.display()),
        "-set=crawling.rate_per_host=1000".into(),
        "-set=crawling.rate_burst=10".into(),
        "-set=crawling.task_timeout=20s".into(),
        "-set=dns.query_timeout=500ms".into(),
        "-metrics_addr=".into(),
        "-log_format=json".into(),
    ]
}

/// Which addresses of a world one process serves (see [`World::generate_part`]):
/// part `index` of `count` serves the addresses whose number is `index` modulo
/// `count`, so every site of a shared address lands in one part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Part {
    /// This part, `0..count`; part 0 serves the DNS.
    pub index: usize,
    /// How many parts serve the world (at least 1).
    pub count: usize,
}

impl Part {
    /// The whole world in one process.
    pub const WHOLE: Self = Self { index: 0, count: 1 };

    /// Whether this part serves `ip`.
    pub fn owns(&self, ip: Ipv4Addr) -> bool {
        self.count <= 1 || u32::from(ip) as usize % self.count == self.index
    }
}

/// Hazards and network conditions a world can mix in beyond the defaults. The
/// default is the plain world: no hazards, loopback speed, no loss. Build others with
/// struct update syntax: `WorldOptions { dns_loss: 0.01, ..WorldOptions::default() }`.
///
/// Shares are probabilities per site (0.0–1.0; values outside are treated as 0 or 1)
/// drawn from the world's seed, so the same seed and options give the same sites.
/// Hazards change some sites' expectations; the network conditions (`tcp_*`, `dns_*`)
/// never change what a correct probe emits.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct WorldOptions {
    /// Share of sites whose HTTPS port accepts connections and never answers, with
    /// nothing on the HTTP port: a correct probe gives up after `tls_timeout` with
    /// outcome `no_web` and DNS edges only.
    pub black_holes: f64,
    /// Share of the other sites whose address is filtered: a TCP connect to its HTTPS
    /// port and to its HTTP port never completes (no SYN-ACK, no RST; see
    /// [`crate::netsim`]). A correct probe gives up on both with outcome `no_web`, DNS
    /// edges only and the TLS error `timeout`. No site redirects to a filtered one.
    pub filtered: f64,
    /// Share of the HTTPS sites (valid, expired or self-signed certificate) moved onto
    /// a few shared hosting addresses (127.254.0.1–4), skewed: about half of them on
    /// the first address, a quarter on the second, an eighth on each of the last two.
    /// The server picks the site by SNI and `Host`; the sites' RESOLVES_TO edges name
    /// the shared address.
    pub shared_ip_sites: f64,
    /// Round trip every TCP exchange costs (see [`crate::netsim`]: the client sees
    /// connect plus the first exchange cost two).
    pub tcp_rtt: Duration,
    /// Up to this much more per TCP exchange, drawn uniformly.
    pub tcp_jitter: Duration,
    /// Round trip every DNS answer costs.
    pub dns_rtt: Duration,
    /// Up to this much more per DNS answer, drawn uniformly.
    pub dns_jitter: Duration,
    /// Share of UDP DNS datagrams lost, each way: a query is dropped before the
    /// server sees it with this probability, and an answer on its way back with the
    /// same probability, so about `2 × dns_loss` of exchanges fail (as a path that
    /// drops this share of all datagrams would). TCP answers are never lost.
    pub dns_loss: f64,
    /// Seed of the network draws (jitter, DNS loss), independent of the world's seed.
    pub seed: u64,
}

impl WorldOptions {
    /// The DNS server's options: these network conditions.
    fn dns_server(&self) -> ServerOptions {
        let loss = if self.dns_loss > 0.0 {
            self.dns_loss.min(1.0)
        } else {
            0.0
        };
        ServerOptions {
            network: NetworkConditions {
                rtt: self.dns_rtt,
                jitter: self.dns_jitter,
                query_loss: loss,
                answer_loss: loss,
                seed: self.seed,
            },
            ..ServerOptions::default()
        }
    }

    /// The web server's TCP conditions.
    fn tcp_conditions(&self) -> TcpConditions {
        TcpConditions {
            rtt: self.tcp_rtt,
            jitter: self.tcp_jitter,
            seed: self.seed,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::plan::Tls;
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// A site's expectations with certificate hashes masked (every world draws fresh
    /// keys, so only the presence of a USES_CERT edge is comparable across worlds).
    fn comparable(site: &ExpectedSite) -> (&'static str, Vec<ExpectedEdge>, ExpectedMetrics) {
        let edges = site
            .edges
            .iter()
            .map(|(kind, s, t)| {
                let t = if *kind == EdgeType::UsesCert {
                    "<cert>".to_owned()
                } else {
                    t.clone()
                };
                (*kind, s.clone(), t)
            })
            .collect();
        (site.outcome, edges, site.metrics.clone())
    }

    #[tokio::test]
    async fn parts_of_a_world_add_up_to_the_whole_on_one_port_pair() {
        let options = WorldOptions {
            filtered: 0.05,
            shared_ip_sites: 0.1,
            ..WorldOptions::default()
        };
        let whole = World::generate_with(0x51_0003, 150, options).await.unwrap();
        let ca = TestCa::new();
        let first = World::generate_part(
            0x51_0003,
            150,
            options,
            Part { index: 0, count: 2 },
            TestCa::from_export(&ca.export()).unwrap(),
            None,
        )
        .await
        .unwrap();
        let ports = (first.web.https_port(), first.web.http_port());
        let second = World::generate_part(
            0x51_0003,
            150,
            options,
            Part { index: 1, count: 2 },
            ca,
            Some(ports),
        )
        .await
        .unwrap();
        assert_eq!((second.web.https_port(), second.web.http_port()), ports);
        assert!(!first.sites.is_empty() && !second.sites.is_empty());
        let mut parts: BTreeMap<String, _> = BTreeMap::new();
        for site in first.sites.iter().chain(&second.sites) {
            assert!(parts.insert(site.host.clone(), comparable(site)).is_none());
        }
        let all: BTreeMap<String, _> = whole
            .sites
            .iter()
            .map(|site| (site.host.clone(), comparable(site)))
            .collect();
        assert_eq!(parts, all, "the parts expect what the whole world does");
    }

    #[tokio::test]
    async fn network_conditions_leave_every_expectation_alone() {
        let plain = World::generate(0x51_0001, 120).await.unwrap();
        let slow = World::generate_with(
            0x51_0001,
            120,
            WorldOptions {
                tcp_rtt: Duration::from_millis(100),
                tcp_jitter: Duration::from_millis(10),
                dns_rtt: Duration::from_millis(40),
                dns_jitter: Duration::from_millis(5),
                dns_loss: 0.01,
                seed: 9,
                ..WorldOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(plain.hosts(), slow.hosts());
        for (a, b) in plain.sites.iter().zip(&slow.sites) {
            assert_eq!(comparable(a), comparable(b), "{}", a.host);
        }
        assert_eq!(plain.expected_edges().len(), slow.expected_edges().len());
        assert!(slow.web.filtered().is_empty());
    }

    #[tokio::test]
    async fn filtered_sites_expect_dns_edges_only_and_change_no_one_else() {
        let seed = 0x51_0002;
        let plain = World::generate(seed, 150).await.unwrap();
        let options = WorldOptions {
            filtered: 0.1,
            ..WorldOptions::default()
        };
        let world = World::generate_with(seed, 150, options).await.unwrap();
        let holes = world.web.filtered();
        let dns_only = [
            EdgeType::ResolvesTo,
            EdgeType::AliasOf,
            EdgeType::UsesNs,
            EdgeType::UsesMx,
        ];
        let mut filtered = 0;
        let mut changed = 0;
        for (before, site) in plain.sites.iter().zip(&world.sites) {
            let v4: Vec<Ipv4Addr> = site
                .edges
                .iter()
                .filter(|(kind, s, _)| *kind == EdgeType::ResolvesTo && *s == site.host)
                .filter_map(|(_, _, t)| t.parse().ok())
                .collect();
            let ip = v4[0];
            let is_hole = holes.contains(&SocketAddr::from((ip, world.web.https_port())));
            if site.outcome == "no_web" && site.metrics.robots_requests == 0 && is_hole {
                filtered += 1;
                assert!(holes.contains(&SocketAddr::from((ip, world.web.http_port()))));
                assert!(site.edges.iter().all(|(k, _, _)| dns_only.contains(k)));
                assert_eq!(
                    site.metrics,
                    ExpectedMetrics {
                        tls_error: Some("timeout"),
                        ..ExpectedMetrics::default()
                    }
                );
                continue;
            }
            assert!(
                !is_hole,
                "{} is served but its address is filtered",
                site.host
            );
            if comparable(before) != comparable(site) {
                // Only a cross-apex redirect whose target became filtered changes:
                // it is dropped, and the page is served directly.
                changed += 1;
                assert_eq!(before.metrics.root_requests, 2, "{}", site.host);
                assert_eq!(site.metrics.root_requests, 1, "{}", site.host);
            }
        }
        assert_eq!(holes.len(), filtered * 2);
        assert!(filtered >= 5, "only {filtered} filtered sites");
        assert!(changed <= 5, "{changed} sites changed");
    }

    #[tokio::test]
    async fn shared_addresses_are_skewed_and_serve_each_site_by_sni() {
        let seed = 0x51_0003;
        let plain = World::generate(seed, 150).await.unwrap();
        let options = WorldOptions {
            shared_ip_sites: 0.5,
            ..WorldOptions::default()
        };
        let world = World::generate_with(seed, 150, options).await.unwrap();
        // Sites per shared address, from the expected RESOLVES_TO edges.
        let mut hosted: BTreeMap<Ipv4Addr, Vec<String>> = BTreeMap::new();
        for (before, site) in plain.sites.iter().zip(&world.sites) {
            let resolves = |s: &ExpectedSite| -> Ipv4Addr {
                s.edges
                    .iter()
                    .find_map(|(k, src, t)| {
                        (*k == EdgeType::ResolvesTo && *src == s.host)
                            .then(|| t.parse().ok())
                            .flatten()
                    })
                    .unwrap()
            };
            let ip = resolves(site);
            if ip != resolves(before) {
                assert_eq!(ip.octets()[..3], [127, 254, 0], "{}", site.host);
                hosted.entry(ip).or_default().push(site.host.clone());
                // Only the address changed.
                let mask = |s: &ExpectedSite| {
                    let mut c = comparable(s);
                    c.1.retain(|(k, _, t)| {
                        !(*k == EdgeType::ResolvesTo && t.parse::<Ipv4Addr>().is_ok())
                    });
                    c
                };
                assert_eq!(mask(before), mask(site));
            }
        }
        let counts: Vec<usize> = hosted.values().map(Vec::len).collect();
        assert!(counts.len() >= 2, "{counts:?}");
        assert!(
            counts[0] >= 10 && counts[0] == *counts.iter().max().unwrap(),
            "{counts:?}"
        );

        // Every shared site with a valid certificate is served its own certificate
        // by SNI (a verifying client accepts it for exactly that name) and its own
        // page by Host.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(world.ca.root_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        // The plan says which certificates are valid (the expectations do not).
        let plan = Plan::new(seed, 150, options);
        let mut verified = 0;
        for (ip, hosts) in &hosted {
            for host in hosts {
                let spec = plan.sites.iter().find(|s| s.host == *host).unwrap();
                if spec.tls != Tls::Valid {
                    continue;
                }
                let tcp = tokio::net::TcpStream::connect((*ip, world.web.https_port()))
                    .await
                    .unwrap();
                let name = rustls_pki_types::ServerName::try_from(host.clone()).unwrap();
                let tls =
                    tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp))
                        .await
                        .expect("handshake in time");
                assert!(tls.is_ok(), "{host} on {ip}: {:?}", tls.err());
                verified += 1;
            }
        }
        assert!(verified >= 10, "only {verified} shared sites verified");
        let per_address: Vec<usize> = hosted
            .keys()
            .map(|ip| world.web.peak_open_connections(*ip))
            .collect();
        assert!(per_address.iter().all(|&p| p >= 1), "{per_address:?}");
    }
}

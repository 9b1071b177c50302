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
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spyder_model::{EdgeType, apex_of};

use crate::dns::{DnsServer, NetworkConditions, ServerOptions, Zone};
use crate::netsim::TcpConditions;
use crate::pki::{CertKind, TestCa};
use crate::web::{NamedSite, Reply, Site, TlsMode, WebOptions, WebServer};

/// One expected edge: type, source, target.
pub type ExpectedEdge = (EdgeType, String, String);

const TLDS: [&str; 6] = ["com", "net", "org", "io", "co.uk", "de"];
const WORDS: [&str; 12] = [
    "alpha", "bravo", "cedar", "delta", "ember", "fjord", "gamma", "harbor", "iris", "juniper",
    "kilo", "lumen",
];
/// Shared name-server and mail pools, so answers repeat across sites as on the internet.
const NS_POOL: usize = 8;
const MX_POOL: usize = 5;
const CDN_POOL: usize = 4;
/// Shared hosting addresses, far from the sites' own (127.1.0.1 + index).
const SHARED_BASE: Ipv4Addr = Ipv4Addr::new(127, 254, 0, 1);
/// How many shared hosting addresses there are at most.
const SHARED_POOL: u32 = 4;
/// Seeds of the hazard draws that came after the first ones, each from its own
/// stream: adding one leaves the rest of the world as it was.
const FILTERED_SALT: u64 = 0xf117_e2ed_0000_0001;
const SHARED_SALT: u64 = 0x5ba2_ed19_0000_0002;

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
    pub dns: DnsServer,
    pub web: WebServer,
    pub ca: TestCa,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tls {
    Valid,
    Expired,
    SelfSigned,
    /// Nothing on the HTTPS port: reached by the HTTP fallback.
    None,
    /// Accepts and never answers; nothing on the HTTP port.
    BlackHole,
    /// The address is filtered: connects to either port never complete.
    Filtered,
}

impl Tls {
    /// Whether a crawl of the site never reaches HTTP.
    fn unreachable(self) -> bool {
        matches!(self, Self::BlackHole | Self::Filtered)
    }

    /// Whether the HTTPS port serves a rustls certificate.
    fn serves_certificate(self) -> bool {
        matches!(self, Self::Valid | Self::Expired | Self::SelfSigned)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Robots {
    Allow,
    Missing,
    DisallowUs,
    Unavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Redirect {
    None,
    /// `/` → `https://www.<apex>/home`.
    SameApex,
    /// `/` → another site's host.
    CrossApex(usize),
}

/// A link on a page, with how the page writes it.
#[derive(Clone, Debug)]
struct Link {
    host: String,
    form: LinkForm,
}

#[derive(Clone, Copy, Debug)]
enum LinkForm {
    Anchor,
    UpperCaseAnchor,
    ProtocolRelativeScript,
    Srcset,
    FormAction,
    Stylesheet,
    MetaRefresh,
}

/// Everything decided about one site before anything is built.
#[derive(Clone, Debug)]
struct SiteSpec {
    index: usize,
    apex: String,
    host: String,
    ip: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
    /// CNAME chain from `host` (each hop a new name), the last one holding the A record.
    chain: Vec<String>,
    name_servers: Vec<String>,
    mx: Mx,
    tls: Tls,
    robots: Robots,
    redirect: Redirect,
    links: Vec<Link>,
}

#[derive(Clone, Debug)]
enum Mx {
    None,
    Null,
    Hosts(Vec<String>),
}

struct Plan {
    sites: Vec<SiteSpec>,
}

impl Plan {
    fn new(seed: u64, n: usize, options: WorldOptions) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut sites: Vec<SiteSpec> = (0..n).map(|i| SiteSpec::draw(i, &mut rng)).collect();
        if options.black_holes > 0.0 {
            for site in &mut sites {
                if rng.random_bool(options.black_holes.min(1.0)) {
                    site.tls = Tls::BlackHole;
                    site.redirect = Redirect::None;
                }
            }
        }
        if options.filtered > 0.0 {
            let mut draws = StdRng::seed_from_u64(seed ^ FILTERED_SALT);
            for site in &mut sites {
                if site.tls != Tls::BlackHole && draws.random_bool(options.filtered.min(1.0)) {
                    site.tls = Tls::Filtered;
                    site.redirect = Redirect::None;
                }
            }
        }
        if options.shared_ip_sites > 0.0 {
            let mut draws = StdRng::seed_from_u64(seed ^ SHARED_SALT);
            for site in &mut sites {
                if site.tls.serves_certificate()
                    && draws.random_bool(options.shared_ip_sites.min(1.0))
                {
                    let mut slot = 0;
                    while slot + 1 < SHARED_POOL && draws.random_bool(0.5) {
                        slot += 1;
                    }
                    site.ip = Ipv4Addr::from(u32::from(SHARED_BASE) + slot);
                }
            }
        }
        // Links and cross-apex redirects point at other sites, so draw them last.
        let hosts: Vec<(String, String, bool)> = sites
            .iter()
            .map(|s| {
                let direct = s.redirect == Redirect::None && !s.tls.unreachable();
                (s.host.clone(), s.apex.clone(), direct)
            })
            .collect();
        for site in &mut sites {
            site.draw_links(&hosts, &mut rng);
        }
        Self { sites }
    }
}

impl SiteSpec {
    fn draw(index: usize, rng: &mut StdRng) -> Self {
        let word = WORDS[rng.random_range(0..WORDS.len())];
        let tld = TLDS[rng.random_range(0..TLDS.len())];
        let apex = format!("s{index}-{word}.{tld}");
        let host = if rng.random_bool(0.3) {
            format!("www.{apex}")
        } else {
            apex.clone()
        };
        let ip = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 1)) + index as u32);
        let ipv6 = rng
            .random_bool(0.2)
            .then(|| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, index as u16 + 1));
        // A CNAME cannot share its owner with the apex's NS and MX: only www aliases.
        let alias_roll = rng.random_range(0..10);
        let chain = match if host == apex { 9 } else { alias_roll } {
            0 => vec![format!("e{index}.cdn{}.net", rng.random_range(0..CDN_POOL))],
            1 => vec![
                format!("{word}{index}.edge{}.com", rng.random_range(0..CDN_POOL)),
                format!("e{index}.cdn{}.net", rng.random_range(0..CDN_POOL)),
            ],
            _ => Vec::new(),
        };
        let ns_a = rng.random_range(0..NS_POOL);
        let name_servers = vec![
            format!("ns1.dnshost{ns_a}.net"),
            format!("ns2.dnshost{}.net", (ns_a + 1) % NS_POOL),
        ];
        let mx = match rng.random_range(0..10) {
            0..=3 => Mx::Hosts(vec![format!(
                "mx{}.mailhost.com",
                rng.random_range(0..MX_POOL)
            )]),
            4..=5 => Mx::Hosts(vec![format!("mail.{apex}"), format!("mail2.{apex}")]),
            6 => Mx::Null,
            _ => Mx::None,
        };
        let tls = match rng.random_range(0..20) {
            0 => Tls::Expired,
            1 => Tls::SelfSigned,
            2 => Tls::None,
            _ => Tls::Valid,
        };
        let robots = match rng.random_range(0..20) {
            0 => Robots::DisallowUs,
            1 => Robots::Unavailable,
            2..=3 => Robots::Missing,
            _ => Robots::Allow,
        };
        let redirect = match rng.random_range(0..20) {
            0..=1 => Redirect::SameApex,
            2 => Redirect::CrossApex(0), // target drawn with the links
            _ => Redirect::None,
        };
        Self {
            index,
            apex,
            host,
            ip,
            ipv6,
            chain,
            name_servers,
            mx,
            tls,
            robots,
            redirect,
            links: Vec::new(),
        }
    }

    /// `hosts` holds every site's (host, apex, serves its page at `/`).
    fn draw_links(&mut self, hosts: &[(String, String, bool)], rng: &mut StdRng) {
        let n = hosts.len();
        if let Redirect::CrossApex(_) = self.redirect {
            // Redirect only to a site that serves its page directly, on another apex.
            let target = rng.random_range(0..n);
            self.redirect = match &hosts[target] {
                (_, apex, true) if *apex != self.apex => Redirect::CrossApex(target),
                _ => Redirect::None,
            };
        }
        let forms = [
            LinkForm::Anchor,
            LinkForm::Anchor,
            LinkForm::UpperCaseAnchor,
            LinkForm::ProtocolRelativeScript,
            LinkForm::Srcset,
            LinkForm::FormAction,
            LinkForm::Stylesheet,
        ];
        for _ in 0..rng.random_range(0..7) {
            let (host, apex, _) = &hosts[rng.random_range(0..n)];
            let host = match rng.random_range(0..4) {
                0 => format!("cdn.{apex}"),
                _ => host.clone(),
            };
            let form = forms[rng.random_range(0..forms.len())];
            self.links.push(Link { host, form });
        }
        if rng.random_bool(0.05) {
            let (host, _, _) = &hosts[rng.random_range(0..n)];
            self.links.push(Link {
                host: host.clone(),
                form: LinkForm::MetaRefresh,
            });
        }
    }

    /// Adds this site's DNS data to `zone` and returns its web site (none for a
    /// filtered address) and expectations.
    fn build(
        &self,
        plan: &Plan,
        ca: &TestCa,
        zone: &mut Zone,
    ) -> (Option<NamedSite>, ExpectedSite) {
        let h = &self.host;
        let mut edges = BTreeSet::new();
        let mut edge = |kind: EdgeType, s: &str, t: &str| {
            edges.insert((kind, s.to_owned(), t.to_owned()));
        };
        self.add_dns(zone, &mut edge);
        let tls = self.tls_mode(ca, &mut edge);
        let robots = self.robots_reply();
        let (routes, outcome, metrics) = self.expect_web(plan, &mut edge);
        // Links and redirects to the host's own apex are internal.
        edges.retain(|(kind, s, t)| {
            *kind != EdgeType::LinksTo || (s == h && apex_of(t) != apex_of(h))
        });
        let site = self.named_site(tls, robots, routes);
        let exp = ExpectedSite {
            host: h.clone(),
            outcome,
            edges,
            metrics,
        };
        (site, exp)
    }

    /// DNS: the apex owns NS and MX; the crawled host may alias through a chain.
    /// Adds the records to `zone` and the DNS edges to `edge`.
    fn add_dns(&self, zone: &mut Zone, edge: &mut impl FnMut(EdgeType, &str, &str)) {
        let h = &self.host;
        for ns in &self.name_servers {
            zone.ns(&self.apex, ns);
        }
        match &self.mx {
            Mx::None => {}
            Mx::Null => {
                zone.null_mx(&self.apex);
            }
            Mx::Hosts(hosts) => {
                for (i, mx) in hosts.iter().enumerate() {
                    zone.mx(&self.apex, 10 * (i as u16 + 1), mx);
                }
            }
        }
        if *h != self.apex {
            zone.a(&self.apex, self.ip);
        }
        let mut owner = h.clone();
        for next in &self.chain {
            zone.cname(&owner, next);
            edge(EdgeType::AliasOf, &owner, next);
            owner = next.clone();
        }
        zone.a(&owner, self.ip);
        edge(EdgeType::ResolvesTo, h, &self.ip.to_string());
        if let Some(v6) = self.ipv6 {
            zone.aaaa(&owner, v6);
            edge(EdgeType::ResolvesTo, h, &v6.to_string());
        }
        if self.redirect == Redirect::SameApex {
            zone.a(&format!("www.{}", self.apex), self.ip);
        }
        // NS and MX count only when owned by the host or a name in its chain.
        if *h == self.apex {
            for ns in &self.name_servers {
                edge(EdgeType::UsesNs, h, ns);
            }
            if let Mx::Hosts(hosts) = &self.mx {
                for mx in hosts {
                    edge(EdgeType::UsesMx, h, mx);
                }
            }
        }
    }

    /// What the HTTPS port serves, issuing a certificate (and its edge) when it has one.
    fn tls_mode(&self, ca: &TestCa, edge: &mut impl FnMut(EdgeType, &str, &str)) -> TlsMode {
        let h = &self.host;
        let names = [h.as_str(), self.apex.as_str()];
        match self.tls {
            Tls::None | Tls::Filtered => TlsMode::Off,
            Tls::BlackHole => TlsMode::Hang,
            kind => {
                let cert_kind = match kind {
                    Tls::Expired => CertKind::Expired,
                    Tls::SelfSigned => CertKind::SelfSigned,
                    _ => CertKind::Valid,
                };
                let issued = ca.issue(&names, cert_kind);
                edge(EdgeType::UsesCert, h, &issued.spki_sha256);
                TlsMode::Rustls(issued.server_config())
            }
        }
    }

    /// The robots.txt reply.
    fn robots_reply(&self) -> Reply {
        match self.robots {
            Robots::Allow => Reply::Text {
                content_type: "text/plain".into(),
                body: "User-agent: *\nDisallow: /private/\n".into(),
            },
            Robots::Missing => Reply::Status(404),
            Robots::DisallowUs => Reply::Text {
                content_type: "text/plain".into(),
                body: "User-agent: *\nAllow: /\n\nUser-agent: spyderprobe\nDisallow: /\n".into(),
            },
            Robots::Unavailable => Reply::Status(503),
        }
    }

    /// The page (or redirect) behind robots.txt: the routes served, the outcome and
    /// metrics a correct crawl reports, and the link edges it emits.
    fn expect_web(
        &self,
        plan: &Plan,
        edge: &mut impl FnMut(EdgeType, &str, &str),
    ) -> (Vec<(String, Reply)>, &'static str, ExpectedMetrics) {
        let blocked = matches!(self.robots, Robots::DisallowUs | Robots::Unavailable);
        let page = self.page();
        let mut routes = Vec::new();
        let outcome;
        let mut metrics = ExpectedMetrics {
            tls_handshakes: u64::from(matches!(
                self.tls,
                Tls::Valid | Tls::Expired | Tls::SelfSigned
            )),
            tls_error: match self.tls {
                Tls::None => Some("connect_refused"),
                Tls::BlackHole | Tls::Filtered => Some("timeout"),
                _ => None,
            },
            robots_requests: u64::from(!self.tls.unreachable()),
            root_requests: 0,
        };
        if self.tls.unreachable() {
            outcome = "no_web";
        } else if blocked {
            outcome = "robots_blocked";
            routes.push(("/".to_owned(), Reply::Html(page)));
        } else {
            outcome = "complete";
            metrics.root_requests = match self.redirect {
                Redirect::None => 1,
                Redirect::SameApex | Redirect::CrossApex(_) => 2,
            };
            self.root_routes(plan, page, &mut metrics, &mut routes, edge);
        }
        (routes, outcome, metrics)
    }

    /// The routes of a crawl that reads the root page: the page itself, or a redirect
    /// to it on the same apex or to another site. Counts the extra handshake a
    /// redirect to a new https origin costs in `metrics`.
    fn root_routes(
        &self,
        plan: &Plan,
        page: String,
        metrics: &mut ExpectedMetrics,
        routes: &mut Vec<(String, Reply)>,
        edge: &mut impl FnMut(EdgeType, &str, &str),
    ) {
        let h = &self.host;
        let scheme = if self.tls == Tls::None {
            "http"
        } else {
            "https"
        };
        match self.redirect {
            Redirect::None => {
                routes.push(("/".to_owned(), Reply::Html(page)));
                self.expect_page_links(self, edge);
            }
            Redirect::SameApex => {
                // A new origin (and TLS session) unless the host already is www.
                if scheme == "https" && *h != format!("www.{}", self.apex) {
                    metrics.tls_handshakes += 1;
                }
                routes.push((
                    "/".to_owned(),
                    Reply::Redirect {
                        status: 301,
                        location: format!("{scheme}://www.{}/home", self.apex),
                    },
                ));
                routes.push(("/home".to_owned(), Reply::Html(page)));
                self.expect_page_links(self, edge);
            }
            Redirect::CrossApex(target) => {
                let other = &plan.sites[target];
                let other_scheme = if other.tls == Tls::None {
                    "http"
                } else {
                    "https"
                };
                if other_scheme == "https" {
                    metrics.tls_handshakes += 1;
                }
                routes.push((
                    "/".to_owned(),
                    Reply::Redirect {
                        status: 302,
                        location: format!("{other_scheme}://{}/", other.host),
                    },
                ));
                edge(EdgeType::LinksTo, h, &other.host);
                // Followed to the other site's page, whose links count for us.
                self.expect_page_links(other, edge);
            }
        }
    }

    /// The served site with the names a client may send as SNI or Host: the host, its
    /// apex and the apex's www (a same-apex redirect's target), once each. None for a
    /// filtered address.
    fn named_site(
        &self,
        tls: TlsMode,
        robots: Reply,
        routes: Vec<(String, Reply)>,
    ) -> Option<NamedSite> {
        let h = &self.host;
        let site = Site {
            ip: self.ip,
            tls,
            plain_http: !self.tls.unreachable(),
            robots,
            routes,
        };
        let mut names = vec![h.clone()];
        for name in [self.apex.clone(), format!("www.{}", self.apex)] {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        (self.tls != Tls::Filtered).then_some(NamedSite { names, site })
    }

    /// LINKS_TO from this host for every link on `page_owner`'s page (internal ones
    /// are dropped later by apex).
    fn expect_page_links(
        &self,
        page_owner: &SiteSpec,
        edge: &mut impl FnMut(EdgeType, &str, &str),
    ) {
        for link in &page_owner.links {
            edge(EdgeType::LinksTo, &self.host, &link.host);
        }
        edge(
            EdgeType::LinksTo,
            &self.host,
            &format!("www.{}", page_owner.apex),
        );
    }

    /// The root page: every link form once, plus decoys a correct probe ignores.
    fn page(&self) -> String {
        let mut p = String::from(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>a <a href=\"https://title-decoy.example/\">x</a></title>\n",
        );
        for link in &self.links {
            let h = &link.host;
            let _ = match link.form {
                LinkForm::Stylesheet => {
                    writeln!(
                        p,
                        "<link rel=\"stylesheet\" href=\"https://{h}/style.css\">"
                    )
                }
                LinkForm::ProtocolRelativeScript => {
                    writeln!(p, "<script src=\"//{h}/app.js\"></script>")
                }
                LinkForm::MetaRefresh => writeln!(
                    p,
                    "<meta http-equiv=\"refresh\" content=\"30; url=https://{h}/next\">"
                ),
                _ => Ok(()),
            };
        }
        p.push_str("<style>a { background: url(https://style-decoy.example/x.png) }</style>\n");
        p.push_str(
            "<script>document.write('<a href=\"https://script-decoy.example/\">');</script>\n",
        );
        p.push_str("</head><body>\n<h1>Welcome</h1>\n");
        for link in &self.links {
            let h = &link.host;
            let _ = match link.form {
                LinkForm::Anchor => writeln!(p, "<p><a href=\"https://{h}/about\">about</a></p>"),
                LinkForm::UpperCaseAnchor => writeln!(
                    p,
                    "<p><A HREF=\"HTTP://{}/\">shout</A></p>",
                    h.to_ascii_uppercase()
                ),
                LinkForm::Srcset => writeln!(
                    p,
                    "<img src=\"/local.png\" srcset=\"https://{h}/a.png 1x, https://{h}/b.png 2x\">"
                ),
                LinkForm::FormAction => {
                    writeln!(
                        p,
                        "<form action=\"https://{h}/submit\" method=\"post\"></form>"
                    )
                }
                _ => Ok(()),
            };
        }
        let _ = writeln!(
            p,
            "<a href=\"/internal/page\">internal</a> <a href=\"https://www.{apex}/x\">own</a>\n\
             <a href=\"mailto:info@mail-decoy.example\">mail</a> <a href=\"javascript:void(0)\">js</a>\n\
             <a href=\"http://10.1.2.3/\">ip</a> <a href=\"tel:+100\">tel</a>\n\
             <textarea><a href=\"https://textarea-decoy.example/\"></a></textarea>\n</body></html>",
            apex = self.apex
        );
        let _ = self.index;
        p
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
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

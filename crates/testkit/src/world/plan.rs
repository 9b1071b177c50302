//! The plan of a world: every site's DNS data, certificate, robots.txt, redirect and
//! links, drawn from the seed, and how a site turns into served data and the
//! expectations a correct probe meets.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use spyder_model::{EdgeType, apex_of};

use crate::dns::Zone;
use crate::pki::{CertKind, TestCa};
use crate::web::{NamedSite, Reply, Site, TlsMode};

use super::{ExpectedMetrics, ExpectedSite, WorldOptions};

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tls {
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
pub(super) struct SiteSpec {
    index: usize,
    apex: String,
    pub(super) host: String,
    pub(super) ip: Ipv4Addr,
    ipv6: Option<Ipv6Addr>,
    /// CNAME chain from `host` (each hop a new name), the last one holding the A record.
    chain: Vec<String>,
    name_servers: Vec<String>,
    mx: Mx,
    pub(super) tls: Tls,
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

pub(super) struct Plan {
    pub(super) sites: Vec<SiteSpec>,
}

impl Plan {
    pub(super) fn new(seed: u64, n: usize, options: WorldOptions) -> Self {
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
    pub(super) fn build(
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

    /// The scheme the site's root is crawled over: plain HTTP when nothing listens on
    /// the HTTPS port.
    fn scheme(&self) -> &'static str {
        if self.tls == Tls::None {
            "http"
        } else {
            "https"
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
        let scheme = self.scheme();
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
                let other_scheme = other.scheme();
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

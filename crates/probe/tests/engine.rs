//! The whole crawl task against small hand-built testkit worlds: outcomes, redirects,
//! fallbacks, deadlines, politeness and the private-target policy (SPEC §1, §3.4–3.6).

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use spyder_probe::model::{EdgeType, VerifyError};
use spyder_probe::{CrawlReport, Outcome, Probe, ProbeSettings, TlsRoots};
use spyder_testkit::dns::{Behaviour, DnsServer, Zone};
use spyder_testkit::pki::{CertKind, TestCa};
use spyder_testkit::web::{Reply, Site, TlsMode, WebServer};

/// A tiny world: a zone, some sites, and the CA that signs their certificates.
struct Small {
    dns: DnsServer,
    web: WebServer,
    ca: TestCa,
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 3, 0, last)
}

fn allow_robots() -> Reply {
    Reply::Text {
        content_type: "text/plain".into(),
        body: "User-agent: *\nAllow: /\n".into(),
    }
}

/// An HTTPS-only site with a valid certificate and a permissive robots.txt.
fn https(ca: &TestCa, addr: Ipv4Addr, names: &[&str], root: Reply) -> Site {
    Site::https(addr, ca.issue(names, CertKind::Valid).server_config(), root)
        .with_robots(allow_robots())
}

fn site(ca: &TestCa, addr: Ipv4Addr, names: &[&str], kind: CertKind, root: Reply) -> Site {
    Site {
        ip: addr,
        tls: TlsMode::Rustls(ca.issue(names, kind).server_config()),
        plain_http: true,
        robots: allow_robots(),
        routes: vec![("/".to_owned(), root)],
    }
}

async fn start(zone: Zone, sites: Vec<Site>, ca: TestCa) -> Small {
    let dns = DnsServer::start(zone).await.expect("dns starts");
    let web = WebServer::start(sites).await.expect("web starts");
    Small { dns, web, ca }
}

impl Small {
    fn settings(&self) -> ProbeSettings {
        let mut s = ProbeSettings::default();
        s.allow_cidrs = vec!["127.0.0.0/8".parse().expect("cidr")];
        s.https_port = self.web.https_port();
        s.http_port = self.web.http_port();
        s.rate_per_host = 1000.0;
        s.rate_burst = 10;
        s.task_timeout = Duration::from_secs(10);
        s.dns_timeout = Duration::from_secs(3);
        s.tls_timeout = Duration::from_secs(3);
        s.http_timeout = Duration::from_secs(3);
        s.dns.servers = vec![self.dns.addr()];
        s.dns.query_timeout = Duration::from_millis(300);
        s.dns.retries = 1;
        s
    }

    async fn probe_with(&self, settings: ProbeSettings) -> Probe {
        Probe::builder()
            .tls_roots(TlsRoots::Pem(self.ca.root_pem()))
            .settings(settings)
            .build()
            .expect("probe builds")
    }

    async fn crawl(&self, host: &str) -> CrawlReport {
        let probe = self.probe_with(self.settings()).await;
        bounded(probe.crawl(host)).await
    }
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("crawl ends within 30 s")
}

fn edges(r: &CrawlReport, kind: EdgeType) -> BTreeSet<(String, String)> {
    r.records
        .edges
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| (e.source.clone(), e.target.clone()))
        .collect()
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[tokio::test]
async fn complete_crawl_emits_every_edge_type() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("shop.example", ip(1))
        .ns("shop.example", "ns1.dnshost.net")
        .mx("shop.example", 10, "mx.mailhost.com")
        .cname("www.shop.example", "shop.example");
    let page = r#"<a href="https://partner.net/">p</a> <a href="http://1.2.3.4/">ip</a>
        <a href="/local">l</a> <a href="https://blog.shop.example/">internal</a>"#;
    let sites = vec![site(
        &ca,
        ip(1),
        &["shop.example"],
        CertKind::Valid,
        Reply::Html(page.into()),
    )];
    let w = start(zone, sites, ca).await;

    let r = w.crawl("WWW.Shop.Example.").await;
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(
        r.host.as_ref().map(|h| h.as_str()),
        Some("www.shop.example")
    );
    assert_eq!(
        edges(&r, EdgeType::AliasOf),
        BTreeSet::from([pair("www.shop.example", "shop.example")])
    );
    assert_eq!(
        edges(&r, EdgeType::ResolvesTo),
        BTreeSet::from([pair("www.shop.example", "127.3.0.1")])
    );
    // NS and MX of a name in the CNAME chain count for the host.
    assert_eq!(
        edges(&r, EdgeType::UsesNs),
        BTreeSet::from([pair("www.shop.example", "ns1.dnshost.net")])
    );
    assert_eq!(
        edges(&r, EdgeType::UsesMx),
        BTreeSet::from([pair("www.shop.example", "mx.mailhost.com")])
    );
    // IP literals and same-apex links yield nothing (B-16).
    assert_eq!(
        edges(&r, EdgeType::LinksTo),
        BTreeSet::from([pair("www.shop.example", "partner.net")])
    );
    let cert = r.records.nodes_cert.first().expect("a certificate node");
    assert_eq!(
        edges(&r, EdgeType::UsesCert),
        BTreeSet::from([pair("www.shop.example", &cert.spki_sha256)])
    );
    // The cert was issued for shop.example only: wrong name for www (B-17).
    assert!(!cert.verified);
    assert_eq!(cert.verify_error, Some(VerifyError::NameMismatch));
    assert_eq!(cert.sans, vec!["shop.example".to_owned()]);
    for c in [
        "shop.example",
        "ns1.dnshost.net",
        "mx.mailhost.com",
        "partner.net",
    ] {
        assert!(
            r.candidates.iter().any(|h| h.as_str() == c),
            "candidate {c} missing"
        );
    }
}

#[tokio::test]
async fn certificate_faults_are_recorded_not_dropped() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    let cases = [
        ("good.example", CertKind::Valid, None),
        ("old.example", CertKind::Expired, Some(VerifyError::Expired)),
        (
            "self.example",
            CertKind::SelfSigned,
            Some(VerifyError::UnknownIssuer),
        ),
        (
            "early.example",
            CertKind::NotYetValid,
            Some(VerifyError::NotYetValid),
        ),
    ];
    let mut sites = Vec::new();
    for (i, (name, kind, _)) in cases.iter().enumerate() {
        zone.a(name, ip(10 + i as u8));
        sites.push(site(
            &ca,
            ip(10 + i as u8),
            &[name],
            *kind,
            Reply::Html("ok".into()),
        ));
    }
    let w = start(zone, sites, ca).await;
    for (name, _, want) in cases {
        let r = w.crawl(name).await;
        assert_eq!(r.outcome, Outcome::Complete, "{name}");
        let cert = r
            .records
            .nodes_cert
            .first()
            .unwrap_or_else(|| panic!("{name}: no cert"));
        assert_eq!(cert.verified, want.is_none(), "{name}");
        assert_eq!(cert.verify_error, want, "{name}");
    }
}

#[tokio::test]
async fn dns_outcomes() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.ns("nodata.example", "ns.example.net")
        .a("broken.example", ip(1))
        .behave("broken.example", Behaviour::ServFail)
        .a("gone.example", ip(1))
        .behave("gone.example", Behaviour::Drop)
        .a("private.example", Ipv4Addr::new(10, 1, 2, 3))
        .a("excluded.gov", ip(1))
        .a("web-less.example", ip(99));
    let w = start(zone, Vec::new(), ca).await;
    assert_eq!(
        w.crawl("nothing-here.example").await.outcome,
        Outcome::NoAddress
    );
    let r = w.crawl("nodata.example").await;
    assert_eq!(r.outcome, Outcome::NoAddress);
    assert_eq!(edges(&r, EdgeType::UsesNs).len(), 1, "DNS records are kept");
    assert_eq!(w.crawl("broken.example").await.outcome, Outcome::DnsError);
    assert_eq!(w.crawl("gone.example").await.outcome, Outcome::DnsError);
    let r = w.crawl("private.example").await;
    assert_eq!(r.outcome, Outcome::PrivateRefused);
    assert_eq!(
        edges(&r, EdgeType::ResolvesTo).len(),
        1,
        "RESOLVES_TO to a refused address is kept"
    );
    let r = w.crawl("excluded.gov").await;
    assert_eq!(r.outcome, Outcome::Excluded);
    assert_eq!(
        edges(&r, EdgeType::ResolvesTo).len(),
        1,
        "DNS ran for the excluded host"
    );
    let r = w.crawl("web-less.example").await;
    assert_eq!(r.outcome, Outcome::NoWeb);
    // The detail says what the connects met (nothing listens on either port).
    assert_eq!(
        r.detail.as_deref(),
        Some("https connect_refused; http connect_refused")
    );
    let r = w.crawl("bad_name.example").await;
    assert_eq!(r.outcome, Outcome::Invalid);
    assert!(r.records.is_empty());
    assert_eq!(r.detail.as_deref(), Some("invalid character '_'"));
}

#[tokio::test]
async fn robots_rules_decide_and_cost_a_request() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    let cases = [
        ("r503.example", Reply::Status(503), Outcome::RobotsBlocked),
        ("r403.example", Reply::Status(403), Outcome::Complete),
        ("r404.example", Reply::Status(404), Outcome::Complete),
        ("hang.example", Reply::Hang, Outcome::RobotsBlocked),
        (
            "us.example",
            Reply::Text {
                content_type: "text/plain".into(),
                body: "User-agent: *\nAllow: /\n\nUser-agent: SpyderProbe\nDisallow: /\n".into(),
            },
            Outcome::RobotsBlocked,
        ),
        (
            "huge.example",
            Reply::Big(10 * 1024 * 1024),
            Outcome::Complete,
        ),
    ];
    let mut sites = Vec::new();
    for (i, (name, robots, _)) in cases.iter().enumerate() {
        zone.a(name, ip(20 + i as u8));
        let mut s = site(
            &ca,
            ip(20 + i as u8),
            &[name],
            CertKind::Valid,
            Reply::Html("x".into()),
        );
        s.robots = robots.clone();
        sites.push(s);
    }
    let w = start(zone, sites, ca).await;
    let mut settings = w.settings();
    settings.http_timeout = Duration::from_millis(500);
    let probe = w.probe_with(settings).await;
    for (i, (name, _, want)) in cases.iter().enumerate() {
        let r = bounded(probe.crawl(name)).await;
        assert_eq!(r.outcome, *want, "{name}");
        if *want == Outcome::RobotsBlocked {
            assert!(
                !r.records.nodes_cert.is_empty(),
                "{name}: the certificate is kept"
            );
            let root_requests = w
                .web
                .requests()
                .iter()
                .filter(|q| q.ip == ip(20 + i as u8) && q.path == "/")
                .count();
            assert_eq!(
                root_requests, 0,
                "{name}: / was requested despite robots.txt"
            );
        }
    }
    // A 10 MiB robots.txt is read no further than 500 KiB (plus socket buffers).
    let sent = w.web.bytes_sent(ip(25));
    assert!(
        sent <= 500 * 1024 + 256 * 1024,
        "huge robots.txt: {sent} bytes sent"
    );
}

#[tokio::test]
async fn http_only_and_legacy_tls_hosts_fall_back_to_plain_http() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("plain.example", ip(30))
        .a("legacy.example", ip(31))
        .a("garbage.example", ip(32));
    let page = Reply::Html(r#"<a href="https://elsewhere.org/">x</a>"#.into());
    let mk = |addr, tls| Site {
        ip: addr,
        tls,
        plain_http: true,
        robots: Reply::Status(404),
        routes: vec![("/".to_owned(), page.clone())],
    };
    let sites = vec![
        mk(ip(30), TlsMode::Off),
        mk(ip(31), TlsMode::LegacyOnly),
        mk(ip(32), TlsMode::Garbage),
    ];
    let w = start(zone, sites, ca).await;
    for name in ["plain.example", "legacy.example", "garbage.example"] {
        let r = w.crawl(name).await;
        assert_eq!(r.outcome, Outcome::Complete, "{name}");
        assert!(r.records.nodes_cert.is_empty(), "{name}: no certificate");
        assert_eq!(
            edges(&r, EdgeType::LinksTo),
            BTreeSet::from([pair(name, "elsewhere.org")]),
            "{name}"
        );
    }
    // Without the fallback, the same hosts have no web.
    let mut settings = w.settings();
    settings.http_fallback = false;
    let probe = w.probe_with(settings).await;
    let r = bounded(probe.crawl("legacy.example")).await;
    assert_eq!(r.outcome, Outcome::NoWeb);
    assert_eq!(r.detail.as_deref(), Some("https protocol_version"));
}

#[tokio::test]
async fn redirects_follow_checked_hosts_with_their_own_sni() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("start.example", ip(40))
        .a("www.start.example", ip(40))
        .a("landing.net", ip(41))
        // A loopback address outside the allowed range below: refused as private,
        // and a site listens there, so a dial would be seen.
        .a("evil.example", ip(99))
        .a("loop.example", ip(42))
        .a("intranet.example", ip(43));
    let redirect = |status, location: &str| Reply::Redirect {
        status,
        location: location.into(),
    };
    let names = ["start.example", "www.start.example"];
    let start_site = https(
        &ca,
        ip(40),
        &names,
        redirect(301, "https://www.start.example/home"),
    )
    .with_route("/home", redirect(302, "https://landing.net/welcome/"));
    // Links on the final page resolve against the final URL.
    let landing = https(&ca, ip(41), &["landing.net"], Reply::Status(404)).with_route(
        "/welcome/",
        Reply::Html(r#"<a href="//cdn.assets.io/x.js">a</a><a href="next.html">b</a>"#.into()),
    );
    let looping = https(&ca, ip(42), &["loop.example"], redirect(307, "/a"))
        .with_route("/a", redirect(308, "/"));
    let intranet = https(
        &ca,
        ip(43),
        &["intranet.example"],
        redirect(302, "https://evil.example/"),
    );
    let evil = https(&ca, ip(99), &["evil.example"], Reply::Html("inside".into()));
    let w = start(zone, vec![start_site, landing, looping, intranet, evil], ca).await;

    let r = w.crawl("start.example").await;
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(
        edges(&r, EdgeType::LinksTo),
        BTreeSet::from([
            pair("start.example", "landing.net"),
            pair("start.example", "cdn.assets.io")
        ])
    );
    // P-4: the cross-host hop was made with SNI and Host of the new host.
    let log = w.web.requests();
    let welcome = log
        .iter()
        .find(|q| q.path == "/welcome/")
        .expect("landing page fetched");
    assert_eq!(welcome.sni.as_deref(), Some("landing.net"));
    assert_eq!(welcome.host_header.as_deref(), Some("landing.net"));
    let home = log
        .iter()
        .find(|q| q.path == "/home")
        .expect("same-apex hop fetched");
    assert_eq!(home.sni.as_deref(), Some("www.start.example"));
    assert!(
        r.candidates
            .iter()
            .any(|h| h.as_str() == "www.start.example")
    );

    // A redirect loop ends after max_redirects hops and still counts as a response.
    let r = w.crawl("loop.example").await;
    assert_eq!(r.outcome, Outcome::Complete);
    let hops = w
        .web
        .requests()
        .iter()
        .filter(|q| q.ip == ip(42) && q.path != "/robots.txt")
        .count();
    assert_eq!(hops, 1 + 5, "the first request plus max_redirects hops");

    // A redirect to a refused address is never dialled, but still an edge (other
    // apex): the crawl makes one connection, to intranet.example itself.
    let mut settings = w.settings();
    settings.allow_cidrs = vec!["127.3.0.0/26".parse().expect("cidr")];
    let probe = w.probe_with(settings).await;
    let before = w.web.accepted_connections();
    let r = bounded(probe.crawl("intranet.example")).await;
    assert_eq!(
        w.web.accepted_connections() - before,
        1,
        "only intranet.example was dialled"
    );
    assert!(w.web.requests().iter().all(|q| q.ip != ip(99)));
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(
        edges(&r, EdgeType::LinksTo),
        BTreeSet::from([pair("intranet.example", "evil.example")])
    );
}

#[tokio::test]
async fn private_targets_are_refused_unless_allowed() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("inside.example", ip(50))
        .a("localhost", ip(50))
        .a("x.localhost", ip(50));
    let sites = vec![site(
        &ca,
        ip(50),
        &["inside.example"],
        CertKind::Valid,
        Reply::Html("x".into()),
    )];
    let w = start(zone, sites, ca).await;
    let mut strict = w.settings();
    strict.allow_cidrs = Vec::new();
    let probe = w.probe_with(strict).await;
    for name in ["inside.example", "x.localhost"] {
        let r = bounded(probe.crawl(name)).await;
        assert_eq!(r.outcome, Outcome::PrivateRefused, "{name}");
    }
    assert!(w.web.requests().is_empty(), "nothing was dialled");
    let mut open = w.settings();
    open.allow_cidrs = Vec::new();
    open.allow_private = true;
    let probe = w.probe_with(open).await;
    assert_eq!(
        bounded(probe.crawl("inside.example")).await.outcome,
        Outcome::Complete
    );
}

#[tokio::test]
async fn a_black_holed_host_ends_within_the_task_deadline() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("hole.example", ip(60)).a("slow.example", ip(61));
    let hole = Site {
        ip: ip(60),
        tls: TlsMode::Hang,
        plain_http: false,
        robots: allow_robots(),
        routes: Vec::new(),
    };
    let slow = site(
        &ca,
        ip(61),
        &["slow.example"],
        CertKind::Valid,
        Reply::Slow(
            Duration::from_secs(60),
            Box::new(Reply::Html("late".into())),
        ),
    );
    let w = start(zone, vec![hole, slow], ca).await;
    let mut settings = w.settings();
    settings.task_timeout = Duration::from_secs(2);
    settings.tls_timeout = Duration::from_secs(5);
    settings.http_timeout = Duration::from_secs(30);
    let probe = w.probe_with(settings).await;
    let started = Instant::now();
    let r = bounded(probe.crawl("hole.example")).await;
    assert_eq!(r.outcome, Outcome::Timeout);
    assert_eq!(r.detail.as_deref(), Some("task_timeout in tls"));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by task_timeout"
    );
    // Partial records survive the deadline: DNS edges, and the cert seen before the hang.
    assert_eq!(edges(&r, EdgeType::ResolvesTo).len(), 1);
    let r = bounded(probe.crawl("slow.example")).await;
    assert_eq!(r.outcome, Outcome::Timeout);
    // robots.txt answered at once (the script is the root page's); the root page hung.
    assert_eq!(r.detail.as_deref(), Some("task_timeout in fetch"));
    assert_eq!(
        r.records.nodes_cert.len(),
        1,
        "the certificate seen before the deadline is kept"
    );
}

#[tokio::test]
async fn each_request_takes_a_politeness_token() {
    // B-27 / P-5: robots.txt, `/` and each redirect hop of one host are spaced by
    // 1/rate after the burst, even with several workers crawling the host at once.
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("polite.example", ip(70));
    let hop = |to: &str| Reply::Redirect {
        status: 302,
        location: to.into(),
    };
    let s = https(&ca, ip(70), &["polite.example"], hop("/one"))
        .with_route("/one", hop("/two"))
        .with_route("/two", Reply::Html("done".into()));
    let w = start(zone, vec![s], ca).await;
    let mut settings = w.settings();
    settings.rate_per_host = 5.0;
    settings.rate_burst = 1;
    let probe = Arc::new(w.probe_with(settings).await);
    let a = tokio::spawn({
        let p = Arc::clone(&probe);
        async move { p.crawl("polite.example").await }
    });
    let b = tokio::spawn({
        let p = Arc::clone(&probe);
        async move { p.crawl("polite.example").await }
    });
    for t in [a, b] {
        let r = bounded(t).await.expect("task");
        assert_eq!(r.outcome, Outcome::Complete);
    }
    let mut times: Vec<Instant> = w.web.requests().iter().map(|q| q.at).collect();
    times.sort();
    assert!(
        times.len() >= 7,
        "robots once (cached), then 3 requests per crawl: {}",
        times.len()
    );
    // Tokens are 200 ms apart when taken; the server sees each request a connect or a
    // write later, which varies per request (a new TLS connection, a reused one), so a
    // single gap may shrink by that difference. No gap is a burst, and the whole run
    // keeps the rate.
    for pair in times.windows(2) {
        let gap = pair[1].duration_since(pair[0]);
        assert!(
            gap >= Duration::from_millis(100),
            "requests only {gap:?} apart"
        );
    }
    let span = times[times.len() - 1].duration_since(times[0]);
    let tokens = u32::try_from(times.len() - 1).expect("few requests");
    assert!(
        span >= Duration::from_millis(200) * tokens - Duration::from_millis(100),
        "{} requests in {span:?}",
        times.len()
    );
}

/// Open file descriptors of this process (sockets included).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_return_to_baseline_after_many_error_pages() {
    // B-10: 1,000 hosts answering 500 leave no connection behind, on either side.
    let ca = TestCa::new();
    let mut zone = Zone::new();
    let mut sites = Vec::new();
    let mut names = Vec::new();
    for i in 0..1000u32 {
        let name = format!("err{i}.example");
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 4, 0, 1)) + i);
        zone.a(&name, addr);
        sites.push(Site {
            ip: addr,
            tls: TlsMode::Off,
            plain_http: true,
            robots: Reply::Status(404),
            routes: vec![("/".to_owned(), Reply::Status(500))],
        });
        names.push(name);
    }
    let w = start(zone, sites, ca).await;
    let probe = Arc::new(w.probe_with(w.settings()).await);
    let baseline = open_fds();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for name in names {
        let (probe, sem) = (Arc::clone(&probe), Arc::clone(&sem));
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await.expect("semaphore open");
            probe.crawl(&name).await.outcome
        }));
    }
    for t in tasks {
        assert_eq!(bounded(t).await.expect("task"), Outcome::Complete);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while (open_fds() > baseline || w.web.open_connections() > 0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        open_fds() <= baseline,
        "fds {} > baseline {baseline}",
        open_fds()
    );
    assert_eq!(
        w.web.open_connections(),
        0,
        "server still holds connections"
    );
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_cap() {
    // B-11: the server sends at most body_max_bytes + 64 KiB (+ headers).
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("endless.example", ip(80)).a("big.example", ip(81));
    let sites = vec![
        site(
            &ca,
            ip(80),
            &["endless.example"],
            CertKind::Valid,
            Reply::Endless,
        ),
        site(
            &ca,
            ip(81),
            &["big.example"],
            CertKind::Valid,
            Reply::Big(100 * 1024 * 1024),
        ),
    ];
    let w = start(zone, sites, ca).await;
    let cap = 64 * 1024;
    let mut settings = w.settings();
    settings.body_max_bytes = cap;
    let probe = w.probe_with(settings).await;
    for (name, addr) in [("endless.example", ip(80)), ("big.example", ip(81))] {
        let r = bounded(probe.crawl(name)).await;
        assert_eq!(r.outcome, Outcome::Complete, "{name}");
        // Let the server notice the close; its count only grows while we read.
        let deadline = Instant::now() + Duration::from_secs(5);
        while w.web.open_connections() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sent = w.web.bytes_sent(addr) as usize;
        assert!(
            sent <= cap + 64 * 1024 + 4096,
            "{name}: server sent {sent} bytes"
        );
    }
}

#[tokio::test]
async fn settings_swap_between_tasks() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("agency.gov", ip(90));
    let sites = vec![site(
        &ca,
        ip(90),
        &["agency.gov"],
        CertKind::Valid,
        Reply::Html("hi".into()),
    )];
    let w = start(zone, sites, ca).await;
    let probe = w.probe_with(w.settings()).await;
    assert_eq!(
        bounded(probe.crawl("agency.gov")).await.outcome,
        Outcome::Excluded
    );
    let mut next = (*probe.settings()).clone();
    next.exclude_tlds.clear();
    probe.update_settings(Arc::new(next));
    assert_eq!(
        bounded(probe.crawl("agency.gov")).await.outcome,
        Outcome::Complete
    );
}

#[tokio::test]
async fn a_redirect_to_loopback_is_refused_when_only_a_narrower_range_is_allowed() {
    // P-4: 127.0.0.1 is private; allowing 127.3.0.0/16 does not allow it.
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("front.example", ip(100))
        .a("loopback.example", Ipv4Addr::LOCALHOST);
    let front = https(
        &ca,
        ip(100),
        &["front.example"],
        Reply::Redirect {
            status: 302,
            location: "https://loopback.example/".into(),
        },
    );
    let local = https(
        &ca,
        Ipv4Addr::LOCALHOST,
        &["loopback.example"],
        Reply::Html("x".into()),
    );
    let w = start(zone, vec![front, local], ca).await;
    let mut settings = w.settings();
    settings.allow_cidrs = vec!["127.3.0.0/16".parse().expect("cidr")];
    let probe = w.probe_with(settings).await;
    let r = bounded(probe.crawl("front.example")).await;
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(
        edges(&r, EdgeType::LinksTo),
        BTreeSet::from([pair("front.example", "loopback.example")])
    );
    let dialled: Vec<_> = w
        .web
        .requests()
        .into_iter()
        .filter(|q| q.ip == Ipv4Addr::LOCALHOST)
        .collect();
    assert!(
        dialled.is_empty(),
        "a refused address was dialled: {dialled:?}"
    );
}

#[tokio::test]
async fn only_html_bodies_are_parsed_whatever_their_spelling() {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    let link = r#"<html><body><a href="https://target.org/">t</a></body></html>"#;
    let gzipped = Reply::Gzip {
        content_type: "text/html; charset=utf-8".into(),
        body: link.into(),
    };
    let cases: [(&str, Reply, bool); 6] = [
        (
            "upper.example",
            Reply::Text {
                content_type: "TEXT/HTML; Charset=UTF-8".into(),
                body: link.into(),
            },
            true,
        ),
        (
            "xhtml.example",
            Reply::Text {
                content_type: "application/xhtml+xml".into(),
                body: link.into(),
            },
            true,
        ),
        ("gzip.example", gzipped, true),
        (
            "json.example",
            Reply::Text {
                content_type: "application/json".into(),
                body: link.into(),
            },
            false,
        ),
        (
            "error.example",
            Reply::StatusPage {
                status: 404,
                body: link.into(),
            },
            false,
        ),
        ("reset.example", Reply::ResetMidBody(link.repeat(50)), false),
    ];
    let mut sites = Vec::new();
    for (i, (name, reply, _)) in cases.iter().enumerate() {
        zone.a(name, ip(110 + i as u8));
        sites.push(https(&ca, ip(110 + i as u8), &[name], reply.clone()));
    }
    let w = start(zone, sites, ca).await;
    for (name, _, parsed) in cases {
        let r = w.crawl(name).await;
        assert_eq!(r.outcome, Outcome::Complete, "{name}");
        let want = if parsed {
            BTreeSet::from([pair(name, "target.org")])
        } else {
            BTreeSet::new()
        };
        assert_eq!(edges(&r, EdgeType::LinksTo), want, "{name}");
    }
}

/// The value of counter `name{labels}` in a rendered exposition (0 when absent).
fn counter_in(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    let scrape = spyder_testkit::prometheus::Scrape::parse(text).expect("valid exposition");
    scrape.sum(name, labels) as u64
}

/// Every A and AAAA query the world's DNS server answered for `name`.
fn address_queries(dns: &DnsServer, name: &str) -> u64 {
    use hickory_proto::rr::RecordType;
    dns.queries_for(name, RecordType::A) + dns.queries_for(name, RecordType::AAAA)
}

#[tokio::test]
async fn redirect_ports_decide_which_redirects_are_followed() {
    // Issue 10: `Location: http://allowed-host:6380/` was followed and its body read.
    // A current-thread runtime: the local recorder sees every task of the crawl.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let rendered = recorder.handle();
    let _recorder = metrics::set_default_local_recorder(&recorder);
    let refused = || {
        counter_in(
            &rendered.render(),
            "spyder_redirects_refused_total",
            &[("reason", "port")],
        )
    };

    // A service on a port of its own: a second server, whose plain-HTTP port is
    // neither of the probe's ports (two ephemeral ports can coincide: then again).
    let mut attempts = 0;
    let (w, other, port) = loop {
        let other = WebServer::start(vec![Site::plain(
            ip(111),
            Reply::Html(r#"<a href="https://deep.io/">deep</a>"#.into()),
        )])
        .await
        .expect("second server starts");
        let port = other.http_port();
        let w = redirecting_world(port).await;
        if ![w.web.https_port(), w.web.http_port()].contains(&port) {
            break (w, other, port);
        }
        attempts += 1;
        assert!(attempts < 5, "no distinct ports");
    };
    let links = |r: &CrawlReport| edges(r, EdgeType::LinksTo);
    let followed = BTreeSet::from([
        pair("front.example", "other.net"),
        pair("front.example", "deep.io"),
    ]);

    // Default (no list): a port off the bad-port list is followed and its page read.
    let r = w.crawl("front.example").await;
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(links(&r), followed);
    assert_eq!(other.accepted_connections(), 1);
    assert_eq!(refused(), 0);

    // A list without that port: not followed, not resolved, not dialled; counted, and
    // the target on another apex is still linked.
    let lookups = address_queries(&w.dns, "other.net");
    let mut listed_elsewhere = w.settings();
    listed_elsewhere.redirect_ports = vec![port.wrapping_add(1).max(1)];
    let probe = w.probe_with(listed_elsewhere).await;
    let r = bounded(probe.crawl("front.example")).await;
    assert_eq!(r.outcome, Outcome::Complete, "the redirect was a response");
    assert_eq!(
        links(&r),
        BTreeSet::from([pair("front.example", "other.net")])
    );
    assert_eq!(other.accepted_connections(), 1, "never dialled");
    assert_eq!(
        address_queries(&w.dns, "other.net"),
        lookups,
        "never resolved"
    );
    assert_eq!(other.requests().len(), 1, "only the first crawl's request");
    assert_eq!(refused(), 1);

    // A list naming the port: followed again.
    let mut listed = w.settings();
    listed.redirect_ports = vec![port];
    let r = bounded(w.probe_with(listed).await.crawl("front.example")).await;
    assert_eq!(links(&r), followed);
    assert_eq!(other.accepted_connections(), 2);
    assert_eq!(refused(), 1);

    // A bad port with the default settings: refused, never resolved, still linked.
    let r = w.crawl("relay.example").await;
    assert_eq!(r.outcome, Outcome::Complete);
    assert_eq!(
        links(&r),
        BTreeSet::from([pair("relay.example", "mail.org")])
    );
    assert_eq!(address_queries(&w.dns, "mail.org"), 0);
    assert_eq!(refused(), 2);
}

/// front.example redirects to `other.net:<port>`, relay.example to `mail.org:25`.
async fn redirecting_world(port: u16) -> Small {
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("front.example", ip(110))
        .a("other.net", ip(111))
        .a("relay.example", ip(112))
        .a("mail.org", ip(113));
    let front = https(
        &ca,
        ip(110),
        &["front.example"],
        Reply::Redirect {
            status: 302,
            location: format!("http://other.net:{port}/"),
        },
    );
    // 25 (SMTP) is a bad port: refused before its host is even resolved.
    let relay = https(
        &ca,
        ip(112),
        &["relay.example"],
        Reply::Redirect {
            status: 301,
            location: "http://mail.org:25/".into(),
        },
    );
    start(zone, vec![front, relay], ca).await
}

/// A listener on `addr` whose accept queue is full and never drained: further
/// connects get no SYN-ACK, as from a filtered address. Keep the returned values.
fn filtered(ip: Ipv4Addr) -> (u16, socket2::Socket, Vec<std::net::TcpStream>) {
    let socket =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    socket
        .bind(&std::net::SocketAddr::from((ip, 0)).into())
        .expect("bind");
    socket.listen(0).expect("listen");
    let addr = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .expect("local addr");
    // Fill the queue (Linux takes backlog + 1); bounded attempts, short timeouts.
    let mut filled = Vec::new();
    for _ in 0..4 {
        if let Ok(s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            filled.push(s);
        }
    }
    (addr.port(), socket, filled)
}

#[tokio::test]
async fn a_filtered_host_costs_at_most_tls_timeout_plus_one_second() {
    // SPEC §1 step 6: after the TLS connect timed out, the port-80 fallback gets 1 s.
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("filtered.example", ip(62));
    let w = start(zone, Vec::new(), ca).await;
    let https = filtered(ip(62));
    let http = filtered(ip(62));
    let mut settings = w.settings();
    settings.tls_timeout = Duration::from_secs(3);
    settings.task_timeout = Duration::from_secs(20);
    settings.http_fallback = true;
    settings.https_port = https.0;
    settings.http_port = http.0;
    let probe = w.probe_with(settings).await;
    let r = bounded(probe.crawl("filtered.example")).await;
    assert_eq!(r.outcome, Outcome::NoWeb, "{r:?}");
    assert_eq!(r.detail.as_deref(), Some("https timeout; http timeout"));
    let connect = r.timings.connect.expect("the connect phase ran");
    // tls_timeout + 1 s, loosely (a second full timeout would be 6 s).
    assert!(
        connect < Duration::from_millis(5_000),
        "connect phase took {connect:?}"
    );
    assert!(connect >= Duration::from_secs(3), "{connect:?}");
}

#[tokio::test]
async fn links_resolve_against_the_final_url_not_the_first() {
    // `https:cdn.example/` is a path relative to an https base but an absolute URL
    // against an http one (WHATWG URL, special schemes): so the links of a page reached
    // through a redirect from https to http show which base was used.
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("first.example", ip(70)).a("final.net", ip(71));
    let first = https(
        &ca,
        ip(70),
        &["first.example"],
        Reply::Redirect {
            status: 302,
            location: "http://final.net/page".into(),
        },
    );
    let last = Site::plain(ip(71), Reply::Status(404))
        .with_robots(allow_robots())
        .with_route(
            "/page",
            Reply::Html(r#"<a href="https:cdn.example/">a</a><a href="http:same/">b</a>"#.into()),
        );
    let w = start(zone, vec![first, last], ca).await;
    let r = w.crawl("first.example").await;
    assert_eq!(r.outcome, Outcome::Complete, "{r:?}");
    assert_eq!(
        edges(&r, EdgeType::LinksTo),
        BTreeSet::from([
            pair("first.example", "final.net"),
            // Only against the final (http) base is `https:cdn.example/` absolute; the
            // first (https) base would have made `http:same/` a host named `same`.
            pair("first.example", "cdn.example"),
        ])
    );
}

#[tokio::test]
async fn a_redirect_to_another_origin_on_the_same_address_needs_no_second_slot() {
    // max_conns_per_ip = 1 and every hop on one address: a task that kept its first
    // connection while opening the next would wait for itself until its deadline.
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("one.example", ip(45)).a("www.one.example", ip(45));
    let names = ["one.example", "www.one.example"];
    let hop = |to: &str| Reply::Redirect {
        status: 302,
        location: to.into(),
    };
    let s = site(
        &ca,
        ip(45),
        &names,
        CertKind::Valid,
        hop("https://www.one.example/home"),
    )
    .with_route("/home", hop("http://one.example/plain"))
    .with_route(
        "/plain",
        Reply::Html(r#"<a href="https://far.net/">f</a>"#.into()),
    );
    let w = start(zone, vec![s], ca).await;
    let mut settings = w.settings();
    settings.max_conns_per_ip = 1;
    settings.task_timeout = Duration::from_secs(8);
    let probe = w.probe_with(settings).await;
    let r = bounded(probe.crawl("one.example")).await;
    assert_eq!(r.outcome, Outcome::Complete, "{r:?}");
    assert_eq!(
        edges(&r, EdgeType::LinksTo),
        BTreeSet::from([pair("one.example", "far.net")])
    );
    let paths: Vec<String> = w.web.requests().iter().map(|q| q.path.clone()).collect();
    assert_eq!(paths, ["/robots.txt", "/", "/home", "/plain"]);
}

#[tokio::test]
async fn a_slow_redirect_loop_ends_by_the_task_deadline_with_partial_records() {
    // Issue 11 item 3: two hosts redirecting to each other, each hop slow, with room
    // for 20 hops: the task deadline ends it, and what was seen before is kept.
    let ca = TestCa::new();
    let mut zone = Zone::new();
    zone.a("ping.example", ip(46)).a("pong.org", ip(47));
    let slow_hop = |to: &str| {
        Reply::Slow(
            Duration::from_millis(400),
            Box::new(Reply::Redirect {
                status: 302,
                location: to.into(),
            }),
        )
    };
    let ping = https(
        &ca,
        ip(46),
        &["ping.example"],
        slow_hop("https://pong.org/"),
    );
    let pong = https(
        &ca,
        ip(47),
        &["pong.org"],
        slow_hop("https://ping.example/"),
    );
    let w = start(zone, vec![ping, pong], ca).await;
    let mut settings = w.settings();
    settings.max_redirects = 20;
    settings.task_timeout = Duration::from_secs(2);
    let probe = w.probe_with(settings).await;
    let started = Instant::now();
    let r = bounded(probe.crawl("ping.example")).await;
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "bounded by task_timeout"
    );
    assert_eq!(
        edges(&r, EdgeType::ResolvesTo),
        BTreeSet::from([pair("ping.example", &ip(46).to_string())])
    );
    assert_eq!(edges(&r, EdgeType::UsesCert).len(), 1, "the cert is kept");
    assert_eq!(
        edges(&r, EdgeType::LinksTo),
        BTreeSet::from([pair("ping.example", "pong.org")]),
        "the redirect seen before the deadline is kept"
    );
    let hops = w.web.requests().iter().filter(|q| q.path == "/").count();
    assert!((1..21).contains(&hops), "{hops} hops before the deadline");
}

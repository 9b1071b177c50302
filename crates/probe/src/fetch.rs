//! The web phase: connections, robots.txt, the root page and redirects (SPEC §3.4, §3.6).
//!
//! One connection per host serves the certificate, robots.txt and `/`. Redirects to
//! another host are resolved by our own DNS client, checked against the private-target
//! policy and reached on a new connection with SNI and `Host` set to the new host.
//! Every request takes a token from the target host's bucket first.
//!
//! Every connection holds a slot of its address ([`AddressLimiter`],
//! `crawling.max_conns_per_ip`) from before its connect until its socket is closed. A
//! task holds one connection at a time: it closes the one it has before opening
//! another, so it never holds a slot while waiting for one (no two tasks can wait on
//! each other's addresses).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use spyder_model::{HostName, NameKind, NodeCert};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tracing::Instrument as _;
use url::Url;

use crate::dns::{self, DnsClient};
use crate::http::{self, HttpSession, ResponseHead};
use crate::links;
use crate::policy;
use crate::politeness::{AddressLimiter, AddressSlot, GlobalLimiter, HostLimiter};
use crate::robots::{ROBOTS_MAX_BYTES, RobotsCache, RobotsRules};
use crate::tls::{TlsConnectError, TlsConnector};
use crate::{PhaseTimings, ProbeSettings};

/// Most distinct hosts taken from one page (SPEC §3.4).
const MAX_LINK_HOSTS: usize = 10_000;
/// Redirect hops followed for robots.txt (SPEC §3.6).
const ROBOTS_MAX_REDIRECTS: u32 = 5;
/// Addresses of one host tried before giving up on it.
const MAX_ADDRESSES_TRIED: usize = 3;
/// The plain-HTTP fallback's budget after the TLS attempts timed out (SPEC §1 step 6).
const FILTERED_FALLBACK_BUDGET: Duration = Duration::from_secs(1);

/// The shared machinery the web phase runs on.
pub(crate) struct Web<'a> {
    pub settings: &'a ProbeSettings,
    pub dns: &'a DnsClient,
    pub tls: &'a TlsConnector,
    pub limiter: &'a HostLimiter,
    pub global_limiter: &'a GlobalLimiter,
    pub addresses: &'a AddressLimiter,
    pub robots: &'a RobotsCache,
}

/// What the web phase observed. Filled in as it goes, so a task cut short by its
/// deadline keeps whatever was already seen.
#[derive(Debug, Default)]
pub(crate) struct WebFindings {
    /// At least one connection (TLS or plain) was established to the host.
    pub connected: bool,
    /// The crawled host's own leaf certificate.
    pub cert: Option<NodeCert>,
    /// robots.txt disallowed `/`.
    pub robots_blocked: bool,
    /// The root page request (after redirects) got a response.
    pub responded: bool,
    /// Every valid host a redirect pointed at, in order.
    pub redirect_hosts: Vec<HostName>,
    /// Hosts linked from the final page.
    pub link_hosts: Vec<HostName>,
    /// Why no response came, in bounded labels (the report's detail of a `no_web`
    /// task): `https timeout`, `https connect_refused; http connect_refused`,
    /// `root request protocol`, ...
    pub failure: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Https,
    Http,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Https => "https",
            Self::Http => "http",
        }
    }
}

/// Where a connection goes: host, scheme and port.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Origin {
    host: HostName,
    scheme: Scheme,
    port: u16,
}

/// An open HTTP/1.1 connection to one origin.
struct Conn {
    origin: Origin,
    addr: SocketAddr,
    session: HttpSession,
}

/// The crawled host's own origin and the address that answered on it.
struct Home {
    origin: Origin,
    ip: IpAddr,
}

/// A TCP stream with its address's connection slot: the slot goes back only once the
/// stream is dropped, that is once the socket is closed (fields drop in order).
struct SlottedStream {
    tcp: TcpStream,
    _slot: AddressSlot,
}

impl AsyncRead for SlottedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SlottedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

impl Web<'_> {
    /// Runs steps 6–10 for `host`, whose permitted `addresses` were already checked.
    pub async fn run(
        &self,
        host: &HostName,
        addresses: &[IpAddr],
        found: &mut WebFindings,
        timings: &mut PhaseTimings,
    ) {
        let started = Instant::now();
        let Some(conn) = self
            .connect_first(host, addresses, found)
            .instrument(tracing::info_span!("tls"))
            .await
        else {
            timings.connect = Some(started.elapsed());
            return;
        };
        timings.connect = Some(started.elapsed());
        found.connected = true;
        let home = Home {
            origin: conn.origin.clone(),
            ip: conn.addr.ip(),
        };
        let mut link = Some(conn);

        let started = Instant::now();
        let rules = self
            .robots_rules(&mut link, &home)
            .instrument(tracing::info_span!("robots"))
            .await;
        timings.robots = Some(started.elapsed());
        if !rules.allows("/") {
            found.robots_blocked = true;
            spyder_model::telemetry::robots_blocked().increment(1);
            return;
        }

        let started = Instant::now();
        self.root_page(host, &mut link, &home, found)
            .instrument(tracing::info_span!("fetch"))
            .await;
        timings.root = Some(started.elapsed());
    }

    /// Step 6: TLS to `https_port` on the first address that answers; else, with
    /// `http_fallback`, plain TCP to `http_port`. The TLS attempts share one
    /// `tls_timeout`; after a timeout (a filtered host) the fallback gets at most
    /// [`FILTERED_FALLBACK_BUDGET`], so such a host costs `tls_timeout` + 1 s in all.
    /// Time spent waiting for an address slot is not charged to either budget.
    async fn connect_first(
        &self,
        host: &HostName,
        addresses: &[IpAddr],
        found: &mut WebFindings,
    ) -> Option<Conn> {
        let s = self.settings;
        let tls_origin = Origin {
            host: host.clone(),
            scheme: Scheme::Https,
            port: s.https_port,
        };
        let mut tls_budget = Budget::new(s.tls_timeout);
        let mut timed_out = false;
        // The first failure per scheme, as the report's detail.
        let mut https_failure = None;
        for &ip in addresses.iter().take(MAX_ADDRESSES_TRIED) {
            if tls_budget.left().is_none() {
                timed_out = true;
                break;
            }
            match self.open(&tls_origin, ip, &mut tls_budget).await {
                Ok((conn, cert)) => {
                    found.cert = cert;
                    return Some(conn);
                }
                Err(e) => {
                    timed_out |= e.is_timeout();
                    https_failure.get_or_insert(e.reason());
                    tracing::debug!(%host, %ip, error = %e, "https connection failed");
                }
            }
        }
        let https_failure = format!("https {}", https_failure.unwrap_or("timeout"));
        found.failure = Some(https_failure.clone());
        if !s.http_fallback {
            return None;
        }
        let plain_origin = Origin {
            scheme: Scheme::Http,
            port: s.http_port,
            ..tls_origin
        };
        let mut plain_budget = Budget::new(if timed_out {
            FILTERED_FALLBACK_BUDGET.min(s.tls_timeout)
        } else {
            s.tls_timeout
        });
        let mut http_failure = None;
        for &ip in addresses.iter().take(MAX_ADDRESSES_TRIED) {
            if plain_budget.left().is_none() {
                break;
            }
            match self.open(&plain_origin, ip, &mut plain_budget).await {
                Ok((conn, _)) => {
                    found.failure = None;
                    return Some(conn);
                }
                Err(e) => {
                    http_failure.get_or_insert(e.reason());
                    tracing::debug!(%host, %ip, error = %e, "http connection failed");
                }
            }
        }
        let http_failure = http_failure.unwrap_or("timeout");
        found.failure = Some(format!("{https_failure}; http {http_failure}"));
        None
    }

    /// Opens one connection to `origin` at `ip`: first a slot of `ip`
    /// (`max_conns_per_ip`; the wait is bounded by the task deadline and not charged
    /// to `budget`), then TCP connect plus, for https, the TLS handshake, both within
    /// what is left of `budget`. The TLS attempt is timed and its failures counted by
    /// [`TlsConnector::connect_wrapped`], which also enforces the deadline.
    async fn open(
        &self,
        origin: &Origin,
        ip: IpAddr,
        budget: &mut Budget,
    ) -> Result<(Conn, Option<NodeCert>), ConnectError> {
        let addr = SocketAddr::new(ip, origin.port);
        let waiting = Instant::now();
        let slot = self
            .addresses
            .acquire(ip, self.settings.max_conns_per_ip)
            .await;
        budget.pause(waiting.elapsed());
        let left = budget.left().unwrap_or(Duration::ZERO);
        // Starting HTTP/1.1 on an open stream does no I/O: no deadline needed for it.
        let (session, cert) = match origin.scheme {
            Scheme::Http => {
                let tcp = http::dial(addr, left).await?;
                let stream = SlottedStream { tcp, _slot: slot };
                (HttpSession::handshake(stream).await?, None)
            }
            Scheme::Https => {
                let wrap = |tcp| SlottedStream { tcp, _slot: slot };
                let (tls, cert) = self
                    .tls
                    .connect_wrapped(addr, &origin.host, left, wrap)
                    .await?;
                (HttpSession::handshake(tls).await?, cert)
            }
        };
        Ok((
            Conn {
                origin: origin.clone(),
                addr,
                session,
            },
            cert,
        ))
    }

    /// Closes the connection in `link` and opens a new one to the same origin and
    /// address (the server closed it). The old one goes first, so its slot is free.
    async fn reopen(&self, link: &mut Option<Conn>) -> Option<()> {
        let old = link.take()?;
        let (origin, ip) = (old.origin, old.addr.ip());
        drop(old.session);
        let mut budget = Budget::new(self.settings.tls_timeout);
        let (conn, _) = self.open(&origin, ip, &mut budget).await.ok()?;
        *link = Some(conn);
        Some(())
    }

    /// One GET on the connection in `link`, reconnecting once if the server had
    /// closed it. Takes a token from the origin host's bucket, then from the global
    /// one, just before the request is written, so connection setup never eats into the spacing the server sees.
    async fn get(
        &self,
        link: &mut Option<Conn>,
        path: &str,
        kind: &'static str,
    ) -> Result<ResponseHead, http::HttpError> {
        let s = self.settings;
        if !link.as_ref().is_some_and(|c| c.session.is_usable()) {
            self.reopen(link).await.ok_or(http::HttpError::Closed)?;
        }
        let conn = link.as_mut().ok_or(http::HttpError::Closed)?;
        self.limiter
            .acquire(conn.origin.host.as_str(), s.rate_per_host, s.rate_burst)
            .await;
        self.global_limiter.acquire(s.rate_global).await;
        let started = Instant::now();
        let host_header = self.host_header(&conn.origin);
        let mut result = conn
            .session
            .get(&host_header, path, &s.user_agent, s.http_timeout)
            .await;
        if matches!(result, Err(http::HttpError::Closed))
            && self.reopen(link).await.is_some()
            && let Some(conn) = link.as_mut()
        {
            result = conn
                .session
                .get(&host_header, path, &s.user_agent, s.http_timeout)
                .await;
        }
        spyder_model::telemetry::http_request_duration(kind)
            .record(started.elapsed().as_secs_f64());
        result
    }

    fn host_header(&self, origin: &Origin) -> String {
        let default_port = match origin.scheme {
            Scheme::Https => self.settings.https_port,
            Scheme::Http => self.settings.http_port,
        };
        if origin.port == default_port {
            origin.host.to_string()
        } else {
            format!("{}:{}", origin.host, origin.port)
        }
    }

    /// Step 7: robots.txt from the cache or over the connection (following up to five
    /// redirects). 2xx parses, 4xx allows all, 5xx and failures disallow all.
    async fn robots_rules(&self, link: &mut Option<Conn>, home: &Home) -> Arc<RobotsRules> {
        let host = home.origin.host.clone();
        if let Some(rules) = self.robots.get(host.as_str()) {
            return rules;
        }
        let rules = Arc::new(self.fetch_robots(link, home).await);
        self.robots.insert(host.as_str(), Arc::clone(&rules));
        rules
    }

    async fn fetch_robots(&self, link: &mut Option<Conn>, home: &Home) -> RobotsRules {
        let s = self.settings;
        let mut url = match self.url_of(&home.origin, "/robots.txt") {
            Some(u) => u,
            None => return RobotsRules::unreachable(),
        };
        for _ in 0..=ROBOTS_MAX_REDIRECTS {
            if self.connection_for(link, home, &url).await.is_none() {
                return RobotsRules::unreachable();
            }
            let head = match self.get(link, &path_of(&url), "robots").await {
                Ok(h) => h,
                Err(_) => return RobotsRules::unreachable(),
            };
            let status = head.status;
            if is_redirect(status) {
                let next = head.location.as_deref().and_then(|l| url.join(l).ok());
                head.discard();
                let Some(next) = next.filter(|u| matches!(u.scheme(), "http" | "https")) else {
                    return RobotsRules::unreachable();
                };
                url = next;
                continue;
            }
            if !(200..300).contains(&status) {
                head.discard();
                return RobotsRules::from_response(status, &[], &s.user_agent);
            }
            return match head.read_body(ROBOTS_MAX_BYTES, s.http_timeout).await {
                Ok(body) => RobotsRules::from_response(status, &body.bytes, &s.user_agent),
                Err(_) => RobotsRules::unreachable(),
            };
        }
        // RFC 9309 §2.3.1.2: past five redirects robots.txt counts as unavailable.
        RobotsRules::AllowAll
    }

    /// Steps 9–10: `GET /` with redirects, then links from a 2xx HTML page.
    async fn root_page(
        &self,
        host: &HostName,
        link: &mut Option<Conn>,
        home: &Home,
        found: &mut WebFindings,
    ) {
        let s = self.settings;
        let Some(mut url) = self.url_of(&home.origin, "/") else {
            return;
        };
        let mut hops = 0;
        loop {
            // Each redirect hop is a span of its own (the first request is `fetch`'s).
            let hop = (hops > 0).then(|| tracing::info_span!("redirect", hop = hops, url = %url));
            let request = async {
                // A robots.txt redirect may have left the connection on another origin.
                self.connection_for(link, home, &url).await?;
                Some(self.get(link, &path_of(&url), "root").await)
            };
            let answered = match hop {
                Some(span) => request.instrument(span).await,
                None => request.await,
            };
            let Some(answered) = answered else {
                return;
            };
            let head = match answered {
                Ok(h) => h,
                Err(e) => {
                    if !found.responded {
                        found.failure = Some(format!("root request {}", e.reason()));
                    }
                    tracing::debug!(%host, %url, error = %e, "root request failed");
                    return;
                }
            };
            found.responded = true;
            if is_redirect(head.status) {
                let next = head.location.as_deref().and_then(|l| url.join(l).ok());
                head.discard();
                let Some(next) = next.filter(|u| matches!(u.scheme(), "http" | "https")) else {
                    return;
                };
                let Some(next_host) = url_host(&next) else {
                    return; // IP literal or invalid: yields nothing
                };
                if !found.redirect_hosts.contains(&next_host) {
                    found.redirect_hosts.push(next_host);
                }
                if hops >= s.max_redirects {
                    return;
                }
                hops += 1;
                url = next;
                continue;
            }
            if !(200..300).contains(&head.status) || !is_html(head.content_type.as_deref()) {
                head.discard();
                return;
            }
            let content_type = head.content_type.clone();
            match head.read_body(s.body_max_bytes, s.http_timeout).await {
                Ok(body) => {
                    found.link_hosts = links::link_hosts(
                        &body.bytes,
                        content_type.as_deref(),
                        &url,
                        MAX_LINK_HOSTS,
                    );
                }
                Err(e) => tracing::debug!(%host, %url, error = %e, "root body failed"),
            }
            return;
        }
    }

    /// Makes `link` a connection able to serve `next`: keeps it when the origin is
    /// unchanged; else closes it first (one connection per task, so no slot is held
    /// while waiting for another), then connects to the home origin at the address
    /// that answered, or to another origin after resolving and checking it.
    async fn connection_for(&self, link: &mut Option<Conn>, home: &Home, next: &Url) -> Option<()> {
        let origin = self.origin_of(next)?;
        if link.as_ref().is_some_and(|c| c.origin == origin) {
            return Some(());
        }
        let addresses = if origin == home.origin {
            vec![home.ip]
        } else {
            if !redirect_port_allowed(origin.port, self.settings) {
                spyder_model::telemetry::redirects_refused("port").increment(1);
                tracing::debug!(url = %next, port = origin.port, "redirect to a refused port not followed");
                return None;
            }
            self.permitted_addresses(&origin.host).await
        };
        *link = None;
        for ip in addresses.into_iter().take(MAX_ADDRESSES_TRIED) {
            let mut budget = Budget::new(self.settings.tls_timeout);
            if let Ok((conn, _)) = self.open(&origin, ip, &mut budget).await {
                *link = Some(conn);
                return Some(());
            }
        }
        None
    }

    /// Resolves a redirect target with our own client and keeps only the addresses the
    /// private-target policy permits (SPEC §3.5, P-4).
    async fn permitted_addresses(&self, host: &HostName) -> Vec<IpAddr> {
        let s = self.settings;
        if policy::is_refused_name(host, s) {
            return Vec::new();
        }
        let resolution = dns::resolve_addresses(self.dns, host, &s.dns, s.dns_timeout).await;
        resolution
            .into_iter()
            .filter(|ip| !policy::is_refused(*ip, s))
            .collect()
    }

    fn origin_of(&self, url: &Url) -> Option<Origin> {
        let host = url_host(url)?;
        let scheme = match url.scheme() {
            "https" => Scheme::Https,
            "http" => Scheme::Http,
            _ => return None,
        };
        let default_port = match scheme {
            Scheme::Https => self.settings.https_port,
            Scheme::Http => self.settings.http_port,
        };
        // An explicit standard port means the configured one: worlds on test ports
        // write plain `https://host/` links.
        let port = match (url.port(), scheme) {
            (None, _) | (Some(443), Scheme::Https) | (Some(80), Scheme::Http) => default_port,
            (Some(p), _) => p,
        };
        Some(Origin { host, scheme, port })
    }

    fn url_of(&self, origin: &Origin, path: &str) -> Option<Url> {
        Url::parse(&format!(
            "{}://{}{}",
            origin.scheme.as_str(),
            origin.host,
            path
        ))
        .ok()
    }
}

/// Why one connection attempt failed.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("tcp: {0}")]
    Io(#[from] std::io::Error),
    #[error("tls: {0}")]
    Tls(#[from] TlsConnectError),
    #[error("http: {0}")]
    Http(#[from] http::HttpError),
}

impl ConnectError {
    /// A short, bounded label: the TLS reasons of `spyder_tls_errors_total`, or the
    /// TCP connect's (`timeout`, `connect_refused`, `connect_error`) or HTTP's.
    fn reason(&self) -> &'static str {
        match self {
            Self::Io(e) => match e.kind() {
                std::io::ErrorKind::TimedOut => "timeout",
                std::io::ErrorKind::ConnectionRefused => "connect_refused",
                _ => "connect_error",
            },
            Self::Tls(e) => e.reason(),
            Self::Http(e) => e.reason(),
        }
    }

    /// The connect or handshake ran out of time (a filtered address, or a peer that
    /// never answers), as opposed to a refusal or a protocol error.
    fn is_timeout(&self) -> bool {
        match self {
            Self::Io(e) => e.kind() == std::io::ErrorKind::TimedOut,
            Self::Tls(e) => e.reason() == "timeout",
            Self::Http(_) => false,
        }
    }
}

/// A time budget shared by several attempts; waits that are not the network's (for
/// an address slot) push its deadline back.
struct Budget {
    deadline: Option<Instant>,
}

impl Budget {
    fn new(limit: Duration) -> Self {
        Self {
            deadline: Instant::now().checked_add(limit),
        }
    }

    /// What is left, `None` once spent. A limit no clock can add is never spent.
    fn left(&self) -> Option<Duration> {
        match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                (!left.is_zero()).then_some(left)
            }
            None => Some(Duration::MAX),
        }
    }

    /// Moves the deadline `waited` later: that time was not spent on the network.
    fn pause(&mut self, waited: Duration) {
        self.deadline = self.deadline.and_then(|d| d.checked_add(waited));
    }
}

/// The "bad ports" of the WHATWG Fetch standard ("Port blocking", as of July 2026):
/// ports of other protocols that an HTTP request could be smuggled into. Sorted.
const BAD_PORTS: [u16; 83] = [
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
    102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389, 427,
    465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990,
    993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667,
    6668, 6669, 6679, 6697, 10080,
];

/// Whether `port` is a bad port of the Fetch standard.
fn is_bad_port(port: u16) -> bool {
    BAD_PORTS.binary_search(&port).is_ok()
}

/// Whether a redirect may lead to `port` (SPEC §3.4, `crawling.redirect_ports`): the
/// configured `https_port` and `http_port` always; otherwise a port listed in
/// `redirect_ports`, or, when that list is empty, any port that is not a bad port.
fn redirect_port_allowed(port: u16, s: &ProbeSettings) -> bool {
    if port == s.https_port || port == s.http_port {
        return true;
    }
    if s.redirect_ports.is_empty() {
        !is_bad_port(port)
    } else {
        s.redirect_ports.contains(&port)
    }
}

fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// True for `text/html` and `application/xhtml+xml`, any case, parameters ignored.
fn is_html(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else {
        return false;
    };
    let mime = ct.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("text/html") || mime.eq_ignore_ascii_case("application/xhtml+xml")
}

/// The URL's host as a domain name; `None` for IP literals and invalid names.
fn url_host(url: &Url) -> Option<HostName> {
    match url.host()? {
        url::Host::Domain(d) => HostName::parse(d, NameKind::Strict).ok(),
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => None,
    }
}

/// Path and query of a URL, as sent in the request line.
fn path_of(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_content_types() {
        assert!(is_html(Some("text/html")));
        assert!(is_html(Some("TEXT/HTML; charset=UTF-8")));
        assert!(is_html(Some("application/xhtml+xml")));
        assert!(!is_html(Some("application/json")));
        assert!(!is_html(None));
    }

    #[test]
    fn bad_ports_are_those_of_the_fetch_standard() {
        assert!(
            BAD_PORTS.windows(2).all(|w| w[0] < w[1]),
            "sorted, no repeats"
        );
        for port in [
            0, 1, 22, 25, 53, 110, 143, 587, 993, 5060, 6000, 6667, 6679, 10080,
        ] {
            assert!(is_bad_port(port), "{port}");
        }
        // Ports of other services that are not on the list: the 6380, Redis's
        // own 6379, and the usual web ports.
        for port in [80, 443, 6379, 6380, 8080, 8443, 3000, 65_535, 10081, 24] {
            assert!(!is_bad_port(port), "{port}");
        }
    }

    #[test]
    fn redirect_ports_follow_the_settings() {
        let defaults = ProbeSettings {
            https_port: 8443,
            http_port: 8080,
            ..ProbeSettings::default()
        };
        let allowed = |port, s: &ProbeSettings| redirect_port_allowed(port, s);
        // Default (empty list): any port but the bad ones; the configured ports always.
        assert!(allowed(8443, &defaults));
        assert!(allowed(8080, &defaults));
        assert!(allowed(6380, &defaults));
        assert!(allowed(443, &defaults));
        assert!(!allowed(25, &defaults));
        assert!(!allowed(6667, &defaults));
        // A list: only its ports, plus the configured ones, bad or not.
        let listed = ProbeSettings {
            redirect_ports: vec![9000, 25],
            https_port: 22,
            ..defaults.clone()
        };
        assert!(allowed(9000, &listed));
        assert!(allowed(25, &listed), "listed explicitly");
        assert!(allowed(22, &listed), "the configured https_port");
        assert!(allowed(8080, &listed), "the configured http_port");
        assert!(!allowed(6380, &listed));
        assert!(!allowed(443, &listed));
    }

    #[test]
    fn url_hosts_skip_ip_literals() {
        let u = |s: &str| Url::parse(s).expect("valid url");
        assert_eq!(
            url_host(&u("https://WWW.Example.com/x")).map(HostName::into_string),
            Some("www.example.com".to_owned())
        );
        assert_eq!(url_host(&u("http://1.2.3.4/")), None);
        assert_eq!(url_host(&u("http://[::1]/")), None);
        assert_eq!(path_of(&u("https://a.example/p/q?x=1#frag")), "/p/q?x=1");
    }
}

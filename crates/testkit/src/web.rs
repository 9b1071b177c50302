//! HTTPS and HTTP hosts on distinct 127.0.0.x addresses with scripted behaviours.
//!
//! A [`WebServer`] serves many [`Site`]s at once. The probe's `https_port` and
//! `http_port` are global settings, so sites differ by address: usually every site
//! gets its own 127.0.0.x address, and all of them listen on the same HTTPS port and
//! the same plain-HTTP port. Several [`NamedSite`]s may share one address, as on a
//! hosting provider: the TLS SNI picks the site (and its certificate) on the HTTPS
//! port, the `Host` header on the plain-HTTP port ([`WebServer::start_with`]).
//!
//! [`WebOptions`] make the server behave like a far, partly filtered network: every
//! connection reads through a round-trip delay line, and filtered addresses never
//! complete a connect on either port (see [`crate::netsim`]). Connections are counted
//! per address ([`WebServer::peak_open_connections`]), and so are the spans in which
//! the server was serving one ([`WebServer::peak_serving_connections`]), which lie
//! inside the client's own: a client's per-address connection cap is proven at the
//! server.
//!
//! The HTTP/1.1 server is written by hand on tokio so that every behaviour is exact:
//! keep-alive with several requests per connection, `Connection: close` honoured,
//! and scripted misbehaviour ([`Reply::Endless`], [`Reply::ResetMidBody`],
//! [`Reply::Hang`], [`TlsMode::LegacyOnly`], …). Every request is logged
//! ([`WebServer::requests`]) and every byte written to a socket is counted per site
//! ([`WebServer::bytes_sent`]), so tests can assert what the probe really did.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use spyder_testkit::web::{Reply, Site, WebServer};
//! let site = Site::plain([127, 0, 0, 9].into(), Reply::Html("<a href=\"https://b.example/\">b</a>".into()));
//! let web = WebServer::start(vec![site]).await?;
//! println!("http://127.0.0.9:{}/", web.http_port());
//! # Ok(()) }
//! ```

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::netsim::{self, ConnectHole, Delayed, TcpConditions};

/// Largest request head (request line and headers) the server accepts.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Send buffer requested for every accepted socket (the kernel doubles it), so that
/// [`WebServer::bytes_sent`] reflects what the client really read.
const SEND_BUFFER: u32 = 4 * 1024;
/// Bytes per chunk of an [`Reply::Endless`] body and per write of a [`Reply::Big`] body.
const FILL_CHUNK: usize = 16 * 1024;
/// Backlog of every serving listener.
const LISTEN_BACKLOG: u32 = 1024;
/// First pause of a listener after a failed `accept`, and the most it doubles to.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// Attempts at finding a port pair free on every site address.
const PORT_ATTEMPTS: usize = 50;
/// The TLS alert a TLS 1.0-only server sends to a TLS 1.2+ ClientHello:
/// fatal `protocol_version`, in a TLS 1.0 record.
const LEGACY_ALERT: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];
/// What a [`TlsMode::Garbage`] host answers on its HTTPS port.
const GARBAGE: &[u8] = b"SSH-2.0-OpenSSH_9.6 definitely not TLS\r\n";

/// One request the server received.
#[derive(Clone, Debug)]
pub struct RequestLog {
    /// When its head was fully read.
    pub at: Instant,
    /// The site's address (the local address the request arrived on).
    pub ip: Ipv4Addr,
    /// Whether it came over TLS (the HTTPS port).
    pub tls: bool,
    /// The SNI name of the TLS connection, if any.
    pub sni: Option<String>,
    /// The `Host` header.
    pub host_header: Option<String>,
    /// The request method, e.g. `GET`.
    pub method: String,
    /// The request target as sent, e.g. `/robots.txt`.
    pub path: String,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// The `Accept-Encoding` header.
    pub accept_encoding: Option<String>,
    /// The connection it arrived on: unique per accepted connection of this server, so
    /// requests sharing a value were sent over one (kept-alive) connection.
    pub conn: u64,
}

/// One scripted host: an address, what its HTTPS port does, and its routes.
#[derive(Clone, Debug)]
pub struct Site {
    /// The site's own loopback address (unique per server).
    pub ip: Ipv4Addr,
    /// What the HTTPS port does on this address.
    pub tls: TlsMode,
    /// Whether the HTTP port serves the same routes (else nothing listens there).
    pub plain_http: bool,
    /// The reply to `/robots.txt`.
    pub robots: Reply,
    /// Path → reply; `/` is the root page. Unknown paths answer 404.
    pub routes: Vec<(String, Reply)>,
}

impl Site {
    /// A plain-HTTP-only site: nothing on the HTTPS port (connection refused),
    /// robots.txt missing (404), `root` served at `/`.
    pub fn plain(ip: Ipv4Addr, root: Reply) -> Self {
        Self {
            ip,
            tls: TlsMode::Off,
            plain_http: true,
            robots: Reply::Status(404),
            routes: vec![("/".to_owned(), root)],
        }
    }

    /// An HTTPS site with `config` on the HTTPS port, no plain HTTP, robots.txt missing
    /// (404), `root` served at `/`.
    pub fn https(ip: Ipv4Addr, config: Arc<rustls::ServerConfig>, root: Reply) -> Self {
        Self {
            ip,
            tls: TlsMode::Rustls(config),
            plain_http: false,
            robots: Reply::Status(404),
            routes: vec![("/".to_owned(), root)],
        }
    }

    /// Replaces the robots.txt reply.
    #[must_use]
    pub fn with_robots(mut self, robots: Reply) -> Self {
        self.robots = robots;
        self
    }

    /// Adds (or replaces) the reply for `path`.
    #[must_use]
    pub fn with_route(mut self, path: impl Into<String>, reply: Reply) -> Self {
        let path = path.into();
        self.routes.retain(|(p, _)| *p != path);
        self.routes.push((path, reply));
        self
    }

    /// Also serves the routes on the plain-HTTP port (or not).
    #[must_use]
    pub fn with_plain_http(mut self, on: bool) -> Self {
        self.plain_http = on;
        self
    }
}

/// What a site's HTTPS port does.
#[derive(Clone, Debug)]
pub enum TlsMode {
    /// Nothing listens: connection refused.
    Off,
    /// A TLS server with this configuration, serving the site's routes.
    Rustls(Arc<rustls::ServerConfig>),
    /// Reads the ClientHello and answers the TLS alert `15 03 01 00 02 02 46`
    /// (protocol_version), like a TLS 1.0-only server.
    LegacyOnly,
    /// Answers with non-TLS bytes, then closes.
    Garbage,
    /// Accepts and never answers.
    Hang,
}

/// A scripted answer to one request.
#[derive(Clone, Debug)]
pub enum Reply {
    /// 200 `text/html; charset=utf-8` with this body.
    Html(String),
    /// 200 with this content type and body.
    Text {
        /// The `Content-Type` header, sent verbatim.
        content_type: String,
        /// The body.
        body: String,
    },
    /// This status with an empty body (use 200..=599 except 204 and 304).
    Status(u16),
    /// This status with a `text/html` body, like a server's error page.
    StatusPage {
        /// The status code.
        status: u16,
        /// The body.
        body: String,
    },
    /// A redirect: this status with a `Location` header and an empty body.
    Redirect {
        /// 301, 302, 303, 307 or 308 (any status is sent as given).
        status: u16,
        /// The `Location` header, sent verbatim.
        location: String,
    },
    /// 200 with `Content-Encoding: gzip`: `body` compressed once, when the server starts.
    Gzip {
        /// The `Content-Type` header, sent verbatim.
        content_type: String,
        /// The body before compression.
        body: String,
    },
    /// 200 `text/html`, chunked, never ends. The socket's send buffer is small, so
    /// [`WebServer::bytes_sent`] reflects what the client really read.
    Endless,
    /// 200 `text/html` of this many bytes, with `Content-Length`.
    Big(usize),
    /// Announces the full length, sends half the body, then resets the connection (RST).
    ResetMidBody(String),
    /// Never answers (the connection stays open until the client closes it).
    Hang,
    /// Waits, then answers with the inner reply.
    Slow(Duration, Box<Reply>),
    /// These bytes written verbatim (status line, headers and body), for odd headers;
    /// the server then closes the connection, as it cannot know the framing.
    Raw(Vec<u8>),
    /// The inner reply, sent as if the connection stayed open (no `Connection: close`),
    /// after which the server closes the connection: a kept-alive connection the
    /// server drops between requests.
    ThenClose(Box<Reply>),
}

/// A [`Site`] and the names it answers to. Names matter only when several sites share
/// one address: the server then picks the site by TLS SNI on the HTTPS port and by the
/// `Host` header on the plain-HTTP port, and the first site on the address answers
/// names no site claims (a server's default virtual host).
#[derive(Clone, Debug)]
pub struct NamedSite {
    /// Host names, matched case-insensitively (a trailing dot is ignored).
    pub names: Vec<String>,
    /// The site.
    pub site: Site,
}

impl From<Site> for NamedSite {
    fn from(site: Site) -> Self {
        Self {
            names: Vec::new(),
            site,
        }
    }
}

/// How a [`WebServer`] behaves as a network, beyond its sites.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebOptions {
    /// The round trip every accepted connection adds (see [`crate::netsim`]).
    pub network: TcpConditions,
    /// Addresses black-holed at the connect level on both ports: a connect to either
    /// never completes (no SYN-ACK, no RST). None of them may be a site's address.
    pub filtered: Vec<Ipv4Addr>,
    /// The HTTPS and plain-HTTP ports to serve on, instead of a free pair the server
    /// picks: several servers (processes) then serve disjoint addresses of one world
    /// on the same ports. Starting fails if an address has either port taken.
    pub ports: Option<(u16, u16)>,
}

/// The scripted hosts, listening until dropped.
#[derive(Debug)]
pub struct WebServer {
    https_port: u16,
    http_port: u16,
    shared: Arc<Shared>,
    /// Connect-level black holes, open until the server is dropped.
    holes: Vec<ConnectHole>,
    /// Accept loops; dropping the set aborts them, and with them every connection.
    _tasks: JoinSet<()>,
}

/// Counters and logs shared by every listener and connection.
#[derive(Debug, Default)]
struct Shared {
    requests: Mutex<Vec<RequestLog>>,
    open: AtomicUsize,
    accepted: AtomicU64,
    /// `accept` calls that failed (typically out of descriptors: connects then wait
    /// in the listen queue or, once it is full, go unanswered).
    accept_errors: AtomicU64,
    handshakes: AtomicU64,
    next_conn: AtomicU64,
    /// Every served address (immutable after start).
    addresses: HashMap<Ipv4Addr, Arc<Address>>,
    /// What every accepted connection goes through.
    network: TcpConditions,
}

/// One served address: its sites and its counters.
#[derive(Debug)]
struct Address {
    ip: Ipv4Addr,
    /// At least one; the first answers names no site claims.
    sites: Vec<SiteState>,
    /// Index into `sites` by normalised name.
    names: HashMap<String, usize>,
    /// Connections open now, both ports.
    open: AtomicUsize,
    /// The most connections ever open at once, both ports.
    peak: AtomicUsize,
    /// Connections being served now (see [`WebServer::peak_serving_connections`]).
    serving: AtomicUsize,
    /// The most connections ever served at once.
    serving_peak: AtomicUsize,
    /// Bytes written to sockets of this address.
    bytes_sent: AtomicU64,
}

impl Address {
    /// The site answering `name` (SNI or `Host`, a port after `:` ignored).
    fn site_for(&self, name: Option<&str>) -> &SiteState {
        let index = name
            .map(|n| normalise_name(n.rsplit_once(':').map_or(n, |(h, _)| h)))
            .and_then(|n| self.names.get(&n).copied())
            .unwrap_or(0);
        &self.sites[index.min(self.sites.len() - 1)]
    }

    /// The site whose HTTPS mode the address's HTTPS port follows.
    fn first(&self) -> &SiteState {
        &self.sites[0]
    }
}

/// One site, ready to serve.
#[derive(Debug)]
struct SiteState {
    tls: TlsMode,
    robots: Prepared,
    routes: HashMap<String, Prepared>,
}

/// A host name as [`Address::site_for`] compares it.
fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

impl WebServer {
    /// Binds every site's listeners on one shared HTTPS port and one shared HTTP port
    /// and starts serving, one site per address. Fails on duplicate or non-loopback
    /// addresses, or when no free port pair was found.
    pub async fn start(sites: Vec<Site>) -> io::Result<Self> {
        let sites = sites.into_iter().map(NamedSite::from).collect();
        Self::start_with(sites, WebOptions::default()).await
    }

    /// Like [`WebServer::start`], with several sites allowed on one address (each
    /// named, all with [`TlsMode::Rustls`] or all with [`TlsMode::Off`], all alike in
    /// `plain_http`), network conditions and connect-level black holes.
    pub async fn start_with(sites: Vec<NamedSite>, options: WebOptions) -> io::Result<Self> {
        let groups = group_by_address(sites)?;
        let mut filtered = Vec::new();
        for ip in options.filtered {
            if !ip.is_loopback() {
                return Err(invalid(format!("filtered address {ip} is not loopback")));
            }
            if groups.iter().any(|(site_ip, _)| *site_ip == ip) {
                return Err(invalid(format!("filtered address {ip} also hosts a site")));
            }
            if !filtered.contains(&ip) {
                filtered.push(ip);
            }
        }
        let mut endpoints: Vec<Endpoint> = groups
            .iter()
            .map(|(ip, sites)| Endpoint {
                ip: *ip,
                https: if matches!(sites[0].site.tls, TlsMode::Off) {
                    Need::Nothing
                } else {
                    Need::Serve
                },
                http: if sites[0].site.plain_http {
                    Need::Serve
                } else {
                    Need::Nothing
                },
            })
            .collect();
        endpoints.extend(filtered.iter().map(|ip| Endpoint {
            ip: *ip,
            https: Need::Hole,
            http: Need::Hole,
        }));
        let (https_port, http_port, listeners) = match options.ports {
            Some(ports) => bind_fixed(&endpoints, ports)?,
            None => bind_all(&endpoints)?,
        };

        let mut addresses = HashMap::with_capacity(groups.len());
        for (ip, sites) in groups {
            addresses.insert(ip, Arc::new(prepare_address(ip, sites)?));
        }
        let shared = Arc::new(Shared {
            addresses,
            network: options.network,
            ..Shared::default()
        });

        let mut tasks = JoinSet::new();
        let mut holes = Vec::with_capacity(filtered.len() * 2);
        for bound in listeners {
            match bound {
                Bound::Serve { ip, tls, listener } => {
                    let Some(address) = shared.addresses.get(&ip).map(Arc::clone) else {
                        continue;
                    };
                    tasks.spawn(accept_loop(listener, Arc::clone(&shared), address, tls));
                }
                Bound::Hole(socket) => holes.push(ConnectHole::fill(socket).await?),
            }
        }
        Ok(Self {
            https_port,
            http_port,
            shared,
            holes,
            _tasks: tasks,
        })
    }

    /// The HTTPS port every site shares.
    pub fn https_port(&self) -> u16 {
        self.https_port
    }

    /// The plain-HTTP port every site shares.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// The connect-level black holes (both ports of every filtered address).
    pub fn filtered(&self) -> Vec<SocketAddr> {
        self.holes.iter().map(ConnectHole::addr).collect()
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestLog> {
        lock(&self.shared.requests).clone()
    }

    /// Connections currently open, over all sites and both ports.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Connections open now to `ip`, over both ports; 0 for an unknown address.
    pub fn open_connections_to(&self, ip: Ipv4Addr) -> usize {
        self.shared
            .addresses
            .get(&ip)
            .map_or(0, |a| a.open.load(Ordering::SeqCst))
    }

    /// The most connections ever open at once to `ip`, over both ports (counted from
    /// `accept` until the server drops the connection); 0 for an unknown address.
    /// This is what a per-address connection cap of a client must bound.
    pub fn peak_open_connections(&self, ip: Ipv4Addr) -> usize {
        self.shared
            .addresses
            .get(&ip)
            .map_or(0, |a| a.peak.load(Ordering::SeqCst))
    }

    /// The most connections to `ip` the server was serving at once, over both ports;
    /// 0 for an unknown address. A connection is being served from its accept until
    /// the server writes its first answer (the TLS handshake's first flight, or the
    /// response to the first plain-HTTP request), and again from the arrival of each
    /// request until its response is written; a connection never answered is served
    /// until it ends. Each such span lies inside the client's time with the
    /// connection open (its connect precedes the accept; it waits for each answer),
    /// whatever the delay line does to the server's view of the client's close (a
    /// rejected certificate, a response read), so a client's per-address connection
    /// cap must bound this, except on addresses that never answer.
    pub fn peak_serving_connections(&self, ip: Ipv4Addr) -> usize {
        self.shared
            .addresses
            .get(&ip)
            .map_or(0, |a| a.serving_peak.load(Ordering::SeqCst))
    }

    /// TCP connections accepted so far, over all sites and both ports (counted at
    /// `accept`, before anything is read).
    pub fn accepted_connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Failed `accept` calls so far, over all listeners. Non-zero means the server ran
    /// out of descriptors (or another resource) and clients' connects waited on it:
    /// whatever a client measured meanwhile is bound by the server, not the client.
    pub fn accept_errors(&self) -> u64 {
        self.shared.accept_errors.load(Ordering::SeqCst)
    }

    /// Completed TLS handshakes so far.
    pub fn handshakes(&self) -> u64 {
        self.shared.handshakes.load(Ordering::SeqCst)
    }

    /// Bytes (headers, bodies and TLS records) written to sockets of the address `ip`
    /// (every site on it); 0 for an unknown address.
    pub fn bytes_sent(&self, ip: Ipv4Addr) -> u64 {
        self.shared
            .addresses
            .get(&ip)
            .map_or(0, |a| a.bytes_sent.load(Ordering::SeqCst))
    }
}

/// Locks the request log, surviving a panicked holder (the log stays consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Sites grouped by address, in order of first appearance, checked: loopback only,
/// and sites sharing an address named, distinct and alike in how they serve.
fn group_by_address(sites: Vec<NamedSite>) -> io::Result<Vec<(Ipv4Addr, Vec<NamedSite>)>> {
    let mut groups: Vec<(Ipv4Addr, Vec<NamedSite>)> = Vec::new();
    let mut index: HashMap<Ipv4Addr, usize> = HashMap::new();
    for named in sites {
        let ip = named.site.ip;
        if !ip.is_loopback() {
            return Err(invalid(format!("site address {ip} is not loopback")));
        }
        match index.get(&ip) {
            Some(&i) => groups[i].1.push(named),
            None => {
                index.insert(ip, groups.len());
                groups.push((ip, vec![named]));
            }
        }
    }
    for (ip, sites) in &groups {
        if sites.len() < 2 {
            continue;
        }
        let mut seen = HashSet::new();
        for named in sites {
            if named.names.is_empty() {
                return Err(invalid(format!("two sites on {ip}, not all named")));
            }
            let own: HashSet<String> = named.names.iter().map(|n| normalise_name(n)).collect();
            for name in own {
                if !seen.insert(name.clone()) {
                    return Err(invalid(format!("two sites on {ip} claim {name}")));
                }
            }
        }
        let rustls = |s: &NamedSite| matches!(s.site.tls, TlsMode::Rustls(_));
        let off = |s: &NamedSite| matches!(s.site.tls, TlsMode::Off);
        if !(sites.iter().all(rustls) || sites.iter().all(off)) {
            return Err(invalid(format!(
                "sites sharing {ip} must all serve rustls TLS or all have none"
            )));
        }
        if sites
            .iter()
            .any(|s| s.site.plain_http != sites[0].site.plain_http)
        {
            return Err(invalid(format!(
                "sites sharing {ip} must agree on plain HTTP"
            )));
        }
    }
    Ok(groups)
}

/// What one port of an address needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    Nothing,
    Serve,
    Hole,
}

/// One address to bind on both shared ports.
#[derive(Clone, Copy, Debug)]
struct Endpoint {
    ip: Ipv4Addr,
    https: Need,
    http: Need,
}

/// A bound socket: a listener to serve, or a hole to fill.
#[derive(Debug)]
enum Bound {
    Serve {
        ip: Ipv4Addr,
        tls: bool,
        listener: TcpListener,
    },
    Hole(socket2::Socket),
}

impl Bound {
    fn port(&self) -> io::Result<u16> {
        match self {
            Self::Serve { listener, .. } => Ok(listener.local_addr()?.port()),
            Self::Hole(socket) => socket
                .local_addr()?
                .as_socket()
                .map(|a| a.port())
                .ok_or_else(|| io::Error::other("hole without an IP address")),
        }
    }
}

/// Binds what `need` asks for on `ip:port` (a serving listener when nothing is
/// needed, to reserve the port).
fn bind_one(ip: Ipv4Addr, port: u16, need: Need, tls: bool) -> io::Result<Bound> {
    match need {
        Need::Hole => ConnectHole::bind(ip, port).map(Bound::Hole),
        Need::Serve | Need::Nothing => Ok(Bound::Serve {
            ip,
            tls,
            listener: netsim::listener(ip, port, LISTEN_BACKLOG)?,
        }),
    }
}

/// Binds what each endpoint needs on the given port pair.
fn bind_fixed(
    endpoints: &[Endpoint],
    (https_port, http_port): (u16, u16),
) -> io::Result<(u16, u16, Vec<Bound>)> {
    let mut bound = Vec::with_capacity(endpoints.len() * 2);
    for endpoint in endpoints {
        for (need, tls, port) in [
            (endpoint.https, true, https_port),
            (endpoint.http, false, http_port),
        ] {
            if need != Need::Nothing {
                bound.push(bind_one(endpoint.ip, port, need, tls)?);
            }
        }
    }
    Ok((https_port, http_port, bound))
}

/// Finds a port pair free on every address and binds what each needs. The first
/// address picks ephemeral ports; a collision elsewhere retries.
fn bind_all(endpoints: &[Endpoint]) -> io::Result<(u16, u16, Vec<Bound>)> {
    let Some(first) = endpoints.first() else {
        // Nothing to serve: report ports that refuse connections.
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = probe.local_addr()?.port();
        return Ok((port, port, Vec::new()));
    };
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let https = bind_one(first.ip, 0, first.https, true)?;
        let http = bind_one(first.ip, 0, first.http, false)?;
        let (https_port, http_port) = (https.port()?, http.port()?);
        let mut bound = Vec::with_capacity(endpoints.len() * 2);
        if first.https != Need::Nothing {
            bound.push(https);
        }
        if first.http != Need::Nothing {
            bound.push(http);
        }
        let mut collided = false;
        'endpoints: for endpoint in endpoints.iter().skip(1) {
            let wanted = [
                (endpoint.https, true, https_port),
                (endpoint.http, false, http_port),
            ];
            for (need, tls, port) in wanted {
                if need == Need::Nothing {
                    continue;
                }
                match bind_one(endpoint.ip, port, need, tls) {
                    Ok(b) => bound.push(b),
                    Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                        last_err = Some(e);
                        collided = true;
                        break 'endpoints;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !collided {
            return Ok((https_port, http_port, bound));
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port pair")))
}

/// Turns the sites of one address into its serving form.
fn prepare_address(ip: Ipv4Addr, sites: Vec<NamedSite>) -> io::Result<Address> {
    let mut names = HashMap::new();
    let mut states = Vec::with_capacity(sites.len());
    for (i, named) in sites.into_iter().enumerate() {
        for name in &named.names {
            names.entry(normalise_name(name)).or_insert(i);
        }
        states.push(prepare_site(named.site)?);
    }
    Ok(Address {
        ip,
        sites: states,
        names,
        open: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        serving: AtomicUsize::new(0),
        serving_peak: AtomicUsize::new(0),
        bytes_sent: AtomicU64::new(0),
    })
}

/// Turns a [`Site`] into its serving form (compressed bodies, route map).
fn prepare_site(site: Site) -> io::Result<SiteState> {
    let mut routes = HashMap::with_capacity(site.routes.len());
    for (path, reply) in &site.routes {
        routes.insert(path.clone(), Prepared::new(reply)?);
    }
    Ok(SiteState {
        robots: Prepared::new(&site.robots)?,
        tls: site.tls,
        routes,
    })
}

/// A [`Reply`] ready to send: gzip bodies already compressed.
#[derive(Debug)]
enum Prepared {
    Fixed {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    },
    Endless,
    Big(usize),
    ResetMidBody(Bytes),
    Hang,
    Slow(Duration, Box<Prepared>),
    Raw(Bytes),
    ThenClose(Box<Prepared>),
}

impl Prepared {
    fn new(reply: &Reply) -> io::Result<Self> {
        Ok(match reply {
            Reply::Html(body) => Self::Fixed {
                status: 200,
                headers: vec![("Content-Type", "text/html; charset=utf-8".to_owned())],
                body: Bytes::from(body.clone()),
            },
            Reply::Text { content_type, body } => Self::Fixed {
                status: 200,
                headers: vec![("Content-Type", content_type.clone())],
                body: Bytes::from(body.clone()),
            },
            Reply::Status(status) => Self::Fixed {
                status: *status,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            Reply::StatusPage { status, body } => Self::Fixed {
                status: *status,
                headers: vec![("Content-Type", "text/html; charset=utf-8".to_owned())],
                body: Bytes::from(body.clone()),
            },
            Reply::Redirect { status, location } => Self::Fixed {
                status: *status,
                headers: vec![("Location", location.clone())],
                body: Bytes::new(),
            },
            Reply::Gzip { content_type, body } => Self::Fixed {
                status: 200,
                headers: vec![
                    ("Content-Type", content_type.clone()),
                    ("Content-Encoding", "gzip".to_owned()),
                ],
                body: Bytes::from(gzip(body.as_bytes())?),
            },
            Reply::Endless => Self::Endless,
            Reply::Big(n) => Self::Big(*n),
            Reply::ResetMidBody(body) => Self::ResetMidBody(Bytes::from(body.clone())),
            Reply::Hang => Self::Hang,
            Reply::Slow(d, inner) => Self::Slow(*d, Box::new(Self::new(inner)?)),
            Reply::Raw(bytes) => Self::Raw(Bytes::from(bytes.clone())),
            Reply::ThenClose(inner) => Self::ThenClose(Box::new(Self::new(inner)?)),
        })
    }
}

/// `data` compressed as one gzip member.
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

/// A server configuration presenting a fresh self-signed certificate for `names`
/// (ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`). For tests that need TLS but not
/// a CA.
pub fn self_signed_config(names: &[&str]) -> Result<Arc<rustls::ServerConfig>, TlsSetupError> {
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let key = rcgen::generate_simple_self_signed(names)?;
    let cert = key.cert.der().clone();
    let private = rustls_pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration that accepts any server certificate (signatures are still
/// checked), sending ALPN `http/1.1`. For talking to [`self_signed_config`] servers.
pub fn insecure_client_config() -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCert(Arc::clone(&provider)));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(verifier)
                .with_no_client_auth()
        })
        // The ring provider supports the default versions; this cannot fail.
        .unwrap_or_else(|_| unreachable!("ring supports TLS 1.2 and 1.3"));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Why [`self_signed_config`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("tls configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// A certificate verifier that trusts every certificate but checks handshake signatures.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Accepts connections for one address on one port until the server is dropped.
/// Connection tasks live in a local set, so aborting this loop ends them too.
async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, address: Arc<Address>, tls: bool) {
    let mut conns = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let guard = OpenGuard::new(&shared, &address);
                    conns.spawn(serve_connection(tcp, Arc::clone(&shared), Arc::clone(&address), tls, guard));
                }
                Err(e) => {
                    // Typically descriptor exhaustion: back off instead of spinning
                    // (doubling: thousands of listeners retrying every 10 ms would
                    // keep the server's core busy failing).
                    shared.accept_errors.fetch_add(1, Ordering::SeqCst);
                    tracing::debug!(error = %e, ip = %address.ip, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(ACCEPT_BACKOFF_MAX);
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Counts one open connection, in total and for its address, for as long as it lives
/// (also when its task is aborted).
#[derive(Debug)]
struct OpenGuard {
    shared: Arc<Shared>,
    address: Arc<Address>,
}

impl OpenGuard {
    fn new(shared: &Arc<Shared>, address: &Arc<Address>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        let now = address
            .open
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1);
        address.peak.fetch_max(now, Ordering::SeqCst);
        Self {
            shared: Arc::clone(shared),
            address: Arc::clone(address),
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        self.address.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether one connection is being served now (see
/// [`WebServer::peak_serving_connections`]); ends the span when dropped.
#[derive(Debug)]
struct Serving {
    address: Arc<Address>,
    on: bool,
}

impl Serving {
    /// Starts the span at accept.
    fn new(address: &Arc<Address>) -> Self {
        let mut serving = Self {
            address: Arc::clone(address),
            on: false,
        };
        serving.start();
        serving
    }

    /// A request arrived (or the connection was accepted): serving until answered.
    fn start(&mut self) {
        if !std::mem::replace(&mut self.on, true) {
            let now = self
                .address
                .serving
                .fetch_add(1, Ordering::SeqCst)
                .saturating_add(1);
            self.address.serving_peak.fetch_max(now, Ordering::SeqCst);
        }
    }

    /// The answer is written: the client may close at any moment from now.
    fn stop(&mut self) {
        if std::mem::take(&mut self.on) {
            self.address.serving.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection (through its delay line) that adds every byte it writes to its
/// address's counter, and knows whether it is being served.
#[derive(Debug)]
struct Counted {
    io: Delayed,
    address: Arc<Address>,
    serving: Serving,
    /// End the serving span at the next byte written: the TLS handshake's first
    /// flight, which the client waits for. After it the client may reject the
    /// certificate and close, and the server would see that only through the delay
    /// line; the span starts again with the first request.
    stop_on_write: bool,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.address
                .bytes_sent
                .fetch_add(*n as u64, Ordering::Relaxed);
            if *n > 0 && std::mem::take(&mut self.stop_on_write) {
                self.serving.stop();
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A byte stream the HTTP loop runs on, with access to its TCP socket (for RST) and
/// its serving span.
trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
    fn serving(&mut self) -> &mut Serving;
}

impl Transport for Counted {
    fn tcp(&self) -> &TcpStream {
        self.io.get_ref()
    }

    fn serving(&mut self) -> &mut Serving {
        &mut self.serving
    }
}

impl Transport for tokio_rustls::server::TlsStream<Counted> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.io.get_ref()
    }

    fn serving(&mut self) -> &mut Serving {
        &mut self.get_mut().0.serving
    }
}

/// What the HTTP loop knows about its connection.
#[derive(Debug)]
struct ConnInfo {
    id: u64,
    tls: bool,
    sni: Option<String>,
}

/// Serves one accepted connection according to its address's mode.
async fn serve_connection(
    tcp: TcpStream,
    shared: Arc<Shared>,
    address: Arc<Address>,
    tls: bool,
    _guard: OpenGuard,
) {
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER as usize);
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut io = Counted {
        io: Delayed::new(tcp, shared.network, id),
        address: Arc::clone(&address),
        serving: Serving::new(&address),
        stop_on_write: tls,
    };
    if !tls {
        // The `Host` header picks the site, request by request.
        let info = ConnInfo { id, tls, sni: None };
        http_loop(&mut io, &shared, &address, None, &info).await;
        return;
    }
    match &address.first().tls {
        TlsMode::Rustls(config) if address.sites.len() == 1 => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
            let Ok(mut stream) = acceptor.accept(io).await else {
                return;
            };
            shared.handshakes.fetch_add(1, Ordering::SeqCst);
            let sni = stream.get_ref().1.server_name().map(str::to_owned);
            let info = ConnInfo { id, tls, sni };
            http_loop(&mut stream, &shared, &address, Some(address.first()), &info).await;
        }
        TlsMode::Rustls(_) => {
            // A shared address: the ClientHello's SNI picks the site and its
            // certificate (every site on a shared address serves rustls TLS).
            let hello = rustls::server::Acceptor::default();
            let Ok(start) = tokio_rustls::LazyConfigAcceptor::new(hello, io).await else {
                return;
            };
            let site = address.site_for(start.client_hello().server_name());
            let TlsMode::Rustls(config) = &site.tls else {
                return;
            };
            let Ok(mut stream) = start.into_stream(Arc::clone(config)).await else {
                return;
            };
            shared.handshakes.fetch_add(1, Ordering::SeqCst);
            let sni = stream.get_ref().1.server_name().map(str::to_owned);
            let info = ConnInfo { id, tls, sni };
            http_loop(&mut stream, &shared, &address, Some(site), &info).await;
        }
        TlsMode::LegacyOnly => {
            let mut header = [0u8; 5];
            if io.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            let mut hello = vec![0u8; len];
            if io.read_exact(&mut hello).await.is_err() {
                return;
            }
            if io.write_all(&LEGACY_ALERT).await.is_ok() {
                let _ = io.shutdown().await;
                drain(&mut io).await;
            }
        }
        TlsMode::Garbage => {
            let mut first = [0u8; 1];
            if matches!(io.read(&mut first).await, Ok(n) if n > 0)
                && io.write_all(GARBAGE).await.is_ok()
            {
                let _ = io.shutdown().await;
                drain(&mut io).await;
            }
        }
        // Off has no listener, so never gets here.
        TlsMode::Hang | TlsMode::Off => drain(&mut io).await,
    }
}

/// Reads and discards until the peer closes or the connection fails.
async fn drain<S: AsyncRead + Unpin>(io: &mut S) {
    let mut scratch = [0u8; 4096];
    while matches!(io.read(&mut scratch).await, Ok(n) if n > 0) {}
}

/// A parsed request head.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    content_length: usize,
    host: Option<String>,
    user_agent: Option<String>,
    accept_encoding: Option<String>,
}

/// Why a request head could not be used.
#[derive(Debug)]
enum HeadError {
    /// Closed or failed before a full head arrived.
    Gone,
    /// Too large or malformed: answered with this status, then closed.
    Bad(u16),
}

/// Serves requests on one connection until either side closes it: all for `fixed`
/// (the site a TLS handshake chose), else each for the site its `Host` header names.
async fn http_loop<S: Transport>(
    io: &mut S,
    shared: &Shared,
    address: &Address,
    fixed: Option<&SiteState>,
    info: &ConnInfo,
) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let req = match read_head(io, &mut buf).await {
            Ok(req) => {
                io.serving().start();
                req
            }
            Err(HeadError::Gone) => return,
            Err(HeadError::Bad(status)) => {
                let _ = write_head(io, status, &[], 0, false).await;
                return;
            }
        };
        lock(&shared.requests).push(RequestLog {
            at: Instant::now(),
            ip: address.ip,
            tls: info.tls,
            sni: info.sni.clone(),
            host_header: req.host.clone(),
            method: req.method.clone(),
            path: req.target.clone(),
            user_agent: req.user_agent.clone(),
            accept_encoding: req.accept_encoding.clone(),
            conn: info.id,
        });
        // Skip a request body, if any (GET has none).
        if !skip_body(io, &mut buf, req.content_length).await {
            return;
        }
        let site = fixed.unwrap_or_else(|| address.site_for(req.host.as_deref()));
        let reply = route(site, &req.target);
        let after = respond(io, reply, &req, &mut buf).await;
        io.serving().stop();
        match after {
            After::KeepAlive if req.keep_alive => {}
            After::KeepAlive | After::Close => {
                let _ = io.shutdown().await;
                return;
            }
            // No FIN first: the RST must be the first sign of the end.
            After::Reset => return,
        }
    }
}

/// The reply for `target`: robots.txt, an exact route, the route without its query,
/// else `None` (404).
fn route<'a>(site: &'a SiteState, target: &str) -> Option<&'a Prepared> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path == "/robots.txt" {
        return Some(&site.robots);
    }
    site.routes.get(target).or_else(|| site.routes.get(path))
}

/// Reads one request head into a [`Request`]; bytes after it stay in `buf`.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Request, HeadError> {
    let end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() >= MAX_REQUEST_HEAD {
            return Err(HeadError::Bad(431));
        }
        let mut chunk = [0u8; 4096];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head: Vec<u8> = buf.drain(..end).collect();
    parse_head(&head).ok_or(HeadError::Bad(400))
}

/// Parses a request line and headers (`head` ends with the blank line).
fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || target.is_empty() {
        return None;
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    let mut req = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        keep_alive: http11,
        content_length: 0,
        host: None,
        user_agent: None,
        accept_encoding: None,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "host" => req.host = Some(value.to_owned()),
            "user-agent" => req.user_agent = Some(value.to_owned()),
            "accept-encoding" => req.accept_encoding = Some(value.to_owned()),
            "content-length" => req.content_length = value.parse().ok()?,
            // Chunked request bodies are not supported: refuse rather than misframe.
            "transfer-encoding" => return None,
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        req.keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        req.keep_alive = true;
                    }
                }
            }
            _ => {}
        }
    }
    Some(req)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Discards `len` body bytes (some may already be in `buf`). False if the peer left.
async fn skip_body<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>, len: usize) -> bool {
    let buffered = len.min(buf.len());
    buf.drain(..buffered);
    let mut left = len - buffered;
    let mut chunk = [0u8; 4096];
    while left > 0 {
        match io.read(&mut chunk[..left.min(4096)]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => left -= n,
        }
    }
    true
}

/// The reason phrase for the statuses tests use; others get a generic one.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes a status line and headers with `Content-Length: len` (or chunked when `len`
/// is `usize::MAX`), plus `Connection: close` when the server will close.
async fn write_head<S: AsyncWrite + Unpin>(
    io: &mut S,
    status: u16,
    headers: &[(&str, String)],
    len: usize,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if len == usize::MAX {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    io.write_all(head.as_bytes()).await?;
    io.flush().await
}

/// What happens to a connection after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// It may serve another request.
    KeepAlive,
    /// The server closes it (FIN).
    Close,
    /// Dropping it resets it (SO_LINGER 0 is set).
    Reset,
}

/// Sends the reply for one request.
async fn respond<S: Transport>(
    io: &mut S,
    reply: Option<&Prepared>,
    req: &Request,
    buf: &mut Vec<u8>,
) -> After {
    let close = !req.keep_alive;
    let head_only = req.method.eq_ignore_ascii_case("HEAD");
    let mut reply = reply;
    let mut then_close = false;
    // Unwrap delays and close markers.
    loop {
        match reply {
            Some(Prepared::Slow(delay, inner)) => {
                tokio::time::sleep(*delay).await;
                reply = Some(inner);
            }
            Some(Prepared::ThenClose(inner)) => {
                then_close = true;
                reply = Some(inner);
            }
            _ => break,
        }
    }
    let sent = match reply {
        None => write_head(io, 404, &[], 0, close).await.is_ok(),
        Some(Prepared::Fixed {
            status,
            headers,
            body,
        }) => {
            let ok = write_head(io, *status, headers, body.len(), close)
                .await
                .is_ok();
            ok && (head_only || write_body(io, body).await.is_ok())
        }
        Some(Prepared::Big(n)) => {
            let html = [("Content-Type", "text/html".to_owned())];
            write_head(io, 200, &html, *n, close).await.is_ok()
                && (head_only || write_filler(io, *n).await.is_ok())
        }
        Some(Prepared::Endless) => {
            let html = [("Content-Type", "text/html".to_owned())];
            if write_head(io, 200, &html, usize::MAX, close).await.is_ok() && !head_only {
                // Until the client goes away.
                let _ = write_endless(io).await;
            }
            false
        }
        Some(Prepared::ResetMidBody(body)) => {
            let html = [("Content-Type", "text/html".to_owned())];
            if write_head(io, 200, &html, body.len(), false).await.is_ok() {
                let _ = write_body(io, &body[..body.len() / 2]).await;
            }
            // SO_LINGER 0: dropping the socket sends RST instead of FIN.
            let _ = io.tcp().set_zero_linger();
            return After::Reset;
        }
        Some(Prepared::Hang) => {
            // Never answer; wait for the client to give up.
            buf.clear();
            drain(io).await;
            return After::Close;
        }
        Some(Prepared::Raw(bytes)) => {
            let _ = write_body(io, bytes).await;
            false
        }
        // Unwrapped above.
        Some(Prepared::Slow(..) | Prepared::ThenClose(_)) => false,
    };
    if sent && !then_close {
        After::KeepAlive
    } else {
        After::Close
    }
}

async fn write_body<S: AsyncWrite + Unpin>(io: &mut S, body: &[u8]) -> io::Result<()> {
    io.write_all(body).await?;
    io.flush().await
}

/// HTML-ish filler for big and endless bodies.
fn filler() -> Vec<u8> {
    b"<p>spyder test filler</p>\n"
        .iter()
        .copied()
        .cycle()
        .take(FILL_CHUNK)
        .collect()
}

async fn write_filler<S: AsyncWrite + Unpin>(io: &mut S, n: usize) -> io::Result<()> {
    let fill = filler();
    let mut left = n;
    while left > 0 {
        let take = left.min(fill.len());
        io.write_all(&fill[..take]).await?;
        left -= take;
    }
    io.flush().await
}

/// Writes chunks forever; returns the error that ended it.
async fn write_endless<S: AsyncWrite + Unpin>(io: &mut S) -> io::Result<()> {
    let fill = filler();
    let mut chunk = format!("{:x}\r\n", fill.len()).into_bytes();
    chunk.extend_from_slice(&fill);
    chunk.extend_from_slice(b"\r\n");
    loop {
        io.write_all(&chunk).await?;
        io.flush().await?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, 0, 0, last)
    }

    #[test]
    fn parses_request_heads() {
        let req = parse_head(
            b"GET /a?b HTTP/1.1\r\nHost: x.example\r\nuser-agent: UA/1\r\nConnection: close\r\n\r\n",
        )
        .expect("valid head");
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/a?b");
        assert_eq!(req.host.as_deref(), Some("x.example"));
        assert_eq!(req.user_agent.as_deref(), Some("UA/1"));
        assert!(!req.keep_alive);
        let old = parse_head(b"GET / HTTP/1.0\r\n\r\n").expect("valid head");
        assert!(!old.keep_alive);
        assert!(parse_head(b"GET / HTTP/2\r\n\r\n").is_none());
        assert!(parse_head(b"GET /\r\n\r\n").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nbad header\r\n\r\n").is_none());
    }

    /// Sends raw request bytes on a fresh connection and reads until the server closes.
    async fn exchange(addr: (Ipv4Addr, u16), request: &[u8]) -> Vec<u8> {
        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(request).await.expect("writes");
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("server closes in time")
            .expect("reads");
        out
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests_on_one_connection() {
        let site = Site::plain(ip(101), Reply::Html("root".into())).with_robots(Reply::Text {
            content_type: "text/plain".into(),
            body: "User-agent: *\n".into(),
        });
        let web = WebServer::start(vec![site]).await.expect("starts");
        let out = exchange(
            (ip(101), web.http_port()),
            b"GET /robots.txt HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
        )
        .await;
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nUser-agent: *\n"));
        assert!(text.contains("text/html; charset=utf-8\r\nContent-Length: 4\r\n\r\nroot"));
        assert!(
            text.ends_with(
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        );
        let log = web.requests();
        let paths: Vec<&str> = log.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/robots.txt", "/", "/nope"]);
        assert!(
            log.iter()
                .all(|r| r.conn == log[0].conn && !r.tls && r.ip == ip(101))
        );
        assert_eq!(web.bytes_sent(ip(101)), text.len() as u64);
    }

    #[tokio::test]
    async fn https_port_modes() {
        let config = self_signed_config(&["tls.example"]).expect("cert");
        let sites = vec![
            Site::https(ip(111), config, Reply::Html("secure".into())),
            Site::plain(ip(112), Reply::Html("plain".into())),
            Site {
                tls: TlsMode::LegacyOnly,
                ..Site::plain(ip(113), Reply::Status(200))
            },
            Site {
                tls: TlsMode::Garbage,
                ..Site::plain(ip(114), Reply::Status(200))
            },
            Site {
                tls: TlsMode::Hang,
                ..Site::plain(ip(115), Reply::Status(200))
            },
        ];
        let web = WebServer::start(sites).await.expect("starts");
        let port = web.https_port();

        // TLS: SNI and handshake recorded.
        let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
        let tcp = TcpStream::connect((ip(111), port)).await.expect("connects");
        let name = rustls_pki_types::ServerName::try_from("tls.example").expect("name");
        let mut tls = connector.connect(name, tcp).await.expect("handshake");
        tls.write_all(b"GET / HTTP/1.1\r\nHost: tls.example\r\nConnection: close\r\n\r\n")
            .await
            .expect("writes");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
            .await
            .expect("in time");
        assert!(
            out.ends_with(b"\r\n\r\nsecure"),
            "{}",
            String::from_utf8_lossy(&out)
        );
        assert_eq!(web.handshakes(), 1);
        let log = web.requests();
        assert_eq!(log[0].sni.as_deref(), Some("tls.example"));
        assert!(log[0].tls);

        // Off: refused. The plain site's HTTP port works.
        let refused = TcpStream::connect((ip(112), port)).await;
        assert_eq!(
            refused.expect_err("refused").kind(),
            io::ErrorKind::ConnectionRefused
        );
        // Plain HTTP is off for the https site.
        assert!(
            TcpStream::connect((ip(111), web.http_port()))
                .await
                .is_err()
        );

        // Legacy: the protocol_version alert after a ClientHello-shaped record.
        let hello = [0x16, 0x03, 0x01, 0x00, 0x03, 0x01, 0x00, 0x00];
        assert_eq!(exchange((ip(113), port), &hello).await, LEGACY_ALERT);
        // Garbage: non-TLS bytes.
        assert_eq!(exchange((ip(114), port), &hello).await, GARBAGE);
        // Hang: accepted, never answered.
        let mut s = TcpStream::connect((ip(115), port)).await.expect("accepted");
        s.write_all(&hello).await.expect("writes");
        let mut byte = [0u8; 1];
        let silent = tokio::time::timeout(Duration::from_millis(200), s.read(&mut byte)).await;
        assert!(silent.is_err(), "a hanging host answered");
        // Only the hanging connection stays open (the others close soon after their
        // clients left).
        let mut open = web.open_connections();
        for _ in 0..500 {
            if open == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
            open = web.open_connections();
        }
        assert_eq!(open, 1);
        drop(s);
    }

    #[tokio::test]
    async fn many_sites_share_two_ports_and_all_answer() {
        let sites: Vec<Site> = (0..1000u32)
            .map(|i| {
                let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
                Site::plain(addr, Reply::Html(format!("site {i}")))
            })
            .collect();
        let web = WebServer::start(sites).await.expect("starts");
        let port = web.http_port();
        let mut answered = 0;
        for i in 0..1000u32 {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
            let out = exchange((addr, port), b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
            if out.ends_with(format!("\r\n\r\nsite {i}").as_bytes()) {
                answered += 1;
            }
        }
        assert_eq!(answered, 1000);
        assert_eq!(web.requests().len(), 1000);
    }

    #[tokio::test]
    async fn raw_and_reset_and_then_close() {
        let site = Site::plain(ip(121), Reply::Status(200))
            .with_route(
                "/raw",
                Reply::Raw(
                    b"HTTP/1.1 200 OK\r\nX-Odd:  yes \r\nContent-Length: 2\r\n\r\nhi".to_vec(),
                ),
            )
            .with_route("/reset", Reply::ResetMidBody("0123456789".into()))
            .with_route("/once", Reply::ThenClose(Box::new(Reply::Html("x".into()))));
        let web = WebServer::start(vec![site]).await.expect("starts");
        let addr = (ip(121), web.http_port());
        let raw = exchange(addr, b"GET /raw HTTP/1.1\r\n\r\n").await;
        assert_eq!(
            raw,
            b"HTTP/1.1 200 OK\r\nX-Odd:  yes \r\nContent-Length: 2\r\n\r\nhi"
        );
        let once = exchange(addr, b"GET /once HTTP/1.1\r\n\r\n").await;
        assert!(once.ends_with(b"Content-Length: 1\r\n\r\nx"));

        let mut s = TcpStream::connect(addr).await.expect("connects");
        s.write_all(b"GET /reset HTTP/1.1\r\n\r\n")
            .await
            .expect("writes");
        let mut out = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("in time");
        assert_eq!(
            read.expect_err("reset").kind(),
            io::ErrorKind::ConnectionReset
        );
    }

    /// Polls `f` until it holds, for at most five seconds.
    async fn eventually(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..500 {
            if f() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        f()
    }

    #[tokio::test]
    async fn connections_are_counted_per_address_over_both_ports() {
        let config = self_signed_config(&["count.example"]).expect("cert");
        let both = Site::https(ip(141), config, Reply::Html("x".into())).with_plain_http(true);
        let other = Site::plain(ip(142), Reply::Html("y".into()));
        let web = WebServer::start(vec![both, other]).await.expect("starts");
        let mut held = Vec::new();
        for port in [web.https_port(), web.http_port(), web.http_port()] {
            held.push(TcpStream::connect((ip(141), port)).await.expect("connects"));
        }
        held.push(
            TcpStream::connect((ip(142), web.http_port()))
                .await
                .expect("connects"),
        );
        assert!(
            eventually(|| web.open_connections_to(ip(141)) == 3).await,
            "open to .141: {}",
            web.open_connections_to(ip(141))
        );
        assert!(eventually(|| web.open_connections_to(ip(142)) == 1).await);
        assert_eq!(web.open_connections(), 4);
        drop(held);
        assert!(eventually(|| web.open_connections() == 0).await);
        // One more after the others closed: the peak stays the high-water mark.
        let _again = TcpStream::connect((ip(141), web.http_port()))
            .await
            .expect("connects");
        assert!(eventually(|| web.open_connections_to(ip(141)) == 1).await);
        assert_eq!(web.peak_open_connections(ip(141)), 3);
        assert_eq!(web.peak_open_connections(ip(142)), 1);
        assert_eq!(web.peak_open_connections(ip(143)), 0);
        assert_eq!(web.open_connections_to(ip(143)), 0);
    }

    #[tokio::test]
    async fn a_connection_is_served_only_until_its_answer_is_written() {
        // Through a 300 ms delay line the server sees a client's close 300 ms late, so
        // it counts the first connection open while the client's second one runs; the
        // serving span ends with the answer, so it never counts both.
        let options = WebOptions {
            network: TcpConditions {
                rtt: Duration::from_millis(300),
                ..TcpConditions::default()
            },
            filtered: Vec::new(),
            ports: None,
        };
        let site = Site::plain(ip(145), Reply::Html("x".into()));
        let web = WebServer::start_with(vec![site.into()], options)
            .await
            .expect("starts");
        for _ in 0..2 {
            let mut s = TcpStream::connect((ip(145), web.http_port()))
                .await
                .expect("connects");
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .expect("writes");
            let mut got = Vec::new();
            while !got.ends_with(b"\r\n\r\nx") {
                let mut chunk = [0u8; 1024];
                let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                    .await
                    .expect("answers in time")
                    .expect("reads");
                assert!(n > 0, "closed before the answer: {got:?}");
                got.extend_from_slice(&chunk[..n]);
            }
            // Closed here, with the connection kept alive at the server.
        }
        assert_eq!(web.peak_open_connections(ip(145)), 2);
        assert_eq!(web.peak_serving_connections(ip(145)), 1);
        assert!(eventually(|| web.open_connections() == 0).await);
        assert_eq!(web.peak_serving_connections(ip(146)), 0);
    }

    /// A TLS exchange with SNI `name` on `addr`: the body after the head and the
    /// server's leaf certificate.
    async fn tls_get(addr: (Ipv4Addr, u16), name: &str) -> (String, Vec<u8>) {
        let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
        let tcp = TcpStream::connect(addr).await.expect("connects");
        let server_name =
            rustls_pki_types::ServerName::try_from(name.to_owned()).expect("valid name");
        let mut tls =
            tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
                .await
                .expect("handshake in time")
                .expect("handshake");
        let leaf = tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec();
        tls.write_all(
            format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("writes");
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
            .await
            .expect("in time");
        let text = String::from_utf8_lossy(&out).into_owned();
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (body, leaf)
    }

    #[tokio::test]
    async fn one_address_serves_several_sites_by_sni_and_host() {
        let shared_ip = ip(161);
        let named = |name: &str, body: &str| NamedSite {
            names: vec![name.to_owned(), format!("www.{name}")],
            site: Site::https(
                shared_ip,
                self_signed_config(&[name]).expect("cert"),
                Reply::Html(body.to_owned()),
            )
            .with_plain_http(true)
            .with_robots(Reply::Text {
                content_type: "text/plain".into(),
                body: format!("# robots of {name}\n"),
            }),
        };
        let sites = vec![
            named("a.example", "site a"),
            named("b.example", "site b"),
            named("c.example", "site c"),
            Site::plain(ip(162), Reply::Html("alone".into())).into(),
        ];
        let web = WebServer::start_with(sites, WebOptions::default())
            .await
            .expect("starts");
        let https = (shared_ip, web.https_port());
        let (a, cert_a) = tls_get(https, "a.example").await;
        let (b, cert_b) = tls_get(https, "B.Example").await;
        let (www_c, cert_c) = tls_get(https, "www.c.example").await;
        assert_eq!(
            (a.as_str(), b.as_str(), www_c.as_str()),
            ("site a", "site b", "site c")
        );
        assert!(
            cert_a != cert_b && cert_b != cert_c,
            "one certificate per site"
        );
        // An unknown name gets the first site, as a default virtual host.
        let (other, cert_other) = tls_get(https, "unknown.example").await;
        assert_eq!(other, "site a");
        assert_eq!(cert_other, cert_a);
        assert_eq!(web.handshakes(), 4);

        // Plain HTTP: the Host header picks the site, request by request on one
        // kept-alive connection.
        let out = exchange(
            (shared_ip, web.http_port()),
            b"GET /robots.txt HTTP/1.1\r\nHost: b.example\r\n\r\nGET / HTTP/1.1\r\nHost: c.example:80\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        let text = String::from_utf8(out).expect("ascii");
        let bodies: Vec<&str> = text
            .split("HTTP/1.1 200 OK")
            .skip(1)
            .map(|r| r.split_once("\r\n\r\n").map_or("", |(_, b)| b))
            .collect();
        assert_eq!(bodies, ["# robots of b.example\n", "site c", "site a"]);
        let log = web.requests();
        assert!(log.iter().all(|r| r.ip == shared_ip));
        assert_eq!(log[0].sni.as_deref(), Some("a.example"));
        assert_eq!(log[1].sni.as_deref(), Some("b.example"));
        // The lone site still answers on its own address.
        let alone = exchange(
            (ip(162), web.http_port()),
            b"GET / HTTP/1.1\r\nHost: whatever\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(alone.ends_with(b"alone"));
        assert!(web.bytes_sent(shared_ip) > 0);
    }

    #[tokio::test]
    async fn shared_addresses_need_names_and_one_tls_kind() {
        let config = self_signed_config(&["x.example"]).expect("cert");
        let unnamed = vec![
            NamedSite {
                names: vec!["x.example".into()],
                site: Site::plain(ip(171), Reply::Status(200)),
            },
            Site::plain(ip(171), Reply::Status(200)).into(),
        ];
        let err = WebServer::start_with(unnamed, WebOptions::default())
            .await
            .expect_err("an unnamed shared site");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let mixed = vec![
            NamedSite {
                names: vec!["x.example".into()],
                site: Site::https(ip(172), config, Reply::Status(200)).with_plain_http(true),
            },
            NamedSite {
                names: vec!["y.example".into()],
                site: Site::plain(ip(172), Reply::Status(200)),
            },
        ];
        let err = WebServer::start_with(mixed, WebOptions::default())
            .await
            .expect_err("TLS and no TLS on one address");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        let clash = WebServer::start_with(
            vec![Site::plain(ip(173), Reply::Status(200)).into()],
            WebOptions {
                filtered: vec![ip(173)],
                ..WebOptions::default()
            },
        )
        .await
        .expect_err("a filtered site address");
        assert_eq!(clash.kind(), io::ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn filtered_addresses_never_answer_a_connect_on_either_port() {
        let sites = vec![Site::plain(ip(181), Reply::Html("up".into())).into()];
        let options = WebOptions {
            filtered: vec![ip(182), ip(183)],
            ..WebOptions::default()
        };
        let web = WebServer::start_with(sites, options).await.expect("starts");
        let holes = web.filtered();
        assert_eq!(holes.len(), 4);
        let mut pending = Vec::new();
        for filtered in [ip(182), ip(183)] {
            for port in [web.https_port(), web.http_port()] {
                assert!(holes.contains(&SocketAddr::from((filtered, port))));
                pending.push(tokio::spawn(async move {
                    tokio::time::timeout(
                        Duration::from_millis(1500),
                        TcpStream::connect((filtered, port)),
                    )
                    .await
                    .is_err()
                }));
            }
        }
        for p in pending {
            assert!(p.await.expect("joins"), "a filtered connect got an answer");
        }
        // The site next to them serves; its HTTPS port (nothing bound) refuses.
        let out = exchange(
            (ip(181), web.http_port()),
            b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(out.ends_with(b"up"));
        let refused = TcpStream::connect((ip(181), web.https_port())).await;
        assert_eq!(
            refused.expect_err("refused").kind(),
            io::ErrorKind::ConnectionRefused
        );
        assert_eq!(web.accepted_connections(), 1);
    }

    #[tokio::test]
    async fn network_conditions_cost_each_exchange_a_round_trip() {
        let rtt = Duration::from_millis(80);
        let options = WebOptions {
            network: TcpConditions {
                rtt,
                jitter: Duration::from_millis(10),
                seed: 3,
            },
            ..WebOptions::default()
        };
        let sites = vec![Site::plain(ip(191), Reply::Html("slow".into())).into()];
        let web = WebServer::start_with(sites, options).await.expect("starts");
        let started = std::time::Instant::now();
        let mut s = TcpStream::connect((ip(191), web.http_port()))
            .await
            .expect("connects");
        let mut exchanges = Vec::new();
        for last in [false, true] {
            let t = std::time::Instant::now();
            let close = if last { "Connection: close\r\n" } else { "" };
            s.write_all(format!("GET / HTTP/1.1\r\n{close}\r\n").as_bytes())
                .await
                .expect("writes");
            let mut head = vec![0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut head))
                .await
                .expect("answer in time")
                .expect("reads");
            assert!(
                head[..n].ends_with(b"slow"),
                "{:?}",
                String::from_utf8_lossy(&head[..n])
            );
            exchanges.push(t.elapsed());
        }
        // Connect and the first exchange: two round trips; every later one: one.
        assert!(started.elapsed() >= rtt * 3, "{:?}", started.elapsed());
        assert!(exchanges[0] >= rtt * 2, "first exchange {:?}", exchanges[0]);
        assert!(exchanges[1] >= rtt, "second exchange {:?}", exchanges[1]);
        assert_eq!(web.requests().len(), 2);
    }

    #[tokio::test]
    async fn duplicate_addresses_are_rejected() {
        let sites = vec![
            Site::plain(ip(131), Reply::Status(200)),
            Site::plain(ip(131), Reply::Status(200)),
        ];
        let err = WebServer::start(sites).await.expect_err("duplicate");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

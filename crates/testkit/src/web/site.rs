//! What a test scripts: sites, their TLS modes and replies, the server's network
//! options, and the log of what the server received.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::netsim::TcpConditions;

#[cfg(doc)]
use super::WebServer;

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

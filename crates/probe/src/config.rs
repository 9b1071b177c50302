//! Probe configuration: what is fixed when a [`crate::Probe`] is built, and the
//! [`ProbeSettings`] snapshot each task reads (hot-reloadable by its owner).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// Where certificate verification takes its trust anchors from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The Mozilla roots compiled into `webpki-roots`.
    #[default]
    Webpki,
    /// The operating system's store.
    System,
    /// A PEM file of one or more CA certificates.
    PemFile(PathBuf),
    /// PEM text of one or more CA certificates (for embedding and tests).
    Pem(String),
}

/// DNS client settings that may change between tasks.
///
/// Start from [`DnsSettings::new`] (given servers) or [`Default`] (the system's
/// resolvers) and set the fields you need.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DnsSettings {
    /// Recursive resolvers to query, in rotation order.
    pub servers: Vec<SocketAddr>,
    /// Wait for one try.
    pub query_timeout: Duration,
    /// Retries after the first try (0–10).
    pub retries: u32,
    /// Open queries allowed per server.
    pub max_inflight: usize,
}

impl DnsSettings {
    /// Settings that ask `servers`, every other field at its default.
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Self {
            servers,
            query_timeout: Duration::from_secs(2),
            retries: 2,
            max_inflight: 1024,
        }
    }
}

impl Default for DnsSettings {
    /// The resolvers of `/etc/resolv.conf` (see [`DnsSettings::new`] for the rest).
    fn default() -> Self {
        Self::new(crate::dns::system_servers())
    }
}

/// Settings each task reads from one snapshot; changing them needs no restart.
///
/// Start from [`Default`] and set the fields you need; hand the result to
/// [`ProbeBuilder::settings`](crate::ProbeBuilder::settings) or
/// [`Probe::update_settings`](crate::Probe::update_settings).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProbeSettings {
    /// `User-Agent` for every request; its product token (before the first `/`)
    /// selects the robots.txt group.
    pub user_agent: String,
    /// A host equal to or under one of these suffixes is resolved but not contacted.
    pub exclude_tlds: Vec<String>,
    /// Requests per second per host, shared by all workers.
    pub rate_per_host: f64,
    /// Token bucket depth per host.
    pub rate_burst: u32,
    /// Requests per second across all hosts, shared by all workers; requests are
    /// spaced evenly. 0 (the default) does not limit.
    pub rate_global: f64,
    /// Connections open at once to one IP address, across all workers (0 = no cap).
    /// Waiting for a slot counts against `task_timeout`, not `tls_timeout`.
    pub max_conns_per_ip: usize,
    /// Whole-task deadline, waits included.
    pub task_timeout: Duration,
    /// DNS phase deadline.
    pub dns_timeout: Duration,
    /// TCP connect plus TLS handshake deadline.
    pub tls_timeout: Duration,
    /// Per HTTP request deadline.
    pub http_timeout: Duration,
    /// Cap on decoded body bytes read from the root page.
    pub body_max_bytes: usize,
    /// Redirect hops followed (0–20).
    pub max_redirects: u32,
    /// Try plain HTTP on `http_port` when TLS fails.
    pub http_fallback: bool,
    /// Contact private and loopback addresses (SPEC §3.5).
    pub allow_private: bool,
    /// Ranges contacted even though private.
    pub allow_cidrs: Vec<IpNet>,
    /// Port of the TLS connection (and of `https://` URLs without one).
    pub https_port: u16,
    /// Port of the plain HTTP fallback (and of `http://` URLs without one).
    pub http_port: u16,
    /// Ports a redirect may lead to besides `https_port` and `http_port`. Empty: any
    /// port that is not a bad port of the Fetch standard (SPEC §3.4).
    pub redirect_ports: Vec<u16>,
    /// The DNS client's settings.
    pub dns: DnsSettings,
}

impl ProbeSettings {
    /// Settings with these DNS settings, every other field at its default (unlike
    /// [`Default`], this does not read `/etc/resolv.conf`).
    pub fn new(dns: DnsSettings) -> Self {
        Self {
            user_agent: "SPYDERProbe/1.0 (+https://github.com/gustycube/spyder)".to_owned(),
            exclude_tlds: vec!["gov".into(), "mil".into(), "int".into()],
            rate_per_host: 1.0,
            rate_burst: 2,
            rate_global: 0.0,
            max_conns_per_ip: 32,
            task_timeout: Duration::from_secs(30),
            dns_timeout: Duration::from_secs(10),
            tls_timeout: Duration::from_secs(8),
            http_timeout: Duration::from_secs(15),
            body_max_bytes: 512 * 1024,
            max_redirects: 5,
            http_fallback: true,
            allow_private: false,
            allow_cidrs: Vec::new(),
            https_port: 443,
            http_port: 80,
            redirect_ports: Vec::new(),
            dns,
        }
    }
}

impl Default for ProbeSettings {
    /// The defaults, asking the resolvers of `/etc/resolv.conf`.
    fn default() -> Self {
        Self::new(DnsSettings::default())
    }
}

/// Everything needed to build a [`crate::Probe`], as plain data: what the
/// configuration layer maps its keys to. [`ProbeBuilder::config`](crate::ProbeBuilder::config)
/// takes it whole; the builder's other setters change one field each.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ProbeConfig {
    /// `probe_id` stamped on every edge.
    pub probe_id: String,
    /// `run_id` stamped on every edge.
    pub run_id: String,
    /// Trust anchors for certificate verification.
    pub tls_roots: TlsRoots,
    /// UDP sockets the DNS client multiplexes over (1–64).
    pub dns_sockets: usize,
    /// DNS cache entries, keyed by (name, type); 0 disables the cache.
    pub dns_cache_size: usize,
    /// The initial hot-reloadable settings.
    pub settings: ProbeSettings,
}

impl ProbeConfig {
    /// A configuration with these settings, every other field at its default (unlike
    /// [`Default`], this does not read `/etc/resolv.conf`).
    pub fn new(settings: ProbeSettings) -> Self {
        Self {
            probe_id: "local-1".to_owned(),
            run_id: spyder_model::default_run_id(),
            tls_roots: TlsRoots::Webpki,
            dns_sockets: 4,
            dns_cache_size: 10_000,
            settings,
        }
    }
}

impl Default for ProbeConfig {
    /// The defaults, asking the resolvers of `/etc/resolv.conf`.
    fn default() -> Self {
        Self::new(ProbeSettings::default())
    }
}

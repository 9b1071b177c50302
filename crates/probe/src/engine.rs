//! The crawl task: SPEC §1 steps 1–10 for one domain, within `task_timeout`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use spyder_model::{
    Edge, EdgeType, HostName, NameKind, NodeCert, NodeDomain, NodeIp, Records, Timestamp,
};
use tracing::Instrument as _;

use crate::dns::{self, DnsClient, ResolveStatus};
use crate::fetch::{Web, WebFindings};
use crate::policy;
use crate::politeness::{AddressLimiter, GlobalLimiter, HostLimiter};
use crate::robots::RobotsCache;
use crate::tls::{TlsConnector, TlsSetupError};
use crate::{CrawlReport, Outcome, PhaseTimings, ProbeConfig, ProbeSettings, TlsRoots};

/// Hosts whose robots.txt rules are remembered (SPEC §3.6).
const ROBOTS_CACHE_HOSTS: usize = 4096;
const ROBOTS_CACHE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Hosts whose politeness buckets are remembered; a forgotten host starts full.
const LIMITER_HOSTS: usize = 65_536;

/// Why a probe could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The DNS client's UDP sockets could not be opened (or no tokio runtime was
    /// entered: see [`ProbeBuilder::build`]).
    #[error("dns client: {0}")]
    Dns(#[from] std::io::Error),
    /// The trust roots could not be loaded.
    #[error("tls roots: {0}")]
    Tls(#[from] TlsSetupError),
}

/// The probe engine. Call [`Probe::crawl`] from as many tasks as you like.
///
/// Cloning is cheap: every clone shares one engine, so DNS sockets, the DNS and
/// robots caches, the per-host politeness buckets, the per-address connection
/// slots and the settings ([`Probe::update_settings`]) are shared by all of them.
#[derive(Clone, Debug)]
pub struct Probe {
    inner: Arc<Inner>,
}

/// What every clone of a [`Probe`] shares.
#[derive(Debug)]
struct Inner {
    probe_id: String,
    run_id: String,
    settings: ArcSwap<ProbeSettings>,
    dns: DnsClient,
    tls: TlsConnector,
    limiter: HostLimiter,
    global_limiter: GlobalLimiter,
    addresses: AddressLimiter,
    robots: RobotsCache,
}

/// Builds a [`Probe`]: start from [`Probe::builder`], set what differs from the
/// defaults, then [`build`](ProbeBuilder::build).
///
/// The defaults are those of [`ProbeConfig::default`].
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct ProbeBuilder {
    config: ProbeConfig,
}

impl ProbeBuilder {
    /// Replaces everything set so far by `config`.
    pub fn config(mut self, config: ProbeConfig) -> Self {
        self.config = config;
        self
    }

    /// The `probe_id` stamped on every edge.
    pub fn probe_id(mut self, probe_id: impl Into<String>) -> Self {
        self.config.probe_id = probe_id.into();
        self
    }

    /// The `run_id` stamped on every edge.
    pub fn run_id(mut self, run_id: impl Into<String>) -> Self {
        self.config.run_id = run_id.into();
        self
    }

    /// Trust anchors for certificate verification.
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.config.tls_roots = roots;
        self
    }

    /// UDP sockets the DNS client multiplexes over (clamped to 1–64).
    pub fn dns_sockets(mut self, sockets: usize) -> Self {
        self.config.dns_sockets = sockets;
        self
    }

    /// DNS cache entries, keyed by (name, type); 0 disables the cache.
    pub fn dns_cache_size(mut self, entries: usize) -> Self {
        self.config.dns_cache_size = entries;
        self
    }

    /// The initial hot-reloadable settings.
    pub fn settings(mut self, settings: ProbeSettings) -> Self {
        self.config.settings = settings;
        self
    }

    /// Builds the probe: opens the DNS client's UDP sockets and loads the trust
    /// roots. Not async, but it must run inside a tokio runtime (in an async
    /// function, or after [`tokio::runtime::Runtime::enter`]): the sockets are
    /// registered with that runtime and their receive tasks spawned on it.
    /// Outside one it returns [`BuildError::Dns`].
    pub fn build(self) -> Result<Probe, BuildError> {
        let config = self.config;
        let inner = Inner {
            dns: DnsClient::new(config.dns_sockets, config.dns_cache_size)?,
            tls: TlsConnector::new(&config.tls_roots)?,
            limiter: HostLimiter::new(LIMITER_HOSTS),
            global_limiter: GlobalLimiter::default(),
            addresses: AddressLimiter::new(),
            robots: RobotsCache::new(ROBOTS_CACHE_HOSTS, ROBOTS_CACHE_TTL),
            settings: ArcSwap::from_pointee(config.settings),
            probe_id: config.probe_id,
            run_id: config.run_id,
        };
        Ok(Probe {
            inner: Arc::new(inner),
        })
    }
}

impl Probe {
    /// A builder with the default configuration ([`ProbeConfig::default`]).
    pub fn builder() -> ProbeBuilder {
        ProbeBuilder::default()
    }

    /// The `probe_id` stamped on every edge.
    pub fn probe_id(&self) -> &str {
        &self.inner.probe_id
    }

    /// The `run_id` stamped on every edge.
    pub fn run_id(&self) -> &str {
        &self.inner.run_id
    }

    /// The settings snapshot the next task will use.
    pub fn settings(&self) -> Arc<ProbeSettings> {
        self.inner.settings.load_full()
    }

    /// Replaces the settings of this probe and all its clones; tasks already
    /// running keep their snapshot.
    pub fn update_settings(&self, settings: Arc<ProbeSettings>) {
        self.inner.settings.store(settings);
    }

    /// The DNS client, for tools that want lookups with the probe's cache (and
    /// for tests that read its counters).
    #[doc(hidden)]
    pub fn dns(&self) -> &DnsClient {
        &self.inner.dns
    }

    /// Crawls one domain: `input` is a host name or an `http(s)://` URL. Never fails:
    /// the [`CrawlReport`] says how the task ended and carries whatever it observed.
    pub async fn crawl(&self, input: &str) -> CrawlReport {
        let settings = self.inner.settings.load_full();
        let started = Instant::now();
        let observed_at = Timestamp::now();
        let host = match HostName::from_input(input) {
            Ok(h) => h,
            Err(e) => {
                return CrawlReport {
                    host: None,
                    observed_at,
                    outcome: Outcome::Invalid,
                    detail: Some(e.to_string()),
                    records: Records::default(),
                    candidates: Vec::new(),
                    timings: PhaseTimings::default(),
                };
            }
        };
        let mut task = Task::new(&self.inner, host, observed_at);
        // A panic inside the task (a bug) ends this task only: it is `internal`, with
        // the panic message as its detail, and keeps the records found so far.
        let run = crate::contain::catch_panic(task.run(&self.inner, &settings));
        let outcome = match tokio::time::timeout(settings.task_timeout, run).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(panic)) => {
                task.detail = Some(format!("panic: {panic}"));
                Outcome::Internal
            }
            Err(_) => {
                task.detail = Some(format!("task_timeout in {}", task.timings.current_phase()));
                Outcome::Timeout
            }
        };
        // A deadline during DNS ends the phase too: it is still observed once.
        if let Some(dns_started) = task.dns_started
            && task.timings.dns.is_none()
        {
            task.dns_phase_done(dns_started.elapsed());
        }
        task.timings.total = started.elapsed();
        task.into_report(outcome)
    }
}

/// The state of one crawl, kept outside the timed future so a deadline keeps it.
struct Task {
    host: HostName,
    observed_at: Timestamp,
    probe_id: String,
    run_id: String,
    records: Records,
    seen: HashSet<(u8, String, String)>,
    candidates: Vec<HostName>,
    candidate_set: HashSet<HostName>,
    found: WebFindings,
    timings: PhaseTimings,
    /// When step 3 began; set once the task reaches DNS.
    dns_started: Option<Instant>,
    detail: Option<String>,
}

impl Task {
    fn new(probe: &Inner, host: HostName, observed_at: Timestamp) -> Self {
        let mut task = Self {
            host: host.clone(),
            observed_at,
            probe_id: probe.probe_id.clone(),
            run_id: probe.run_id.clone(),
            records: Records::default(),
            seen: HashSet::new(),
            candidates: Vec::new(),
            candidate_set: HashSet::new(),
            found: WebFindings::default(),
            timings: PhaseTimings::default(),
            dns_started: None,
            detail: None,
        };
        task.domain(&host); // step 2: the crawled host itself, always
        task
    }

    async fn run(&mut self, probe: &Inner, s: &ProbeSettings) -> Outcome {
        let host = self.host.clone();

        // Step 3: DNS.
        let started = Instant::now();
        self.dns_started = Some(started);
        let resolution = dns::resolve(&probe.dns, &host, &s.dns, s.dns_timeout)
            .instrument(tracing::info_span!("dns"))
            .await;
        self.dns_phase_done(started.elapsed());
        #[cfg(feature = "fault-injection")]
        crate::fault::after_dns(&host);
        for ip in &resolution.addresses {
            self.ip(*ip);
            self.edge(EdgeType::ResolvesTo, host.as_str(), &ip.to_string());
        }
        for ns in &resolution.name_servers {
            self.domain(ns);
            self.edge(EdgeType::UsesNs, host.as_str(), ns.as_str());
            self.candidate(ns);
        }
        for (from, to) in &resolution.aliases {
            self.domain(to);
            self.edge(EdgeType::AliasOf, from.as_str(), to.as_str());
            self.candidate(to);
        }
        for mx in &resolution.mail_exchangers {
            self.domain(mx);
            self.edge(EdgeType::UsesMx, host.as_str(), mx.as_str());
            self.candidate(mx);
        }
        match resolution.status {
            ResolveStatus::Resolved => {}
            ResolveStatus::NoAddress => return Outcome::NoAddress,
            ResolveStatus::Failed => {
                self.detail = resolution.failure.clone();
                return Outcome::DnsError;
            }
        }

        // Step 4: excluded TLDs are resolved but never contacted.
        if s.exclude_tlds.iter().any(|t| host.is_within(t)) {
            return Outcome::Excluded;
        }

        // Step 5: private-target refusal.
        let permitted: Vec<IpAddr> = if policy::is_refused_name(&host, s) {
            Vec::new()
        } else {
            let mut v: Vec<IpAddr> = resolution
                .addresses
                .iter()
                .copied()
                .filter(|ip| !policy::is_refused(*ip, s))
                .collect();
            // IPv4 first: it is what most hosts serve best.
            v.sort_by_key(|ip| ip.is_ipv6());
            v
        };
        if permitted.is_empty() {
            return Outcome::PrivateRefused;
        }

        // Steps 6–10: the web phase. Its findings live in the task, so a deadline
        // keeps whatever it saw; `finish` turns them into records.
        let web = Web {
            settings: s,
            dns: &probe.dns,
            tls: &probe.tls,
            limiter: &probe.limiter,
            global_limiter: &probe.global_limiter,
            addresses: &probe.addresses,
            robots: &probe.robots,
        };
        web.run(&host, &permitted, &mut self.found, &mut self.timings)
            .await;
        if self.found.robots_blocked {
            Outcome::RobotsBlocked
        } else if self.found.responded {
            Outcome::Complete
        } else {
            self.detail = self.found.failure.clone();
            Outcome::NoWeb
        }
    }

    /// Ends step 3: its wall time is the task's one observation of
    /// `spyder_dns_lookup_duration_seconds` (lookups of redirect targets and cache
    /// hits are not observations of their own).
    fn dns_phase_done(&mut self, took: Duration) {
        self.timings.dns = Some(took);
        spyder_model::telemetry::dns_lookup_duration().record(took.as_secs_f64());
    }

    /// Records for what the web phase found: the certificate, SANs, redirect and link hosts.
    fn web_records(&mut self) {
        let found = std::mem::take(&mut self.found);
        let host = self.host.clone();
        if let Some(cert) = &found.cert {
            self.cert(cert);
            for san in &cert.sans {
                let name = san.strip_prefix("*.").unwrap_or(san);
                if let Ok(h) = HostName::parse(name, NameKind::Strict) {
                    self.candidate(&h);
                }
            }
        }
        for target in &found.redirect_hosts {
            if target.is_external_to(&host) {
                self.domain(target);
                self.edge(EdgeType::LinksTo, host.as_str(), target.as_str());
            }
            self.candidate(target);
        }
        for target in &found.link_hosts {
            if target.is_external_to(&host) {
                self.domain(target);
                self.edge(EdgeType::LinksTo, host.as_str(), target.as_str());
                self.candidate(target);
            }
        }
    }

    fn domain(&mut self, name: &HostName) {
        if self
            .seen
            .insert((0, name.as_str().to_owned(), String::new()))
        {
            self.records.nodes_domain.push(NodeDomain {
                host: name.to_string(),
                apex: name.apex().to_owned(),
                first_seen: self.observed_at,
                last_seen: self.observed_at,
            });
        }
    }

    fn ip(&mut self, ip: IpAddr) {
        if self.seen.insert((1, ip.to_string(), String::new())) {
            self.records.nodes_ip.push(NodeIp {
                ip,
                first_seen: self.observed_at,
                last_seen: self.observed_at,
            });
        }
    }

    fn cert(&mut self, cert: &NodeCert) {
        if self
            .seen
            .insert((2, cert.spki_sha256.clone(), String::new()))
        {
            self.records.nodes_cert.push(cert.clone());
        }
        let host = self.host.clone();
        self.edge(EdgeType::UsesCert, host.as_str(), &cert.spki_sha256);
    }

    fn edge(&mut self, kind: EdgeType, source: &str, target: &str) {
        let key = (3 + kind as u8, source.to_owned(), target.to_owned());
        if self.seen.insert(key) {
            self.records.edges.push(Edge {
                kind,
                source: source.to_owned(),
                target: target.to_owned(),
                observed_at: self.observed_at,
                probe_id: self.probe_id.clone(),
                run_id: self.run_id.clone(),
            });
        }
    }

    fn candidate(&mut self, name: &HostName) {
        if *name != self.host && self.candidate_set.insert(name.clone()) {
            self.candidates.push(name.clone());
        }
    }

    fn into_report(mut self, outcome: Outcome) -> CrawlReport {
        self.web_records();
        CrawlReport {
            host: Some(self.host),
            observed_at: self.observed_at,
            outcome,
            detail: self.detail,
            records: self.records,
            candidates: self.candidates,
            timings: self.timings,
        }
    }
}

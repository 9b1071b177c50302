//! The server: binding every address, its counters and logs, and starting the
//! accept loops.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::task::JoinSet;

use super::bind::{Bound, Endpoint, Need, bind_all, bind_fixed};
use super::conn::accept_loop;
use super::prepared::prepare_site;
use super::shared::{Address, Shared, lock, normalise_name};
use super::site::{NamedSite, RequestLog, Site, TlsMode, WebOptions};
use crate::netsim::ConnectHole;

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

//! Binding the shared HTTPS and plain-HTTP ports on every address: serving
//! listeners and connect-level black holes.

use std::io;
use std::net::Ipv4Addr;

use tokio::net::TcpListener;

use crate::netsim::{self, ConnectHole};

/// Backlog of every serving listener.
const LISTEN_BACKLOG: u32 = 1024;
/// Attempts at finding a port pair free on every site address.
const PORT_ATTEMPTS: usize = 50;

/// What one port of an address needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Need {
    Nothing,
    Serve,
    Hole,
}

/// One address to bind on both shared ports.
#[derive(Clone, Copy, Debug)]
pub(super) struct Endpoint {
    pub(super) ip: Ipv4Addr,
    pub(super) https: Need,
    pub(super) http: Need,
}

/// A bound socket: a listener to serve, or a hole to fill.
#[derive(Debug)]
pub(super) enum Bound {
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
pub(super) fn bind_fixed(
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
pub(super) fn bind_all(endpoints: &[Endpoint]) -> io::Result<(u16, u16, Vec<Bound>)> {
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

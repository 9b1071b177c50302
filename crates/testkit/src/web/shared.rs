//! What every listener and connection of a [`super::WebServer`] shares: the counters
//! and request log ([`Shared`]) and each served address with its sites ([`Address`]).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use super::prepared::SiteState;
use super::site::RequestLog;
use crate::netsim::TcpConditions;

/// Counters and logs shared by every listener and connection.
#[derive(Debug, Default)]
pub(super) struct Shared {
    pub(super) requests: Mutex<Vec<RequestLog>>,
    pub(super) open: AtomicUsize,
    pub(super) accepted: AtomicU64,
    /// `accept` calls that failed (typically out of descriptors: connects then wait
    /// in the listen queue or, once it is full, go unanswered).
    pub(super) accept_errors: AtomicU64,
    pub(super) handshakes: AtomicU64,
    pub(super) next_conn: AtomicU64,
    /// Every served address (immutable after start).
    pub(super) addresses: HashMap<Ipv4Addr, Arc<Address>>,
    /// What every accepted connection goes through.
    pub(super) network: TcpConditions,
}

/// One served address: its sites and its counters.
#[derive(Debug)]
pub(super) struct Address {
    pub(super) ip: Ipv4Addr,
    /// At least one; the first answers names no site claims.
    pub(super) sites: Vec<SiteState>,
    /// Index into `sites` by normalised name.
    pub(super) names: HashMap<String, usize>,
    /// Connections open now, both ports.
    pub(super) open: AtomicUsize,
    /// The most connections ever open at once, both ports.
    pub(super) peak: AtomicUsize,
    /// Connections being served now (see [`super::WebServer::peak_serving_connections`]).
    pub(super) serving: AtomicUsize,
    /// The most connections ever served at once.
    pub(super) serving_peak: AtomicUsize,
    /// Bytes written to sockets of this address.
    pub(super) bytes_sent: AtomicU64,
}

impl Address {
    /// The site answering `name` (SNI or `Host`, a port after `:` ignored).
    pub(super) fn site_for(&self, name: Option<&str>) -> &SiteState {
        let index = name
            .map(|n| normalise_name(n.rsplit_once(':').map_or(n, |(h, _)| h)))
            .and_then(|n| self.names.get(&n).copied())
            .unwrap_or(0);
        &self.sites[index.min(self.sites.len() - 1)]
    }

    /// The site whose HTTPS mode the address's HTTPS port follows.
    pub(super) fn first(&self) -> &SiteState {
        &self.sites[0]
    }
}

/// A host name as [`Address::site_for`] compares it.
pub(super) fn normalise_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Locks the request log, surviving a panicked holder (the log stays consistent).
pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

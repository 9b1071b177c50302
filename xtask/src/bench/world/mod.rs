//! The world as a separate process: `xtask world-serve` and the handle that drives it.
//!
//! `xtask world-serve --sites N --seed S --dir D [conditions]` generates
//! `World::generate_with(S, N, options)`, writes `D/domains.txt` (the names to crawl),
//! `D/ca.pem` (the roots to trust) and
//! `D/https_sites.txt` (`host ip` of every site that completes a TLS handshake), prints
//! one [`Hello`] JSON line on stdout and then answers commands read from stdin, one
//! per line: `stats` answers one [`WorldStats`] JSON line. EOF on stdin ends it.
//! Progress and warnings go to stderr.
//!
//! Running the world in its own process lets it be pinned to its own core and its
//! CPU and memory be measured apart from the probe's.
//!
//! Every site holds two listening sockets, so a large world outgrows one process's
//! open-file limit (20,000 here, and not raisable without CAP_SYS_RESOURCE). The
//! process then serves the world in parts (`--parts K`, default as many as the
//! limit needs, each using at most half its limit for listeners): it serves the DNS
//! and part 1 itself and starts K-1 more `world-serve --part i/K --ports h,p --ca F`
//! processes on its port pair and CA ([`World::generate_part`](spyder_testkit::world::World::generate_part)); it merges their
//! files into `D` and sums their `stats`, so the bench sees one world.
//!
//! The optional conditions ([`Conditions`]) make it a slow, lossy, partly filtered
//! internet: `--rtt 100ms` (every TCP exchange), `--jitter 10ms`, `--dns-rtt 40ms`,
//! `--dns-jitter 5ms`, `--dns-loss 1%` (of UDP datagrams, each way), `--blackhole 2%`
//! (sites whose address never completes a connect, on either port) and
//! `--shared-ips 20%` (HTTPS sites moved onto a few skewed shared addresses).
//! Durations take `us`, `ms` or `s`; shares take `%` or a fraction (`0.01`). The
//! network draws are seeded by `--seed` too.

mod conditions;
mod process;
mod serve;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Result;

pub(crate) use conditions::Conditions;
pub(crate) use process::WorldProcess;
pub use serve::world_serve;

/// The names to crawl, one per line.
pub(super) const DOMAINS_FILE: &str = "domains.txt";
/// The world CA's root certificate.
pub(super) const ROOTS_FILE: &str = "ca.pem";
/// `host ip` per site whose HTTPS port completes a handshake.
pub(super) const HTTPS_SITES_FILE: &str = "https_sites.txt";
/// `host\ttype\tsource\ttarget` per edge a correct crawl of `host` emits.
pub(super) const EXPECTED_EDGES_FILE: &str = "expected_edges.tsv";

/// The first line `world-serve` prints: where the world listens and what it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Hello {
    /// The DNS server (UDP and TCP).
    pub(super) dns: SocketAddr,
    /// The HTTPS port every site shares.
    pub(super) https_port: u16,
    /// The plain-HTTP port every site shares.
    pub(super) http_port: u16,
    /// Distinct edges a correct crawl of every site emits.
    pub(super) expected_edges: usize,
    /// Sites in the world.
    pub(super) sites: usize,
    /// Lines of `https_sites.txt`.
    pub(super) https_sites: usize,
    /// The world process's open-file limit (soft) after any raise.
    pub(super) fd_limit: u64,
    /// Descriptors the world holds once it serves (listeners, sockets, stdio): the
    /// limit minus this is the room left for connections.
    pub(super) open_fds: u64,
    /// Seconds spent generating and starting the world.
    pub(super) generate_s: f64,
    /// The network conditions the world was started with.
    #[serde(default)]
    pub(super) conditions: Conditions,
    /// Sites whose address is filtered (`--blackhole`): they end `no_web`.
    #[serde(default)]
    pub(super) filtered_sites: usize,
}

/// The answer to `stats`: the world's counters and the process's own costs so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct WorldStats {
    /// DNS messages received, UDP and TCP.
    pub(super) dns_queries: u64,
    pub(super) dns_udp: u64,
    pub(super) dns_tcp: u64,
    /// Completed TLS handshakes on every site's HTTPS port.
    pub(super) handshakes: u64,
    /// HTTP requests received (both ports).
    pub(super) requests: u64,
    /// UDP DNS queries the network lost before the server saw them (`--dns-loss`).
    #[serde(default)]
    pub(super) dns_lost_queries: u64,
    /// UDP DNS answers the network lost on their way back.
    #[serde(default)]
    pub(super) dns_lost_answers: u64,
    /// Failed `accept` calls of the web server (out of descriptors: clients' connects
    /// waited on the world, so their timings are the world's).
    #[serde(default)]
    pub(super) accept_errors: u64,
    /// `utime + stime` of the world process.
    pub(super) cpu_s: f64,
    /// `VmHWM` of the world process.
    pub(super) peak_rss_kib: u64,
}

impl Hello {
    /// Adds another part's sites and descriptors to this (the first part's) hello:
    /// the room of the parts together is the world's.
    fn add_part(&mut self, other: &Self) {
        self.https_sites += other.https_sites;
        self.fd_limit = self.fd_limit.saturating_add(other.fd_limit);
        self.open_fds = self.open_fds.saturating_add(other.open_fds);
        self.filtered_sites += other.filtered_sites;
    }

    /// Connections the world can accept at once before running out of descriptors.
    pub(super) fn connection_room(&self) -> u64 {
        self.fd_limit.saturating_sub(self.open_fds)
    }
}

impl WorldStats {
    /// Adds another part's counters and costs (peak RSS summed: the parts' peaks
    /// need not coincide, so this bounds the world's from above).
    fn add_part(&mut self, other: &Self) {
        self.dns_queries += other.dns_queries;
        self.dns_udp += other.dns_udp;
        self.dns_tcp += other.dns_tcp;
        self.handshakes += other.handshakes;
        self.requests += other.requests;
        self.dns_lost_queries += other.dns_lost_queries;
        self.dns_lost_answers += other.dns_lost_answers;
        self.accept_errors += other.accept_errors;
        self.cpu_s += other.cpu_s;
        self.peak_rss_kib += other.peak_rss_kib;
    }

    /// The counters of `self` minus those of `before`; CPU as a difference, the peak
    /// as `self`'s (a high-water mark has no difference).
    pub(super) fn since(&self, before: &Self) -> Self {
        Self {
            dns_queries: self.dns_queries.saturating_sub(before.dns_queries),
            dns_udp: self.dns_udp.saturating_sub(before.dns_udp),
            dns_tcp: self.dns_tcp.saturating_sub(before.dns_tcp),
            handshakes: self.handshakes.saturating_sub(before.handshakes),
            requests: self.requests.saturating_sub(before.requests),
            dns_lost_queries: self
                .dns_lost_queries
                .saturating_sub(before.dns_lost_queries),
            dns_lost_answers: self
                .dns_lost_answers
                .saturating_sub(before.dns_lost_answers),
            accept_errors: self.accept_errors.saturating_sub(before.accept_errors),
            cpu_s: (self.cpu_s - before.cpu_s).max(0.0),
            peak_rss_kib: self.peak_rss_kib,
        }
    }
}

/// `host ip` lines of `https_sites.txt`.
pub(super) fn read_https_sites(dir: &Path) -> Result<Vec<(String, Ipv4Addr)>> {
    let path = dir.join(HTTPS_SITES_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let (host, ip) = line
                .split_once(' ')
                .ok_or_else(|| format!("{}: bad line {line:?}", path.display()))?;
            let ip = ip
                .trim()
                .parse()
                .map_err(|e| format!("{}: bad address in {line:?}: {e}", path.display()))?;
            Ok((host.to_owned(), ip))
        })
        .collect()
}

/// The names of `domains.txt`, in order.
pub(super) fn read_domains(dir: &Path) -> Result<Vec<String>> {
    let path = dir.join(DOMAINS_FILE);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn stats_since_subtracts_counters_and_keeps_the_peak() {
        let before = WorldStats {
            dns_queries: 100,
            dns_udp: 90,
            dns_tcp: 10,
            handshakes: 5,
            requests: 12,
            dns_lost_queries: 1,
            dns_lost_answers: 2,
            accept_errors: 7,
            cpu_s: 1.5,
            peak_rss_kib: 1_000,
        };
        let after = WorldStats {
            dns_queries: 160,
            dns_udp: 140,
            dns_tcp: 20,
            handshakes: 8,
            requests: 20,
            dns_lost_queries: 4,
            dns_lost_answers: 2,
            accept_errors: 19,
            cpu_s: 2.0,
            peak_rss_kib: 1_200,
        };
        let delta = after.since(&before);
        assert_eq!(
            (delta.dns_queries, delta.dns_udp, delta.dns_tcp),
            (60, 50, 10)
        );
        assert_eq!((delta.handshakes, delta.requests), (3, 8));
        assert_eq!((delta.dns_lost_queries, delta.dns_lost_answers), (3, 0));
        assert_eq!(delta.accept_errors, 12);
        assert!((delta.cpu_s - 0.5).abs() < 1e-9);
        assert_eq!(delta.peak_rss_kib, 1_200);
    }

    #[test]
    fn hello_and_stats_round_trip_as_json_lines() {
        let hello = Hello {
            dns: "127.0.0.1:5353".parse().expect("address"),
            https_port: 4433,
            http_port: 8080,
            expected_edges: 1234,
            sites: 100,
            https_sites: 90,
            fd_limit: 20_000,
            open_fds: 19_500,
            generate_s: 0.5,
            conditions: Conditions {
                rtt: Duration::from_millis(100),
                dns_loss: 0.01,
                ..Conditions::default()
            },
            filtered_sites: 2,
        };
        let line = serde_json::to_string(&hello).expect("serialises");
        assert!(line.contains(r#""dns":"127.0.0.1:5353""#), "{line}");
        assert!(line.contains(r#""rtt":0.1"#), "{line}");
        assert_eq!(serde_json::from_str::<Hello>(&line).expect("parses"), hello);
        assert_eq!(hello.connection_room(), 500);
        let stats = WorldStats {
            dns_queries: 3,
            ..WorldStats::default()
        };
        let line = serde_json::to_string(&stats).expect("serialises");
        assert_eq!(
            serde_json::from_str::<WorldStats>(&line).expect("parses"),
            stats
        );
    }
}

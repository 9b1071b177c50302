//! The dedup backend contract and step 11 of SPEC §1: dropping already-seen records.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use spyder_model::{HostName, Records};

use crate::keys::{DedupKey, KeyDigest};

/// A boxed, `Send` future, so that [`Dedup`] and the sinks work as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A dedup store of hashed keys ([`crate::keys`]), shared by every task of a probe
/// (and, for Redis, by every probe).
pub trait Dedup: Send + Sync + fmt::Debug {
    /// The backend's name in metrics labels: `memory` or `redis`.
    fn backend(&self) -> &'static str;

    /// For each key, whether it was seen before (`true`) or is new (`false`); every new
    /// key is marked seen. A key repeated within one call is new only the first time.
    /// Callers make one call per domain, which the Redis backend serves in one round
    /// trip. Never fails: on a backend error keys count as new (duplicates, never loss).
    fn check_and_mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>>;

    /// For each key, whether it is marked seen, marking nothing: for a caller that
    /// marks only once its work is done (the RedisSink marks after its push).
    /// The default checks and marks, then takes the new marks back; backends override
    /// it with a pure lookup where they can.
    fn check<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        Box::pin(async move {
            let seen = self.check_and_mark(keys).await;
            let new: Vec<KeyDigest> = keys
                .iter()
                .zip(&seen)
                .filter(|(_, seen)| !**seen)
                .map(|(key, _)| *key)
                .collect();
            if !new.is_empty() {
                self.unmark(&new).await;
            }
            seen
        })
    }

    /// Takes back marks that [`Dedup::check_and_mark`] just set when the work they
    /// stood for did not happen (a discovery that did not fit the queue). Best effort.
    fn unmark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()>;
}

/// Step 11 of SPEC §1: drops every record of one crawl already seen in this run (or
/// within the TTL), in one [`Dedup::check_and_mark`] call for the whole domain.
///
/// The crawled host's own NodeDomain is always kept (it is emitted on every crawl,
/// SPEC §1 step 2) and marked, so a later link to the host adds no second one (B-09).
/// The same call marks `queued|<crawled>` (SPEC §3.10: crawled hosts are marked too),
/// so a caller of this function needs no separate [`mark_crawled`].
pub async fn dedup_records(dedup: &dyn Dedup, crawled: &HostName, records: Records) -> Records {
    let Records {
        mut nodes_domain,
        mut nodes_ip,
        mut nodes_cert,
        mut edges,
    } = records;
    let mut keys = Vec::with_capacity(
        1 + nodes_domain.len() + nodes_ip.len() + nodes_cert.len() + edges.len(),
    );
    keys.push(DedupKey::Queued(crawled.as_str()).digest());
    keys.extend(
        nodes_domain
            .iter()
            .map(|n| DedupKey::Domain(&n.host).digest()),
    );
    keys.extend(nodes_ip.iter().map(|n| DedupKey::NodeIp(n.ip).digest()));
    keys.extend(
        nodes_cert
            .iter()
            .map(|n| DedupKey::Cert(&n.spki_sha256).digest()),
    );
    keys.extend(edges.iter().map(|e| {
        DedupKey::Edge {
            source: &e.source,
            kind: e.kind,
            target: &e.target,
        }
        .digest()
    }));

    let seen = dedup.check_and_mark(&keys).await;
    // A backend answering short counts the rest as new: duplicates, never loss.
    let mut seen = seen.into_iter().skip(1).chain(std::iter::repeat(false));

    let mut self_node_kept = false;
    nodes_domain.retain(|n| {
        let was_seen = seen.next().unwrap_or(false);
        if !self_node_kept && n.host == crawled.as_str() {
            self_node_kept = true;
            return true;
        }
        !was_seen
    });
    nodes_ip.retain(|_| !seen.next().unwrap_or(false));
    nodes_cert.retain(|_| !seen.next().unwrap_or(false));
    edges.retain(|_| !seen.next().unwrap_or(false));
    Records {
        nodes_domain,
        nodes_ip,
        nodes_cert,
        edges,
    }
}

/// Marks `queued|<host>` for a crawled host, so a later discovery does not queue it
/// again (SPEC §3.10). [`dedup_records`] already does this in its own call.
pub async fn mark_crawled(dedup: &dyn Dedup, host: &HostName) {
    let key = [DedupKey::Queued(host.as_str()).digest()];
    dedup.check_and_mark(&key).await;
}

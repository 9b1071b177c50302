//! One crawl through dedup (SPEC §1 steps 11 and 12, §3.6, §3.10): which records are
//! new, which discoveries to queue, whether a leased host is to be crawled, and the
//! marks that wait until a crawl's records are safe.

use std::sync::Arc;

use spyder_model::finalize::{Finalizer, Status};
use spyder_model::{HostName, Records};
use spyder_queue::Origin;

use crate::dedup::Dedup;
use crate::discovery::{DiscoverySink, SinkResult, SinkSettings};
use crate::keys::{DedupKey, KeyDigest};

/// The keys of one crawl: `queued|<host>` and `crawled|<host>`, then one per record
/// in record order (domain, IP and cert nodes, edges). These are what
/// [`settle_crawl`] checks in one dedup call.
pub fn crawl_keys(crawled: &HostName, records: &Records) -> Vec<KeyDigest> {
    let mut keys = Vec::with_capacity(
        HOST_KEYS
            + records.nodes_domain.len()
            + records.nodes_ip.len()
            + records.nodes_cert.len()
            + records.edges.len(),
    );
    keys.push(DedupKey::Queued(crawled.as_str()).digest());
    keys.push(DedupKey::Crawled(crawled.as_str()).digest());
    keys.extend(
        records
            .nodes_domain
            .iter()
            .map(|n| DedupKey::Domain(&n.host).digest()),
    );
    keys.extend(
        records
            .nodes_ip
            .iter()
            .map(|n| DedupKey::NodeIp(n.ip).digest()),
    );
    keys.extend(
        records
            .nodes_cert
            .iter()
            .map(|n| DedupKey::Cert(&n.spki_sha256).digest()),
    );
    keys.extend(records.edges.iter().map(|e| {
        DedupKey::Edge {
            source: &e.source,
            kind: e.kind,
            target: &e.target,
        }
        .digest()
    }));
    keys
}

/// The host keys [`crawl_keys`] puts first.
const HOST_KEYS: usize = 2;

/// Keeps the records whose flag in `seen` (aligned with [`crawl_keys`]) is false, and
/// always the crawled host's own NodeDomain. Returns the kept records and their keys,
/// plus the host keys.
fn keep_unseen(
    crawled: &HostName,
    records: Records,
    keys: &[KeyDigest],
    seen: &[bool],
) -> (Records, Vec<KeyDigest>) {
    let Records {
        mut nodes_domain,
        mut nodes_ip,
        mut nodes_cert,
        mut edges,
        status,
    } = records;
    // A backend answering short counts the rest as new: duplicates, never loss.
    let mut flags = seen
        .iter()
        .copied()
        .skip(HOST_KEYS)
        .chain(std::iter::repeat(false));
    let mut record_keys = keys.iter().skip(HOST_KEYS);
    // `crawled|<host>` waits with the records; `queued|<host>` is marked at once by
    // `settle_crawl` (and by `check_and_mark` in `dedup_records`).
    let mut new_keys: Vec<KeyDigest> = keys.get(1).copied().into_iter().collect();
    let mut keep = |always: bool| {
        let was_seen = flags.next().unwrap_or(false);
        let key = record_keys.next();
        if !was_seen && let Some(key) = key {
            new_keys.push(*key);
        }
        always || !was_seen
    };
    let mut self_node_kept = false;
    nodes_domain.retain(|n| {
        let own = !self_node_kept && n.host == crawled.as_str();
        self_node_kept |= own;
        keep(own)
    });
    nodes_ip.retain(|_| keep(false));
    nodes_cert.retain(|_| keep(false));
    edges.retain(|_| keep(false));
    // Status records describe the task, not the graph: never deduplicated.
    let records = Records {
        nodes_domain,
        nodes_ip,
        nodes_cert,
        edges,
        status,
    };
    (records, new_keys)
}

/// Step 11 of SPEC §1 in file mode: drops every record of one crawl already seen in
/// this run (or within the TTL), in one [`Dedup::check_and_mark`] call for the whole
/// domain, marking the new ones at once.
///
/// The crawled host's own NodeDomain is always kept (it is emitted on every crawl,
/// SPEC §1 step 2) and marked, so a later link to the host adds no second one (B-09).
/// The same call marks `queued|<crawled>` and `crawled|<crawled>` (SPEC §3.10: crawled
/// hosts are marked too), so a caller needs no separate [`mark_crawled`].
pub async fn dedup_records(dedup: &dyn Dedup, crawled: &HostName, records: Records) -> Records {
    let keys = crawl_keys(crawled, &records);
    let seen = dedup.check_and_mark(&keys).await;
    keep_unseen(crawled, records, &keys, &seen).0
}

/// What [`settle_crawl`] made of one crawl.
#[derive(Debug)]
pub struct Settled {
    /// The records to emit: those not seen before, and the crawled host's own node.
    pub records: Records,
    /// Marks to make once `records` are safe (delivered, written or spooled).
    pub pending: PendingMarks,
    /// What the sink did with the crawl's discoveries.
    pub discoveries: SinkResult,
}

/// Dedup marks waiting for a crawl's records to be safe. Drop it only through
/// [`PendingMarks::mark`] or [`PendingMarks::release`].
#[derive(Debug)]
#[must_use = "pending marks must be marked or released"]
pub struct PendingMarks(Vec<KeyDigest>);

impl PendingMarks {
    /// The records are safe: mark their keys (and the crawled host) for every probe.
    pub async fn mark(self, dedup: &dyn Dedup) {
        dedup.mark(&self.0).await;
    }

    /// The records were lost: take the reservations back, so a re-crawl emits them.
    pub async fn release(self, dedup: &dyn Dedup) {
        dedup.release(&self.0).await;
    }

    /// Makes the marks ride with the records' finalizer: committed for every probe
    /// when the records are delivered, written or spooled, released when they are not.
    pub fn ride_with(self, finalizer: &mut Finalizer, dedup: Arc<dyn Dedup>) {
        if self.0.is_empty() {
            return;
        }
        finalizer.on_resolve(move |status| async move {
            match status {
                Status::Delivered => self.mark(dedup.as_ref()).await,
                Status::Failed => self.release(dedup.as_ref()).await,
            }
        });
    }

    /// How many keys wait.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when no key waits.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A crawl's discoveries on their way to a sink.
#[derive(Debug)]
pub struct Discoveries<'a> {
    /// The sink that filters and queues them.
    pub sink: &'a dyn DiscoverySink,
    /// The crawl's discovery candidates, unfiltered.
    pub candidates: Vec<HostName>,
    /// The sink settings in force for this crawl.
    pub settings: &'a SinkSettings,
    /// The W3C `traceparent` of this crawl, for the queue items of its discoveries.
    pub traceparent: Option<String>,
}

/// Steps 11 and 12 of SPEC §1 for one crawl, with ONE dedup call for the records and
/// the discoveries together (SPEC §3.9: one round trip per domain).
///
/// `queued|<host>` is marked at once. Records (and `crawled|<host>`) are only
/// reserved: the returned [`PendingMarks`] make them visible to other probes once
/// the caller knows they are safe, so a probe killed before its
/// flush leaves nothing marked that a re-crawl would then drop. Discoveries not yet
/// `queued|…` are handed to the sink, which marks what it queued and releases the rest.
pub async fn settle_crawl(
    dedup: &dyn Dedup,
    crawled: &HostName,
    records: Records,
    discoveries: Option<Discoveries<'_>>,
) -> Settled {
    let mut keys = crawl_keys(crawled, &records);
    let record_count = keys.len();
    // A refused admission was already counted by the sink.
    let admitted = discoveries.and_then(|d| {
        let admission = d
            .sink
            .admit(crawled, d.candidates, d.settings)
            .ok()?
            .with_traceparent(d.traceparent);
        Some((d.sink, admission, d.settings))
    });
    if let Some((_, admission, _)) = &admitted {
        keys.extend_from_slice(admission.keys());
    }
    // `queued|<host>` only stops discoveries from queueing the host again: mark it at
    // once (it rides with the lookup below), so that a probe dying before its flush
    // does not let others queue yet another copy while its item waits to be reaped.
    dedup.mark(&keys[..1]).await;
    // Not looked up again: it was just marked, and a hit for it would count a key
    // this crawl itself set (`spyder_dedup_hits_total` counts keys seen before).
    let mut seen = dedup.reserve(&keys[1..]).await;
    seen.insert(0, true);
    let (records, new_keys) = keep_unseen(crawled, records, &keys[..record_count], &seen);
    let discoveries = match admitted {
        Some((sink, admission, settings)) => {
            let flags: Vec<bool> = (record_count..keys.len())
                .map(|i| seen.get(i).copied().unwrap_or(false))
                .collect();
            sink.enqueue(admission, flags, settings).await
        }
        None => SinkResult::default(),
    };
    Settled {
        records,
        pending: PendingMarks(new_keys),
        discoveries,
    }
}

/// Whether a leased host is to be crawled, in at most one dedup call (SPEC §3.6: a
/// host is crawled once per run). From a shared queue:
/// - an item back from an expired lease is skipped when `crawled|<host>` is marked:
///   some probe crawled the host since, and its records are safe;
/// - a fresh discovered item is skipped when the host is crawled or claimed
///   (`crawling|<host>`): the claimed item is crawled, or comes back from its lease;
/// - a fresh seeded item is never skipped ("seeding twice crawls twice").
///
/// A host to be crawled from a shared queue is claimed (`crawling|<host>`); the mark
/// rides with this probe's next dedup call. Hosts of a local queue were filtered
/// before they were queued: always crawled, nothing asked.
pub async fn claim_lease(dedup: &dyn Dedup, host: &HostName, origin: Origin) -> bool {
    let name = host.as_str();
    let keys: Vec<KeyDigest> = match origin {
        Origin::Local(_) => return true,
        Origin::Seeded => Vec::new(),
        Origin::Requeued { .. } => vec![DedupKey::Crawled(name).digest()],
        Origin::Discovered => vec![
            DedupKey::Crawled(name).digest(),
            DedupKey::Crawling(name).digest(),
        ],
    };
    if !keys.is_empty() && dedup.check(&keys).await.iter().any(|seen| *seen) {
        return false;
    }
    dedup.mark(&[DedupKey::Crawling(name).digest()]).await;
    true
}

/// Marks `queued|<host>` and `crawled|<host>` for a crawled host, so a later discovery
/// does not queue it again (SPEC §3.10). [`dedup_records`] and [`settle_crawl`]
/// already do this in their own call.
pub async fn mark_crawled(dedup: &dyn Dedup, host: &HostName) {
    let keys = [
        DedupKey::Queued(host.as_str()).digest(),
        DedupKey::Crawled(host.as_str()).digest(),
    ];
    dedup.check_and_mark(&keys).await;
}

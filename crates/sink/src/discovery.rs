//! What every discovery sink shares (SPEC §3.10): the [`DiscoverySink`] contract, its
//! settings and results, the static filters, and the tally of enqueued and dropped
//! hosts with the `max_domains` budget. The sinks are [`crate::ChannelSink`] (file
//! mode) and [`crate::RedisSink`] (queue mode).

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spyder_model::{HostName, NameKind, telemetry};

use crate::dedup::{BoxFuture, Dedup};
use crate::keys::{DedupKey, KeyDigest};

/// The live-reloadable settings a sink applies; read on every call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SinkSettings {
    /// Candidates equal to or ending in `.` + one of these (any case) are not queued.
    pub exclude_tlds: Vec<String>,
    /// When false, `localhost` and `*.localhost` are not queued (SPEC §3.5 name rule).
    pub allow_private: bool,
    /// Cap on this probe's enqueues; 0 = no cap.
    pub max_domains: u64,
}

/// What became of the candidates of one offer (or, from [`DiscoverySink::totals`], of
/// every offer so far). Candidates that a filter rejected count in neither field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkResult {
    /// New hosts queued.
    pub enqueued: u64,
    /// New hosts not queued: the queue was full or `max_domains` was reached. They stay
    /// unmarked, so a later offer may still queue them.
    pub dropped: u64,
}

/// Candidates that passed a sink's filters, with their `queued|<host>` keys, waiting
/// for one dedup answer ([`DiscoverySink::admit`]).
#[derive(Debug)]
pub struct Admission {
    hosts: Vec<HostName>,
    keys: Vec<KeyDigest>,
    /// The W3C `traceparent` of the crawl that found them, for the queue items.
    traceparent: Option<String>,
}

impl Admission {
    /// The admitted hosts carry the trace of the crawl that found them (a shared
    /// queue writes it into their items, SPEC §3.14).
    pub fn with_traceparent(mut self, traceparent: Option<String>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// The trace the admitted hosts continue, if any.
    pub fn traceparent(&self) -> Option<&str> {
        self.traceparent.as_deref()
    }

    /// The `queued|<host>` keys to look up, one per admitted host.
    pub fn keys(&self) -> &[KeyDigest] {
        &self.keys
    }
}

/// Takes a crawl's discovery candidates in continuous mode.
///
/// An offer is three steps, so that a caller can fold the dedup lookup into the one
/// it makes for the crawl's records ([`crate::settle_crawl`]): [`DiscoverySink::admit`]
/// filters, the caller [`Dedup::reserve`]s the admission's keys, and
/// [`DiscoverySink::enqueue`] queues the unseen hosts, marks what it queued and
/// releases the rest. [`DiscoverySink::offer`] does all three.
pub trait DiscoverySink: Send + Sync + fmt::Debug {
    /// The dedup store the sink marks queued hosts in.
    fn dedup(&self) -> &dyn Dedup;

    /// Hosts enqueued and dropped since the start.
    fn totals(&self) -> SinkResult;

    /// The candidates worth a lookup: valid, outside `exclude_tlds`, passing the name
    /// rule, once each, not the crawled host. `Err` is the whole (already counted)
    /// result when none is left or `max_domains` is reached.
    fn admit(
        &self,
        crawled: &HostName,
        candidates: Vec<HostName>,
        settings: &SinkSettings,
    ) -> Result<Admission, SinkResult>;

    /// Queues the admitted hosts whose flag in `seen` (from [`Dedup::reserve`] of
    /// [`Admission::keys`]) is false.
    fn enqueue<'a>(
        &'a self,
        admission: Admission,
        seen: Vec<bool>,
        settings: &'a SinkSettings,
    ) -> BoxFuture<'a, SinkResult>;

    /// Filters `candidates` found while crawling `crawled` and queues the new ones.
    fn offer<'a>(
        &'a self,
        crawled: &'a HostName,
        candidates: Vec<HostName>,
        settings: &'a SinkSettings,
    ) -> BoxFuture<'a, SinkResult> {
        Box::pin(async move {
            let admission = match self.admit(crawled, candidates, settings) {
                Ok(admission) => admission,
                Err(result) => return result,
            };
            let seen = self.dedup().reserve(admission.keys()).await;
            self.enqueue(admission, seen, settings).await
        })
    }
}

/// What [`SinkTally::select`] made of an admission.
pub(crate) struct Selection {
    /// Unseen hosts, each with one enqueue reserved.
    pub wanted: Vec<(HostName, KeyDigest)>,
    /// Keys of unseen hosts dropped at the cap: to release.
    pub not_queued: Vec<KeyDigest>,
    /// Dropped so far.
    pub result: SinkResult,
}

/// The accounting every sink shares: totals, the `max_domains` budget, the cap log
/// line (once) and the `spyder_discovery_{enqueued,dropped}_total{sink}` metrics.
#[derive(Debug)]
pub(crate) struct SinkTally {
    sink: &'static str,
    enqueued: AtomicU64,
    dropped: AtomicU64,
    cap_logged: AtomicBool,
}

impl SinkTally {
    /// Counts for the sink labelled `sink` in metrics.
    pub(crate) fn new(sink: &'static str) -> Self {
        Self {
            sink,
            enqueued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            cap_logged: AtomicBool::new(false),
        }
    }

    /// Hosts enqueued and dropped since the start.
    pub(crate) fn totals(&self) -> SinkResult {
        SinkResult {
            enqueued: self.enqueued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }

    /// The candidates worth a dedup lookup, with their `queued|<host>` keys: once
    /// each, not the crawled host, passing [`passes_filters`]. `Err` is the offer's
    /// whole (already counted) result when none is left, or when `max_domains` is
    /// reached: then all are dropped without a lookup and nothing is marked.
    pub(crate) fn admit(
        &self,
        crawled: &HostName,
        candidates: Vec<HostName>,
        settings: &SinkSettings,
    ) -> Result<Admission, SinkResult> {
        let mut unique = HashSet::new();
        let wanted: Vec<HostName> = candidates
            .into_iter()
            .filter(|c| c != crawled && passes_filters(c, settings))
            .filter(|c| unique.insert(c.as_str().to_owned()))
            .collect();
        if wanted.is_empty() {
            return Err(SinkResult::default());
        }
        let cap = settings.max_domains;
        if self.cap_reached(cap) {
            self.log_cap_reached(cap);
            let result = SinkResult {
                enqueued: 0,
                dropped: wanted.len() as u64,
            };
            self.settle(result);
            return Err(result);
        }
        let keys = wanted
            .iter()
            .map(|h| DedupKey::Queued(h.as_str()).digest())
            .collect();
        Ok(Admission {
            hosts: wanted,
            keys,
            traceparent: None,
        })
    }

    /// The admitted hosts whose `seen` flag is false, each holding one enqueue of the
    /// `cap` budget; those over the cap are dropped (counted, their keys returned so
    /// the caller releases them).
    pub(crate) fn select(&self, admission: Admission, seen: Vec<bool>, cap: u64) -> Selection {
        let mut selection = Selection {
            wanted: Vec::new(),
            not_queued: Vec::new(),
            result: SinkResult::default(),
        };
        let flags = seen.into_iter().chain(std::iter::repeat(false));
        for ((host, key), seen) in admission.hosts.into_iter().zip(admission.keys).zip(flags) {
            if seen {
                continue;
            }
            if self.reserve(cap) {
                selection.wanted.push((host, key));
            } else {
                self.log_cap_reached(cap);
                selection.result.dropped += 1;
                selection.not_queued.push(key);
            }
        }
        selection
    }

    /// True when `cap` (0 = unlimited) enqueues have been made.
    pub(crate) fn cap_reached(&self, cap: u64) -> bool {
        cap != 0 && self.enqueued.load(Ordering::Relaxed) >= cap
    }

    /// Gives back `count` enqueues taken by [`Self::reserve`] that did not happen.
    pub(crate) fn release(&self, count: u64) {
        self.enqueued.fetch_sub(count, Ordering::Relaxed);
    }

    /// Takes one enqueue from the `cap` budget (0 = unlimited).
    pub(crate) fn reserve(&self, cap: u64) -> bool {
        if cap == 0 {
            self.enqueued.fetch_add(1, Ordering::Relaxed);
            return true;
        }
        self.enqueued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn log_cap_reached(&self, cap: u64) {
        if !self.cap_logged.swap(true, Ordering::Relaxed) {
            tracing::info!("max_domains reached ({cap}); further discoveries are not queued");
        }
    }

    /// Counts an offer's outcome; its enqueues were already counted by [`Self::reserve`].
    pub(crate) fn settle(&self, result: SinkResult) {
        self.dropped.fetch_add(result.dropped, Ordering::Relaxed);
        telemetry::discovery_enqueued(self.sink).increment(result.enqueued);
        telemetry::discovery_dropped(self.sink).increment(result.dropped);
    }
}

/// The static filters of SPEC §3.10: valid as an input host, outside `exclude_tlds`,
/// and not a `localhost` name unless private targets are allowed.
pub(crate) fn passes_filters(candidate: &HostName, settings: &SinkSettings) -> bool {
    HostName::parse(candidate.as_str(), NameKind::Strict).is_ok()
        && !settings
            .exclude_tlds
            .iter()
            .any(|tld| candidate.is_within(tld))
        && (settings.allow_private || !candidate.is_localhost())
}

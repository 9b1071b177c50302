//! Discovery sinks (SPEC §3.10) and the file-mode ChannelSink.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use spyder_model::{HostName, NameKind};
use spyder_queue::MemoryQueue;

use crate::dedup::{BoxFuture, Dedup};
use crate::keys::{DedupKey, KeyDigest};

const SINK: &str = "channel";

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

/// What became of the candidates of one offer (or, from [`ChannelSink::totals`], of
/// every offer so far). Candidates that a filter rejected count in neither field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkResult {
    /// New hosts queued.
    pub enqueued: u64,
    /// New hosts not queued: the queue was full or `max_domains` was reached. They stay
    /// unmarked, so a later offer may still queue them.
    pub dropped: u64,
}

/// Takes a crawl's discovery candidates in continuous mode.
pub trait DiscoverySink: Send + Sync + fmt::Debug {
    /// Filters `candidates` found while crawling `crawled` and queues the new ones.
    fn offer<'a>(
        &'a self,
        crawled: &'a HostName,
        candidates: Vec<HostName>,
        settings: &'a SinkSettings,
    ) -> BoxFuture<'a, SinkResult>;
}

/// The file-mode sink: queues discoveries behind the file input of a [`MemoryQueue`].
///
/// A candidate is queued when it is a valid input host (strict rules), lies outside
/// `exclude_tlds`, is not `localhost`/`*.localhost` (unless `allow_private`), and is
/// not yet marked `queued|<host>`; checking marks it, in one [`Dedup`] call per offer.
/// A candidate that does not fit (queue full, or `max_domains` reached) is dropped,
/// counted, and unmarked again. Reaching `max_domains` logs once:
/// `max_domains reached (N); further discoveries are not queued`.
/// Metrics: `spyder_discovery_{enqueued,dropped}_total{sink="channel"}`.
#[derive(Debug)]
pub struct ChannelSink {
    queue: MemoryQueue,
    dedup: Arc<dyn Dedup>,
    tally: SinkTally,
}

impl ChannelSink {
    /// A sink feeding `queue`, marking discoveries in `dedup`.
    pub fn new(queue: MemoryQueue, dedup: Arc<dyn Dedup>) -> Self {
        Self {
            queue,
            dedup,
            tally: SinkTally::new(SINK),
        }
    }

    /// Hosts enqueued and dropped since the start.
    pub fn totals(&self) -> SinkResult {
        self.tally.totals()
    }

    async fn offer_now(
        &self,
        crawled: &HostName,
        candidates: Vec<HostName>,
        settings: &SinkSettings,
    ) -> SinkResult {
        let (wanted, keys) = match self.tally.admit(crawled, candidates, settings) {
            Ok(admitted) => admitted,
            Err(result) => return result,
        };
        let cap = settings.max_domains;
        let mut result = SinkResult::default();
        let seen = self.dedup.check_and_mark(&keys).await;
        let mut not_queued = Vec::new();
        for ((host, key), seen) in wanted.into_iter().zip(keys).zip(seen) {
            if seen {
                continue;
            }
            if !self.tally.reserve(cap) {
                self.tally.log_cap_reached(cap);
                result.dropped += 1;
                not_queued.push(key);
                continue;
            }
            match self.queue.try_push_discovered(host) {
                Ok(()) => {
                    result.enqueued += 1;
                    if self.tally.cap_reached(cap) {
                        self.tally.log_cap_reached(cap);
                    }
                }
                Err(_) => {
                    self.tally.release(1);
                    result.dropped += 1;
                    not_queued.push(key);
                }
            }
        }
        if !not_queued.is_empty() {
            self.dedup.unmark(&not_queued).await;
        }
        self.tally.settle(result);
        result
    }
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
    ) -> Result<(Vec<HostName>, Vec<KeyDigest>), SinkResult> {
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
        Ok((wanted, keys))
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
        metrics::counter!("spyder_discovery_enqueued_total", "sink" => self.sink)
            .increment(result.enqueued);
        metrics::counter!("spyder_discovery_dropped_total", "sink" => self.sink)
            .increment(result.dropped);
    }
}

impl DiscoverySink for ChannelSink {
    fn offer<'a>(
        &'a self,
        crawled: &'a HostName,
        candidates: Vec<HostName>,
        settings: &'a SinkSettings,
    ) -> BoxFuture<'a, SinkResult> {
        Box::pin(self.offer_now(crawled, candidates, settings))
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

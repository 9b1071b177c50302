//! The RedisSink (SPEC §3.10): discoveries LPUSHed to the shared Redis work queue.

use std::sync::Arc;

use spyder_model::HostName;
use spyder_queue::QueueItem;

use spyder_queue::ConnectError;
use spyder_queue::connection::{Connection, Retry, describe, lpush_chunked};

use super::open;
use crate::dedup::{BoxFuture, Dedup};
use crate::discovery::{Admission, DiscoverySink, Selection, SinkResult, SinkSettings, SinkTally};

const SINK: &str = "redis";

/// Attempts of one offer's push before its hosts are dropped.
const PUSH_ATTEMPTS: u32 = 3;

/// Logs the startup warning of SPEC §3.10 for a RedisSink without a shared dedup
/// Redis (`REDIS_ADDR` unset): each probe then checks discoveries against its own
/// memory only.
pub fn warn_without_shared_dedup() {
    tracing::warn!(
        "REDIS_ADDR is not set: discoveries are deduplicated per probe only, \
         so probes will re-queue each other's finds"
    );
}

/// The queue-mode sink: LPUSHes new discoveries to the Redis work queue `<key>`.
///
/// A candidate passes the same filters as in the ChannelSink (valid input host,
/// outside `exclude_tlds`, not `localhost`/`*.localhost` unless `allow_private`).
/// Then, per offer: one lookup of `queued|<host>` (folded into the crawl's own dedup
/// call by [`crate::settle_crawl`]), one LPUSH of every new item
/// (`{"host","ts","attempt":0,"id","via":"discovery"}`), and only once the push
/// succeeded a [`Dedup::mark`] of the pushed hosts (sent with the dedup's next call).
/// A failed push marks nothing: it is retried with backoff (3 tries in all), then its
/// hosts are counted as dropped with an error log, and a later offer may queue them.
/// The lookup and the push cannot share a pipeline: the dedup and the queue may live
/// in different Redis servers, and the push depends on the lookup's answer.
///
/// `max_domains` caps this probe's enqueues; reaching it logs once:
/// `max_domains reached (N); further discoveries are not queued`.
/// Metrics: `spyder_discovery_{enqueued,dropped}_total{sink="redis"}`.
#[derive(Debug)]
pub struct RedisSink {
    connection: Connection,
    queue_key: String,
    dedup: Arc<dyn Dedup>,
    tally: SinkTally,
}

impl RedisSink {
    /// Connects to the queue Redis at `queue_addr` (`redis.queue_addr`), pushing to
    /// `queue_key` and checking discoveries in `dedup`. Fails when Redis stays
    /// unreachable for 10 s: `cannot reach Redis at <addr> (redis.queue_addr): …`.
    pub async fn connect(
        queue_addr: &str,
        queue_key: &str,
        dedup: Arc<dyn Dedup>,
    ) -> Result<Self, ConnectError> {
        let connection = open(queue_addr, "redis.queue_addr").await?;
        Ok(Self {
            connection,
            queue_key: queue_key.to_owned(),
            dedup,
            tally: SinkTally::new(SINK),
        })
    }

    /// Hosts enqueued and dropped since the start.
    pub fn totals(&self) -> SinkResult {
        self.tally.totals()
    }

    async fn enqueue_now(
        &self,
        admission: Admission,
        seen: Vec<bool>,
        settings: &SinkSettings,
    ) -> SinkResult {
        let cap = settings.max_domains;
        let traceparent = admission.traceparent().map(str::to_owned);
        let Selection {
            wanted: to_push,
            mut not_queued,
            mut result,
        } = self.tally.select(admission, seen, cap);
        if !to_push.is_empty() {
            let now = spyder_model::Timestamp::now().unix_seconds();
            let count = to_push.len() as u64;
            let mut pushed_keys = Vec::with_capacity(to_push.len());
            let mut items = Vec::with_capacity(to_push.len());
            for (host, key) in to_push {
                let item = QueueItem::discovered(host, now);
                let item = match &traceparent {
                    Some(tp) => item.with_traceparent(tp),
                    None => item,
                };
                items.push(item.raw().to_owned());
                pushed_keys.push(key);
            }
            match self.push(items).await {
                Ok(()) => {
                    self.dedup.mark(&pushed_keys).await;
                    result.enqueued = count;
                    if self.tally.cap_reached(cap) {
                        self.tally.log_cap_reached(cap);
                    }
                }
                Err(error) => {
                    self.tally.release(count);
                    result.dropped += count;
                    not_queued.extend(pushed_keys);
                    tracing::error!(
                        key = %self.queue_key,
                        hosts = count,
                        %error,
                        "discoveries not queued: push to Redis failed {PUSH_ATTEMPTS} times; \
                         they stay unmarked"
                    );
                }
            }
        }
        if !not_queued.is_empty() {
            self.dedup.release(&not_queued).await;
        }
        self.tally.settle(result);
        result
    }

    /// LPUSHes `items` in one command, retrying with backoff; the last error if
    /// every attempt failed.
    async fn push(&self, items: Vec<String>) -> Result<(), String> {
        let client = self.connection.client();
        let retry = Retry::Attempts(PUSH_ATTEMPTS);
        match lpush_chunked(client, &self.queue_key, &items, items.len(), retry).await {
            (_, None) => Ok(()),
            (_, Some(error)) => Err(describe(&error)),
        }
    }
}

impl DiscoverySink for RedisSink {
    fn dedup(&self) -> &dyn Dedup {
        self.dedup.as_ref()
    }

    fn totals(&self) -> SinkResult {
        self.tally.totals()
    }

    fn admit(
        &self,
        crawled: &HostName,
        candidates: Vec<HostName>,
        settings: &SinkSettings,
    ) -> Result<Admission, SinkResult> {
        self.tally.admit(crawled, candidates, settings)
    }

    fn enqueue<'a>(
        &'a self,
        admission: Admission,
        seen: Vec<bool>,
        settings: &'a SinkSettings,
    ) -> BoxFuture<'a, SinkResult> {
        Box::pin(self.enqueue_now(admission, seen, settings))
    }
}

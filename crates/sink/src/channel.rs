//! The file-mode discovery sink: discoveries queued behind the file input.

use std::sync::Arc;

use spyder_model::HostName;
use spyder_queue::MemoryQueue;

use crate::dedup::{BoxFuture, Dedup};
use crate::discovery::{Admission, DiscoverySink, Selection, SinkResult, SinkSettings, SinkTally};

const SINK: &str = "channel";

/// The file-mode sink: queues discoveries behind the file input of a [`MemoryQueue`].
///
/// A candidate is queued when it is a valid input host (strict rules), lies outside
/// `exclude_tlds`, is not `localhost`/`*.localhost` (unless `allow_private`), and is
/// not yet marked `queued|<host>`, in one [`Dedup`] lookup per offer; a queued host is
/// marked.
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

    async fn enqueue_now(
        &self,
        admission: Admission,
        seen: Vec<bool>,
        settings: &SinkSettings,
    ) -> SinkResult {
        let cap = settings.max_domains;
        let Selection {
            wanted,
            mut not_queued,
            mut result,
        } = self.tally.select(admission, seen, cap);
        let mut queued = Vec::new();
        for (host, key) in wanted {
            match self.queue.try_push_discovered(host) {
                Ok(()) => {
                    result.enqueued += 1;
                    queued.push(key);
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
        if !queued.is_empty() {
            self.dedup.mark(&queued).await;
        }
        if !not_queued.is_empty() {
            self.dedup.release(&not_queued).await;
        }
        self.tally.settle(result);
        result
    }
}

impl DiscoverySink for ChannelSink {
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

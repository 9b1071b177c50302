//! The one interface a worker pool sees: [`WorkQueue`], implemented by the memory
//! queue of file mode and the shared Redis queue, and the [`Leased`] item it hands out.
//!
//! A lease splits in two when a task starts: the *hold* (the memory queue is not done
//! while a task that may still discover work runs; released when the task has handed
//! its records off) and the [`Finalizer`] (the item's acknowledgement, which rides
//! with the records to the emitter: the Redis queue acks the item once they are
//! delivered, written or spooled, and lets its lease expire — the item comes back
//! with `attempt+1` — when they are not).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use spyder_model::HostName;
use spyder_model::finalize::{Finalizer, Status};
use tokio_util::task::TaskTracker;

use crate::item::QueueItem;
use crate::memory::{Lease, MemoryQueue, PushError, Source};
use crate::redis::{RedisLease, RedisQueue};

/// A boxed, `Send` future, so that [`WorkQueue`] works as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Hosts per `LPUSH` when many are submitted at once (`seed` chunks the same way).
pub const LPUSH_CHUNK: usize = 1_000;

/// Where a leased host came from, as far as dedup must know (SPEC §3.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// From this process's memory queue; discoveries were filtered before queueing.
    Local(Source),
    /// A fresh item of a shared queue put there by `seed` or the API: always crawled
    /// ("seeding twice crawls twice").
    Seeded,
    /// A fresh item of a shared queue that some probe discovered.
    Discovered,
    /// An item of a shared queue back from an expired lease.
    Requeued {
        /// How many leases on it expired.
        attempt: u32,
    },
}

/// Queue lengths as the stats endpoint and `spyder_queue_depth{list}` show them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueLengths {
    /// Waiting to be leased.
    pub pending: u64,
    /// Leased (by any probe, for a shared queue).
    pub processing: u64,
    /// Given up on (shared queue only).
    pub dead: u64,
}

/// Why a submitted host was not queued.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The queue is at capacity; try again later.
    #[error("queue full")]
    Full,
    /// The queue cannot take work now (stopped, or its Redis unreachable).
    #[error("{0}")]
    Unavailable(String),
}

/// One leased host: what to crawl, where it came from, and its acknowledgement.
pub struct Leased {
    /// The host to crawl.
    pub host: HostName,
    /// Where it came from.
    pub origin: Origin,
    /// The W3C `traceparent` its queue item carries, if any (SPEC §3.14).
    pub traceparent: Option<String>,
    kind: LeaseKind,
}

enum LeaseKind {
    Memory(Lease),
    Redis(RedisLease),
}

/// Held while a task may still add work (see the module docs); dropping it releases.
#[must_use = "dropping the hold releases it at once"]
pub struct Hold(#[allow(dead_code)] Option<Lease>);

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hold")
    }
}

impl Leased {
    /// Splits the lease into its hold and its finalizer, whose resolution runs on
    /// `tracker`. A Redis item is acked when the finalizer resolves as delivered;
    /// otherwise its lease is dropped (its renewal stops, it expires and comes back).
    pub fn start(self, tracker: &TaskTracker) -> (Hold, Finalizer) {
        let mut finalizer = Finalizer::new(tracker);
        match self.kind {
            LeaseKind::Memory(lease) => (Hold(Some(lease)), finalizer),
            LeaseKind::Redis(lease) => {
                finalizer.on_resolve(move |status| async move {
                    if status == Status::Delivered {
                        let host = lease.item.host.clone();
                        if let Err(e) = lease.ack().await {
                            tracing::error!(host = %host, error = %e, "ack failed; the item stays in :processing");
                        }
                    }
                });
                (Hold(None), finalizer)
            }
        }
    }
}

impl fmt::Debug for Leased {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Leased")
            .field("host", &self.host)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// A source of leases: the memory queue of file mode or the shared Redis queue.
pub trait WorkQueue: Send + Sync + fmt::Debug {
    /// `memory` or `redis`, as the stats endpoint names the mode.
    fn mode(&self) -> &'static str;

    /// Whether other probes lease from the same queue (dedup must claim hosts).
    fn is_shared(&self) -> bool;

    /// The next lease; `None` once the queue is done or stopped.
    fn next(&self) -> BoxFuture<'_, Option<Leased>>;

    /// Pauses (`true`) or resumes leasing. Default: nothing to do (the worker pool
    /// stops taking leases itself).
    fn pause(&self, _paused: bool) {}

    /// Ends [`WorkQueue::next`] for good.
    fn stop(&self);

    /// Leases held by this process.
    fn held(&self) -> usize;

    /// Work waiting or running that this process knows of.
    fn pending(&self) -> bool;

    /// The lists' lengths (one round trip for Redis); `None` when unreadable.
    fn lengths(&self) -> BoxFuture<'_, Option<QueueLengths>>;

    /// Most leases held at once (`concurrency` + margin); default: unbounded.
    fn set_capacity(&self, _capacity: usize) {}

    /// New `redis.lease_timeout` and `redis.max_attempts`; default: nothing to do.
    fn set_lease_settings(&self, _lease_timeout: Duration, _max_attempts: u32) {}

    /// A health probe of the queue's backend, if it has one that can fail.
    fn ping(&self) -> Option<BoxFuture<'_, Result<(), String>>> {
        None
    }

    /// Writes this probe's heartbeat where the fleet can read it; a queue of one
    /// process has no fleet (default: nothing to do).
    fn heartbeat<'a>(
        &'a self,
        _beat: &'a crate::fleet::Heartbeat,
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        None
    }

    /// Every probe sharing the queue, as of `now_ms` (default: none known).
    fn fleet(
        &self,
        _now_ms: u64,
    ) -> Option<BoxFuture<'_, Result<Vec<crate::fleet::FleetMember>, String>>> {
        None
    }

    /// Queues hosts submitted through the API, one result per host in order.
    fn submit(&self, hosts: Vec<HostName>) -> BoxFuture<'_, Vec<Result<(), SubmitError>>>;

    /// [`submit`](Self::submit), with a W3C `traceparent` the queued items carry
    /// (SPEC §3.14). The default drops it: a queue without items has nowhere to keep it.
    fn submit_traced(
        &self,
        hosts: Vec<HostName>,
        _traceparent: String,
    ) -> BoxFuture<'_, Vec<Result<(), SubmitError>>> {
        self.submit(hosts)
    }
}

impl WorkQueue for MemoryQueue {
    fn mode(&self) -> &'static str {
        "memory"
    }

    fn is_shared(&self) -> bool {
        false
    }

    fn next(&self) -> BoxFuture<'_, Option<Leased>> {
        Box::pin(async move {
            let lease = MemoryQueue::next(self).await?;
            Some(Leased {
                host: lease.host.clone(),
                origin: Origin::Local(lease.source),
                traceparent: None,
                kind: LeaseKind::Memory(lease),
            })
        })
    }

    fn stop(&self) {
        MemoryQueue::stop(self);
    }

    fn held(&self) -> usize {
        self.depth().held
    }

    fn pending(&self) -> bool {
        let d = self.depth();
        d.input + d.discovered + d.held > 0
    }

    fn lengths(&self) -> BoxFuture<'_, Option<QueueLengths>> {
        let d = self.depth();
        Box::pin(std::future::ready(Some(QueueLengths {
            pending: (d.input + d.discovered) as u64,
            processing: d.held as u64,
            dead: 0,
        })))
    }

    fn submit(&self, hosts: Vec<HostName>) -> BoxFuture<'_, Vec<Result<(), SubmitError>>> {
        let results = hosts
            .into_iter()
            .map(|host| {
                self.try_push_api(host).map_err(|e| match e {
                    PushError::Full => SubmitError::Full,
                    other => SubmitError::Unavailable(other.to_string()),
                })
            })
            .collect();
        Box::pin(std::future::ready(results))
    }
}

impl WorkQueue for RedisQueue {
    fn mode(&self) -> &'static str {
        "redis"
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn next(&self) -> BoxFuture<'_, Option<Leased>> {
        Box::pin(async move {
            let lease = RedisQueue::next(self).await?;
            let item = &lease.item;
            let origin = if item.attempt > 0 {
                Origin::Requeued {
                    attempt: item.attempt,
                }
            } else if item.discovered {
                Origin::Discovered
            } else {
                Origin::Seeded
            };
            Some(Leased {
                host: item.host.clone(),
                origin,
                traceparent: item.traceparent.clone(),
                kind: LeaseKind::Redis(lease),
            })
        })
    }

    fn pause(&self, paused: bool) {
        RedisQueue::pause(self, paused);
    }

    fn stop(&self) {
        RedisQueue::stop(self);
    }

    fn held(&self) -> usize {
        RedisQueue::held(self)
    }

    fn pending(&self) -> bool {
        RedisQueue::held(self) > 0
    }

    fn lengths(&self) -> BoxFuture<'_, Option<QueueLengths>> {
        Box::pin(async move {
            self.depth().await.ok().map(|d| QueueLengths {
                pending: d.pending,
                processing: d.processing,
                dead: d.dead,
            })
        })
    }

    fn set_capacity(&self, capacity: usize) {
        RedisQueue::set_capacity(self, capacity);
    }

    fn set_lease_settings(&self, lease_timeout: Duration, max_attempts: u32) {
        RedisQueue::set_lease_settings(self, lease_timeout, max_attempts);
    }

    fn ping(&self) -> Option<BoxFuture<'_, Result<(), String>>> {
        Some(Box::pin(RedisQueue::ping(self)))
    }

    fn heartbeat<'a>(
        &'a self,
        beat: &'a crate::fleet::Heartbeat,
    ) -> Option<BoxFuture<'a, Result<(), String>>> {
        Some(Box::pin(async move {
            RedisQueue::heartbeat(self, beat)
                .await
                .map_err(|e| e.to_string())
        }))
    }

    fn fleet(
        &self,
        now_ms: u64,
    ) -> Option<BoxFuture<'_, Result<Vec<crate::fleet::FleetMember>, String>>> {
        Some(Box::pin(async move {
            RedisQueue::fleet(self, now_ms)
                .await
                .map_err(|e| e.to_string())
        }))
    }

    /// Seeds the hosts as fresh items (like `seed`), one `LPUSH` per [`LPUSH_CHUNK`];
    /// after a failed push the rest fail with the same error untried.
    fn submit(&self, hosts: Vec<HostName>) -> BoxFuture<'_, Vec<Result<(), SubmitError>>> {
        Box::pin(self.push_fresh(hosts, None))
    }

    fn submit_traced(
        &self,
        hosts: Vec<HostName>,
        traceparent: String,
    ) -> BoxFuture<'_, Vec<Result<(), SubmitError>>> {
        Box::pin(self.push_fresh(hosts, Some(traceparent)))
    }
}

impl RedisQueue {
    /// LPUSHes a fresh item per host, in chunks, each with `traceparent` when given.
    async fn push_fresh(
        &self,
        hosts: Vec<HostName>,
        traceparent: Option<String>,
    ) -> Vec<Result<(), SubmitError>> {
        {
            let ts = spyder_model::Timestamp::now().unix_seconds();
            let mut results = Vec::with_capacity(hosts.len());
            for chunk in hosts.chunks(LPUSH_CHUNK) {
                let items: Vec<QueueItem> = chunk
                    .iter()
                    .map(|h| {
                        let item = QueueItem::new(h.clone(), ts);
                        match &traceparent {
                            Some(tp) => item.with_traceparent(tp),
                            None => item,
                        }
                    })
                    .collect();
                if let Err(e) = self.push(&items).await {
                    let error = SubmitError::Unavailable(format!("queue Redis unavailable: {e}"));
                    results.resize(hosts.len(), Err(error));
                    break;
                }
                results.resize(results.len() + chunk.len(), Ok(()));
            }
            results
        }
    }
}

//! spyder's work queues.
//!
//! [`InputReader`] streams host names from a domains file or stdin, one line at a time,
//! with the line rules of SPEC §3.3 and bounded memory however large the file is.
//! [`MemoryQueue`] is the bounded queue of file mode (SPEC §1): the input side applies
//! backpressure to the reader, discoveries wait behind it, and the queue reports
//! itself done only once the input is closed, nothing is pending and no [`Lease`] is
//! still held. [`QueueItem`] is the Redis queue item of SPEC §2.3, kept byte-exact;
//! [`RedisQueue`] leases, renews, acks and reaps them (SPEC §3.8).
//!
//! Workers see both through one trait, [`WorkQueue`]: a [`Leased`] host splits into a
//! [`Hold`] (the task may still add work) and a
//! [`Finalizer`](spyder_model::finalize::Finalizer) that rides with the host's
//! records and acks the item once they are safe.
//!
//! # Layout
//!
//! * `input`: [`InputReader`] and the [`InputLine`]s and [`InputProgress`] it reports.
//! * `memory`: [`MemoryQueue`], its [`Lease`]s, [`Source`]s and [`QueueDepth`], and
//!   why a push is refused ([`PushError`], [`Closed`]).
//! * `item`: [`QueueItem`] and its [`ItemError`]; `redis`: [`RedisQueue`] with its
//!   [`RedisQueueConfig`], [`RedisLease`]s, [`RedisDepth`] and [`QueueError`].
//! * `resume`: `-resume` — the [`ResumeTracker`] a file-mode run keeps and the
//!   [`Checkpoint`] it writes atomically ([`ResumeError`] when one cannot be used).
//! * `work`: the [`WorkQueue`] trait over both, with [`Leased`], [`Hold`], [`Origin`],
//!   [`QueueLengths`] and [`SubmitError`].
//! * [`fleet`]: the probes of a shared queue, from their heartbeats in `<key>:probes`.
//! * [`connection`]: the one Redis connection setup (deadline, reconnect policy,
//!   chunked `LPUSH` with retry) that the queue, the sinks, `seed` and the bulk API share.
//!
//! The private modules' items are re-exported here.

#![deny(missing_docs)]

pub mod connection;
pub mod fleet;
mod input;
mod item;
mod memory;
mod resume;
mod work;

pub use input::{InputLine, InputProgress, InputReader};
pub use item::{ItemError, QueueItem, is_traceparent};
pub use memory::{Closed, Lease, MemoryQueue, PushError, QueueDepth, Source};
pub use resume::{Checkpoint, ResumeError, ResumeTracker};
pub use work::{
    BoxFuture, Hold, LPUSH_CHUNK, Leased, Origin, QueueLengths, SubmitError, WorkQueue,
};
mod redis;

pub use connection::{ConnectError, redis_url};
pub use redis::{QueueError, RedisDepth, RedisLease, RedisQueue, RedisQueueConfig};

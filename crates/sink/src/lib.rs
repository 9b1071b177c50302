//! Where a crawl's results go next: record dedup and discovery sinks.
//!
//! [`settle_crawl`] is steps 11–12 of SPEC §1: it drops every record of one crawl
//! that was already seen in this run (or within the dedup TTL) and hands the new
//! discoveries to a sink, in one [`Dedup`] call per domain; the records' marks wait
//! until the caller knows the records are safe. [`MemoryDedup`] is the in-process backend (two bounded generations of
//! hashed [`keys`]); the Redis backend implements the same trait. Discovery sinks
//! ([`DiscoverySink`]) take a crawl's candidates in continuous mode: [`ChannelSink`]
//! filters them (SPEC §3.10) and queues the new ones behind the file input.

mod channel;
mod dedup;
pub mod keys;
mod memory;
mod redis;

pub use channel::{Admission, ChannelSink, DiscoverySink, SinkResult, SinkSettings};
pub use dedup::{
    BoxFuture, Dedup, Discoveries, PendingMarks, Settled, claim_lease, crawl_keys, dedup_records,
    mark_crawled, settle_crawl,
};
pub use keys::{DedupKey, KeyDigest};
pub use memory::MemoryDedup;
pub use redis::{RedisDedup, RedisSink, warn_without_shared_dedup};
/// Why a Redis connection could not be set up (the queue crate's, shared).
pub use spyder_queue::ConnectError as RedisError;

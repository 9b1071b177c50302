//! Where a crawl's results go next: record dedup and discovery sinks.
//!
//! [`settle_crawl`] is steps 11–12 of SPEC §1: it drops every record of one crawl
//! that was already seen in this run (or within the dedup TTL) and hands the new
//! discoveries to a sink, in one [`Dedup`] call per domain; the records' marks wait
//! until the caller knows the records are safe. [`MemoryDedup`] is the in-process
//! backend (two bounded generations of hashed [`keys`]); [`RedisDedup`] the shared
//! one (SPEC §3.9). Discovery sinks ([`DiscoverySink`]) take a crawl's candidates in
//! continuous mode: [`ChannelSink`] filters them (SPEC §3.10) and queues the new ones
//! behind the file input; [`RedisSink`] pushes them to the shared Redis queue.
//!
//! # Layout
//!
//! * `dedup`: the [`Dedup`] trait, the backends' contract.
//! * `settle`: the calls a crawl makes on it, once per phase: [`claim_lease`] before
//!   a crawl, [`settle_crawl`] (or [`dedup_records`]) after it, with [`Discoveries`],
//!   [`Settled`] and [`PendingMarks`]; [`crawl_keys`] and [`mark_crawled`].
//! * [`keys`]: [`DedupKey`], the key strings of SPEC §3.9, and their [`KeyDigest`].
//! * `memory`: [`MemoryDedup`].
//! * `discovery`: the [`DiscoverySink`] trait with its [`SinkSettings`],
//!   [`Admission`] and [`SinkResult`], the static filters and the tally every sink
//!   keeps.
//! * `channel`: [`ChannelSink`].
//! * `redis`: [`RedisDedup`], [`RedisSink`] and [`warn_without_shared_dedup`], over
//!   the queue crate's Redis connection (its [`spyder_queue::ConnectError`] is
//!   theirs).
//!
//! The private modules' items are re-exported here. Files depend in one direction:
//! `keys` ← `dedup` ← `discovery` ← `settle`, and the backends and sinks on those.

#![deny(missing_docs)]

mod channel;
mod dedup;
mod discovery;
pub mod keys;
mod memory;
mod redis;
mod settle;

pub use channel::ChannelSink;
pub use dedup::{BoxFuture, Dedup};
pub use discovery::{Admission, DiscoverySink, SinkResult, SinkSettings};
pub use keys::{DedupKey, KeyDigest};
pub use memory::MemoryDedup;
pub use redis::{RedisDedup, RedisSink, warn_without_shared_dedup};
pub use settle::{
    Discoveries, PendingMarks, Settled, claim_lease, crawl_keys, dedup_records, mark_crawled,
    settle_crawl,
};

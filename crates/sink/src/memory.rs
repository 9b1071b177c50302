//! The in-process dedup backend: two bounded generations of hashed keys.

use std::collections::HashSet;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use spyder_model::telemetry;
use tokio::time::Instant;

use crate::dedup::{BoxFuture, Dedup};
use crate::keys::KeyDigest;

const BACKEND: &str = "memory";

/// The memory dedup backend (SPEC §3.9).
///
/// Keys live in two generations. New keys go to the current one; a key is seen if
/// either generation holds it. The generations rotate (the previous one is dropped,
/// the current one becomes the previous) every `ttl`, or as soon as the current one
/// reaches `max_entries / 2`, so at most `max_entries` keys are ever held (B-22) and a
/// key is remembered for at least one `ttl` unless memory runs short. Dropped keys are
/// counted as evictions. Timing uses tokio's clock.
pub struct MemoryDedup {
    generations: Mutex<Generations>,
    ttl: Duration,
    generation_cap: usize,
}

struct Generations {
    current: DigestSet,
    previous: DigestSet,
    current_since: Instant,
    evictions: u64,
}

type DigestSet = HashSet<KeyDigest, BuildDigestHasher>;

impl MemoryDedup {
    /// A store remembering keys for `ttl` (to `2 × ttl`), holding at most
    /// `max_entries` keys (at least 2).
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        Self {
            generations: Mutex::new(Generations {
                current: DigestSet::default(),
                previous: DigestSet::default(),
                current_since: Instant::now(),
                evictions: 0,
            }),
            ttl,
            generation_cap: (max_entries / 2).max(1),
        }
    }

    /// Keys held now, both generations.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.current.len() + g.previous.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys dropped by rotations so far.
    pub fn evictions(&self) -> u64 {
        self.lock().evictions
    }

    fn lock(&self) -> MutexGuard<'_, Generations> {
        // Nothing panics while the lock is held; a poisoned set is still a valid set.
        self.generations
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The generations, rotated for their age first (a key older than the TTL is
    /// forgotten).
    fn aged(&self, now: Instant) -> MutexGuard<'_, Generations> {
        let mut g = self.lock();
        let age = now.saturating_duration_since(g.current_since);
        if age >= self.ttl.saturating_mul(2) {
            g.rotate(now);
            g.rotate(now);
        } else if age >= self.ttl {
            g.rotate(now);
        }
        g
    }

    /// For each key, whether it was seen; marks the new ones. Counts nothing: the
    /// lookups of [`Dedup::check_and_mark`] count, while marks (of reserved keys, of
    /// queued discoveries, of claims), checks and the memory layer of the Redis
    /// backend do not (`spyder_dedup_hits_total` counts keys already seen by a lookup).
    pub(crate) fn check_and_mark_uncounted(&self, keys: &[KeyDigest]) -> Vec<bool> {
        let now = Instant::now();
        let mut g = self.aged(now);
        keys.iter()
            .map(|key| {
                if g.current.contains(key) || g.previous.contains(key) {
                    return true;
                }
                g.current.insert(*key);
                if g.current.len() >= self.generation_cap {
                    g.rotate(now);
                }
                false
            })
            .collect()
    }

    /// Takes back `keys` marked in this process.
    fn unmark(&self, keys: &[KeyDigest]) {
        let mut g = self.lock();
        for key in keys {
            g.current.remove(key);
            g.previous.remove(key);
        }
    }
}

impl Generations {
    /// Drops the previous generation; the current one takes its place.
    fn rotate(&mut self, now: Instant) {
        self.evictions += self.previous.len() as u64;
        std::mem::swap(&mut self.current, &mut self.previous);
        // Clearing keeps the allocation: the sets stop growing once warmed up.
        self.current.clear();
        self.current_since = now;
    }
}

impl Dedup for MemoryDedup {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn check_and_mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        let seen = self.check_and_mark_uncounted(keys);
        let hits = seen.iter().filter(|&&s| s).count() as u64;
        telemetry::dedup_hits(BACKEND).increment(hits);
        telemetry::dedup_misses(BACKEND).increment(keys.len() as u64 - hits);
        Box::pin(std::future::ready(seen))
    }

    fn mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        self.check_and_mark_uncounted(keys);
        Box::pin(std::future::ready(()))
    }

    /// A read: nothing is marked (and nothing evicted by marking), nothing counted.
    fn check<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        let g = self.aged(Instant::now());
        let seen = keys
            .iter()
            .map(|key| g.current.contains(key) || g.previous.contains(key))
            .collect();
        drop(g);
        Box::pin(std::future::ready(seen))
    }

    fn release<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        self.unmark(keys);
        Box::pin(std::future::ready(()))
    }
}

impl fmt::Debug for MemoryDedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDedup")
            .field("ttl", &self.ttl)
            .field("max_entries", &(self.generation_cap * 2))
            .field("len", &self.len())
            .finish()
    }
}

/// Hashing for keys that are already SHA-256 output: a multiply-rotate mix of their
/// bytes is enough, and much cheaper than SipHash.
#[derive(Clone, Copy, Debug, Default)]
struct BuildDigestHasher;

impl BuildHasher for BuildDigestHasher {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_usize(&mut self, _length_prefix: usize) {
        // Keys have a fixed size: the slice length prefix carries nothing.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

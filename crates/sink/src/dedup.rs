//! The dedup backend contract: a store of hashed keys, shared by a probe's tasks (and,
//! for Redis, by every probe). What a crawl asks of it is in [`crate::settle`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use crate::keys::KeyDigest;

/// A boxed, `Send` future, so that [`Dedup`] and the sinks work as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A dedup store of hashed keys ([`crate::keys`]), shared by every task of a probe
/// (and, for Redis, by every probe).
///
/// Two ways to use it. [`Dedup::check_and_mark`] marks at once (file mode: nothing is
/// durable anyway). Queue mode must not mark a record shared by all probes before the
/// record is safe, or a probe killed before its flush would make the re-crawl drop
/// records nobody delivered: it [`Dedup::reserve`]s keys (seen flags; new keys marked
/// in this process only), then [`Dedup::mark`]s them once delivered, or
/// [`Dedup::release`]s them when the work did not happen.
pub trait Dedup: Send + Sync + fmt::Debug {
    /// The backend's name in metrics labels: `memory` or `redis`.
    fn backend(&self) -> &'static str;

    /// For each key, whether it was seen before (`true`) or is new (`false`); every new
    /// key is marked seen. A key repeated within one call is new only the first time.
    /// Callers make one call per domain, which the Redis backend serves in one round
    /// trip. Never fails: on a backend error keys count as new (duplicates, never loss).
    fn check_and_mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>>;

    /// Like [`Dedup::check_and_mark`], but new keys are marked only in this process
    /// until [`Dedup::mark`] makes them visible to other probes. Backends without a
    /// shared store mark at once.
    fn reserve<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        self.check_and_mark(keys)
    }

    /// Marks `keys` seen everywhere: the work they stand for is done. The Redis
    /// backend sends these marks with its next call (or within 100 ms when idle), so
    /// marking costs no round trip of its own.
    fn mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.check_and_mark(keys).await;
        })
    }

    /// Takes back marks that [`Dedup::reserve`] or [`Dedup::check_and_mark`] set in
    /// this process when the work they stood for did not happen (a discovery that did
    /// not fit the queue, records that could not be made safe). Best effort.
    fn release<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()>;

    /// For each key, whether it is marked seen, marking nothing.
    /// The default reserves, then releases the new keys.
    fn check<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        Box::pin(async move {
            let seen = self.reserve(keys).await;
            let new: Vec<KeyDigest> = keys
                .iter()
                .zip(&seen)
                .filter(|(_, seen)| !**seen)
                .map(|(key, _)| *key)
                .collect();
            if !new.is_empty() {
                self.release(&new).await;
            }
            seen
        })
    }

    /// Sends marks still waiting in this process (shutdown). Best effort.
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

//! The Redis dedup backend (SPEC §3.9): windowed sets shared by all probes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::{ClientLike, Error as FredError};
use fred::types::Value;
use fred::types::scripts::Script;

use spyder_model::telemetry;
use spyder_queue::ConnectError;
use spyder_queue::connection::{Connection, describe};

use super::open;
use crate::dedup::{BoxFuture, Dedup};
use crate::keys::KeyDigest;
use crate::memory::MemoryDedup;

const BACKEND: &str = "redis";

/// One call per domain. First the marks waiting in this probe are added to window
/// `n` (whose set gets its one EXPIRE when created); then, for each checked digest:
/// seen in window `n` or `n − 1`? With `mark`, new checked digests are added too.
///
/// ARGV: `n`, the EXPIRE in seconds, `1` to mark checked digests (`0` to only check),
/// the number of waiting marks `m`, the `m` marks, then the checked digests.
/// Returns one flag per checked digest: 1 seen, 0 new. A digest repeated in one call
/// is new only the first time (SADD answers 0 the second time).
const CHECK_SCRIPT: &str = r"
local current = 'spyder:seen:' .. ARGV[1]
local previous = 'spyder:seen:' .. (tonumber(ARGV[1]) - 1)
local mark = ARGV[3] == '1'
local m = tonumber(ARGV[4])
local added = false
for i = 5, 4 + m, 1000 do
  redis.call('SADD', current, unpack(ARGV, i, math.min(i + 999, 4 + m)))
  added = true
end
local seen = {}
for i = 5 + m, #ARGV do
  local key = ARGV[i]
  if redis.call('SISMEMBER', previous, key) == 1 then
    seen[#seen + 1] = 1
  elseif mark then
    seen[#seen + 1] = 1 - redis.call('SADD', current, key)
    added = true
  else
    seen[#seen + 1] = redis.call('SISMEMBER', current, key)
  end
end
if added and redis.call('TTL', current) == -1 then
  redis.call('EXPIRE', current, ARGV[2])
end
return seen
";

/// Marks waiting longer than this go out on their own call.
const MARK_DELAY: Duration = Duration::from_millis(100);

/// Marks kept while Redis is down; beyond this the oldest are dropped (they cost
/// duplicates later, never loss).
const MAX_WAITING_MARKS: usize = 1_000_000;

/// How a lookup treats new keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Mark in memory and in Redis.
    CheckAndMark,
    /// Mark in memory only; [`Dedup::mark`] tells Redis later.
    Reserve,
    /// Mark nothing.
    Check,
}

/// Marks waiting for the next call to Redis.
#[derive(Debug, Default)]
struct WaitingMarks {
    keys: Vec<KeyDigest>,
    /// When the oldest waiting mark arrived.
    since: Option<tokio::time::Instant>,
}

/// Where "now" comes from; injectable so that window rollover can be tested.
type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The Redis dedup backend, shared by every probe of a deployment (SPEC §3.9).
///
/// Keys live in sets `spyder:seen:<n>`, n = ⌊unix_s / ttl_s⌋, each with one EXPIRE
/// of 2·ttl + 60 s set when the set is created; a key is seen if set n or n − 1
/// holds it, and new keys go to set n. There are no per-key volatile keys, and the
/// original's `seen:<key>` keys are neither read nor written.
///
/// A local [`MemoryDedup`] sits in front: keys it already holds are answered without
/// Redis, the rest go to Redis in one `EVALSHA` per call. [`Dedup::mark`] costs no
/// call of its own: its keys ride along with the next `EVALSHA`, or go out on their
/// own after 100 ms without one (and at [`Dedup::flush`]). On a Redis error those keys
/// count as new (duplicates, never loss), `spyder_dedup_errors_total{backend="redis"}`
/// grows and [`RedisDedup::healthy`] turns false until a later call succeeds.
/// Metrics: `spyder_dedup_{hits,misses,errors}_total{backend="redis"}`.
pub struct RedisDedup {
    inner: Arc<Inner>,
    flusher: tokio::task::JoinHandle<()>,
}

struct Inner {
    connection: Connection,
    script: Script,
    memory: MemoryDedup,
    ttl_secs: u64,
    healthy: AtomicBool,
    clock: std::sync::RwLock<Clock>,
    waiting: Mutex<WaitingMarks>,
}

impl RedisDedup {
    /// Connects to `addr` (`host:port`, `redis://[user:pass@]host:port[/db]` or
    /// `rediss://…`) and loads the dedup script. Keys are remembered for `ttl` (to
    /// 2·ttl); the memory layer holds at most `memory_max_entries` keys. Fails when
    /// Redis stays unreachable for 10 s: `cannot reach Redis at <addr> (redis.addr): …`.
    pub async fn connect(
        addr: &str,
        ttl: Duration,
        memory_max_entries: usize,
    ) -> Result<Self, ConnectError> {
        let connection = open(addr, "redis.addr").await?;
        let script = Script::from_lua(CHECK_SCRIPT);
        script
            .load(connection.client())
            .await
            .map_err(|error| ConnectError::Unreachable {
                addr: spyder_queue::connection::redact_addr(addr),
                setting: "redis.addr".to_owned(),
                error: describe(&error),
            })?;
        let inner = Arc::new(Inner {
            connection,
            script,
            memory: MemoryDedup::new(ttl, memory_max_entries),
            ttl_secs: ttl.as_secs().max(1),
            healthy: AtomicBool::new(true),
            clock: std::sync::RwLock::new(Arc::new(SystemTime::now)),
            waiting: Mutex::new(WaitingMarks::default()),
        });
        let flusher = tokio::spawn(flush_late_marks(Arc::downgrade(&inner)));
        Ok(Self { inner, flusher })
    }

    /// Replaces the wall clock that picks the window `n` (tests, simulations).
    pub fn with_clock(self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        *self
            .inner
            .clock
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(clock);
        self
    }

    /// False from a failed Redis call until a later one succeeds.
    pub fn healthy(&self) -> bool {
        self.inner.healthy.load(Ordering::Relaxed)
    }

    /// One `PING`, for the health check; the error text is Redis's. A PING that
    /// gets through makes [`RedisDedup::healthy`] true again.
    pub async fn ping(&self) -> Result<(), String> {
        let result = self
            .inner
            .connection
            .client()
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|error| describe(&error));
        if result.is_ok() {
            self.inner.healthy.store(true, Ordering::Relaxed);
        }
        result
    }
}

/// Sends marks that waited [`MARK_DELAY`] without another call taking them along.
async fn flush_late_marks(inner: std::sync::Weak<Inner>) {
    let mut tick = tokio::time::interval(MARK_DELAY / 2);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        if inner.marks_waited(MARK_DELAY) {
            inner.lookup(&[], Mode::Check).await;
        }
    }
}

impl Inner {
    /// True when the oldest waiting mark is at least `delay` old.
    fn marks_waited(&self, delay: Duration) -> bool {
        self.lock_waiting()
            .since
            .is_some_and(|since| since.elapsed() >= delay)
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, WaitingMarks> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues marks for the next call.
    fn add_marks(&self, keys: &[KeyDigest]) {
        let mut waiting = self.lock_waiting();
        waiting.keys.extend_from_slice(keys);
        waiting.since.get_or_insert_with(tokio::time::Instant::now);
        if waiting.keys.len() > MAX_WAITING_MARKS {
            let excess = waiting.keys.len() - MAX_WAITING_MARKS;
            waiting.keys.drain(..excess);
        }
    }

    fn take_marks(&self) -> Vec<KeyDigest> {
        let mut waiting = self.lock_waiting();
        waiting.since = None;
        std::mem::take(&mut waiting.keys)
    }

    /// Puts marks back after a failed call; they go out with a later one.
    fn restore_marks(&self, mut keys: Vec<KeyDigest>) {
        if keys.is_empty() {
            return;
        }
        let mut waiting = self.lock_waiting();
        keys.append(&mut waiting.keys);
        waiting.keys = keys;
        waiting.since.get_or_insert_with(tokio::time::Instant::now);
        if waiting.keys.len() > MAX_WAITING_MARKS {
            let excess = waiting.keys.len() - MAX_WAITING_MARKS;
            waiting.keys.drain(..excess);
        }
    }

    /// The current window: ⌊unix_s / ttl_s⌋.
    fn window(&self) -> u64 {
        let clock = Arc::clone(&self.clock.read().unwrap_or_else(PoisonError::into_inner));
        let unix_s = clock()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        unix_s / self.ttl_secs
    }

    /// Asks Redis about `keys` in one `EVALSHA` (reloading the script after NOSCRIPT),
    /// sending the waiting marks along; they are put back if the call fails.
    async fn ask_redis(&self, keys: &[KeyDigest], mark: bool) -> Result<Vec<bool>, FredError> {
        let marks = self.take_marks();
        let answer = self.evaluate(&marks, keys, mark).await;
        if answer.is_err() {
            self.restore_marks(marks);
        }
        answer
    }

    async fn evaluate(
        &self,
        marks: &[KeyDigest],
        keys: &[KeyDigest],
        mark: bool,
    ) -> Result<Vec<bool>, FredError> {
        let expire = expire_secs(self.ttl_secs);
        let mut args: Vec<Value> = Vec::with_capacity(marks.len() + keys.len() + 4);
        args.push(Value::from(self.window().to_string()));
        args.push(Value::from(expire.to_string()));
        args.push(Value::from(if mark { "1" } else { "0" }));
        args.push(Value::from(marks.len().to_string()));
        args.extend(marks.iter().map(|k| Value::from(&k[..])));
        args.extend(keys.iter().map(|k| Value::from(&k[..])));
        let flags: Vec<i64> = self
            .script
            .evalsha_with_reload(self.connection.client(), Vec::<String>::new(), args)
            .await?;
        if flags.len() != keys.len() {
            return Err(FredError::new(
                fred::error::ErrorKind::Protocol,
                format!(
                    "dedup script answered {} flags for {} keys",
                    flags.len(),
                    keys.len()
                ),
            ));
        }
        Ok(flags.into_iter().map(|flag| flag == 1).collect())
    }

    /// Answers `keys` from the memory layer, then Redis for the keys it lacks (one
    /// call, which also carries the waiting marks; with no keys, only those).
    async fn lookup(&self, keys: &[KeyDigest], mode: Mode) -> Vec<bool> {
        // The memory layer marks what it did not know; a check takes those marks back
        // below unless Redis says the key is seen.
        let mut seen = self.memory.check_and_mark_uncounted(keys);
        let unknown: Vec<usize> = (0..keys.len()).filter(|&i| !seen[i]).collect();
        if unknown.is_empty() && (!keys.is_empty() || self.lock_waiting().keys.is_empty()) {
            return seen;
        }
        let asked: Vec<KeyDigest> = unknown.iter().map(|&i| keys[i]).collect();
        let mut unmark = Vec::new();
        let check_only = mode == Mode::Check;
        match self.ask_redis(&asked, mode == Mode::CheckAndMark).await {
            Ok(answers) => {
                self.healthy.store(true, Ordering::Relaxed);
                for (&i, was_seen) in unknown.iter().zip(answers) {
                    seen[i] = was_seen;
                    if check_only && !was_seen {
                        unmark.push(keys[i]);
                    }
                }
            }
            Err(error) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %describe(&error), "redis dedup failed; keys count as new");
                }
                telemetry::dedup_errors(BACKEND).increment(1);
                if check_only {
                    unmark = asked;
                }
            }
        }
        if !unmark.is_empty() {
            self.memory.release(&unmark).await;
        }
        seen
    }

    /// Counts hits and misses of a lookup that marks.
    fn count(seen: &[bool]) {
        let hits = seen.iter().filter(|&&s| s).count() as u64;
        telemetry::dedup_hits(BACKEND).increment(hits);
        telemetry::dedup_misses(BACKEND).increment(seen.len() as u64 - hits);
    }
}

impl Dedup for RedisDedup {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn check_and_mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        Box::pin(async move {
            let seen = self.inner.lookup(keys, Mode::CheckAndMark).await;
            Inner::count(&seen);
            seen
        })
    }

    fn reserve<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        Box::pin(async move {
            let seen = self.inner.lookup(keys, Mode::Reserve).await;
            Inner::count(&seen);
            seen
        })
    }

    fn mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // Already marked in memory by `reserve` (or marked now); Redis hears of
            // them with the next call.
            self.inner.memory.check_and_mark_uncounted(keys);
            self.inner.add_marks(keys);
        })
    }

    fn check<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        Box::pin(self.inner.lookup(keys, Mode::Check))
    }

    fn release<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        // Only reservations are taken back: Redis holds a key only once it was marked
        // for good, which is never undone.
        self.inner.memory.release(keys)
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if !self.inner.lock_waiting().keys.is_empty() {
                self.inner.lookup(&[], Mode::Check).await;
            }
        })
    }
}

impl Drop for RedisDedup {
    fn drop(&mut self) {
        self.flusher.abort();
    }
}

impl fmt::Debug for RedisDedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDedup")
            .field("ttl_secs", &self.inner.ttl_secs)
            .field("healthy", &self.healthy())
            .field("memory", &self.inner.memory)
            .finish_non_exhaustive()
    }
}

/// Longest EXPIRE sent (about 136 years): Redis refuses one whose milliseconds
/// overflow, and no `dedup.ttl` needs more.
const MAX_EXPIRE_SECS: u64 = u32::MAX as u64;

/// The EXPIRE of a window's set, 2·ttl + 60 s (SPEC §3.9), saturating instead of
/// wrapping for a `ttl` near `u64::MAX`.
fn expire_secs(ttl_secs: u64) -> u64 {
    ttl_secs
        .saturating_mul(2)
        .saturating_add(60)
        .min(MAX_EXPIRE_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expire_is_twice_the_ttl_plus_a_minute_and_never_wraps() {
        assert_eq!(expire_secs(86_400), 2 * 86_400 + 60);
        assert_eq!(expire_secs(1), 62);
        // It wrapped (release) or panicked (debug) for a ttl near u64::MAX.
        assert_eq!(expire_secs(u64::MAX), MAX_EXPIRE_SECS);
        assert_eq!(expire_secs(u64::MAX / 2 + 1), MAX_EXPIRE_SECS);
        assert_eq!(expire_secs(365 * 86_400), 2 * 365 * 86_400 + 60);
    }
}

//! The Redis dedup backend (SPEC §3.9): windowed sets shared by all probes.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fred::prelude::{ClientLike, Error as FredError, SetsInterface};
use fred::types::Value;
use fred::types::scripts::Script;

use super::{Connection, RedisError, describe};
use crate::dedup::{BoxFuture, Dedup};
use crate::keys::KeyDigest;
use crate::memory::MemoryDedup;

const BACKEND: &str = "redis";

/// One call per domain: for each digest, seen in window `n` or `n − 1`? With `mark`,
/// new digests are added to window `n`, whose set gets its one EXPIRE when created.
///
/// ARGV: `n`, the EXPIRE in seconds, `1` to mark (`0` to only check), the digests.
/// Returns one flag per digest: 1 seen, 0 new. A digest repeated in one call is new
/// only the first time (SADD answers 0 the second time).
const CHECK_SCRIPT: &str = r"
local current = 'spyder:seen:' .. ARGV[1]
local previous = 'spyder:seen:' .. (tonumber(ARGV[1]) - 1)
local mark = ARGV[3] == '1'
local seen = {}
for i = 4, #ARGV do
  local key = ARGV[i]
  if redis.call('SISMEMBER', previous, key) == 1 then
    seen[#seen + 1] = 1
  elseif mark then
    seen[#seen + 1] = 1 - redis.call('SADD', current, key)
  else
    seen[#seen + 1] = redis.call('SISMEMBER', current, key)
  end
end
if mark and redis.call('TTL', current) == -1 then
  redis.call('EXPIRE', current, ARGV[2])
end
return seen
";

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
/// Redis, the rest go to Redis in one `EVALSHA` per call. On a Redis error those keys
/// count as new (duplicates, never loss), `spyder_dedup_errors_total{backend="redis"}`
/// grows and [`RedisDedup::healthy`] turns false until a later call succeeds.
/// Metrics: `spyder_dedup_{hits,misses,errors}_total{backend="redis"}`.
pub struct RedisDedup {
    connection: Connection,
    script: Script,
    memory: MemoryDedup,
    ttl_secs: u64,
    healthy: AtomicBool,
    clock: Clock,
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
    ) -> Result<Self, RedisError> {
        let connection = Connection::open(addr, "redis.addr").await?;
        let script = Script::from_lua(CHECK_SCRIPT);
        script
            .load(&connection.client)
            .await
            .map_err(|error| RedisError::Unreachable {
                addr: addr.to_owned(),
                setting: "redis.addr",
                error: describe(&error),
            })?;
        Ok(Self {
            connection,
            script,
            memory: MemoryDedup::new(ttl, memory_max_entries),
            ttl_secs: ttl.as_secs().max(1),
            healthy: AtomicBool::new(true),
            clock: Arc::new(SystemTime::now),
        })
    }

    /// Replaces the wall clock that picks the window `n` (tests, simulations).
    pub fn with_clock(mut self, clock: impl Fn() -> SystemTime + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// False from a failed Redis call until a later one succeeds.
    pub fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// One `PING`, for the health check; the error text is Redis's.
    pub async fn ping(&self) -> Result<(), String> {
        self.connection
            .client
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|error| describe(&error))
    }

    /// The current window: ⌊unix_s / ttl_s⌋.
    fn window(&self) -> u64 {
        let unix_s = (self.clock)()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        unix_s / self.ttl_secs
    }

    /// Asks Redis about `keys` in one `EVALSHA` (reloading the script after NOSCRIPT).
    async fn ask_redis(&self, keys: &[KeyDigest], mark: bool) -> Result<Vec<bool>, FredError> {
        let expire = self.ttl_secs * 2 + 60;
        let mut args: Vec<Value> = Vec::with_capacity(keys.len() + 3);
        args.push(Value::from(self.window().to_string()));
        args.push(Value::from(expire.to_string()));
        args.push(Value::from(if mark { "1" } else { "0" }));
        args.extend(keys.iter().map(|k| Value::from(&k[..])));
        let flags: Vec<i64> = self
            .script
            .evalsha_with_reload(&self.connection.client, Vec::<String>::new(), args)
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

    /// Answers `keys` from the memory layer, then Redis for the keys it lacks.
    async fn lookup(&self, keys: &[KeyDigest], mark: bool) -> Vec<bool> {
        // The memory layer marks what it did not know; a check takes those marks back
        // below unless Redis says the key is seen.
        let mut seen = self.memory.check_and_mark(keys).await;
        let unknown: Vec<usize> = (0..keys.len()).filter(|&i| !seen[i]).collect();
        if unknown.is_empty() {
            return seen;
        }
        let asked: Vec<KeyDigest> = unknown.iter().map(|&i| keys[i]).collect();
        let mut unmark = Vec::new();
        match self.ask_redis(&asked, mark).await {
            Ok(answers) => {
                self.healthy.store(true, Ordering::Relaxed);
                for (&i, was_seen) in unknown.iter().zip(answers) {
                    seen[i] = was_seen;
                    if !mark && !was_seen {
                        unmark.push(keys[i]);
                    }
                }
            }
            Err(error) => {
                if self.healthy.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %describe(&error), "redis dedup failed; keys count as new");
                }
                metrics::counter!("spyder_dedup_errors_total", "backend" => BACKEND).increment(1);
                if !mark {
                    unmark = asked;
                }
            }
        }
        if !unmark.is_empty() {
            self.memory.unmark(&unmark).await;
        }
        seen
    }
}

impl Dedup for RedisDedup {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn check_and_mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        Box::pin(async move {
            let seen = self.lookup(keys, true).await;
            let hits = seen.iter().filter(|&&s| s).count() as u64;
            metrics::counter!("spyder_dedup_hits_total", "backend" => BACKEND).increment(hits);
            metrics::counter!("spyder_dedup_misses_total", "backend" => BACKEND)
                .increment(keys.len() as u64 - hits);
            seen
        })
    }

    fn check<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        Box::pin(self.lookup(keys, false))
    }

    fn unmark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.memory.unmark(keys).await;
            let n = self.window();
            let members: Vec<Value> = keys.iter().map(|k| Value::from(&k[..])).collect();
            let pipeline = self.connection.client.pipeline();
            let queued = async {
                pipeline
                    .srem::<(), _, _>(format!("spyder:seen:{n}"), members.clone())
                    .await?;
                pipeline
                    .srem::<(), _, _>(format!("spyder:seen:{}", n.saturating_sub(1)), members)
                    .await?;
                pipeline.all::<Vec<Value>>().await
            };
            if let Err(error) = queued.await {
                // Best effort: the keys stay marked in Redis until their window
                // expires, so a later offer skips them until then; never fail.
                tracing::warn!(error = %describe(&error), "redis dedup unmark failed");
            }
        })
    }
}

impl fmt::Debug for RedisDedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisDedup")
            .field("ttl_secs", &self.ttl_secs)
            .field("healthy", &self.healthy())
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

//! The Redis work queue of SPEC §2.3 and §3.8: lease with `BLMOVE`, ack with one
//! script, renewal of held leases, and a reaper that requeues expired ones.
//!
//! Two connections: one for the blocking `BLMOVE` loop, one for everything else, so
//! acks, renewals and pushes never wait behind a blocked read. Both reconnect on their
//! own; every loop here backs off (100 ms doubling to 5 s, with jitter) on errors.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::cmd;
use fred::prelude::{Client, ClientLike, Error as RedisError, LuaInterface, Value};
use spyder_model::backoff::Backoff;
use spyder_model::telemetry;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::connection::{
    BACKOFF_MAX, BACKOFF_MIN, ConnectError, ConnectOptions, Connection, Retry, describe, with_retry,
};
use crate::item::QueueItem;

/// How long `connect` keeps trying before it gives up (SPEC §3.8).
const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// How long one `BLMOVE` blocks, in seconds.
const BLOCK_SECONDS: i64 = 5;
/// Most expired leases one reaper call handles.
const REAP_LIMIT: i64 = 100;
/// Most `:processing` items one reaper call checks for a missing lease.
const ADOPT_SCAN: i64 = 1000;
/// How long an ack or a push keeps retrying before it reports the error.
const RETRY_WITHIN: Duration = Duration::from_secs(30);

/// `KEYS`: processing, leases. `ARGV`: raw item.
const ACK_SCRIPT: &str = r#"
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1
"#;

/// `KEYS`: processing, leases, dead. `ARGV`: raw item. The lease goes too: the
/// reaper may have given the item one in the meantime.
const BURY_SCRIPT: &str = r#"
redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('LPUSH', KEYS[3], ARGV[1])
return 1
"#;

/// `KEYS`: pending, processing, leases, dead. `ARGV`: now ms, lease ms, max attempts,
/// limit, adopt scan. Returns `{requeued, dead, adopted}`.
///
/// `attempt` is rewritten in the raw text so every other byte stays as it was.
const REAP_SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
local lease_ms = tonumber(ARGV[2])
local max_attempts = tonumber(ARGV[3])
local requeued, dead, adopted = 0, 0, 0
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))
for _, raw in ipairs(expired) do
  redis.call('ZREM', KEYS[3], raw)
  if redis.call('LREM', KEYS[2], 1, raw) > 0 then
    local s, e, n = string.find(raw, '"attempt"%s*:%s*(%d+)')
    local attempt = (tonumber(n) or 0) + 1
    local rewritten = raw
    if s then
      rewritten = string.sub(raw, 1, s - 1) .. '"attempt":' .. attempt .. string.sub(raw, e + 1)
    else
      local close = string.find(raw, '}%s*$')
      if close then
        rewritten = string.sub(raw, 1, close - 1) .. ',"attempt":' .. attempt .. string.sub(raw, close)
      end
    end
    if attempt >= max_attempts then
      redis.call('LPUSH', KEYS[4], rewritten)
      dead = dead + 1
    else
      redis.call('LPUSH', KEYS[1], rewritten)
      requeued = requeued + 1
    end
  end
end
local processing = redis.call('LRANGE', KEYS[2], 0, tonumber(ARGV[5]) - 1)
for _, raw in ipairs(processing) do
  adopted = adopted + redis.call('ZADD', KEYS[3], 'NX', now + lease_ms, raw)
end
return {requeued, dead, adopted}
"#;

/// Where and how to lease.
#[derive(Clone, Debug)]
pub struct RedisQueueConfig {
    /// `host:port`, `redis://[user:pass@]host:port[/db]` or `rediss://...`.
    pub addr: String,
    /// The setting `addr` came from, named in the connect error (`redis.queue_addr`).
    pub setting: String,
    /// The pending list; `<key>:processing`, `<key>:leases` and `<key>:dead` derive from it.
    pub key: String,
    /// How long a lease lives without renewal.
    pub lease_timeout: Duration,
    /// An item whose `attempt+1` reaches this goes to `<key>:dead` instead of back.
    pub max_attempts: u32,
    /// Most leases held at once (`concurrency + 32`); no lease is taken beyond it.
    pub capacity: usize,
}

/// A Redis queue failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The server did not answer within 10 s at startup, or its address is invalid.
    #[error(transparent)]
    Unreachable(#[from] ConnectError),
    /// A command failed (after retries, where the operation retries).
    #[error("redis: {0}")]
    Redis(#[from] RedisError),
}

/// Lengths of the queue's lists.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisDepth {
    /// Items waiting in `<key>`.
    pub pending: u64,
    /// Items leased, in `<key>:processing`.
    pub processing: u64,
    /// Items given up on, in `<key>:dead`.
    pub dead: u64,
}

#[derive(Clone, Debug)]
struct Keys {
    pending: String,
    processing: String,
    leases: String,
    dead: String,
    /// `<key>:probes`: the fleet's heartbeats.
    probes: String,
}

struct Shared {
    client: Client,
    blocking: Client,
    /// What keeps both clients connected (and reconnecting) until the queue goes.
    _connections: [Connection; 2],
    keys: Keys,
    /// `redis.lease_timeout` in ms and `redis.max_attempts` (both Tier 1: live).
    lease_timeout_ms: AtomicU64,
    max_attempts: std::sync::atomic::AtomicU32,
    use_blmove: bool,
    ack_sha: Mutex<String>,
    reap_sha: Mutex<String>,
    bury_sha: Mutex<String>,
    /// Raw item → number of leases held on it by this probe.
    held: Mutex<HashMap<String, usize>>,
    capacity: Arc<Semaphore>,
    /// The size `capacity` was last set to.
    capacity_target: std::sync::atomic::AtomicUsize,
    /// One `BLMOVE` at a time: a blocking command holds its connection, so callers
    /// queued behind it on the same connection would time out.
    turn: tokio::sync::Mutex<()>,
    healthy: AtomicBool,
    lease_calls: AtomicU64,
    paused: watch::Sender<bool>,
    stopped: watch::Sender<bool>,
}

/// The Redis work queue (SPEC §2.3, §3.8).
///
/// Renewal and reaping run in background tasks until the queue is dropped.
pub struct RedisQueue {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

/// One leased item; [`RedisLease::ack`] it once its results are safe.
///
/// Dropping a lease without acking stops its renewal: it expires and the reaper
/// requeues it with `attempt+1`.
pub struct RedisLease {
    /// The item, byte-exact.
    pub item: QueueItem,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for RedisLease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLease")
            .field("item", &self.item)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("keys", &self.shared.keys)
            .finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// Connects both connections, loads the scripts and starts renewal and the reaper.
    pub async fn connect(config: RedisQueueConfig) -> Result<Self, QueueError> {
        let setting = config.setting.as_str();
        let options = |command_timeout| ConnectOptions {
            command_timeout,
            within: CONNECT_WITHIN,
            reconnect: true,
        };
        let main = Connection::open(&config.addr, setting, options(Duration::from_secs(5))).await?;
        let blocking_timeout = Duration::from_secs(BLOCK_SECONDS as u64 + 5);
        let blocking = Connection::open(&config.addr, setting, options(blocking_timeout)).await?;
        let (client, blocking_client) = (main.client().clone(), blocking.client().clone());
        let info: String = client
            .custom(cmd!("INFO"), vec!["server"])
            .await
            .map_err(|error| ConnectError::Unreachable {
                addr: crate::connection::redact_addr(&config.addr),
                setting: setting.to_owned(),
                error: describe(&error),
            })?;
        let use_blmove = supports_blmove(&info);
        let ack_sha: String = client.script_load(ACK_SCRIPT).await?;
        let reap_sha: String = client.script_load(REAP_SCRIPT).await?;
        let bury_sha: String = client.script_load(BURY_SCRIPT).await?;
        let key = config.key;
        let shared = Arc::new(Shared {
            client,
            blocking: blocking_client,
            _connections: [main, blocking],
            keys: Keys {
                processing: format!("{key}:processing"),
                leases: format!("{key}:leases"),
                dead: format!("{key}:dead"),
                probes: format!("{key}:probes"),
                pending: key,
            },
            lease_timeout_ms: AtomicU64::new(duration_ms(config.lease_timeout)),
            max_attempts: std::sync::atomic::AtomicU32::new(config.max_attempts),
            use_blmove,
            ack_sha: Mutex::new(ack_sha),
            reap_sha: Mutex::new(reap_sha),
            bury_sha: Mutex::new(bury_sha),
            held: Mutex::new(HashMap::new()),
            capacity: Arc::new(Semaphore::new(config.capacity.max(1))),
            capacity_target: std::sync::atomic::AtomicUsize::new(config.capacity.max(1)),
            turn: tokio::sync::Mutex::new(()),
            healthy: AtomicBool::new(true),
            lease_calls: AtomicU64::new(0),
            paused: watch::Sender::new(false),
            stopped: watch::Sender::new(false),
        });
        let tasks = vec![
            tokio::spawn(renew_loop(Arc::clone(&shared))),
            tokio::spawn(reap_loop(Arc::clone(&shared))),
        ];
        Ok(Self { shared, tasks })
    }

    /// The next leased item; `None` only after [`RedisQueue::stop`].
    ///
    /// Waits while paused and while `capacity` leases are held. Items that do not
    /// decode, or whose host is invalid, go to `<key>:dead`.
    ///
    /// Cancelling the future while it waits in `BLMOVE` may leave a moved item
    /// without a lease; the reaper gives it one and requeues it once it expires.
    /// Concurrent callers share one blocking connection and take turns (one `BLMOVE`
    /// in flight at a time).
    pub async fn next(&self) -> Option<RedisLease> {
        let shared = &self.shared;
        let mut stopped = shared.stopped.subscribe();
        let mut paused = shared.paused.subscribe();
        let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        loop {
            if *stopped.borrow_and_update() {
                return None;
            }
            if *paused.borrow_and_update() {
                tokio::select! {
                    _ = stopped.changed() => {}
                    _ = paused.changed() => {}
                }
                continue;
            }
            let permit = tokio::select! {
                permit = Arc::clone(&shared.capacity).acquire_owned() => permit.ok()?,
                _ = stopped.changed() => continue,
                _ = paused.changed() => continue,
            };
            let moved = tokio::select! {
                moved = async {
                    let _turn = shared.turn.lock().await;
                    shared.take().await
                } => moved,
                _ = stopped.changed() => continue,
                _ = paused.changed() => continue,
            };
            let raw = match moved {
                Ok(Some(raw)) => {
                    backoff.reset();
                    shared.healthy.store(true, Ordering::Relaxed);
                    raw
                }
                Ok(None) => {
                    backoff.reset();
                    shared.healthy.store(true, Ordering::Relaxed);
                    continue;
                }
                Err(error) => {
                    shared.healthy.store(false, Ordering::Relaxed);
                    tracing::warn!(%error, "leasing from the Redis queue failed; backing off");
                    drop(permit);
                    tokio::select! {
                        () = backoff.wait() => {}
                        _ = stopped.changed() => {}
                    }
                    continue;
                }
            };
            match QueueItem::decode(&raw) {
                Ok(item) => return Some(shared.leased(item, permit).await),
                Err(error) => {
                    tracing::error!(item = %raw, %error, "poison queue item moved to the dead list");
                    shared.bury(&raw).await;
                }
            }
        }
    }

    /// Stops (`true`) or resumes leasing; renewal and acks continue.
    pub fn pause(&self, on: bool) {
        self.shared.paused.send_replace(on);
    }

    /// Ends [`RedisQueue::next`] for good; held leases keep being renewed until
    /// acked or the queue is dropped.
    pub fn stop(&self) {
        self.shared.stopped.send_replace(true);
    }

    /// Whether both connections are up and the last Redis call succeeded.
    pub fn health(&self) -> bool {
        let shared = &self.shared;
        shared.healthy.load(Ordering::Relaxed)
            && shared.client.is_connected()
            && shared.blocking.is_connected()
    }

    /// Applies new `redis.lease_timeout` and `redis.max_attempts` (Tier 1): new leases,
    /// renewals and reaper rounds use them from now on.
    pub fn set_lease_settings(&self, lease_timeout: Duration, max_attempts: u32) {
        let shared = &self.shared;
        shared
            .lease_timeout_ms
            .store(duration_ms(lease_timeout), Ordering::Relaxed);
        shared.max_attempts.store(max_attempts, Ordering::Relaxed);
    }

    /// Resizes how many leases may be held at once (`crawling.concurrency` + margin,
    /// live). Growing takes effect at once; shrinking takes back free slots now and
    /// the rest as far as they are free (best effort: held leases are never revoked).
    pub fn set_capacity(&self, capacity: usize) {
        let capacity = capacity.max(1);
        let shared = &self.shared;
        let old = shared.capacity_target.swap(capacity, Ordering::AcqRel);
        if capacity > old {
            shared.capacity.add_permits(capacity - old);
        } else if old > capacity {
            shared.capacity.forget_permits(old - capacity);
        }
    }

    /// One `PING` on the main connection, for the health check; the error is Redis's.
    pub async fn ping(&self) -> Result<(), String> {
        self.shared
            .client
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// How many `BLMOVE` calls `next` has made since connect, failed or not: a
    /// bounded number over an outage shows there is no busy loop.
    pub fn lease_calls(&self) -> u64 {
        self.shared.lease_calls.load(Ordering::Relaxed)
    }

    /// How many leases this queue holds.
    pub fn held(&self) -> usize {
        self.shared.held_count()
    }

    /// LPUSHes `items` onto the pending list, retrying with backoff for up to 30 s.
    pub async fn push(&self, items: &[QueueItem]) -> Result<(), QueueError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut args: Vec<Value> = Vec::with_capacity(items.len() + 1);
        args.push(self.shared.keys.pending.as_str().into());
        args.extend(items.iter().map(|item| Value::from(item.raw())));
        let shared = &self.shared;
        retry(shared, || async {
            shared
                .client
                .custom::<i64, Value>(cmd!("LPUSH"), args.clone())
                .await
                .map(drop)
        })
        .await
    }

    /// Writes this probe's heartbeat into `<key>:probes`.
    pub async fn heartbeat(&self, beat: &crate::fleet::Heartbeat) -> Result<(), QueueError> {
        let json = serde_json::to_string(beat).unwrap_or_default();
        let args = vec![self.shared.keys.probes.clone(), beat.probe_id.clone(), json];
        self.shared
            .call::<i64, String>(cmd!("HSET"), args)
            .await
            .map(drop)
            .map_err(QueueError::from)
    }

    /// Every probe of the queue from `<key>:probes`, as of `now_ms`; heartbeats
    /// older than [`crate::fleet::FORGET_AFTER`] are deleted on the way.
    pub async fn fleet(&self, now_ms: u64) -> Result<Vec<crate::fleet::FleetMember>, QueueError> {
        let key = self.shared.keys.probes.as_str();
        let flat: Vec<String> = self.shared.call(cmd!("HGETALL"), vec![key]).await?;
        let mut entries = Vec::with_capacity(flat.len() / 2);
        let mut it = flat.into_iter();
        while let (Some(id), Some(json)) = (it.next(), it.next()) {
            entries.push((id, json));
        }
        let (members, forget) = crate::fleet::members(entries, now_ms);
        if !forget.is_empty() {
            let mut args = vec![key.to_owned()];
            args.extend(forget);
            // A failed cleanup is tried again at the next read.
            let _ = self.shared.call::<i64, String>(cmd!("HDEL"), args).await;
        }
        Ok(members)
    }

    /// Lengths of the pending, processing and dead lists.
    pub async fn depth(&self) -> Result<RedisDepth, QueueError> {
        let keys = &self.shared.keys;
        let mut lengths = [0u64; 3];
        for (length, key) in lengths
            .iter_mut()
            .zip([&keys.pending, &keys.processing, &keys.dead])
        {
            *length = self.shared.call(cmd!("LLEN"), vec![key.as_str()]).await?;
        }
        Ok(RedisDepth {
            pending: lengths[0],
            processing: lengths[1],
            dead: lengths[2],
        })
    }
}

impl Drop for RedisQueue {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl RedisLease {
    /// Removes the item from `:processing` and drops its lease, in one script;
    /// retried with backoff for up to 30 s.
    pub async fn ack(self) -> Result<(), QueueError> {
        let shared = &self.shared;
        let keys = &shared.keys;
        let raw = self.item.raw();
        retry(shared, || async {
            shared
                .run_script(
                    &shared.ack_sha,
                    ACK_SCRIPT,
                    vec![keys.processing.as_str(), keys.leases.as_str()],
                    vec![Value::from(raw)],
                )
                .await
                .map(|_: i64| ())
        })
        .await
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        self.shared.release(self.item.raw());
    }
}

impl Shared {
    /// One `BLMOVE` (or `BRPOPLPUSH`); `None` when nothing came within the block time.
    async fn take(&self) -> Result<Option<String>, RedisError> {
        self.lease_calls.fetch_add(1, Ordering::Relaxed);
        let keys = &self.keys;
        if self.use_blmove {
            let args: Vec<Value> = vec![
                keys.pending.as_str().into(),
                keys.processing.as_str().into(),
                "RIGHT".into(),
                "LEFT".into(),
                BLOCK_SECONDS.into(),
            ];
            self.blocking
                .custom(cmd!("BLMOVE", blocking: true), args)
                .await
        } else {
            let args: Vec<Value> = vec![
                keys.pending.as_str().into(),
                keys.processing.as_str().into(),
                BLOCK_SECONDS.into(),
            ];
            self.blocking
                .custom(cmd!("BRPOPLPUSH", blocking: true), args)
                .await
        }
    }

    /// Records the lease in `<key>:leases` and in the held set. A failed `ZADD` is
    /// logged only: the reaper gives the item a lease on first sight.
    async fn leased(self: &Arc<Self>, item: QueueItem, permit: OwnedSemaphorePermit) -> RedisLease {
        {
            let mut held = lock(&self.held);
            *held.entry(item.raw().to_owned()).or_default() += 1;
            telemetry::queue_held().set(held.len() as f64);
        }
        let args: Vec<Value> = vec![
            self.keys.leases.as_str().into(),
            self.deadline_ms().into(),
            item.raw().into(),
        ];
        if let Err(error) = self.call::<i64, Value>(cmd!("ZADD"), args).await {
            tracing::warn!(%error, item = %item.raw(), "recording a lease failed; the reaper will add it");
        }
        RedisLease {
            item,
            shared: Arc::clone(self),
            _permit: permit,
        }
    }

    /// Moves a poison item from `:processing` to `:dead`.
    async fn bury(&self, raw: &str) {
        telemetry::queue_dead().increment(1);
        let keys = &self.keys;
        let buried = self
            .run_script::<i64>(
                &self.bury_sha,
                BURY_SCRIPT,
                vec![&keys.processing, &keys.leases, &keys.dead],
                vec![Value::from(raw)],
            )
            .await;
        if let Err(error) = buried {
            tracing::error!(%error, item = %raw, "moving a poison item to the dead list failed");
        }
    }

    fn release(&self, raw: &str) {
        let mut held = lock(&self.held);
        if let Some(count) = held.get_mut(raw) {
            *count -= 1;
            if *count == 0 {
                held.remove(raw);
            }
        }
        telemetry::queue_held().set(held.len() as f64);
    }

    fn held_count(&self) -> usize {
        lock(&self.held).values().sum()
    }

    fn lease_timeout(&self) -> Duration {
        Duration::from_millis(self.lease_timeout_ms.load(Ordering::Relaxed))
    }

    fn deadline_ms(&self) -> i64 {
        now_ms() + i64::try_from(self.lease_timeout().as_millis()).unwrap_or(i64::MAX / 2)
    }

    /// One command on the main connection, tracking health.
    async fn call<R, T>(
        &self,
        command: fred::types::CustomCommand,
        args: Vec<T>,
    ) -> Result<R, RedisError>
    where
        R: fred::types::FromValue,
        T: TryInto<Value> + Send,
        T::Error: Into<RedisError> + Send,
    {
        let result = self.client.custom(command, args).await;
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
    }

    /// `EVALSHA`, loading the script again after `NOSCRIPT`.
    async fn run_script<R: fred::types::FromValue>(
        &self,
        sha: &Mutex<String>,
        script: &str,
        keys: Vec<&str>,
        args: Vec<Value>,
    ) -> Result<R, RedisError> {
        let hash = lock(sha).clone();
        let keys: Vec<String> = keys.into_iter().map(str::to_owned).collect();
        let result = self.client.evalsha(hash, keys.clone(), args.clone()).await;
        let result = match result {
            Err(error) if error.details().contains("NOSCRIPT") => {
                let hash: String = self.client.script_load(script).await?;
                *lock(sha) = hash.clone();
                self.client.evalsha(hash, keys, args).await
            }
            other => other,
        };
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
    }

    /// `ZADD <key>:leases XX` with a new deadline for every held lease.
    async fn renew(&self) -> Result<(), RedisError> {
        let raws: Vec<String> = lock(&self.held).keys().cloned().collect();
        if raws.is_empty() {
            return Ok(());
        }
        let deadline = self.deadline_ms();
        let mut args: Vec<Value> = Vec::with_capacity(raws.len() * 2 + 2);
        args.push(self.keys.leases.as_str().into());
        args.push("XX".into());
        for raw in raws {
            args.push(deadline.into());
            args.push(raw.into());
        }
        self.call::<i64, Value>(cmd!("ZADD"), args).await.map(drop)
    }

    /// One reaper pass; returns `(requeued, dead, adopted)`.
    async fn reap(&self) -> Result<(i64, i64, i64), RedisError> {
        let keys = &self.keys;
        let args: Vec<Value> = vec![
            now_ms().into(),
            i64::try_from(self.lease_timeout().as_millis())
                .unwrap_or(i64::MAX / 4)
                .into(),
            i64::from(self.max_attempts.load(Ordering::Relaxed)).into(),
            REAP_LIMIT.into(),
            ADOPT_SCAN.into(),
        ];
        let counts: Vec<i64> = self
            .run_script(
                &self.reap_sha,
                REAP_SCRIPT,
                vec![&keys.pending, &keys.processing, &keys.leases, &keys.dead],
                args,
            )
            .await?;
        let at = |i: usize| counts.get(i).copied().unwrap_or(0);
        Ok((at(0), at(1), at(2)))
    }
}

async fn renew_loop(shared: Arc<Shared>) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        match shared.renew().await {
            Ok(()) => {
                backoff.reset();
                let period = (shared.lease_timeout() / 3).max(Duration::from_millis(10));
                tokio::time::sleep(period).await;
            }
            Err(error) => {
                tracing::warn!(%error, "renewing queue leases failed");
                backoff.wait().await;
            }
        }
    }
}

async fn reap_loop(shared: Arc<Shared>) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    loop {
        match shared.reap().await {
            Ok((requeued, dead, adopted)) => {
                backoff.reset();
                if requeued > 0 {
                    telemetry::queue_requeued().increment(requeued as u64);
                }
                if dead > 0 {
                    telemetry::queue_dead().increment(dead as u64);
                }
                if requeued + dead + adopted > 0 {
                    tracing::info!(requeued, dead, adopted, "reaped expired queue leases");
                }
                let period = (shared.lease_timeout() / 4).max(Duration::from_secs(1));
                tokio::time::sleep(period).await;
            }
            Err(error) => {
                tracing::warn!(%error, "reaping expired queue leases failed");
                backoff.wait().await;
            }
        }
    }
}

/// Runs `op` until it succeeds or [`RETRY_WITHIN`] has passed, backing off between
/// tries; each outcome updates the queue's health.
async fn retry<F, Fut>(shared: &Shared, mut op: F) -> Result<(), QueueError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), RedisError>>,
{
    with_retry(Retry::Within(RETRY_WITHIN), || {
        let attempt = op();
        async {
            let result = attempt.await;
            shared.healthy.store(result.is_ok(), Ordering::Relaxed);
            result
        }
    })
    .await
    .map_err(QueueError::from)
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whether `INFO server` shows Redis 6.2 or later.
fn supports_blmove(info: &str) -> bool {
    let Some(version) = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("redis_version:"))
    else {
        return true;
    };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (6, 2)
}

fn now_ms() -> i64 {
    i64::try_from(spyder_model::unix_millis_now()).unwrap_or(i64::MAX / 2)
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blmove_needs_redis_6_2() {
        assert!(supports_blmove("# Server\r\nredis_version:7.0.15\r\n"));
        assert!(supports_blmove("redis_version:6.2.0\r\n"));
        assert!(!supports_blmove("redis_version:6.0.9\r\n"));
        assert!(!supports_blmove("redis_version:5.0.14\r\n"));
    }
}

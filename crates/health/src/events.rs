//! The dashboard's event hub (SPEC §3.14, issue #14): once a second a snapshot of the
//! run (the run loop's stats, the readiness flags and the cached health checks),
//! kept in a bounded ring of `dashboard.history_size` entries and streamed to
//! `GET /api/v1/events` clients as server-sent events.
//!
//! Memory is flat: the ring holds at most `history_size` frames, each serialised
//! once and shared (a [`Bytes`]) by every client. A client holds only a cursor into
//! the ring; one that falls more than [`LAG_LIMIT`] snapshots behind the newest
//! (after its history was sent), or whose next snapshot left the ring, is dropped:
//! its connection is closed, however little it reads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use spyder_model::Timestamp;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::checks::{CheckCache, CheckReport, CheckStatus};
use crate::{Control, Readiness};

/// Default time between two snapshots.
pub const DEFAULT_EVENTS_INTERVAL: Duration = Duration::from_secs(1);
/// Default number of snapshots kept (`dashboard.history_size`'s default).
pub const DEFAULT_HISTORY_SIZE: usize = 1000;
/// How many snapshots a client may lag behind the newest, once its history is sent,
/// before it is dropped.
pub const LAG_LIMIT: u64 = 30;
/// Event streams open at once; one more is refused (`429`) until one closes. A page
/// holds one, so this is room for many operators, not for a key holder who opens
/// streams in a loop (each is sent the whole history).
pub const MAX_EVENT_STREAMS: usize = 64;
/// How long a client gets at shutdown to take the end of its stream.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The run's state as the dashboard's badge shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RunState {
    /// Not marked ready yet.
    Starting,
    /// Working.
    Crawling,
    /// Workers paused through the API.
    Paused,
    /// Shutdown has started.
    Draining,
    /// The `progress` check fires: work is pending and nothing finishes.
    Stalled,
    /// Another check is degraded or unhealthy.
    Degraded,
    /// The last configuration reload was refused (the stats' `config_error`); the
    /// run goes on with the configuration it had.
    #[serde(rename = "config_error")]
    ConfigError,
}

/// A check that is not healthy, as a snapshot lists it.
#[derive(Serialize)]
struct FailingCheck<'a> {
    name: &'a str,
    status: CheckStatus,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
}

/// One snapshot, as `data:` of an SSE event.
#[derive(Serialize)]
struct Snapshot<'a> {
    seq: u64,
    timestamp: Timestamp,
    state: RunState,
    reason: &'a str,
    checks: Vec<FailingCheck<'a>>,
    stats: &'a Value,
}

/// The state badge and its reason from the readiness flags, the checks and the
/// run loop's `paused`.
pub(crate) fn run_state(
    readiness: &Readiness,
    checks: &[CheckReport],
    paused: bool,
    config_error: Option<&str>,
) -> (RunState, String) {
    let failing = |c: &&CheckReport| c.status != CheckStatus::Healthy;
    let describe = |c: &CheckReport| {
        if c.message.is_empty() {
            format!("{}: {}", c.name, c.status)
        } else {
            format!("{}: {}", c.name, c.message)
        }
    };
    let unhealthy = checks
        .iter()
        .find(|c| c.status == CheckStatus::Unhealthy)
        .map(describe);
    if readiness.is_stopping() {
        return (RunState::Draining, "shutting down".to_owned());
    }
    if !readiness.is_marked_ready() {
        return (RunState::Starting, String::new());
    }
    if let Some(reason) = unhealthy {
        return (RunState::Degraded, reason);
    }
    if let Some(error) = config_error {
        return (RunState::ConfigError, format!("reload refused: {error}"));
    }
    if paused {
        return (RunState::Paused, "paused through the API".to_owned());
    }
    if let Some(progress) = checks.iter().filter(failing).find(|c| c.name == "progress") {
        return (RunState::Stalled, describe(progress));
    }
    match checks.iter().find(failing) {
        Some(check) => (RunState::Degraded, describe(check)),
        None => (RunState::Crawling, String::new()),
    }
}

/// What [`EventHub::lookup`] finds for a sequence number.
enum Lookup {
    Frame(Bytes),
    Evicted,
    NotYet,
}

struct Ring {
    frames: VecDeque<Bytes>,
    /// Sequence number of `frames[0]` (the first snapshot is 1).
    first_seq: u64,
}

/// The bounded history of snapshots and the clients streaming it. Cheap to share
/// (an `Arc` inside [`OpsState`](crate::OpsState)).
pub struct EventHub {
    ring: Mutex<Ring>,
    capacity: usize,
    interval: Duration,
    /// The newest sequence number (0: none yet).
    latest: watch::Sender<u64>,
    clients: AtomicUsize,
    dropped: AtomicU64,
}

impl std::fmt::Debug for EventHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHub")
            .field("capacity", &self.capacity)
            .field("interval", &self.interval)
            .field("len", &self.len())
            .field("clients", &self.clients())
            .finish_non_exhaustive()
    }
}

impl EventHub {
    pub(crate) fn new(capacity: usize, interval: Duration) -> Self {
        Self {
            ring: Mutex::new(Ring {
                frames: VecDeque::with_capacity(capacity.clamp(1, 4096)),
                first_seq: 1,
            }),
            capacity: capacity.max(1),
            interval,
            latest: watch::Sender::new(0),
            clients: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    }

    /// Snapshots kept now (at most `history_size`).
    pub fn len(&self) -> usize {
        self.ring.lock().map(|r| r.frames.len()).unwrap_or_default()
    }

    /// Whether no snapshot was taken yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most snapshots kept (`dashboard.history_size`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sequence number of the newest snapshot (0 before the first).
    pub fn latest_seq(&self) -> u64 {
        *self.latest.borrow()
    }

    /// Clients streaming `/api/v1/events` now.
    pub fn clients(&self) -> usize {
        self.clients.load(Ordering::Acquire)
    }

    /// Clients dropped so far because they read too slowly.
    pub fn dropped_clients(&self) -> u64 {
        self.dropped.load(Ordering::Acquire)
    }

    /// Sequence number of the oldest snapshot kept.
    fn oldest_seq(&self) -> u64 {
        self.ring.lock().map(|r| r.first_seq).unwrap_or(u64::MAX)
    }

    /// Serialises and appends one snapshot, evicting the oldest beyond the capacity.
    fn push(&self, build: impl FnOnce(u64) -> Vec<u8>) {
        let seq = {
            let Ok(mut ring) = self.ring.lock() else {
                return;
            };
            let seq = ring.first_seq + ring.frames.len() as u64;
            let data = build(seq);
            let mut frame = Vec::with_capacity(data.len() + 40);
            frame.extend_from_slice(format!("id: {seq}\nevent: snapshot\ndata: ").as_bytes());
            frame.extend_from_slice(&data);
            frame.extend_from_slice(b"\n\n");
            ring.frames.push_back(Bytes::from(frame));
            while ring.frames.len() > self.capacity {
                ring.frames.pop_front();
                ring.first_seq += 1;
            }
            seq
        };
        self.latest.send_replace(seq);
    }

    fn lookup(&self, seq: u64) -> Lookup {
        let Ok(ring) = self.ring.lock() else {
            return Lookup::Evicted;
        };
        if seq < ring.first_seq {
            return Lookup::Evicted;
        }
        match ring.frames.get((seq - ring.first_seq) as usize) {
            Some(frame) => Lookup::Frame(frame.clone()),
            None => Lookup::NotYet,
        }
    }

    fn note_dropped(&self, kill: &CancellationToken) {
        self.dropped.fetch_add(1, Ordering::AcqRel);
        kill.cancel();
    }
}

/// Takes one snapshot now, then one every interval, until `shutdown`.
pub(crate) async fn run_sampler(
    hub: Arc<EventHub>,
    control: Arc<dyn Control>,
    readiness: Readiness,
    checks: CheckCache,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(hub.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let stats = control.stats();
        let reports = checks.borrow().clone().unwrap_or_default();
        let paused = stats.get("paused").and_then(Value::as_bool) == Some(true);
        let config_error = stats.get("config_error").and_then(Value::as_str);
        let (state, reason) = run_state(&readiness, &reports, paused, config_error);
        hub.push(|seq| {
            let snapshot = Snapshot {
                seq,
                timestamp: Timestamp::now(),
                state,
                reason: &reason,
                checks: reports
                    .iter()
                    .filter(|c| c.status != CheckStatus::Healthy)
                    .map(|c| FailingCheck {
                        name: c.name,
                        status: c.status,
                        message: &c.message,
                    })
                    .collect(),
                stats: &stats,
            };
            serde_json::to_vec(&snapshot).unwrap_or_else(|_| b"{}".to_vec())
        });
    }
}

/// Whether a client whose next snapshot is `cursor` is too slow: its next snapshot
/// left the ring [`LAG_LIMIT`] snapshots ago, or, once it was sent the history it
/// connected to (`cursor > start`), more than [`LAG_LIMIT`] snapshots wait for it.
fn too_slow(cursor: u64, start: u64, latest: u64, oldest: u64) -> bool {
    cursor.saturating_add(LAG_LIMIT) < oldest
        || (cursor > start && latest.saturating_add(1).saturating_sub(cursor) > LAG_LIMIT)
}

/// Counts a client in, and out when its stream is dropped.
struct ClientGuard {
    hub: Arc<EventHub>,
    gone: CancellationToken,
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.hub.clients.fetch_sub(1, Ordering::AcqRel);
        self.gone.cancel();
    }
}

struct Cursor {
    hub: Arc<EventHub>,
    next: u64,
    shared: Arc<AtomicU64>,
    latest: watch::Receiver<u64>,
    shutdown: CancellationToken,
    kill: CancellationToken,
    _guard: ClientGuard,
}

/// The frames of one client: the history from the oldest snapshot kept, then each
/// new one; ends when the server stops or the client is dropped. `kill` closes the
/// client's connection (the watchdog cancels it when the client is too slow).
/// `None` when [`MAX_EVENT_STREAMS`] streams are open.
pub(crate) fn subscribe(
    hub: &Arc<EventHub>,
    shutdown: CancellationToken,
    kill: CancellationToken,
) -> Option<impl futures_util::Stream<Item = Bytes> + Send + 'static> {
    hub.clients
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_EVENT_STREAMS).then_some(n + 1)
        })
        .ok()?;
    let gone = CancellationToken::new();
    let latest = hub.latest.subscribe();
    let start = *latest.borrow();
    let next = hub.oldest_seq().min(start.saturating_add(1)).max(1);
    let shared = Arc::new(AtomicU64::new(next));
    tokio::spawn(watchdog(
        Arc::clone(hub),
        start,
        Arc::clone(&shared),
        hub.latest.subscribe(),
        gone.clone(),
        shutdown.clone(),
        kill.clone(),
    ));
    let cursor = Cursor {
        hub: Arc::clone(hub),
        next,
        shared,
        latest,
        shutdown,
        kill,
        _guard: ClientGuard {
            hub: Arc::clone(hub),
            gone,
        },
    };
    Some(futures_util::stream::unfold(cursor, |mut c| async move {
        loop {
            match c.hub.lookup(c.next) {
                Lookup::Frame(frame) => {
                    c.next += 1;
                    c.shared.store(c.next, Ordering::Release);
                    return Some((frame, c));
                }
                // Left the ring before it was sent: go on from the oldest kept (the
                // watchdog drops a client that keeps falling behind).
                Lookup::Evicted => c.next = c.hub.oldest_seq(),
                Lookup::NotYet => {
                    tokio::select! {
                        changed = c.latest.changed() => if changed.is_err() { return None },
                        () = c.shutdown.cancelled() => return None,
                        () = c.kill.cancelled() => return None,
                    }
                }
            }
        }
    }))
}

/// Drops a client that reads too slowly, even one whose stream is no longer polled
/// (its socket full): checks its cursor at every new snapshot.
async fn watchdog(
    hub: Arc<EventHub>,
    start: u64,
    cursor: Arc<AtomicU64>,
    mut latest: watch::Receiver<u64>,
    gone: CancellationToken,
    shutdown: CancellationToken,
    kill: CancellationToken,
) {
    loop {
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return },
            () = gone.cancelled() => return,
            () = shutdown.cancelled() => {
                // The stream ends at shutdown; a client too stuck to take its end
                // is closed rather than holding the listener's close grace.
                if tokio::time::timeout(SHUTDOWN_GRACE, gone.cancelled()).await.is_err() {
                    kill.cancel();
                }
                return;
            }
            () = kill.cancelled() => return,
        }
        let newest = *latest.borrow_and_update();
        if too_slow(
            cursor.load(Ordering::Acquire),
            start,
            newest,
            hub.oldest_seq(),
        ) {
            tracing::info!(
                lag = newest.saturating_sub(cursor.load(Ordering::Acquire)),
                "events client dropped: it reads too slowly"
            );
            hub.note_dropped(&kill);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(name: &'static str, status: CheckStatus, message: &str) -> CheckReport {
        CheckReport {
            name,
            status,
            message: message.to_owned(),
            last_checked: Timestamp::now(),
            duration_ms: 0,
            gates_readiness: false,
        }
    }

    #[test]
    fn state_badge_order() {
        let readiness = Readiness::new();
        assert_eq!(
            run_state(&readiness, &[], false, None).0,
            RunState::Starting
        );
        readiness.mark_ready();
        assert_eq!(
            run_state(&readiness, &[], false, None).0,
            RunState::Crawling
        );
        assert_eq!(run_state(&readiness, &[], true, None).0, RunState::Paused);
        // A refused reload shows over paused, with the reason.
        let (state, reason) = run_state(&readiness, &[], true, Some("spyder.yaml: bad"));
        assert_eq!(state, RunState::ConfigError);
        assert_eq!(reason, "reload refused: spyder.yaml: bad");
        assert_eq!(
            serde_json::to_value(RunState::ConfigError).expect("json"),
            "config_error"
        );
        let stalled = [report("progress", CheckStatus::Degraded, "no progress")];
        assert_eq!(
            run_state(&readiness, &stalled, false, None),
            (RunState::Stalled, "progress: no progress".to_owned())
        );
        let ingest = [report("ingest", CheckStatus::Degraded, "ingest failing")];
        assert_eq!(
            run_state(&readiness, &ingest, false, None),
            (RunState::Degraded, "ingest: ingest failing".to_owned())
        );
        assert_eq!(
            run_state(&readiness, &ingest, true, None).0,
            RunState::Paused
        );
        let down = [report("redis", CheckStatus::Unhealthy, "")];
        assert_eq!(
            run_state(&readiness, &down, true, None),
            (RunState::Degraded, "redis: unhealthy".to_owned())
        );
        readiness.begin_shutdown();
        assert_eq!(
            run_state(&readiness, &down, true, None).0,
            RunState::Draining
        );
    }

    #[test]
    fn ring_is_bounded_and_numbered() {
        let hub = EventHub::new(3, DEFAULT_EVENTS_INTERVAL);
        for _ in 0..5 {
            hub.push(|seq| format!("{{\"seq\":{seq}}}").into_bytes());
        }
        assert_eq!(hub.len(), 3);
        assert_eq!(hub.latest_seq(), 5);
        assert_eq!(hub.oldest_seq(), 3);
        assert!(matches!(hub.lookup(2), Lookup::Evicted));
        assert!(matches!(hub.lookup(6), Lookup::NotYet));
        match hub.lookup(4) {
            Lookup::Frame(frame) => {
                assert_eq!(&frame[..], b"id: 4\nevent: snapshot\ndata: {\"seq\":4}\n\n");
            }
            _ => panic!("seq 4 is kept"),
        }
    }

    #[test]
    fn slow_clients() {
        // In its history: only falling LAG_LIMIT beyond the ring drops it.
        assert!(!too_slow(1, 100, 100, 1));
        assert!(!too_slow(1, 100, 100, 1 + LAG_LIMIT));
        assert!(too_slow(1, 100, 100, 2 + LAG_LIMIT));
        // Live: at most LAG_LIMIT unsent snapshots.
        assert!(!too_slow(101, 100, 100 + LAG_LIMIT, 1));
        assert!(too_slow(101, 100, 101 + LAG_LIMIT, 1));
    }
}

//! The bounded memory queue of file mode: input first, discoveries behind it.

use std::collections::VecDeque;
use std::fmt;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use spyder_model::{HostName, telemetry};
use tokio::sync::Notify;

/// Where a queued host came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The domains file or stdin.
    Input,
    /// A discovery of continuous mode (SPEC §3.10).
    Discovered,
    /// A submission through the REST API.
    Api,
}

/// The queue no longer takes input: the input was closed, or the queue was stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("queue closed")]
pub struct Closed;

/// Why a non-blocking push was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// That side of the queue is at capacity.
    #[error("queue full")]
    Full,
    /// The queue was stopped, or it is done (input closed, nothing pending or held).
    #[error("queue closed")]
    Closed,
}

/// How many hosts wait and how many are being worked on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueDepth {
    /// File input and API submissions waiting.
    pub input: usize,
    /// Discoveries waiting.
    pub discovered: usize,
    /// Leases handed out and not yet released.
    pub held: usize,
}

/// The bounded memory queue of file mode (SPEC §1, §3.10). Cloning gives another
/// handle to the same queue.
///
/// Two sides: the input side (file lines and API submissions, bounded; the reader
/// waits when it is full) and the discovery side (bounded, non-blocking), served only
/// when no input item waits. [`MemoryQueue::next`] hands out [`Lease`]s; the queue is
/// done once the input is closed, both sides are empty and no lease is outstanding,
/// since a running task may still discover more.
#[derive(Clone)]
pub struct MemoryQueue {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes `next()` callers: an item arrived, or the queue finished.
    work: Notify,
    /// Wakes `push_input()` callers: room on the input side, or the queue stopped.
    space: Notify,
    input_capacity: usize,
    discovery_capacity: usize,
}

#[derive(Default)]
struct State {
    input: VecDeque<(HostName, Source)>,
    discovered: VecDeque<HostName>,
    held: usize,
    input_closed: bool,
    stopped: bool,
}

impl State {
    /// Nothing more will ever come out of `next()`.
    fn finished(&self) -> bool {
        self.stopped
            || (self.input_closed
                && self.held == 0
                && self.input.is_empty()
                && self.discovered.is_empty())
    }

    fn depth(&self) -> QueueDepth {
        QueueDepth {
            input: self.input.len(),
            discovered: self.discovered.len(),
            held: self.held,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock; if one did, the state is still
        // a consistent set of queues and counters.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryQueue")
            .field("depth", &self.depth())
            .field("input_capacity", &self.shared.input_capacity)
            .field("discovery_capacity", &self.shared.discovery_capacity)
            .finish()
    }
}

impl MemoryQueue {
    /// A queue holding up to `input_capacity` waiting input items and
    /// `discovery_capacity` waiting discoveries (SPEC: 100,000). Zero counts as one.
    pub fn new(input_capacity: usize, discovery_capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                work: Notify::new(),
                space: Notify::new(),
                input_capacity: input_capacity.max(1),
                discovery_capacity: discovery_capacity.max(1),
            }),
        }
    }

    /// Queues a host read from the input, waiting while the input side is full.
    /// Fails once the input was closed or the queue stopped.
    pub async fn push_input(&self, host: HostName) -> Result<(), Closed> {
        loop {
            let mut space = pin!(self.shared.space.notified());
            space.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if state.stopped || state.input_closed {
                    return Err(Closed);
                }
                if state.input.len() < self.shared.input_capacity {
                    state.input.push_back((host, Source::Input));
                    drop(state);
                    self.shared.work.notify_one();
                    return Ok(());
                }
            }
            space.await;
        }
    }

    /// Queues a discovery behind the input, without waiting.
    pub fn try_push_discovered(&self, host: HostName) -> Result<(), PushError> {
        let mut state = self.shared.lock();
        if state.finished() {
            return Err(PushError::Closed);
        }
        if state.discovered.len() >= self.shared.discovery_capacity {
            return Err(PushError::Full);
        }
        state.discovered.push_back(host);
        drop(state);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Queues an API submission on the input side, without waiting. Accepted after the
    /// input was closed, as long as the queue is not done or stopped.
    pub fn try_push_api(&self, host: HostName) -> Result<(), PushError> {
        let mut state = self.shared.lock();
        if state.finished() {
            return Err(PushError::Closed);
        }
        if state.input.len() >= self.shared.input_capacity {
            return Err(PushError::Full);
        }
        state.input.push_back((host, Source::Api));
        drop(state);
        self.shared.work.notify_one();
        Ok(())
    }

    /// Marks the end of the input: the reader reached EOF (or gave up).
    pub fn close_input(&self) {
        let mut state = self.shared.lock();
        state.input_closed = true;
        let finished = state.finished();
        drop(state);
        if finished {
            self.shared.work.notify_waiters();
        }
    }

    /// The next host to crawl: input first, then discoveries. Waits while nothing is
    /// pending but more may come; `None` once the queue is done or stopped.
    ///
    /// Cancel-safe: a cancelled call takes nothing.
    pub async fn next(&self) -> Option<Lease> {
        loop {
            let mut work = pin!(self.shared.work.notified());
            work.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if state.stopped {
                    return None;
                }
                let taken = match state.input.pop_front() {
                    Some(item) => {
                        self.shared.space.notify_one();
                        Some(item)
                    }
                    None => state
                        .discovered
                        .pop_front()
                        .map(|host| (host, Source::Discovered)),
                };
                if let Some((host, source)) = taken {
                    state.held += 1;
                    let more = !state.input.is_empty() || !state.discovered.is_empty();
                    let held = state.held;
                    drop(state);
                    if more {
                        // Pass the turn on, in case the wake-up meant for this item
                        // went to a caller that took another one.
                        self.shared.work.notify_one();
                    }
                    telemetry::queue_held().set(held as f64);
                    return Some(Lease {
                        host,
                        source,
                        shared: Arc::clone(&self.shared),
                    });
                }
                if state.finished() {
                    drop(state);
                    self.shared.work.notify_waiters();
                    return None;
                }
            }
            work.await;
        }
    }

    /// Shutdown: `next()` returns `None` at once, from now on, and `push_input` fails.
    /// Items still waiting stay until [`MemoryQueue::drain`] takes them.
    pub fn stop(&self) {
        self.shared.lock().stopped = true;
        self.shared.work.notify_waiters();
        self.shared.space.notify_waiters();
    }

    /// Takes every waiting host, input side first; used at shutdown to report what was
    /// never crawled.
    pub fn drain(&self) -> Vec<HostName> {
        let mut state = self.shared.lock();
        let input = std::mem::take(&mut state.input);
        let discovered = std::mem::take(&mut state.discovered);
        drop(state);
        self.shared.space.notify_waiters();
        input
            .into_iter()
            .map(|(host, _)| host)
            .chain(discovered)
            .collect()
    }

    /// Waiting and held counts.
    pub fn depth(&self) -> QueueDepth {
        self.shared.lock().depth()
    }
}

/// One host handed out by [`MemoryQueue::next`]. While it lives the queue is not done;
/// dropping it, or [`Lease::ack`], releases the hold.
pub struct Lease {
    /// The host to crawl.
    pub host: HostName,
    /// Where it came from.
    pub source: Source,
    shared: Arc<Shared>,
}

impl Lease {
    /// Releases the hold: the host's work is finished (its records are safe).
    pub fn ack(self) {}
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("host", &self.host)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut state = self.shared.lock();
        state.held = state.held.saturating_sub(1);
        let held = state.held;
        let finished = state.finished();
        drop(state);
        telemetry::queue_held().set(held as f64);
        if finished {
            self.shared.work.notify_waiters();
        }
    }
}

//! One lookup on the wire: tries, retries and server rotation for one question
//! (SPEC §3.7), each try waiting for its server's open-query slot and listening to
//! the lookup's earlier tries.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};

use super::transport::{Question, UdpTry};
use super::{
    Answer, DnsError, DnsSettings, FlightClock, Inner, Key, MAX_RETRIES, QUEUE_CHECK, cache, lock,
};
use spyder_model::HostName;

impl Inner {
    /// Tries, retries and server rotation for one question. The answer comes with
    /// how long it may be cached.
    ///
    /// A lookup nobody waits for any more stops before its next try, so lookups
    /// abandoned at a task deadline do not hold a server's open-query slots.
    pub(super) async fn lookup(
        &self,
        name: &HostName,
        key: &Key,
        id: u64,
        clock: &FlightClock,
        s: &DnsSettings,
    ) -> Result<(Answer, Option<Duration>), DnsError> {
        if s.servers.is_empty() {
            return Err(DnsError::NoServers);
        }
        let ask = Ask {
            name,
            key,
            id,
            clock,
            s,
            question: Question::new(name.as_str(), key.1)?,
            tries: s.retries.min(MAX_RETRIES) as usize + 1,
        };
        let mut last = DnsError::Timeout;
        let mut timeouts: HashMap<SocketAddr, u32> = HashMap::new();
        // Tries that timed out but may still be answered: a late reply to any of them
        // ends the lookup as well as the reply to the newest try does.
        let mut open: Vec<UdpTry> = Vec::new();
        // The open-query slot of the latest try's server. A retry to the same server
        // keeps it: the lookup is one open query until it ends. (Re-queued behind
        // every newer lookup, a retry for a lost datagram waited out its caller's
        // deadline when thousands of tasks resolved at once.)
        let mut slot: Option<(SocketAddr, tokio::sync::OwnedSemaphorePermit)> = None;
        // Past the configured tries, a lookup whose tries all timed out tries again
        // (up to MAX_RETRIES in all) while a caller's deadline is ahead: at 1 % loss
        // each way, three tries lose a name once in ~125,000 lookups, which a 10,000
        // domain crawl met about every third run.
        for attempt in 0..ask.tries.max(MAX_RETRIES as usize + 1) {
            let deadline_ahead = clock
                .listen_until()
                .is_some_and(|until| until > tokio::time::Instant::now());
            if attempt >= ask.tries && !(deadline_ahead && matches!(last, DnsError::Timeout)) {
                break;
            }
            let server = s.servers[attempt % s.servers.len()];
            if self.abandoned(key, id) {
                return Err(DnsError::Cancelled);
            }
            if slot.as_ref().is_none_or(|(held, _)| *held != server) {
                drop(slot.take());
                match self.wait_for_slot(&ask, server, &mut open).await? {
                    SlotOutcome::Answered(answer) => return Ok(answer),
                    SlotOutcome::Slot(permit) => slot = Some((server, permit)),
                }
            }
            let server_timeouts = timeouts.get(&server).copied().unwrap_or(0);
            let try_timeout = self.try_timeout(&ask, attempt, server, server_timeouts);
            let deadline = tokio::time::Instant::now() + try_timeout;
            match tokio::time::timeout_at(deadline, self.transport.send_udp(server, &ask.question))
                .await
            {
                Ok(Ok(sent)) => open.push(sent),
                Ok(Err(e)) => {
                    tracing::debug!(%name, rtype = ?key.1, %server, attempt, error = %e, "dns: send failed");
                    last = e;
                    continue;
                }
                Err(_) => {
                    last = DnsError::Timeout;
                    continue;
                }
            }
            match self
                .wait_for_reply(&ask, attempt, server, deadline, &mut open)
                .await
            {
                TryEnd::Answered(answer) => return Ok(answer),
                TryEnd::Cancelled => return Err(DnsError::Cancelled),
                TryEnd::Failed(e) => last = e,
                TryEnd::TimedOut => {
                    *timeouts.entry(server).or_default() += 1;
                    last = DnsError::Timeout;
                }
            }
        }
        Err(last)
    }

    /// Waits for an open-query slot of `server`, listening to the lookup's earlier
    /// tries meanwhile (a late answer ends the lookup) and checking now and then
    /// that someone still waits for it.
    async fn wait_for_slot(
        &self,
        ask: &Ask<'_>,
        server: SocketAddr,
        open: &mut Vec<UdpTry>,
    ) -> Result<SlotOutcome, DnsError> {
        let limit = self.limit(server, ask.s.max_inflight);
        let queued = std::time::Instant::now();
        let waiting = ask.clock.waiting();
        // One acquire for the whole wait, so the query keeps its place in the
        // server's FIFO queue while it checks its callers now and then and
        // listens to its earlier tries.
        let acquire = limit.acquire_owned();
        tokio::pin!(acquire);
        let mut check =
            tokio::time::interval_at(tokio::time::Instant::now() + QUEUE_CHECK, QUEUE_CHECK);
        let permit = loop {
            tokio::select! {
                biased;
                permit = &mut acquire => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return Err(DnsError::Cancelled),
                },
                (i, reply) = first_reply(open) => {
                    let done = open.remove(i);
                    match self.settle(done, reply, &ask.question, ask.s).await {
                        Ok(answer) => return Ok(SlotOutcome::Answered(answer)),
                        // The next try's outcome is what the lookup reports.
                        Err(e) => tracing::debug!(name = %ask.name, rtype = ?ask.key.1, error = %e, "dns: late try failed"),
                    }
                }
                _ = check.tick() => {
                    if self.abandoned(ask.key, ask.id) {
                        return Err(DnsError::Cancelled);
                    }
                }
            }
        };
        drop(waiting);
        spyder_model::telemetry::dns_queue_wait().record(queued.elapsed().as_secs_f64());
        Ok(SlotOutcome::Slot(permit))
    }

    /// How long try `attempt` waits for its reply. The configured last try, and
    /// every try after it, waits the whole query_timeout (the very last listens on
    /// until the caller's deadline): the adaptive tries recover lost datagrams
    /// quickly, a server slowed by load gets the patience the caller's DNS phase
    /// gives it, and a server slower than the adaptive estimate is not sent a retry
    /// every estimate.
    fn try_timeout(
        &self,
        ask: &Ask<'_>,
        attempt: usize,
        server: SocketAddr,
        server_timeouts: u32,
    ) -> Duration {
        if attempt + 1 >= ask.tries {
            return ask.s.query_timeout;
        }
        lock(&self.rtt)
            .get(&server)
            .copied()
            .unwrap_or_default()
            .try_timeout(server_timeouts, ask.s.query_timeout)
    }

    /// Waits for the reply to try `attempt` (or to an earlier one) until `deadline`;
    /// a failed reply to an earlier try is noted and the wait goes on. The last try
    /// listens on while its callers' own deadline allows: an answer slowed past
    /// query_timeout by a loaded server (or by this client's own CPU) still resolves
    /// the name.
    async fn wait_for_reply(
        &self,
        ask: &Ask<'_>,
        attempt: usize,
        server: SocketAddr,
        mut deadline: tokio::time::Instant,
        open: &mut Vec<UdpTry>,
    ) -> TryEnd {
        let (name, rtype) = (ask.name, ask.key.1);
        loop {
            let waited = tokio::time::timeout_at(deadline, first_reply(open))
                .await
                .ok()
                .or_else(|| ready_reply(open));
            let Some((i, reply)) = waited else {
                let later = ask
                    .clock
                    .listen_until()
                    .filter(|until| *until > tokio::time::Instant::now());
                let another =
                    attempt + 1 < ask.tries || (later.is_some() && attempt < MAX_RETRIES as usize);
                if !another && let Some(later) = later {
                    if self.abandoned(ask.key, ask.id) {
                        return TryEnd::Cancelled;
                    }
                    deadline = later.min(tokio::time::Instant::now() + QUEUE_CHECK);
                    continue;
                }
                spyder_model::telemetry::dns_try_timeouts().increment(1);
                self.try_timeouts.fetch_add(1, Ordering::Relaxed);
                self.note_try(server, true);
                tracing::debug!(%name, ?rtype, %server, attempt, "dns: try timed out");
                return TryEnd::TimedOut;
            };
            // `remove` keeps the order, so the newest try stays last.
            let was_newest = i + 1 == open.len();
            let done = open.remove(i);
            self.note_try(done.server(), false);
            match self.settle(done, reply, &ask.question, ask.s).await {
                Ok(answer) => return TryEnd::Answered(answer),
                Err(e) => {
                    tracing::debug!(%name, ?rtype, %server, attempt, error = %e, "dns: try failed");
                    if was_newest {
                        return TryEnd::Failed(e);
                    }
                }
            }
        }
    }

    /// What one answered try means for its lookup: the answer and its cache lifetime,
    /// or the error to try the next server on. A truncated reply is asked again over
    /// TCP of the same server.
    async fn settle(
        &self,
        done: UdpTry,
        reply: Result<Message, DnsError>,
        question: &Question,
        s: &DnsSettings,
    ) -> Result<(Answer, Option<Duration>), DnsError> {
        let server = done.server();
        let mut msg = reply?;
        // Each try has its own ID, so the sample is never ambiguous (Karn's problem).
        self.observe_rtt(server, done.sent().elapsed());
        drop(done);
        if msg.metadata.truncation {
            let sent = std::time::Instant::now();
            msg = self
                .transport
                .tcp(server, question, s.query_timeout)
                .await?;
            spyder_model::telemetry::dns_query_duration().record(sent.elapsed().as_secs_f64());
        }
        match msg.metadata.response_code {
            ResponseCode::NoError | ResponseCode::NXDomain => {
                let ttl = cache::cache_ttl(&msg, question.rtype());
                Ok((Answer::from_message(msg), ttl))
            }
            ResponseCode::ServFail => Err(DnsError::ServFail),
            ResponseCode::Refused => Err(DnsError::Refused),
            other => Err(DnsError::Rcode(other)),
        }
    }
}

/// One question being looked up, and what its tries share.
struct Ask<'a> {
    name: &'a HostName,
    key: &'a Key,
    id: u64,
    clock: &'a FlightClock,
    s: &'a DnsSettings,
    question: Question,
    /// The configured tries (`retries` + 1, at most MAX_RETRIES + 1).
    tries: usize,
}

/// How a wait for a server's open-query slot ended.
enum SlotOutcome {
    /// The slot: the next try may go out.
    Slot(tokio::sync::OwnedSemaphorePermit),
    /// A late reply to an earlier try answered the lookup meanwhile.
    Answered((Answer, Option<Duration>)),
}

/// How one try ended.
enum TryEnd {
    /// The lookup's answer.
    Answered((Answer, Option<Duration>)),
    /// Nobody waits for the lookup any more.
    Cancelled,
    /// The newest try's reply was an error (SERVFAIL, REFUSED, …).
    Failed(DnsError),
    /// No usable reply within the try's time.
    TimedOut,
}

/// The first reply to any of `open` tries, with its index; never ready when none is
/// open.
async fn first_reply(open: &mut [UdpTry]) -> (usize, Result<Message, DnsError>) {
    if open.is_empty() {
        return std::future::pending().await;
    }
    let (reply, i, _) =
        futures_util::future::select_all(open.iter_mut().map(|t| Box::pin(t.reply()))).await;
    (i, reply)
}

/// A reply already received for any of `open` (newest first), read from the socket
/// if the receive task has not got to it yet.
fn ready_reply(open: &mut [UdpTry]) -> Option<(usize, Result<Message, DnsError>)> {
    let newest_first = (0..open.len()).rev();
    newest_first
        .into_iter()
        .find_map(|i| open.get_mut(i)?.ready_reply().map(|msg| (i, Ok(msg))))
}

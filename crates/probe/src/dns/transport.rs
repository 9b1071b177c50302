//! The wire: UDP sockets multiplexed by query ID, and TCP for truncated replies.
//!
//! Each UDP socket has one receive task. A datagram is handed to the query waiting
//! for it only if its sender, ID and question match that query exactly; everything
//! else (late, spoofed, mismatched or undecodable replies) is dropped and counted.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{DNSClass, Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{OnceCell, oneshot};
use tokio::task::JoinHandle;

use super::{DnsError, lock};

/// EDNS0 UDP payload size we advertise (the DNS flag day 2020 value).
pub(crate) const EDNS_PAYLOAD: u16 = 1232;
/// Receive buffer: the largest datagram, so oversized replies are read whole.
const RECV_BUFFER: usize = 65_535;
/// Kernel buffers asked for on every UDP socket (capped by `net.core.rmem_max` and
/// `wmem_max`): a burst of thousands of replies must wait in the socket, not be
/// dropped before the receive task reads it.
const SOCKET_BUFFER: usize = 4 << 20;
/// Attempts at drawing an ID not already pending for a server on one socket.
const ID_DRAWS: usize = 64;

/// Replies dropped, shared by every receive task of a client.
#[derive(Debug, Default)]
pub(crate) struct DropCounter(AtomicU64);

impl DropCounter {
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn drop_one(&self, why: &'static str) {
        self.0.fetch_add(1, Ordering::Relaxed);
        spyder_model::telemetry::dns_dropped_replies().increment(1);
        tracing::trace!(reason = why, "dns: reply dropped");
    }
}

/// The question a reply must repeat: normalised name, type and class.
#[derive(Clone, Debug)]
pub struct Question {
    name: Name,
    key: String,
    rtype: RecordType,
}

impl Question {
    /// The question for an already-normalised name.
    pub fn new(name: &str, rtype: RecordType) -> Result<Self, DnsError> {
        let mut n = Name::from_ascii(name).map_err(|e| DnsError::InvalidName(e.to_string()))?;
        n.set_fqdn(true);
        Ok(Self {
            name: n,
            key: name_key(name),
            rtype,
        })
    }

    /// The record type asked for.
    pub fn rtype(&self) -> RecordType {
        self.rtype
    }

    /// True when `msg` is a response carrying exactly this question.
    pub fn answered_by(&self, msg: &Message) -> bool {
        msg.metadata.message_type == MessageType::Response
            && msg.queries.len() == 1
            && msg.queries[0].query_type() == self.rtype
            && msg.queries[0].query_class() == DNSClass::IN
            && name_key(&msg.queries[0].name().to_ascii()) == self.key
    }

    /// The wire form of this question as query `id`: RD set, EDNS0 payload 1232.
    pub fn encode(&self, id: u16) -> Result<Vec<u8>, DnsError> {
        let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
        msg.metadata.recursion_desired = true;
        let mut q = Query::query(self.name.clone(), self.rtype);
        q.set_query_class(DNSClass::IN);
        msg.add_query(q);
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD).set_version(0);
        msg.set_edns(edns);
        msg.to_vec()
            .map_err(|e| DnsError::InvalidName(format!("cannot encode query: {e}")))
    }
}

/// Lower-case, no trailing dot.
fn name_key(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// A query waiting for its reply on one socket.
struct Pending {
    token: u64,
    question: Question,
    tx: oneshot::Sender<Message>,
}

type PendingMap = Mutex<HashMap<(SocketAddr, u16), Pending>>;

/// One UDP socket and its receive task.
struct Mux {
    socket: Arc<UdpSocket>,
    pending: Arc<PendingMap>,
    dropped: Arc<DropCounter>,
    task: JoinHandle<()>,
}

impl Drop for Mux {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Mux {
    fn new(socket: UdpSocket, dropped: Arc<DropCounter>) -> Self {
        let socket = Arc::new(socket);
        let pending: Arc<PendingMap> = Arc::default();
        let task = tokio::spawn(receive(
            Arc::clone(&socket),
            Arc::clone(&pending),
            Arc::clone(&dropped),
        ));
        Self {
            socket,
            pending,
            dropped,
            task,
        }
    }
}

/// Removes a pending query when its try ends, however it ends.
struct PendingGuard {
    pending: Arc<PendingMap>,
    key: (SocketAddr, u16),
    token: u64,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.pending);
        if map.get(&self.key).is_some_and(|p| p.token == self.token) {
            map.remove(&self.key);
        }
    }
}

/// One UDP try on the wire: its reply is accepted for as long as this value lives,
/// so a lookup can keep listening to an earlier try after sending the next one.
pub(crate) struct UdpTry {
    server: SocketAddr,
    sent: Instant,
    rx: oneshot::Receiver<Message>,
    socket: Arc<UdpSocket>,
    dropped: Arc<DropCounter>,
    guard: PendingGuard,
}

impl UdpTry {
    /// The server this try was sent to.
    pub(crate) fn server(&self) -> SocketAddr {
        self.server
    }

    /// When the query left.
    pub(crate) fn sent(&self) -> Instant {
        self.sent
    }

    /// The matching reply; an error only if the socket's receive task has ended.
    /// Cancel-safe: a try polled and put aside can be polled again.
    pub(crate) async fn reply(&mut self) -> Result<Message, DnsError> {
        (&mut self.rx)
            .await
            .map_err(|_| DnsError::Io(Arc::new(io::Error::other("receive task ended"))))
    }

    /// The reply if it is already here, reading the datagrams that wait in the socket
    /// first: on a loaded machine the receive task may not have run since they came,
    /// and a try whose answer sits in the kernel buffer has not timed out.
    pub(crate) fn ready_reply(&mut self) -> Option<Message> {
        let mut buf = vec![0u8; RECV_BUFFER];
        for _ in 0..DRAIN_MAX {
            match self.socket.try_recv_from(&mut buf) {
                Ok((len, from)) => {
                    dispatch(&buf[..len], from, &self.guard.pending, &self.dropped);
                }
                Err(_) => break,
            }
        }
        self.rx.try_recv().ok()
    }
}

/// Most datagrams one [`UdpTry::ready_reply`] reads from the socket.
const DRAIN_MAX: usize = 4096;

/// Reads datagrams until aborted, handing each to the query it answers.
async fn receive(socket: Arc<UdpSocket>, pending: Arc<PendingMap>, dropped: Arc<DropCounter>) {
    let mut buf = vec![0u8; RECV_BUFFER];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((len, from)) => dispatch(&buf[..len], from, &pending, &dropped),
            Err(e) => {
                tracing::debug!(error = %e, "dns: udp receive failed");
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Hands one datagram to the query it answers: same sender, ID and question; any
/// other is dropped and counted.
fn dispatch(datagram: &[u8], from: SocketAddr, pending: &PendingMap, dropped: &DropCounter) {
    let Ok(msg) = Message::from_vec(datagram) else {
        dropped.drop_one("undecodable");
        return;
    };
    let key = (from, msg.metadata.id);
    let waiter = {
        let mut map = lock(pending);
        match map.get(&key) {
            Some(p) if p.question.answered_by(&msg) => map.remove(&key),
            Some(_) => {
                drop(map);
                dropped.drop_one("question mismatch");
                return;
            }
            None => None,
        }
    };
    match waiter {
        Some(p) => {
            if p.tx.send(msg).is_err() {
                dropped.drop_one("late");
            }
        }
        None => dropped.drop_one("no pending query"),
    }
}

/// Receive buffer below which a burst of answers may be dropped by the kernel
/// before the receive task reads them: said once, at WARN.
const SMALL_RECV_BUFFER: usize = 1 << 20;

/// Asks for [`SOCKET_BUFFER`] each way; a kernel that gives less still works, and
/// a receive buffer capped small (`net.core.rmem_max`) is logged once.
fn grow_buffers<S: std::os::fd::AsFd>(socket: &S) {
    static SMALL_WARNED: std::sync::Once = std::sync::Once::new();
    let sock = socket2::SockRef::from(socket);
    if let Err(e) = sock.set_recv_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(error = %e, "dns: cannot grow the receive buffer");
    }
    if let Ok(granted) = sock.recv_buffer_size()
        && granted < SMALL_RECV_BUFFER
    {
        SMALL_WARNED.call_once(|| {
            tracing::warn!(
                granted_bytes = granted,
                asked_bytes = SOCKET_BUFFER,
                "dns: the kernel caps UDP receive buffers (net.core.rmem_max); under load answers may be dropped before they are read: raise net.core.rmem_max to {SOCKET_BUFFER} or dns.sockets"
            );
        });
    }
    if let Err(e) = sock.set_send_buffer_size(SOCKET_BUFFER) {
        tracing::debug!(error = %e, "dns: cannot grow the send buffer");
    }
}

/// The client's sockets.
pub(crate) struct Transport {
    v4: Vec<Mux>,
    v6: OnceCell<Vec<Mux>>,
    sockets: usize,
    next: AtomicUsize,
    tokens: AtomicU64,
    dropped: Arc<DropCounter>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("sockets", &self.sockets)
            .field("ipv6", &self.v6.initialized())
            .field("dropped", &self.dropped.get())
            .finish()
    }
}

impl Transport {
    /// Binds `sockets` IPv4 UDP sockets; must run inside a tokio runtime.
    pub(crate) fn new(sockets: usize, dropped: Arc<DropCounter>) -> io::Result<Self> {
        let handle = tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
        let _entered = handle.enter();
        let v4 = (0..sockets)
            .map(|_| {
                let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
                s.set_nonblocking(true)?;
                grow_buffers(&s);
                Ok(Mux::new(UdpSocket::from_std(s)?, Arc::clone(&dropped)))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self {
            v4,
            v6: OnceCell::new(),
            sockets,
            next: AtomicUsize::new(0),
            tokens: AtomicU64::new(0),
            dropped,
        })
    }

    async fn mux_for(&self, server: SocketAddr) -> Result<&Mux, DnsError> {
        let set = if server.is_ipv4() {
            &self.v4
        } else {
            self.v6
                .get_or_try_init(|| async {
                    let mut v = Vec::with_capacity(self.sockets);
                    for _ in 0..self.sockets {
                        let s = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await?;
                        grow_buffers(&s);
                        v.push(Mux::new(s, Arc::clone(&self.dropped)));
                    }
                    Ok::<_, io::Error>(v)
                })
                .await?
        };
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        set.get(i % set.len().max(1))
            .ok_or_else(|| DnsError::Io(Arc::new(io::Error::other("no UDP socket"))))
    }

    /// Sends one UDP try of `question` to `server` under a fresh ID; the reply is
    /// awaited on the returned [`UdpTry`].
    pub(crate) async fn send_udp(
        &self,
        server: SocketAddr,
        question: &Question,
    ) -> Result<UdpTry, DnsError> {
        let mux = self.mux_for(server).await?;
        let token = self.tokens.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let id = {
            let mut map = lock(&mux.pending);
            let id = (0..ID_DRAWS)
                .map(|_| rand::random::<u16>())
                .find(|id| !map.contains_key(&(server, *id)))
                .ok_or_else(|| DnsError::Io(Arc::new(io::Error::other("no free query ID"))))?;
            map.insert(
                (server, id),
                Pending {
                    token,
                    question: question.clone(),
                    tx,
                },
            );
            id
        };
        let guard = PendingGuard {
            pending: Arc::clone(&mux.pending),
            key: (server, id),
            token,
        };
        let bytes = question.encode(id)?;
        mux.socket.send_to(&bytes, server).await?;
        Ok(UdpTry {
            server,
            sent: Instant::now(),
            rx,
            socket: Arc::clone(&mux.socket),
            dropped: Arc::clone(&mux.dropped),
            guard,
        })
    }

    /// One TCP try (RFC 7766 framing) on a fresh connection, within `timeout`.
    pub(crate) async fn tcp(
        &self,
        server: SocketAddr,
        question: &Question,
        timeout: Duration,
    ) -> Result<Message, DnsError> {
        let exchange = async {
            let id = rand::random::<u16>();
            let bytes = question.encode(id)?;
            let len = u16::try_from(bytes.len())
                .map_err(|_| DnsError::InvalidName("query too long".into()))?;
            let mut stream = TcpStream::connect(server).await?;
            let mut framed = Vec::with_capacity(bytes.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&bytes);
            stream.write_all(&framed).await?;
            loop {
                let n = usize::from(stream.read_u16().await?);
                let mut buf = vec![0u8; n];
                stream.read_exact(&mut buf).await?;
                match Message::from_vec(&buf) {
                    Ok(msg) if msg.metadata.id == id && question.answered_by(&msg) => {
                        return Ok(msg);
                    }
                    Ok(_) => self.dropped.drop_one("tcp mismatch"),
                    Err(_) => self.dropped.drop_one("tcp undecodable"),
                }
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(DnsError::Timeout))
    }
}

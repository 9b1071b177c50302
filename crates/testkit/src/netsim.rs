//! Internet conditions for loopback TCP, in userspace and without root: a round-trip
//! delay line and connect-level black holes.
//!
//! # Round trips: [`Delayed`]
//!
//! This kernel has no `netem`, and a qdisc would need root anyway. Instead the server
//! side of every accepted connection reads through a delay line: each chunk the client
//! sent becomes readable by the server only `rtt` (plus a seeded jitter draw in
//! `0..=jitter`) after the server's socket received it. Writes pass straight through.
//! Every exchange the client starts — a TLS handshake flight, a robots.txt request, a
//! `GET /` — therefore costs the client one round trip before the answer can start,
//! as on the internet, where the request travels half a round trip and the answer the
//! other half. Chunks keep their order (a chunk is never due before the one before it).
//!
//! A TCP connect to loopback completes at once, where on the internet it costs a round
//! trip (SYN, SYN-ACK). The delay line compensates on the first read: nothing is
//! readable before two round trips after the connection was accepted, so connect plus
//! the first exchange costs the client two round trips in all, as on the internet —
//! but the client sees the whole cost in its first exchange (the TLS handshake, or the
//! first request over plain HTTP) and a connect time of about zero.
//!
//! Memory is bounded: at most [`MAX_QUEUED`] bytes wait in one connection's line;
//! beyond that the server stops reading its socket and TCP flow control slows the
//! client, as a full receive window would.
//!
//! # Black holes: [`ConnectHole`]
//!
//! A filtered address on the internet drops the SYN: no SYN-ACK, no RST, and the
//! client's connect waits for its own timeout. The usual way to model that is an
//! nftables `drop` rule, which needs root and, to leave the machine alone, a private
//! network namespace (`unshare --net`: that works on this machine as root, but tests
//! run unprivileged). [`ConnectHole`] gets the same result from the client's side with
//! plain sockets: a listener on the address and port with a backlog of 0, whose accept
//! queue the hole fills itself with one connection it never accepts. Linux then drops
//! every further SYN to that listener (`tcp_conn_request`: a full accept queue means
//! `LISTENOVERFLOWS` and drop, SYN cookies or not). The client sees exactly what a
//! drop rule shows it: its SYN and every retransmission go unanswered, the connect
//! neither succeeds nor is refused, and it ends only by the client's timeout. An
//! address with nothing bound still answers RST (connection refused), so refused and
//! filtered stay distinguishable, as they are on the internet.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Bytes at most waiting in one connection's delay line before the server stops
/// reading its socket.
pub const MAX_QUEUED: usize = 64 * 1024;
/// Bytes read from the socket at once into the delay line.
const READ_CHUNK: usize = 8 * 1024;
/// Bound on the hole's own connect that fills its accept queue.
const FILL_LIMIT: Duration = Duration::from_secs(5);

/// What the path between client and server adds to TCP: a round trip to every
/// exchange, with jitter. The default adds nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpConditions {
    /// Added before the server can read each chunk the client sent (the whole round
    /// trip, applied once per exchange).
    pub rtt: Duration,
    /// Up to this much more per chunk, drawn uniformly (never less than `rtt`).
    pub jitter: Duration,
    /// Seed of the jitter draws (mixed with each connection's number).
    pub seed: u64,
}

impl TcpConditions {
    /// Whether these conditions add anything.
    pub fn is_zero(&self) -> bool {
        self.rtt.is_zero() && self.jitter.is_zero()
    }
}

/// A TCP stream whose reads come through a delay line (see the module docs). With
/// zero conditions it is the bare stream.
#[derive(Debug)]
pub struct Delayed {
    tcp: TcpStream,
    line: Option<Box<DelayLine>>,
}

/// What is waiting to become readable.
#[derive(Debug)]
enum Chunk {
    Data(Bytes),
    /// The client closed its side: readable as end-of-file once due.
    Eof,
    /// The socket failed: returned once due.
    Error(io::Error),
}

#[derive(Debug)]
struct DelayLine {
    rtt: Duration,
    jitter_nanos: u64,
    rng: u64,
    /// Nothing is due before this: the connect's round trip (see the module docs).
    not_before: Instant,
    /// When the last queued chunk is due (chunks keep their order).
    last_due: Instant,
    queue: VecDeque<(Instant, Chunk)>,
    queued_bytes: usize,
    /// EOF or an error is queued: the socket is not read any more.
    ended: bool,
    timer: Pin<Box<Sleep>>,
}

impl Delayed {
    /// Wraps a just-accepted connection; `conn` (unique per connection) varies the
    /// jitter draws between connections.
    pub fn new(tcp: TcpStream, conditions: TcpConditions, conn: u64) -> Self {
        if conditions.is_zero() {
            return Self { tcp, line: None };
        }
        let now = Instant::now();
        let not_before = now + conditions.rtt.saturating_mul(2);
        let line = DelayLine {
            rtt: conditions.rtt,
            jitter_nanos: u64::try_from(conditions.jitter.as_nanos()).unwrap_or(u64::MAX),
            rng: conditions.seed ^ conn.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            not_before,
            last_due: not_before,
            queue: VecDeque::new(),
            queued_bytes: 0,
            ended: false,
            timer: Box::pin(tokio::time::sleep_until(not_before)),
        };
        Self {
            tcp,
            line: Some(Box::new(line)),
        }
    }

    /// The underlying socket.
    pub fn get_ref(&self) -> &TcpStream {
        &self.tcp
    }
}

impl DelayLine {
    /// The next jitter draw (splitmix64: eight bytes of state per connection).
    fn jitter(&mut self) -> Duration {
        if self.jitter_nanos == 0 {
            return Duration::ZERO;
        }
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Duration::from_nanos(z % self.jitter_nanos.saturating_add(1))
    }

    fn push(&mut self, chunk: Chunk) {
        let arrived = Instant::now();
        let delay = self.rtt.saturating_add(self.jitter());
        let due = (arrived + delay).max(self.last_due).max(self.not_before);
        self.last_due = due;
        if let Chunk::Data(bytes) = &chunk {
            self.queued_bytes = self.queued_bytes.saturating_add(bytes.len());
        }
        self.queue.push_back((due, chunk));
    }

    /// Moves what the socket has into the line, until it has nothing more, the line
    /// is full, or the stream ended. Registers the waker with the socket when it stops
    /// for lack of data.
    fn fill(&mut self, tcp: &mut TcpStream, cx: &mut Context<'_>) {
        let mut scratch = [0u8; READ_CHUNK];
        while !self.ended && self.queued_bytes < MAX_QUEUED {
            let mut read = ReadBuf::new(&mut scratch);
            match Pin::new(&mut *tcp).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) if read.filled().is_empty() => {
                    self.ended = true;
                    self.push(Chunk::Eof);
                }
                Poll::Ready(Ok(())) => {
                    let data = Bytes::copy_from_slice(read.filled());
                    self.push(Chunk::Data(data));
                }
                Poll::Ready(Err(e)) => {
                    self.ended = true;
                    self.push(Chunk::Error(e));
                }
                Poll::Pending => break,
            }
        }
    }

    /// Hands out what is due; pending (with the timer armed) while the front waits.
    fn deliver(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            let Some((due, _)) = self.queue.front() else {
                // Nothing queued: end-of-file after an end, else wait for the socket
                // (`fill` registered the waker).
                return if self.ended {
                    Poll::Ready(Ok(()))
                } else {
                    Poll::Pending
                };
            };
            let due = *due;
            if due > Instant::now() {
                self.timer.as_mut().reset(due);
                ready!(self.timer.as_mut().poll(cx));
                continue;
            }
            let Some((_, chunk)) = self.queue.front_mut() else {
                continue;
            };
            match chunk {
                Chunk::Data(bytes) => {
                    let n = bytes.len().min(buf.remaining());
                    buf.put_slice(&bytes[..n]);
                    bytes.advance(n);
                    self.queued_bytes = self.queued_bytes.saturating_sub(n);
                    if bytes.is_empty() {
                        self.queue.pop_front();
                    }
                }
                // Stays queued: every later read sees end-of-file too.
                Chunk::Eof => {}
                Chunk::Error(_) => {
                    if let Some((_, Chunk::Error(e))) = self.queue.pop_front() {
                        return Poll::Ready(Err(e));
                    }
                }
            }
            return Poll::Ready(Ok(()));
        }
    }
}

impl AsyncRead for Delayed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let Some(line) = this.line.as_mut() else {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        };
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        line.fill(&mut this.tcp, cx);
        line.deliver(cx, buf)
    }
}

impl AsyncWrite for Delayed {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A connect-level black hole on one address and port (see the module docs): every
/// connect from now on goes unanswered until the hole is dropped.
#[derive(Debug)]
pub struct ConnectHole {
    /// The listener with a full accept queue (never accepted from).
    _listener: socket2::Socket,
    /// The one connection that fills the queue.
    _filler: TcpStream,
    addr: SocketAddr,
}

impl ConnectHole {
    /// A listening socket on `ip:port` (port 0 picks one) with a backlog of 0, not
    /// yet filled: [`ConnectHole::fill`] makes it a hole.
    pub fn bind(ip: Ipv4Addr, port: u16) -> io::Result<socket2::Socket> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.bind(&SocketAddr::from((ip, port)).into())?;
        socket.listen(0)?;
        Ok(socket)
    }

    /// Fills the accept queue of `listener` (from [`ConnectHole::bind`]) with one
    /// connection of its own.
    pub async fn fill(listener: socket2::Socket) -> io::Result<Self> {
        let addr = listener
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("hole listener has no IP address"))?;
        let filler = tokio::time::timeout(FILL_LIMIT, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("cannot fill the accept queue of {addr}"),
                )
            })??;
        Ok(Self {
            _listener: listener,
            _filler: filler,
            addr,
        })
    }

    /// A hole on `ip:port` (port 0 picks one).
    pub async fn open(ip: Ipv4Addr, port: u16) -> io::Result<Self> {
        Self::fill(Self::bind(ip, port)?).await
    }

    /// Where connects go unanswered.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// A tokio listener on `ip:port` with a backlog for real service.
pub(crate) fn listener(ip: Ipv4Addr, port: u16, backlog: u32) -> io::Result<TcpListener> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((ip, port)))?;
    socket.listen(backlog)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An echo server whose reads go through a delay line with `conditions`.
    async fn delayed_echo(ip: Ipv4Addr, conditions: TcpConditions) -> SocketAddr {
        let listener = listener(ip, 0, 16).unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut conn = 0;
            while let Ok((tcp, _)) = listener.accept().await {
                conn += 1;
                tokio::spawn(async move {
                    let mut io = Delayed::new(tcp, conditions, conn);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = io.shutdown().await;
                });
            }
        });
        addr
    }

    /// One write and the echo of it read back; returns how long the exchange took.
    async fn exchange(s: &mut TcpStream, data: &[u8]) -> Duration {
        let started = Instant::now();
        s.write_all(data).await.unwrap();
        let mut back = vec![0u8; data.len()];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut back))
            .await
            .expect("echo within the bound")
            .unwrap();
        assert_eq!(back, data);
        started.elapsed()
    }

    #[tokio::test]
    async fn every_exchange_costs_a_round_trip_and_the_first_two() {
        let rtt = Duration::from_millis(60);
        let conditions = TcpConditions {
            rtt,
            jitter: Duration::from_millis(20),
            seed: 7,
        };
        let addr = delayed_echo(Ipv4Addr::new(127, 0, 0, 1), conditions).await;
        let connect_started = Instant::now();
        let mut s = TcpStream::connect(addr).await.unwrap();
        exchange(&mut s, b"hello").await;
        assert!(
            connect_started.elapsed() >= rtt * 2,
            "connect and first exchange took {:?}",
            connect_started.elapsed()
        );
        for i in 0..3u8 {
            let took = exchange(&mut s, &[i; 300]).await;
            assert!(took >= rtt, "exchange {i} took {took:?}");
        }
        // A large transfer arrives whole and in order through the bounded line.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = s.into_split();
        let sent = big.clone();
        let writer = tokio::spawn(async move { w.write_all(&sent).await.map(|()| w) });
        let mut back = vec![0u8; big.len()];
        tokio::time::timeout(Duration::from_secs(20), r.read_exact(&mut back))
            .await
            .expect("echo within the bound")
            .unwrap();
        assert!(back == big, "bytes changed or reordered in the line");
        let mut w = writer.await.unwrap().unwrap();
        w.shutdown().await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), r.read_to_end(&mut rest))
            .await
            .expect("the server sees the end through the line")
            .unwrap();
        assert!(rest.is_empty());
    }

    #[tokio::test]
    async fn zero_conditions_pass_through() {
        let addr = delayed_echo(Ipv4Addr::new(127, 0, 0, 1), TcpConditions::default()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        exchange(&mut s, b"plain").await;
    }

    #[tokio::test]
    async fn jitter_stays_within_its_bound_and_follows_the_seed() {
        let draws = |seed| {
            let mut line = DelayLine {
                rtt: Duration::ZERO,
                jitter_nanos: 1_000,
                rng: seed,
                not_before: Instant::now(),
                last_due: Instant::now(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                ended: false,
                timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            };
            (0..100).map(|_| line.jitter()).collect::<Vec<_>>()
        };
        let a = draws(1);
        assert_eq!(a, draws(1));
        assert_ne!(a, draws(2));
        assert!(a.iter().all(|d| *d <= Duration::from_nanos(1_000)));
        assert!(a.iter().any(|d| *d > Duration::from_nanos(500)));
    }

    /// Whether a connect to `addr` is still pending after `wait`: neither accepted
    /// nor refused.
    async fn connect_hangs(addr: SocketAddr, wait: Duration) -> bool {
        tokio::time::timeout(wait, TcpStream::connect(addr))
            .await
            .is_err()
    }

    #[tokio::test]
    async fn a_hole_never_answers_a_connect_and_an_empty_port_refuses() {
        let ip = Ipv4Addr::new(127, 0, 0, 151);
        let hole = ConnectHole::open(ip, 0).await.unwrap();
        assert!(
            connect_hangs(hole.addr(), Duration::from_millis(1500)).await,
            "a connect to the hole completed or was refused"
        );
        // Several at once, as a crawler would: none gets through.
        let attempts: Vec<_> = (0..4)
            .map(|_| tokio::spawn(connect_hangs(hole.addr(), Duration::from_millis(1500))))
            .collect();
        for a in attempts {
            assert!(a.await.unwrap(), "a concurrent connect got an answer");
        }
        // The same address, a port where nothing listens: refused at once.
        let free = std::net::TcpListener::bind((ip, 0)).unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let refused = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect((ip, port)))
            .await
            .expect("a refused connect ends at once");
        assert_eq!(
            refused.expect_err("refused").kind(),
            io::ErrorKind::ConnectionRefused
        );
    }
}

//! One accepted connection: the accept loop, the per-address counters a
//! connection holds, and the HTTPS port's modes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::http::http_loop;
use super::server::{Address, Shared};
use super::site::TlsMode;
use crate::netsim::Delayed;

/// Send buffer requested for every accepted socket (the kernel doubles it), so that
/// [`WebServer::bytes_sent`] reflects what the client really read.
const SEND_BUFFER: u32 = 4 * 1024;
/// First pause of a listener after a failed `accept`, and the most it doubles to.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(200);
/// The TLS alert a TLS 1.0-only server sends to a TLS 1.2+ ClientHello:
/// fatal `protocol_version`, in a TLS 1.0 record.
pub(super) const LEGACY_ALERT: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];
/// What a [`TlsMode::Garbage`] host answers on its HTTPS port.
pub(super) const GARBAGE: &[u8] = b"SSH-2.0-OpenSSH_9.6 definitely not TLS\r\n";

/// Accepts connections for one address on one port until the server is dropped.
/// Connection tasks live in a local set, so aborting this loop ends them too.
pub(super) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    address: Arc<Address>,
    tls: bool,
) {
    let mut conns = JoinSet::new();
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    shared.accepted.fetch_add(1, Ordering::SeqCst);
                    let guard = OpenGuard::new(&shared, &address);
                    conns.spawn(serve_connection(tcp, Arc::clone(&shared), Arc::clone(&address), tls, guard));
                }
                Err(e) => {
                    // Typically descriptor exhaustion: back off instead of spinning
                    // (doubling: thousands of listeners retrying every 10 ms would
                    // keep the server's core busy failing).
                    shared.accept_errors.fetch_add(1, Ordering::SeqCst);
                    tracing::debug!(error = %e, ip = %address.ip, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = backoff.saturating_mul(2).min(ACCEPT_BACKOFF_MAX);
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Counts one open connection, in total and for its address, for as long as it lives
/// (also when its task is aborted).
#[derive(Debug)]
struct OpenGuard {
    shared: Arc<Shared>,
    address: Arc<Address>,
}

impl OpenGuard {
    fn new(shared: &Arc<Shared>, address: &Arc<Address>) -> Self {
        shared.open.fetch_add(1, Ordering::SeqCst);
        let now = address
            .open
            .fetch_add(1, Ordering::SeqCst)
            .saturating_add(1);
        address.peak.fetch_max(now, Ordering::SeqCst);
        Self {
            shared: Arc::clone(shared),
            address: Arc::clone(address),
        }
    }
}

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::SeqCst);
        self.address.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether one connection is being served now (see
/// [`WebServer::peak_serving_connections`]); ends the span when dropped.
#[derive(Debug)]
pub(super) struct Serving {
    address: Arc<Address>,
    on: bool,
}

impl Serving {
    /// Starts the span at accept.
    fn new(address: &Arc<Address>) -> Self {
        let mut serving = Self {
            address: Arc::clone(address),
            on: false,
        };
        serving.start();
        serving
    }

    /// A request arrived (or the connection was accepted): serving until answered.
    pub(super) fn start(&mut self) {
        if !std::mem::replace(&mut self.on, true) {
            let now = self
                .address
                .serving
                .fetch_add(1, Ordering::SeqCst)
                .saturating_add(1);
            self.address.serving_peak.fetch_max(now, Ordering::SeqCst);
        }
    }

    /// The answer is written: the client may close at any moment from now.
    pub(super) fn stop(&mut self) {
        if std::mem::take(&mut self.on) {
            self.address.serving.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A connection (through its delay line) that adds every byte it writes to its
/// address's counter, and knows whether it is being served.
#[derive(Debug)]
struct Counted {
    io: Delayed,
    address: Arc<Address>,
    serving: Serving,
    /// End the serving span at the next byte written: the TLS handshake's first
    /// flight, which the client waits for. After it the client may reject the
    /// certificate and close, and the server would see that only through the delay
    /// line; the span starts again with the first request.
    stop_on_write: bool,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.address
                .bytes_sent
                .fetch_add(*n as u64, Ordering::Relaxed);
            if *n > 0 && std::mem::take(&mut self.stop_on_write) {
                self.serving.stop();
            }
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A byte stream the HTTP loop runs on, with access to its TCP socket (for RST) and
/// its serving span.
pub(super) trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    fn tcp(&self) -> &TcpStream;
    fn serving(&mut self) -> &mut Serving;
}

impl Transport for Counted {
    fn tcp(&self) -> &TcpStream {
        self.io.get_ref()
    }

    fn serving(&mut self) -> &mut Serving {
        &mut self.serving
    }
}

impl Transport for tokio_rustls::server::TlsStream<Counted> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0.io.get_ref()
    }

    fn serving(&mut self) -> &mut Serving {
        &mut self.get_mut().0.serving
    }
}

/// What the HTTP loop knows about its connection.
#[derive(Debug)]
pub(super) struct ConnInfo {
    pub(super) id: u64,
    pub(super) tls: bool,
    pub(super) sni: Option<String>,
}

/// Serves one accepted connection according to its address's mode.
async fn serve_connection(
    tcp: TcpStream,
    shared: Arc<Shared>,
    address: Arc<Address>,
    tls: bool,
    _guard: OpenGuard,
) {
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(SEND_BUFFER as usize);
    let id = shared.next_conn.fetch_add(1, Ordering::Relaxed);
    let mut io = Counted {
        io: Delayed::new(tcp, shared.network, id),
        address: Arc::clone(&address),
        serving: Serving::new(&address),
        stop_on_write: tls,
    };
    if !tls {
        // The `Host` header picks the site, request by request.
        let info = ConnInfo { id, tls, sni: None };
        http_loop(&mut io, &shared, &address, None, &info).await;
        return;
    }
    match &address.first().tls {
        TlsMode::Rustls(config) if address.sites.len() == 1 => {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::clone(config));
            let Ok(mut stream) = acceptor.accept(io).await else {
                return;
            };
            shared.handshakes.fetch_add(1, Ordering::SeqCst);
            let sni = stream.get_ref().1.server_name().map(str::to_owned);
            let info = ConnInfo { id, tls, sni };
            http_loop(&mut stream, &shared, &address, Some(address.first()), &info).await;
        }
        TlsMode::Rustls(_) => {
            // A shared address: the ClientHello's SNI picks the site and its
            // certificate (every site on a shared address serves rustls TLS).
            let hello = rustls::server::Acceptor::default();
            let Ok(start) = tokio_rustls::LazyConfigAcceptor::new(hello, io).await else {
                return;
            };
            let site = address.site_for(start.client_hello().server_name());
            let TlsMode::Rustls(config) = &site.tls else {
                return;
            };
            let Ok(mut stream) = start.into_stream(Arc::clone(config)).await else {
                return;
            };
            shared.handshakes.fetch_add(1, Ordering::SeqCst);
            let sni = stream.get_ref().1.server_name().map(str::to_owned);
            let info = ConnInfo { id, tls, sni };
            http_loop(&mut stream, &shared, &address, Some(site), &info).await;
        }
        TlsMode::LegacyOnly => {
            let mut header = [0u8; 5];
            if io.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            let mut hello = vec![0u8; len];
            if io.read_exact(&mut hello).await.is_err() {
                return;
            }
            if io.write_all(&LEGACY_ALERT).await.is_ok() {
                let _ = io.shutdown().await;
                drain(&mut io).await;
            }
        }
        TlsMode::Garbage => {
            let mut first = [0u8; 1];
            if matches!(io.read(&mut first).await, Ok(n) if n > 0)
                && io.write_all(GARBAGE).await.is_ok()
            {
                let _ = io.shutdown().await;
                drain(&mut io).await;
            }
        }
        // Off has no listener, so never gets here.
        TlsMode::Hang | TlsMode::Off => drain(&mut io).await,
    }
}

/// Reads and discards until the peer closes or the connection fails.
pub(super) async fn drain<S: AsyncRead + Unpin>(io: &mut S) {
    let mut scratch = [0u8; 4096];
    while matches!(io.read(&mut scratch).await, Ok(n) if n > 0) {}
}

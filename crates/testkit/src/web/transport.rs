//! What the HTTP loop runs on: a connection's byte stream ([`Transport`], over
//! [`Counted`], which counts the bytes written per address), its serving span
//! ([`Serving`]) and what it knows about the connection ([`ConnInfo`]).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::shared::Address;
use crate::netsim::Delayed;

/// Whether one connection is being served now (see
/// [`WebServer::peak_serving_connections`]); ends the span when dropped.
#[derive(Debug)]
pub(super) struct Serving {
    address: Arc<Address>,
    on: bool,
}

impl Serving {
    /// Starts the span at accept.
    pub(super) fn new(address: &Arc<Address>) -> Self {
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
pub(super) struct Counted {
    io: Delayed,
    address: Arc<Address>,
    serving: Serving,
    /// End the serving span at the next byte written: the TLS handshake's first
    /// flight, which the client waits for. After it the client may reject the
    /// certificate and close, and the server would see that only through the delay
    /// line; the span starts again with the first request.
    stop_on_write: bool,
}

impl Counted {
    /// `io` of a connection to `address`; a TLS connection ends its first serving
    /// span at its first byte written.
    pub(super) fn new(io: Delayed, address: &Arc<Address>, tls: bool) -> Self {
        Self {
            io,
            address: Arc::clone(address),
            serving: Serving::new(address),
            stop_on_write: tls,
        }
    }
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

/// Reads and discards until the peer closes or the connection fails.
pub(super) async fn drain<S: AsyncRead + Unpin>(io: &mut S) {
    let mut scratch = [0u8; 4096];
    while matches!(io.read(&mut scratch).await, Ok(n) if n > 0) {}
}

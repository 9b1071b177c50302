//! One accepted connection: the accept loop, the open-connection count it holds,
//! and the HTTPS port's modes; the HTTP loop then runs on its [`Transport`].
//!
//! [`Transport`]: super::transport::Transport

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::http::http_loop;
use super::shared::{Address, Shared};
use super::site::TlsMode;
use super::transport::{ConnInfo, Counted, drain};
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
    let mut io = Counted::new(Delayed::new(tcp, shared.network, id), &address, tls);
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

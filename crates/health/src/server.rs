//! The listener and the connection loop: [`OpsServer`] binds the ops address and
//! serves [`crate::OpsState`] (routing each request to `api`), with the health-check
//! runner, the dashboard's sampler and the metrics upkeep beside it.

use std::convert::Infallible;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::spawn_runner;
use crate::events::run_sampler;
use crate::state::{OpsState, Served};
use crate::{HealthError, MetricsHandle};

/// How often histogram samples are drained into buckets.
const METRICS_UPKEEP_INTERVAL: Duration = Duration::from_secs(5);
/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long open connections get to finish once serving stops.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Pause after a failed `accept` (e.g. out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bound ops listener: health endpoints, `/metrics` and the REST API on one port.
#[derive(Debug)]
pub struct OpsServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl OpsServer {
    /// Binds `addr` as `telemetry.metrics_addr` spells it: Go style `:9090` (all
    /// interfaces, IPv6 and IPv4), `127.0.0.1:0`, `[::1]:9090` or `host:port`.
    /// A busy port is a [`HealthError::Bind`] naming the address.
    pub async fn bind(addr: &str) -> Result<OpsServer, HealthError> {
        let invalid = |reason: &str| HealthError::InvalidAddress {
            addr: addr.to_owned(),
            reason: reason.to_owned(),
        };
        let bind_error = |source| HealthError::Bind {
            addr: addr.to_owned(),
            source,
        };
        let listener = if let Some(port) = addr.strip_prefix(':') {
            let port: u16 = port
                .parse()
                .map_err(|_| invalid("expected :port, host:port or ip:port"))?;
            match TcpListener::bind((Ipv6Addr::UNSPECIFIED, port)).await {
                Ok(listener) => listener,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::AddrInUse | std::io::ErrorKind::PermissionDenied
                    ) =>
                {
                    return Err(bind_error(e));
                }
                // No IPv6 on this host: all IPv4 interfaces.
                Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
                    .await
                    .map_err(bind_error)?,
            }
        } else if let Ok(socket) = addr.parse::<SocketAddr>() {
            TcpListener::bind(socket).await.map_err(bind_error)?
        } else {
            let (host, port) = addr
                .rsplit_once(':')
                .ok_or_else(|| invalid("expected :port, host:port or ip:port"))?;
            let port: u16 = port.parse().map_err(|_| invalid("invalid port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.is_empty() {
                return Err(invalid("empty host"));
            }
            TcpListener::bind((host, port)).await.map_err(bind_error)?
        };
        let local_addr = listener.local_addr().map_err(bind_error)?;
        Ok(OpsServer {
            listener,
            local_addr,
        })
    }

    /// The address actually bound (the real port when `:0` was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled: runs the health checks in the background
    /// (one round at once, then every check interval), takes the dashboard's
    /// snapshots, drains metric histograms periodically, and answers every connection. On cancellation it stops
    /// accepting, lets open connections finish (at most 5 s) and returns.
    ///
    /// Cancel `shutdown` only at the very end of the process's shutdown: while
    /// stopping, `/ready` and the API answer 503 through [`crate::Readiness::begin_shutdown`].
    pub fn serve(self, state: OpsState, shutdown: CancellationToken) -> JoinHandle<()> {
        let (cache, runner) = spawn_runner(
            Arc::clone(&state.inner.checks),
            state.inner.check_interval,
            state.inner.check_timeout,
            shutdown.clone(),
        );
        let upkeep = state
            .inner
            .metrics
            .clone()
            .map(|handle| tokio::spawn(run_upkeep(handle, shutdown.clone())));
        let sampler = tokio::spawn(run_sampler(
            Arc::clone(&state.inner.events),
            Arc::clone(&state.inner.control),
            state.inner.readiness.clone(),
            cache.clone(),
            shutdown.clone(),
        ));
        let served = Arc::new(Served {
            state,
            checks: cache,
            shutdown: shutdown.clone(),
        });
        let listener = self.listener;
        tracing::info!(addr = %self.local_addr, "ops server listening");
        tokio::spawn(async move {
            accept_loop(listener, served, shutdown).await;
            let _ = runner.await;
            let _ = sampler.await;
            if let Some(upkeep) = upkeep {
                let _ = upkeep.await;
            }
        })
    }
}

async fn run_upkeep(handle: MetricsHandle, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(METRICS_UPKEEP_INTERVAL) => handle.run_upkeep(),
            () = shutdown.cancelled() => return,
        }
    }
}

async fn accept_loop(listener: TcpListener, served: Arc<Served>, shutdown: CancellationToken) {
    let connections = TaskTracker::new();
    // A permit per connection served: at the cap, nothing more is accepted until one
    // closes (the kernel queues the rest).
    let slots = Arc::new(Semaphore::new(served.state.inner.max_connections));
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = shutdown.cancelled() => break,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let connection =
                    serve_connection(stream, peer, Arc::clone(&served), shutdown.clone());
                connections.spawn(async move {
                    connection.await;
                    drop(slot);
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "ops server: accept failed");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(CLOSE_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::debug!("ops server: connections still open after the close grace");
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    served: Arc<Served>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    // Cancelled to close this connection at once: an events client too slow to read.
    let kill = CancellationToken::new();
    let service = service_fn({
        let kill = kill.clone();
        move |request| {
            let served = Arc::clone(&served);
            let kill = kill.clone();
            async move { Ok::<_, Infallible>(crate::api::handle(&served, request, peer, &kill).await) }
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "ops server: connection ended with an error");
            }
        }
        () = kill.cancelled() => {
            tracing::debug!(%peer, "ops server: connection closed (events client too slow)");
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            tokio::select! {
                _ = tokio::time::timeout(CLOSE_GRACE, connection) => {}
                () = kill.cancelled() => {}
            }
        }
    }
}

//! An ingest endpoint on loopback with scripted answers, for emitter and system tests.
//!
//! [`IngestServer`] accepts POSTs over plain HTTP or HTTPS (optionally requiring a
//! client certificate from a given CA), records every body with its content type, and
//! answers from a script: a sequence of [`Answer`]s consumed one per request, then a
//! default. It can hang requests until [`IngestServer::release`], and go down and come
//! back up on the same port. [`ClientCa`] issues the client certificates mTLS needs.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use spyder_testkit::ingest::{Answer, IngestOptions, IngestServer};
//! let ingest = IngestServer::start(IngestOptions::plain()).await?;
//! ingest.script([Answer::Status(500), Answer::Status(500)]); // then the default, 200
//! println!("POST to {}", ingest.url());
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::pki::IssuedCert;

/// The path [`IngestServer::url`] points at (any path is accepted).
pub const INGEST_PATH: &str = "/ingest";

/// How the server answers one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// This status, empty body.
    Status(u16),
    /// This status with `Retry-After: <seconds>`.
    RetryAfter {
        /// The status.
        status: u16,
        /// The `Retry-After` value.
        seconds: u64,
    },
    /// No answer until [`IngestServer::release`]; then 503.
    Hang,
}

/// One request the server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The request body, exactly as sent.
    pub body: Bytes,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The request target as sent (path and query).
    pub target: String,
    /// The status the server answered; `None` = hung (answered 503 after a release).
    pub answer: Option<u16>,
}

/// How to start an [`IngestServer`].
#[derive(Debug, Default)]
pub struct IngestOptions {
    tls: Option<TlsSetup>,
}

#[derive(Debug)]
struct TlsSetup {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<CertificateDer<'static>>,
}

impl IngestOptions {
    /// Plain HTTP.
    pub fn plain() -> Self {
        Self::default()
    }

    /// HTTPS with `server`'s certificate; issue it for `localhost`, the host of
    /// [`IngestServer::url`].
    pub fn https(server: &IssuedCert) -> Self {
        Self {
            tls: Some(TlsSetup {
                chain: server.chain.clone(),
                key: server.key.clone_key(),
                client_ca: None,
            }),
        }
    }

    /// Requires a client certificate issued by the CA whose root is `ca_root`
    /// (e.g. [`ClientCa::root_der`]). Only meaningful with [`IngestOptions::https`].
    pub fn require_client_cert(mut self, ca_root: CertificateDer<'static>) -> Self {
        if let Some(tls) = &mut self.tls {
            tls.client_ca = Some(ca_root);
        }
        self
    }
}

/// A scripted ingest endpoint on 127.0.0.1 and a random port.
#[derive(Debug)]
pub struct IngestServer {
    port: u16,
    tls: bool,
    state: Arc<State>,
    tls_config: Option<Arc<rustls::ServerConfig>>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct State {
    script: Mutex<Script>,
    received: Mutex<Vec<Received>>,
    /// Bumped by `release`; hung requests wait for a change.
    release: watch::Sender<u64>,
    tls_failures: AtomicU64,
}

#[derive(Debug)]
struct Script {
    queue: VecDeque<Answer>,
    default: Answer,
}

impl IngestServer {
    /// Binds 127.0.0.1 on a free port and starts answering 200 to every POST.
    pub async fn start(options: IngestOptions) -> io::Result<Self> {
        let tls_config = options.tls.map(server_config).transpose()?;
        let acceptor = tls_config.clone().map(TlsAcceptor::from);
        let listener = listen(0)?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(State {
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Answer::Status(200),
            }),
            received: Mutex::new(Vec::new()),
            release: watch::Sender::new(0),
            tls_failures: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), acceptor.clone()));
        Ok(Self {
            port,
            tls: tls_config.is_some(),
            state,
            tls_config,
            accept_task: Mutex::new(Some(task)),
        })
    }

    /// `http://127.0.0.1:<port>/ingest`, or `https://localhost:<port>/ingest` with TLS.
    pub fn url(&self) -> String {
        if self.tls {
            format!("https://localhost:{}{INGEST_PATH}", self.port)
        } else {
            format!("http://127.0.0.1:{}{INGEST_PATH}", self.port)
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Answers the next requests with `answers`, in order, then with the default.
    /// Replaces any answers still queued.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        let mut script = lock(&self.state.script);
        script.queue = answers.into_iter().collect();
    }

    /// The answer once the script is used up (initially 200).
    pub fn set_default(&self, answer: Answer) {
        lock(&self.state.script).default = answer;
    }

    /// Answers every hung request with 503 and makes the default 200 again.
    pub fn release(&self) {
        {
            let mut script = lock(&self.state.script);
            if script.default == Answer::Hang {
                script.default = Answer::Status(200);
            }
            script.queue.retain(|a| *a != Answer::Hang);
        }
        self.state
            .release
            .send_modify(|generation| *generation += 1);
    }

    /// Every request received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state.received).clone()
    }

    /// Every request body received so far, in arrival order.
    pub fn bodies(&self) -> Vec<Bytes> {
        lock(&self.state.received)
            .iter()
            .map(|r| r.body.clone())
            .collect()
    }

    /// The bodies that were answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Bytes> {
        lock(&self.state.received)
            .iter()
            .filter(|r| r.answer.is_some_and(|s| (200..300).contains(&s)))
            .map(|r| r.body.clone())
            .collect()
    }

    /// Requests received so far.
    pub fn request_count(&self) -> usize {
        lock(&self.state.received).len()
    }

    /// TLS handshakes that failed (e.g. a client without the required certificate).
    pub fn tls_failures(&self) -> u64 {
        self.state.tls_failures.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection: connections are refused until
    /// [`IngestServer::go_up`].
    pub async fn go_down(&self) {
        let task = lock(&self.accept_task).take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port.
    pub async fn go_up(&self) -> io::Result<()> {
        self.go_down().await;
        let listener = listen(self.port)?;
        let task = tokio::spawn(accept_loop(
            listener,
            Arc::clone(&self.state),
            self.tls_config.clone().map(TlsAcceptor::from),
        ));
        *lock(&self.accept_task) = Some(task);
        Ok(())
    }
}

impl Drop for IngestServer {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.accept_task).take() {
            task.abort();
        }
    }
}

/// A CA for client certificates (key usage `clientAuth`, which mTLS servers require).
#[derive(Debug)]
pub struct ClientCa {
    issuer: Issuer<'static, KeyPair>,
    root: CertificateDer<'static>,
    root_pem: String,
}

/// A client certificate and its key, as PEM (what `mtls.cert` and `mtls.key` name).
#[derive(Clone, Debug)]
pub struct ClientCert {
    /// The certificate, signed by the test CA.
    pub cert_pem: String,
    /// Its private key.
    pub key_pem: String,
}

impl ClientCa {
    /// A fresh root, "spyder testkit client CA".
    ///
    /// # Panics
    ///
    /// Never in practice: rcgen signs fixed, valid parameters.
    pub fn new() -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("ring generates P-256 keys");
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, "spyder testkit client CA");
        params.distinguished_name = name;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .expect("rcgen signs a CA certificate from fixed parameters");
        Self {
            root: cert.der().clone(),
            root_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The root certificate as DER, for [`IngestOptions::require_client_cert`].
    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.clone()
    }

    /// The root certificate as PEM.
    pub fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    /// A client certificate with subject CN `name`.
    ///
    /// # Panics
    ///
    /// Never in practice: rcgen signs fixed, valid parameters.
    pub fn issue(&self, name: &str) -> ClientCert {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("ring generates P-256 keys");
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        params.distinguished_name = dn;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("rcgen signs a leaf from valid parameters");
        ClientCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

impl Default for ClientCa {
    fn default() -> Self {
        Self::new()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn listen(port: u16) -> io::Result<TcpListener> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    socket.listen(128)
}

fn server_config(tls: TlsSetup) -> io::Result<Arc<rustls::ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let builder = match tls.client_ca {
        Some(root) => {
            let mut roots = RootCertStore::empty();
            roots.add(root).map_err(io::Error::other)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(io::Error::other)?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(tls.chain, tls.key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts until aborted; dropping it (abort) drops every connection with it.
async fn accept_loop(listener: TcpListener, state: Arc<State>, acceptor: Option<TlsAcceptor>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(serve(stream, Arc::clone(&state), acceptor.clone()));
                }
                Err(e) => tracing::debug!(error = %e, "ingest accept failed"),
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn serve(stream: TcpStream, state: Arc<State>, acceptor: Option<TlsAcceptor>) {
    let service = {
        let state = Arc::clone(&state);
        service_fn(move |request| handle(Arc::clone(&state), request))
    };
    let builder = http1::Builder::new();
    let served = match acceptor {
        Some(acceptor) => match acceptor.accept(stream).await {
            Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
            Err(e) => {
                state.tls_failures.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(error = %e, "ingest TLS handshake failed");
                return;
            }
        },
        None => {
            builder
                .serve_connection(TokioIo::new(stream), service)
                .await
        }
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, "ingest connection ended with an error");
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let content_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let authorization = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let target = request.uri().to_string();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(respond(400, None)),
    };
    let mut release = state.release.subscribe();
    let answer = {
        let mut script = lock(&state.script);
        let default = script.default;
        script.queue.pop_front().unwrap_or(default)
    };
    let status = match answer {
        Answer::Status(status) | Answer::RetryAfter { status, .. } => Some(status),
        Answer::Hang => None,
    };
    lock(&state.received).push(Received {
        body,
        content_type,
        authorization,
        target,
        answer: status,
    });
    Ok(match answer {
        Answer::Status(status) => respond(status, None),
        Answer::RetryAfter { status, seconds } => respond(status, Some(seconds)),
        Answer::Hang => {
            // Hold the request until a release (or until the server goes away).
            let _ = release.changed().await;
            respond(503, None)
        }
    })
}

fn respond(status: u16, retry_after: Option<u64>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some(seconds) = retry_after
        && let Ok(value) = seconds.to_string().parse()
    {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

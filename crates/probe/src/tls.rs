//! TLS connections that capture and verify the leaf certificate (SPEC §3.2).
//!
//! The handshake accepts any certificate, so a host with an expired, self-signed or
//! wrong-name certificate still yields its [`NodeCert`] and its pages. Trust is judged
//! separately, after the handshake: the peer chain is verified against the configured
//! roots (chain, name, time) and the outcome is recorded in `verified`/`verify_error`.
//! Handshake signatures are still checked by the crypto provider, so the connection
//! itself is sound: the peer does hold the key of the certificate it presents.
//!
//! Only TLS 1.2 and 1.3 are spoken (rustls with the `ring` provider). A legacy-only
//! peer fails with [`TlsError::ProtocolVersion`], which the caller answers with the
//! plain-HTTP fallback (SPEC §5 P-11).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, CipherSuite, DigitallySignedStruct, InvalidMessage,
    PeerIncompatible, RootCertStore, SignatureScheme,
};
use sha2::{Digest, Sha256};
use spyder_model::{HostName, NodeCert, Timestamp, VerifyError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use x509_parser::asn1_rs::Tag;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Name};

use crate::TlsRoots;

/// The ALPN protocol offered on every connection.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// The roots could not be loaded (SPEC §2.6 `crawling.tls_roots`).
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    /// A roots file could not be read.
    #[error("cannot read TLS roots file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// PEM text was malformed.
    #[error("invalid PEM in {origin}: {reason}")]
    Pem { origin: String, reason: String },
    /// PEM text held no `CERTIFICATE` section.
    #[error("no certificates in {origin}")]
    NoCertificates { origin: String },
    /// A certificate could not serve as a trust anchor.
    #[error("certificate #{index} in {origin} is not a usable root: {reason}")]
    BadRoot {
        origin: String,
        /// 1-based position in the PEM text.
        index: usize,
        reason: String,
    },
    /// The operating system store gave no usable certificate.
    #[error("no usable certificates in the system store{}", system_errors(.errors))]
    NoSystemRoots { errors: Vec<String> },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn system_errors(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// Why a TLS handshake failed. [`TlsError::reason`] is the `reason` label of
/// `spyder_tls_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The host cannot be sent as a TLS server name.
    #[error("{host:?} is not a valid TLS server name")]
    InvalidServerName { host: String },
    /// The peer speaks no TLS version we offer (TLS 1.2 and 1.3), e.g. a TLS 1.0-only host.
    #[error("peer does not support TLS 1.2 or 1.3: {0}")]
    ProtocolVersion(#[source] rustls::Error),
    /// The peer aborted the handshake with a fatal alert.
    #[error("peer sent alert {0:?}")]
    Alert(AlertDescription),
    /// The peer's bytes are not TLS records (e.g. a plain-HTTP answer).
    #[error("peer does not speak TLS: {0}")]
    NotTls(#[source] rustls::Error),
    /// The peer sent malformed or out-of-order TLS messages.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(#[source] rustls::Error),
    /// Any other TLS-level failure.
    #[error("tls: {0}")]
    Other(#[source] rustls::Error),
    /// The peer closed the connection before the handshake completed.
    #[error("connection closed during the handshake")]
    UnexpectedEof,
    /// The peer reset the connection.
    #[error("connection reset: {0}")]
    Reset(#[source] io::Error),
    /// Any other I/O failure.
    #[error("i/o: {0}")]
    Io(#[source] io::Error),
}

impl TlsError {
    /// A short, bounded label for metrics, e.g. `protocol_version` or `not_tls`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidServerName { .. } => "invalid_name",
            Self::ProtocolVersion(_) => "protocol_version",
            Self::Alert(AlertDescription::HandshakeFailure) => "handshake_failure",
            Self::Alert(AlertDescription::ProtocolVersion) => "protocol_version",
            Self::Alert(_) => "alert",
            Self::NotTls(_) => "not_tls",
            Self::PeerMisbehaved(_) => "peer_misbehaved",
            Self::Other(_) => "other",
            Self::UnexpectedEof => "unexpected_eof",
            Self::Reset(_) => "reset",
            Self::Io(_) => "io",
        }
    }

    /// Classifies an error from the tokio-rustls handshake future.
    fn from_io(err: io::Error) -> Self {
        let kind = err.kind();
        if err
            .get_ref()
            .is_some_and(|inner| inner.is::<rustls::Error>())
        {
            return match err.into_inner().map(|e| e.downcast::<rustls::Error>()) {
                Some(Ok(tls)) => Self::from_rustls(*tls),
                _ => Self::Io(io::Error::from(kind)),
            };
        }
        match kind {
            io::ErrorKind::UnexpectedEof => Self::UnexpectedEof,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Self::Reset(err),
            _ => Self::Io(err),
        }
    }

    fn from_rustls(err: rustls::Error) -> Self {
        match err {
            rustls::Error::AlertReceived(alert) => Self::Alert(alert),
            rustls::Error::PeerIncompatible(
                PeerIncompatible::ServerDoesNotSupportTls12Or13
                | PeerIncompatible::ServerTlsVersionIsDisabledByOurConfig,
            ) => Self::ProtocolVersion(err),
            rustls::Error::InvalidMessage(
                InvalidMessage::InvalidContentType
                | InvalidMessage::UnknownProtocolVersion
                | InvalidMessage::MessageTooLarge
                | InvalidMessage::InvalidEmptyPayload,
            ) => Self::NotTls(err),
            rustls::Error::InvalidMessage(_)
            | rustls::Error::PeerMisbehaved(_)
            | rustls::Error::InappropriateHandshakeMessage { .. }
            | rustls::Error::InappropriateMessage { .. } => Self::PeerMisbehaved(err),
            other => Self::Other(other),
        }
    }
}

/// Why a TLS connection attempt (TCP connect plus handshake, SPEC §1 step 6) failed.
/// [`TlsConnectError::reason`] is the `reason` label of `spyder_tls_errors_total`.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    /// `tls_timeout` ran out during the TCP connect or the handshake: a filtered port,
    /// or a host that accepts and never answers.
    #[error("no TLS session within {0:?}")]
    Timeout(Duration),
    /// Nothing listens on the port.
    #[error("connection refused: {0}")]
    Refused(#[source] io::Error),
    /// Any other TCP connect failure (no route, network unreachable, no socket...).
    #[error("tcp connect: {0}")]
    Connect(#[source] io::Error),
    /// The TCP connection was made and the handshake failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl TlsConnectError {
    /// A short, bounded label for metrics: `timeout`, `connect_refused`,
    /// `connect_error`, or the handshake's [`TlsError::reason`].
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            Self::Refused(_) => "connect_refused",
            Self::Connect(_) => "connect_error",
            Self::Tls(e) => e.reason(),
        }
    }

    /// Classifies a failed TCP connect ([`crate::http::dial`] reports its own
    /// deadline as `TimedOut`).
    fn from_connect(err: io::Error, budget: Duration) -> Self {
        match err.kind() {
            io::ErrorKind::TimedOut => Self::Timeout(budget),
            io::ErrorKind::ConnectionRefused => Self::Refused(err),
            _ => Self::Connect(err),
        }
    }
}

/// Opens TLS sessions and describes the peer's leaf certificate. Cheap to clone.
#[derive(Clone)]
pub struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
    verifier: Arc<WebPkiServerVerifier>,
    roots: usize,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Builds a connector whose certificate verification trusts `roots`.
    ///
    /// `Webpki` uses the Mozilla roots compiled in, `System` the operating system's
    /// store, `PemFile`/`Pem` one or more PEM `CERTIFICATE` sections (each must be a
    /// usable trust anchor; errors name the file or "inline PEM" and the reason).
    pub fn new(roots: &TlsRoots) -> Result<Self, TlsSetupError> {
        let store = load_roots(roots)?;
        let provider = Arc::new(crypto_provider());
        let count = store.len();
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
                .build()
                .map_err(|e| TlsSetupError::Config(e.to_string()))?;
        let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsSetupError::Config(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert { provider }))
            .with_no_client_auth();
        config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        // Every handshake must present (and so let us record) the server's current
        // certificate, not one remembered from an earlier session.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
            verifier,
            roots: count,
        })
    }

    /// The number of trust anchors verification uses.
    pub fn root_count(&self) -> usize {
        self.roots
    }

    /// Connects to `addr` and runs the TLS handshake for `host` ([`Self::handshake`]),
    /// both within `budget` (`crawling.tls_timeout`).
    ///
    /// This is the attempt the metrics describe: its wall time, TCP connect included,
    /// is recorded in `spyder_tls_handshake_duration_seconds` however it ends, and a
    /// failure counts once in `spyder_tls_errors_total{reason}` (a timed-out attempt as
    /// `timeout`, so filtered hosts are counted) and is logged at debug level. Waits
    /// for descriptors or ports before the connect ([`crate::http::dial`]) are
    /// neither timed nor charged to `budget`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        host: &HostName,
        budget: Duration,
    ) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<NodeCert>), TlsConnectError>
    {
        self.connect_wrapped(addr, host, budget, |tcp| tcp).await
    }

    /// [`Self::connect`], with the TCP stream passed through `wrap` before the
    /// handshake: the wrapper lives (and is dropped) with the connection, as the
    /// probe's per-address connection slot does.
    pub async fn connect_wrapped<S, W>(
        &self,
        addr: SocketAddr,
        host: &HostName,
        budget: Duration,
        wrap: W,
    ) -> Result<(tokio_rustls::client::TlsStream<S>, Option<NodeCert>), TlsConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
        W: FnOnce(TcpStream) -> S,
    {
        let (dialed, started) = crate::http::dial_timed(addr, budget).await;
        let result = match dialed {
            Err(e) => Err(TlsConnectError::from_connect(e, budget)),
            Ok(tcp) => {
                // The deadline is checked here, not by the caller, so that an attempt
                // cut short is still timed and counted.
                let handshake = self.handshake(wrap(tcp), host);
                match started.checked_add(budget) {
                    Some(deadline) => match tokio::time::timeout_at(deadline, handshake).await {
                        Ok(done) => done.map_err(TlsConnectError::from),
                        Err(_) => Err(TlsConnectError::Timeout(budget)),
                    },
                    None => handshake.await.map_err(TlsConnectError::from),
                }
            }
        };
        spyder_model::telemetry::tls_handshake_duration().record(started.elapsed().as_secs_f64());
        if let Err(err) = &result {
            spyder_model::telemetry::tls_errors(err.reason()).increment(1);
            tracing::debug!(%host, %addr, reason = err.reason(), error = %err, "tls connection failed");
        }
        result
    }

    /// Runs a full TLS handshake (no session resumption) over `io` with SNI `host` and
    /// ALPN `http/1.1`, accepting any certificate. Gives the session and the leaf's
    /// [`NodeCert`] (`None` when the leaf cannot be parsed, which does not fail the
    /// connection).
    ///
    /// Records no metrics ([`Self::connect`] does, for the whole attempt); the caller
    /// bounds the wait.
    pub async fn handshake<S>(
        &self,
        io: S,
        host: &HostName,
    ) -> Result<(tokio_rustls::client::TlsStream<S>, Option<NodeCert>), TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let (stream, server_name) = self.handshake_inner(io, host).await?;
        let cert = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| self.describe_chain(chain, &server_name));
        Ok((stream, cert))
    }

    async fn handshake_inner<S>(
        &self,
        io: S,
        host: &HostName,
    ) -> Result<(tokio_rustls::client::TlsStream<S>, ServerName<'static>), TlsError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let server_name = server_name(host)?;
        let stream = self
            .connector
            .connect(server_name.clone(), io)
            .await
            .map_err(TlsError::from_io)?;
        Ok((stream, server_name))
    }

    /// Describes a peer chain (leaf first) as presented for `host`: the leaf's fields
    /// plus the outcome of verifying the chain against the configured roots now.
    /// `None` when the chain is empty or the leaf is not a parseable X.509 certificate.
    pub fn describe(&self, chain: &[CertificateDer<'_>], host: &HostName) -> Option<NodeCert> {
        match server_name(host) {
            Ok(name) => self.describe_chain(chain, &name),
            Err(_) => {
                let mut cert = leaf_fields(chain.first()?)?;
                cert.verify_error = Some(VerifyError::Other);
                Some(cert)
            }
        }
    }

    fn describe_chain(
        &self,
        chain: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
    ) -> Option<NodeCert> {
        let (leaf, intermediates) = chain.split_first()?;
        let mut cert = leaf_fields(leaf)?;
        match self.verifier.verify_server_cert(
            leaf,
            intermediates,
            server_name,
            &[],
            UnixTime::now(),
        ) {
            Ok(_) => {
                cert.verified = true;
                cert.verify_error = None;
            }
            Err(err) => {
                cert.verified = false;
                cert.verify_error = Some(verify_error(&err));
            }
        }
        Some(cert)
    }
}

/// The crypto provider of the probe's connections: ring's, with AES-128-GCM suites
/// offered first, as browsers do. rustls
/// offers AES-256-GCM-SHA384 first, and servers that honour the client's order then
/// hash the handshake with SHA-384, which has no hardware help on x86: ~4 % of the
/// probe's CPU went to SHA-512 blocks (docs/performance.md).
pub fn crypto_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    // Stable: suites of equal rank keep rustls's order.
    provider
        .cipher_suites
        .sort_by_key(|suite| suite_rank(suite.suite()));
    provider
}

/// 0 for the AES-128-GCM suites (TLS 1.3 and 1.2), 1 for the rest.
fn suite_rank(suite: CipherSuite) -> u8 {
    match suite {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 0,
        _ => 1,
    }
}

fn server_name(host: &HostName) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.as_str().to_owned()).map_err(|_| TlsError::InvalidServerName {
        host: host.as_str().to_owned(),
    })
}

/// Maps the verifier's first reported fault to the wire vocabulary of SPEC §3.2.
pub fn verify_error(err: &rustls::Error) -> VerifyError {
    let rustls::Error::InvalidCertificate(cert_err) = err else {
        return VerifyError::Other;
    };
    match cert_err {
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => VerifyError::Expired,
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            VerifyError::NotYetValid
        }
        CertificateError::UnknownIssuer => VerifyError::UnknownIssuer,
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            VerifyError::NameMismatch
        }
        CertificateError::BadSignature => VerifyError::BadSignature,
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            VerifyError::InvalidPurpose
        }
        _ => VerifyError::Other,
    }
}

/// The leaf's own fields; `verified` is false and `verify_error` unset until verification.
fn leaf_fields(der: &CertificateDer<'_>) -> Option<NodeCert> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let tbs = &cert.tbs_certificate;
    let validity = tbs.validity();
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => {
            let mut sans: Vec<String> = Vec::new();
            for name in &ext.value.general_names {
                if let GeneralName::DNSName(dns) = name {
                    let dns = dns.to_ascii_lowercase();
                    if !sans.contains(&dns) {
                        sans.push(dns);
                    }
                }
            }
            sans
        }
        // Absent, duplicated or malformed: no names to report.
        Ok(None) | Err(_) => Vec::new(),
    };
    Some(NodeCert {
        spki_sha256: base64::engine::general_purpose::STANDARD
            .encode(Sha256::digest(tbs.subject_pki.raw)),
        subject_cn: first_cn(tbs.subject()),
        issuer_cn: first_cn(tbs.issuer()),
        not_before: Timestamp::from(validity.not_before.to_datetime()),
        not_after: Timestamp::from(validity.not_after.to_datetime()),
        sans,
        fingerprint_sha256: hex::encode(Sha256::digest(der.as_ref())),
        verified: false,
        verify_error: None,
    })
}

/// The first common name, decoded from any X.520 string type; `""` if absent.
fn first_cn(name: &X509Name<'_>) -> String {
    let Some(attr) = name.iter_common_name().next() else {
        return String::new();
    };
    if let Ok(s) = attr.as_str() {
        return s.to_owned();
    }
    let value = attr.attr_value();
    let data = value.data;
    match value.tag() {
        Tag::BmpString => decode_bmp(data),
        Tag::UniversalString => decode_universal(data),
        // TeletexString, VisibleString and anything else: UTF-8 if it is, else Latin-1.
        _ => match std::str::from_utf8(data) {
            Ok(s) => s.to_owned(),
            Err(_) => data.iter().map(|&b| char::from(b)).collect(),
        },
    }
}

/// UCS-2/UTF-16 big-endian (BMPString); a trailing odd byte is padded, bad pairs replaced.
fn decode_bmp(data: &[u8]) -> String {
    let units: Vec<u16> = data
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// UCS-4 big-endian (UniversalString); invalid code points replaced.
fn decode_universal(data: &[u8]) -> String {
    data.chunks(4)
        .map(|c| {
            let mut b = [0u8; 4];
            b[..c.len()].copy_from_slice(c);
            char::from_u32(u32::from_be_bytes(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
        })
        .collect()
}

/// Loads the trust anchors `roots` names.
fn load_roots(roots: &TlsRoots) -> Result<RootCertStore, TlsSetupError> {
    match roots {
        TlsRoots::Webpki => Ok(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }),
        TlsRoots::System => {
            let loaded = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            let (added, _ignored) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(TlsSetupError::NoSystemRoots {
                    errors: loaded.errors.iter().map(ToString::to_string).collect(),
                });
            }
            if !loaded.errors.is_empty() {
                let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
                tracing::warn!(errors = %errors.join("; "), added, "some system roots could not be loaded");
            }
            Ok(store)
        }
        TlsRoots::PemFile(path) => {
            let text = std::fs::read(path).map_err(|source| TlsSetupError::ReadFile {
                path: path.clone(),
                source,
            })?;
            pem_roots(&text, &path.display().to_string())
        }
        TlsRoots::Pem(text) => pem_roots(text.as_bytes(), "inline PEM"),
    }
}

fn pem_roots(text: &[u8], origin: &str) -> Result<RootCertStore, TlsSetupError> {
    let mut store = RootCertStore::empty();
    for (index, item) in (1..).zip(CertificateDer::pem_slice_iter(text)) {
        let der = item.map_err(|e| TlsSetupError::Pem {
            origin: origin.to_owned(),
            reason: e.to_string(),
        })?;
        store.add(der).map_err(|e| TlsSetupError::BadRoot {
            origin: origin.to_owned(),
            index,
            reason: e.to_string(),
        })?;
    }
    if store.is_empty() {
        return Err(TlsSetupError::NoCertificates {
            origin: origin.to_owned(),
        });
    }
    Ok(store)
}

/// Accepts every server certificate (trust is judged after the handshake) while
/// checking handshake signatures with the crypto provider.
#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_bounded_labels() {
        let cases = [
            (
                TlsError::from_rustls(rustls::Error::AlertReceived(
                    AlertDescription::ProtocolVersion,
                )),
                "protocol_version",
            ),
            (
                TlsError::from_rustls(rustls::Error::AlertReceived(
                    AlertDescription::HandshakeFailure,
                )),
                "handshake_failure",
            ),
            (
                TlsError::from_rustls(rustls::Error::PeerIncompatible(
                    PeerIncompatible::ServerDoesNotSupportTls12Or13,
                )),
                "protocol_version",
            ),
            (
                TlsError::from_rustls(rustls::Error::InvalidMessage(
                    InvalidMessage::InvalidContentType,
                )),
                "not_tls",
            ),
            (
                TlsError::from_io(io::Error::new(
                    io::ErrorKind::InvalidData,
                    rustls::Error::AlertReceived(AlertDescription::DecodeError),
                )),
                "alert",
            ),
            (
                TlsError::from_io(io::Error::from(io::ErrorKind::UnexpectedEof)),
                "unexpected_eof",
            ),
            (
                TlsError::from_io(io::Error::from(io::ErrorKind::ConnectionReset)),
                "reset",
            ),
            (
                TlsError::from_io(io::Error::from(io::ErrorKind::TimedOut)),
                "io",
            ),
        ];
        for (err, reason) in cases {
            assert_eq!(err.reason(), reason, "{err:?}");
        }
    }

    #[test]
    fn connect_failures_have_their_own_reasons() {
        let budget = Duration::from_secs(1);
        let connect = |kind| TlsConnectError::from_connect(io::Error::from(kind), budget);
        let cases = [
            (connect(io::ErrorKind::TimedOut), "timeout"),
            (connect(io::ErrorKind::ConnectionRefused), "connect_refused"),
            (connect(io::ErrorKind::NetworkUnreachable), "connect_error"),
            (connect(io::ErrorKind::HostUnreachable), "connect_error"),
            (TlsConnectError::Timeout(budget), "timeout"),
            (
                TlsConnectError::Tls(TlsError::UnexpectedEof),
                "unexpected_eof",
            ),
            (
                TlsConnectError::Tls(TlsError::Alert(AlertDescription::HandshakeFailure)),
                "handshake_failure",
            ),
        ];
        for (err, reason) in cases {
            assert_eq!(err.reason(), reason, "{err:?}");
        }
    }

    #[test]
    fn verifier_errors_map_to_the_spec_vocabulary() {
        let cert = |e| rustls::Error::InvalidCertificate(e);
        assert_eq!(
            verify_error(&cert(CertificateError::Expired)),
            VerifyError::Expired
        );
        assert_eq!(
            verify_error(&cert(CertificateError::NotValidYet)),
            VerifyError::NotYetValid
        );
        assert_eq!(
            verify_error(&cert(CertificateError::UnknownIssuer)),
            VerifyError::UnknownIssuer
        );
        assert_eq!(
            verify_error(&cert(CertificateError::NotValidForName)),
            VerifyError::NameMismatch
        );
        assert_eq!(
            verify_error(&cert(CertificateError::BadSignature)),
            VerifyError::BadSignature
        );
        assert_eq!(
            verify_error(&cert(CertificateError::InvalidPurpose)),
            VerifyError::InvalidPurpose
        );
        assert_eq!(
            verify_error(&cert(CertificateError::Revoked)),
            VerifyError::Other
        );
        assert_eq!(
            verify_error(&rustls::Error::General("x".into())),
            VerifyError::Other
        );
    }

    #[test]
    fn odd_string_encodings_decode_without_panicking() {
        let bmp: Vec<u8> = "Exämple"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(decode_bmp(&bmp), "Exämple");
        assert_eq!(decode_bmp(&[0x00, 0x41, 0x00]), "A\u{0}");
        assert_eq!(decode_bmp(&[0xd8, 0x00]), "\u{fffd}");
        let ucs4: Vec<u8> = "hé"
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        assert_eq!(decode_universal(&ucs4), "hé");
        assert_eq!(
            decode_universal(&[0xff, 0xff, 0xff, 0xff, 0x00]),
            "\u{fffd}\u{0}"
        );
    }

    #[test]
    fn garbage_leaf_gives_no_record() {
        let connector = TlsConnector::new(&TlsRoots::Webpki).expect("webpki roots load");
        let host = HostName::from_input("odd.example").expect("valid host");
        assert_eq!(connector.describe(&[], &host), None);
        let garbage = CertificateDer::from(vec![0x30, 0x82, 0xff, 0xff, 0x01]);
        assert_eq!(connector.describe(&[garbage], &host), None);
        let text = CertificateDer::from(b"HTTP/1.1 400 Bad Request\r\n\r\n".to_vec());
        assert_eq!(connector.describe(&[text], &host), None);
    }
    #[test]
    fn aes_128_gcm_suites_are_offered_first() {
        let suites: Vec<CipherSuite> = crypto_provider()
            .cipher_suites
            .iter()
            .map(|s| s.suite())
            .collect();
        assert_eq!(suites.first(), Some(&CipherSuite::TLS13_AES_128_GCM_SHA256));
        assert!(
            suites
                .windows(2)
                .all(|w| suite_rank(w[0]) <= suite_rank(w[1])),
            "{suites:?}"
        );
        assert_eq!(
            suites.len(),
            rustls::crypto::ring::default_provider().cipher_suites.len()
        );
    }
}

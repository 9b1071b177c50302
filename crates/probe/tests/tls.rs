//! TLS handshakes against servers on 127.0.0.1 that the tests start themselves: leaf
//! capture, verification outcomes (SPEC §3.2, B-17), typed handshake errors and their
//! metrics (P-10, P-11), odd certificate encodings and root loading.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::ServerConfig;
use spyder_model::{HostName, NodeCert, VerifyError};
use spyder_probe::TlsRoots;
use spyder_probe::tls::{TlsConnectError, TlsConnector, TlsError, TlsSetupError};
use spyder_testkit::pki::{CertKind, IssuedCert, LeafSpec, TestCa, WRONG_NAME};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(10);

fn host(name: &str) -> HostName {
    HostName::from_input(name).expect("test host names are valid")
}

fn trusting(ca: &TestCa) -> TlsConnector {
    TlsConnector::new(&TlsRoots::Pem(ca.root_pem())).expect("testkit root loads")
}

/// What the TLS server saw of the client.
#[derive(Debug)]
struct Seen {
    sni: Option<String>,
    alpn: Option<Vec<u8>>,
}

/// Accepts one TLS connection with `config`, reports SNI and ALPN, and writes `hello`.
async fn serve_tls(config: Arc<ServerConfig>) -> (SocketAddr, JoinHandle<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let task = tokio::spawn(async move {
        let (tcp, _) = timeout(WAIT, listener.accept())
            .await
            .expect("client connects in time")
            .expect("accept");
        let mut tls = timeout(WAIT, acceptor.accept(tcp))
            .await
            .expect("handshake in time")
            .expect("server handshake succeeds");
        let (_, conn) = tls.get_ref();
        let seen = Seen {
            sni: conn.server_name().map(str::to_owned),
            alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
        };
        // Best effort: a client that only wanted the handshake may already be gone.
        if tls.write_all(b"hello").await.is_ok() {
            let _ = tls.shutdown().await;
        }
        seen
    });
    (addr, task)
}

/// TCP connect plus handshake through [`TlsConnector::connect`] (which records the
/// metrics); the TCP connect must succeed, so the error is the handshake's.
async fn connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Option<NodeCert>), TlsError> {
    match timeout(WAIT, connector.connect(addr, &host(name), WAIT))
        .await
        .expect("connect bounds itself")
    {
        Ok(session) => Ok(session),
        Err(TlsConnectError::Tls(err)) => Err(err),
        Err(other) => panic!("the TCP connect failed: {other:?}"),
    }
}

/// Handshakes with a server presenting `issued` and returns the captured record.
async fn capture(connector: &TlsConnector, issued: &IssuedCert, name: &str) -> NodeCert {
    let (addr, server) = serve_tls(issued.server_config()).await;
    let (mut tls, cert) = connect(connector, addr, name)
        .await
        .expect("the handshake accepts any certificate");
    let mut body = Vec::new();
    timeout(WAIT, tls.read_to_end(&mut body))
        .await
        .expect("read in time")
        .expect("read app data");
    assert_eq!(body, b"hello");
    let seen = timeout(WAIT, server)
        .await
        .expect("server ends")
        .expect("server task");
    assert_eq!(seen.sni.as_deref(), Some(name));
    cert.expect("a parseable leaf gives a record")
}

fn assert_fields(cert: &NodeCert, issued: &IssuedCert) {
    assert_eq!(cert.spki_sha256, issued.spki_sha256);
    assert_eq!(cert.subject_cn, issued.subject_cn);
    assert_eq!(cert.issuer_cn, issued.issuer_cn);
    assert_eq!(cert.not_before, issued.not_before);
    assert_eq!(cert.not_after, issued.not_after);
    assert_eq!(cert.sans, issued.sans);
    assert_eq!(cert.fingerprint_sha256, issued.fingerprint_sha256);
}

#[tokio::test]
async fn valid_certificate_is_captured_and_verified() {
    let ca = TestCa::new();
    let issued = ca.issue(&["shop.example", "www.shop.example"], CertKind::Valid);
    let (addr, server) = serve_tls(issued.server_config()).await;

    let (mut tls, cert) = connect(&trusting(&ca), addr, "www.shop.example")
        .await
        .expect("handshake succeeds");
    let cert = cert.expect("leaf captured");
    assert_eq!(
        cert,
        NodeCert {
            spki_sha256: issued.spki_sha256.clone(),
            subject_cn: "shop.example".into(),
            issuer_cn: "spyder testkit CA".into(),
            not_before: issued.not_before,
            not_after: issued.not_after,
            sans: vec!["shop.example".into(), "www.shop.example".into()],
            fingerprint_sha256: issued.fingerprint_sha256.clone(),
            verified: true,
            verify_error: None,
        }
    );
    // The expected values are the testkit's own, computed independently of the probe.
    assert_eq!(issued.spki_sha256.len(), 44);
    assert!(issued.spki_sha256.ends_with('='));
    assert_eq!(issued.fingerprint_sha256.len(), 64);
    assert!(cert.not_before < spyder_model::Timestamp::now());
    assert!(spyder_model::Timestamp::now() < cert.not_after);

    let (_, client) = tls.get_ref();
    assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(
        client.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    let mut body = Vec::new();
    timeout(WAIT, tls.read_to_end(&mut body))
        .await
        .expect("read in time")
        .expect("the session carries application data");
    assert_eq!(body, b"hello");
    let seen = timeout(WAIT, server)
        .await
        .expect("server ends")
        .expect("server task");
    assert_eq!(seen.sni.as_deref(), Some("www.shop.example"));
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn every_connection_is_a_full_handshake() {
    let ca = TestCa::new();
    let issued = ca.issue(&["again.example"], CertKind::Valid);
    let connector = trusting(&ca);
    let config = issued.server_config();
    for round in 0..2 {
        let (addr, server) = serve_tls(config.clone()).await;
        let (mut tls, cert) = connect(&connector, addr, "again.example")
            .await
            .expect("handshake succeeds");
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full),
            "round {round}"
        );
        assert_fields(&cert.expect("leaf captured"), &issued);
        let mut body = Vec::new();
        timeout(WAIT, tls.read_to_end(&mut body))
            .await
            .expect("read in time")
            .expect("read app data");
        assert_eq!(body, b"hello");
        timeout(WAIT, server)
            .await
            .expect("server ends")
            .expect("server task");
    }
}

#[tokio::test]
async fn tls12_only_server_is_captured_too() {
    let ca = TestCa::new();
    let issued = ca.issue(&["legacy.example"], CertKind::Valid);
    let config = issued.server_config_with(&[&rustls::version::TLS12]);
    let (addr, server) = serve_tls(config).await;

    let (tls, cert) = connect(&trusting(&ca), addr, "legacy.example")
        .await
        .expect("TLS 1.2 handshake succeeds");
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let cert = cert.expect("leaf captured");
    assert_fields(&cert, &issued);
    assert!(cert.verified);
    drop(tls);
    let seen = timeout(WAIT, server)
        .await
        .expect("server ends")
        .expect("server task");
    assert_eq!(seen.alpn.as_deref(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn faulty_certificates_are_kept_with_their_verify_error() {
    let ca = TestCa::new();
    let connector = trusting(&ca);
    let cases = [
        (CertKind::Expired, VerifyError::Expired),
        (CertKind::NotYetValid, VerifyError::NotYetValid),
        (CertKind::SelfSigned, VerifyError::UnknownIssuer),
        (CertKind::WrongName, VerifyError::NameMismatch),
    ];
    for (kind, expected) in cases {
        let issued = ca.issue(&["faulty.example"], kind);
        let cert = capture(&connector, &issued, "faulty.example").await;
        assert_fields(&cert, &issued);
        assert!(!cert.verified, "{kind:?} must not verify");
        assert_eq!(cert.verify_error, Some(expected), "{kind:?}");
    }
}

#[tokio::test]
async fn fault_shapes_match_their_kind() {
    let ca = TestCa::new();
    let self_signed = ca.issue(&["me.example"], CertKind::SelfSigned);
    assert_eq!(self_signed.issuer_cn, "me.example");
    let wrong = ca.issue(&["right.example"], CertKind::WrongName);
    assert_eq!(wrong.sans, vec![WRONG_NAME.to_owned()]);
    let cert = capture(&trusting(&ca), &wrong, "right.example").await;
    assert_eq!(cert.sans, vec![WRONG_NAME.to_owned()]);
    assert_eq!(cert.subject_cn, WRONG_NAME);
    // The same certificate does verify for the name it carries.
    let cert = capture(&trusting(&ca), &wrong, WRONG_NAME).await;
    assert!(cert.verified);
    assert_eq!(cert.verify_error, None);
}

#[tokio::test]
async fn certificate_from_an_unknown_ca_is_unknown_issuer() {
    let ca = TestCa::new();
    let issued = ca.issue(&["private.example"], CertKind::Valid);
    let webpki = TlsConnector::new(&TlsRoots::Webpki).expect("webpki roots load");
    assert!(webpki.root_count() > 50);
    let cert = capture(&webpki, &issued, "private.example").await;
    assert_fields(&cert, &issued);
    assert!(!cert.verified);
    assert_eq!(cert.verify_error, Some(VerifyError::UnknownIssuer));

    // Another testkit CA is just as unknown.
    let other = TestCa::new();
    let cert = capture(&trusting(&other), &issued, "private.example").await;
    assert_eq!(cert.verify_error, Some(VerifyError::UnknownIssuer));
}

#[tokio::test]
async fn leaf_signed_by_an_impostor_is_bad_signature() {
    let ca = TestCa::new();
    let impostor = ca.impostor();
    let issued = impostor.issue(&["forged.example"], CertKind::Valid);
    let cert = capture(&trusting(&ca), &issued, "forged.example").await;
    assert_fields(&cert, &issued);
    assert_eq!(cert.issuer_cn, "spyder testkit CA");
    assert!(!cert.verified);
    assert_eq!(cert.verify_error, Some(VerifyError::BadSignature));
}

#[tokio::test]
async fn odd_certificate_encodings_are_handled() {
    let ca = TestCa::new();
    let connector = trusting(&ca);

    // No CN, no SANs: empty fields, and no name to match.
    let bare = ca.issue_spec(&LeafSpec::default());
    let cert = capture(&connector, &bare, "bare.example").await;
    assert_fields(&cert, &bare);
    assert_eq!(cert.subject_cn, "");
    assert!(cert.sans.is_empty());
    assert_eq!(cert.verify_error, Some(VerifyError::NameMismatch));

    // Upper case and duplicates: lower-cased and de-duplicated in certificate order.
    let messy = ca.issue_spec(&LeafSpec {
        common_name: Some("Shop.Example".into()),
        sans: vec![
            "Shop.EXAMPLE".into(),
            "www.shop.example".into(),
            "shop.example".into(),
            "*.Shop.Example".into(),
            "WWW.shop.example".into(),
        ],
        kind: CertKind::Valid,
    });
    let cert = capture(&connector, &messy, "shop.example").await;
    assert_eq!(
        cert.sans,
        vec!["shop.example", "www.shop.example", "*.shop.example"]
    );
    assert_eq!(cert.subject_cn, "Shop.Example", "CN is reported as written");
    assert_fields(&cert, &messy);
    assert!(cert.verified, "name matching ignores case");

    // A very long SAN list survives intact and in order.
    let many: Vec<String> = (0..600).map(|i| format!("h{i}.many.example")).collect();
    let long = ca.issue_spec(&LeafSpec {
        common_name: None,
        sans: many.clone(),
        kind: CertKind::Valid,
    });
    let cert = capture(&connector, &long, "h599.many.example").await;
    assert_eq!(cert.sans, many);
    assert_eq!(cert.subject_cn, "");
    assert!(cert.verified);
}

#[test]
fn describe_reads_a_chain_without_a_connection() {
    let ca = TestCa::new();
    let connector = trusting(&ca);
    let issued = ca.issue(&["offline.example"], CertKind::Expired);
    let cert = connector
        .describe(&issued.chain, &host("offline.example"))
        .expect("parseable leaf");
    assert_fields(&cert, &issued);
    assert_eq!(cert.verify_error, Some(VerifyError::Expired));
    // The root itself is not a server certificate for this name.
    let cert = connector
        .describe(&[ca.root_der()], &host("offline.example"))
        .expect("parseable root");
    assert_eq!(cert.subject_cn, "spyder testkit CA");
    assert!(!cert.verified);
    // Garbage in place of a leaf gives no record rather than an error.
    let garbage = rustls::pki_types::CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01]);
    assert_eq!(
        connector.describe(&[garbage], &host("offline.example")),
        None
    );
}

// ---- handshake failures -------------------------------------------------------------

/// A process-wide recorder so the tests can read `spyder_tls_*` metrics.
#[derive(Default)]
struct Recorder {
    counters: Mutex<HashMap<String, Arc<Cell>>>,
}

#[derive(Default)]
struct Cell(AtomicU64);

impl metrics::CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::SeqCst);
    }
    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::SeqCst);
    }
}

impl metrics::HistogramFn for Cell {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn key_string(key: &metrics::Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder {
    fn cell(&self, key: String) -> Arc<Cell> {
        let mut counters = self.counters.lock().expect("recorder lock");
        counters.entry(key).or_default().clone()
    }
}

impl metrics::Recorder for &'static Recorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::from_arc(self.cell(key_string(key)))
    }
    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }
    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::from_arc(self.cell(key_string(key)))
    }
}

fn recorder() -> &'static Recorder {
    static RECORDER: OnceLock<&'static Recorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let recorder: &'static Recorder = Box::leak(Box::default());
        metrics::set_global_recorder(recorder).expect("only this file installs a recorder");
        recorder
    })
}

fn metric(key: &str) -> u64 {
    recorder().cell(key.to_owned()).0.load(Ordering::SeqCst)
}

/// How a raw TCP peer answers the ClientHello.
#[derive(Clone, Copy, Debug)]
enum Peer {
    /// Reads the ClientHello record, writes these bytes, then closes gracefully.
    Answer(&'static [u8]),
    /// Closes its write side at once (FIN) and drains what the client sends.
    CloseAtOnce,
    /// Resets the connection (SO_LINGER 0) after reading the ClientHello.
    Reset,
}

/// A TLS 1.0-only server refusing our ClientHello.
const ALERT_PROTOCOL_VERSION: &[u8] = &[0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 0x46];

/// A ServerHello choosing TLS 1.0 (0x0301) and TLS_RSA_WITH_AES_128_CBC_SHA.
const SERVER_HELLO_TLS10: &[u8] = &[
    0x16, 0x03, 0x01, 0x00, 0x2a, // record: handshake, TLS 1.0, 42 bytes
    0x02, 0x00, 0x00, 0x26, // ServerHello, 38 bytes
    0x03, 0x01, // server_version TLS 1.0
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, // random
    17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32,   //
    0x00, // empty session id
    0x00, 0x2f, // cipher suite
    0x00, // null compression
];

async fn read_client_hello(tcp: &mut TcpStream) -> Vec<u8> {
    let mut header = [0u8; 5];
    tcp.read_exact(&mut header).await.expect("record header");
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut body = vec![0u8; len];
    tcp.read_exact(&mut body).await.expect("record body");
    let mut record = header.to_vec();
    record.extend(body);
    record
}

/// Serves one connection as `peer`; the task returns the ClientHello record it read.
async fn serve_raw(peer: Peer) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let (mut tcp, _) = timeout(WAIT, listener.accept())
            .await
            .expect("client connects in time")
            .expect("accept");
        let work = async {
            match peer {
                Peer::Answer(bytes) => {
                    let hello = read_client_hello(&mut tcp).await;
                    tcp.write_all(bytes).await.expect("write answer");
                    tcp.shutdown().await.expect("send FIN");
                    let mut rest = Vec::new();
                    let _ = tcp.read_to_end(&mut rest).await;
                    hello
                }
                Peer::CloseAtOnce => {
                    tcp.shutdown().await.expect("send FIN");
                    let mut rest = Vec::new();
                    let _ = tcp.read_to_end(&mut rest).await;
                    rest
                }
                Peer::Reset => {
                    let hello = read_client_hello(&mut tcp).await;
                    socket2::SockRef::from(&tcp)
                        .set_linger(Some(Duration::ZERO))
                        .expect("set SO_LINGER");
                    drop(tcp);
                    hello
                }
            }
        };
        timeout(WAIT, work).await.expect("peer finishes in time")
    });
    (addr, task)
}

async fn fail_against(peer: Peer, name: &str) -> (TlsError, Vec<u8>) {
    let ca = TestCa::new();
    let (addr, server) = serve_raw(peer).await;
    let err = connect(&trusting(&ca), addr, name)
        .await
        .expect_err("the handshake must fail");
    let seen = timeout(WAIT, server)
        .await
        .expect("peer ends")
        .expect("peer task");
    (err, seen)
}

#[tokio::test]
async fn legacy_only_peer_gives_protocol_version_error() {
    let before = metric("spyder_tls_errors_total{reason=protocol_version}");
    let timings = metric("spyder_tls_handshake_duration_seconds{}");

    let (err, hello) = fail_against(Peer::Answer(ALERT_PROTOCOL_VERSION), "old.example").await;
    assert!(matches!(err, TlsError::Alert(_)), "{err:?}");
    assert_eq!(err.reason(), "protocol_version");
    // The ClientHello the peer read carried our SNI.
    assert_eq!(hello[0], 0x16, "a handshake record");
    assert!(hello.windows(11).any(|w| w == b"old.example"));

    let (err, _) = fail_against(Peer::Answer(SERVER_HELLO_TLS10), "old.example").await;
    assert!(matches!(err, TlsError::ProtocolVersion(_)), "{err:?}");
    assert_eq!(err.reason(), "protocol_version");

    assert!(metric("spyder_tls_errors_total{reason=protocol_version}") >= before + 2);
    assert!(metric("spyder_tls_handshake_duration_seconds{}") >= timings + 2);
}

#[tokio::test]
async fn plain_http_peer_is_not_tls() {
    let before = metric("spyder_tls_errors_total{reason=not_tls}");
    let (err, _) = fail_against(
        Peer::Answer(b"HTTP/1.1 400 Bad Request\r\n\r\n"),
        "plain.example",
    )
    .await;
    assert!(matches!(err, TlsError::NotTls(_)), "{err:?}");
    assert_eq!(err.reason(), "not_tls");
    assert!(metric("spyder_tls_errors_total{reason=not_tls}") > before);
}

#[tokio::test]
async fn peer_closing_at_once_is_unexpected_eof() {
    let before = metric("spyder_tls_errors_total{reason=unexpected_eof}");
    let (err, _) = fail_against(Peer::CloseAtOnce, "gone.example").await;
    assert!(matches!(err, TlsError::UnexpectedEof), "{err:?}");
    assert_eq!(err.reason(), "unexpected_eof");
    assert!(metric("spyder_tls_errors_total{reason=unexpected_eof}") > before);
}

#[tokio::test]
async fn peer_resetting_is_reset() {
    let (err, hello) = fail_against(Peer::Reset, "rst.example").await;
    assert_eq!(hello[0], 0x16);
    assert!(matches!(err, TlsError::Reset(_)), "{err:?}");
    assert_eq!(err.reason(), "reset");
}

#[tokio::test]
async fn a_refused_connect_is_timed_and_counted() {
    let refused = metric("spyder_tls_errors_total{reason=connect_refused}");
    let timings = metric("spyder_tls_handshake_duration_seconds{}");
    // A port that was just free: nothing listens there.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let ca = TestCa::new();
    let err = timeout(
        WAIT,
        trusting(&ca).connect(addr, &host("closed.example"), WAIT),
    )
    .await
    .expect("connect bounds itself")
    .expect_err("nothing listens");
    assert!(matches!(err, TlsConnectError::Refused(_)), "{err:?}");
    assert_eq!(err.reason(), "connect_refused");
    assert!(metric("spyder_tls_errors_total{reason=connect_refused}") > refused);
    assert!(metric("spyder_tls_handshake_duration_seconds{}") > timings);
}

#[tokio::test]
async fn a_host_that_never_answers_times_out_and_is_counted() {
    // The attempt the deadline cuts short is still timed and counted (SPEC §1 step 6:
    // filtered hosts appear in the TLS metrics).
    let timeouts = metric("spyder_tls_errors_total{reason=timeout}");
    let timings = metric("spyder_tls_handshake_duration_seconds{}");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        // Accepts, reads the ClientHello and never answers.
        let (mut tcp, _) = listener.accept().await.unwrap();
        let hello = read_client_hello(&mut tcp).await;
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
        hello
    });
    let ca = TestCa::new();
    let budget = Duration::from_millis(200);
    let err = timeout(
        WAIT,
        trusting(&ca).connect(addr, &host("silent.example"), budget),
    )
    .await
    .expect("connect bounds itself")
    .expect_err("the peer never answers");
    assert!(
        matches!(err, TlsConnectError::Timeout(b) if b == budget),
        "{err:?}"
    );
    assert_eq!(err.reason(), "timeout");
    let hello = timeout(WAIT, silent).await.expect("peer ends").unwrap();
    assert_eq!(hello[0], 0x16, "the handshake had started");
    assert!(metric("spyder_tls_errors_total{reason=timeout}") > timeouts);
    assert!(metric("spyder_tls_handshake_duration_seconds{}") > timings);
}

// ---- roots ----------------------------------------------------------------------------

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("spyder-tls-test-{}-{name}", std::process::id()))
}

#[tokio::test]
async fn roots_from_a_pem_file_verify() {
    let ca = TestCa::new();
    let other = TestCa::new();
    let path = temp_path("roots.pem");
    // Two roots in one file; the second is the issuer.
    std::fs::write(&path, format!("{}{}", other.root_pem(), ca.root_pem())).expect("write roots");
    let connector = TlsConnector::new(&TlsRoots::PemFile(path.clone()));
    std::fs::remove_file(&path).expect("remove roots");
    let connector = connector.expect("roots file loads");
    assert_eq!(connector.root_count(), 2);
    let issued = ca.issue(&["filed.example"], CertKind::Valid);
    let cert = capture(&connector, &issued, "filed.example").await;
    assert!(cert.verified);
}

#[test]
fn missing_roots_file_names_the_path() {
    let path = temp_path("does-not-exist.pem");
    let err = TlsConnector::new(&TlsRoots::PemFile(path.clone())).expect_err("missing file");
    assert!(matches!(err, TlsSetupError::ReadFile { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains("No such file"), "{message}");
}

#[test]
fn bad_pem_roots_are_rejected_with_a_reason() {
    let err = TlsConnector::new(&TlsRoots::Pem("no certificates here".into())).expect_err("empty");
    assert!(
        matches!(err, TlsSetupError::NoCertificates { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("inline PEM"));

    let not_der = "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n";
    let err = TlsConnector::new(&TlsRoots::Pem(not_der.into())).expect_err("not a certificate");
    assert!(
        matches!(err, TlsSetupError::BadRoot { index: 1, .. }),
        "{err:?}"
    );

    let unterminated = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n";
    let err = TlsConnector::new(&TlsRoots::Pem(unterminated.into())).expect_err("no END line");
    assert!(matches!(err, TlsSetupError::Pem { .. }), "{err:?}");
}

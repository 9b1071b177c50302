//! TLS handshake costs, client against server: why the probe (a TLS client) spends more
//! CPU per crawled domain than the testkit world (a TLS server) that answers it.
//!
//! In a full TLS 1.3 handshake (no resumption, X25519, an ECDSA P-256 leaf) both sides
//! do one X25519 key generation and one agreement. The server then signs its
//! CertificateVerify once; the client verifies that signature and, as the probe does
//! for `verified`, verifies the chain: the CA's ECDSA P-256 signature over the leaf.
//! The benchmarks price each step with rustls 0.23's public APIs and the `ring`
//! provider, on certificates from `spyder_testkit::pki` (a P-256 CA and leaf):
//!
//! - `primitive::ecdsa_p256_sign`: the server's one signature: `Signer::sign` of the
//!   130-byte TLS 1.3 CertificateVerify message (64 spaces, the context string, a
//!   SHA-256 transcript hash) with the leaf key, scheme `ECDSA_NISTP256_SHA256`.
//! - `primitive::ecdsa_p256_verify`: the client's check of that signature:
//!   `rustls::crypto::verify_tls13_signature` against the leaf certificate.
//! - `primitive::x25519_keygen`: `SupportedKxGroup::start` (a key pair, its public key).
//! - `primitive::x25519_keygen_and_agree`: `start` then `complete` with a peer's public
//!   key: what each side does once per handshake.
//! - `primitive::chain_verify`: `WebPkiServerVerifier::verify_server_cert` of the leaf
//!   against the testkit root (chain, name, time): what the probe does after each
//!   handshake to record `verified`.
//! - `handshake::in_memory_pair`: one full handshake between a `ClientConnection`
//!   configured like the probe's (AES-128-GCM suites first, TLS 1.3 and 1.2, ALPN
//!   `http/1.1`, resumption disabled, `WebPkiServerVerifier` against the testkit root)
//!   and the testkit's `ServerConnection` for the leaf, bytes pumped through a `Vec` in
//!   memory, until neither side is handshaking nor has bytes to send (the server's two
//!   session tickets included). The probe accepts any certificate during the handshake
//!   and verifies the chain after it; this client verifies it during: the same work.
//!
//! rustls has no public constructor for a `DigitallySignedStruct`, so the signature the
//! verify benchmark checks (and the message the sign benchmark signs) is taken from one
//! real in-memory handshake, through a verifier that records what it is asked to check.
//!
//! With `SPYDER_BENCH_TLS_SPLIT=1`, before the benchmarks run, `main` does 2,000
//! in-memory handshakes (after 100 to warm up), times each side's calls with `Instant`
//! (connection set-up, `write_tls`, `read_tls`, `process_new_packets`) and prints the
//! client's and the server's µs per handshake (mean and median) and their ratios. A
//! filter after `--` limits which benchmarks run after it.
//!
//! The client uses the probe's own `tls::crypto_provider()`; its versions, ALPN and
//! disabled resumption repeat `crates/probe/src/tls.rs` (keep them in step).
//!
//! ```sh
//! cargo bench -p spyder-probe --bench tls
//! SPYDER_BENCH_TLS_SPLIT=1 cargo bench -p spyder-probe --bench tls -- in_memory_pair
//! ```

use std::io;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use divan::{Bencher, black_box};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CipherSuite, ClientConfig, ClientConnection, ConnectionCommon, DigitallySignedStruct,
    NamedGroup, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection, SignatureScheme,
};
use spyder_testkit::pki::{CertKind, IssuedCert, TestCa};
use x509_parser::prelude::{FromDer, X509Certificate};

/// The host the leaf is issued for and the client asks for (SNI and name check).
const HOST: &str = "bench.example";

/// The length of the message a TLS 1.3 server signs in CertificateVerify with SHA-256.
const CERTIFICATE_VERIFY_LEN: usize = 64 + b"TLS 1.3, server CertificateVerify".len() + 1 + 32;

/// The environment variable that turns on the client/server split before the benchmarks.
const SPLIT_ENV: &str = "SPYDER_BENCH_TLS_SPLIT";

/// Handshakes timed by the split, and untimed ones run before them.
const SPLIT_HANDSHAKES: usize = 2_000;
const SPLIT_WARMUP: usize = 100;

/// A TLS 1.3 handshake takes two client flights and one server flight (plus the
/// tickets); more rounds than this means it is stuck.
const MAX_ROUNDS: usize = 8;

fn main() {
    if std::env::var_os(SPLIT_ENV).is_some_and(|value| value == "1") {
        print_split();
    }
    divan::main();
}

mod primitive {
    use super::*;

    #[divan::bench]
    fn ecdsa_p256_sign(bencher: Bencher) {
        let fixture = &*FIXTURE;
        let key = rustls::crypto::ring::sign::any_supported_type(&fixture.cert.key)
            .expect("ring loads the testkit's P-256 key");
        let signer = key
            .choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .expect("a P-256 key signs with ECDSA_NISTP256_SHA256");
        let message = &fixture.certificate_verify.message;
        let signature = signer.sign(message).expect("the key signs");
        fixture.assert_leaf_signed(message, &signature);
        bencher.bench(|| signer.sign(black_box(message)).expect("the key signs"));
    }

    #[divan::bench]
    fn ecdsa_p256_verify(bencher: Bencher) {
        let fixture = &*FIXTURE;
        let CertificateVerify { message, signature } = &fixture.certificate_verify;
        let algorithms = &fixture.provider.signature_verification_algorithms;
        bencher.bench(|| {
            rustls::crypto::verify_tls13_signature(
                black_box(message),
                fixture.cert.leaf(),
                signature,
                algorithms,
            )
            .expect("the server's CertificateVerify signature is valid")
        });
    }

    #[divan::bench]
    fn x25519_keygen(bencher: Bencher) {
        let group = x25519(&FIXTURE.provider);
        bencher.bench(|| group.start().expect("ring generates X25519 keys"));
    }

    #[divan::bench]
    fn x25519_keygen_and_agree(bencher: Bencher) {
        let group = x25519(&FIXTURE.provider);
        let peer = group
            .start()
            .expect("ring generates X25519 keys")
            .pub_key()
            .to_vec();
        bencher.bench(|| {
            group
                .start()
                .expect("ring generates X25519 keys")
                .complete(black_box(&peer))
                .expect("a valid X25519 public key agrees")
        });
    }

    #[divan::bench]
    fn chain_verify(bencher: Bencher) {
        let fixture = &*FIXTURE;
        bencher.bench(|| {
            fixture
                .verifier
                .verify_server_cert(
                    black_box(fixture.cert.leaf()),
                    &[],
                    &fixture.server_name,
                    &[],
                    UnixTime::now(),
                )
                .expect("the leaf chains to the testkit root")
        });
    }
}

mod handshake {
    use super::*;

    #[divan::bench]
    fn in_memory_pair(bencher: Bencher) {
        let fixture = &*FIXTURE;
        bencher.bench_local(|| fixture.handshake(&mut Untimed));
    }
}

/// The TLS 1.3 CertificateVerify the server sent in one handshake: the signed message
/// and the signature.
struct CertificateVerify {
    message: Vec<u8>,
    signature: DigitallySignedStruct,
}

impl std::fmt::Debug for CertificateVerify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateVerify")
            .field("message_len", &self.message.len())
            .field("scheme", &self.signature.scheme)
            .finish()
    }
}

/// Everything built once: the CA's leaf, the probe-like client configuration, the
/// testkit's server configuration and one recorded CertificateVerify.
struct Fixture {
    cert: IssuedCert,
    provider: Arc<CryptoProvider>,
    verifier: Arc<WebPkiServerVerifier>,
    client_config: Arc<ClientConfig>,
    server_config: Arc<ServerConfig>,
    server_name: ServerName<'static>,
    certificate_verify: CertificateVerify,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(Fixture::new);

impl Fixture {
    fn new() -> Self {
        let ca = TestCa::new();
        let cert = ca.issue(&[HOST], CertKind::Valid);
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.root_der())
            .expect("the testkit root is a usable trust anchor");
        let provider = Arc::new(spyder_probe::tls::crypto_provider());
        let verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
                .build()
                .expect("a verifier over one root builds");
        let server_name =
            ServerName::try_from(HOST).expect("the benchmark host is a valid server name");
        let server_config = cert.server_config();
        let certificate_verify =
            record_certificate_verify(&provider, &verifier, &server_config, &server_name);
        Self {
            client_config: client_config(&provider, Arc::clone(&verifier) as _),
            server_config,
            cert,
            provider,
            verifier,
            server_name,
            certificate_verify,
        }
    }

    /// One handshake of the probe-like client with the testkit server.
    fn handshake(&self, clock: &mut impl SideClock) -> (ClientConnection, ServerConnection) {
        handshake(
            &self.client_config,
            &self.server_config,
            &self.server_name,
            clock,
        )
    }

    /// Checks `signature` over `message` against the leaf's public key with the
    /// provider's ECDSA P-256 SHA-256 algorithm.
    fn assert_leaf_signed(&self, message: &[u8], signature: &[u8]) {
        let (_, leaf) =
            X509Certificate::from_der(self.cert.leaf()).expect("the testkit leaf parses");
        let public_key = &leaf.tbs_certificate.subject_pki.subject_public_key.data;
        let (_, algorithms) = self
            .provider
            .signature_verification_algorithms
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == SignatureScheme::ECDSA_NISTP256_SHA256)
            .expect("ring verifies ECDSA_NISTP256_SHA256");
        assert!(
            algorithms
                .iter()
                .any(|alg| alg.verify_signature(public_key, message, signature).is_ok()),
            "the benchmarked signature verifies against the leaf"
        );
    }
}

/// Runs one handshake through a verifier that records the server's signature, and
/// checks the handshake is the one the probe makes: TLS 1.3, AES-128-GCM, X25519, ALPN.
fn record_certificate_verify(
    provider: &Arc<CryptoProvider>,
    verifier: &Arc<WebPkiServerVerifier>,
    server_config: &Arc<ServerConfig>,
    server_name: &ServerName<'static>,
) -> CertificateVerify {
    let recorder = Arc::new(RecordingVerifier {
        inner: Arc::clone(verifier),
        seen: Mutex::new(None),
    });
    let config = client_config(provider, Arc::clone(&recorder) as _);
    let (client, _server) = handshake(&config, server_config, server_name, &mut Untimed);
    assert_eq!(client.protocol_version(), Some(ProtocolVersion::TLSv1_3));
    assert_eq!(
        client.negotiated_cipher_suite().map(|suite| suite.suite()),
        Some(CipherSuite::TLS13_AES_128_GCM_SHA256)
    );
    assert_eq!(
        client
            .negotiated_key_exchange_group()
            .map(|group| group.name()),
        Some(NamedGroup::X25519)
    );
    assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
    let recorded = recorder
        .seen
        .lock()
        .expect("the recorder's lock is not poisoned")
        .take()
        .expect("a TLS 1.3 handshake verifies one CertificateVerify");
    assert_eq!(
        recorded.signature.scheme,
        SignatureScheme::ECDSA_NISTP256_SHA256
    );
    assert_eq!(
        recorded.message.len(),
        CERTIFICATE_VERIFY_LEN,
        "64 spaces, the server context string, a zero byte and a SHA-256 hash"
    );
    recorded
}

/// The probe's client configuration with `verifier` judging the server.
fn client_config(
    provider: &Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("the ring provider supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

/// The provider's X25519 group.
fn x25519(provider: &CryptoProvider) -> &'static dyn SupportedKxGroup {
    provider
        .kx_groups
        .iter()
        .copied()
        .find(|group| group.name() == NamedGroup::X25519)
        .expect("ring offers X25519")
}

/// A `WebPkiServerVerifier` that also keeps the last TLS 1.3 signature it checked.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Arc<WebPkiServerVerifier>,
    seen: Mutex<Option<CertificateVerify>>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let verdict = self.inner.verify_tls13_signature(message, cert, dss);
        if verdict.is_ok()
            && let Ok(mut seen) = self.seen.lock()
        {
            *seen = Some(CertificateVerify {
                message: message.to_vec(),
                signature: dss.clone(),
            });
        }
        verdict
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Where the time of each side's calls goes.
trait SideClock {
    fn client<T>(&mut self, call: impl FnOnce() -> T) -> T;
    fn server<T>(&mut self, call: impl FnOnce() -> T) -> T;
}

/// No timing: the divan benchmark times the whole handshake.
struct Untimed;

impl SideClock for Untimed {
    fn client<T>(&mut self, call: impl FnOnce() -> T) -> T {
        call()
    }

    fn server<T>(&mut self, call: impl FnOnce() -> T) -> T {
        call()
    }
}

/// Sums the time spent in each side's calls.
#[derive(Default)]
struct SideTimes {
    client: Duration,
    server: Duration,
}

impl SideClock for SideTimes {
    fn client<T>(&mut self, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = call();
        self.client += started.elapsed();
        out
    }

    fn server<T>(&mut self, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = call();
        self.server += started.elapsed();
        out
    }
}

/// One full handshake between a client with `client_config` and a server with
/// `server_config`, in memory; each side's calls are charged to it on `clock`.
///
/// # Panics
///
/// If either side fails or the handshake is not done after [`MAX_ROUNDS`] rounds.
fn handshake(
    client_config: &Arc<ClientConfig>,
    server_config: &Arc<ServerConfig>,
    server_name: &ServerName<'static>,
    clock: &mut impl SideClock,
) -> (ClientConnection, ServerConnection) {
    let mut client = clock
        .client(|| ClientConnection::new(Arc::clone(client_config), server_name.clone()))
        .expect("the client starts");
    let mut server = clock
        .server(|| ServerConnection::new(Arc::clone(server_config)))
        .expect("the server starts");
    let mut wire = Vec::with_capacity(8 * 1024);
    for _ in 0..MAX_ROUNDS {
        if clock.client(|| flush(&mut client, &mut wire)) {
            clock.server(|| deliver(&mut server, &wire));
        }
        if clock.server(|| flush(&mut server, &mut wire)) {
            clock.client(|| deliver(&mut client, &wire));
        }
        let done = !client.is_handshaking()
            && !server.is_handshaking()
            && !client.wants_write()
            && !server.wants_write();
        if done {
            return (client, server);
        }
    }
    panic!("the in-memory handshake did not finish in {MAX_ROUNDS} rounds");
}

/// Moves everything `conn` has to send into `wire` (cleared first); whether it sent any.
fn flush<D>(conn: &mut ConnectionCommon<D>, wire: &mut Vec<u8>) -> bool {
    wire.clear();
    while conn.wants_write() {
        conn.write_tls(wire as &mut dyn io::Write)
            .expect("writing to a Vec does not fail");
    }
    !wire.is_empty()
}

/// Feeds all of `wire` to `conn` and processes it.
fn deliver<D>(conn: &mut ConnectionCommon<D>, wire: &[u8]) {
    let mut rest = wire;
    while !rest.is_empty() {
        let read = conn
            .read_tls(&mut rest)
            .expect("the connection accepts handshake bytes");
        assert!(read > 0, "read_tls takes bytes from a non-empty slice");
        conn.process_new_packets()
            .expect("the peer's handshake messages are valid");
    }
}

/// Runs the split of [`SPLIT_HANDSHAKES`] handshakes and prints each side's share.
fn print_split() {
    let fixture = &*FIXTURE;
    for _ in 0..SPLIT_WARMUP {
        fixture.handshake(&mut Untimed);
    }
    let mut client = Vec::with_capacity(SPLIT_HANDSHAKES);
    let mut server = Vec::with_capacity(SPLIT_HANDSHAKES);
    for _ in 0..SPLIT_HANDSHAKES {
        let mut times = SideTimes::default();
        black_box(fixture.handshake(&mut times));
        client.push(times.client);
        server.push(times.server);
    }
    let (client_mean, client_median) = mean_and_median(&mut client);
    let (server_mean, server_median) = mean_and_median(&mut server);
    println!(
        "tls split over {SPLIT_HANDSHAKES} in-memory handshakes: \
         client {client_mean:.1} µs/handshake, server {server_mean:.1} µs/handshake \
         (medians {client_median:.1} µs and {server_median:.1} µs), \
         client/server {:.2} (means), {:.2} (medians)",
        client_mean / server_mean,
        client_median / server_median
    );
}

/// Mean and median in µs; sorts `times`.
fn mean_and_median(times: &mut [Duration]) -> (f64, f64) {
    times.sort_unstable();
    let micros = |d: Duration| d.as_secs_f64() * 1e6;
    let total: f64 = times.iter().copied().map(micros).sum();
    let mean = total / times.len() as f64;
    let median = times.get(times.len() / 2).copied().map_or(0.0, micros);
    (mean, median)
}

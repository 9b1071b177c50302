//! A private CA issuing valid, expired, not-yet-valid, wrong-name and self-signed certificates.
//!
//! Every leaf gets a fresh ECDSA P-256 key (generation takes microseconds with `ring`, so a
//! world of a thousand hosts is cheap). An [`IssuedCert`] carries, next to the chain and key
//! a server needs, the values a correct probe must report for it: `spki_sha256` is computed
//! from rcgen's key and `fingerprint_sha256` from the leaf DER, independently of the probe.
//!
//! ```
//! use spyder_testkit::pki::{CertKind, TestCa};
//! let ca = TestCa::new();
//! let cert = ca.issue(&["shop.example", "www.shop.example"], CertKind::Valid);
//! assert_eq!(cert.subject_cn, "shop.example");
//! assert_eq!(cert.issuer_cn, TestCa::COMMON_NAME);
//! let _config = cert.server_config(); // for a tokio-rustls acceptor
//! ```

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};
use spyder_model::Timestamp;

/// One day in seconds, the unit of the validity windows below.
const DAY: i64 = 24 * 60 * 60;

/// The SAN (and CN) a [`CertKind::WrongName`] certificate carries instead of the requested names.
pub const WRONG_NAME: &str = "wrong.invalid";

/// Which fault, if any, an issued certificate has.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CertKind {
    /// Issued by the CA for the requested names, valid now.
    #[default]
    Valid,
    /// Issued by the CA, `notAfter` in the past.
    Expired,
    /// Issued by the CA, `notBefore` in the future.
    NotYetValid,
    /// Issued by the CA and valid now, but for [`WRONG_NAME`] instead of the requested names.
    WrongName,
    /// Valid now for the requested names, but self-signed (not issued by the CA).
    SelfSigned,
}

/// A leaf to issue, for shapes [`TestCa::issue`] does not cover: no CN, no SANs,
/// upper-case or duplicate SANs, very long SAN lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafSpec {
    /// The subject common name; `None` leaves the subject without a CN.
    pub common_name: Option<String>,
    /// DNS-name SANs written verbatim, in order (case and duplicates kept).
    pub sans: Vec<String>,
    /// The fault to give the certificate. For [`CertKind::WrongName`] the CN and SANs
    /// above are replaced by [`WRONG_NAME`].
    pub kind: CertKind,
}

/// A root CA, "spyder testkit CA", that signs leaves on demand.
#[derive(Debug)]
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    subject: DistinguishedName,
    /// The random OU that makes the subject unique (see [`TestCa::new`]).
    unit: String,
    root: CertificateDer<'static>,
    root_pem: String,
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

impl TestCa {
    /// The subject (and issuer) common name of every testkit root.
    pub const COMMON_NAME: &'static str = "spyder testkit CA";

    /// A fresh root CA with its own P-256 key, valid from ten years ago to ten years ahead.
    ///
    /// Its subject is CN [`TestCa::COMMON_NAME`] plus a random OU, so two CAs never
    /// share a subject: a leaf of one is `unknown_issuer` to the other.
    pub fn new() -> Self {
        let unit = format!("testkit {:016x}", rand::random::<u64>());
        let mut subject = distinguished_name(Some(Self::COMMON_NAME));
        subject.push(DnType::OrganizationalUnitName, unit.clone());
        let mut ca = Self::with_subject(subject);
        ca.unit = unit;
        ca
    }

    /// This CA as text another process can load with [`TestCa::from_export`]: its
    /// subject's unit, its private key and its root certificate, PEM. Worlds served by
    /// several processes share one CA this way. Test material only: the key is in it.
    pub fn export(&self) -> String {
        format!(
            "{}\n{}{}",
            self.unit,
            self.issuer.key().serialize_pem(),
            self.root_pem
        )
    }

    /// The CA [`TestCa::export`] wrote: leaves it issues chain to the same root.
    pub fn from_export(text: &str) -> std::io::Result<Self> {
        let bad = |what: &str| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("not an exported test CA: {what}"),
            )
        };
        let (unit, rest) = text.split_once('\n').ok_or_else(|| bad("no unit line"))?;
        let key_end = rest
            .find("-----END PRIVATE KEY-----")
            .map(|i| i + "-----END PRIVATE KEY-----".len())
            .ok_or_else(|| bad("no private key"))?;
        let key = KeyPair::from_pem(&rest[..key_end]).map_err(|e| bad(&e.to_string()))?;
        let root_pem = rest[key_end..].trim_start().to_owned();
        let root = first_cert_der(&root_pem).ok_or_else(|| bad("no root certificate"))?;
        let mut subject = distinguished_name(Some(Self::COMMON_NAME));
        subject.push(DnType::OrganizationalUnitName, unit.to_owned());
        Ok(Self {
            issuer: Issuer::new(ca_params(subject.clone()), key),
            subject,
            unit: unit.to_owned(),
            root,
            root_pem,
        })
    }

    /// A CA with the same subject as this one but its own key: to a client trusting
    /// this CA, the impostor's leaves name a known issuer yet fail its signature check
    /// (`bad_signature`).
    pub fn impostor(&self) -> Self {
        Self::with_subject(self.subject.clone())
    }

    fn with_subject(subject: DistinguishedName) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("ring generates P-256 keys");
        let mut params = ca_params(subject.clone());
        set_validity(&mut params, -3650 * DAY, 3650 * DAY);
        let cert = params
            .self_signed(&key)
            .expect("rcgen signs a CA certificate from fixed parameters");
        Self {
            root: cert.der().clone(),
            root_pem: cert.pem(),
            issuer: Issuer::new(params, key),
            subject,
            unit: String::new(),
        }
    }

    /// The root certificate as PEM, for `TlsRoots::Pem` or a roots file.
    pub fn root_pem(&self) -> String {
        self.root_pem.clone()
    }

    /// The root certificate as DER.
    pub fn root_der(&self) -> CertificateDer<'static> {
        self.root.clone()
    }

    /// Issues a leaf for `names` (DNS SANs, in order; the first is also the subject CN).
    pub fn issue(&self, names: &[&str], kind: CertKind) -> IssuedCert {
        self.issue_spec(&LeafSpec {
            common_name: names.first().map(|n| (*n).to_owned()),
            sans: names.iter().map(|n| (*n).to_owned()).collect(),
            kind,
        })
    }

    /// Issues a leaf exactly as `spec` describes.
    ///
    /// # Panics
    ///
    /// If a SAN is not an IA5 (ASCII) string: test worlds pass punycode.
    pub fn issue_spec(&self, spec: &LeafSpec) -> IssuedCert {
        let (common_name, sans) = match spec.kind {
            CertKind::WrongName => (Some(WRONG_NAME.to_owned()), vec![WRONG_NAME.to_owned()]),
            _ => (spec.common_name.clone(), spec.sans.clone()),
        };
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("ring generates P-256 keys");

        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(common_name.as_deref());
        params.subject_alt_names = sans
            .iter()
            .map(|san| {
                let ia5 = san
                    .clone()
                    .try_into()
                    .unwrap_or_else(|e| panic!("SAN {san:?} is not IA5: {e}"));
                SanType::DnsName(ia5)
            })
            .collect();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = spec.kind != CertKind::SelfSigned;
        let (from, to) = match spec.kind {
            CertKind::Expired => (-400 * DAY, -30 * DAY),
            CertKind::NotYetValid => (30 * DAY, 400 * DAY),
            _ => (-DAY, 365 * DAY),
        };
        let (not_before, not_after) = set_validity(&mut params, from, to);

        let (leaf, issuer_cn) = if spec.kind == CertKind::SelfSigned {
            let cert = params
                .self_signed(&key)
                .expect("rcgen signs a leaf from valid parameters");
            (cert, common_name.clone().unwrap_or_default())
        } else {
            let cert = params
                .signed_by(&key, &self.issuer)
                .expect("rcgen signs a leaf from valid parameters");
            (cert, Self::COMMON_NAME.to_owned())
        };
        let leaf = leaf.der().clone();

        let mut expected_sans: Vec<String> = Vec::with_capacity(sans.len());
        for san in &sans {
            let san = san.to_ascii_lowercase();
            if !expected_sans.contains(&san) {
                expected_sans.push(san);
            }
        }

        IssuedCert {
            spki_sha256: base64::engine::general_purpose::STANDARD
                .encode(Sha256::digest(key.subject_public_key_info())),
            fingerprint_sha256: hex_lower(&Sha256::digest(&leaf)),
            subject_cn: common_name.unwrap_or_default(),
            issuer_cn,
            not_before,
            not_after,
            sans: expected_sans,
            kind: spec.kind,
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            chain: vec![leaf],
        }
    }
}

/// A leaf certificate with its key and the NodeCert values a probe must report for it.
#[derive(Debug)]
pub struct IssuedCert {
    /// The chain a server presents: the leaf alone (the root is the trust anchor).
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's PKCS#8 private key; [`PrivateKeyDer::clone_key`] copies it.
    pub key: PrivateKeyDer<'static>,
    /// Standard padded base64 of SHA-256 over the SubjectPublicKeyInfo DER, from rcgen's key.
    pub spki_sha256: String,
    /// Lower-case hex SHA-256 of the leaf DER.
    pub fingerprint_sha256: String,
    /// The subject CN, `""` when the certificate has none.
    pub subject_cn: String,
    /// The issuer CN: [`TestCa::COMMON_NAME`], or the subject CN when self-signed.
    pub issuer_cn: String,
    /// `notBefore`, whole seconds.
    pub not_before: Timestamp,
    /// `notAfter`, whole seconds.
    pub not_after: Timestamp,
    /// The DNS SANs as a probe reports them: lower-case, de-duplicated, in certificate order.
    pub sans: Vec<String>,
    /// The fault the certificate was issued with.
    pub kind: CertKind,
}

impl IssuedCert {
    /// The leaf certificate DER.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// A rustls server configuration presenting this certificate: TLS 1.2 and 1.3,
    /// ALPN `http/1.1`, the `ring` provider.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.server_config_with(&[&rustls::version::TLS12, &rustls::version::TLS13])
    }

    /// As [`IssuedCert::server_config`], limited to the given protocol versions.
    pub fn server_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("the ring provider supports TLS 1.2 and 1.3")
            .with_no_client_auth()
            .with_single_cert(self.chain.clone(), self.key.clone_key())
            .expect("an rcgen P-256 key matches its own certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// A subject with only a common name, or an empty subject.
/// A root CA's parameters for `subject`, validity unset.
fn ca_params(subject: DistinguishedName) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = subject;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

/// The DER of the first certificate in `pem`.
fn first_cert_der(pem: &str) -> Option<CertificateDer<'static>> {
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes()).next()?.ok()
}

fn distinguished_name(common_name: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(cn) = common_name {
        dn.push(DnType::CommonName, cn);
    }
    dn
}

/// Seconds since the Unix epoch, now.
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Sets the validity window to `[now + from, now + to]` seconds (negative = past) and
/// gives it back as timestamps.
fn set_validity(params: &mut CertificateParams, from: i64, to: i64) -> (Timestamp, Timestamp) {
    let now = unix_now();
    let secs = |offset: i64| now.saturating_add_signed(offset);
    // rcgen takes `time::OffsetDateTime`; build it from rcgen's own epoch helper.
    let at = |secs: u64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs);
    params.not_before = at(secs(from));
    params.not_after = at(secs(to));
    let stamp = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(Timestamp::from_unix_seconds)
            .expect("validity bounds lie within years 1970..9999")
    };
    (stamp(secs(from)), stamp(secs(to)))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_leaf_has_its_own_key_and_expected_values() {
        let ca = TestCa::new();
        let a = ca.issue(
            &["a.example", "A.example", "www.a.example"],
            CertKind::Valid,
        );
        let b = ca.issue(&["a.example"], CertKind::Valid);
        assert_ne!(a.spki_sha256, b.spki_sha256);
        assert_ne!(a.fingerprint_sha256, b.fingerprint_sha256);
        assert_eq!(a.sans, ["a.example", "www.a.example"]);
        assert_eq!(a.subject_cn, "a.example");
        assert_eq!(a.issuer_cn, TestCa::COMMON_NAME);
        assert_eq!(a.fingerprint_sha256, hex_lower(&Sha256::digest(a.leaf())));
        assert_eq!(a.chain.len(), 1);
        assert!(ca.root_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn validity_windows_follow_the_kind() {
        let ca = TestCa::new();
        let now = Timestamp::now();
        let valid = ca.issue(&["v.example"], CertKind::Valid);
        assert!(valid.not_before < now && now < valid.not_after);
        let expired = ca.issue(&["e.example"], CertKind::Expired);
        assert!(expired.not_after < now);
        let early = ca.issue(&["n.example"], CertKind::NotYetValid);
        assert!(now < early.not_before);
        let wrong = ca.issue(&["w.example"], CertKind::WrongName);
        assert_eq!(
            (wrong.subject_cn.as_str(), wrong.sans.as_slice()),
            (WRONG_NAME, &[WRONG_NAME.to_owned()][..])
        );
        let own = ca.issue(&["s.example"], CertKind::SelfSigned);
        assert_eq!(own.issuer_cn, "s.example");
    }

    #[test]
    fn two_cas_have_distinct_subjects_and_impostors_share_them() {
        let a = TestCa::new();
        let b = TestCa::new();
        assert_ne!(a.subject, b.subject);
        assert_eq!(a.impostor().subject, a.subject);
        assert_ne!(a.impostor().root_der(), a.root_der());
    }

    #[test]
    fn an_exported_ca_issues_leaves_that_chain_to_the_same_root() {
        let ca = TestCa::new();
        let copy = TestCa::from_export(&ca.export()).expect("loads");
        assert_eq!(copy.root_pem(), ca.root_pem());
        assert_eq!(copy.root_der(), ca.root_der());
        assert_eq!(copy.subject, ca.subject);
        let leaf = copy.issue(&["copy.example"], CertKind::Valid);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.root_der()).expect("a valid root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("verifier");
        use rustls::client::danger::ServerCertVerifier as _;
        let name = rustls_pki_types::ServerName::try_from("copy.example").expect("name");
        verifier
            .verify_server_cert(
                leaf.leaf(),
                &[],
                &name,
                &[],
                rustls_pki_types::UnixTime::now(),
            )
            .expect("the copy's leaf chains to the original root");
        assert!(TestCa::from_export("garbage").is_err());
        assert!(TestCa::from_export("unit\n-----BEGIN PRIVATE KEY-----\n").is_err());
    }
}

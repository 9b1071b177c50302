//! Graph records, with the JSON field names and order of SPEC §2.1.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// A domain node. `apex` is the registrable domain (eTLD+1), or the host itself.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeDomain {
    /// The normalised host name.
    pub host: String,
    /// The registrable domain by the full PSL (private section included), else `host`.
    pub apex: String,
    /// The task's observation time.
    pub first_seen: Timestamp,
    /// The task's observation time (the same as `first_seen`).
    pub last_seen: Timestamp,
}

/// An address node. Serialises IPv4 dotted and IPv6 per RFC 5952.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeIp {
    /// The address.
    pub ip: IpAddr,
    /// The task's observation time.
    pub first_seen: Timestamp,
    /// The task's observation time (the same as `first_seen`).
    pub last_seen: Timestamp,
}

/// A leaf certificate node; the last four fields are spyder's additions (SPEC §3.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeCert {
    /// Standard padded base64 of SHA-256 over the DER SubjectPublicKeyInfo.
    pub spki_sha256: String,
    /// The subject's common name, `""` if absent.
    pub subject_cn: String,
    /// The issuer's common name, `""` if absent.
    pub issuer_cn: String,
    /// Start of the validity period.
    pub not_before: Timestamp,
    /// End of the validity period.
    pub not_after: Timestamp,
    /// DNS-name SANs: lower-case, de-duplicated, in certificate order.
    #[serde(default)]
    pub sans: Vec<String>,
    /// Lower-case hex SHA-256 of the leaf DER.
    #[serde(default)]
    pub fingerprint_sha256: String,
    /// Whether the chain, name and time verified against the configured roots.
    #[serde(default)]
    pub verified: bool,
    /// Why verification failed (the first fault the verifier reports); `None` when verified.
    #[serde(default)]
    pub verify_error: Option<VerifyError>,
}

/// Why a certificate did not verify against the configured roots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerifyError {
    /// The certificate's validity period has ended.
    Expired,
    /// The certificate's validity period has not begun.
    NotYetValid,
    /// No chain to a trusted root. Also covers self-signed certificates.
    UnknownIssuer,
    /// The certificate is not valid for the host name.
    NameMismatch,
    /// A signature in the chain does not verify.
    BadSignature,
    /// The certificate may not be used for TLS server authentication.
    InvalidPurpose,
    /// Any other verification failure.
    Other,
}

impl VerifyError {
    /// The wire name, e.g. `unknown_issuer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::UnknownIssuer => "unknown_issuer",
            Self::NameMismatch => "name_mismatch",
            Self::BadSignature => "bad_signature",
            Self::InvalidPurpose => "invalid_purpose",
            Self::Other => "other",
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six edge types. `HAS_CERT`/`CERT_FOR_HOST` from old docs are never produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EdgeType {
    /// domain → IP
    ResolvesTo,
    /// domain → name server domain
    UsesNs,
    /// domain → its CNAME target (one edge per hop)
    AliasOf,
    /// domain → mail exchanger domain
    UsesMx,
    /// domain → external domain linked from its pages
    LinksTo,
    /// domain → `spki_sha256` of its leaf certificate
    UsesCert,
}

impl EdgeType {
    /// All six types, in the order of SPEC §2.1.
    pub const ALL: [EdgeType; 6] = [
        Self::ResolvesTo,
        Self::UsesNs,
        Self::AliasOf,
        Self::UsesMx,
        Self::LinksTo,
        Self::UsesCert,
    ];

    /// The wire name, e.g. `RESOLVES_TO`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ResolvesTo => "RESOLVES_TO",
            Self::UsesNs => "USES_NS",
            Self::AliasOf => "ALIAS_OF",
            Self::UsesMx => "USES_MX",
            Self::LinksTo => "LINKS_TO",
            Self::UsesCert => "USES_CERT",
        }
    }
}

impl fmt::Display for EdgeType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A directed, typed edge observed by one probe in one run.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Edge {
    /// The edge type, serialised as `type`.
    #[serde(rename = "type")]
    pub kind: EdgeType,
    /// The domain the edge starts at.
    pub source: String,
    /// A domain, an address, or a certificate's `spki_sha256`, by `kind`.
    pub target: String,
    /// The task's observation time.
    pub observed_at: Timestamp,
    /// The probe that observed the edge.
    pub probe_id: String,
    /// The run the edge was observed in.
    pub run_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts() -> Timestamp {
        "2025-08-10T16:45:12.1234Z".parse().expect("valid")
    }

    #[test]
    fn field_names_and_order_match_the_original() {
        let d = NodeDomain {
            host: "www.example.com".into(),
            apex: "example.com".into(),
            first_seen: ts(),
            last_seen: ts(),
        };
        assert_eq!(
            serde_json::to_string(&d).expect("serialises"),
            r#"{"host":"www.example.com","apex":"example.com","first_seen":"2025-08-10T16:45:12.1234Z","last_seen":"2025-08-10T16:45:12.1234Z"}"#
        );
        let ip = NodeIp {
            ip: "2001:db8:0:0:0:0:0:1".parse().expect("ip"),
            first_seen: ts(),
            last_seen: ts(),
        };
        assert_eq!(
            serde_json::to_string(&ip).expect("serialises"),
            r#"{"ip":"2001:db8::1","first_seen":"2025-08-10T16:45:12.1234Z","last_seen":"2025-08-10T16:45:12.1234Z"}"#
        );
        let e = Edge {
            kind: EdgeType::AliasOf,
            source: "a.example".into(),
            target: "b.example".into(),
            observed_at: ts(),
            probe_id: "p".into(),
            run_id: "r".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).expect("serialises"),
            r#"{"type":"ALIAS_OF","source":"a.example","target":"b.example","observed_at":"2025-08-10T16:45:12.1234Z","probe_id":"p","run_id":"r"}"#
        );
    }

    #[test]
    fn cert_has_original_fields_then_additions() {
        let c = NodeCert {
            spki_sha256: "abc=".into(),
            subject_cn: String::new(),
            issuer_cn: "CA".into(),
            not_before: ts(),
            not_after: ts(),
            sans: vec![],
            fingerprint_sha256: "00".into(),
            verified: false,
            verify_error: Some(VerifyError::UnknownIssuer),
        };
        let json = serde_json::to_string(&c).expect("serialises");
        assert_eq!(
            json,
            r#"{"spki_sha256":"abc=","subject_cn":"","issuer_cn":"CA","not_before":"2025-08-10T16:45:12.1234Z","not_after":"2025-08-10T16:45:12.1234Z","sans":[],"fingerprint_sha256":"00","verified":false,"verify_error":"unknown_issuer"}"#
        );
        let verified = NodeCert {
            verified: true,
            verify_error: None,
            ..c
        };
        assert!(
            serde_json::to_string(&verified)
                .expect("serialises")
                .ends_with(r#""verified":true,"verify_error":null}"#)
        );
    }
}

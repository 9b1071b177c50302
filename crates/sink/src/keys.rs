//! Dedup keys: the original key strings (SPEC §3.9), stored as 16-byte digests.

use std::fmt;
use std::net::IpAddr;

use sha2::{Digest, Sha256};
use spyder_model::EdgeType;

/// A stored dedup key: the first 16 bytes of the SHA-256 of the key string.
pub type KeyDigest = [u8; 16];

/// One dedup key. Its `Display` is the key string of the original Go SPYDER
/// (`nodeip|<ip>`, `domain|<host>`, `cert|<spki>`, `edge|<source>|<TYPE>|<target>`)
/// or spyder's added `queued|<host>`, `crawled|<host>` and `crawling|<host>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DedupKey<'a> {
    /// `nodeip|<ip>`: an address node (IPv6 per RFC 5952).
    NodeIp(IpAddr),
    /// `domain|<host>`: a domain node.
    Domain(&'a str),
    /// `cert|<spki_sha256>`: a certificate node.
    Cert(&'a str),
    /// `edge|<source>|<TYPE>|<target>`: an edge.
    Edge {
        /// The edge's source domain.
        source: &'a str,
        /// The edge type, written as its wire name.
        kind: EdgeType,
        /// The edge's target.
        target: &'a str,
    },
    /// `queued|<host>`: a host already queued or crawled (SPEC §3.10).
    Queued(&'a str),
    /// `crawled|<host>` (added): a host whose crawl's records are safe; a discovered
    /// queue item for it is skipped instead of crawled again (SPEC §3.6: a host is
    /// crawled once per run).
    Crawled(&'a str),
    /// `crawling|<host>` (added): some probe took an item for the host; a discovered
    /// copy that arrives meanwhile is skipped (the taken item is crawled, or comes
    /// back from its expired lease).
    Crawling(&'a str),
}

impl DedupKey<'_> {
    /// The first 16 bytes of SHA-256 over the key string.
    pub fn digest(&self) -> KeyDigest {
        let mut hasher = HashWriter(Sha256::new());
        // Writing into a hasher cannot fail.
        let _ = fmt::write(&mut hasher, format_args!("{self}"));
        let full = hasher.0.finalize();
        let mut digest = [0u8; 16];
        digest.copy_from_slice(&full[..16]);
        digest
    }
}

impl fmt::Display for DedupKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NodeIp(ip) => write!(f, "nodeip|{ip}"),
            Self::Domain(host) => write!(f, "domain|{host}"),
            Self::Cert(spki) => write!(f, "cert|{spki}"),
            Self::Edge {
                source,
                kind,
                target,
            } => write!(f, "edge|{source}|{kind}|{target}"),
            Self::Queued(host) => write!(f, "queued|{host}"),
            Self::Crawled(host) => write!(f, "crawled|{host}"),
            Self::Crawling(host) => write!(f, "crawling|{host}"),
        }
    }
}

/// Feeds formatted text straight into the hash, without building the string.
struct HashWriter(Sha256);

impl fmt::Write for HashWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

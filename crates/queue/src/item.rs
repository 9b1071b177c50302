//! The Redis queue item of SPEC §2.3: `{"host":"example.com","ts":1723300000,"attempt":0}`
//! in this key order; our producers append `"id":"<16 hex>"`, and the RedisSink
//! also `"via":"discovery"` (a host a probe found, not one a user asked for).
//!
//! Items from other producers (the original Go seed tool has no `id`; others may add
//! fields) are accepted and kept byte-exact: a [`QueueItem`] remembers its raw text,
//! which is what `LREM` acks and leases key on. Only a requeue rewrites `attempt`.

use serde::Deserialize;
use spyder_model::{HostError, HostName};

/// A decoded queue item with its exact raw text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueItem {
    raw: String,
    /// The item's host, normalised per SPEC §3.3.
    pub host: HostName,
    /// Unix seconds of the first enqueue (0 when the item has no `ts`).
    pub ts: i64,
    /// How many times the item was requeued, from 0.
    pub attempt: u32,
    /// Our producers' 16-hex id; `None` for items without one (the Go seed tool's).
    pub id: Option<String>,
    /// `"via":"discovery"`: queued by a probe's sink (continuous mode). Such an item is
    /// skipped when its host's crawl is already marked done; items from `seed` or the
    /// API are always crawled ("seeding twice crawls twice").
    pub discovered: bool,
    /// An added W3C `traceparent` (SPEC §3.14): the trace this item's crawl joins.
    /// Old items have none and stay valid.
    pub traceparent: Option<String>,
}

/// Why a raw item cannot be crawled (it goes to `<key>:dead`).
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    /// The raw text does not decode: not JSON, no string `host`, or a field of the wrong type.
    #[error("not a queue item: {0}")]
    Json(#[from] serde_json::Error),
    /// The item's `host` is not a valid host name.
    #[error("invalid host {host:?}: {error}")]
    Host {
        /// The `host` as the item holds it.
        host: String,
        /// Why it was rejected: one of the reasons of SPEC §3.3.
        error: HostError,
    },
}

#[derive(Deserialize)]
struct Wire {
    host: String,
    #[serde(default)]
    ts: i64,
    #[serde(default)]
    attempt: u32,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    via: Option<String>,
    #[serde(default)]
    traceparent: Option<String>,
}

/// Whether `text` is a W3C `traceparent` (version 00): `00-<32 hex trace id>-<16 hex
/// span id>-<2 hex flags>`, lower-case, neither id all zeros.
pub fn is_traceparent(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, span, flags]
        if *version == "00" && hex(trace, 32) && nonzero(trace) && hex(span, 16)
            && nonzero(span) && hex(flags, 2))
}

/// The `via` value of discovered items.
const VIA_DISCOVERY: &str = "discovery";

impl QueueItem {
    /// A fresh item for `host`, enqueued now, attempt 0, with a random 16-hex `id`.
    pub fn new(host: HostName, ts: i64) -> Self {
        Self::fresh(host, ts, false)
    }

    /// A fresh item for a discovered `host`: like [`QueueItem::new`], plus
    /// `"via":"discovery"`.
    pub fn discovered(host: HostName, ts: i64) -> Self {
        Self::fresh(host, ts, true)
    }

    fn fresh(host: HostName, ts: i64, discovered: bool) -> Self {
        let id = format!("{:016x}", rand::random::<u64>());
        let via = if discovered {
            format!(r#","via":"{VIA_DISCOVERY}""#)
        } else {
            String::new()
        };
        let raw = format!(
            r#"{{"host":{},"ts":{ts},"attempt":0,"id":"{id}"{via}}}"#,
            serde_json::Value::String(host.to_string())
        );
        Self {
            raw,
            host,
            ts,
            attempt: 0,
            id: Some(id),
            discovered,
            traceparent: None,
        }
    }

    /// This fresh item with `"traceparent":"<value>"` appended: the crawl of its host
    /// continues that trace (a discovery carries the trace of the crawl that found it).
    pub fn with_traceparent(mut self, traceparent: &str) -> Self {
        let field = format!(
            r#","traceparent":{}}}"#,
            serde_json::Value::String(traceparent.to_owned())
        );
        if self.raw.ends_with('}') {
            self.raw.pop();
            self.raw.push_str(&field);
            self.traceparent = Some(traceparent.to_owned());
        }
        self
    }

    /// Decodes `raw`, keeping it byte-exact; the host is normalised per SPEC §3.3.
    pub fn decode(raw: &str) -> Result<Self, ItemError> {
        let wire: Wire = serde_json::from_str(raw)?;
        let host = HostName::from_input(&wire.host).map_err(|error| ItemError::Host {
            host: wire.host.clone(),
            error,
        })?;
        Ok(Self {
            raw: raw.to_owned(),
            host,
            ts: wire.ts,
            attempt: wire.attempt,
            id: wire.id,
            discovered: wire.via.as_deref() == Some(VIA_DISCOVERY),
            traceparent: wire.traceparent,
        })
    }

    /// The exact text in Redis.
    pub fn raw(&self) -> &str {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_checked_by_the_w3c_rules() {
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }

    #[test]
    fn a_traceparent_is_appended_and_decodes_back() {
        let host = HostName::from_input("found.example").expect("valid");
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let item = QueueItem::discovered(host, 7).with_traceparent(tp);
        assert!(
            item.raw()
                .ends_with(&format!(r#","via":"discovery","traceparent":"{tp}"}}"#)),
            "{}",
            item.raw()
        );
        let back = QueueItem::decode(item.raw()).expect("decodes");
        assert_eq!(back.traceparent.as_deref(), Some(tp));
        assert_eq!(back, item);
        // Old items have none.
        let old = QueueItem::decode(r#"{"host":"a.example","ts":1,"attempt":0}"#).expect("ok");
        assert_eq!(old.traceparent, None);
    }

    #[test]
    fn discovered_items_say_so_and_decode_back() {
        let host = HostName::from_input("found.example").expect("valid");
        let item = QueueItem::discovered(host, 7);
        assert!(
            item.raw().ends_with(r#","via":"discovery"}"#),
            "{}",
            item.raw()
        );
        let back = QueueItem::decode(item.raw()).expect("decodes");
        assert!(back.discovered);
        assert_eq!(back, item);
        let seeded = QueueItem::new(HostName::from_input("a.example").expect("valid"), 7);
        assert!(!QueueItem::decode(seeded.raw()).expect("decodes").discovered);
    }

    #[test]
    fn new_items_have_the_original_key_order_plus_id() {
        let host = HostName::from_input("Example.COM").expect("valid");
        let item = QueueItem::new(host, 1_723_300_000);
        let raw = item.raw();
        assert!(
            raw.starts_with(r#"{"host":"example.com","ts":1723300000,"attempt":0,"id":""#),
            "{raw}"
        );
        assert_eq!(item.id.as_deref().map(str::len), Some(16));
        assert_eq!(QueueItem::decode(raw).expect("round trip"), item);
    }

    #[test]
    fn foreign_items_are_kept_byte_exact() {
        let raw = r#"{"host":"WWW.Example.com","ts":5,"attempt":2,"extra":[1,2]}"#;
        let item = QueueItem::decode(raw).expect("accepted");
        assert_eq!(item.raw(), raw);
        assert_eq!(item.host.as_str(), "www.example.com");
        assert_eq!((item.ts, item.attempt, item.id.as_deref()), (5, 2, None));
    }

    #[test]
    fn poison_is_typed() {
        assert!(matches!(
            QueueItem::decode("not json"),
            Err(ItemError::Json(_))
        ));
        assert!(matches!(
            QueueItem::decode(r#"{"host":"bad_host","ts":1,"attempt":0}"#),
            Err(ItemError::Host { .. })
        ));
    }
}

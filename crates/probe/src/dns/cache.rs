//! The answer cache: an LRU of `(name, type)` entries that expire with their TTL.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use lru::LruCache;
use tokio::time::Instant;

use super::{Answer, lock};

/// Longest life of a positive answer.
pub(crate) const MAX_POSITIVE_TTL: Duration = Duration::from_secs(3600);
/// Longest life of a negative (NXDOMAIN or NODATA) answer.
pub(crate) const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(300);

/// A cache key: the normalised name and the record type.
pub(crate) type Key = (String, RecordType);

#[derive(Debug)]
struct Entry {
    answer: Answer,
    stored: Instant,
    expires: Instant,
}

/// LRU answer cache; a capacity of zero disables it.
#[derive(Debug)]
pub(crate) struct Cache {
    lru: Option<Mutex<LruCache<Key, Entry>>>,
}

impl Cache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            lru: NonZeroUsize::new(capacity).map(|c| Mutex::new(LruCache::new(c))),
        }
    }

    /// The live answer for `key`, its record TTLs lowered by the time it has been held.
    pub(crate) fn get(&self, key: &Key) -> Option<Answer> {
        let mut lru = lock(self.lru.as_ref()?);
        let now = Instant::now();
        let entry = lru.get(key)?;
        if entry.expires <= now {
            lru.pop(key);
            return None;
        }
        let held = u32::try_from(now.duration_since(entry.stored).as_secs()).unwrap_or(u32::MAX);
        let mut answer = entry.answer.clone();
        for r in &mut answer.records {
            r.ttl = r.ttl.saturating_sub(held);
        }
        Some(answer)
    }

    /// Keeps `answer` for `ttl`.
    pub(crate) fn put(&self, key: Key, answer: Answer, ttl: Duration) {
        let Some(lru) = &self.lru else {
            return;
        };
        if ttl.is_zero() {
            return;
        }
        let stored = Instant::now();
        let entry = Entry {
            answer,
            stored,
            expires: stored + ttl,
        };
        lock(lru).put(key, entry);
    }
}

/// How long a reply to a question of type `qtype` may be cached, `None` when never.
///
/// Positive answers (records of the asked type present) live as long as their
/// smallest TTL, at most [`MAX_POSITIVE_TTL`]. NXDOMAIN and NODATA live as long as the
/// SOA minimum (the smaller of the SOA record's TTL and its `minimum` field, and of any
/// CNAME TTL on the way), at most [`MAX_NEGATIVE_TTL`]; without an SOA they are not
/// cached. Other response codes are never cached.
pub(crate) fn cache_ttl(msg: &Message, qtype: RecordType) -> Option<Duration> {
    let rcode = msg.metadata.response_code;
    if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
        return None;
    }
    let min_answer_ttl = msg.answers.iter().map(|r| r.ttl).min();
    let positive =
        rcode == ResponseCode::NoError && msg.answers.iter().any(|r| r.record_type() == qtype);
    let secs = if positive {
        Duration::from_secs(u64::from(min_answer_ttl?)).min(MAX_POSITIVE_TTL)
    } else {
        let soa = msg.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?;
        let ttl = min_answer_ttl.map_or(soa, |a| a.min(soa));
        Duration::from_secs(u64::from(ttl)).min(MAX_NEGATIVE_TTL)
    };
    (!secs.is_zero()).then_some(secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, SOA};
    use hickory_proto::rr::{Name, Record};

    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(ttl: u32) -> Record {
        Record::from_rdata(name("a.example."), ttl, RData::A(A(Ipv4Addr::LOCALHOST)))
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let data = SOA::new(name("ns.example."), name("h.example."), 1, 1, 1, 1, minimum);
        Record::from_rdata(name("example."), ttl, RData::SOA(data))
    }

    fn msg(rcode: ResponseCode, answers: Vec<Record>, authorities: Vec<Record>) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        m.answers = answers;
        m.authorities = authorities;
        m
    }

    #[test]
    fn positive_answers_live_their_smallest_ttl_capped() {
        let m = msg(ResponseCode::NoError, vec![a(120), a(60)], vec![]);
        assert_eq!(cache_ttl(&m, RecordType::A), Some(Duration::from_secs(60)));
        let m = msg(ResponseCode::NoError, vec![a(86_400)], vec![]);
        assert_eq!(cache_ttl(&m, RecordType::A), Some(MAX_POSITIVE_TTL));
        let m = msg(ResponseCode::NoError, vec![a(0)], vec![]);
        assert_eq!(cache_ttl(&m, RecordType::A), None);
    }

    #[test]
    fn negative_answers_live_the_soa_minimum_capped() {
        let m = msg(ResponseCode::NXDomain, vec![], vec![soa(300, 60)]);
        assert_eq!(cache_ttl(&m, RecordType::A), Some(Duration::from_secs(60)));
        let m = msg(ResponseCode::NoError, vec![], vec![soa(30, 600)]);
        assert_eq!(cache_ttl(&m, RecordType::A), Some(Duration::from_secs(30)));
        let m = msg(ResponseCode::NoError, vec![], vec![soa(86_400, 86_400)]);
        assert_eq!(cache_ttl(&m, RecordType::A), Some(MAX_NEGATIVE_TTL));
        let m = msg(ResponseCode::NXDomain, vec![], vec![]);
        assert_eq!(cache_ttl(&m, RecordType::A), None, "no SOA: not cached");
        // A CNAME to a name without the type is NODATA, bounded by the CNAME TTL too.
        let cname = Record::from_rdata(name("x.example."), 10, RData::CNAME(CNAME(name("a."))));
        let m = msg(ResponseCode::NoError, vec![cname], vec![soa(300, 60)]);
        assert_eq!(cache_ttl(&m, RecordType::A), Some(Duration::from_secs(10)));
    }

    #[test]
    fn errors_are_never_cached() {
        let m = msg(ResponseCode::ServFail, vec![a(60)], vec![soa(60, 60)]);
        assert_eq!(cache_ttl(&m, RecordType::A), None);
        let m = msg(ResponseCode::Refused, vec![], vec![]);
        assert_eq!(cache_ttl(&m, RecordType::A), None);
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire_and_age() {
        let cache = Cache::new(2);
        let key = ("a.example".to_owned(), RecordType::A);
        let answer = Answer {
            rcode: ResponseCode::NoError,
            records: vec![a(60)],
        };
        cache.put(key.clone(), answer, Duration::from_secs(60));
        tokio::time::advance(Duration::from_secs(20)).await;
        let hit = cache.get(&key).unwrap();
        assert_eq!(hit.records[0].ttl, 40);
        tokio::time::advance(Duration::from_secs(41)).await;
        assert!(cache.get(&key).is_none());
    }

    #[tokio::test]
    async fn lru_evicts_and_zero_disables() {
        let answer = Answer {
            rcode: ResponseCode::NoError,
            records: vec![],
        };
        let ttl = Duration::from_secs(60);
        let cache = Cache::new(1);
        cache.put(("a".into(), RecordType::A), answer.clone(), ttl);
        cache.put(("b".into(), RecordType::A), answer.clone(), ttl);
        assert!(cache.get(&("a".into(), RecordType::A)).is_none());
        assert!(cache.get(&("b".into(), RecordType::A)).is_some());
        let off = Cache::new(0);
        off.put(("a".into(), RecordType::A), answer, ttl);
        assert!(off.get(&("a".into(), RecordType::A)).is_none());
    }
}

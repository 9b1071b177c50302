//! robots.txt fetch rules, parsing and cache (SPEC §3.6).
//!
//! Parsing follows RFC 9309 through the `texting_robots` crate, which selects the
//! group whose `User-agent` equals our product token case-insensitively, merges
//! every such group, and falls back to the `*` group. `Crawl-delay` is ignored.
//! What a fetch outcome means is decided by [`RobotsRules::from_response`] and
//! [`RobotsRules::unreachable`]; [`RobotsCache`] keeps the result per host.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;

/// Most robots.txt bytes read and parsed (RFC 9309 asks for at least 500 KiB).
pub const ROBOTS_MAX_BYTES: usize = 500 * 1024;

/// Default number of hosts whose rules [`RobotsCache`] keeps.
pub const ROBOTS_CACHE_CAPACITY: usize = 4096;

/// Default time a cached robots.txt verdict stays valid.
pub const ROBOTS_CACHE_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The product token of a `User-Agent`: the text before the first `/`, trimmed,
/// up to the first white space. `"SPYDERProbe/1.0 (+https://…)"` gives `"SPYDERProbe"`.
pub fn product_token(user_agent: &str) -> &str {
    let head = user_agent.split('/').next().unwrap_or(user_agent).trim();
    head.split(char::is_whitespace).next().unwrap_or(head)
}

/// A `User-agent` value no product token can equal: [`product_token`] never
/// contains a `/`.
const NO_AGENT_GROUP: &[u8] = b"User-agent: spyder/no-group\n";

/// `body` behind a group that applies to no crawler, so that rules before the
/// first `User-agent` line belong to no one (RFC 9309 §2.2.1: a rule outside
/// any group is ignored). `texting_robots` drops such rules when the file has
/// a `User-agent` line, but applies them to everyone when it has none; with
/// this line first it always has one.
///
/// The byte-order mark `texting_robots` skips at the very start (each of its
/// three bytes optional) is skipped here, as the line now comes first.
fn outside_any_group(body: &[u8]) -> Vec<u8> {
    let mut rest = body;
    for bom_byte in [0xef, 0xbb, 0xbf] {
        if let Some((&first, tail)) = rest.split_first()
            && first == bom_byte
        {
            rest = tail;
        }
    }
    let mut out = Vec::with_capacity(NO_AGENT_GROUP.len() + rest.len());
    out.extend_from_slice(NO_AGENT_GROUP);
    out.extend_from_slice(rest);
    out
}

/// What robots.txt lets us fetch from one host.
#[derive(Debug)]
pub enum RobotsRules {
    /// No restriction: robots.txt is absent (4xx) or unusable.
    AllowAll,
    /// Nothing may be fetched: robots.txt failed with 5xx or could not be reached.
    DisallowAll,
    /// The rules of the group that applies to our product token.
    Parsed(ParsedRobots),
}

/// A parsed robots.txt, reduced to the group selected for one product token.
pub struct ParsedRobots {
    robot: texting_robots::Robot,
}

impl fmt::Debug for ParsedRobots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedRobots").finish_non_exhaustive()
    }
}

impl ParsedRobots {
    /// True when the group allows `path` (path plus optional query, e.g. `/a?b`).
    pub fn allows(&self, path: &str) -> bool {
        self.robot.allowed(path)
    }
}

impl RobotsRules {
    /// Interprets a robots.txt response (RFC 9309 §2.3.1).
    ///
    /// - 2xx: the body (at most [`ROBOTS_MAX_BYTES`] are looked at) is parsed for the
    ///   product token of `user_agent`; a body that cannot be parsed allows all.
    /// - 4xx, including 401 and 403: allow all.
    /// - 5xx and any other status (1xx, or a 3xx left after the redirect limit): disallow all.
    pub fn from_response(status: u16, body: &[u8], user_agent: &str) -> Self {
        match status {
            200..=299 => {
                let body = outside_any_group(&body[..body.len().min(ROBOTS_MAX_BYTES)]);
                match texting_robots::Robot::new(product_token(user_agent), &body) {
                    Ok(robot) => Self::Parsed(ParsedRobots { robot }),
                    Err(error) => {
                        tracing::debug!(%error, "unparsable robots.txt; allowing all");
                        Self::AllowAll
                    }
                }
            }
            400..=499 => Self::AllowAll,
            _ => Self::DisallowAll,
        }
    }

    /// The verdict when robots.txt could not be fetched at all (timeout, refused
    /// connection, TLS failure): disallow all.
    pub fn unreachable() -> Self {
        Self::DisallowAll
    }

    /// True when `path` (path plus optional query) may be fetched.
    pub fn allows(&self, path: &str) -> bool {
        match self {
            Self::AllowAll => true,
            Self::DisallowAll => false,
            Self::Parsed(parsed) => parsed.allows(path),
        }
    }
}

/// Per-host robots.txt verdicts: a bounded LRU whose entries expire after a TTL.
///
/// Ages are measured with [`tokio::time::Instant`], so tests on a paused tokio
/// clock can move time forward.
pub struct RobotsCache {
    ttl: Duration,
    entries: Mutex<LruCache<String, Entry>>,
}

#[derive(Debug)]
struct Entry {
    stored: Instant,
    rules: Arc<RobotsRules>,
}

impl fmt::Debug for RobotsCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RobotsCache")
            .field("ttl", &self.ttl)
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl Default for RobotsCache {
    /// [`ROBOTS_CACHE_CAPACITY`] hosts for [`ROBOTS_CACHE_TTL`].
    fn default() -> Self {
        Self::new(ROBOTS_CACHE_CAPACITY, ROBOTS_CACHE_TTL)
    }
}

impl RobotsCache {
    /// A cache of at most `capacity` hosts (at least one) whose entries live `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            ttl,
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// The rules stored for `host`, unless absent or older than the TTL (an
    /// expired entry is dropped).
    pub fn get(&self, host: &str) -> Option<Arc<RobotsRules>> {
        let now = Instant::now();
        let mut entries = self.lock();
        let fresh = match entries.get(host) {
            None => return None,
            Some(entry) if now.saturating_duration_since(entry.stored) < self.ttl => {
                Some(Arc::clone(&entry.rules))
            }
            Some(_) => None,
        };
        if fresh.is_none() {
            entries.pop(host);
        }
        fresh
    }

    /// Stores `rules` for `host`, replacing any previous entry and evicting the
    /// least recently used host when full.
    pub fn insert(&self, host: &str, rules: Arc<RobotsRules>) {
        let entry = Entry {
            stored: Instant::now(),
            rules,
        };
        self.lock().put(host.to_owned(), entry);
    }

    /// Number of hosts held (expired entries count until looked up or evicted).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when no host is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, LruCache<String, Entry>> {
        // The map holds no invariant a panicking holder could break.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UA: &str = "SPYDERProbe/1.0 (+https://github.com/gustycube/spyder)";

    #[test]
    fn product_token_is_the_text_before_the_slash() {
        assert_eq!(product_token(UA), "SPYDERProbe");
        assert_eq!(product_token("  SPYDERProbe  /1.0"), "SPYDERProbe");
        assert_eq!(product_token("Plain"), "Plain");
        assert_eq!(product_token("Bot (+http://x)"), "Bot");
        assert_eq!(product_token(""), "");
    }

    #[test]
    fn status_classes() {
        let body = b"User-agent: *\nDisallow: /private\n";
        let ok = RobotsRules::from_response(200, body, UA);
        assert!(matches!(ok, RobotsRules::Parsed(_)));
        assert!(ok.allows("/"));
        assert!(!ok.allows("/private/x"));

        for status in [400, 401, 403, 404, 410, 429, 499] {
            let rules = RobotsRules::from_response(status, body, UA);
            assert!(matches!(rules, RobotsRules::AllowAll), "{status}");
            assert!(rules.allows("/private/x"), "{status}");
        }
        for status in [500, 503, 599, 100, 302, 600] {
            let rules = RobotsRules::from_response(status, body, UA);
            assert!(matches!(rules, RobotsRules::DisallowAll), "{status}");
            assert!(!rules.allows("/"), "{status}");
        }
        assert!(!RobotsRules::unreachable().allows("/"));
    }

    #[test]
    fn empty_or_garbage_body_allows_all() {
        assert!(RobotsRules::from_response(200, b"", UA).allows("/"));
        assert!(RobotsRules::from_response(200, &[0xff, 0x00, 0xfe, b'<'], UA).allows("/x"));
        let html = b"<html><body>Not a robots file</body></html>";
        assert!(RobotsRules::from_response(204, html, UA).allows("/anything"));
    }

    #[test]
    fn group_selected_by_product_token_case_insensitively() {
        let body = b"User-agent: *\nDisallow: /\n\nUser-agent: spyderprobe\nDisallow: /mine\n";
        let rules = RobotsRules::from_response(200, body, UA);
        assert!(rules.allows("/"));
        assert!(rules.allows("/other"));
        assert!(!rules.allows("/mine"));
        assert!(!rules.allows("/mine/deeper?q=1"));

        // Another crawler's group does not apply to us; `*` does.
        let body = b"User-agent: OtherBot\nDisallow: /\n\nUser-agent: *\nDisallow: /star\n";
        let rules = RobotsRules::from_response(200, body, UA);
        assert!(rules.allows("/"));
        assert!(!rules.allows("/star"));

        // Without our group or `*`, everything is allowed.
        let body = b"User-agent: OtherBot\nDisallow: /\n";
        assert!(RobotsRules::from_response(200, body, UA).allows("/"));
    }

    #[test]
    fn rules_outside_any_group_apply_to_no_one() {
        // RFC 9309 §2.2.1: without a group, no rule applies.
        for body in [
            &b"Disallow: /\n"[..],
            b"Allow: /x/\nDisallow: /\n",
            b"\xef\xbb\xbfDisallow: /\n",
            b"# comment\r\nDisallow: /\r\nSitemap: https://s.example/map.xml\r\n",
        ] {
            let rules = RobotsRules::from_response(200, body, UA);
            assert!(rules.allows("/"), "{:?}", String::from_utf8_lossy(body));
            assert!(rules.allows("/y"), "{:?}", String::from_utf8_lossy(body));
        }
        // Before the first group they are ignored too; the groups still count.
        let body = b"Disallow: /\nUser-agent: *\nDisallow: /star\n";
        let rules = RobotsRules::from_response(200, body, UA);
        assert!(rules.allows("/"));
        assert!(!rules.allows("/star"));
        let body = b"Disallow: /\nUser-agent: OtherBot\nDisallow: /other\n";
        assert!(RobotsRules::from_response(200, body, UA).allows("/"));
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_first_group() {
        for body in [
            &b"\xef\xbb\xbfUser-agent: *\nDisallow: /x\n"[..],
            b"\xef\xbbUser-agent: *\nDisallow: /x\n",
            b"\xefUser-agent: *\nDisallow: /x\n",
        ] {
            let rules = RobotsRules::from_response(200, body, UA);
            assert!(!rules.allows("/x"), "{:?}", String::from_utf8_lossy(body));
            assert!(rules.allows("/"), "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn longest_match_and_allow_override() {
        let body = b"User-agent: SPYDERPROBE\nDisallow: /a\nAllow: /a/open\n";
        let rules = RobotsRules::from_response(200, body, UA);
        assert!(!rules.allows("/a/closed"));
        assert!(rules.allows("/a/open/page"));
        assert!(rules.allows("/b"));
    }

    #[test]
    fn only_the_first_500_kib_are_read() {
        // A disallow rule placed past the cap is never seen.
        let mut body = b"User-agent: *\nDisallow: /early\n".to_vec();
        body.resize(ROBOTS_MAX_BYTES + 10, b'\n');
        body.extend_from_slice(b"User-agent: *\nDisallow: /\n");
        let rules = RobotsRules::from_response(200, &body, UA);
        assert!(!rules.allows("/early"));
        assert!(rules.allows("/late"));
    }

    #[test]
    fn cache_is_bounded_lru() {
        let cache = RobotsCache::new(3, ROBOTS_CACHE_TTL);
        assert!(cache.is_empty());
        for i in 0..10 {
            cache.insert(&format!("h{i}.example"), Arc::new(RobotsRules::AllowAll));
            assert!(cache.len() <= 3);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.get("h0.example").is_none());
        assert!(cache.get("h9.example").is_some());

        // Touching h7 makes h8 the least recently used.
        assert!(cache.get("h7.example").is_some());
        cache.insert("new.example", Arc::new(RobotsRules::DisallowAll));
        assert!(cache.get("h8.example").is_none());
        assert!(cache.get("h7.example").is_some());
        let rules = cache.get("new.example").expect("just inserted");
        assert!(!rules.allows("/"));
    }

    #[test]
    fn default_cache_holds_4096_hosts() {
        let cache = RobotsCache::default();
        let rules = Arc::new(RobotsRules::AllowAll);
        for i in 0..5000 {
            cache.insert(&format!("h{i}.example"), Arc::clone(&rules));
        }
        assert_eq!(cache.len(), ROBOTS_CACHE_CAPACITY);
    }

    #[tokio::test(start_paused = true)]
    async fn cache_entries_expire_after_the_ttl() {
        let cache = RobotsCache::default();
        cache.insert("a.example", Arc::new(RobotsRules::DisallowAll));
        tokio::time::advance(ROBOTS_CACHE_TTL - Duration::from_secs(1)).await;
        assert!(cache.get("a.example").is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(cache.get("a.example").is_none());
        assert_eq!(cache.len(), 0, "the expired entry is dropped");

        // Re-inserting refreshes the age.
        cache.insert("a.example", Arc::new(RobotsRules::AllowAll));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(cache.get("a.example").is_some_and(|r| r.allows("/")));
    }

    #[test]
    fn cache_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<RobotsCache>();
        assert_send_sync::<RobotsRules>();
    }
}

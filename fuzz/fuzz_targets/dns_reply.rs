//! A DNS reply's bytes (what any host can send to our UDP sockets, or a server over
//! TCP) through hickory-proto's decoder and the client's answer handling: question
//! matching, cache TTL, the cache, and step 3's folding of CNAME chains, addresses,
//! name servers and mail exchangers (`spyder_probe::dns::fuzz_reply`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spyder_probe::dns::fuzz_reply;

/// `spyder_probe::dns::resolve::MAX_ALIAS_HOPS` (a private module).
const MAX_ALIAS_HOPS: usize = 8;

fuzz_target!(|data: &[u8]| {
    if let Some((_, _, resolution)) = fuzz_reply(data) {
        assert!(resolution.aliases.len() <= MAX_ALIAS_HOPS);
        for (i, ip) in resolution.addresses.iter().enumerate() {
            assert!(!resolution.addresses[..i].contains(ip), "duplicate address");
        }
    }
});

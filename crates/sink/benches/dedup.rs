//! Dedup costs per crawl (issue #6): the memory backend, and the Redis backend's one
//! round trip per domain against a `redis-server` started for the benchmark.
//!
//! A typical crawl has 10 records (3 domain nodes, 2 IP nodes, 5 edges); with its
//! `queued|` and `crawled|` keys that is 12 dedup keys per call.
//!
//! - `memory::check_and_mark_new` / `_seen`: one call for 12 keys never seen / all seen.
//! - `memory::check`: 12 unseen keys, marking nothing.
//! - `memory::settle_crawl`: what the worker runs per crawl in queue mode: key
//!   digests (SHA-256), `settle_crawl` without discoveries, then the pending marks.
//! - `memory::dedup_records`: the file-mode equivalent.
//! - `redis::check`, `redis::check_and_mark_new`, `redis::settle_crawl`: the same
//!   against `RedisDedup`; each iteration is one `EVALSHA` round trip on loopback.
//!
//! The Redis benchmarks are skipped, with a note, when `redis-server` is not on PATH.
//!
//! ```sh
//! cargo bench -p spyder-sink --bench dedup
//! ```

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use divan::{Bencher, black_box};
use spyder_model::{Edge, EdgeType, HostName, NodeDomain, NodeIp, Records, Timestamp};
use spyder_sink::{Dedup, KeyDigest, MemoryDedup, crawl_keys, dedup_records, settle_crawl};

fn main() {
    divan::main();
}

/// The dedup defaults of the configuration (`dedup.ttl`, `dedup.memory_max_entries`).
const TTL: Duration = Duration::from_secs(24 * 3600);
const MEMORY_MAX_ENTRIES: usize = 2_000_000;

/// Numbers the crawls, so every "new" crawl has hosts and keys never seen before.
static NEXT_CRAWL: AtomicU32 = AtomicU32::new(0);

/// One crawl's host and records.
struct Crawl {
    host: HostName,
    records: Records,
}

impl Crawl {
    /// A crawl with records no other crawl of the run has.
    fn fresh() -> Self {
        let n = NEXT_CRAWL.fetch_add(1, Ordering::Relaxed);
        let host = HostName::from_input(&format!("www.shop{n}.example.com"))
            .expect("benchmark hosts are valid");
        let links = [
            format!("cdn{n}.static-assets.net"),
            format!("blog{n}.example.org"),
        ];
        let ips = [
            IpAddr::V4(Ipv4Addr::from(0xC000_0000 | (n << 1))),
            IpAddr::V4(Ipv4Addr::from(0xC000_0000 | (n << 1) | 1)),
        ];
        let now = Timestamp::now();
        let domain = |host: &str| {
            let h = HostName::from_input(host).expect("benchmark hosts are valid");
            NodeDomain {
                apex: h.apex().to_owned(),
                host: h.into_string(),
                first_seen: now,
                last_seen: now,
            }
        };
        let edge = |kind, target: &str| Edge {
            kind,
            source: host.as_str().to_owned(),
            target: target.to_owned(),
            observed_at: now,
            probe_id: "bench-1".to_owned(),
            run_id: "run-1".to_owned(),
        };
        let records = Records {
            nodes_domain: vec![domain(host.as_str()), domain(&links[0]), domain(&links[1])],
            nodes_ip: ips
                .iter()
                .map(|&ip| NodeIp {
                    ip,
                    first_seen: now,
                    last_seen: now,
                })
                .collect(),
            nodes_cert: Vec::new(),
            edges: vec![
                edge(EdgeType::ResolvesTo, &ips[0].to_string()),
                edge(EdgeType::ResolvesTo, &ips[1].to_string()),
                edge(EdgeType::UsesNs, "ns1.dns-provider.net"),
                edge(EdgeType::LinksTo, &links[0]),
                edge(EdgeType::LinksTo, &links[1]),
            ],
            status: Vec::new(),
        };
        Self { host, records }
    }

    /// The crawl's 12 keys, in `settle_crawl`'s order: `queued|`, `crawled|`, then one
    /// per record.
    fn keys(&self) -> Vec<KeyDigest> {
        crawl_keys(&self.host, &self.records)
    }
}

mod memory {
    use super::*;

    fn dedup() -> MemoryDedup {
        MemoryDedup::new(TTL, MEMORY_MAX_ENTRIES)
    }

    #[divan::bench]
    fn check_and_mark_new(bencher: Bencher) {
        let dedup = dedup();
        bencher
            .with_inputs(|| Crawl::fresh().keys())
            .bench_local_refs(|keys| now_or_never(dedup.check_and_mark(keys)));
    }

    #[divan::bench]
    fn check_and_mark_seen(bencher: Bencher) {
        let dedup = dedup();
        let keys = Crawl::fresh().keys();
        now_or_never(dedup.check_and_mark(&keys));
        bencher.bench_local(|| now_or_never(dedup.check_and_mark(black_box(&keys))));
    }

    #[divan::bench]
    fn check(bencher: Bencher) {
        let dedup = dedup();
        let keys = Crawl::fresh().keys();
        bencher.bench_local(|| now_or_never(dedup.check(black_box(&keys))));
    }

    #[divan::bench]
    fn settle_crawl(bencher: Bencher) {
        let dedup = dedup();
        bencher
            .with_inputs(Crawl::fresh)
            .bench_local_values(|crawl| {
                now_or_never(async {
                    let settled =
                        super::settle_crawl(&dedup, &crawl.host, crawl.records, None).await;
                    settled.pending.mark(&dedup).await;
                    settled.records
                })
            });
    }

    #[divan::bench]
    fn dedup_records(bencher: Bencher) {
        let dedup = dedup();
        bencher
            .with_inputs(Crawl::fresh)
            .bench_local_values(|crawl| {
                now_or_never(super::dedup_records(&dedup, &crawl.host, crawl.records))
            });
    }

    /// The memory backend never waits: its futures are ready at the first poll.
    fn now_or_never<T>(future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("the memory dedup answers at once"),
        }
    }
}

mod redis {
    use super::*;
    use spyder_sink::RedisDedup;
    use spyder_testkit::redis::{RedisOptions, RedisServer};
    use tokio::runtime::Runtime;

    /// A `RedisDedup` on its own `redis-server`. Fields drop in order: the client
    /// before the runtime it runs on, the server last.
    struct RedisWorld {
        dedup: RedisDedup,
        runtime: Runtime,
        server: RedisServer,
    }

    impl RedisWorld {
        /// `None`, with a note, when `redis-server` is not on PATH.
        fn start(bench: &str) -> Option<Self> {
            if !redis_server_on_path() {
                eprintln!("note: redis-server is not on PATH; skipping redis::{bench}");
                return None;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            // No AOF: the benchmark measures the round trip, not the disk.
            let server = RedisServer::start_with(RedisOptions {
                appendonly: false,
                maxmemory: None,
            })
            .expect("redis-server starts");
            let dedup = runtime
                .block_on(RedisDedup::connect(&server.addr(), TTL, MEMORY_MAX_ENTRIES))
                .expect("connect to the benchmark redis");
            Some(Self {
                dedup,
                runtime,
                server,
            })
        }

        /// `EVALSHA` calls so far (`INFO commandstats`).
        fn evalsha_calls(&self) -> u64 {
            let info = self
                .server
                .command(&["INFO", "commandstats"])
                .expect("INFO commandstats");
            info.lines()
                .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
                .and_then(|v| v.split(',').next()?.parse().ok())
                .unwrap_or(0)
        }

        /// Asserts that `run` costs exactly one `EVALSHA`.
        fn assert_one_round_trip(&self, run: impl FnOnce()) {
            let before = self.evalsha_calls();
            run();
            assert_eq!(self.evalsha_calls(), before + 1, "one EVALSHA per call");
        }
    }

    fn redis_server_on_path() -> bool {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join("redis-server").is_file())
        })
    }

    #[divan::bench]
    fn check(bencher: Bencher) {
        let Some(world) = RedisWorld::start("check") else {
            return;
        };
        let keys = Crawl::fresh().keys();
        world.assert_one_round_trip(|| {
            world.runtime.block_on(world.dedup.check(&keys));
        });
        bencher.bench_local(|| world.runtime.block_on(world.dedup.check(black_box(&keys))));
    }

    #[divan::bench]
    fn check_and_mark_new(bencher: Bencher) {
        let Some(world) = RedisWorld::start("check_and_mark_new") else {
            return;
        };
        world.assert_one_round_trip(|| {
            world
                .runtime
                .block_on(world.dedup.check_and_mark(&Crawl::fresh().keys()));
        });
        bencher
            .with_inputs(|| Crawl::fresh().keys())
            .bench_local_refs(|keys| world.runtime.block_on(world.dedup.check_and_mark(keys)));
    }

    #[divan::bench]
    fn settle_crawl(bencher: Bencher) {
        let Some(world) = RedisWorld::start("settle_crawl") else {
            return;
        };
        let settle = |crawl: Crawl| {
            world.runtime.block_on(async {
                let settled =
                    super::settle_crawl(&world.dedup, &crawl.host, crawl.records, None).await;
                settled.pending.mark(&world.dedup).await;
                settled.records
            })
        };
        world.assert_one_round_trip(|| {
            settle(Crawl::fresh());
        });
        bencher.with_inputs(Crawl::fresh).bench_local_values(settle);
    }
}

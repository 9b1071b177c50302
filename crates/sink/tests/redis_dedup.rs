//! RedisDedup against a real redis-server: key layout, sharing, round trips, windows.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use spyder_sink::{Dedup, DedupKey, KeyDigest, RedisDedup};
use spyder_testkit::redis::RedisServer;

const TTL: Duration = Duration::from_secs(60);

fn keys(prefix: &str, count: usize) -> Vec<KeyDigest> {
    (0..count)
        .map(|i| DedupKey::Domain(&format!("{prefix}{i}.example")).digest())
        .collect()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The key names of `KEYS *`, from the raw RESP reply.
fn key_names(server: &RedisServer) -> Vec<String> {
    let reply = server.command(&["KEYS", "*"]).expect("KEYS");
    reply
        .split("\r\n")
        .filter(|line| !line.is_empty() && !line.starts_with('*') && !line.starts_with('$'))
        .map(str::to_owned)
        .collect()
}

/// An integer reply (`:N`).
fn integer(server: &RedisServer, args: &[&str]) -> i64 {
    let reply = server.command(args).expect("command");
    reply
        .trim()
        .trim_start_matches(':')
        .parse()
        .unwrap_or_else(|_| panic!("{args:?} answered {reply:?}"))
}

/// `calls` of one command in `INFO commandstats` (0 if never called).
fn command_calls(server: &RedisServer, command: &str) -> u64 {
    command_stats(server)
        .into_iter()
        .find(|(name, _)| name == command)
        .map_or(0, |(_, calls)| calls)
}

fn command_stats(server: &RedisServer) -> Vec<(String, u64)> {
    let reply = server
        .command(&["INFO", "commandstats"])
        .expect("INFO commandstats");
    reply
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, stats) = rest.split_once(':')?;
            let calls = stats
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

async fn connect(server: &RedisServer) -> RedisDedup {
    RedisDedup::connect(&server.addr(), TTL, 10_000)
        .await
        .expect("connect to the test redis")
}

#[tokio::test]
async fn stores_digests_in_one_windowed_set_with_one_expiry() {
    let server = RedisServer::start().expect("redis-server");
    let dedup = connect(&server).await;
    let batch = keys("layout", 5);

    let before = unix_now() / TTL.as_secs();
    assert_eq!(dedup.check_and_mark(&batch).await, vec![false; 5]);
    let after = unix_now() / TTL.as_secs();
    assert_eq!(dedup.check_and_mark(&batch).await, vec![true; 5]);

    let names = key_names(&server);
    assert_eq!(names.len(), 1, "only the window set: {names:?}");
    let name = &names[0];
    let window: u64 = name
        .strip_prefix("spyder:seen:")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected key {name:?}"));
    assert!((before..=after).contains(&window), "window {window}");
    assert_eq!(integer(&server, &["SCARD", name]), 5);
    let ttl = integer(&server, &["TTL", name]);
    let max = 2 * TTL.as_secs() as i64 + 60;
    assert!(ttl >= TTL.as_secs() as i64 && ttl <= max, "TTL {ttl}");
    assert!(names.iter().all(|n| !n.starts_with("seen:")));
}

#[tokio::test]
async fn two_probes_share_what_they_have_seen() {
    let server = RedisServer::start().expect("redis-server");
    let first = connect(&server).await;
    let second = connect(&server).await;
    let shared = keys("shared", 4);
    let only_second = keys("second", 3);

    assert_eq!(first.check_and_mark(&shared).await, vec![false; 4]);
    assert_eq!(second.check_and_mark(&shared).await, vec![true; 4]);
    assert_eq!(second.check_and_mark(&only_second).await, vec![false; 3]);
    assert_eq!(first.check_and_mark(&only_second).await, vec![true; 3]);

    // A key repeated within one call is new only the first time.
    let repeated = [keys("repeat", 1)[0]; 3];
    assert_eq!(
        first.check_and_mark(&repeated).await,
        vec![false, true, true]
    );
    assert!(first.healthy() && second.healthy());
    assert_eq!(first.ping().await, Ok(()));
}

/// B-21: one EVALSHA per `check_and_mark` call, and no other dedup command.
#[tokio::test]
async fn one_round_trip_per_domain() {
    let server = RedisServer::start().expect("redis-server");
    let dedup = connect(&server).await;
    server.command(&["CONFIG", "RESETSTAT"]).expect("RESETSTAT");

    for domain in 0..100 {
        let batch = keys(&format!("d{domain}-"), 20);
        assert_eq!(dedup.check_and_mark(&batch).await, vec![false; 20]);
    }

    let evalsha = command_calls(&server, "evalsha");
    assert_eq!(evalsha, 100);
    // Everything else the client sent (the script's own SISMEMBER/SADD/TTL/EXPIRE and
    // this test's INFO/CONFIG aside).
    let script_or_test = [
        "evalsha",
        "sismember",
        "sadd",
        "ttl",
        "expire",
        "info",
        "config|resetstat",
    ];
    let others: u64 = command_stats(&server)
        .into_iter()
        .filter(|(name, _)| !script_or_test.contains(&name.as_str()))
        .map(|(_, calls)| calls)
        .sum();
    assert!(
        evalsha + others <= 2 * 100,
        "evalsha {evalsha}, others {others}"
    );
    assert_eq!(others, 0);
    // One EXPIRE for the one set written.
    assert!(command_calls(&server, "expire") <= 2);
}

#[tokio::test]
async fn memory_layer_answers_repeats_without_redis() {
    let server = RedisServer::start().expect("redis-server");
    let dedup = connect(&server).await;
    let batch = keys("repeat", 10);
    assert_eq!(dedup.check_and_mark(&batch).await, vec![false; 10]);
    server.command(&["CONFIG", "RESETSTAT"]).expect("RESETSTAT");

    for _ in 0..50 {
        assert_eq!(dedup.check_and_mark(&batch).await, vec![true; 10]);
    }
    assert_eq!(command_calls(&server, "evalsha"), 0);

    // Mixed: only the unknown half goes to Redis, in one call.
    let mut mixed = batch[..5].to_vec();
    mixed.extend(keys("fresh", 5));
    let mut expected = vec![true; 5];
    expected.extend([false; 5]);
    assert_eq!(dedup.check_and_mark(&mixed).await, expected);
    assert_eq!(command_calls(&server, "evalsha"), 1);
}

#[tokio::test]
async fn keys_survive_one_window_rollover_and_expire_after_two() {
    let server = RedisServer::start().expect("redis-server");
    let ttl = Duration::from_secs(100);
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let window = 1_700_000_000 / 100;
    let at = |offset: Duration| move || start + offset;
    let marker = RedisDedup::connect(&server.addr(), ttl, 1_000)
        .await
        .expect("connect")
        .with_clock(at(Duration::ZERO));
    let next_window = RedisDedup::connect(&server.addr(), ttl, 1_000)
        .await
        .expect("connect")
        .with_clock(at(ttl));
    let two_later = RedisDedup::connect(&server.addr(), ttl, 1_000)
        .await
        .expect("connect")
        .with_clock(at(ttl * 2));
    let batch = keys("rollover", 3);

    assert_eq!(marker.check_and_mark(&batch).await, vec![false; 3]);
    assert_eq!(next_window.check_and_mark(&batch).await, vec![true; 3]);
    assert_eq!(two_later.check_and_mark(&batch).await, vec![false; 3]);

    let mut names = key_names(&server);
    names.sort();
    assert_eq!(
        names,
        vec![
            format!("spyder:seen:{window}"),
            format!("spyder:seen:{}", window + 2)
        ],
        "a key seen in window n - 1 is not copied into window n"
    );
    for name in &names {
        let remaining = integer(&server, &["TTL", name]);
        assert!((100..=260).contains(&remaining), "{name} TTL {remaining}");
    }
}

#[tokio::test]
async fn reloads_the_script_after_noscript() {
    let server = RedisServer::start().expect("redis-server");
    let dedup = connect(&server).await;
    let other = connect(&server).await;
    server.command(&["SCRIPT", "FLUSH"]).expect("SCRIPT FLUSH");

    let batch = keys("noscript", 4);
    assert_eq!(dedup.check_and_mark(&batch).await, vec![false; 4]);
    assert!(dedup.healthy());
    assert_eq!(other.check_and_mark(&batch).await, vec![true; 4]);
}

#[tokio::test]
async fn unreachable_redis_fails_startup_naming_the_setting() {
    // Reserve a port, then free it: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let error = RedisDedup::connect(&addr, TTL, 100)
        .await
        .expect_err("nothing listens there");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach Redis at {addr} (redis.addr): ")),
        "{message}"
    );
}

#[tokio::test]
async fn reserved_keys_reach_other_probes_only_once_marked_and_marks_ride_along() {
    let server = RedisServer::start().expect("redis-server");
    let crawler = connect(&server).await;
    let other = connect(&server).await;
    let first = keys("first", 5);
    let second = keys("second", 5);

    // Reserved: new to everyone, and held back from other probes.
    assert!(crawler.reserve(&first).await.iter().all(|s| !s));
    assert!(
        crawler.reserve(&first).await.iter().all(|s| *s),
        "seen here"
    );
    assert!(
        other.check(&first).await.iter().all(|s| !s),
        "not shared yet"
    );

    // Released reservations are new again here.
    crawler.release(&first[..2]).await;
    assert_eq!(
        crawler.reserve(&first[..3]).await,
        [false, false, true],
        "released keys are new again"
    );

    // Marked: the marks travel with the next call, costing no call of their own.
    let before = command_calls(&server, "evalsha");
    crawler.mark(&first).await;
    assert!(crawler.reserve(&second).await.iter().all(|s| !s));
    assert_eq!(command_calls(&server, "evalsha") - before, 1);
    assert!(other.check(&first).await.iter().all(|s| *s), "shared now");
    assert!(other.check(&second).await.iter().all(|s| !s));

    // With no call to ride on, marks go out on their own within a bounded time.
    crawler.mark(&second).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !other.check(&second).await.iter().all(|s| *s) {
        assert!(
            std::time::Instant::now() < deadline,
            "idle marks never reached Redis"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Both windows, in case the test straddles a window boundary.
    let n = unix_now() / TTL.as_secs();
    let stored: i64 = [n - 1, n]
        .iter()
        .map(|w| integer(&server, &["SCARD", &format!("spyder:seen:{w}")]))
        .sum();
    assert_eq!(stored, 10);
}

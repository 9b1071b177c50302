//! The Redis queue against a real `redis-server` per test (SPEC §2.3, §3.8).

use std::time::Duration;

use spyder_queue::{QueueError, QueueItem, RedisQueue, RedisQueueConfig};
use spyder_testkit::redis::RedisServer;

const KEY: &str = "q";
const WAIT: Duration = Duration::from_secs(20);

fn config(server: &RedisServer, lease_timeout: Duration, max_attempts: u32) -> RedisQueueConfig {
    RedisQueueConfig {
        addr: server.addr(),
        setting: "redis.queue_addr".to_owned(),
        key: KEY.to_owned(),
        lease_timeout,
        max_attempts,
        capacity: 8,
    }
}

async fn connect(server: &RedisServer, lease_timeout: Duration, max_attempts: u32) -> RedisQueue {
    RedisQueue::connect(config(server, lease_timeout, max_attempts))
        .await
        .expect("connects to the test server")
}

fn command(server: &RedisServer, args: &[&str]) -> String {
    server.command(args).expect("test server answers")
}

/// The elements of a list or zset as RESP bulk strings, in order.
fn members(server: &RedisServer, args: &[&str]) -> Vec<String> {
    let reply = command(server, args);
    let mut lines = reply.split("\r\n");
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with('$') && line != "$-1" {
            out.push(lines.next().unwrap_or_default().to_owned());
        }
    }
    out
}

fn list(server: &RedisServer, key: &str) -> Vec<String> {
    members(server, &["LRANGE", key, "0", "-1"])
}

async fn next(queue: &RedisQueue) -> spyder_queue::RedisLease {
    tokio::time::timeout(WAIT, queue.next())
        .await
        .expect("a lease within the deadline")
        .expect("queue not stopped")
}

/// Polls `check` every 50 ms until it holds or the deadline passes.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const GO_ITEM: &str = r#"{"host":"Example.COM","ts":1723300000,"attempt":0,"extra":{"a":[1,2]}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_then_ack_is_byte_exact() {
    let server = RedisServer::start().expect("redis-server starts");
    command(&server, &["LPUSH", KEY, GO_ITEM]);
    let queue = connect(&server, Duration::from_secs(30), 3).await;

    let lease = next(&queue).await;
    assert_eq!(lease.item.raw(), GO_ITEM);
    assert_eq!(lease.item.host.as_str(), "example.com");
    assert_eq!(list(&server, "q:processing"), [GO_ITEM]);
    assert_eq!(
        members(&server, &["ZRANGE", "q:leases", "0", "-1"]),
        [GO_ITEM]
    );
    assert_eq!(list(&server, KEY), Vec::<String>::new());
    assert_eq!(queue.held(), 1);

    lease.ack().await.expect("ack");
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
    assert_eq!(command(&server, &["ZCARD", "q:leases"]), ":0\r\n");
    assert_eq!(queue.held(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_come_out_in_fifo_order_and_push_and_depth_agree() {
    let server = RedisServer::start().expect("redis-server starts");
    let queue = connect(&server, Duration::from_secs(30), 3).await;
    let items: Vec<QueueItem> = ["a.example", "b.example", "c.example"]
        .iter()
        .map(|h| QueueItem::new(spyder_model::HostName::from_input(h).expect("valid"), 1))
        .collect();
    for item in &items {
        queue.push(std::slice::from_ref(item)).await.expect("push");
    }
    let depth = queue.depth().await.expect("depth");
    assert_eq!((depth.pending, depth.processing, depth.dead), (3, 0, 0));
    for item in &items {
        let lease = next(&queue).await;
        assert_eq!(lease.item.raw(), item.raw());
        lease.ack().await.expect("ack");
    }
    let depth = queue.depth().await.expect("depth");
    assert_eq!((depth.pending, depth.processing, depth.dead), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_come_back_with_attempt_plus_one_then_go_dead() {
    let server = RedisServer::start().expect("redis-server starts");
    command(&server, &["LPUSH", KEY, GO_ITEM]);
    let lease_timeout = Duration::from_millis(300);

    // A probe that dies holding the lease: leased, never acked, gone.
    let dying = connect(&server, lease_timeout, 3).await;
    let lease = next(&dying).await;
    drop(lease);
    drop(dying);

    let reaper = connect(&server, lease_timeout, 3).await;
    reaper.pause(true);
    let once = GO_ITEM.replace(r#""attempt":0"#, r#""attempt":1"#);
    eventually("requeued with attempt 1", || {
        list(&server, KEY) == [once.clone()]
    })
    .await;
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
    assert_eq!(command(&server, &["ZCARD", "q:leases"]), ":0\r\n");

    // Attempt 1 expires too → attempt 2 = max_attempts - 1 → back once more.
    reaper.pause(false);
    let lease = next(&reaper).await;
    assert_eq!(lease.item.raw(), once);
    assert_eq!(lease.item.attempt, 1);
    reaper.pause(true);
    drop(lease);
    let twice = GO_ITEM.replace(r#""attempt":0"#, r#""attempt":2"#);
    eventually("requeued with attempt 2", || {
        list(&server, KEY) == [twice.clone()]
    })
    .await;

    // Attempt 2 + 1 = 3 ≥ max_attempts → dead, bytes otherwise unchanged.
    reaper.pause(false);
    let lease = next(&reaper).await;
    reaper.pause(true);
    drop(lease);
    let thrice = GO_ITEM.replace(r#""attempt":0"#, r#""attempt":3"#);
    eventually("dead after max_attempts", || {
        list(&server, "q:dead") == [thrice.clone()]
    })
    .await;
    assert_eq!(list(&server, KEY), Vec::<String>::new());
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_keeps_a_live_lease() {
    let server = RedisServer::start().expect("redis-server starts");
    command(&server, &["LPUSH", KEY, GO_ITEM]);
    let lease_timeout = Duration::from_millis(600);
    let queue = connect(&server, lease_timeout, 3).await;
    let lease = next(&queue).await;
    let first = command(&server, &["ZSCORE", "q:leases", GO_ITEM]);

    // Several lease timeouts and reaper passes later, the lease is still held.
    let mut renewed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        renewed |= command(&server, &["ZSCORE", "q:leases", GO_ITEM]) != first;
        assert_eq!(list(&server, "q:processing"), [GO_ITEM], "lease lost");
    }
    assert!(renewed, "the deadline never moved");
    assert_eq!(list(&server, KEY), Vec::<String>::new());
    lease.ack().await.expect("ack");
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_processing_item_without_a_lease_gets_one_then_is_reaped() {
    let server = RedisServer::start().expect("redis-server starts");
    // An old Go probe crashed after BRPOPLPUSH: in :processing, no lease.
    command(&server, &["LPUSH", "q:processing", GO_ITEM]);
    let queue = connect(&server, Duration::from_millis(1500), 3).await;
    queue.pause(true);
    eventually("the orphan gets a lease", || {
        command(&server, &["ZSCORE", "q:leases", GO_ITEM]) != "$-1\r\n"
    })
    .await;
    assert_eq!(
        list(&server, KEY),
        Vec::<String>::new(),
        "not requeued at once"
    );
    let once = GO_ITEM.replace(r#""attempt":0"#, r#""attempt":1"#);
    eventually("the orphan is requeued", || {
        list(&server, KEY) == [once.clone()]
    })
    .await;
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_items_go_dead_and_good_ones_still_come_out() {
    let server = RedisServer::start().expect("redis-server starts");
    let bad_host = r#"{"host":"bad_host!","ts":1,"attempt":0}"#;
    command(&server, &["LPUSH", KEY, "not json", bad_host, GO_ITEM]);
    let queue = connect(&server, Duration::from_secs(30), 3).await;
    let lease = next(&queue).await;
    assert_eq!(lease.item.raw(), GO_ITEM);
    assert_eq!(list(&server, "q:dead"), [bad_host, "not json"]);
    assert_eq!(list(&server, "q:processing"), [GO_ITEM]);
    assert_eq!(command(&server, &["ZCARD", "q:leases"]), ":1\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_survives_a_script_flush() {
    let server = RedisServer::start().expect("redis-server starts");
    command(&server, &["LPUSH", KEY, GO_ITEM]);
    let queue = connect(&server, Duration::from_secs(30), 3).await;
    let lease = next(&queue).await;
    assert_eq!(command(&server, &["SCRIPT", "FLUSH"]), "+OK\r\n");
    lease.ack().await.expect("ack reloads the script");
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
    assert_eq!(command(&server, &["ZCARD", "q:leases"]), ":0\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_costs_no_busy_loop_and_work_resumes() {
    let mut server = RedisServer::start().expect("redis-server starts");
    let queue = std::sync::Arc::new(connect(&server, Duration::from_secs(30), 3).await);
    assert!(queue.health());
    let waiter = {
        let queue = std::sync::Arc::clone(&queue);
        tokio::spawn(async move {
            let lease = tokio::time::timeout(Duration::from_secs(40), queue.next()).await;
            lease.ok().flatten().map(|l| l.item.raw().to_owned())
        })
    };
    eventually("next() is blocked in BLMOVE", || queue.lease_calls() >= 1).await;
    server.kill().expect("kill");
    eventually("health shows the outage", || !queue.health()).await;
    let calls_before = queue.lease_calls();
    tokio::time::sleep(Duration::from_secs(2)).await; // the outage goes on
    let calls_during = queue.lease_calls() - calls_before;
    server.restart().expect("restart");
    command(&server, &["LPUSH", KEY, GO_ITEM]);

    let raw = tokio::time::timeout(Duration::from_secs(45), waiter)
        .await
        .expect("next() returns after the restart")
        .expect("waiter task");
    assert_eq!(raw.as_deref(), Some(GO_ITEM));
    // Backoff from 100 ms doubling: 2 s of outage allow a handful of tries, not thousands.
    assert!(
        calls_during <= 10,
        "{calls_during} BLMOVE calls in 2 s of outage"
    );
    eventually("healthy again after the restart", || queue.health()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_next_and_pause_stops_leasing() {
    let server = RedisServer::start().expect("redis-server starts");
    let held_raw = r#"{"host":"held.example","ts":1,"attempt":0}"#;
    command(&server, &["LPUSH", KEY, held_raw]);
    command(&server, &["LPUSH", KEY, GO_ITEM]);
    let queue = connect(&server, Duration::from_secs(30), 3).await;
    let held = next(&queue).await;
    assert_eq!(held.item.host.as_str(), "held.example");
    queue.pause(true);
    let paused = tokio::time::timeout(Duration::from_millis(500), queue.next()).await;
    assert!(paused.is_err(), "no lease while paused");
    assert_eq!(list(&server, KEY), [GO_ITEM]);
    queue.stop();
    let stopped = tokio::time::timeout(WAIT, queue.next()).await;
    assert!(matches!(stopped, Ok(None)), "next() is None after stop()");
    // Acks still work during shutdown.
    held.ack().await.expect("ack after stop");
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_at_startup_names_the_setting() {
    let mut server = RedisServer::start().expect("redis-server starts");
    let cfg = config(&server, Duration::from_secs(30), 3);
    server.kill().expect("kill");
    let error = RedisQueue::connect(cfg.clone())
        .await
        .expect_err("nothing listens");
    assert!(matches!(error, QueueError::Unreachable { .. }));
    let text = error.to_string();
    let expected = format!("cannot reach Redis at {} (redis.queue_addr): ", cfg.addr);
    assert!(text.starts_with(&expected), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_only_for_free_capacity() {
    let server = RedisServer::start().expect("redis-server starts");
    let second = r#"{"host":"second.example","ts":1,"attempt":0}"#;
    command(&server, &["LPUSH", KEY, GO_ITEM, second]);
    let queue = RedisQueue::connect(RedisQueueConfig {
        capacity: 1,
        ..config(&server, Duration::from_secs(30), 3)
    })
    .await
    .expect("connects to the test server");
    let first = next(&queue).await;
    assert_eq!(first.item.raw(), GO_ITEM);
    let full = tokio::time::timeout(Duration::from_millis(500), queue.next()).await;
    assert!(full.is_err(), "no second lease while at capacity");
    assert_eq!(
        list(&server, KEY),
        [second],
        "the second item stays pending"
    );
    first.ack().await.expect("ack");
    assert_eq!(next(&queue).await.item.raw(), second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capacity_grows_live() {
    let server = RedisServer::start().expect("redis-server starts");
    let second = r#"{"host":"second.example","ts":1,"attempt":0}"#;
    command(&server, &["LPUSH", KEY, GO_ITEM, second]);
    let queue = RedisQueue::connect(RedisQueueConfig {
        capacity: 1,
        ..config(&server, Duration::from_secs(30), 3)
    })
    .await
    .expect("connects to the test server");
    let first = next(&queue).await;
    assert_eq!(first.item.raw(), GO_ITEM);
    // At capacity: the next lease waits until the capacity grows.
    queue.set_capacity(2);
    let grown = next(&queue).await;
    assert_eq!(grown.item.raw(), second);
    assert_eq!(queue.held(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_item_without_attempt_gets_one_on_requeue() {
    let server = RedisServer::start().expect("redis-server starts");
    let bare = r#"{"host":"bare.example","ts":7}"#;
    command(&server, &["LPUSH", KEY, bare]);
    let queue = connect(&server, Duration::from_millis(300), 3).await;
    let lease = next(&queue).await;
    assert_eq!(lease.item.attempt, 0);
    queue.pause(true);
    drop(lease);
    let requeued = r#"{"host":"bare.example","ts":7,"attempt":1}"#;
    eventually("requeued with attempt 1", || {
        list(&server, KEY) == [requeued]
    })
    .await;
}

/// Through the [`spyder_queue::WorkQueue`] trait: a finalizer resolved as delivered
/// acks the item (gone from `:processing`, lease dropped); one resolved as failed
/// leaves it leased until the lease expires, and it comes back with `attempt+1`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leases_finalizer_acks_when_delivered_and_returns_the_item_when_failed() {
    use spyder_model::finalize::Status;
    use spyder_queue::{Origin, WorkQueue};
    use tokio_util::task::TaskTracker;

    let server = RedisServer::start().expect("redis-server starts");
    let delivered = r#"{"host":"delivered.example","ts":1,"attempt":0}"#;
    let failed = r#"{"host":"failed.example","ts":1,"attempt":0,"via":"discovery"}"#;
    command(&server, &["LPUSH", KEY, delivered, failed]);
    let queue = connect(&server, Duration::from_millis(400), 3).await;
    let queue: &dyn WorkQueue = &queue;
    let tracker = TaskTracker::new();

    let lease = tokio::time::timeout(WAIT, queue.next())
        .await
        .expect("a lease in time")
        .expect("queue open");
    assert_eq!(lease.host.as_str(), "delivered.example");
    assert_eq!(lease.origin, Origin::Seeded);
    let (_hold, finalizer) = lease.start(&tracker);
    finalizer.resolve(Status::Delivered);

    let lease = tokio::time::timeout(WAIT, queue.next())
        .await
        .expect("a lease in time")
        .expect("queue open");
    assert_eq!(lease.origin, Origin::Discovered);
    queue.pause(true);
    let (_hold, finalizer) = lease.start(&tracker);
    finalizer.resolve(Status::Failed);
    tracker.close();
    tracker.wait().await;

    assert!(
        !list(&server, "q:processing").contains(&delivered.to_owned()),
        "the delivered item is acked"
    );
    let back = failed.replace(r#""attempt":0"#, r#""attempt":1"#);
    eventually("the failed item comes back with attempt 1", || {
        list(&server, KEY) == [back.clone()]
    })
    .await;
    assert_eq!(list(&server, "q:processing"), Vec::<String>::new());
    assert_eq!(queue.held(), 0);
}

//! RedisDedup through a Redis outage: keys count as new, errors are counted, health
//! follows. Its own test binary, so that its metrics recorder sees only this test.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};
use spyder_sink::{Dedup, DedupKey, KeyDigest, RedisDedup};
use spyder_testkit::redis::RedisServer;

/// Counts `spyder_dedup_errors_total{backend="redis"}`; ignores every other metric.
#[derive(Default)]
struct ErrorCounter(Arc<Count>);

#[derive(Default)]
struct Count(AtomicU64);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl Recorder for ErrorCounter {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let redis_errors = key.name() == "spyder_dedup_errors_total"
            && key
                .labels()
                .any(|l| l.key() == "backend" && l.value() == "redis");
        if redis_errors {
            Counter::from_arc(self.0.clone())
        } else {
            Counter::noop()
        }
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn redis_errors() -> &'static Arc<Count> {
    static COUNT: OnceLock<Arc<Count>> = OnceLock::new();
    COUNT.get_or_init(|| {
        let recorder = ErrorCounter::default();
        let count = recorder.0.clone();
        metrics::set_global_recorder(recorder).expect("first recorder of this binary");
        count
    })
}

fn keys(prefix: &str, count: usize) -> Vec<KeyDigest> {
    (0..count)
        .map(|i| DedupKey::Domain(&format!("{prefix}{i}.example")).digest())
        .collect()
}

#[tokio::test]
async fn outage_counts_keys_as_new_and_health_recovers() {
    let errors = redis_errors();
    let mut server = RedisServer::start().expect("redis-server");
    let dedup = RedisDedup::connect(&server.addr(), Duration::from_secs(60), 1_000)
        .await
        .expect("connect");
    let before = keys("before", 3);
    assert_eq!(dedup.check_and_mark(&before).await, vec![false; 3]);
    assert!(dedup.healthy());
    assert_eq!(errors.0.load(Ordering::Relaxed), 0);

    server.kill().expect("kill redis");
    // Keys that only Redis knows count as new while it is down.
    let fresh = RedisDedup::connect(&server.addr(), Duration::from_secs(60), 1_000).await;
    assert!(fresh.is_err(), "nothing listens while killed");
    let during = keys("during", 4);
    assert_eq!(dedup.check_and_mark(&during).await, vec![false; 4]);
    assert!(!dedup.healthy());
    assert_eq!(errors.0.load(Ordering::Relaxed), 1);
    assert!(dedup.ping().await.is_err());
    // The memory layer still answers what this probe has seen.
    assert_eq!(dedup.check_and_mark(&before).await, vec![true; 3]);
    assert_eq!(errors.0.load(Ordering::Relaxed), 1);

    server.restart().expect("restart redis");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut round = 0;
    while !dedup.healthy() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never healthy again"
        );
        dedup
            .check_and_mark(&keys(&format!("after{round}-"), 2))
            .await;
        round += 1;
    }
    assert_eq!(dedup.ping().await, Ok(()));
    // Redis kept (AOF) what was marked before the outage.
    let other = RedisDedup::connect(&server.addr(), Duration::from_secs(60), 1_000)
        .await
        .expect("connect after restart");
    assert_eq!(other.check_and_mark(&before).await, vec![true; 3]);
}

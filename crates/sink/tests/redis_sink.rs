//! RedisSink against real redis-servers: what it pushes, what it marks, the cap.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spyder_model::HostName;
use spyder_sink::{
    Dedup, DedupKey, DiscoverySink, MemoryDedup, RedisDedup, RedisSink, SinkResult, SinkSettings,
};
use spyder_testkit::redis::RedisServer;

const KEY: &str = "spyder:queue";

fn host(name: &str) -> HostName {
    HostName::from_input(name).expect("valid host")
}

fn hosts(names: &[&str]) -> Vec<HostName> {
    names.iter().map(|n| host(n)).collect()
}

/// The list `key`, oldest push first (the order consumers take it from the right).
fn queued_items(server: &RedisServer, key: &str) -> Vec<serde_json::Value> {
    let reply = server.command(&["LRANGE", key, "0", "-1"]).expect("LRANGE");
    let mut items: Vec<serde_json::Value> = reply
        .split("\r\n")
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("item JSON"))
        .collect();
    items.reverse();
    items
}

fn queued_hosts(server: &RedisServer) -> Vec<String> {
    queued_items(server, KEY)
        .iter()
        .map(|item| item["host"].as_str().expect("host").to_owned())
        .collect()
}

async fn redis_dedup(server: &RedisServer) -> Arc<dyn Dedup> {
    Arc::new(
        RedisDedup::connect(&server.addr(), Duration::from_secs(60), 1_000)
            .await
            .expect("connect dedup"),
    )
}

#[tokio::test]
async fn pushes_each_new_host_once_with_an_id() {
    let queue = RedisServer::start().expect("queue redis");
    let dedup_server = RedisServer::start().expect("dedup redis");
    let settings = SinkSettings {
        exclude_tlds: vec!["test".to_owned()],
        ..SinkSettings::default()
    };
    let crawled = host("crawled.example");
    let sink = RedisSink::connect(&queue.addr(), KEY, redis_dedup(&dedup_server).await)
        .await
        .expect("connect sink");

    let result = sink
        .offer(
            &crawled,
            hosts(&[
                "a.example",
                "b.example",
                "a.example",
                "localhost",
                "shop.test",
                "crawled.example",
            ]),
            &settings,
        )
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 2,
            dropped: 0
        }
    );
    assert_eq!(queued_hosts(&queue), ["a.example", "b.example"]);
    let raw = queue.command(&["LINDEX", KEY, "-1"]).expect("LINDEX");
    let line = raw.split("\r\n").nth(1).expect("bulk string");
    let item: serde_json::Value = serde_json::from_str(line).expect("item");
    let fields: Vec<&String> = item.as_object().expect("object").keys().collect();
    assert!(line.starts_with(r#"{"host":"a.example","ts":"#), "{line}");
    assert!(line.contains(r#","attempt":0,"id":""#), "{line}");
    assert!(line.ends_with(r#","via":"discovery"}"#), "{line}");
    assert_eq!(fields.len(), 5);
    let id = item["id"].as_str().expect("id");
    assert!(
        id.len() == 16 && id.chars().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );

    // Already queued hosts are never pushed again, by this probe or another one.
    let result = sink
        .offer(&crawled, hosts(&["a.example", "c.example"]), &settings)
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 1,
            dropped: 0
        }
    );
    // Marks reach Redis with the dedup's next call, or within 100 ms; flush now.
    sink.dedup().flush().await;
    let other_probe = RedisSink::connect(&queue.addr(), KEY, redis_dedup(&dedup_server).await)
        .await
        .expect("connect second sink");
    let result = other_probe
        .offer(
            &host("elsewhere.example"),
            hosts(&["b.example", "c.example"]),
            &settings,
        )
        .await;
    assert_eq!(result, SinkResult::default());
    assert_eq!(
        queued_hosts(&queue),
        ["a.example", "b.example", "c.example"]
    );
    assert_eq!(
        sink.totals(),
        SinkResult {
            enqueued: 3,
            dropped: 0
        }
    );
}

#[tokio::test]
async fn a_crawled_host_is_not_queued_again() {
    let queue = RedisServer::start().expect("queue redis");
    let dedup: Arc<dyn Dedup> = Arc::new(MemoryDedup::new(Duration::from_secs(60), 1_000));
    let crawled = host("crawled.example");
    spyder_sink::mark_crawled(dedup.as_ref(), &crawled).await;
    let sink = RedisSink::connect(&queue.addr(), KEY, dedup.clone())
        .await
        .expect("connect sink");

    let result = sink
        .offer(
            &host("other.example"),
            hosts(&["crawled.example", "new.example"]),
            &SinkSettings::default(),
        )
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 1,
            dropped: 0
        }
    );
    assert_eq!(queued_hosts(&queue), ["new.example"]);
    // Marked only after the push.
    let key = [DedupKey::Queued("new.example").digest()];
    assert_eq!(dedup.check(&key).await, vec![true]);
}

#[tokio::test]
async fn a_failed_push_marks_nothing_and_a_later_offer_queues_the_hosts() {
    let mut queue = RedisServer::start().expect("queue redis");
    let dedup_server = RedisServer::start().expect("dedup redis");
    let dedup = redis_dedup(&dedup_server).await;
    let sink = RedisSink::connect(&queue.addr(), KEY, dedup.clone())
        .await
        .expect("connect sink");
    let crawled = host("crawled.example");
    let found = hosts(&["lost.example", "kept.example"]);

    queue.kill().expect("kill queue redis");
    let result = sink
        .offer(&crawled, found.clone(), &SinkSettings::default())
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 0,
            dropped: 2
        }
    );
    let keys: Vec<_> = found
        .iter()
        .map(|h| DedupKey::Queued(h.as_str()).digest())
        .collect();
    assert_eq!(
        dedup.check(&keys).await,
        vec![false, false],
        "nothing marked"
    );

    queue.restart().expect("restart queue redis");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut result = SinkResult::default();
    while result.enqueued == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never pushed after restart"
        );
        result = sink
            .offer(&crawled, found.clone(), &SinkSettings::default())
            .await;
    }
    assert_eq!(result.enqueued, 2);
    assert_eq!(queued_hosts(&queue), ["lost.example", "kept.example"]);
    assert_eq!(dedup.check(&keys).await, vec![true, true]);
}

/// A `tracing` writer into a shared buffer.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn max_domains_caps_enqueues_and_logs_once() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let queue = RedisServer::start().expect("queue redis");
    let dedup: Arc<dyn Dedup> = Arc::new(MemoryDedup::new(Duration::from_secs(60), 1_000));
    let sink = RedisSink::connect(&queue.addr(), KEY, dedup.clone())
        .await
        .expect("connect sink");
    let settings = SinkSettings {
        max_domains: 3,
        ..SinkSettings::default()
    };
    let crawled = host("crawled.example");

    let first = sink
        .offer(&crawled, hosts(&["a.example", "b.example"]), &settings)
        .await;
    assert_eq!(
        first,
        SinkResult {
            enqueued: 2,
            dropped: 0
        }
    );
    let second = sink
        .offer(&crawled, hosts(&["c.example", "d.example"]), &settings)
        .await;
    assert_eq!(
        second,
        SinkResult {
            enqueued: 1,
            dropped: 1
        }
    );
    let third = sink.offer(&crawled, hosts(&["e.example"]), &settings).await;
    assert_eq!(
        third,
        SinkResult {
            enqueued: 0,
            dropped: 1
        }
    );

    assert_eq!(
        queued_hosts(&queue),
        ["a.example", "b.example", "c.example"]
    );
    // Dropped hosts stay unmarked.
    let dropped = [
        DedupKey::Queued("d.example").digest(),
        DedupKey::Queued("e.example").digest(),
    ];
    assert_eq!(dedup.check(&dropped).await, vec![false, false]);
    let text = String::from_utf8(logs.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert_eq!(
        text.matches("max_domains reached (3); further discoveries are not queued")
            .count(),
        1,
        "{text}"
    );
}

//! The file-mode discovery sink: filters, overflow, the max_domains cap (SPEC §3.10).

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spyder_model::{HostName, NameKind, Records};
use spyder_queue::{MemoryQueue, Source};
use spyder_sink::{
    ChannelSink, Dedup, DiscoverySink, SinkResult, SinkSettings, dedup_records, mark_crawled,
};

use crate::common::{CountingDedup, host};

const BOUND: Duration = Duration::from_secs(10);

fn settings(exclude: &[&str], allow_private: bool, max_domains: u64) -> SinkSettings {
    SinkSettings {
        exclude_tlds: exclude.iter().map(|s| (*s).to_owned()).collect(),
        allow_private,
        max_domains,
    }
}

fn hosts(names: &[&str]) -> Vec<HostName> {
    names.iter().map(|n| host(n)).collect()
}

fn sink_with(discovery_capacity: usize) -> (ChannelSink, MemoryQueue, Arc<CountingDedup>) {
    let queue = MemoryQueue::new(16, discovery_capacity);
    let dedup = Arc::new(CountingDedup::new());
    let sink = ChannelSink::new(queue.clone(), Arc::clone(&dedup) as Arc<dyn Dedup>);
    (sink, queue, dedup)
}

/// Takes every waiting host off the queue (the input is closed first).
async fn queued(queue: &MemoryQueue) -> Vec<String> {
    let mut out = Vec::new();
    while queue.depth().discovered > 0 {
        let lease = tokio::time::timeout(BOUND, queue.next())
            .await
            .expect("bounded")
            .expect("an item waits");
        assert_eq!(lease.source, Source::Discovered);
        out.push(lease.host.to_string());
    }
    out
}

#[tokio::test]
async fn each_filter_rule_applies() {
    let (sink, queue, dedup) = sink_with(100);
    let crawled = host("crawler.example");
    mark_crawled(dedup.as_ref(), &host("known.example")).await;
    let mut candidates = hosts(&[
        "new.example",
        "agency.gov",      // ends in .gov
        "gov",             // equals an entry
        "notgov.com",      // suffix without the dot: allowed
        "www.foo.CO.UK",   // multi-label entry, any case
        "localhost",       // §3.5 name rule
        "app.localhost",   // §3.5 name rule
        "known.example",   // already marked queued
        "crawler.example", // the crawled host itself
        "new.example",     // repeated within the offer
    ]);
    // A DNS target may carry '_', which an input host may not.
    candidates.push(HostName::parse("_dmarc.example.net", NameKind::DnsTarget).expect("target"));
    let result = sink
        .offer(&crawled, candidates, &settings(&["GOV", "co.uk"], false, 0))
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 2,
            dropped: 0
        }
    );
    assert_eq!(queued(&queue).await, ["new.example", "notgov.com"]);
    assert_eq!(
        dedup.checks(),
        2,
        "one mark_crawled and one call for the offer"
    );

    // With private targets allowed, localhost names pass.
    let result = sink
        .offer(
            &crawled,
            hosts(&["localhost", "app.localhost", "agency.gov"]),
            &settings(&[], true, 0),
        )
        .await;
    assert_eq!(result.enqueued, 3);
    assert_eq!(
        queued(&queue).await,
        ["localhost", "app.localhost", "agency.gov"]
    );
}

#[tokio::test]
async fn a_queued_host_is_never_queued_twice() {
    let (sink, queue, _) = sink_with(100);
    let s = settings(&[], false, 0);
    let first = sink
        .offer(&host("a.example"), hosts(&["x.example"]), &s)
        .await;
    assert_eq!(first.enqueued, 1);
    let again = sink
        .offer(&host("b.example"), hosts(&["x.example", "y.example"]), &s)
        .await;
    assert_eq!(again.enqueued, 1);
    assert_eq!(queued(&queue).await, ["x.example", "y.example"]);
}

#[tokio::test]
async fn a_crawled_host_is_never_requeued() {
    let (sink, queue, dedup) = sink_with(100);
    let s = settings(&[], false, 0);
    // Crawling a.example marks it queued in the same dedup call as its records.
    let a = host("a.example");
    dedup_records(dedup.as_ref(), &a, Records::default()).await;
    let result = sink
        .offer(&host("b.example"), hosts(&["a.example", "c.example"]), &s)
        .await;
    assert_eq!(result.enqueued, 1);
    assert_eq!(queued(&queue).await, ["c.example"]);
}

#[tokio::test]
async fn overflow_is_dropped_unmarked_and_counted() {
    let (sink, queue, dedup) = sink_with(2);
    let s = settings(&[], false, 0);
    let crawled = host("crawled.example");
    let result = sink
        .offer(
            &crawled,
            hosts(&["d1.example", "d2.example", "d3.example"]),
            &s,
        )
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 2,
            dropped: 1
        }
    );
    assert_eq!(dedup.unmarks(), 1);
    // Room again: the dropped host was not marked, so a later offer queues it.
    let lease = queue.next().await.expect("d1");
    assert_eq!(lease.host.as_str(), "d1.example");
    let result = sink
        .offer(&crawled, hosts(&["d3.example", "d1.example"]), &s)
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 1,
            dropped: 0
        }
    );
    drop(lease);
    assert_eq!(queued(&queue).await, ["d2.example", "d3.example"]);
    assert_eq!(
        sink.totals(),
        SinkResult {
            enqueued: 3,
            dropped: 1
        }
    );
}

/// Collects formatted log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .expect("log buffer lock")
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().expect("log buffer lock").clone()).expect("utf-8 logs")
    }
}

#[tokio::test]
async fn max_domains_caps_enqueues_and_logs_once() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .without_time()
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let (sink, queue, dedup) = sink_with(100);
    let crawled = host("crawled.example");
    let capped = settings(&[], false, 3);
    let result = sink
        .offer(
            &crawled,
            hosts(&[
                "c1.example",
                "c2.example",
                "c3.example",
                "c4.example",
                "c5.example",
            ]),
            &capped,
        )
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 3,
            dropped: 2
        }
    );
    let checks_before = dedup.checks();
    let result = sink
        .offer(&crawled, hosts(&["c6.example", "c4.example"]), &capped)
        .await;
    assert_eq!(
        result,
        SinkResult {
            enqueued: 0,
            dropped: 2
        }
    );
    assert_eq!(
        dedup.checks(),
        checks_before,
        "a full cap needs no dedup call"
    );

    let message = "max_domains reached (3); further discoveries are not queued";
    assert_eq!(logs.text().matches(message).count(), 1, "{}", logs.text());

    // The cap is read per call (live reload): raising it lets the dropped hosts in,
    // since they were never marked.
    let result = sink
        .offer(
            &crawled,
            hosts(&["c4.example", "c5.example"]),
            &settings(&[], false, 10),
        )
        .await;
    assert_eq!(result.enqueued, 2);
    assert_eq!(
        queued(&queue).await,
        [
            "c1.example",
            "c2.example",
            "c3.example",
            "c4.example",
            "c5.example"
        ]
    );
    assert_eq!(logs.text().matches(message).count(), 1);
}

//! `GET /api/v1/events`: the dashboard's server-sent-events stream of the hub's
//! snapshots, history first; auth, rate limit, bounds, slow clients.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use spyder_health::{LAG_LIMIT, RateLimiter};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{self, ADMIN_KEY, Harness, READ_KEY, WAIT, WRITE_KEY, eventually};

/// Snapshots every 20 ms, `history` kept.
async fn start(history: usize) -> Harness {
    Harness::start_with(|b| {
        b.keys(support::standard_keys())
            .history_size(history)
            .events_interval(Duration::from_millis(20))
    })
    .await
}

/// An open `/api/v1/events` response: its head, then its chunked body read
/// incrementally into SSE events.
struct EventStream {
    stream: TcpStream,
    status: u16,
    headers: Vec<(String, String)>,
    /// Raw bytes not yet de-chunked.
    raw: Vec<u8>,
    /// De-chunked body not yet split into events.
    body: Vec<u8>,
    ended: bool,
}

/// One server-sent event.
#[derive(Debug)]
struct Event {
    id: Option<u64>,
    event: String,
    data: Value,
}

impl EventStream {
    async fn open(addr: SocketAddr, key: Option<&str>) -> EventStream {
        let mut stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let mut head =
            "GET /api/v1/events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n".to_owned();
        if let Some(key) = key {
            head.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut es = EventStream {
            stream,
            status: 0,
            headers: Vec::new(),
            raw: Vec::new(),
            body: Vec::new(),
            ended: false,
        };
        let split = loop {
            if let Some(split) = es.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                break split;
            }
            assert!(es.read_more().await, "connection closed before the head");
        };
        let head = String::from_utf8(es.raw[..split].to_vec()).unwrap();
        es.raw.drain(..split + 4);
        let mut lines = head.split("\r\n");
        es.status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status");
        es.headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        es
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Reads once (bounded); false at the end of the connection.
    async fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 64 * 1024];
        match tokio::time::timeout(WAIT, self.stream.read(&mut buf))
            .await
            .expect("data in time")
        {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    /// Moves whole chunks from `raw` into `body`.
    fn dechunk(&mut self) {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = std::str::from_utf8(&self.raw[..line_end]).unwrap();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
                .expect("chunk size");
            if size == 0 {
                self.ended = true;
                return;
            }
            let start = line_end + 2;
            if self.raw.len() < start + size + 2 {
                return;
            }
            self.body.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }

    /// The next event; `None` when the stream ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            self.dechunk();
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let frame = String::from_utf8(self.body[..end].to_vec()).unwrap();
                self.body.drain(..end + 2);
                let mut event = Event {
                    id: None,
                    event: "message".to_owned(),
                    data: Value::Null,
                };
                for line in frame.lines() {
                    if let Some(id) = line.strip_prefix("id: ") {
                        event.id = Some(id.parse().unwrap());
                    } else if let Some(name) = line.strip_prefix("event: ") {
                        event.event = name.to_owned();
                    } else if let Some(data) = line.strip_prefix("data: ") {
                        event.data = serde_json::from_str(data).unwrap();
                    }
                }
                return Some(event);
            }
            if self.ended || !self.read_more().await {
                return None;
            }
        }
    }

    /// The error body of a refused request.
    async fn error_body(&mut self) -> Value {
        let len: usize = self.header("content-length").unwrap().parse().unwrap();
        while self.raw.len() < len {
            assert!(self.read_more().await, "body cut short");
        }
        serde_json::from_slice(&self.raw[..len]).unwrap()
    }
}

#[tokio::test]
async fn events_need_a_read_key() {
    let h = start(10).await;
    let mut none = EventStream::open(h.addr, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.error_body().await["code"], "UNAUTHORIZED");
    let mut wrong = EventStream::open(h.addr, Some("not-a-key-at-all")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.error_body().await["code"], "UNAUTHORIZED");
    let read = EventStream::open(h.addr, Some(READ_KEY)).await;
    assert_eq!(read.status, 200);
    assert_eq!(
        read.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(read.header("cache-control"), Some("no-store"));
    // The key's scope, so the page shows only the controls it may use.
    assert_eq!(read.header(spyder_health::KEY_SCOPE_HEADER), Some("read"));
    for (key, scope) in [(WRITE_KEY, "write"), (ADMIN_KEY, "admin")] {
        let stream = EventStream::open(h.addr, Some(key)).await;
        assert_eq!(stream.status, 200);
        assert_eq!(stream.header(spyder_health::KEY_SCOPE_HEADER), Some(scope));
    }
    // Only GET.
    h.post_json("/api/v1/events", Some(READ_KEY), &serde_json::json!({}))
        .await
        .error(405, "METHOD_NOT_ALLOWED");
    drop(read);
    h.shutdown().await;
}

#[tokio::test]
async fn history_on_connect_then_each_new_snapshot() {
    let h = start(5).await;
    // Enough snapshots that the ring has wrapped.
    eventually("eight snapshots", || async { h.events.latest_seq() >= 8 }).await;
    assert_eq!(h.events.len(), 5, "the ring keeps history_size snapshots");
    let before = h.events.latest_seq();
    let mut stream = EventStream::open(h.addr, Some(READ_KEY)).await;
    assert_eq!(stream.status, 200);
    let first = stream.next().await.expect("history");
    assert_eq!(first.event, "snapshot");
    let first_seq = first.id.unwrap();
    assert_eq!(first.data["seq"], first_seq);
    // The history is the ring: at most history_size back from the newest.
    assert!(
        first_seq + 4 >= before,
        "first {first_seq}, newest before connecting {before}"
    );
    assert_eq!(first.data["stats"]["probe"], "test-probe");
    assert_eq!(first.data["state"], "crawling");
    assert!(first.data["timestamp"].is_string());
    assert_eq!(first.data["checks"], serde_json::json!([]));
    // Then every snapshot in order, none skipped, up to ones taken after connecting.
    let after = h.events.latest_seq();
    assert!(first_seq <= after, "the history came first");
    let mut expected = first_seq + 1;
    h.control.tasks.store(7, Ordering::SeqCst);
    loop {
        let event = stream.next().await.expect("stream goes on");
        assert_eq!(event.id, Some(expected));
        expected += 1;
        if event.id.unwrap() > after + 2 && event.data["stats"]["tasks"]["ok"] == 7 {
            break;
        }
    }
    assert_eq!(h.events.clients(), 1);
    drop(stream);
    eventually("the client is counted out", || async {
        h.events.clients() == 0
    })
    .await;
    h.shutdown().await;
}

#[tokio::test]
async fn history_is_bounded_by_history_size() {
    let h = start(3).await;
    eventually("ten snapshots", || async { h.events.latest_seq() >= 10 }).await;
    assert_eq!(h.events.len(), 3);
    assert_eq!(h.events.capacity(), 3);
    // What a new client gets first is at most 3 old snapshots: its first event is
    // within the last 3 taken when it was sent.
    let before = h.events.latest_seq();
    let mut stream = EventStream::open(h.addr, Some(READ_KEY)).await;
    let first = stream.next().await.unwrap().id.unwrap();
    assert!(first + 2 >= before, "first {first}, newest before {before}");
    drop(stream);
    h.shutdown().await;
}

#[tokio::test]
async fn the_badge_follows_pause_and_shutdown() {
    let h = start(10).await;
    let mut stream = EventStream::open(h.addr, Some(READ_KEY)).await;
    h.post_json(
        "/api/v1/control/pause",
        Some(support::WRITE_KEY),
        &serde_json::json!({}),
    )
    .await;
    loop {
        let event = stream.next().await.expect("stream goes on");
        if event.data["state"] == "paused" {
            assert_eq!(event.data["reason"], "paused through the API");
            break;
        }
    }
    h.readiness.begin_shutdown();
    loop {
        let event = stream.next().await.expect("events go on while draining");
        if event.data["state"] == "draining" {
            break;
        }
    }
    h.shutdown().await;
    // Stopping the server ends the stream.
    while stream.next().await.is_some() {}
}

#[tokio::test]
async fn a_stream_counts_once_against_the_rate_limit() {
    let h = Harness::start_with(|b| {
        b.keys(support::standard_keys())
            .events_interval(Duration::from_millis(10))
            .rate_limiter(RateLimiter::new(1e-6, 2))
    })
    .await;
    let mut stream = EventStream::open(h.addr, Some(READ_KEY)).await;
    assert_eq!(stream.status, 200);
    for _ in 0..20 {
        stream.next().await.expect("snapshots");
    }
    // One token left for one more request, then the bucket is empty.
    assert_eq!(h.get("/api/v1/stats", Some(READ_KEY)).await.status, 200);
    h.get("/api/v1/stats", Some(READ_KEY))
        .await
        .error(429, "RATE_LIMITED");
    // The stream itself goes on.
    stream.next().await.expect("the stream is not limited");
    h.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped() {
    let h = start(2 * LAG_LIMIT as usize).await;
    // 256 KiB snapshots every 20 ms: the socket buffers fill within a second.
    h.control.stats_padding.store(256 * 1024, Ordering::SeqCst);
    let mut stream = EventStream::open(h.addr, Some(READ_KEY)).await;
    assert_eq!(stream.status, 200);
    eventually("the slow client to be dropped", || async {
        h.events.dropped_clients() == 1
    })
    .await;
    // Its connection is closed: reading now drains what was buffered, then ends.
    while stream.read_more().await {
        stream.raw.clear();
    }
    eventually("the client is counted out", || async {
        h.events.clients() == 0
    })
    .await;
    // Other clients are unaffected.
    h.control.stats_padding.store(0, Ordering::SeqCst);
    let mut fresh = EventStream::open(h.addr, Some(READ_KEY)).await;
    assert!(fresh.next().await.is_some());
    h.shutdown().await;
}

#[tokio::test]
async fn streams_past_the_cap_are_refused_until_one_closes() {
    // The harness's rate limit is out of the way (a million a second).
    let h = start(5).await;
    let mut open = Vec::new();
    for _ in 0..spyder_health::MAX_EVENT_STREAMS {
        let stream = EventStream::open(h.addr, Some(READ_KEY)).await;
        assert_eq!(stream.status, 200);
        open.push(stream);
    }
    assert_eq!(h.events.clients(), spyder_health::MAX_EVENT_STREAMS);
    let mut refused = EventStream::open(h.addr, Some(READ_KEY)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("5"));
    let body = refused.error_body().await;
    assert_eq!(body["code"], "RATE_LIMITED");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("event streams are open"),
        "{body}"
    );
    assert_eq!(h.events.clients(), spyder_health::MAX_EVENT_STREAMS);
    // One page closes: room for another.
    drop(open.pop());
    eventually("the closed stream counted out", || async {
        h.events.clients() < spyder_health::MAX_EVENT_STREAMS
    })
    .await;
    let mut again = EventStream::open(h.addr, Some(READ_KEY)).await;
    assert_eq!(again.status, 200);
    assert!(again.next().await.is_some());
    drop(open);
    h.shutdown().await;
}

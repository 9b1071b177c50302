//! Shared test helpers: a fake run loop, a raw HTTP/1.1 client and a server harness.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};
use spyder_config::{ApiKey, KeySource, Scope};
use spyder_health::{
    ApiError, Control, EnqueueError, EventHub, KeyStore, Metadata, OpsServer, OpsState,
    OpsStateBuilder, PatchOutcome, RateLimiter, Readiness,
};
use spyder_model::HostName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Generous bound on any wait in these tests.
pub const WAIT: Duration = Duration::from_secs(20);

pub const ADMIN_KEY: &str = "admin-secret-0123456789";
pub const WRITE_KEY: &str = "write-secret-0123456789";
pub const READ_KEY: &str = "read-secret-0123456789";

/// What the fake queue answers to `enqueue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueBehaviour {
    Accept,
    Full,
    Down,
}

/// A run loop that records what the API asked of it.
#[derive(Debug)]
pub struct FakeControl {
    pub enqueued: Mutex<Vec<String>>,
    pub queue: Mutex<QueueBehaviour>,
    pub paused: AtomicBool,
    pub stops: AtomicUsize,
    pub patches: Mutex<Vec<Value>>,
    /// Tasks finished, as `stats` reports them (`tasks.ok`).
    pub tasks: AtomicUsize,
    /// Bytes of padding in `stats` (a large snapshot).
    pub stats_padding: AtomicUsize,
}

impl Default for FakeControl {
    fn default() -> Self {
        Self {
            enqueued: Mutex::new(Vec::new()),
            queue: Mutex::new(QueueBehaviour::Accept),
            paused: AtomicBool::new(false),
            stops: AtomicUsize::new(0),
            patches: Mutex::new(Vec::new()),
            tasks: AtomicUsize::new(0),
            stats_padding: AtomicUsize::new(0),
        }
    }
}

impl FakeControl {
    pub fn set_queue(&self, behaviour: QueueBehaviour) {
        *self.queue.lock().unwrap() = behaviour;
    }

    pub fn enqueued(&self) -> Vec<String> {
        self.enqueued.lock().unwrap().clone()
    }
}

/// The redacted config the fake serves.
pub fn fake_config() -> Value {
    json!({
        "probe": "test-probe",
        "redis": {"addr": "redis://user:***@127.0.0.1:6379"},
        "api": {"rate_limit": 100, "rate_burst": 20, "keys": [{"key": "***", "name": "admin", "scope": "admin"}]},
    })
}

impl Control for FakeControl {
    fn config(&self) -> Value {
        fake_config()
    }

    fn patch_config(&self, changes: Value) -> Result<PatchOutcome, ApiError> {
        self.patches.lock().unwrap().push(changes.clone());
        if changes.get("redis").is_some() {
            return Err(ApiError::apply_error(&["redis.queue_key"]));
        }
        if changes.pointer("/crawling/concurrency") == Some(&json!(0)) {
            return Err(ApiError::invalid_config(
                "crawling.concurrency",
                "must be between 1 and 65536",
            ));
        }
        let warnings = if changes.pointer("/output/format").is_some() {
            vec!["changing output format mid-run may cause mixed format output".to_owned()]
        } else {
            Vec::new()
        };
        Ok(PatchOutcome {
            config: fake_config(),
            warnings,
        })
    }

    fn stats(&self) -> Value {
        let mut stats = json!({
            "probe": "test-probe",
            "paused": self.paused.load(Ordering::SeqCst),
            "tasks": {"ok": self.tasks.load(Ordering::SeqCst), "error": 0},
        });
        let padding = self.stats_padding.load(Ordering::SeqCst);
        if padding > 0 {
            stats["padding"] = json!("x".repeat(padding));
        }
        stats
    }

    fn enqueue(&self, host: HostName) -> BoxFuture<'_, Result<(), EnqueueError>> {
        Box::pin(async move {
            let behaviour = *self.queue.lock().unwrap();
            match behaviour {
                QueueBehaviour::Accept => {
                    self.enqueued.lock().unwrap().push(host.into_string());
                    Ok(())
                }
                QueueBehaviour::Full => Err(EnqueueError::QueueFull),
                QueueBehaviour::Down => Err(EnqueueError::Unavailable(
                    "queue Redis unavailable: connection refused".to_owned(),
                )),
            }
        })
    }

    fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
    }

    fn stop(&self) {
        self.stops.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn api_key(key: &str, name: &str, scope: Scope, source: KeySource) -> ApiKey {
    ApiKey {
        key: key.to_owned(),
        name: name.to_owned(),
        scope,
        source,
    }
}

/// The three standard keys: `admin` (config), `writer` (env), `reader` (config).
pub fn standard_keys() -> KeyStore {
    KeyStore::new(vec![
        api_key(ADMIN_KEY, "admin", Scope::Admin, KeySource::Config),
        api_key(WRITE_KEY, "writer", Scope::Write, KeySource::Env),
        api_key(READ_KEY, "reader", Scope::Read, KeySource::Config),
    ])
}

pub fn metadata() -> Metadata {
    Metadata {
        probe: "test-probe".to_owned(),
        run: "run-1".to_owned(),
        version: "9.9.9".to_owned(),
    }
}

/// A running server and the handles a test drives it with.
pub struct Harness {
    pub addr: SocketAddr,
    pub control: Arc<FakeControl>,
    pub readiness: Readiness,
    pub keys: KeyStore,
    pub limiter: RateLimiter,
    pub events: Arc<EventHub>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Harness {
    /// Standard keys, a generous rate limit, ready.
    pub async fn start() -> Self {
        Self::start_with(|b| b.keys(standard_keys())).await
    }

    /// Lets the test adjust the builder (keys, checks, limiter…).
    pub async fn start_with(adjust: impl FnOnce(OpsStateBuilder) -> OpsStateBuilder) -> Self {
        let control = Arc::new(FakeControl::default());
        let readiness = Readiness::new();
        let builder = OpsState::builder(metadata(), Arc::clone(&control) as Arc<dyn Control>)
            .readiness(readiness.clone())
            .rate_limiter(RateLimiter::new(1e6, 1_000_000))
            .check_interval(Duration::from_millis(50));
        let state = adjust(builder).build();
        let server = OpsServer::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr();
        let stop = CancellationToken::new();
        let keys = state.keys().clone();
        let limiter = state.rate_limiter().clone();
        let events = state.events();
        let task = server.serve(state, stop.clone());
        readiness.mark_ready();
        Harness {
            addr,
            control,
            readiness,
            keys,
            limiter,
            events,
            stop,
            task: Some(task),
        }
    }

    pub async fn get(&self, path: &str, key: Option<&str>) -> Reply {
        self.send("GET", path, key, None, None).await
    }

    pub async fn post_json(&self, path: &str, key: Option<&str>, body: &Value) -> Reply {
        let body = serde_json::to_vec(body).unwrap();
        self.send("POST", path, key, Some("application/json"), Some(&body))
            .await
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        content_type: Option<&str>,
        body: Option<&[u8]>,
    ) -> Reply {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        if let Some(key) = key {
            head.push_str(&format!("Authorization: Bearer {key}\r\n"));
        }
        if let Some(content_type) = content_type {
            head.push_str(&format!("Content-Type: {content_type}\r\n"));
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        raw_request(self.addr, bytes).await
    }

    /// Stops serving and waits for the server task.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server stops in time")
                .expect("server task");
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Asserts the `{"code","error"}` error body and returns the message.
    pub fn error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        let body = self.json();
        assert_eq!(body["code"], code, "body: {body}");
        assert_eq!(body.as_object().unwrap().len(), 2, "body: {body}");
        body["error"]
            .as_str()
            .expect("error is a string")
            .to_owned()
    }
}

/// Sends `request` as is (writing concurrently with reading) and reads the response
/// of a `Connection: close` exchange.
pub async fn raw_request(addr: SocketAddr, request: Vec<u8>) -> Reply {
    let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let write = tokio::spawn(async move {
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, reader.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read response");
    let _ = write.await;
    parse_response(&response)
}

fn parse_response(bytes: &[u8]) -> Reply {
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..split]).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = bytes[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// Polls `probe` until it returns true, at most [`WAIT`].
pub async fn eventually<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if probe().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

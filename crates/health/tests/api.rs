//! The REST API over real HTTP: checks in order, every endpoint's shape, keys.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

use serde_json::json;
use spyder_health::{KeyStore, NO_API_KEYS_MESSAGE, RateLimiter};

use crate::support;
use crate::support::{ADMIN_KEY, Harness, QueueBehaviour, READ_KEY, WRITE_KEY, raw_request};

#[tokio::test]
async fn no_keys_configured_is_401_no_api_keys_with_the_exact_message() {
    let h = Harness::start_with(|b| b.keys(KeyStore::new(Vec::new()))).await;
    for key in [None, Some(ADMIN_KEY)] {
        let reply = h.get("/api/v1/stats", key).await;
        let message = reply.error(401, "NO_API_KEYS");
        assert_eq!(message, NO_API_KEYS_MESSAGE);
        assert_eq!(
            message,
            "no API keys configured: add api.keys to the config file or set SPYDER_API_KEYS (base64 JSON array of {key,name,scope})"
        );
    }
    h.shutdown().await;
}

#[tokio::test]
async fn auth_matrix() {
    let h = Harness::start().await;
    h.get("/api/v1/stats", None)
        .await
        .error(401, "UNAUTHORIZED");
    h.get("/api/v1/stats", Some("not-a-key-at-all"))
        .await
        .error(401, "UNAUTHORIZED");
    // A prefix of a real key is not the key.
    h.get("/api/v1/stats", Some(&ADMIN_KEY[..ADMIN_KEY.len() - 1]))
        .await
        .error(401, "UNAUTHORIZED");
    // Basic auth with the key is not a bearer key.
    let reply = raw_request(
        h.addr,
        format!(
            "GET /api/v1/stats HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Basic {ADMIN_KEY}\r\n\r\n"
        )
        .into_bytes(),
    )
    .await;
    reply.error(401, "UNAUTHORIZED");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));

    // read: read endpoints yes, write endpoints no.
    assert_eq!(h.get("/api/v1/stats", Some(READ_KEY)).await.status, 200);
    assert_eq!(h.get("/api/v1/config", Some(READ_KEY)).await.status, 200);
    let message = h
        .post_json(
            "/api/v1/domains",
            Some(READ_KEY),
            &json!({"host": "example.com"}),
        )
        .await
        .error(403, "FORBIDDEN");
    assert_eq!(message, "insufficient scope: write required");
    h.post_json("/api/v1/control/pause", Some(READ_KEY), &json!({}))
        .await
        .error(403, "FORBIDDEN");

    // write: write endpoints yes, admin endpoints no.
    assert_eq!(
        h.post_json("/api/v1/control/pause", Some(WRITE_KEY), &json!({}))
            .await
            .status,
        200
    );
    for (method, path) in [
        ("POST", "/api/v1/control/stop"),
        ("GET", "/api/v1/keys"),
        ("POST", "/api/v1/keys"),
        ("DELETE", "/api/v1/keys/reader"),
    ] {
        let message = h
            .send(method, path, Some(WRITE_KEY), None, None)
            .await
            .error(403, "FORBIDDEN");
        assert_eq!(
            message, "insufficient scope: admin required",
            "{method} {path}"
        );
    }
    assert_eq!(h.control.stops.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert_eq!(h.keys.list().len(), 3);

    // admin: everything.
    assert_eq!(h.get("/api/v1/keys", Some(ADMIN_KEY)).await.status, 200);
    assert_eq!(h.get("/api/v1/stats", Some(ADMIN_KEY)).await.status, 200);
    h.shutdown().await;
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_before_auth() {
    let h = Harness::start_with(|b| {
        b.keys(support::standard_keys())
            .rate_limiter(RateLimiter::new(1e-6, 2))
    })
    .await;
    assert_eq!(h.get("/api/v1/stats", Some(READ_KEY)).await.status, 200);
    // A refused request also takes a token: the bucket comes before the key.
    h.get("/api/v1/stats", None)
        .await
        .error(401, "UNAUTHORIZED");
    let reply = h.get("/api/v1/stats", Some(READ_KEY)).await;
    reply.error(429, "RATE_LIMITED");
    assert_eq!(reply.header("retry-after"), Some("1"));
    // Health endpoints are not rate limited.
    assert_eq!(h.get("/live", None).await.status, 200);
    assert_eq!(h.get("/metrics", None).await.status, 503);
    // A live change takes effect at once.
    h.limiter.set(1e9, 5);
    support::eventually("the bucket to refill", || async {
        h.get("/api/v1/stats", Some(READ_KEY)).await.status == 200
    })
    .await;
    h.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let h = Harness::start().await;
    // 1 MiB + 1 with Content-Length.
    let mut body = b"{\"host\":\"".to_vec();
    body.resize(1024 * 1024 + 1, b'a');
    let message = h
        .send(
            "PATCH",
            "/api/v1/config",
            Some(WRITE_KEY),
            Some("application/json"),
            Some(&body),
        )
        .await
        .error(413, "TOO_LARGE");
    assert!(message.contains("1048576"), "{message}");
    assert!(h.control.patches.lock().unwrap().is_empty());

    // Chunked, no Content-Length.
    let mut request = format!(
        "POST /api/v1/domains HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {WRITE_KEY}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    let chunk = vec![b' '; 64 * 1024];
    for _ in 0..17 {
        request.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    raw_request(h.addr, request).await.error(413, "TOO_LARGE");

    // A declared length far over the limit is refused before any byte is read.
    let request = format!(
        "POST /api/v1/domains HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {WRITE_KEY}\r\nContent-Length: 99999999999\r\n\r\n"
    );
    raw_request(h.addr, request.into_bytes())
        .await
        .error(413, "TOO_LARGE");

    // Bulk takes up to 10 MiB: 2 MiB of lines is fine.
    let mut lines = String::new();
    while lines.len() < 2 * 1024 * 1024 {
        lines.push_str("# padding comment line, skipped like the input file does\n");
    }
    lines.push_str("example.com\n");
    let reply = h
        .send(
            "POST",
            "/api/v1/domains/bulk",
            Some(WRITE_KEY),
            Some("text/plain"),
            Some(lines.as_bytes()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["accepted"], 1);
    // ... and 10 MiB + 1 is not.
    let big = vec![b'\n'; 10 * 1024 * 1024 + 1];
    h.send(
        "POST",
        "/api/v1/domains/bulk",
        Some(WRITE_KEY),
        Some("text/plain"),
        Some(&big),
    )
    .await
    .error(413, "TOO_LARGE");
    h.shutdown().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let h = Harness::start().await;
    h.get("/api/v1/nothing", Some(ADMIN_KEY))
        .await
        .error(404, "NOT_FOUND");
    h.get("/", Some(ADMIN_KEY)).await.error(404, "NOT_FOUND");
    // Without a key, an unknown path does not reveal itself.
    h.get("/api/v1/nothing", None)
        .await
        .error(401, "UNAUTHORIZED");
    let reply = h.get("/api/v1/control/stop", Some(ADMIN_KEY)).await;
    reply.error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = h
        .send("DELETE", "/api/v1/config", Some(ADMIN_KEY), None, None)
        .await;
    reply.error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(reply.header("allow"), Some("GET, PATCH"));
    let reply = h.send("POST", "/health", None, None, None).await;
    reply.error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(h.control.stops.load(std::sync::atomic::Ordering::SeqCst), 0);
    h.shutdown().await;
}

#[tokio::test]
async fn config_get_and_patch() {
    let h = Harness::start().await;
    let reply = h.get("/api/v1/config", Some(READ_KEY)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json(), json!({"config": served_config()}));
    for secret in [ADMIN_KEY, WRITE_KEY, READ_KEY] {
        assert!(!reply.text().contains(secret));
    }

    let patch = |body: &'static [u8]| {
        let h = &h;
        async move {
            h.send(
                "PATCH",
                "/api/v1/config",
                Some(WRITE_KEY),
                Some("application/json"),
                Some(body),
            )
            .await
        }
    };
    let reply = patch(br#"{"output":{"format":"jsonl"}}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "config": served_config(),
            "warnings": ["changing output format mid-run may cause mixed format output"],
        })
    );
    let reply = patch(br#"{"ua":"x"}"#).await;
    assert_eq!(reply.json()["warnings"], json!([]));
    let message = patch(br#"{"redis":{"queue_key":"other"}}"#)
        .await
        .error(409, "APPLY_ERROR");
    assert_eq!(message, "fields require restart: redis.queue_key");
    let message = patch(br#"{"crawling":{"concurrency":0}}"#)
        .await
        .error(400, "INVALID_CONFIG");
    assert_eq!(message, "crawling.concurrency: must be between 1 and 65536");
    patch(b"{not json").await.error(400, "BAD_REQUEST");
    assert_eq!(h.control.patches.lock().unwrap().len(), 4);
    h.shutdown().await;
}

/// The fake's configuration as the API serves it: `api.keys` are the standard keys
/// the API accepts, redacted.
fn served_config() -> serde_json::Value {
    let mut config = support::fake_config();
    config["api"]["keys"] = json!([
        {"key": "***", "name": "admin", "scope": "admin"},
        {"key": "***", "name": "writer", "scope": "write"},
        {"key": "***", "name": "reader", "scope": "read"},
    ]);
    config
}

fn key_names(config: &serde_json::Value) -> Vec<&str> {
    config["api"]["keys"]
        .as_array()
        .expect("api.keys is a list")
        .iter()
        .map(|k| k["name"].as_str().expect("a name"))
        .collect()
}

/// Issue 10: a deleted key (from the environment or anywhere) is no longer listed in
/// `GET /api/v1/config`, and a created one is.
#[tokio::test]
async fn config_lists_the_keys_the_api_accepts_now() {
    let h = Harness::start().await;
    let config = h.get("/api/v1/config", Some(READ_KEY)).await.json();
    assert_eq!(key_names(&config["config"]), ["admin", "writer", "reader"]);

    // "writer" came from SPYDER_API_KEYS.
    let reply = h
        .send("DELETE", "/api/v1/keys/writer", Some(ADMIN_KEY), None, None)
        .await;
    assert_eq!(reply.status, 204);
    let created = h
        .post_json(
            "/api/v1/keys",
            Some(ADMIN_KEY),
            &json!({"name": "ci", "scope": "read"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text());
    let secret = created.json()["key"].as_str().unwrap().to_owned();

    let reply = h.get("/api/v1/config", Some(READ_KEY)).await;
    let config = reply.json();
    assert_eq!(key_names(&config["config"]), ["admin", "reader", "ci"]);
    assert_eq!(
        config["config"]["api"]["keys"][2],
        json!({"key": "***", "name": "ci", "scope": "read"})
    );
    assert!(!reply.text().contains(&secret));
    // The rest of the configuration is the run loop's.
    assert_eq!(config["config"]["redis"], support::fake_config()["redis"]);

    // A PATCH answer shows the same keys.
    let body = serde_json::to_vec(&json!({"ua": "x"})).unwrap();
    let reply = h
        .send(
            "PATCH",
            "/api/v1/config",
            Some(ADMIN_KEY),
            Some("application/json"),
            Some(&body),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        key_names(&reply.json()["config"]),
        ["admin", "reader", "ci"]
    );
    h.shutdown().await;
}

/// `{"section": {"key": value}}` for a dotted path, `{"key": value}` otherwise.
fn nested(path: &str, value: serde_json::Value) -> serde_json::Value {
    match path.split_once('.') {
        Some((section, key)) => json!({ section: { key: value } }),
        None => json!({ path: value }),
    }
}

/// Issue 10: keys that widen what the probe reads, writes or dials need admin; a
/// write key naming one gets 403 and nothing of its change set reaches the run loop.
#[tokio::test]
async fn widening_keys_need_admin_and_nothing_is_applied() {
    let h = Harness::start().await;
    let patch = |key: &'static str, changes: serde_json::Value| {
        let h = &h;
        async move {
            let body = serde_json::to_vec(&changes).unwrap();
            h.send(
                "PATCH",
                "/api/v1/config",
                Some(key),
                Some("application/json"),
                Some(&body),
            )
            .await
        }
    };
    let admin_keys: Vec<&spyder_config::KeySpec> = spyder_config::keys()
        .iter()
        .filter(|k| k.scope == spyder_config::Scope::Admin)
        .collect();
    let admin_paths: Vec<&str> = admin_keys.iter().map(|k| k.path).collect();
    for must in [
        "output.file",
        "output.ingest",
        "output.spool_dir",
        "crawling.allow_private",
        "crawling.allow_cidrs",
        "crawling.tls_roots",
        "dns.servers",
        "mtls.cert",
        "mtls.key",
        "mtls.ca",
    ] {
        assert!(admin_paths.contains(&must), "{must} needs admin");
    }

    for key in &admin_keys {
        let mut forms = vec![nested(key.path, json!("x"))];
        if let Some(alias) = key.alias {
            forms.push(json!({ alias: "x" }));
        }
        // A dotted path at the top level is a key too.
        forms.push(json!({ key.path: "x" }));
        // Mixed with an ordinary key: the whole change set is refused.
        forms.push(json!({"ua": "sneaky", "crawling": {"concurrency": 8}}));
        let mixed = forms.last_mut().unwrap();
        if let Some((section, sub)) = key.path.split_once('.') {
            mixed
                .as_object_mut()
                .unwrap()
                .entry(section)
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .unwrap()
                .insert(sub.to_owned(), json!("x"));
        } else {
            mixed[key.path] = json!("x");
        }
        for changes in forms {
            let message = patch(WRITE_KEY, changes.clone())
                .await
                .error(403, "FORBIDDEN");
            assert_eq!(message, "insufficient scope: admin required", "{changes}");
        }
    }
    assert!(
        h.control.patches.lock().unwrap().is_empty(),
        "a refused change set never reaches the run loop"
    );

    // Ordinary keys still need only write.
    let reply = patch(
        WRITE_KEY,
        json!({"crawling": {"concurrency": 8}, "ua": "x"}),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // An admin key may change them (the run loop then validates as usual).
    let changes = json!({"output": {"file": "/var/lib/spyder/out.json"}, "ingest": ""});
    let reply = patch(ADMIN_KEY, changes.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        *h.control.patches.lock().unwrap(),
        [json!({"crawling": {"concurrency": 8}, "ua": "x"}), changes]
    );
    // A read key is still refused with write first.
    let message = patch(READ_KEY, json!({"ua": "x"}))
        .await
        .error(403, "FORBIDDEN");
    assert_eq!(message, "insufficient scope: write required");
    h.shutdown().await;
}

#[tokio::test]
async fn stats_come_from_the_run_loop() {
    let h = Harness::start().await;
    let reply = h.get("/api/v1/stats", Some(READ_KEY)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"probe": "test-probe", "paused": false, "tasks": {"ok": 0, "error": 0}})
    );
    h.shutdown().await;
}

#[tokio::test]
async fn single_domain() {
    let h = Harness::start().await;
    let reply = h
        .post_json(
            "/api/v1/domains",
            Some(WRITE_KEY),
            &json!({"host": "  https://WWW.Example.COM./path"}),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({"accepted": true, "host": "www.example.com"})
    );
    assert_eq!(h.control.enqueued(), ["www.example.com"]);

    let message = h
        .post_json(
            "/api/v1/domains",
            Some(WRITE_KEY),
            &json!({"host": "bad_name.com"}),
        )
        .await
        .error(400, "INVALID_HOST");
    assert!(message.contains("bad_name.com"), "{message}");
    h.post_json(
        "/api/v1/domains",
        Some(WRITE_KEY),
        &json!({"host": "192.0.2.1"}),
    )
    .await
    .error(400, "INVALID_HOST");
    h.post_json(
        "/api/v1/domains",
        Some(WRITE_KEY),
        &json!({"name": "x.com"}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.send(
        "POST",
        "/api/v1/domains",
        Some(WRITE_KEY),
        Some("application/json"),
        Some(b"[1,"),
    )
    .await
    .error(400, "BAD_REQUEST");

    h.control.set_queue(QueueBehaviour::Full);
    let message = h
        .post_json(
            "/api/v1/domains",
            Some(WRITE_KEY),
            &json!({"host": "a.com"}),
        )
        .await
        .error(503, "QUEUE_FULL");
    assert_eq!(message, "queue full");
    h.control.set_queue(QueueBehaviour::Down);
    let message = h
        .post_json(
            "/api/v1/domains",
            Some(WRITE_KEY),
            &json!({"host": "a.com"}),
        )
        .await
        .error(503, "UNAVAILABLE");
    assert_eq!(message, "queue Redis unavailable: connection refused");
    assert_eq!(h.control.enqueued(), ["www.example.com"]);
    h.shutdown().await;
}

#[tokio::test]
async fn bulk_json_and_text() {
    let h = Harness::start().await;
    let reply = h
        .post_json(
            "/api/v1/domains/bulk",
            Some(WRITE_KEY),
            &json!(["Example.com", "bad_name", "", "http://b.org/x", "1.2.3.4"]),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json(),
        json!({
            "accepted": 2,
            "rejected": 3,
            "total": 5,
            "errors": [
                {"index": 1, "host": "bad_name", "error": "invalid character '_'"},
                {"index": 2, "host": "", "error": "empty label"},
                {"index": 4, "host": "1.2.3.4", "error": "IP address literal is not a domain"},
            ],
        })
    );
    assert_eq!(h.control.enqueued(), ["example.com", "b.org"]);

    let text = "\u{feff}one.com\r\n\n# comment\n   \ntwo_.com\n  three.net  \n";
    let reply = h
        .send(
            "POST",
            "/api/v1/domains/bulk",
            Some(WRITE_KEY),
            Some("text/plain; charset=utf-8"),
            Some(text.as_bytes()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"], 1);
    assert_eq!(body["total"], 3);
    assert_eq!(body["errors"][0]["index"], 1);
    assert_eq!(body["errors"][0]["host"], "two_.com");
    assert_eq!(
        h.control.enqueued(),
        ["example.com", "b.org", "one.com", "three.net"]
    );

    // At most 100 errors are listed; the counts cover all.
    let many: Vec<String> = (0..150).map(|i| format!("bad_{i}")).collect();
    let reply = h
        .post_json("/api/v1/domains/bulk", Some(WRITE_KEY), &json!(many))
        .await;
    let body = reply.json();
    assert_eq!(body["rejected"], 150);
    assert_eq!(body["total"], 150);
    assert_eq!(body["errors"].as_array().unwrap().len(), 100);
    assert_eq!(body["errors"][99]["index"], 99);

    // Not an array of strings.
    h.post_json(
        "/api/v1/domains/bulk",
        Some(WRITE_KEY),
        &json!({"hosts": []}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.post_json(
        "/api/v1/domains/bulk",
        Some(WRITE_KEY),
        &json!(["a.com", 1]),
    )
    .await
    .error(400, "BAD_REQUEST");

    // Nothing could be queued: the queue's answer, as for one domain.
    h.control.set_queue(QueueBehaviour::Full);
    h.post_json(
        "/api/v1/domains/bulk",
        Some(WRITE_KEY),
        &json!(["c.com", "d.com"]),
    )
    .await
    .error(503, "QUEUE_FULL");
    h.control.set_queue(QueueBehaviour::Down);
    h.post_json("/api/v1/domains/bulk", Some(WRITE_KEY), &json!(["c.com"]))
        .await
        .error(503, "UNAVAILABLE");
    h.shutdown().await;
}

#[tokio::test]
async fn pause_resume_are_idempotent() {
    let h = Harness::start().await;
    for _ in 0..2 {
        let reply = h
            .post_json("/api/v1/control/pause", Some(WRITE_KEY), &json!({}))
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.json(),
            json!({"paused": true, "message": "Workers paused"})
        );
        assert!(h.control.paused.load(std::sync::atomic::Ordering::SeqCst));
    }
    for _ in 0..2 {
        // No body at all is fine too.
        let reply = h
            .send(
                "POST",
                "/api/v1/control/resume",
                Some(WRITE_KEY),
                None,
                None,
            )
            .await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.json(),
            json!({"paused": false, "message": "Workers resumed"})
        );
        assert!(!h.control.paused.load(std::sync::atomic::Ordering::SeqCst));
    }
    h.shutdown().await;
}

#[tokio::test]
async fn stop_is_202_then_the_api_answers_503() {
    let h = Harness::start().await;
    assert_eq!(h.get("/ready", None).await.status, 200);
    let reply = h
        .send("POST", "/api/v1/control/stop", Some(ADMIN_KEY), None, None)
        .await;
    assert_eq!(reply.status, 202);
    assert_eq!(reply.json(), json!({"stopping": true}));
    assert_eq!(h.control.stops.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(h.readiness.is_stopping());
    assert_eq!(h.get("/ready", None).await.status, 503);

    let message = h
        .post_json(
            "/api/v1/domains",
            Some(WRITE_KEY),
            &json!({"host": "a.com"}),
        )
        .await
        .error(503, "UNAVAILABLE");
    assert_eq!(message, "shutting down");
    h.send("POST", "/api/v1/control/stop", Some(ADMIN_KEY), None, None)
        .await
        .error(503, "UNAVAILABLE");
    h.post_json(
        "/api/v1/keys",
        Some(ADMIN_KEY),
        &json!({"name": "x", "scope": "read"}),
    )
    .await
    .error(503, "UNAVAILABLE");
    assert_eq!(h.control.stops.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert!(h.control.enqueued().is_empty());
    // Reading still works while stopping; auth still applies.
    assert_eq!(h.get("/api/v1/stats", Some(READ_KEY)).await.status, 200);
    assert_eq!(h.get("/api/v1/config", Some(READ_KEY)).await.status, 200);
    h.get("/api/v1/stats", None)
        .await
        .error(401, "UNAUTHORIZED");
    h.shutdown().await;
}

#[tokio::test]
async fn keys_lifecycle() {
    let h = Harness::start().await;
    let reply = h.get("/api/v1/keys", Some(ADMIN_KEY)).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.json(),
        json!({"keys": [
            {"name": "admin", "scope": "admin", "source": "config", "prefix": &ADMIN_KEY[..11]},
            {"name": "writer", "scope": "write", "source": "env", "prefix": &WRITE_KEY[..11]},
            {"name": "reader", "scope": "read", "source": "config", "prefix": &READ_KEY[..11]},
        ]})
    );
    for secret in [ADMIN_KEY, WRITE_KEY, READ_KEY] {
        assert!(!reply.text().contains(secret));
    }

    let reply = h
        .post_json(
            "/api/v1/keys",
            Some(ADMIN_KEY),
            &json!({"name": "ci bot", "scope": "write"}),
        )
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text());
    let created = reply.json();
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("spyder_"));
    assert_eq!(key.len(), 7 + 64);
    assert!(
        key[7..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_eq!(
        created,
        json!({
            "key": key,
            "name": "ci bot",
            "scope": "write",
            "warning": "this key is shown once and kept in memory only; add it to api.keys or SPYDER_API_KEYS to keep it after a restart",
        })
    );

    // The new key works as a bearer key, with its scope.
    assert_eq!(
        h.post_json("/api/v1/control/pause", Some(&key), &json!({}))
            .await
            .status,
        200
    );
    h.get("/api/v1/keys", Some(&key))
        .await
        .error(403, "FORBIDDEN");
    let listed = h.get("/api/v1/keys", Some(ADMIN_KEY)).await;
    assert_eq!(
        listed.json()["keys"][3],
        json!({"name": "ci bot", "scope": "write", "source": "api", "prefix": &key[..12]})
    );
    assert!(!listed.text().contains(&key));

    // Names are unique and non-empty; scopes are read, write or admin.
    h.post_json(
        "/api/v1/keys",
        Some(ADMIN_KEY),
        &json!({"name": "ci bot", "scope": "read"}),
    )
    .await
    .error(409, "KEY_EXISTS");
    h.post_json(
        "/api/v1/keys",
        Some(ADMIN_KEY),
        &json!({"name": "admin", "scope": "read"}),
    )
    .await
    .error(409, "KEY_EXISTS");
    h.post_json(
        "/api/v1/keys",
        Some(ADMIN_KEY),
        &json!({"name": "", "scope": "read"}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.post_json(
        "/api/v1/keys",
        Some(ADMIN_KEY),
        &json!({"name": "x", "scope": "root"}),
    )
    .await
    .error(400, "BAD_REQUEST");
    h.post_json("/api/v1/keys", Some(ADMIN_KEY), &json!({"scope": "read"}))
        .await
        .error(400, "BAD_REQUEST");

    // Delete (URL-encoded name): 204, then the key no longer works; again: 404.
    let reply = h
        .send(
            "DELETE",
            "/api/v1/keys/ci%20bot",
            Some(ADMIN_KEY),
            None,
            None,
        )
        .await;
    assert_eq!(reply.status, 204);
    assert!(reply.body.is_empty());
    h.post_json("/api/v1/control/pause", Some(&key), &json!({}))
        .await
        .error(401, "UNAUTHORIZED");
    h.send(
        "DELETE",
        "/api/v1/keys/ci%20bot",
        Some(ADMIN_KEY),
        None,
        None,
    )
    .await
    .error(404, "NOT_FOUND");
    // Configured keys can be revoked too (until restart).
    assert_eq!(
        h.send("DELETE", "/api/v1/keys/reader", Some(ADMIN_KEY), None, None)
            .await
            .status,
        204
    );
    h.get("/api/v1/stats", Some(READ_KEY))
        .await
        .error(401, "UNAUTHORIZED");
    h.shutdown().await;
}

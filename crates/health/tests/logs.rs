//! Logs name keys, never print them (SPEC §3.12, §3.14). One test per binary: the
//! subscriber is global.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::json;
use support::{ADMIN_KEY, Harness, READ_KEY, WRITE_KEY};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_name_keys_and_never_contain_them() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber");

    let h = Harness::start().await;
    let wrong = "wrong-secret-never-logged-42";
    assert_eq!(h.get("/api/v1/stats", Some(wrong)).await.status, 401);
    assert_eq!(h.get("/api/v1/stats", Some(READ_KEY)).await.status, 200);
    assert_eq!(
        h.post_json(
            "/api/v1/domains",
            Some(WRITE_KEY),
            &json!({"host": "example.com"})
        )
        .await
        .status,
        202
    );
    let reply = h
        .post_json(
            "/api/v1/keys",
            Some(ADMIN_KEY),
            &json!({"name": "temp", "scope": "read"}),
        )
        .await;
    assert_eq!(reply.status, 201);
    let created = reply.json()["key"].as_str().unwrap().to_owned();
    assert_eq!(h.get("/api/v1/config", Some(&created)).await.status, 200);
    assert_eq!(
        h.send("DELETE", "/api/v1/keys/temp", Some(ADMIN_KEY), None, None)
            .await
            .status,
        204
    );
    assert_eq!(h.get("/api/v1/config", Some(&created)).await.status, 401);
    h.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    for name in ["reader", "writer", "admin", "temp"] {
        assert!(logs.contains(name), "key name {name} not logged:\n{logs}");
    }
    assert!(logs.contains("api key created"), "{logs}");
    assert!(logs.contains("missing or invalid API key"), "{logs}");
    for secret in [
        ADMIN_KEY,
        WRITE_KEY,
        READ_KEY,
        wrong,
        created.as_str(),
        &created[7..],
    ] {
        assert!(!logs.contains(secret), "secret {secret} logged:\n{logs}");
    }
}

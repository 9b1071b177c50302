//! The bytes a web server sends back: response heads, framing (Content-Length,
//! chunked, close-delimited), content coding (gzip, zlib, raw deflate) and the body
//! cap, through the probe's own `HttpSession` as the crawl uses it: robots.txt and
//! then the root page over one keep-alive connection.
//!
//! Input: a selector byte (the body cap, so truncation mid-stream is exercised as well
//! as whole bodies), a little-endian `u16` length, then the server's bytes. The server
//! reads the first request's head and sends that many bytes (the rest if fewer),
//! then reads the second request's head, if one comes, and sends the rest; then it
//! closes. The clock is paused and advances when every task waits, so a reply that
//! stalls ends in the client's timeout at once instead of after real seconds.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spyder_probe::http::{HttpSession, MAX_HEAD_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;

/// The probe's per-request timeout; on the paused clock it costs no real time.
const TIMEOUT: Duration = Duration::from_secs(10);

fn runtime() -> &'static Runtime {
    static RT: OnceLock<Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime")
    })
}

fn cap(selector: u8) -> usize {
    match selector % 4 {
        0 => 0,
        1 => 1 + usize::from(selector >> 2), // 1..=64
        2 => 4096,
        _ => 1 << 20,
    }
}

/// Reads one request head; false when the client closed first.
async fn read_request(server: &mut DuplexStream) -> bool {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match server.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return false,
        }
        assert!(head.len() <= MAX_HEAD_BYTES, "request head never ends");
    }
    true
}

async fn exchange(first: Vec<u8>, second: Vec<u8>, cap: usize) {
    let (client, mut server) = tokio::io::duplex(16 * 1024);
    let server_task = tokio::spawn(async move {
        if read_request(&mut server).await {
            let _ = server.write_all(&first).await;
            if !second.is_empty() && read_request(&mut server).await {
                let _ = server.write_all(&second).await;
            }
        }
        let _ = server.shutdown().await;
        // Read until the client hangs up, so its writes never fail.
        let mut sink = [0u8; 4096];
        while let Ok(n) = server.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    });
    if let Ok(mut session) = HttpSession::handshake(client).await {
        for path in ["/robots.txt", "/"] {
            if !session.is_usable() {
                break;
            }
            let Ok(head) = session
                .get("example.com", path, "SPYDERProbe/1.0", TIMEOUT)
                .await
            else {
                break;
            };
            let _ = (head.status, &head.content_type, &head.location);
            if let Ok(body) = head.read_body(cap, TIMEOUT).await {
                assert!(body.bytes.len() <= cap, "body over its cap");
            }
        }
    }
    let _ = server_task.await;
}

fuzz_target!(|data: &[u8]| {
    let [selector, lo, hi, reply @ ..] = data else {
        return;
    };
    let split = usize::from(u16::from_le_bytes([*lo, *hi])).min(reply.len());
    let (first, second) = reply.split_at(split);
    runtime().block_on(exchange(first.to_vec(), second.to_vec(), cap(*selector)));
});

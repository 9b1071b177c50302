//! The server as tests see it, over real sockets.

#![allow(clippy::unwrap_used)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::conn::{GARBAGE, LEGACY_ALERT};
use super::*;
use crate::netsim::TcpConditions;

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Sends raw request bytes on a fresh connection and reads until the server closes.
async fn exchange(addr: (Ipv4Addr, u16), request: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(request).await.expect("writes");
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("server closes in time")
        .expect("reads");
    out
}

#[tokio::test]
async fn keep_alive_serves_several_requests_on_one_connection() {
    let site = Site::plain(ip(101), Reply::Html("root".into())).with_robots(Reply::Text {
        content_type: "text/plain".into(),
        body: "User-agent: *\n".into(),
    });
    let web = WebServer::start(vec![site]).await.expect("starts");
    let out = exchange(
        (ip(101), web.http_port()),
        b"GET /robots.txt HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\nGET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8(out).expect("ascii");
    assert!(text.starts_with(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nUser-agent: *\n"
    ));
    assert!(text.contains("text/html; charset=utf-8\r\nContent-Length: 4\r\n\r\nroot"));
    assert!(
        text.ends_with("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    );
    let log = web.requests();
    let paths: Vec<&str> = log.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/robots.txt", "/", "/nope"]);
    assert!(
        log.iter()
            .all(|r| r.conn == log[0].conn && !r.tls && r.ip == ip(101))
    );
    assert_eq!(web.bytes_sent(ip(101)), text.len() as u64);
}

#[tokio::test]
async fn https_port_modes() {
    let config = self_signed_config(&["tls.example"]).expect("cert");
    let sites = vec![
        Site::https(ip(111), config, Reply::Html("secure".into())),
        Site::plain(ip(112), Reply::Html("plain".into())),
        Site {
            tls: TlsMode::LegacyOnly,
            ..Site::plain(ip(113), Reply::Status(200))
        },
        Site {
            tls: TlsMode::Garbage,
            ..Site::plain(ip(114), Reply::Status(200))
        },
        Site {
            tls: TlsMode::Hang,
            ..Site::plain(ip(115), Reply::Status(200))
        },
    ];
    let web = WebServer::start(sites).await.expect("starts");
    let port = web.https_port();

    // TLS: SNI and handshake recorded.
    let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
    let tcp = TcpStream::connect((ip(111), port)).await.expect("connects");
    let name = rustls_pki_types::ServerName::try_from("tls.example").expect("name");
    let mut tls = connector.connect(name, tcp).await.expect("handshake");
    tls.write_all(b"GET / HTTP/1.1\r\nHost: tls.example\r\nConnection: close\r\n\r\n")
        .await
        .expect("writes");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut out))
        .await
        .expect("in time");
    assert!(
        out.ends_with(b"\r\n\r\nsecure"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    assert_eq!(web.handshakes(), 1);
    let log = web.requests();
    assert_eq!(log[0].sni.as_deref(), Some("tls.example"));
    assert!(log[0].tls);

    // Off: refused. The plain site's HTTP port works.
    let refused = TcpStream::connect((ip(112), port)).await;
    assert_eq!(
        refused.expect_err("refused").kind(),
        io::ErrorKind::ConnectionRefused
    );
    // Plain HTTP is off for the https site.
    assert!(
        TcpStream::connect((ip(111), web.http_port()))
            .await
            .is_err()
    );

    // Legacy: the protocol_version alert after a ClientHello-shaped record.
    let hello = [0x16, 0x03, 0x01, 0x00, 0x03, 0x01, 0x00, 0x00];
    assert_eq!(exchange((ip(113), port), &hello).await, LEGACY_ALERT);
    // Garbage: non-TLS bytes.
    assert_eq!(exchange((ip(114), port), &hello).await, GARBAGE);
    // Hang: accepted, never answered.
    let mut s = TcpStream::connect((ip(115), port)).await.expect("accepted");
    s.write_all(&hello).await.expect("writes");
    let mut byte = [0u8; 1];
    let silent = tokio::time::timeout(Duration::from_millis(200), s.read(&mut byte)).await;
    assert!(silent.is_err(), "a hanging host answered");
    // Only the hanging connection stays open (the others close soon after their
    // clients left).
    let mut open = web.open_connections();
    for _ in 0..500 {
        if open == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        open = web.open_connections();
    }
    assert_eq!(open, 1);
    drop(s);
}

#[tokio::test]
async fn many_sites_share_two_ports_and_all_answer() {
    let sites: Vec<Site> = (0..1000u32)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
            Site::plain(addr, Reply::Html(format!("site {i}")))
        })
        .collect();
    let web = WebServer::start(sites).await.expect("starts");
    let port = web.http_port();
    let mut answered = 0;
    for i in 0..1000u32 {
        let addr = Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 1, 0, 0)) + i);
        let out = exchange((addr, port), b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
        if out.ends_with(format!("\r\n\r\nsite {i}").as_bytes()) {
            answered += 1;
        }
    }
    assert_eq!(answered, 1000);
    assert_eq!(web.requests().len(), 1000);
}

#[tokio::test]
async fn raw_and_reset_and_then_close() {
    let site = Site::plain(ip(121), Reply::Status(200))
        .with_route(
            "/raw",
            Reply::Raw(b"HTTP/1.1 200 OK\r\nX-Odd:  yes \r\nContent-Length: 2\r\n\r\nhi".to_vec()),
        )
        .with_route("/reset", Reply::ResetMidBody("0123456789".into()))
        .with_route("/once", Reply::ThenClose(Box::new(Reply::Html("x".into()))));
    let web = WebServer::start(vec![site]).await.expect("starts");
    let addr = (ip(121), web.http_port());
    let raw = exchange(addr, b"GET /raw HTTP/1.1\r\n\r\n").await;
    assert_eq!(
        raw,
        b"HTTP/1.1 200 OK\r\nX-Odd:  yes \r\nContent-Length: 2\r\n\r\nhi"
    );
    let once = exchange(addr, b"GET /once HTTP/1.1\r\n\r\n").await;
    assert!(once.ends_with(b"Content-Length: 1\r\n\r\nx"));

    let mut s = TcpStream::connect(addr).await.expect("connects");
    s.write_all(b"GET /reset HTTP/1.1\r\n\r\n")
        .await
        .expect("writes");
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("in time");
    assert_eq!(
        read.expect_err("reset").kind(),
        io::ErrorKind::ConnectionReset
    );
}

/// Polls `f` until it holds, for at most five seconds.
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

#[tokio::test]
async fn connections_are_counted_per_address_over_both_ports() {
    let config = self_signed_config(&["count.example"]).expect("cert");
    let both = Site::https(ip(141), config, Reply::Html("x".into())).with_plain_http(true);
    let other = Site::plain(ip(142), Reply::Html("y".into()));
    let web = WebServer::start(vec![both, other]).await.expect("starts");
    let mut held = Vec::new();
    for port in [web.https_port(), web.http_port(), web.http_port()] {
        held.push(TcpStream::connect((ip(141), port)).await.expect("connects"));
    }
    held.push(
        TcpStream::connect((ip(142), web.http_port()))
            .await
            .expect("connects"),
    );
    assert!(
        eventually(|| web.open_connections_to(ip(141)) == 3).await,
        "open to .141: {}",
        web.open_connections_to(ip(141))
    );
    assert!(eventually(|| web.open_connections_to(ip(142)) == 1).await);
    assert_eq!(web.open_connections(), 4);
    drop(held);
    assert!(eventually(|| web.open_connections() == 0).await);
    // One more after the others closed: the peak stays the high-water mark.
    let _again = TcpStream::connect((ip(141), web.http_port()))
        .await
        .expect("connects");
    assert!(eventually(|| web.open_connections_to(ip(141)) == 1).await);
    assert_eq!(web.peak_open_connections(ip(141)), 3);
    assert_eq!(web.peak_open_connections(ip(142)), 1);
    assert_eq!(web.peak_open_connections(ip(143)), 0);
    assert_eq!(web.open_connections_to(ip(143)), 0);
}

#[tokio::test]
async fn a_connection_is_served_only_until_its_answer_is_written() {
    // Through a 300 ms delay line the server sees a client's close 300 ms late, so
    // it counts the first connection open while the client's second one runs; the
    // serving span ends with the answer, so it never counts both.
    let options = WebOptions {
        network: TcpConditions {
            rtt: Duration::from_millis(300),
            ..TcpConditions::default()
        },
        filtered: Vec::new(),
        ports: None,
    };
    let site = Site::plain(ip(145), Reply::Html("x".into()));
    let web = WebServer::start_with(vec![site.into()], options)
        .await
        .expect("starts");
    for _ in 0..2 {
        let mut s = TcpStream::connect((ip(145), web.http_port()))
            .await
            .expect("connects");
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .expect("writes");
        let mut got = Vec::new();
        while !got.ends_with(b"\r\n\r\nx") {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
                .await
                .expect("answers in time")
                .expect("reads");
            assert!(n > 0, "closed before the answer: {got:?}");
            got.extend_from_slice(&chunk[..n]);
        }
        // Closed here, with the connection kept alive at the server.
    }
    assert_eq!(web.peak_open_connections(ip(145)), 2);
    assert_eq!(web.peak_serving_connections(ip(145)), 1);
    assert!(eventually(|| web.open_connections() == 0).await);
    assert_eq!(web.peak_serving_connections(ip(146)), 0);
}

/// A TLS exchange with SNI `name` on `addr`: the body after the head and the
/// server's leaf certificate.
async fn tls_get(addr: (Ipv4Addr, u16), name: &str) -> (String, Vec<u8>) {
    let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
    let tcp = TcpStream::connect(addr).await.expect("connects");
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).expect("valid name");
    let mut tls =
        tokio::time::timeout(Duration::from_secs(10), connector.connect(server_name, tcp))
            .await
            .expect("handshake in time")
            .expect("handshake");
    let leaf = tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec();
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("writes");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut out))
        .await
        .expect("in time");
    let text = String::from_utf8_lossy(&out).into_owned();
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (body, leaf)
}

#[tokio::test]
async fn one_address_serves_several_sites_by_sni_and_host() {
    let shared_ip = ip(161);
    let named = |name: &str, body: &str| NamedSite {
        names: vec![name.to_owned(), format!("www.{name}")],
        site: Site::https(
            shared_ip,
            self_signed_config(&[name]).expect("cert"),
            Reply::Html(body.to_owned()),
        )
        .with_plain_http(true)
        .with_robots(Reply::Text {
            content_type: "text/plain".into(),
            body: format!("# robots of {name}\n"),
        }),
    };
    let sites = vec![
        named("a.example", "site a"),
        named("b.example", "site b"),
        named("c.example", "site c"),
        Site::plain(ip(162), Reply::Html("alone".into())).into(),
    ];
    let web = WebServer::start_with(sites, WebOptions::default())
        .await
        .expect("starts");
    let https = (shared_ip, web.https_port());
    let (a, cert_a) = tls_get(https, "a.example").await;
    let (b, cert_b) = tls_get(https, "B.Example").await;
    let (www_c, cert_c) = tls_get(https, "www.c.example").await;
    assert_eq!(
        (a.as_str(), b.as_str(), www_c.as_str()),
        ("site a", "site b", "site c")
    );
    assert!(
        cert_a != cert_b && cert_b != cert_c,
        "one certificate per site"
    );
    // An unknown name gets the first site, as a default virtual host.
    let (other, cert_other) = tls_get(https, "unknown.example").await;
    assert_eq!(other, "site a");
    assert_eq!(cert_other, cert_a);
    assert_eq!(web.handshakes(), 4);

    // Plain HTTP: the Host header picks the site, request by request on one
    // kept-alive connection.
    let out = exchange(
        (shared_ip, web.http_port()),
        b"GET /robots.txt HTTP/1.1\r\nHost: b.example\r\n\r\nGET / HTTP/1.1\r\nHost: c.example:80\r\n\r\nGET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    let text = String::from_utf8(out).expect("ascii");
    let bodies: Vec<&str> = text
        .split("HTTP/1.1 200 OK")
        .skip(1)
        .map(|r| r.split_once("\r\n\r\n").map_or("", |(_, b)| b))
        .collect();
    assert_eq!(bodies, ["# robots of b.example\n", "site c", "site a"]);
    let log = web.requests();
    assert!(log.iter().all(|r| r.ip == shared_ip));
    assert_eq!(log[0].sni.as_deref(), Some("a.example"));
    assert_eq!(log[1].sni.as_deref(), Some("b.example"));
    // The lone site still answers on its own address.
    let alone = exchange(
        (ip(162), web.http_port()),
        b"GET / HTTP/1.1\r\nHost: whatever\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(alone.ends_with(b"alone"));
    assert!(web.bytes_sent(shared_ip) > 0);
}

#[tokio::test]
async fn shared_addresses_need_names_and_one_tls_kind() {
    let config = self_signed_config(&["x.example"]).expect("cert");
    let unnamed = vec![
        NamedSite {
            names: vec!["x.example".into()],
            site: Site::plain(ip(171), Reply::Status(200)),
        },
        Site::plain(ip(171), Reply::Status(200)).into(),
    ];
    let err = WebServer::start_with(unnamed, WebOptions::default())
        .await
        .expect_err("an unnamed shared site");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let mixed = vec![
        NamedSite {
            names: vec!["x.example".into()],
            site: Site::https(ip(172), config, Reply::Status(200)).with_plain_http(true),
        },
        NamedSite {
            names: vec!["y.example".into()],
            site: Site::plain(ip(172), Reply::Status(200)),
        },
    ];
    let err = WebServer::start_with(mixed, WebOptions::default())
        .await
        .expect_err("TLS and no TLS on one address");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let clash = WebServer::start_with(
        vec![Site::plain(ip(173), Reply::Status(200)).into()],
        WebOptions {
            filtered: vec![ip(173)],
            ..WebOptions::default()
        },
    )
    .await
    .expect_err("a filtered site address");
    assert_eq!(clash.kind(), io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn filtered_addresses_never_answer_a_connect_on_either_port() {
    let sites = vec![Site::plain(ip(181), Reply::Html("up".into())).into()];
    let options = WebOptions {
        filtered: vec![ip(182), ip(183)],
        ..WebOptions::default()
    };
    let web = WebServer::start_with(sites, options).await.expect("starts");
    let holes = web.filtered();
    assert_eq!(holes.len(), 4);
    let mut pending = Vec::new();
    for filtered in [ip(182), ip(183)] {
        for port in [web.https_port(), web.http_port()] {
            assert!(holes.contains(&SocketAddr::from((filtered, port))));
            pending.push(tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(1500),
                    TcpStream::connect((filtered, port)),
                )
                .await
                .is_err()
            }));
        }
    }
    for p in pending {
        assert!(p.await.expect("joins"), "a filtered connect got an answer");
    }
    // The site next to them serves; its HTTPS port (nothing bound) refuses.
    let out = exchange(
        (ip(181), web.http_port()),
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.ends_with(b"up"));
    let refused = TcpStream::connect((ip(181), web.https_port())).await;
    assert_eq!(
        refused.expect_err("refused").kind(),
        io::ErrorKind::ConnectionRefused
    );
    assert_eq!(web.accepted_connections(), 1);
}

#[tokio::test]
async fn network_conditions_cost_each_exchange_a_round_trip() {
    let rtt = Duration::from_millis(80);
    let options = WebOptions {
        network: TcpConditions {
            rtt,
            jitter: Duration::from_millis(10),
            seed: 3,
        },
        ..WebOptions::default()
    };
    let sites = vec![Site::plain(ip(191), Reply::Html("slow".into())).into()];
    let web = WebServer::start_with(sites, options).await.expect("starts");
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect((ip(191), web.http_port()))
        .await
        .expect("connects");
    let mut exchanges = Vec::new();
    for last in [false, true] {
        let t = std::time::Instant::now();
        let close = if last { "Connection: close\r\n" } else { "" };
        s.write_all(format!("GET / HTTP/1.1\r\n{close}\r\n").as_bytes())
            .await
            .expect("writes");
        let mut head = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut head))
            .await
            .expect("answer in time")
            .expect("reads");
        assert!(
            head[..n].ends_with(b"slow"),
            "{:?}",
            String::from_utf8_lossy(&head[..n])
        );
        exchanges.push(t.elapsed());
    }
    // Connect and the first exchange: two round trips; every later one: one.
    assert!(started.elapsed() >= rtt * 3, "{:?}", started.elapsed());
    assert!(exchanges[0] >= rtt * 2, "first exchange {:?}", exchanges[0]);
    assert!(exchanges[1] >= rtt, "second exchange {:?}", exchanges[1]);
    assert_eq!(web.requests().len(), 2);
}

#[tokio::test]
async fn duplicate_addresses_are_rejected() {
    let sites = vec![
        Site::plain(ip(131), Reply::Status(200)),
        Site::plain(ip(131), Reply::Status(200)),
    ];
    let err = WebServer::start(sites).await.expect_err("duplicate");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

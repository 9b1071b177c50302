//! The probe's HTTP/1.1 session against the test world's web hosts (SPEC §3.4, B-10,
//! B-11): keep-alive, headers sent, decoding, body caps and failure modes.

use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use futures_util::StreamExt as _;
use spyder_probe::http::{self, HttpError, HttpSession};
use spyder_testkit::web::{self, Reply, Site, WebServer};

const UA: &str = "SPYDERProbe/1.0 (+https://github.com/gustycube/spyder)";
const T: Duration = Duration::from_secs(5);

fn ip(a: u8, b: u8, c: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, a, b, c)
}

fn text(body: &str) -> Reply {
    Reply::Text {
        content_type: "text/plain".into(),
        body: body.into(),
    }
}

/// A plain-HTTP session to `addr` on the server's HTTP port.
async fn plain(web: &WebServer, addr: Ipv4Addr) -> HttpSession {
    let tcp = http::dial(SocketAddr::from((addr, web.http_port())), T)
        .await
        .expect("dials the http port");
    HttpSession::handshake(tcp).await.expect("http handshake")
}

/// A TLS session to `addr` with SNI `name`, accepting the self-signed certificate.
async fn secure(web: &WebServer, addr: Ipv4Addr, name: &str) -> HttpSession {
    let tcp = http::dial(SocketAddr::from((addr, web.https_port())), T)
        .await
        .expect("dials the https port");
    let connector = tokio_rustls::TlsConnector::from(web::insecure_client_config());
    let server_name = rustls_pki_types::ServerName::try_from(name.to_owned()).expect("dns name");
    let tls = connector
        .connect(server_name, tcp)
        .await
        .expect("tls handshake");
    HttpSession::handshake(tls).await.expect("http handshake")
}

/// Polls `cond` every 10 ms for at most 5 s; returns its last value.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    for _ in 0..500 {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

fn gzip_of(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("compresses");
    enc.finish().expect("compresses")
}

#[tokio::test]
async fn robots_then_root_share_one_tls_connection_with_our_headers() {
    let addr = ip(3, 0, 1);
    let config = web::self_signed_config(&["one.example"]).expect("certificate");
    let site = Site::https(
        addr,
        config,
        Reply::Html("<a href=\"https://two.example/\">2</a>".into()),
    )
    .with_robots(text("User-agent: *\nDisallow: /private\n"));
    let web = WebServer::start(vec![site]).await.expect("web starts");

    let mut session = secure(&web, addr, "one.example").await;
    let robots = session
        .get("one.example", "/robots.txt", UA, T)
        .await
        .expect("robots head");
    assert_eq!(robots.status, 200);
    assert_eq!(robots.content_type.as_deref(), Some("text/plain"));
    let body = robots.read_body(500 * 1024, T).await.expect("robots body");
    assert_eq!(&body.bytes[..], b"User-agent: *\nDisallow: /private\n");
    assert!(!body.truncated);
    assert!(
        session.is_usable(),
        "a fully read body keeps the connection"
    );

    let root = session
        .get("one.example", "/", UA, T)
        .await
        .expect("root head");
    assert_eq!(root.status, 200);
    assert_eq!(
        root.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    let body = root.read_body(1 << 20, T).await.expect("root body");
    assert_eq!(&body.bytes[..], b"<a href=\"https://two.example/\">2</a>");

    let log = web.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].conn, log[1].conn, "both requests on one connection");
    assert_eq!(web.handshakes(), 1);
    for (req, path) in log.iter().zip(["/robots.txt", "/"]) {
        assert_eq!(req.path, path);
        assert_eq!(req.method, "GET");
        assert!(req.tls);
        assert_eq!(req.sni.as_deref(), Some("one.example"));
        assert_eq!(req.host_header.as_deref(), Some("one.example"));
        assert_eq!(req.user_agent.as_deref(), Some(UA));
        assert_eq!(req.accept_encoding.as_deref(), Some("gzip, deflate"));
    }
}

#[tokio::test]
async fn plain_http_keep_alive_and_empty_discarded_bodies_keep_the_connection() {
    let addr = ip(3, 0, 2);
    let site = Site::plain(addr, Reply::Html("root".into()));
    let web = WebServer::start(vec![site]).await.expect("web starts");
    let mut session = plain(&web, addr).await;
    // robots.txt is missing: a 404 with an empty body, discarded without reading.
    let robots = session
        .get("plain.example:8080", "/robots.txt", UA, T)
        .await
        .expect("head");
    assert_eq!(robots.status, 404);
    robots.discard();
    assert!(session.is_usable(), "nothing was left unread");
    let root = session
        .get("plain.example:8080", "/", UA, T)
        .await
        .expect("head");
    assert_eq!(
        &root.read_body(100, T).await.expect("body").bytes[..],
        b"root"
    );
    let log = web.requests();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].conn, log[1].conn);
    assert!(!log[0].tls && log[0].sni.is_none());
    assert_eq!(log[1].host_header.as_deref(), Some("plain.example:8080"));
}

#[tokio::test]
async fn gzip_and_deflate_bodies_are_decoded() {
    let addr = ip(3, 0, 3);
    let page = "<html><body>".to_owned() + &"<p>hello, gzip</p>".repeat(500) + "</body></html>";
    let zlib = {
        let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(b"zlib body").expect("compresses");
        enc.finish().expect("compresses")
    };
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: deflate\r\nContent-Length: {}\r\n\r\n",
        zlib.len()
    )
    .into_bytes();
    raw.extend_from_slice(&zlib);
    let site = Site::plain(
        addr,
        Reply::Gzip {
            content_type: "text/html".into(),
            body: page.clone(),
        },
    )
    .with_route("/deflate", Reply::Raw(raw));
    let web = WebServer::start(vec![site]).await.expect("web starts");
    let mut session = plain(&web, addr).await;

    let head = session.get("gz.example", "/", UA, T).await.expect("head");
    assert_eq!(head.content_encoding.as_deref(), Some("gzip"));
    let body = head.read_body(1 << 20, T).await.expect("body");
    assert_eq!(body.bytes, page.as_bytes());
    assert!(!body.truncated);
    // The server sent far fewer bytes than the page has.
    assert!(web.bytes_sent(addr) < page.len() as u64 / 4);

    let head = session
        .get("gz.example", "/deflate", UA, T)
        .await
        .expect("head");
    assert_eq!(
        &head.read_body(1 << 20, T).await.expect("body").bytes[..],
        b"zlib body"
    );
}

#[tokio::test]
async fn a_gzip_bomb_stops_at_the_decoded_cap() {
    let addr = ip(3, 0, 4);
    // 64 gzip members of 1 MiB each: 64 MiB decoded from about 64 KiB.
    let bomb = gzip_of(&vec![b'A'; 1 << 20]).repeat(64);
    let mut raw = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
        bomb.len()
    )
    .into_bytes();
    raw.extend_from_slice(&bomb);
    let web = WebServer::start(vec![Site::plain(addr, Reply::Raw(raw))])
        .await
        .expect("web starts");
    let mut session = plain(&web, addr).await;
    let head = session.get("bomb.example", "/", UA, T).await.expect("head");
    let cap = 256 * 1024;
    let body = head.read_body(cap, T).await.expect("body");
    assert_eq!(body.bytes.len(), cap);
    assert!(body.truncated);
    assert!(body.bytes.iter().all(|&b| b == b'A'));
    assert!(
        !session.is_usable(),
        "a truncated body closes the connection"
    );
}

#[tokio::test]
async fn an_endless_body_is_not_read_past_the_cap() {
    // B-11: the server may only get cap + 64 KiB (+ headers) into the socket.
    let addr = ip(3, 0, 5);
    let web = WebServer::start(vec![Site::plain(addr, Reply::Endless)])
        .await
        .expect("web starts");
    let mut session = plain(&web, addr).await;
    let head = session
        .get("endless.example", "/", UA, T)
        .await
        .expect("head");
    assert_eq!(head.status, 200);
    let cap = 64 * 1024;
    let body = head.read_body(cap, T).await.expect("body");
    assert_eq!(body.bytes.len(), cap);
    assert!(body.truncated);
    assert!(!session.is_usable());
    // The server sees the connection end, so its count is final.
    assert!(
        eventually(|| web.open_connections() == 0).await,
        "the connection closes"
    );
    let sent = web.bytes_sent(addr);
    assert!(
        sent <= (cap + 64 * 1024 + 1024) as u64,
        "server sent {sent} bytes"
    );
}

#[tokio::test]
async fn a_huge_body_is_read_only_up_to_the_cap() {
    let addr = ip(3, 0, 6);
    let web = WebServer::start(vec![Site::plain(addr, Reply::Big(100 << 20))])
        .await
        .expect("web starts");
    let mut session = plain(&web, addr).await;
    let head = session.get("big.example", "/", UA, T).await.expect("head");
    let cap = 1 << 20;
    let body = head.read_body(cap, T).await.expect("body");
    assert_eq!(body.bytes.len(), cap);
    assert!(body.truncated);
    assert!(
        eventually(|| web.open_connections() == 0).await,
        "the connection closes"
    );
    let sent = web.bytes_sent(addr);
    assert!(
        sent <= (cap + 64 * 1024 + 1024) as u64,
        "server sent {sent} bytes"
    );
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_complete() {
    let addr = ip(3, 0, 7);
    let site = Site::plain(addr, Reply::Html("12345".into()))
        .with_route("/six", Reply::Html("123456".into()));
    let web = WebServer::start(vec![site]).await.expect("web starts");
    let mut session = plain(&web, addr).await;
    let body = session
        .get("cap.example", "/", UA, T)
        .await
        .expect("head")
        .read_body(5, T)
        .await
        .expect("body");
    assert_eq!((&body.bytes[..], body.truncated), (&b"12345"[..], false));
    assert!(session.is_usable());
    let body = session
        .get("cap.example", "/six", UA, T)
        .await
        .expect("head")
        .read_body(5, T)
        .await
        .expect("body");
    assert_eq!((&body.bytes[..], body.truncated), (&b"12345"[..], true));
    assert!(!session.is_usable());
}

#[tokio::test]
async fn discarded_error_pages_leave_no_open_connections() {
    // B-10: 1,000 hosts answer 500 with a body; heads are discarded unread. Every
    // connection closes even while the caller still holds its session.
    let sites: Vec<Site> = (0..1000u32)
        .map(|i| {
            let addr = Ipv4Addr::from(u32::from(ip(4, 0, 0)) + i);
            Site::plain(
                addr,
                Reply::StatusPage {
                    status: 500,
                    body: "<h1>Internal Server Error</h1>".repeat(100),
                },
            )
        })
        .collect();
    let addrs: Vec<Ipv4Addr> = sites.iter().map(|s| s.ip).collect();
    let web = WebServer::start(sites).await.expect("web starts");
    let web = &web;
    let sessions: Vec<HttpSession> = futures_util::stream::iter(addrs)
        .map(|addr| async move {
            let mut session = plain(web, addr).await;
            let head = session.get("err.example", "/", UA, T).await.expect("head");
            assert_eq!(head.status, 500);
            head.discard();
            assert!(
                !session.is_usable(),
                "an unread body makes the session unusable"
            );
            session
        })
        .buffer_unordered(64)
        .collect()
        .await;
    assert_eq!(sessions.len(), 1000);
    assert_eq!(web.requests().len(), 1000);
    assert!(
        eventually(|| web.open_connections() == 0).await,
        "{} connections still open",
        web.open_connections()
    );
    drop(sessions);
}

#[tokio::test]
async fn a_reset_mid_body_is_an_error() {
    let (addr, tls_addr) = (ip(3, 0, 8), ip(3, 0, 13));
    let body = "x".repeat(100_000);
    let config = web::self_signed_config(&["reset.example"]).expect("certificate");
    let sites = vec![
        Site::plain(addr, Reply::ResetMidBody(body.clone())),
        Site::https(tls_addr, config, Reply::ResetMidBody(body)),
    ];
    let web = WebServer::start(sites).await.expect("web starts");
    for mut session in [
        plain(&web, addr).await,
        secure(&web, tls_addr, "reset.example").await,
    ] {
        let head = session
            .get("reset.example", "/", UA, T)
            .await
            .expect("head");
        assert_eq!(head.status, 200);
        let err = head.read_body(1 << 20, T).await.expect_err("reset");
        assert!(
            matches!(err, HttpError::Io(_) | HttpError::Protocol(_)),
            "{err:?}"
        );
        assert!(!session.is_usable());
    }
}

#[tokio::test]
async fn a_hanging_server_times_out() {
    let addr = ip(3, 0, 9);
    let site = Site::plain(addr, Reply::Hang).with_route(
        "/slow-body",
        Reply::Slow(
            Duration::from_secs(30),
            Box::new(Reply::Html("late".into())),
        ),
    );
    let web = WebServer::start(vec![site]).await.expect("web starts");
    let mut session = plain(&web, addr).await;
    let err = session
        .get("hang.example", "/", UA, Duration::from_millis(200))
        .await
        .expect_err("no answer");
    assert!(matches!(err, HttpError::Timeout), "{err:?}");
    assert!(!session.is_usable());
    // Unusable sessions refuse further requests instead of queueing behind the hang.
    let again = session
        .get("hang.example", "/", UA, T)
        .await
        .expect_err("unusable");
    assert!(matches!(again, HttpError::Closed), "{again:?}");
    let mut session = plain(&web, addr).await;
    let err = session
        .get("hang.example", "/slow-body", UA, Duration::from_millis(200))
        .await
        .expect_err("no answer");
    assert!(matches!(err, HttpError::Timeout), "{err:?}");
}

#[tokio::test]
async fn a_server_closing_between_requests_gives_closed() {
    let addr = ip(3, 0, 10);
    let site = Site::plain(addr, Reply::ThenClose(Box::new(Reply::Html("once".into()))));
    let web = WebServer::start(vec![site]).await.expect("web starts");

    // Straight after the response: the close may or may not have been seen yet.
    let mut session = plain(&web, addr).await;
    let head = session
        .get("close.example", "/", UA, T)
        .await
        .expect("head");
    assert_eq!(
        &head.read_body(100, T).await.expect("body").bytes[..],
        b"once"
    );
    let err = session
        .get("close.example", "/", UA, T)
        .await
        .expect_err("closed");
    assert!(matches!(err, HttpError::Closed), "{err:?}");

    // After the server has certainly closed it.
    let mut session = plain(&web, addr).await;
    let head = session
        .get("close.example", "/", UA, T)
        .await
        .expect("head");
    assert_eq!(
        &head.read_body(100, T).await.expect("body").bytes[..],
        b"once"
    );
    assert!(eventually(|| web.open_connections() == 0).await);
    assert!(
        eventually(|| !session.is_usable()).await,
        "the close is noticed"
    );
    let err = session
        .get("close.example", "/", UA, T)
        .await
        .expect_err("closed");
    assert!(matches!(err, HttpError::Closed), "{err:?}");
    assert_eq!(web.requests().len(), 2);
}

#[tokio::test]
async fn headers_are_reported_as_sent_and_limited_to_64_kib() {
    let addr = ip(3, 0, 11);
    let odd =
        b"HTTP/1.1 200 OK\r\nContent-Type: TEXT/HTML\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    let mut huge = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n".to_vec();
    for i in 0..70 {
        huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "f".repeat(1024)).as_bytes());
    }
    huge.extend_from_slice(b"\r\n");
    let redirect = Reply::Redirect {
        status: 301,
        location: "HTTPS://Other.Example/Path?Q".into(),
    };
    let site = Site::plain(addr, Reply::Raw(odd))
        .with_route("/huge", Reply::Raw(huge))
        .with_route("/moved", redirect);
    let web = WebServer::start(vec![site]).await.expect("web starts");

    let mut session = plain(&web, addr).await;
    let head = session.get("odd.example", "/", UA, T).await.expect("head");
    assert_eq!(head.content_type.as_deref(), Some("TEXT/HTML"));
    assert_eq!(
        &head.read_body(100, T).await.expect("body").bytes[..],
        b"hello"
    );

    let mut session = plain(&web, addr).await;
    let head = session
        .get("odd.example", "/moved", UA, T)
        .await
        .expect("head");
    assert_eq!(head.status, 301);
    assert_eq!(
        head.location.as_deref(),
        Some("HTTPS://Other.Example/Path?Q")
    );
    head.discard();

    let mut session = plain(&web, addr).await;
    let err = session
        .get("odd.example", "/huge", UA, T)
        .await
        .expect_err("too large");
    assert!(matches!(err, HttpError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn dialing_a_closed_port_fails_fast() {
    let addr = ip(3, 0, 12);
    let web = WebServer::start(vec![Site::plain(addr, Reply::Status(200))])
        .await
        .expect("web starts");
    let err = http::dial(SocketAddr::from((addr, web.https_port())), T)
        .await
        .expect_err("nothing listens on the https port");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

//! The hand-written HTTP/1.1 loop: request heads, routing, and every scripted reply.

use std::io;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::prepared::{Prepared, SiteState, route};
use super::shared::{Address, Shared, lock};
use super::site::RequestLog;
use super::transport::{ConnInfo, Transport, drain};

/// Largest request head (request line and headers) the server accepts.
const MAX_REQUEST_HEAD: usize = 64 * 1024;
/// Bytes per chunk of an [`Reply::Endless`] body and per write of a [`Reply::Big`] body.
const FILL_CHUNK: usize = 16 * 1024;

/// A parsed request head.
#[derive(Debug)]
struct Request {
    method: String,
    target: String,
    keep_alive: bool,
    content_length: usize,
    host: Option<String>,
    user_agent: Option<String>,
    accept_encoding: Option<String>,
}

/// Why a request head could not be used.
#[derive(Debug)]
enum HeadError {
    /// Closed or failed before a full head arrived.
    Gone,
    /// Too large or malformed: answered with this status, then closed.
    Bad(u16),
}

/// Serves requests on one connection until either side closes it: all for `fixed`
/// (the site a TLS handshake chose), else each for the site its `Host` header names.
pub(super) async fn http_loop<S: Transport>(
    io: &mut S,
    shared: &Shared,
    address: &Address,
    fixed: Option<&SiteState>,
    info: &ConnInfo,
) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        let req = match read_head(io, &mut buf).await {
            Ok(req) => {
                io.serving().start();
                req
            }
            Err(HeadError::Gone) => return,
            Err(HeadError::Bad(status)) => {
                let _ = write_head(io, status, &[], 0, false).await;
                return;
            }
        };
        lock(&shared.requests).push(RequestLog {
            at: Instant::now(),
            ip: address.ip,
            tls: info.tls,
            sni: info.sni.clone(),
            host_header: req.host.clone(),
            method: req.method.clone(),
            path: req.target.clone(),
            user_agent: req.user_agent.clone(),
            accept_encoding: req.accept_encoding.clone(),
            conn: info.id,
        });
        // Skip a request body, if any (GET has none).
        if !skip_body(io, &mut buf, req.content_length).await {
            return;
        }
        let site = fixed.unwrap_or_else(|| address.site_for(req.host.as_deref()));
        let reply = route(site, &req.target);
        let after = respond(io, reply, &req, &mut buf).await;
        io.serving().stop();
        match after {
            After::KeepAlive if req.keep_alive => {}
            After::KeepAlive | After::Close => {
                let _ = io.shutdown().await;
                return;
            }
            // No FIN first: the RST must be the first sign of the end.
            After::Reset => return,
        }
    }
}

/// Reads one request head into a [`Request`]; bytes after it stay in `buf`.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Request, HeadError> {
    let end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() >= MAX_REQUEST_HEAD {
            return Err(HeadError::Bad(431));
        }
        let mut chunk = [0u8; 4096];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(HeadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head: Vec<u8> = buf.drain(..end).collect();
    parse_head(&head).ok_or(HeadError::Bad(400))
}

/// Parses a request line and headers (`head` ends with the blank line).
fn parse_head(head: &[u8]) -> Option<Request> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next()?.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || method.is_empty() || target.is_empty() {
        return None;
    }
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return None,
    };
    let mut req = Request {
        method: method.to_owned(),
        target: target.to_owned(),
        keep_alive: http11,
        content_length: 0,
        host: None,
        user_agent: None,
        accept_encoding: None,
    };
    for line in lines.take_while(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "host" => req.host = Some(value.to_owned()),
            "user-agent" => req.user_agent = Some(value.to_owned()),
            "accept-encoding" => req.accept_encoding = Some(value.to_owned()),
            "content-length" => req.content_length = value.parse().ok()?,
            // Chunked request bodies are not supported: refuse rather than misframe.
            "transfer-encoding" => return None,
            "connection" => {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        req.keep_alive = false;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        req.keep_alive = true;
                    }
                }
            }
            _ => {}
        }
    }
    Some(req)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Discards `len` body bytes (some may already be in `buf`). False if the peer left.
async fn skip_body<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>, len: usize) -> bool {
    let buffered = len.min(buf.len());
    buf.drain(..buffered);
    let mut left = len - buffered;
    let mut chunk = [0u8; 4096];
    while left > 0 {
        match io.read(&mut chunk[..left.min(4096)]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => left -= n,
        }
    }
    true
}

/// The reason phrase for the statuses tests use; others get a generic one.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

/// Writes a status line and headers with `Content-Length: len` (or chunked when `len`
/// is `usize::MAX`), plus `Connection: close` when the server will close.
async fn write_head<S: AsyncWrite + Unpin>(
    io: &mut S,
    status: u16,
    headers: &[(&str, String)],
    len: usize,
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if len == usize::MAX {
        head.push_str("Transfer-Encoding: chunked\r\n");
    } else {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    io.write_all(head.as_bytes()).await?;
    io.flush().await
}

/// What happens to a connection after a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    /// It may serve another request.
    KeepAlive,
    /// The server closes it (FIN).
    Close,
    /// Dropping it resets it (SO_LINGER 0 is set).
    Reset,
}

/// Sends the reply for one request.
async fn respond<S: Transport>(
    io: &mut S,
    reply: Option<&Prepared>,
    req: &Request,
    buf: &mut Vec<u8>,
) -> After {
    let close = !req.keep_alive;
    let head_only = req.method.eq_ignore_ascii_case("HEAD");
    let mut reply = reply;
    let mut then_close = false;
    // Unwrap delays and close markers.
    loop {
        match reply {
            Some(Prepared::Slow(delay, inner)) => {
                tokio::time::sleep(*delay).await;
                reply = Some(inner);
            }
            Some(Prepared::ThenClose(inner)) => {
                then_close = true;
                reply = Some(inner);
            }
            _ => break,
        }
    }
    let sent = match reply {
        None => write_head(io, 404, &[], 0, close).await.is_ok(),
        Some(Prepared::Fixed {
            status,
            headers,
            body,
        }) => {
            let ok = write_head(io, *status, headers, body.len(), close)
                .await
                .is_ok();
            ok && (head_only || write_body(io, body).await.is_ok())
        }
        Some(Prepared::Big(n)) => {
            let html = [("Content-Type", "text/html".to_owned())];
            write_head(io, 200, &html, *n, close).await.is_ok()
                && (head_only || write_filler(io, *n).await.is_ok())
        }
        Some(Prepared::Endless) => {
            let html = [("Content-Type", "text/html".to_owned())];
            if write_head(io, 200, &html, usize::MAX, close).await.is_ok() && !head_only {
                // Until the client goes away.
                let _ = write_endless(io).await;
            }
            false
        }
        Some(Prepared::ResetMidBody(body)) => {
            let html = [("Content-Type", "text/html".to_owned())];
            if write_head(io, 200, &html, body.len(), false).await.is_ok() {
                let _ = write_body(io, &body[..body.len() / 2]).await;
            }
            // SO_LINGER 0: dropping the socket sends RST instead of FIN.
            let _ = io.tcp().set_zero_linger();
            return After::Reset;
        }
        Some(Prepared::Hang) => {
            // Never answer; wait for the client to give up.
            buf.clear();
            drain(io).await;
            return After::Close;
        }
        Some(Prepared::Raw(bytes)) => {
            let _ = write_body(io, bytes).await;
            false
        }
        // Unwrapped above.
        Some(Prepared::Slow(..) | Prepared::ThenClose(_)) => false,
    };
    if sent && !then_close {
        After::KeepAlive
    } else {
        After::Close
    }
}

async fn write_body<S: AsyncWrite + Unpin>(io: &mut S, body: &[u8]) -> io::Result<()> {
    io.write_all(body).await?;
    io.flush().await
}

/// HTML-ish filler for big and endless bodies.
fn filler() -> Vec<u8> {
    b"<p>spyder test filler</p>\n"
        .iter()
        .copied()
        .cycle()
        .take(FILL_CHUNK)
        .collect()
}

async fn write_filler<S: AsyncWrite + Unpin>(io: &mut S, n: usize) -> io::Result<()> {
    let fill = filler();
    let mut left = n;
    while left > 0 {
        let take = left.min(fill.len());
        io.write_all(&fill[..take]).await?;
        left -= take;
    }
    io.flush().await
}

/// Writes chunks forever; returns the error that ended it.
async fn write_endless<S: AsyncWrite + Unpin>(io: &mut S) -> io::Result<()> {
    let fill = filler();
    let mut chunk = format!("{:x}\r\n", fill.len()).into_bytes();
    chunk.extend_from_slice(&fill);
    chunk.extend_from_slice(b"\r\n");
    loop {
        io.write_all(&chunk).await?;
        io.flush().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_request_heads() {
        let req = parse_head(
            b"GET /a?b HTTP/1.1\r\nHost: x.example\r\nuser-agent: UA/1\r\nConnection: close\r\n\r\n",
        )
        .expect("valid head");
        assert_eq!(req.method, "GET");
        assert_eq!(req.target, "/a?b");
        assert_eq!(req.host.as_deref(), Some("x.example"));
        assert_eq!(req.user_agent.as_deref(), Some("UA/1"));
        assert!(!req.keep_alive);
        let old = parse_head(b"GET / HTTP/1.0\r\n\r\n").expect("valid head");
        assert!(!old.keep_alive);
        assert!(parse_head(b"GET / HTTP/2\r\n\r\n").is_none());
        assert!(parse_head(b"GET /\r\n\r\n").is_none());
        assert!(parse_head(b"GET / HTTP/1.1\r\nbad header\r\n\r\n").is_none());
    }
}

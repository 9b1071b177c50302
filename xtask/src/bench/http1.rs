//! Just enough HTTP/1.1 for the visit ceiling: send a GET, read one response fully.
//!
//! A response body is framed by `Transfer-Encoding: chunked`, else `Content-Length`,
//! else the end of the connection; 1xx, 204 and 304 responses have none. Bytes read
//! past one response stay in the caller's buffer for the next one (keep-alive).

use std::io::ErrorKind;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Result;

/// Longest response head or chunk-size line accepted.
const MAX_HEAD: usize = 64 * 1024;

/// What the client needs to know about a response it read fully.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Response {
    pub(super) status: u16,
    /// Body bytes (after de-chunking).
    pub(super) body_len: usize,
    /// The server closes the connection after it.
    pub(super) close: bool,
}

/// Sends `GET path` for `host`; `close` asks the server to close afterwards.
pub(super) async fn send_get<S: AsyncWrite + Unpin>(
    io: &mut S,
    host: &str,
    path: &str,
    close: bool,
) -> Result<()> {
    let connection = if close { "close" } else { "keep-alive" };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: xtask-bench-ceiling\r\nAccept: */*\r\nConnection: {connection}\r\n\r\n"
    );
    io.write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    io.flush().await.map_err(|e| format!("flush: {e}"))
}

/// Reads one response, body included. `buf` carries bytes between calls.
pub(super) async fn read_response<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
) -> Result<Response> {
    let head_end = loop {
        if let Some(pos) = find(buf, b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        if !read_more(io, buf).await? {
            return Err("connection closed before the response head".into());
        }
    };
    let head: Vec<u8> = buf.drain(..head_end).collect();
    let head = String::from_utf8_lossy(&head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let (mut length, mut chunked, mut close) = (None, false, status_line.starts_with("HTTP/1.0"));
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line {line:?}"));
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => {
                length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|e| format!("Content-Length {value:?}: {e}"))?,
                );
            }
            "transfer-encoding" => {
                chunked = value
                    .rsplit(',')
                    .next()
                    .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
            }
            "connection" => {
                close = value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("close"));
            }
            _ => {}
        }
    }
    let body_len = if (100..200).contains(&status) || status == 204 || status == 304 {
        0
    } else if chunked {
        read_chunked(io, buf).await?
    } else if let Some(len) = length {
        take(io, buf, len).await?;
        len
    } else {
        close = true;
        read_to_end(io, buf).await?
    };
    Ok(Response {
        status,
        body_len,
        close,
    })
}

/// A chunked body and its trailers; returns the de-chunked length.
async fn read_chunked<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Result<usize> {
    let mut total = 0;
    loop {
        let line = read_line(io, buf).await?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|e| format!("chunk size {size_text:?}: {e}"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while !read_line(io, buf).await?.is_empty() {}
            return Ok(total);
        }
        take(io, buf, size).await?;
        if !read_line(io, buf).await?.is_empty() {
            return Err("chunk not followed by CRLF".into());
        }
        total += size;
    }
}

/// One CRLF-terminated line, without the CRLF.
async fn read_line<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Result<String> {
    loop {
        if let Some(pos) = find(buf, b"\r\n") {
            let line: Vec<u8> = buf.drain(..pos + 2).collect();
            return Ok(String::from_utf8_lossy(&line[..pos]).into_owned());
        }
        if buf.len() > MAX_HEAD {
            return Err("line too long".into());
        }
        if !read_more(io, buf).await? {
            return Err("connection closed inside a chunked body".into());
        }
    }
}

/// Consumes exactly `len` bytes.
async fn take<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>, len: usize) -> Result<()> {
    while buf.len() < len {
        if !read_more(io, buf).await? {
            return Err(format!(
                "connection closed after {} of {len} body bytes",
                buf.len()
            ));
        }
    }
    buf.drain(..len);
    Ok(())
}

/// Consumes everything up to EOF; returns its length.
async fn read_to_end<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Result<usize> {
    while read_more(io, buf).await? {}
    let len = buf.len();
    buf.clear();
    Ok(len)
}

/// Appends what one read gives; false at EOF. A TLS peer that closes without
/// `close_notify` counts as EOF.
async fn read_more<S: AsyncRead + Unpin>(io: &mut S, buf: &mut Vec<u8>) -> Result<bool> {
    let mut chunk = [0u8; 8192];
    match io.read(&mut chunk).await {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(format!("read: {e}")),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(mut input: &[u8]) -> Vec<Result<Response>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let mut buf = Vec::new();
            let mut out = Vec::new();
            loop {
                let r = read_response(&mut input, &mut buf).await;
                let stop = r.as_ref().map_or(true, |r| r.close);
                out.push(r);
                if stop || (input.is_empty() && buf.is_empty()) {
                    return out;
                }
            }
        })
    }

    #[test]
    fn reads_keep_alive_responses_in_sequence() {
        let wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello\
HTTP/1.1 301 Moved Permanently\r\nLocation: https://x/\r\nContent-Length: 0\r\n\r\n\
HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nConnection: close\r\n\r\nnah";
        let got = read_all(wire);
        assert_eq!(
            got,
            vec![
                Ok(Response {
                    status: 200,
                    body_len: 5,
                    close: false
                }),
                Ok(Response {
                    status: 301,
                    body_len: 0,
                    close: false
                }),
                Ok(Response {
                    status: 404,
                    body_len: 3,
                    close: true
                }),
            ]
        );
    }

    #[test]
    fn reads_chunked_bodies_with_extensions_and_trailers() {
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n\
HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
        let got = read_all(wire);
        assert_eq!(
            got,
            vec![
                Ok(Response {
                    status: 200,
                    body_len: 11,
                    close: false
                }),
                Ok(Response {
                    status: 204,
                    body_len: 0,
                    close: true
                }),
            ]
        );
    }

    #[test]
    fn a_body_without_framing_ends_with_the_connection() {
        let got = read_all(b"HTTP/1.0 200 OK\r\n\r\nuntil the end");
        assert_eq!(
            got,
            vec![Ok(Response {
                status: 200,
                body_len: 13,
                close: true
            })]
        );
    }

    #[test]
    fn truncated_or_malformed_responses_are_errors() {
        let short = read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
        assert!(
            short[0].as_ref().is_err_and(|e| e.contains("3 of 10")),
            "{short:?}"
        );
        assert!(read_all(b"HTTP/1.1 200 OK\r\nContent-")[0].is_err());
        assert!(read_all(b"SSH-2.0-OpenSSH\r\n\r\n")[0].is_err());
        assert!(
            read_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")[0].is_err()
        );
    }
}

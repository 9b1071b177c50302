//! HTTP/1.1 requests over one connection with a decoded body cap (SPEC §3.4).
//!
//! An [`HttpSession`] is one hyper `client::conn::http1` connection over a stream the
//! caller already connected (plain TCP from [`dial`], or TLS on top of it). One host's
//! robots.txt and root page go over the same session (keep-alive); redirects and
//! reconnects are the caller's business.
//!
//! Bodies are never drained: [`ResponseHead::read_body`] stops as soon as the cap of
//! *decoded* bytes is held, and [`ResponseHead::discard`] reads nothing. Either way a
//! response whose body was not read to its end leaves the session unusable
//! ([`HttpSession::is_usable`]) and its connection is closed at once, so a server
//! streaming an endless body is not read past the cap (SPEC B-11) and abandoned
//! responses leak no sockets (B-10).

use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{ACCEPT_ENCODING, CONTENT_ENCODING, CONTENT_TYPE, HOST, LOCATION, USER_AGENT};
use http::{HeaderMap, HeaderName, Request};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body as _, Incoming};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{AbortHandle, JoinHandle};

/// Largest response head accepted (SPEC §3.4).
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Receive buffer requested for probe sockets (the kernel doubles it): small, so a
/// reader that stopped at its cap is not flooded by the server (SPEC B-11).
pub const RECV_BUFFER: u32 = 32 * 1024;
/// The `Accept-Encoding` every request sends.
pub const ACCEPT_ENCODING_VALUE: &str = "gzip, deflate";

/// Why a request or a body read failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The deadline passed; the session is no longer usable.
    #[error("timed out")]
    Timeout,
    /// The connection was closed (by the server, or after an abandoned body) before a
    /// response arrived; the caller may reconnect once and retry.
    #[error("connection closed")]
    Closed,
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[source] io::Error),
    /// The server broke HTTP/1.1 (bad head, head over 64 KiB, bad framing, reset mid-body).
    #[error("http: {0}")]
    Protocol(#[source] hyper::Error),
    /// The host header or path cannot form a request.
    #[error("invalid request: {0}")]
    Request(#[source] http::Error),
    /// The compressed body is corrupt.
    #[error("content decoding: {0}")]
    Decode(#[source] io::Error),
    /// The server used a content coding we did not offer.
    #[error("unsupported content encoding {0:?}")]
    UnsupportedEncoding(String),
}

impl HttpError {
    /// A short, bounded label, e.g. `timeout` or `protocol`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Closed => "closed",
            Self::Io(_) => "io",
            Self::Protocol(_) => "protocol",
            Self::Request(_) => "invalid_request",
            Self::Decode(_) => "decode",
            Self::UnsupportedEncoding(_) => "unsupported_encoding",
        }
    }
}

/// Opens a TCP connection to `addr` within `timeout`, with a small receive buffer
/// (so a stopped reader is not flooded, B-11) and `TCP_NODELAY`.
///
/// Running out of descriptors, ephemeral ports or socket buffers is not an answer
/// from `addr`: such a try waits a short backoff and is made again, for as long as
/// the caller lets it (its task deadline), each wait counted in
/// `spyder_resource_waits_total` ([`crate::resources`]). `timeout` bounds each try.
pub async fn dial(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    dial_timed(addr, timeout).await.0
}

/// [`dial`], also giving when its last try began: a deadline that follows the
/// connect runs from there, so waits for machine resources do not eat into it.
pub(crate) async fn dial_timed(
    addr: SocketAddr,
    timeout: Duration,
) -> (io::Result<TcpStream>, tokio::time::Instant) {
    let mut waits = 0u32;
    loop {
        let started = tokio::time::Instant::now();
        match dial_once(addr, timeout).await {
            Err(e) => match crate::resources::exhausted(&e) {
                Some(resource) => {
                    crate::resources::wait_for_resource(resource, waits).await;
                    waits = waits.saturating_add(1);
                }
                None => return (Err(e), started),
            },
            ok => return (ok, started),
        }
    }
}

async fn dial_once(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_recv_buffer_size(RECV_BUFFER)?;
    let stream = tokio::time::timeout(timeout, socket.connect(addr))
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect to {addr} timed out"),
            )
        })??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Whether a session may carry another request; shared with its responses.
#[derive(Debug, Default)]
struct SessionState {
    poisoned: AtomicBool,
}

/// Marks a response's session unusable and closes its connection when a body is
/// abandoned, unless disarmed.
#[derive(Debug)]
struct Abandon {
    state: Arc<SessionState>,
    driver: AbortHandle,
    armed: bool,
}

impl Abandon {
    fn new(state: &Arc<SessionState>, driver: AbortHandle) -> Self {
        Self {
            state: Arc::clone(state),
            driver,
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if self.armed {
            poison(&self.state, &self.driver);
        }
    }
}

/// Makes the session unusable and closes its connection (never drains).
fn poison(state: &SessionState, driver: &AbortHandle) {
    state.poisoned.store(true, Ordering::SeqCst);
    driver.abort();
}

/// One HTTP/1.1 connection: the hyper request sender and its connection driver task,
/// aborted (closing the connection) when the session is dropped.
pub struct HttpSession {
    sender: http1::SendRequest<Empty<Bytes>>,
    driver: JoinHandle<()>,
    state: Arc<SessionState>,
}

impl fmt::Debug for HttpSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpSession")
            .field("usable", &self.is_usable())
            .finish_non_exhaustive()
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl HttpSession {
    /// Starts HTTP/1.1 over an established stream (response heads ≤ 64 KiB).
    pub async fn handshake<S>(io: S) -> Result<Self, HttpError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, conn) = http1::Builder::new()
            .max_buf_size(MAX_HEAD_BYTES)
            .handshake(TokioIo::new(io))
            .await
            .map_err(HttpError::Protocol)?;
        let driver = tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::trace!(error = %e, "http connection ended");
            }
        });
        Ok(Self {
            sender,
            driver,
            state: Arc::default(),
        })
    }

    /// False once the server closed the connection, a request failed or timed out, or
    /// a response body was abandoned: the caller must reconnect.
    pub fn is_usable(&self) -> bool {
        !self.state.poisoned.load(Ordering::SeqCst)
            && !self.sender.is_closed()
            && !self.driver.is_finished()
    }

    /// Sends `GET path` with `Host`, `User-Agent` and `Accept-Encoding: gzip, deflate`
    /// and returns once the response head arrived, within `timeout`.
    ///
    /// [`HttpError::Closed`] means the connection was gone before any response (for
    /// example the server closed it while idle): reconnect once and retry.
    pub async fn get(
        &mut self,
        host_header: &str,
        path: &str,
        user_agent: &str,
        timeout: Duration,
    ) -> Result<ResponseHead, HttpError> {
        if self.state.poisoned.load(Ordering::SeqCst) {
            return Err(HttpError::Closed);
        }
        let request = Request::get(path)
            .header(HOST, host_header)
            .header(USER_AGENT, user_agent)
            .header(ACCEPT_ENCODING, ACCEPT_ENCODING_VALUE)
            .body(Empty::new())
            .map_err(HttpError::Request)?;
        let sender = &mut self.sender;
        let exchange = async move {
            sender.ready().await.map_err(request_error)?;
            sender.send_request(request).await.map_err(request_error)
        };
        let response = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                poison(&self.state, &self.driver.abort_handle());
                return Err(e);
            }
            Err(_) => {
                poison(&self.state, &self.driver.abort_handle());
                return Err(HttpError::Timeout);
            }
        };
        let (parts, body) = response.into_parts();
        Ok(ResponseHead {
            status: parts.status.as_u16(),
            content_type: header_string(&parts.headers, &CONTENT_TYPE),
            location: header_string(&parts.headers, &LOCATION),
            content_encoding: header_string(&parts.headers, &CONTENT_ENCODING),
            body,
            abandon: Abandon::new(&self.state, self.driver.abort_handle()),
        })
    }
}

/// A header's value as sent (non-UTF-8 bytes replaced), if present.
fn header_string(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Classifies a failure before a response head arrived.
fn request_error(e: hyper::Error) -> HttpError {
    if e.is_canceled() || e.is_closed() || e.is_incomplete_message() {
        return HttpError::Closed;
    }
    if let Some(io) = find_io_error(&e) {
        return match io.kind() {
            io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::NotConnected => HttpError::Closed,
            kind => HttpError::Io(io::Error::new(kind, e.to_string())),
        };
    }
    HttpError::Protocol(e)
}

/// The I/O error somewhere in `e`'s source chain.
fn find_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<io::Error>() {
            return Some(io);
        }
        current = err.source();
    }
    None
}

/// A response whose head has arrived; the body is still on the wire.
#[derive(Debug)]
pub struct ResponseHead {
    /// The status code.
    pub status: u16,
    /// `Content-Type` as sent (not lower-cased).
    pub content_type: Option<String>,
    /// `Location` as sent (not resolved).
    pub location: Option<String>,
    /// `Content-Encoding` as sent.
    pub content_encoding: Option<String>,
    body: Incoming,
    abandon: Abandon,
}

/// A body read up to its cap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Body {
    /// The decoded bytes, at most the cap.
    pub bytes: Bytes,
    /// More decoded bytes existed (or may have existed) past the cap.
    pub truncated: bool,
}

impl ResponseHead {
    /// Reads the body, decoding gzip/deflate (zlib, falling back to raw deflate)
    /// incrementally, and stops as soon as `cap` decoded bytes are held, within
    /// `timeout`. It never reads past the cap: when truncated, the session becomes
    /// unusable and its connection is closed, so the caller reconnects.
    pub async fn read_body(mut self, cap: usize, timeout: Duration) -> Result<Body, HttpError> {
        let mut decoder = Decoder::new(self.content_encoding.as_deref(), cap)?;
        let body = &mut self.body;
        let read = async {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(body_error)?;
                let Ok(data) = frame.into_data() else {
                    continue; // trailers
                };
                // Full, or exactly at the cap with more to come: stop reading here.
                if decoder.push(&data)? == Fill::Full
                    || (decoder.held() >= cap && !body.is_end_stream())
                {
                    return Ok(true);
                }
            }
            Ok::<bool, HttpError>(false)
        };
        let hit_cap = tokio::time::timeout(timeout, read)
            .await
            .map_err(|_| HttpError::Timeout)??;
        if hit_cap {
            // Dropping `self` (armed) closes the connection without draining it.
            return Ok(Body {
                bytes: decoder.into_partial(),
                truncated: true,
            });
        }
        let (bytes, truncated) = decoder.finish()?;
        if !truncated {
            self.abandon.disarm();
        }
        Ok(Body { bytes, truncated })
    }

    /// Drops the response without reading its body. Unless the body was empty, the
    /// connection is closed at once and the session is no longer usable.
    pub fn discard(mut self) {
        if self.body.is_end_stream() {
            self.abandon.disarm();
        }
    }
}

/// Classifies a failure while reading a body.
fn body_error(e: hyper::Error) -> HttpError {
    match find_io_error(&e) {
        Some(io) => HttpError::Io(io::Error::new(io.kind(), e.to_string())),
        None => HttpError::Protocol(e),
    }
}

/// Whether a decoder can take more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fill {
    Room,
    Full,
}

/// Holds decoded bytes up to a cap; refuses (with an error) what does not fit, so a
/// decompressor writing into it stops at the cap.
#[derive(Debug)]
struct CapSink {
    buf: BytesMut,
    cap: usize,
    overflow: bool,
}

impl CapSink {
    fn new(cap: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            cap,
            overflow: false,
        }
    }

    fn fill(&self) -> Fill {
        if self.overflow {
            Fill::Full
        } else {
            Fill::Room
        }
    }
}

impl Write for CapSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let room = self.cap - self.buf.len();
        if room == 0 {
            self.overflow = true;
            return Err(io::Error::other("body cap reached"));
        }
        let take = room.min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Content decoding into a [`CapSink`].
#[derive(Debug)]
enum Decoder {
    Identity(CapSink),
    Gzip(Box<flate2::write::MultiGzDecoder<CapSink>>),
    Zlib(Box<flate2::write::ZlibDecoder<CapSink>>),
    Raw(Box<flate2::write::DeflateDecoder<CapSink>>),
    /// `deflate` before its first two bytes told zlib from raw deflate.
    Sniff(Vec<u8>, CapSink),
}

impl Decoder {
    fn new(encoding: Option<&str>, cap: usize) -> Result<Self, HttpError> {
        let sink = CapSink::new(cap);
        let encoding = encoding.map(str::trim).unwrap_or("");
        Ok(
            if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
                Self::Identity(sink)
            } else if encoding.eq_ignore_ascii_case("gzip")
                || encoding.eq_ignore_ascii_case("x-gzip")
            {
                Self::Gzip(Box::new(flate2::write::MultiGzDecoder::new(sink)))
            } else if encoding.eq_ignore_ascii_case("deflate") {
                Self::Sniff(Vec::new(), sink)
            } else {
                return Err(HttpError::UnsupportedEncoding(encoding.to_owned()));
            },
        )
    }

    /// Decodes `data` into the sink; [`Fill::Full`] once decoded bytes exceed the cap.
    fn push(&mut self, data: &[u8]) -> Result<Fill, HttpError> {
        match self {
            Self::Identity(sink) => {
                let room = sink.cap - sink.buf.len();
                let take = room.min(data.len());
                sink.buf.extend_from_slice(&data[..take]);
                if take < data.len() {
                    sink.overflow = true;
                }
                Ok(sink.fill())
            }
            Self::Gzip(d) => feed(d.as_mut(), data),
            Self::Zlib(d) => feed(d.as_mut(), data),
            Self::Raw(d) => feed(d.as_mut(), data),
            Self::Sniff(head, sink) => {
                head.extend_from_slice(data);
                if head.len() < 2 {
                    return Ok(Fill::Room);
                }
                let head = std::mem::take(head);
                let sink = std::mem::replace(sink, CapSink::new(0));
                *self = if is_zlib_header(head[0], head[1]) {
                    Self::Zlib(Box::new(flate2::write::ZlibDecoder::new(sink)))
                } else {
                    Self::Raw(Box::new(flate2::write::DeflateDecoder::new(sink)))
                };
                self.push(&head)
            }
        }
    }

    /// Decoded bytes held so far.
    fn held(&self) -> usize {
        match self {
            Self::Identity(sink) | Self::Sniff(_, sink) => sink.buf.len(),
            Self::Gzip(d) => d.get_ref().buf.len(),
            Self::Zlib(d) => d.get_ref().buf.len(),
            Self::Raw(d) => d.get_ref().buf.len(),
        }
    }

    /// Completes decoding at the end of the body: the bytes, and whether decoded
    /// bytes went past the cap.
    fn finish(self) -> Result<(Bytes, bool), HttpError> {
        match self {
            Self::Identity(sink) => Ok((sink.buf.freeze(), sink.overflow)),
            Self::Gzip(mut d) => finish(d.as_mut()),
            Self::Zlib(mut d) => finish(d.as_mut()),
            Self::Raw(mut d) => finish(d.as_mut()),
            Self::Sniff(head, _) if head.is_empty() => Ok((Bytes::new(), false)),
            Self::Sniff(..) => Err(HttpError::Decode(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "deflate body of one byte",
            ))),
        }
    }

    /// The bytes held when the cap was hit.
    fn into_partial(self) -> Bytes {
        match self {
            Self::Identity(sink) | Self::Sniff(_, sink) => sink.buf.freeze(),
            Self::Gzip(mut d) => d.get_mut().buf.split().freeze(),
            Self::Zlib(mut d) => d.get_mut().buf.split().freeze(),
            Self::Raw(mut d) => d.get_mut().buf.split().freeze(),
        }
    }
}

/// The flate2 write-side decoders, generically.
trait Inflate: Write {
    fn sink(&mut self) -> &mut CapSink;
    fn try_finish(&mut self) -> io::Result<()>;
}

macro_rules! inflate {
    ($($t:ty),*) => {$(
        impl Inflate for $t {
            fn sink(&mut self) -> &mut CapSink {
                self.get_mut()
            }
            fn try_finish(&mut self) -> io::Result<()> {
                <$t>::try_finish(self)
            }
        }
    )*};
}

inflate!(
    flate2::write::MultiGzDecoder<CapSink>,
    flate2::write::ZlibDecoder<CapSink>,
    flate2::write::DeflateDecoder<CapSink>
);

/// Decodes `data`, flushing so the sink holds everything decoded so far.
fn feed<D: Inflate>(d: &mut D, data: &[u8]) -> Result<Fill, HttpError> {
    match d.write_all(data).and_then(|()| d.flush()) {
        Ok(()) => Ok(d.sink().fill()),
        Err(_) if d.sink().overflow => Ok(Fill::Full),
        Err(e) => Err(HttpError::Decode(e)),
    }
}

fn finish<D: Inflate>(d: &mut D) -> Result<(Bytes, bool), HttpError> {
    match d.try_finish() {
        Ok(()) => Ok((d.sink().buf.split().freeze(), false)),
        // The last bytes decoded at the end of the stream went past the cap.
        Err(_) if d.sink().overflow => Ok((d.sink().buf.split().freeze(), true)),
        Err(e) => Err(HttpError::Decode(e)),
    }
}

/// Whether two bytes start a zlib stream (RFC 1950: deflate method, valid check bits).
fn is_zlib_header(cmf: u8, flg: u8) -> bool {
    cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(cmf) << 8 | u16::from(flg)) % 31 == 0
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use flate2::Compression;

    fn compress<W: Write>(mut w: W, data: &[u8]) -> W {
        w.write_all(data).expect("compresses");
        w
    }

    fn decode(encoding: &str, encoded: &[u8], cap: usize, chunk: usize) -> (Bytes, bool) {
        let mut d = Decoder::new(Some(encoding), cap).expect("supported");
        for part in encoded.chunks(chunk.max(1)) {
            if d.push(part).expect("decodes") == Fill::Full {
                return (d.into_partial(), true);
            }
        }
        d.finish().expect("finishes")
    }

    #[test]
    fn decodes_gzip_zlib_and_raw_deflate_in_small_pieces() {
        let text = b"<html>hello hello hello</html>".repeat(50);
        let gz = compress(
            flate2::write::GzEncoder::new(Vec::new(), Compression::default()),
            &text,
        )
        .finish()
        .expect("gzip");
        let zlib = compress(
            flate2::write::ZlibEncoder::new(Vec::new(), Compression::default()),
            &text,
        )
        .finish()
        .expect("zlib");
        let raw = compress(
            flate2::write::DeflateEncoder::new(Vec::new(), Compression::default()),
            &text,
        )
        .finish()
        .expect("deflate");
        for chunk in [1, 7, 4096] {
            assert_eq!(
                decode("gzip", &gz, 1 << 20, chunk),
                (Bytes::from(text.clone()), false)
            );
            assert_eq!(
                decode("deflate", &zlib, 1 << 20, chunk),
                (Bytes::from(text.clone()), false)
            );
            assert_eq!(
                decode("DEFLATE", &raw, 1 << 20, chunk),
                (Bytes::from(text.clone()), false)
            );
        }
        // Two gzip members.
        let mut two = gz.clone();
        two.extend_from_slice(&gz);
        assert_eq!(decode("x-gzip", &two, 1 << 20, 100).0.len(), text.len() * 2);
    }

    #[test]
    fn caps_decoded_bytes() {
        let zeros = vec![0u8; 4 << 20];
        let bomb = compress(
            flate2::write::GzEncoder::new(Vec::new(), Compression::best()),
            &zeros,
        )
        .finish()
        .expect("gzip");
        let (bytes, truncated) = decode("gzip", &bomb, 1000, 512);
        assert_eq!((bytes.len(), truncated), (1000, true));
        // Exactly the cap is not truncation.
        let (bytes, truncated) = decode("identity", b"12345", 5, 2);
        assert_eq!((&bytes[..], truncated), (&b"12345"[..], false));
        let (bytes, truncated) = decode("identity", b"123456", 5, 2);
        assert_eq!((&bytes[..], truncated), (&b"12345"[..], true));
    }

    #[test]
    fn rejects_corrupt_and_unknown_encodings() {
        let mut d = Decoder::new(Some("gzip"), 100).expect("supported");
        assert!(matches!(
            d.push(b"not gzip at all"),
            Err(HttpError::Decode(_))
        ));
        assert!(
            matches!(Decoder::new(Some("br"), 100), Err(HttpError::UnsupportedEncoding(e)) if e == "br")
        );
        assert!(is_zlib_header(0x78, 0x9c));
        assert!(!is_zlib_header(0xcb, 0x48));
    }
}

//! Sites and replies in their serving form: gzip bodies compressed once, routes
//! in a map.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use bytes::Bytes;

use super::site::{Reply, Site, TlsMode};

/// One site, ready to serve.
#[derive(Debug)]
pub(super) struct SiteState {
    pub(super) tls: TlsMode,
    pub(super) robots: Prepared,
    pub(super) routes: HashMap<String, Prepared>,
}

/// Turns a [`Site`] into its serving form (compressed bodies, route map).
pub(super) fn prepare_site(site: Site) -> io::Result<SiteState> {
    let mut routes = HashMap::with_capacity(site.routes.len());
    for (path, reply) in &site.routes {
        routes.insert(path.clone(), Prepared::new(reply)?);
    }
    Ok(SiteState {
        robots: Prepared::new(&site.robots)?,
        tls: site.tls,
        routes,
    })
}

/// A [`Reply`] ready to send: gzip bodies already compressed.
#[derive(Debug)]
pub(super) enum Prepared {
    Fixed {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    },
    Endless,
    Big(usize),
    ResetMidBody(Bytes),
    Hang,
    Slow(Duration, Box<Prepared>),
    Raw(Bytes),
    ThenClose(Box<Prepared>),
}

impl Prepared {
    fn new(reply: &Reply) -> io::Result<Self> {
        Ok(match reply {
            Reply::Html(body) => Self::Fixed {
                status: 200,
                headers: vec![("Content-Type", "text/html; charset=utf-8".to_owned())],
                body: Bytes::from(body.clone()),
            },
            Reply::Text { content_type, body } => Self::Fixed {
                status: 200,
                headers: vec![("Content-Type", content_type.clone())],
                body: Bytes::from(body.clone()),
            },
            Reply::Status(status) => Self::Fixed {
                status: *status,
                headers: Vec::new(),
                body: Bytes::new(),
            },
            Reply::StatusPage { status, body } => Self::Fixed {
                status: *status,
                headers: vec![("Content-Type", "text/html; charset=utf-8".to_owned())],
                body: Bytes::from(body.clone()),
            },
            Reply::Redirect { status, location } => Self::Fixed {
                status: *status,
                headers: vec![("Location", location.clone())],
                body: Bytes::new(),
            },
            Reply::Gzip { content_type, body } => Self::Fixed {
                status: 200,
                headers: vec![
                    ("Content-Type", content_type.clone()),
                    ("Content-Encoding", "gzip".to_owned()),
                ],
                body: Bytes::from(gzip(body.as_bytes())?),
            },
            Reply::Endless => Self::Endless,
            Reply::Big(n) => Self::Big(*n),
            Reply::ResetMidBody(body) => Self::ResetMidBody(Bytes::from(body.clone())),
            Reply::Hang => Self::Hang,
            Reply::Slow(d, inner) => Self::Slow(*d, Box::new(Self::new(inner)?)),
            Reply::Raw(bytes) => Self::Raw(Bytes::from(bytes.clone())),
            Reply::ThenClose(inner) => Self::ThenClose(Box::new(Self::new(inner)?)),
        })
    }
}

/// `data` compressed as one gzip member.
pub fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    use std::io::Write as _;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

/// The reply for `target`: robots.txt, an exact route, the route without its query,
/// else `None` (404).
pub(super) fn route<'a>(site: &'a SiteState, target: &str) -> Option<&'a Prepared> {
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path == "/robots.txt" {
        return Some(&site.robots);
    }
    site.routes.get(target).or_else(|| site.routes.get(path))
}

//! HTTPS and HTTP hosts on distinct 127.0.0.x addresses with scripted behaviours.
//!
//! A [`WebServer`] serves many [`Site`]s at once. The probe's `https_port` and
//! `http_port` are global settings, so sites differ by address: usually every site
//! gets its own 127.0.0.x address, and all of them listen on the same HTTPS port and
//! the same plain-HTTP port. Several [`NamedSite`]s may share one address, as on a
//! hosting provider: the TLS SNI picks the site (and its certificate) on the HTTPS
//! port, the `Host` header on the plain-HTTP port ([`WebServer::start_with`]).
//!
//! [`WebOptions`] make the server behave like a far, partly filtered network: every
//! connection reads through a round-trip delay line, and filtered addresses never
//! complete a connect on either port (see [`crate::netsim`]). Connections are counted
//! per address ([`WebServer::peak_open_connections`]), and so are the spans in which
//! the server was serving one ([`WebServer::peak_serving_connections`]), which lie
//! inside the client's own: a client's per-address connection cap is proven at the
//! server.
//!
//! The HTTP/1.1 server is written by hand on tokio so that every behaviour is exact:
//! keep-alive with several requests per connection, `Connection: close` honoured,
//! and scripted misbehaviour ([`Reply::Endless`], [`Reply::ResetMidBody`],
//! [`Reply::Hang`], [`TlsMode::LegacyOnly`], …). Every request is logged
//! ([`WebServer::requests`]) and every byte written to a socket is counted per site
//! ([`WebServer::bytes_sent`]), so tests can assert what the probe really did.
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use spyder_testkit::web::{Reply, Site, WebServer};
//! let site = Site::plain([127, 0, 0, 9].into(), Reply::Html("<a href=\"https://b.example/\">b</a>".into()));
//! let web = WebServer::start(vec![site]).await?;
//! println!("http://127.0.0.9:{}/", web.http_port());
//! # Ok(()) }
//! ```

mod bind;
mod conn;
mod http;
mod prepared;
mod server;
mod shared;
mod site;
mod tls;
mod transport;

pub use prepared::gzip;
pub use server::WebServer;
pub use site::{NamedSite, Reply, RequestLog, Site, TlsMode, WebOptions};
pub use tls::{TlsSetupError, insecure_client_config, self_signed_config};

#[cfg(test)]
mod tests;

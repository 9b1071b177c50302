//! The ingest HTTP(S) client: one POST at a time, mTLS, status classification.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{EmitterError, Format, MtlsFiles};

/// Response bytes read (then dropped) so that the connection can be reused.
const RESPONSE_READ_LIMIT: usize = 64 * 1024;

/// What the ingest server answered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    /// `Retry-After` in seconds, when present and numeric.
    pub(crate) retry_after: Option<Duration>,
}

impl Answer {
    /// Worth another try: 408, 429 and 5xx.
    pub(crate) fn is_retryable(&self) -> bool {
        self.status == StatusCode::REQUEST_TIMEOUT
            || self.status == StatusCode::TOO_MANY_REQUESTS
            || self.status.is_server_error()
    }
}

/// A POST client bound to one ingest URL and content type.
#[derive(Clone, Debug)]
pub(crate) struct IngestClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    /// `Basic …` from the URL's userinfo, if it had one.
    authorization: Option<HeaderValue>,
    content_type: HeaderValue,
}

impl IngestClient {
    /// Validates the URL and loads the mTLS files.
    pub(crate) async fn new(
        url: &str,
        format: Format,
        mtls: &MtlsFiles,
    ) -> Result<Self, EmitterError> {
        // Userinfo is sent as Basic auth, never in the request line, and never shown.
        let shown = spyder_model::secret::redact_url(url);
        let (bare, authorization) = match spyder_model::secret::split_url_userinfo(url) {
            Some((bare, (user, password))) => (bare, Some(basic_auth(&user, &password)?)),
            None => (url.to_owned(), None),
        };
        let uri: Uri = bare.parse().map_err(|e| EmitterError::Config {
            key: "output.ingest",
            reason: format!("{shown:?} is not a URL: {e}"),
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(EmitterError::Config {
                key: "output.ingest",
                reason: format!("{shown:?} is not an http:// or https:// URL"),
            });
        }
        let tls = client_tls(mtls).await?;
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        Ok(Self {
            client,
            uri,
            authorization,
            content_type: HeaderValue::from_static(format.content_type()),
        })
    }

    /// One POST of `body`. Unbounded in time: the caller races it against its limits.
    pub(crate) async fn post(&self, body: Bytes) -> Result<Answer, String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, self.content_type.clone());
        if let Some(authorization) = &self.authorization {
            request = request.header(AUTHORIZATION, authorization.clone());
        }
        let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| error_chain(&e))?;
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let status = response.status();
        // Read a little of the body so that the connection can be kept; errors are moot.
        let _ = Limited::new(response.into_body(), RESPONSE_READ_LIMIT)
            .collect()
            .await;
        Ok(Answer {
            status,
            retry_after,
        })
    }
}

/// An error and its sources, `: `-joined (hyper's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The rustls client configuration: `mtls.ca` or the webpki roots, and the client
/// certificate from `mtls.cert` + `mtls.key` when set.
async fn client_tls(mtls: &MtlsFiles) -> Result<rustls::ClientConfig, EmitterError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EmitterError::Config {
            key: "mtls",
            reason: format!("TLS setup failed: {e}"),
        })?;

    let mut roots = RootCertStore::empty();
    match &mtls.ca {
        Some(path) => {
            let certs = read_certs("mtls.ca", path).await?;
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| mtls_error("mtls.ca", path, e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let builder = builder.with_root_certificates(roots);

    match (&mtls.cert, &mtls.key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(_), None) => Err(EmitterError::Config {
            key: "mtls.key",
            reason: "mtls.cert is set but mtls.key is not; set both or neither".to_owned(),
        }),
        (None, Some(_)) => Err(EmitterError::Config {
            key: "mtls.cert",
            reason: "mtls.key is set but mtls.cert is not; set both or neither".to_owned(),
        }),
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certs("mtls.cert", cert_path).await?;
            let pem = read_file("mtls.key", key_path).await?;
            let key = PrivateKeyDer::from_pem_slice(&pem)
                .map_err(|e| mtls_error("mtls.key", key_path, format!("no private key: {e}")))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                mtls_error(
                    "mtls.key",
                    key_path,
                    format!("unusable with mtls.cert: {e}"),
                )
            })
        }
    }
}

async fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, EmitterError> {
    tokio::fs::read(path)
        .await
        .map_err(|e| mtls_error(key, path, format!("cannot read: {e}")))
}

async fn read_certs(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, EmitterError> {
    let pem = read_file(key, path).await?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| mtls_error(key, path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(mtls_error(key, path, "no CERTIFICATE block"));
    }
    Ok(certs)
}

fn mtls_error(key: &'static str, path: &Path, reason: impl ToString) -> EmitterError {
    EmitterError::Mtls {
        key,
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// `Authorization: Basic base64(user:password)` from a URL's percent-encoded userinfo
/// (RFC 7617); marked sensitive so that it is never logged.
fn basic_auth(user: &str, password: &str) -> Result<HeaderValue, EmitterError> {
    use base64::Engine as _;
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    let credentials = format!("{}:{}", decode(user), decode(password));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value =
        HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| EmitterError::Config {
            key: "output.ingest",
            reason: "the URL's user or password cannot be sent as Basic auth".to_owned(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

//! `GET /dashboard` and its assets (SPEC §3.14): one static page, its script and
//! its style sheet, compiled into the binary. No key (they hold no data; the page
//! asks for a key and reads everything through the API), not rate limited.

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::body::{HttpResponse, error_response, respond};
use crate::ApiError;

const INDEX_HTML: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");
const ICON_SVG: &str = include_str!("../dashboard/icon.svg");

/// The page's Content-Security-Policy: its own script, style sheet and API only;
/// no inline script or style, no `eval`, no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Whether `path` is the dashboard's.
pub(super) fn owns(path: &str) -> bool {
    path == "/dashboard" || path.starts_with("/dashboard/")
}

/// The page and its assets.
pub(super) fn serve(request: &Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    if let Some(refused) = super::body::only_get_or_head(request) {
        return refused;
    }
    let (content_type, body, cache) = match path {
        "/dashboard" | "/dashboard/" => ("text/html; charset=utf-8", INDEX_HTML, "no-store"),
        "/dashboard/app.js" => ("text/javascript; charset=utf-8", APP_JS, "no-cache"),
        "/dashboard/app.css" => ("text/css; charset=utf-8", APP_CSS, "no-cache"),
        // The page names it, so a browser does not ask for /favicon.ico (a 401).
        "/dashboard/icon.svg" => ("image/svg+xml", ICON_SVG, "no-cache"),
        _ => return error_response(&ApiError::not_found(format!("no page {path}"))),
    };
    // hyper sends no body to a HEAD request, and keeps its Content-Length.
    let mut response = respond(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    );
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

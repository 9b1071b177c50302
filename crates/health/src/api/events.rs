//! `GET /api/v1/events` (read): the dashboard's server-sent-events stream of the
//! hub's snapshots, the history first. One request against the rate limit, however
//! long it streams; a client holds a cursor, never a copy of the history.
//!
//! The response names the key's scope in [`KEY_SCOPE_HEADER`], so the dashboard shows
//! only the controls that key may use (a read key sees none).

use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, RETRY_AFTER, X_CONTENT_TYPE_OPTIONS};
use http::{Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio_util::sync::CancellationToken;

use spyder_config::Scope;

use super::body::{HttpResponse, error_response_with};
use crate::ApiError;
use crate::events::MAX_EVENT_STREAMS;
use crate::state::Served;

/// Response header of `GET /api/v1/events`: the scope of the key that opened it
/// (`read`, `write` or `admin`).
pub const KEY_SCOPE_HEADER: &str = "x-spyder-key-scope";

/// `GET /api/v1/events`: `kill` closes this connection when the client is too slow.
pub(super) fn stream(served: &Served, kill: &CancellationToken, scope: Scope) -> HttpResponse {
    let Some(frames) = crate::events::subscribe(
        &served.state.inner.events,
        served.shutdown.clone(),
        kill.clone(),
    ) else {
        let full = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMITED",
            format!(
                "{MAX_EVENT_STREAMS} event streams are open; close one (a dashboard page holds one)"
            ),
        );
        return error_response_with(&full, RETRY_AFTER, "5");
    };
    let frames = frames.map(|frame| Ok(Frame::data(frame)));
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(KEY_SCOPE_HEADER, HeaderValue::from_static(scope.as_str()));
    response
}

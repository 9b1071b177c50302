//! `GET /api/v1/stats` (SPEC §3.12): the run loop's counters as it reports them.

use http::StatusCode;

use super::body::{HttpResponse, json_response};
use crate::state::Served;

/// `GET /api/v1/stats`.
pub(super) fn get(served: &Served) -> HttpResponse {
    json_response(StatusCode::OK, &served.state.inner.control.stats())
}

//! `POST /api/v1/control/{pause,resume,stop}` (SPEC §3.12, §3.14): the run loop's
//! switches.

use http::StatusCode;
use serde::Serialize;

use super::body::{HttpResponse, json_response};
use crate::KeyIdentity;
use crate::state::Served;

/// `POST /api/v1/control/pause`.
pub(super) fn pause(served: &Served) -> HttpResponse {
    served.state.inner.control.pause();
    json_response(
        StatusCode::OK,
        &PausedBody {
            paused: true,
            message: "Workers paused",
        },
    )
}

/// `POST /api/v1/control/resume`.
pub(super) fn resume(served: &Served) -> HttpResponse {
    served.state.inner.control.resume();
    json_response(
        StatusCode::OK,
        &PausedBody {
            paused: false,
            message: "Workers resumed",
        },
    )
}

/// `POST /api/v1/control/stop`: `/ready` turns 503 and the run loop begins its
/// shutdown.
pub(super) fn stop(served: &Served, identity: &KeyIdentity) -> HttpResponse {
    let inner = &served.state.inner;
    tracing::info!(key_name = %identity.name, "stop requested through the API");
    inner.readiness.begin_shutdown();
    inner.control.stop();
    json_response(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "stopping": true }),
    )
}

#[derive(Serialize)]
struct PausedBody {
    paused: bool,
    message: &'static str,
}

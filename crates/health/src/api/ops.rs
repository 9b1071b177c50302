//! The health endpoints `GET /live`, `/ready`, `/health` (SPEC §2.7) and
//! `GET /metrics` (SPEC §2.8): no key, not rate limited.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;
use spyder_model::Timestamp;

use super::body::{HttpResponse, json_response, respond};
use crate::checks::{CheckReport, CheckStatus, worst};
use crate::state::{Metadata, Served};

const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

#[derive(Serialize)]
struct LiveBody {
    alive: bool,
    timestamp: Timestamp,
}

#[derive(Serialize)]
struct ReadyBody<'a> {
    ready: bool,
    timestamp: Timestamp,
    metadata: &'a Metadata,
}

#[derive(Serialize)]
struct HealthBody<'a> {
    status: CheckStatus,
    timestamp: Timestamp,
    checks: &'a [CheckReport],
    metadata: &'a Metadata,
}

pub(super) async fn ops_endpoint(served: &Served, request: &Request<Incoming>) -> HttpResponse {
    let path = request.uri().path();
    if let Some(refused) = super::body::only_get_or_head(request) {
        return refused;
    }
    let inner = &served.state.inner;
    match path {
        "/live" => json_response(
            StatusCode::OK,
            &LiveBody {
                alive: true,
                timestamp: Timestamp::now(),
            },
        ),
        "/ready" => {
            let checks = current_checks(served).await;
            let gate_failed = checks
                .iter()
                .any(|c| c.gates_readiness && c.status == CheckStatus::Unhealthy);
            let readiness = &inner.readiness;
            let ready = readiness.is_marked_ready() && !readiness.is_stopping() && !gate_failed;
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json_response(
                status,
                &ReadyBody {
                    ready,
                    timestamp: Timestamp::now(),
                    metadata: &inner.metadata,
                },
            )
        }
        "/health" => {
            let checks = current_checks(served).await;
            let overall = worst(&checks);
            let status = if overall == CheckStatus::Unhealthy {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            json_response(
                status,
                &HealthBody {
                    status: overall,
                    timestamp: Timestamp::now(),
                    checks: &checks,
                    metadata: &inner.metadata,
                },
            )
        }
        _ => metrics_response(served),
    }
}

/// The latest check results; waits for the first round (bounded) when the server
/// has just started.
async fn current_checks(served: &Served) -> Arc<Vec<CheckReport>> {
    let mut cache = served.checks.clone();
    let bound = first_round_bound(served.state.inner.check_timeout);
    match tokio::time::timeout(bound, cache.wait_for(Option::is_some)).await {
        Ok(Ok(reports)) => reports.as_ref().map(Arc::clone).unwrap_or_default(),
        _ => Arc::default(),
    }
}

/// How long a request waits for the first check round: twice the check timeout plus
/// 5 s, saturating (tokio treats a huge timeout as none).
fn first_round_bound(check_timeout: Duration) -> Duration {
    check_timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(5))
}

fn metrics_response(served: &Served) -> HttpResponse {
    match &served.state.inner.metrics {
        Some(handle) => respond(
            StatusCode::OK,
            PROMETHEUS_TEXT,
            Bytes::from(handle.render()),
        ),
        None => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            Bytes::from_static(b"metrics recorder not installed\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_round_bound_saturates() {
        assert_eq!(
            first_round_bound(Duration::from_secs(5)),
            Duration::from_secs(15)
        );
        assert_eq!(first_round_bound(Duration::MAX), Duration::MAX);
        assert_eq!(first_round_bound(Duration::MAX / 2), Duration::MAX);
    }
}

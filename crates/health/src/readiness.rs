//! The readiness flag of `GET /ready` and the shutdown flag the API obeys.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the service is up and whether it is stopping. Cheap to clone; all clones
/// share one state.
///
/// `/ready` answers 200 only when [`mark_ready`](Self::mark_ready) was called,
/// [`begin_shutdown`](Self::begin_shutdown) was not, and no readiness-gating
/// [`HealthCheck`](crate::HealthCheck) is unhealthy. From `begin_shutdown` on, the
/// API's changing endpoints answer `503 UNAVAILABLE` (SPEC §3.14 step 1).
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    inner: Arc<Flags>,
}

#[derive(Debug, Default)]
struct Flags {
    ready: AtomicBool,
    stopping: AtomicBool,
}

impl Readiness {
    /// Not ready, not stopping.
    pub fn new() -> Self {
        Self::default()
    }

    /// Redis, emitter and workers are up. Logs `service marked as ready` the first time.
    pub fn mark_ready(&self) {
        if !self.inner.ready.swap(true, Ordering::AcqRel) {
            tracing::info!("service marked as ready");
        }
    }

    /// Shutdown has started: `/ready` answers 503 from now on, and so does the API.
    /// Idempotent.
    pub fn begin_shutdown(&self) {
        self.inner.stopping.store(true, Ordering::Release);
    }

    /// Whether [`mark_ready`](Self::mark_ready) was called.
    pub fn is_marked_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Whether [`begin_shutdown`](Self::begin_shutdown) was called.
    pub fn is_stopping(&self) -> bool {
        self.inner.stopping.load(Ordering::Acquire)
    }
}

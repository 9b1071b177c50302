//! The per-task status record (SPEC §3.1 `output.status_records`): how one task
//! ended and where its time went, as zdns prints per name.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// One task's end: emitted after that task's records when `output.status_records`
/// is on (jsonl and csv only). Phases the task did not reach are `null`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskStatus {
    /// The host crawled.
    pub host: String,
    /// The task's outcome (`complete`, `dns_error`, …; SPEC §1).
    pub outcome: String,
    /// Why, when the probe knows more than the outcome says; `null` otherwise.
    pub reason: Option<String>,
    /// Which try of the queue item this was (1 for the first, and in file mode).
    pub attempt: u32,
    /// DNS lookups of the host, in milliseconds.
    pub dns_ms: Option<u64>,
    /// TCP connect and TLS handshake (or the plain HTTP fallback's connect).
    pub tls_ms: Option<u64>,
    /// The robots.txt request (or its cache hit).
    pub robots_ms: Option<u64>,
    /// The root page request, redirects included.
    pub fetch_ms: Option<u64>,
    /// The whole task.
    pub total_ms: u64,
    /// The task's observation time, as on its records.
    pub observed_at: Timestamp,
}

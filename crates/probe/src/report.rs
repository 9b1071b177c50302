//! What one crawl produces.

use std::fmt;
use std::time::Duration;

use spyder_model::{HostName, Records, Timestamp};

/// How a task ended (SPEC §1). Each task has exactly one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The root page request got a response.
    Complete,
    /// The host is under an excluded TLD; DNS ran, nothing was contacted.
    Excluded,
    /// NXDOMAIN or no address records.
    NoAddress,
    /// Every address was refused as private (SPEC §3.5).
    PrivateRefused,
    /// Neither TLS nor plain HTTP connected.
    NoWeb,
    /// robots.txt disallows `/` for us.
    RobotsBlocked,
    /// The name failed validation; no records.
    Invalid,
    /// A and AAAA both timed out or failed with SERVFAIL/REFUSED.
    DnsError,
    /// The task deadline was hit; partial records are kept.
    Timeout,
    /// A bug or resource failure inside the probe.
    Internal,
}

/// The `status` label of `spyder_tasks_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The task observed what there was to observe (SPEC §1 table).
    Ok,
    /// The input, DNS, the deadline or the probe itself failed the task.
    Error,
}

impl Outcome {
    /// Every outcome, in the order of SPEC §1's table.
    pub const ALL: [Outcome; 10] = [
        Self::Complete,
        Self::Excluded,
        Self::NoAddress,
        Self::PrivateRefused,
        Self::NoWeb,
        Self::RobotsBlocked,
        Self::Invalid,
        Self::DnsError,
        Self::Timeout,
        Self::Internal,
    ];

    /// The `outcome` label of `spyder_task_outcomes_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::Excluded => "excluded",
            Self::NoAddress => "no_address",
            Self::PrivateRefused => "private_refused",
            Self::NoWeb => "no_web",
            Self::RobotsBlocked => "robots_blocked",
            Self::Invalid => "invalid",
            Self::DnsError => "dns_error",
            Self::Timeout => "timeout",
            Self::Internal => "internal",
        }
    }

    /// `ok` or `error`, per the table in SPEC §1.
    pub fn status(self) -> Status {
        match self {
            Self::Invalid | Self::DnsError | Self::Timeout | Self::Internal => Status::Error,
            _ => Status::Ok,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Status {
    /// The `status` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
        }
    }
}

/// Time spent in each phase of one task; `None` when the phase did not run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PhaseTimings {
    /// Step 3: the A, AAAA, NS, CNAME and MX lookups of the host.
    pub dns: Option<Duration>,
    /// Step 6: TCP connect and TLS handshake (or the plain HTTP fallback).
    pub connect: Option<Duration>,
    /// Step 7: the robots.txt request (or its cache hit).
    pub robots: Option<Duration>,
    /// Step 8: the root page request, redirects included.
    pub root: Option<Duration>,
    /// The whole task, from input to report.
    pub total: Duration,
}

impl PhaseTimings {
    /// The first phase without a timing: the one a task cut short was in (`dns`,
    /// `tls`, `robots` or `fetch`).
    pub(crate) fn current_phase(&self) -> &'static str {
        if self.dns.is_none() {
            "dns"
        } else if self.connect.is_none() {
            "tls"
        } else if self.robots.is_none() {
            "robots"
        } else {
            "fetch"
        }
    }
}

/// The result of [`crate::Probe::crawl`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CrawlReport {
    /// The normalised host, or `None` when the input was invalid.
    pub host: Option<HostName>,
    /// The task's observation time, stamped on every record.
    pub observed_at: Timestamp,
    /// How the task ended.
    pub outcome: Outcome,
    /// Why the task failed, where the probe knows more than the outcome says:
    /// the validation error of an [`Outcome::Invalid`] input, the failed lookups
    /// of an [`Outcome::DnsError`], what the connects of an [`Outcome::NoWeb`] met
    /// in bounded labels (`"https timeout"`, `"https connect_refused; http
    /// connect_refused"`, `"root request protocol"`), the phase a [`Outcome::Timeout`]
    /// task was in (`"task_timeout in tls"`), or the panic message of an
    /// [`Outcome::Internal`] task (`"panic: …"`). `None` otherwise.
    pub detail: Option<String>,
    /// The domain's records, de-duplicated within the task (not across tasks).
    pub records: Records,
    /// Names worth crawling next (SPEC §3.10): NS, MX and CNAME targets, link and
    /// redirect hosts, and certificate SANs with any `*.` stripped. Unfiltered
    /// beyond validity; de-duplicated, first-seen order.
    pub candidates: Vec<HostName>,
    /// Time spent in each phase.
    pub timings: PhaseTimings,
}

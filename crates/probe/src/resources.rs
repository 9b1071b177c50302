//! Machine limits a crawl runs into: the process's descriptor limit (`RLIMIT_NOFILE`)
//! and, while connecting, exhausted descriptors, ephemeral ports or socket buffers.
//!
//! Exhaustion is a property of the machine at a moment, not of the host being
//! crawled: a connect that fails with `EMFILE`, `ENFILE`, `EADDRNOTAVAIL`, `ENOBUFS`
//! or `ENOMEM` waits a short backoff and tries again ([`exhausted`],
//! [`wait_for_resource`]), bounded only by the task's deadline, and each wait is
//! counted in `spyder_resource_waits_total{resource}` (SPEC §1: a task never ends
//! `no_web` because the probe itself ran short).

use std::io;
use std::time::Duration;

use rustix::io::Errno;
use rustix::process::{Resource as RlimitResource, Rlimit, getrlimit, setrlimit};

/// First wait after an exhaustion error; it doubles per consecutive failure.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);
/// Longest single wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_millis(250);

/// Descriptors one crawl task may hold at once: its one connection, plus a second
/// for the moment a closed connection's socket outlives the opening of the next one,
/// or for a DNS answer too large for UDP that is fetched over TCP.
pub const DESCRIPTORS_PER_TASK: u64 = 2;
/// Descriptors the rest of the process holds whatever the concurrency: standard
/// streams, the runtime's epoll and wake-up descriptors, the ops listener and its
/// clients, Redis connections, the output file or ingest connections, logs.
pub const DESCRIPTORS_BASE: u64 = 64;

/// A resource the machine ran out of while a connection was being made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exhausted {
    /// No descriptor left, for the process (`EMFILE`) or the system (`ENFILE`).
    Descriptors,
    /// No ephemeral port left for this destination (`EADDRNOTAVAIL` from connect).
    Ports,
    /// No kernel memory for the socket (`ENOBUFS`, `ENOMEM`).
    Buffers,
}

impl Exhausted {
    /// The `resource` label of `spyder_resource_waits_total`: `fd`, `port` or `buffer`.
    pub fn label(self) -> &'static str {
        match self {
            Self::Descriptors => "fd",
            Self::Ports => "port",
            Self::Buffers => "buffer",
        }
    }
}

/// Which machine resource `err` says ran out, if any. Only errors of socket creation
/// and connect are meant: refusals, timeouts and unreachable networks are answers
/// from the network and give `None`.
pub fn exhausted(err: &io::Error) -> Option<Exhausted> {
    let errno = Errno::from_io_error(err)?;
    if errno == Errno::MFILE || errno == Errno::NFILE {
        Some(Exhausted::Descriptors)
    } else if errno == Errno::ADDRNOTAVAIL {
        Some(Exhausted::Ports)
    } else if errno == Errno::NOBUFS || errno == Errno::NOMEM {
        Some(Exhausted::Buffers)
    } else {
        None
    }
}

/// Counts one wait for `resource` and sleeps the backoff of the `attempt`-th
/// consecutive failure (0 first): 10 ms doubling up to 250 ms, with up to a quarter
/// of jitter so that thousands of waiting tasks do not retry in step.
pub async fn wait_for_resource(resource: Exhausted, attempt: u32) {
    spyder_model::telemetry::resource_waits(resource.label()).increment(1);
    tracing::debug!(
        resource = resource.label(),
        attempt,
        "out of a machine resource; waiting"
    );
    tokio::time::sleep(backoff(attempt, rand::random::<f64>())).await;
}

/// The wait before try `attempt + 1`; `jitter` in [0, 1) adds up to 25 %.
fn backoff(attempt: u32, jitter: f64) -> Duration {
    let base = spyder_model::backoff::doubling(FIRST_BACKOFF, MAX_BACKOFF, attempt);
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        0.0
    };
    base.saturating_add(base.mul_f64(jitter / 4.0))
}

/// The process's descriptor limit after [`raise_descriptor_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DescriptorLimit {
    /// The soft limit in force (`None`: unlimited).
    pub soft: Option<u64>,
    /// The hard limit (`None`: unlimited).
    pub hard: Option<u64>,
    /// The soft limit before it was raised; `None` when it was not changed.
    pub raised_from: Option<u64>,
}

impl DescriptorLimit {
    /// Whether the soft limit holds `needed` descriptors.
    pub fn holds(&self, needed: u64) -> bool {
        self.soft.is_none_or(|soft| soft >= needed)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (SPEC §2.4: a default soft limit
/// of 1,024 must not cap a crawl of 4,096 tasks). An unlimited hard limit, which the
/// kernel does not accept as a soft one on every system, is tried as is and then as
/// `fs.nr_open`'s usual ceiling of 1,048,576. Returns the limit in force, unchanged
/// when the kernel refuses every raise.
pub fn raise_descriptor_limit() -> DescriptorLimit {
    let before = getrlimit(RlimitResource::Nofile);
    let unchanged = DescriptorLimit {
        soft: before.current,
        hard: before.maximum,
        raised_from: None,
    };
    if before.current == before.maximum {
        return unchanged;
    }
    let targets: &[Option<u64>] = match before.maximum {
        Some(hard) => &[Some(hard)],
        None => &[None, Some(1 << 20)],
    };
    for &target in targets {
        if target.is_some() && before.current.is_some_and(|c| Some(c) >= target) {
            continue;
        }
        let wanted = Rlimit {
            current: target,
            maximum: before.maximum,
        };
        if setrlimit(RlimitResource::Nofile, wanted).is_ok() {
            let after = getrlimit(RlimitResource::Nofile);
            return DescriptorLimit {
                soft: after.current,
                hard: after.maximum,
                raised_from: before.current,
            };
        }
    }
    unchanged
}

/// The process's descriptor limit now, unchanged (`raised_from` is `None`).
pub fn descriptor_limit() -> DescriptorLimit {
    let now = getrlimit(RlimitResource::Nofile);
    DescriptorLimit {
        soft: now.current,
        hard: now.maximum,
        raised_from: None,
    }
}

/// Logs the limit in force once at info level, then [`warn_if_short`].
pub fn log_descriptor_limit(limit: &DescriptorLimit, concurrency: usize, dns_sockets: usize) {
    tracing::info!(
        soft = %shown(limit.soft),
        hard = %shown(limit.hard),
        raised_from = %limit.raised_from.map_or_else(|| "-".to_owned(), |v| v.to_string()),
        "descriptor limit (RLIMIT_NOFILE)"
    );
    warn_if_short(limit, concurrency, dns_sockets);
}

/// Warns, and returns true, when `limit` cannot hold what `concurrency` tasks may
/// need ([`descriptors_needed`]). Such a run still completes: tasks short of a
/// descriptor wait for one (counted in `spyder_resource_waits_total{resource="fd"}`).
pub fn warn_if_short(limit: &DescriptorLimit, concurrency: usize, dns_sockets: usize) -> bool {
    let needed = descriptors_needed(concurrency, dns_sockets);
    if limit.holds(needed) {
        return false;
    }
    tracing::warn!(
        soft = %shown(limit.soft),
        hard = %shown(limit.hard),
        needed,
        concurrency,
        "the descriptor limit cannot hold crawling.concurrency tasks (estimate: {DESCRIPTORS_PER_TASK} per task, \
         the DNS sockets and {DESCRIPTORS_BASE} for the rest); tasks will wait for descriptors: \
         raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower crawling.concurrency"
    );
    true
}

fn shown(limit: Option<u64>) -> String {
    limit.map_or_else(|| "unlimited".to_owned(), |v| v.to_string())
}

/// Descriptors a probe of `concurrency` tasks and `dns_sockets` DNS sockets may hold
/// at once: [`DESCRIPTORS_PER_TASK`] per task, the DNS sockets, and
/// [`DESCRIPTORS_BASE`] for the rest. An estimate for a warning, not a reservation:
/// short of it, tasks wait for descriptors instead of failing.
pub fn descriptors_needed(concurrency: usize, dns_sockets: usize) -> u64 {
    let tasks = u64::try_from(concurrency).unwrap_or(u64::MAX);
    let dns = u64::try_from(dns_sockets).unwrap_or(u64::MAX);
    tasks
        .saturating_mul(DESCRIPTORS_PER_TASK)
        .saturating_add(dns)
        .saturating_add(DESCRIPTORS_BASE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(errno: Errno) -> io::Error {
        io::Error::from_raw_os_error(errno.raw_os_error())
    }

    #[test]
    fn exhaustion_errors_are_told_apart_from_network_answers() {
        assert_eq!(exhausted(&os(Errno::MFILE)), Some(Exhausted::Descriptors));
        assert_eq!(exhausted(&os(Errno::NFILE)), Some(Exhausted::Descriptors));
        assert_eq!(exhausted(&os(Errno::ADDRNOTAVAIL)), Some(Exhausted::Ports));
        assert_eq!(exhausted(&os(Errno::NOBUFS)), Some(Exhausted::Buffers));
        assert_eq!(exhausted(&os(Errno::NOMEM)), Some(Exhausted::Buffers));
        for answer in [
            Errno::CONNREFUSED,
            Errno::TIMEDOUT,
            Errno::NETUNREACH,
            Errno::HOSTUNREACH,
            Errno::CONNRESET,
            Errno::ACCESS,
            Errno::INVAL,
        ] {
            assert_eq!(exhausted(&os(answer)), None, "{answer:?}");
        }
        // Errors without an OS code (our own timeouts, for one) are never exhaustion.
        assert_eq!(
            exhausted(&io::Error::new(
                io::ErrorKind::TimedOut,
                "connect timed out"
            )),
            None
        );
        assert_eq!(
            exhausted(&io::Error::from(io::ErrorKind::OutOfMemory)),
            None
        );
    }

    #[test]
    fn labels_are_the_documented_ones() {
        let labels: Vec<&str> = [Exhausted::Descriptors, Exhausted::Ports, Exhausted::Buffers]
            .iter()
            .map(|r| r.label())
            .collect();
        assert_eq!(labels, ["fd", "port", "buffer"]);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap_with_bounded_jitter() {
        assert_eq!(backoff(0, 0.0), Duration::from_millis(10));
        assert_eq!(backoff(1, 0.0), Duration::from_millis(20));
        assert_eq!(backoff(4, 0.0), Duration::from_millis(160));
        assert_eq!(backoff(5, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(0, 0.5), Duration::from_micros(11_250));
        assert!(backoff(u32::MAX, 5.0) <= MAX_BACKOFF.mul_f64(1.25));
        assert!(backoff(0, f64::NAN) >= FIRST_BACKOFF);
    }

    #[test]
    fn the_estimate_counts_tasks_dns_sockets_and_a_base() {
        assert_eq!(descriptors_needed(4096, 4), 4096 * 2 + 4 + 64);
        assert_eq!(descriptors_needed(0, 0), DESCRIPTORS_BASE);
        assert_eq!(descriptors_needed(usize::MAX, usize::MAX), u64::MAX);
        let limit = DescriptorLimit {
            soft: Some(1024),
            hard: Some(1024),
            raised_from: None,
        };
        assert!(limit.holds(1024));
        assert!(!limit.holds(descriptors_needed(4096, 4)));
        let unlimited = DescriptorLimit {
            soft: None,
            ..limit
        };
        assert!(unlimited.holds(u64::MAX));
    }

    #[test]
    fn raising_reaches_the_hard_limit_and_is_idempotent() {
        let first = raise_descriptor_limit();
        if first.hard.is_some() {
            assert_eq!(first.soft, first.hard, "{first:?}");
        }
        let second = raise_descriptor_limit();
        assert_eq!(second.soft, first.soft);
        assert_eq!(second.raised_from, None, "nothing left to raise");
    }
}

//! Fault injection for tests (cargo feature `fault-injection`, never in release
//! builds): proves that a bug inside one task is contained (SPEC §1 outcome
//! `internal`, issue #10) through the real binary.

use spyder_model::HostName;

/// Hosts whose first label starts with this panic right after their DNS phase.
pub const PANIC_LABEL_PREFIX: &str = "spyder-fault-panic";

/// Panics for a host named `spyder-fault-panic*.…`; does nothing for any other.
pub(crate) fn after_dns(host: &HostName) {
    if host.as_str().starts_with(PANIC_LABEL_PREFIX) {
        panic!("injected fault for {host}");
    }
}

//! The fleet of a shared queue (issue #14 step 3): each probe writes a heartbeat
//! into the hash `<key>:probes` (probe id → JSON), refreshed every
//! [`HEARTBEAT_EVERY`], so any probe can list every probe of its queue and whether
//! it is still there ([`GONE_AFTER`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How often a probe refreshes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);
/// A heartbeat older than this is shown as gone.
pub const GONE_AFTER: Duration = Duration::from_secs(30);
/// A heartbeat older than this is deleted when the fleet is read, so the hash stays
/// bounded however many probes came and went.
pub const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// What one probe says of itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// `probe`: the probe id.
    pub probe_id: String,
    /// `run`: the run id.
    pub run_id: String,
    /// `crawling`, `paused`, `stalled`, `config_error` (the last SIGHUP reload was
    /// refused) or `stopped` (its last beat, at shutdown).
    pub state: String,
    /// The spyder version.
    pub version: String,
    /// Tasks finished per second over the last interval.
    pub tasks_per_sec: f64,
    /// Edges emitted per second over the last interval.
    pub edges_per_sec: f64,
    /// Workers running, and the target.
    pub workers_active: u64,
    /// The worker target (`crawling.concurrency`).
    pub workers_target: u64,
    /// Tasks finished since the start.
    pub tasks_total: u64,
    /// Where its ops listener (health, API, dashboard) is reachable, when it
    /// listens on a named address; `None` for `:port` and `0.0.0.0`.
    pub ops_addr: Option<String>,
    /// When it was written, Unix milliseconds.
    pub last_seen_ms: u64,
}

/// A heartbeat as read back, with whether its probe is gone.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FleetMember {
    /// The heartbeat as written.
    #[serde(flatten)]
    pub heartbeat: Heartbeat,
    /// Older than [`GONE_AFTER`] (and not stopped on purpose).
    pub gone: bool,
}

/// The members of a fleet read at `now_ms`, by probe id; entries that do not decode
/// are skipped. Also returns the ids to forget ([`FORGET_AFTER`]).
pub fn members(entries: Vec<(String, String)>, now_ms: u64) -> (Vec<FleetMember>, Vec<String>) {
    let gone_ms = GONE_AFTER.as_millis() as u64;
    let forget_ms = FORGET_AFTER.as_millis() as u64;
    let mut members = Vec::new();
    let mut forget = Vec::new();
    for (id, json) in entries {
        let Ok(heartbeat) = serde_json::from_str::<Heartbeat>(&json) else {
            continue;
        };
        let age = now_ms.saturating_sub(heartbeat.last_seen_ms);
        if age > forget_ms {
            forget.push(id);
            continue;
        }
        members.push(FleetMember {
            gone: age > gone_ms && heartbeat.state != "stopped",
            heartbeat,
        });
    }
    members.sort_by(|a, b| a.heartbeat.probe_id.cmp(&b.heartbeat.probe_id));
    (members, forget)
}

/// The ops address a probe advertises for `metrics_addr`: only a named host (a
/// bare `:port` or an unspecified address says nothing others can dial).
pub fn advertised_ops_addr(metrics_addr: &str) -> Option<String> {
    let (host, port) = metrics_addr.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host == "0.0.0.0" || host == "::" || port.is_empty() {
        return None;
    }
    Some(metrics_addr.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(id: &str, state: &str, at: u64) -> (String, String) {
        let hb = Heartbeat {
            probe_id: id.to_owned(),
            state: state.to_owned(),
            last_seen_ms: at,
            ..Heartbeat::default()
        };
        (id.to_owned(), serde_json::to_string(&hb).expect("json"))
    }

    #[test]
    fn old_heartbeats_are_gone_then_forgotten_and_stopped_ones_are_not_gone() {
        let now = 10_000_000;
        let (members, forget) = members(
            vec![
                beat("b", "crawling", now - 1_000),
                beat("a", "crawling", now - 31_000),
                beat("c", "stopped", now - 60_000),
                beat("old", "crawling", now - 3_700_000),
                ("junk".to_owned(), "not json".to_owned()),
            ],
            now,
        );
        let view: Vec<(&str, bool)> = members
            .iter()
            .map(|m| (m.heartbeat.probe_id.as_str(), m.gone))
            .collect();
        assert_eq!(view, [("a", true), ("b", false), ("c", false)]);
        assert_eq!(forget, ["old"]);
    }

    #[test]
    fn only_named_addresses_are_advertised() {
        assert_eq!(advertised_ops_addr(":9090"), None);
        assert_eq!(advertised_ops_addr("0.0.0.0:9090"), None);
        assert_eq!(advertised_ops_addr("[::]:9090"), None);
        assert_eq!(
            advertised_ops_addr("10.0.0.7:9090").as_deref(),
            Some("10.0.0.7:9090")
        );
    }
}

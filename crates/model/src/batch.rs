//! The batch envelope (SPEC §2.2) and the record set one crawl produces.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Edge, NodeCert, NodeDomain, NodeIp, TaskStatus, Timestamp};

/// The records of one or more crawls, without an envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Records {
    /// Domain nodes.
    pub nodes_domain: Vec<NodeDomain>,
    /// Address nodes.
    pub nodes_ip: Vec<NodeIp>,
    /// Certificate nodes.
    pub nodes_cert: Vec<NodeCert>,
    /// Edges of all six types.
    pub edges: Vec<Edge>,
    /// Task status records (`output.status_records`), after the task's records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<TaskStatus>,
}

impl Records {
    /// Number of node records of all kinds.
    pub fn node_count(&self) -> usize {
        self.nodes_domain.len() + self.nodes_ip.len() + self.nodes_cert.len()
    }

    /// True when there is nothing at all.
    pub fn is_empty(&self) -> bool {
        self.node_count() == 0 && self.edges.is_empty() && self.status.is_empty()
    }

    /// Moves every record of `other` to the end of `self`.
    pub fn append(&mut self, other: &mut Records) {
        self.nodes_domain.append(&mut other.nodes_domain);
        self.nodes_ip.append(&mut other.nodes_ip);
        self.nodes_cert.append(&mut other.nodes_cert);
        self.edges.append(&mut other.edges);
        self.status.append(&mut other.status);
    }
}

/// One emitted batch. The first six keys are the original's, in order;
/// `batch_id` (UUIDv7) and `timestamp` (flush time) are spyder's additions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The probe that emitted the batch.
    pub probe_id: String,
    /// The run the batch belongs to.
    pub run_id: String,
    /// Domain nodes (`[]` when none, and when absent on input).
    #[serde(default)]
    pub nodes_domain: Vec<NodeDomain>,
    /// Address nodes (`[]` when none, and when absent on input).
    #[serde(default)]
    pub nodes_ip: Vec<NodeIp>,
    /// Certificate nodes (`[]` when none, and when absent on input).
    #[serde(default)]
    pub nodes_cert: Vec<NodeCert>,
    /// Edges (`[]` when none, and when absent on input).
    #[serde(default)]
    pub edges: Vec<Edge>,
    /// A UUIDv7, unique across probes.
    pub batch_id: Uuid,
    /// When the batch was sealed (its flush time).
    pub timestamp: Timestamp,
    /// Task status records (`output.status_records`); absent when none, so a json
    /// batch keeps the original's keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub status: Vec<TaskStatus>,
}

impl Batch {
    /// Seals `records` into a batch with a fresh UUIDv7 and the current time.
    pub fn seal(probe_id: impl Into<String>, run_id: impl Into<String>, records: Records) -> Self {
        let timestamp = Timestamp::now();
        Self {
            probe_id: probe_id.into(),
            run_id: run_id.into(),
            nodes_domain: records.nodes_domain,
            nodes_ip: records.nodes_ip,
            nodes_cert: records.nodes_cert,
            edges: records.edges,
            batch_id: Uuid::now_v7(),
            timestamp,
            status: records.status,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_batch_has_arrays_and_key_order() {
        let b = Batch::seal("local-1", "run-1", Records::default());
        let json = serde_json::to_string(&b).expect("serialises");
        let keys: Vec<&str> = [
            "\"probe_id\"",
            "\"run_id\"",
            "\"nodes_domain\":[]",
            "\"nodes_ip\":[]",
            "\"nodes_cert\":[]",
            "\"edges\":[]",
            "\"batch_id\"",
            "\"timestamp\"",
        ]
        .to_vec();
        let mut at = 0;
        for k in keys {
            let pos = json[at..]
                .find(k)
                .unwrap_or_else(|| panic!("{k} missing or out of order in {json}"));
            at += pos + k.len();
        }
        assert_eq!(b.batch_id.get_version_num(), 7);
    }
}

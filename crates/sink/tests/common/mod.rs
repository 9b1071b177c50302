//! Helpers shared by the sink tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use spyder_model::{Edge, EdgeType, HostName, NodeDomain, NodeIp, Records, Timestamp};
use spyder_sink::{BoxFuture, Dedup, KeyDigest, MemoryDedup};

pub fn host(name: &str) -> HostName {
    HostName::from_input(name).expect("valid test host")
}

pub fn domain(name: &str) -> NodeDomain {
    let h = host(name);
    NodeDomain {
        apex: h.apex().to_owned(),
        host: h.into_string(),
        first_seen: Timestamp::now(),
        last_seen: Timestamp::now(),
    }
}

pub fn ip(addr: &str) -> NodeIp {
    NodeIp {
        ip: addr.parse().expect("valid test address"),
        first_seen: Timestamp::now(),
        last_seen: Timestamp::now(),
    }
}

pub fn edge(source: &str, kind: EdgeType, target: &str) -> Edge {
    Edge {
        kind,
        source: source.to_owned(),
        target: target.to_owned(),
        observed_at: Timestamp::now(),
        probe_id: "p".to_owned(),
        run_id: "r".to_owned(),
    }
}

/// A memory dedup that counts the calls made to it.
#[derive(Debug)]
pub struct CountingDedup {
    pub inner: MemoryDedup,
    pub check_calls: AtomicUsize,
    pub unmark_calls: AtomicUsize,
}

impl CountingDedup {
    pub fn new() -> Self {
        Self {
            inner: MemoryDedup::new(Duration::from_secs(86_400), 2_000_000),
            check_calls: AtomicUsize::new(0),
            unmark_calls: AtomicUsize::new(0),
        }
    }

    pub fn checks(&self) -> usize {
        self.check_calls.load(Ordering::SeqCst)
    }

    pub fn unmarks(&self) -> usize {
        self.unmark_calls.load(Ordering::SeqCst)
    }
}

impl Dedup for CountingDedup {
    fn backend(&self) -> &'static str {
        "counting"
    }

    fn check_and_mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, Vec<bool>> {
        self.check_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.check_and_mark(keys)
    }

    /// Marks after a queue push are not lookups: not counted.
    fn mark<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        self.inner.mark(keys)
    }

    fn release<'a>(&'a self, keys: &'a [KeyDigest]) -> BoxFuture<'a, ()> {
        self.unmark_calls.fetch_add(1, Ordering::SeqCst);
        self.inner.release(keys)
    }
}

/// The hosts of the NodeDomain records.
pub fn domain_hosts(records: &Records) -> Vec<&str> {
    records
        .nodes_domain
        .iter()
        .map(|n| n.host.as_str())
        .collect()
}

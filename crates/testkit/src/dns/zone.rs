//! The zone a [`DnsServer`](super::DnsServer) answers from: the builder tests fill
//! and the index the server reads, which follows CNAME chains, synthesises wildcards
//! and makes the negative answers (NXDOMAIN, NODATA) with their SOA.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{Behaviour, DEFAULT_NEGATIVE_TTL, DEFAULT_TTL};

/// Longest CNAME chain the server follows before it stops answering further hops.
const MAX_CHAIN: usize = 16;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Data {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Ns(String),
    Mx(u16, String),
}

impl Data {
    fn record_type(&self) -> RecordType {
        match self {
            Self::A(_) => RecordType::A,
            Self::Aaaa(_) => RecordType::AAAA,
            Self::Cname(_) => RecordType::CNAME,
            Self::Ns(_) => RecordType::NS,
            Self::Mx(..) => RecordType::MX,
        }
    }

    fn to_rdata(&self) -> Option<RData> {
        Some(match self {
            Self::A(ip) => RData::A(A(*ip)),
            Self::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
            Self::Cname(t) => RData::CNAME(CNAME(fqdn(t)?)),
            Self::Ns(t) => RData::NS(NS(fqdn(t)?)),
            Self::Mx(p, t) => RData::MX(MX::new(*p, fqdn(t)?)),
        })
    }
}

#[derive(Clone, Debug)]
pub(super) struct Entry {
    data: Data,
    ttl: u32,
}

#[derive(Clone, Debug, Default)]
pub(super) struct Node {
    pub(super) records: Vec<Entry>,
    pub(super) behaviour: Option<Behaviour>,
}

impl Node {
    /// The CNAME target and its TTL.
    fn cname(&self) -> Option<(&str, u32)> {
        self.records.iter().find_map(|e| match &e.data {
            Data::Cname(t) => Some((t.as_str(), e.ttl)),
            _ => None,
        })
    }
}

/// The data a [`DnsServer`](super::DnsServer) answers from. Names are case-insensitive and a trailing
/// dot is optional; `*.example.com` is a wildcard for names below `example.com` that
/// do not exist explicitly.
#[derive(Clone, Debug, Default)]
pub struct Zone {
    nodes: HashMap<String, Node>,
    ttl: Option<u32>,
    negative_ttl: Option<u32>,
}

impl Zone {
    /// An empty zone: every name is NXDOMAIN.
    pub fn new() -> Self {
        Self::default()
    }

    /// TTL for the records added after this call (default [`DEFAULT_TTL`]).
    pub fn ttl(&mut self, ttl: u32) -> &mut Self {
        self.ttl = Some(ttl);
        self
    }

    /// SOA `minimum` of negative answers (default [`DEFAULT_NEGATIVE_TTL`]); the SOA
    /// record itself has TTL [`DEFAULT_TTL`].
    pub fn negative_ttl(&mut self, minimum: u32) -> &mut Self {
        self.negative_ttl = Some(minimum);
        self
    }

    /// Adds an A record.
    pub fn a(&mut self, name: &str, ip: Ipv4Addr) -> &mut Self {
        self.add(name, Data::A(ip))
    }

    /// Adds an AAAA record.
    pub fn aaaa(&mut self, name: &str, ip: Ipv6Addr) -> &mut Self {
        self.add(name, Data::Aaaa(ip))
    }

    /// Sets the CNAME of `name` (a name has at most one; the last call wins).
    pub fn cname(&mut self, name: &str, target: &str) -> &mut Self {
        let node = self.nodes.entry(key(name)).or_default();
        node.records.retain(|e| !matches!(e.data, Data::Cname(_)));
        self.add(name, Data::Cname(key(target)))
    }

    /// Adds an NS record.
    pub fn ns(&mut self, name: &str, target: &str) -> &mut Self {
        self.add(name, Data::Ns(key(target)))
    }

    /// Adds an MX record.
    pub fn mx(&mut self, name: &str, preference: u16, exchange: &str) -> &mut Self {
        self.add(name, Data::Mx(preference, key(exchange)))
    }

    /// Adds the null MX of RFC 7505 (`MX 0 .`).
    pub fn null_mx(&mut self, name: &str) -> &mut Self {
        self.add(name, Data::Mx(0, String::new()))
    }

    /// Scripts how every query for `name` is treated. The name need not have records.
    pub fn behave(&mut self, name: &str, b: Behaviour) -> &mut Self {
        self.nodes.entry(key(name)).or_default().behaviour = Some(b);
        self
    }

    /// Number of names with records or behaviours.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True when no name has been added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    fn add(&mut self, name: &str, data: Data) -> &mut Self {
        let ttl = self.ttl.unwrap_or(DEFAULT_TTL);
        let node = self.nodes.entry(key(name)).or_default();
        let entry = Entry { data, ttl };
        if !node.records.iter().any(|e| e.data == entry.data) {
            node.records.push(entry);
        }
        self
    }
}

/// The normalised form of a builder or question name: trimmed, lower-case, no dot.
pub(super) fn key(name: &str) -> String {
    let name = name.trim();
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

pub(super) fn name_key(name: &Name) -> String {
    key(&name.to_ascii())
}

pub(super) fn fqdn(name: &str) -> Option<Name> {
    let mut n = if name.is_empty() {
        Name::root()
    } else {
        Name::from_ascii(name).ok()?
    };
    n.set_fqdn(true);
    Some(n)
}

/// The parent of a normalised name, `None` at a top-level label.
fn parent(name: &str) -> Option<&str> {
    name.split_once('.').map(|(_, p)| p)
}

/// What the server found for one name.
pub(super) enum Lookup<'a> {
    /// The name, or a wildcard covering it.
    Found(&'a Node),
    /// An empty non-terminal: only names below it exist.
    Empty,
    /// NXDOMAIN.
    Absent,
}

/// The zone in the shape the server reads it.
#[derive(Debug)]
pub(super) struct Index {
    pub(super) nodes: HashMap<String, Node>,
    /// Every explicit name and all their ancestors.
    existing: HashSet<String>,
    negative_ttl: u32,
}

/// The answer to one question.
pub(super) struct Resolved {
    pub(super) rcode: ResponseCode,
    pub(super) answers: Vec<Record>,
    pub(super) authorities: Vec<Record>,
}

impl Index {
    pub(super) fn new(zone: Zone) -> Self {
        let mut existing = HashSet::with_capacity(zone.nodes.len() * 2);
        for name in zone.nodes.keys() {
            let mut cur = Some(name.as_str());
            while let Some(n) = cur {
                if !existing.insert(n.to_owned()) {
                    break;
                }
                cur = parent(n);
            }
        }
        Self {
            nodes: zone.nodes,
            existing,
            negative_ttl: zone.negative_ttl.unwrap_or(DEFAULT_NEGATIVE_TTL),
        }
    }

    fn lookup(&self, name: &str) -> Lookup<'_> {
        if let Some(node) = self.nodes.get(name) {
            return Lookup::Found(node);
        }
        if self.existing.contains(name) {
            return Lookup::Empty;
        }
        // Wildcard synthesis from the closest encloser (RFC 4592).
        let mut cur = parent(name);
        while let Some(p) = cur {
            if self.existing.contains(p) {
                return match self.nodes.get(&format!("*.{p}")) {
                    Some(node) => Lookup::Found(node),
                    None => Lookup::Absent,
                };
            }
            cur = parent(p);
        }
        Lookup::Absent
    }

    pub(super) fn behaviour(&self, qname: &str) -> Option<&Behaviour> {
        match self.lookup(qname) {
            Lookup::Found(node) => node.behaviour.as_ref(),
            _ => None,
        }
    }

    fn soa(&self, name: &str) -> Option<Record> {
        let labels: Vec<&str> = name.split('.').collect();
        let zone = labels[labels.len().saturating_sub(2)..].join(".");
        let owner = fqdn(&zone)?;
        let soa = SOA::new(
            fqdn(&format!("ns.{zone}"))?,
            fqdn(&format!("hostmaster.{zone}"))?,
            1,
            3600,
            600,
            86_400,
            self.negative_ttl,
        );
        Some(Record::from_rdata(owner, DEFAULT_TTL, RData::SOA(soa)))
    }

    pub(super) fn resolve(&self, qname: &Name, qtype: RecordType) -> Resolved {
        let mut owner = qname.clone();
        let mut cur = name_key(qname);
        let mut visited = HashSet::new();
        let mut answers = Vec::new();
        loop {
            visited.insert(cur.clone());
            let node = match self.lookup(&cur) {
                Lookup::Found(node) => node,
                Lookup::Empty => return self.negative(ResponseCode::NoError, answers, &cur),
                Lookup::Absent => return self.negative(ResponseCode::NXDomain, answers, &cur),
            };
            let follow = qtype != RecordType::CNAME && qtype != RecordType::ANY;
            if let Some((target, ttl)) = node.cname().filter(|_| follow) {
                let Some(target_name) = fqdn(target) else {
                    return self.negative(ResponseCode::NXDomain, answers, &cur);
                };
                answers.push(Record::from_rdata(
                    owner,
                    ttl,
                    RData::CNAME(CNAME(target_name.clone())),
                ));
                if visited.contains(target) || visited.len() >= MAX_CHAIN {
                    // A loop (or an absurd chain): what we have is the answer.
                    return Resolved {
                        rcode: ResponseCode::NoError,
                        answers,
                        authorities: Vec::new(),
                    };
                }
                owner = target_name;
                cur = target.to_owned();
                continue;
            }
            let before = answers.len();
            let wanted = node
                .records
                .iter()
                .filter(|e| qtype == RecordType::ANY || e.data.record_type() == qtype);
            for e in wanted {
                if let Some(rdata) = e.data.to_rdata() {
                    answers.push(Record::from_rdata(owner.clone(), e.ttl, rdata));
                }
            }
            if answers.len() == before {
                return self.negative(ResponseCode::NoError, answers, &cur);
            }
            return Resolved {
                rcode: ResponseCode::NoError,
                answers,
                authorities: Vec::new(),
            };
        }
    }

    fn negative(&self, rcode: ResponseCode, answers: Vec<Record>, name: &str) -> Resolved {
        Resolved {
            rcode,
            answers,
            authorities: self.soa(name).into_iter().collect(),
        }
    }
}

//! Step 3 of a crawl: one host's A, AAAA, NS, CNAME and MX answers under one deadline,
//! folded into addresses, aliases, name servers and mail exchangers (SPEC §1, §3.3).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use spyder_model::{HostName, NameKind};
use tokio::time::Instant;

use super::{Answer, DnsClient, DnsError};
use crate::DnsSettings;

/// Most ALIAS_OF hops followed from one host.
pub const MAX_ALIAS_HOPS: usize = 8;

/// What step 3 learned about one host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    /// A then AAAA addresses of the host or its CNAME chain, de-duplicated, answer order.
    pub addresses: Vec<IpAddr>,
    /// One `(from, to)` per CNAME hop actually present, starting at the host.
    pub aliases: Vec<(HostName, HostName)>,
    /// NS targets owned by the host or a name of its CNAME chain.
    pub name_servers: Vec<HostName>,
    /// MX exchanges owned by the host or a name of its CNAME chain; null MX skipped.
    pub mail_exchangers: Vec<HostName>,
    /// How the lookup ended.
    pub status: ResolveStatus,
    /// Why, when `status` is [`ResolveStatus::Failed`]: the A and AAAA errors, e.g.
    /// `A: DNS query timed out; AAAA: no records` (the task's detail).
    pub failure: Option<String>,
}

/// How a host's resolution ended, for the task outcome (SPEC §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResolveStatus {
    /// At least one address.
    Resolved,
    /// No address, and DNS said so: NXDOMAIN, or NODATA for both A and AAAA
    /// (outcome `no_address`).
    NoAddress,
    /// No address, and A or AAAA failed (timed out, SERVFAIL or REFUSED) with the
    /// other giving none, so whether the name has addresses is unknown (outcome
    /// `dns_error`).
    Failed,
}

/// Queries A, AAAA, NS, CNAME and MX for `host` concurrently; answers that are not in
/// by `phase_timeout` count as timed out. The phase timeout is network time: a query
/// waiting for a free slot (`max_inflight`) has its deadline moved back by the wait,
/// so load alone never fails a name; the caller's own deadline bounds the waiting.
pub async fn resolve(
    client: &DnsClient,
    host: &HostName,
    settings: &DnsSettings,
    phase_timeout: Duration,
) -> Resolution {
    let deadline = phase_deadline(phase_timeout);
    let ask = |rtype| client.query_until(host, rtype, settings, deadline);
    let (a, aaaa, ns, cname, mx) = tokio::join!(
        ask(RecordType::A),
        ask(RecordType::AAAA),
        ask(RecordType::NS),
        ask(RecordType::CNAME),
        ask(RecordType::MX),
    );
    assemble(host, &a, &aaaa, &ns, &cname, &mx)
}

/// Only the addresses of `host` (A and AAAA, following CNAMEs in those answers), for
/// redirect targets.
pub async fn resolve_addresses(
    client: &DnsClient,
    host: &HostName,
    settings: &DnsSettings,
    phase_timeout: Duration,
) -> Vec<IpAddr> {
    let deadline = phase_deadline(phase_timeout);
    let (a, aaaa) = tokio::join!(
        client.query_until(host, RecordType::A, settings, deadline),
        client.query_until(host, RecordType::AAAA, settings, deadline),
    );
    let none = Err(DnsError::Timeout);
    assemble(host, &a, &aaaa, &none, &none, &none).addresses
}

/// `phase_timeout` from now; `None` when no clock can hold that instant (a timeout
/// that large is no deadline at all: each query still ends by its own tries).
fn phase_deadline(phase_timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(phase_timeout)
}

type Reply = Result<Answer, DnsError>;

/// Lower-case, no trailing dot: the form owner names are compared in.
fn key(name: &Name) -> String {
    let s = name.to_ascii();
    s.strip_suffix('.').unwrap_or(&s).to_ascii_lowercase()
}

fn records(reply: &Reply) -> &[Record] {
    reply.as_ref().map_or(&[], |a| a.records.as_slice())
}

/// Folds the five answers into a [`Resolution`].
pub(super) fn assemble(
    host: &HostName,
    a: &Reply,
    aaaa: &Reply,
    ns: &Reply,
    cname: &Reply,
    mx: &Reply,
) -> Resolution {
    let (aliases, chain) = follow_aliases(host, [a, aaaa, ns, cname, mx]);
    let owned = |r: &Record| {
        let k = key(&r.name);
        chain.contains(&k)
    };

    let mut addresses = Vec::new();
    let v4 = records(a).iter().filter_map(|r| match &r.data {
        RData::A(ip) if owned(r) => Some(IpAddr::V4(ip.0)),
        _ => None,
    });
    let v6 = records(aaaa).iter().filter_map(|r| match &r.data {
        RData::AAAA(ip) if owned(r) => Some(IpAddr::V6(ip.0)),
        _ => None,
    });
    for ip in v4.chain(v6) {
        if !addresses.contains(&ip) {
            addresses.push(ip);
        }
    }

    let mut name_servers = Vec::new();
    for r in records(ns).iter().filter(|r| owned(r)) {
        if let RData::NS(t) = &r.data {
            push_target(&mut name_servers, &t.0);
        }
    }
    let mut mail_exchangers = Vec::new();
    for r in records(mx).iter().filter(|r| owned(r)) {
        match &r.data {
            RData::MX(m) if !m.exchange.is_root() => push_target(&mut mail_exchangers, &m.exchange),
            _ => {}
        }
    }

    // No address is an answer only when DNS said so: NXDOMAIN for either type (the
    // name does not exist), or both A and AAAA answered. A timed-out A next to an
    // empty AAAA says nothing about the name's IPv4 addresses: that is a failure,
    // not `no_address` (which hid lookups lost under load as clean answers).
    let nxdomain =
        |reply: &Reply| matches!(reply, Ok(answer) if answer.rcode == ResponseCode::NXDomain);
    let status = if !addresses.is_empty() {
        ResolveStatus::Resolved
    } else if nxdomain(a) || nxdomain(aaaa) || (a.is_ok() && aaaa.is_ok()) {
        ResolveStatus::NoAddress
    } else {
        ResolveStatus::Failed
    };
    let failure = (status == ResolveStatus::Failed).then(|| failure_text(a, aaaa));
    Resolution {
        addresses,
        aliases,
        name_servers,
        mail_exchangers,
        status,
        failure,
    }
}

/// Follows the CNAME chain from `host` through the records of every answer: the
/// ALIAS_OF hops and the names (host first) that own the chain's records.
fn follow_aliases(
    host: &HostName,
    replies: [&Reply; 5],
) -> (Vec<(HostName, HostName)>, Vec<String>) {
    // CNAMEs from every answer; the first seen for an owner wins.
    let mut cnames: HashMap<String, &Name> = HashMap::new();
    for reply in replies {
        for r in records(reply) {
            if let RData::CNAME(target) = &r.data {
                cnames.entry(key(&r.name)).or_insert(&target.0);
            }
        }
    }
    let mut aliases = Vec::new();
    let mut chain = vec![host.as_str().to_owned()];
    let mut cur = host.clone();
    while aliases.len() < MAX_ALIAS_HOPS {
        let Some(target) = cnames.get(cur.as_str()) else {
            break;
        };
        let Ok(next) = HostName::parse(&target.to_ascii(), NameKind::DnsTarget) else {
            break;
        };
        if next == cur {
            break; // never a self-loop
        }
        aliases.push((cur, next.clone()));
        if chain.iter().any(|c| c == next.as_str()) {
            break; // the hop that closes a loop is present; the chain ends there
        }
        chain.push(next.as_str().to_owned());
        cur = next;
    }
    (aliases, chain)
}

/// What each address lookup got, for a failed resolution's detail.
fn failure_text(a: &Reply, aaaa: &Reply) -> String {
    [("A", a), ("AAAA", aaaa)]
        .iter()
        .map(|(rtype, reply)| match reply {
            Err(e) => format!("{rtype}: {e}"),
            Ok(_) => format!("{rtype}: no records"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Normalises an NS or MX target and adds it unless invalid or already present.
fn push_target(out: &mut Vec<HostName>, target: &Name) {
    match HostName::parse(&target.to_ascii(), NameKind::DnsTarget) {
        Ok(h) if !out.contains(&h) => out.push(h),
        Ok(_) => {}
        Err(e) => tracing::debug!(target = %target, error = %e, "dns: target skipped"),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, NS};

    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn h(s: &str) -> HostName {
        HostName::parse(s, NameKind::DnsTarget).unwrap()
    }

    fn rec(owner: &str, data: RData) -> Record {
        Record::from_rdata(n(owner), 300, data)
    }

    fn cname(owner: &str, target: &str) -> Record {
        rec(owner, RData::CNAME(CNAME(n(target))))
    }

    fn a(owner: &str, last: u8) -> Record {
        rec(owner, RData::A(A(Ipv4Addr::new(192, 0, 2, last))))
    }

    fn ok(records: Vec<Record>) -> Reply {
        Ok(Answer {
            rcode: ResponseCode::NoError,
            records,
        })
    }

    fn nx() -> Reply {
        Ok(Answer {
            rcode: ResponseCode::NXDomain,
            records: vec![],
        })
    }

    #[test]
    fn chain_addresses_and_ownership() {
        let host = h("a.example");
        let chain = vec![
            cname("A.example.", "b.example."),
            cname("b.example.", "c.example."),
        ];
        let mut a_recs = chain.clone();
        a_recs.extend([
            a("c.example.", 1),
            a("c.example.", 1),
            a("other.example.", 9),
        ]);
        let mut aaaa_recs = chain.clone();
        aaaa_recs.push(rec("c.example.", RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))));
        let bad = Name::from_labels(vec![b"bad name".as_slice(), b"example"]).unwrap();
        let ns = ok(vec![
            rec("a.example.", RData::NS(NS(n("ns1.dns.example.")))),
            rec("c.example.", RData::NS(NS(n("NS1.dns.example.")))),
            rec("unrelated.example.", RData::NS(NS(n("ns9.dns.example.")))),
            rec("a.example.", RData::NS(NS(bad))),
        ]);
        let mx = ok(vec![
            rec("b.example.", RData::MX(MX::new(10, n("mx._mail.example.")))),
            rec("b.example.", RData::MX(MX::new(0, Name::root()))),
        ]);
        let r = assemble(&host, &ok(a_recs), &ok(aaaa_recs), &ns, &ok(chain), &mx);
        assert_eq!(r.status, ResolveStatus::Resolved);
        assert_eq!(
            r.addresses,
            vec![
                IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                IpAddr::V6(Ipv6Addr::LOCALHOST)
            ]
        );
        assert_eq!(
            r.aliases,
            vec![
                (h("a.example"), h("b.example")),
                (h("b.example"), h("c.example"))
            ]
        );
        assert_eq!(r.name_servers, vec![h("ns1.dns.example")]);
        assert_eq!(r.mail_exchangers, vec![h("mx._mail.example")]);
    }

    #[test]
    fn loops_end_and_self_loops_never_appear() {
        let host = h("a.example");
        let looped = ok(vec![
            cname("a.example.", "b.example."),
            cname("b.example.", "a.example."),
        ]);
        let r = assemble(&host, &looped, &nx(), &nx(), &nx(), &nx());
        assert_eq!(
            r.aliases,
            vec![
                (h("a.example"), h("b.example")),
                (h("b.example"), h("a.example"))
            ]
        );
        assert_eq!(r.status, ResolveStatus::NoAddress);

        let selfish = ok(vec![cname("a.example.", "a.example.")]);
        let r = assemble(&host, &selfish, &nx(), &nx(), &nx(), &nx());
        assert!(r.aliases.is_empty());
    }

    #[test]
    fn hops_are_capped() {
        let host = h("h0.example");
        let recs: Vec<Record> = (0..20)
            .map(|i| cname(&format!("h{i}.example."), &format!("h{}.example.", i + 1)))
            .collect();
        let r = assemble(&host, &ok(recs), &nx(), &nx(), &nx(), &nx());
        assert_eq!(r.aliases.len(), MAX_ALIAS_HOPS);
        assert_eq!(r.aliases[7], (h("h7.example"), h("h8.example")));
    }

    #[test]
    fn status_follows_a_and_aaaa() {
        let host = h("a.example");
        let t = Err(DnsError::Timeout);
        let sf = Err(DnsError::ServFail);
        assert_eq!(
            assemble(&host, &t, &sf, &t, &t, &t).status,
            ResolveStatus::Failed
        );
        assert_eq!(
            assemble(&host, &t, &nx(), &t, &t, &t).status,
            ResolveStatus::NoAddress
        );
        // A lost A lookup next to an empty AAAA answer: unknown, so a failure (it
        // was `no_address`, hiding lookups lost under load).
        assert_eq!(
            assemble(&host, &t, &ok(vec![]), &t, &t, &t).status,
            ResolveStatus::Failed
        );
        assert_eq!(
            assemble(&host, &ok(vec![]), &sf, &t, &t, &t).status,
            ResolveStatus::Failed
        );
        assert_eq!(
            assemble(&host, &ok(vec![]), &ok(vec![]), &t, &t, &t).status,
            ResolveStatus::NoAddress
        );
        let only_v4 = ok(vec![a("a.example.", 7)]);
        assert_eq!(
            assemble(&host, &only_v4, &t, &t, &t, &t).status,
            ResolveStatus::Resolved
        );
    }

    #[test]
    fn a_failure_says_what_each_lookup_got() {
        let host = h("a.example");
        let t = Err(DnsError::Timeout);
        let failed = assemble(&host, &t, &ok(vec![]), &t, &t, &t);
        assert_eq!(
            failed.failure.as_deref(),
            Some(format!("A: {}; AAAA: no records", DnsError::Timeout).as_str())
        );
        let nothing = assemble(&host, &nx(), &nx(), &t, &t, &t);
        assert_eq!(nothing.status, ResolveStatus::NoAddress);
        assert_eq!(nothing.failure, None);
    }

    /// A phase timeout no clock can add (it panicked: "overflow when adding duration
    /// to instant") ends like any other lookup.
    #[tokio::test]
    async fn an_unrepresentable_phase_timeout_does_not_panic() {
        let client = DnsClient::new(1, 0).unwrap();
        let settings = DnsSettings {
            servers: vec![],
            ..DnsSettings::default()
        };
        let host = h("example.com");
        let resolution = resolve(&client, &host, &settings, Duration::MAX).await;
        assert_eq!(resolution.status, ResolveStatus::Failed);
        assert!(resolution.addresses.is_empty());
        let addresses = resolve_addresses(&client, &host, &settings, Duration::MAX).await;
        assert!(addresses.is_empty());
        assert!(phase_deadline(Duration::MAX).is_none());
        assert!(phase_deadline(Duration::from_secs(3600)).is_some());
    }
}

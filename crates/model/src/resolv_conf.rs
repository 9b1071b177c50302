//! The system's DNS resolvers, as `/etc/resolv.conf` names them: the default of
//! `dns.servers` and of a probe built without servers.

use std::net::{IpAddr, SocketAddr};

const RESOLV_CONF: &str = "/etc/resolv.conf";
const DNS_PORT: u16 = 53;

/// The resolvers named in `/etc/resolv.conf`, or `127.0.0.1:53` when none are.
pub fn system_servers() -> Vec<SocketAddr> {
    let servers = std::fs::read_to_string(RESOLV_CONF)
        .map(|text| parse_resolv_conf(&text))
        .unwrap_or_default();
    if servers.is_empty() {
        tracing::warn!("no nameserver in {RESOLV_CONF}; using 127.0.0.1:53");
        return vec![SocketAddr::from(([127, 0, 0, 1], DNS_PORT))];
    }
    servers
}

/// The `nameserver` addresses of resolv.conf text, port 53, in file order.
///
/// Comments (`#`, `;`) and other directives are ignored, as are addresses that do
/// not parse. An IPv6 zone is kept when numeric (`fe80::1%2`) and the line skipped
/// when it names an interface.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(value) = words.next() else {
            continue;
        };
        let (addr, zone) = match value.split_once('%') {
            Some((a, z)) => (a, Some(z)),
            None => (value, None),
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            continue;
        };
        let sa = match (ip, zone) {
            (IpAddr::V4(_), Some(_)) => continue,
            (IpAddr::V6(v6), Some(z)) => match z.parse::<u32>() {
                Ok(scope) => SocketAddr::V6(std::net::SocketAddrV6::new(v6, DNS_PORT, 0, scope)),
                Err(_) => continue,
            },
            (ip, None) => SocketAddr::new(ip, DNS_PORT),
        };
        if !out.contains(&sa) {
            out.push(sa);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_in_order() {
        let text = "\
# generated\n\
search example.com\n\
nameserver 10.0.0.1\n\
nameserver   2001:db8::53  # v6\n\
;nameserver 10.9.9.9\n\
nameserver fe80::1%2\n\
nameserver fe80::2%eth0\n\
nameserver not-an-ip\n\
nameserver 10.0.0.1\n\
nameserver\n\
options ndots:2\n";
        let got = parse_resolv_conf(text);
        assert_eq!(
            got,
            vec![
                "10.0.0.1:53".parse::<SocketAddr>().expect("addr"),
                "[2001:db8::53]:53".parse().expect("addr"),
                "[fe80::1%2]:53".parse().expect("addr"),
            ]
        );
        assert!(parse_resolv_conf("").is_empty());
    }

    #[test]
    fn system_servers_never_empty() {
        assert!(!system_servers().is_empty());
    }
}

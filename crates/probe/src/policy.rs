//! Private-target refusal (SPEC §3.5).
//!
//! With `allow_private: false` (the default) the probe never contacts loopback,
//! private, link-local, documentation, benchmarking, multicast or reserved
//! addresses, nor `localhost` names. `allow_cidrs` re-allows chosen ranges. The
//! check applies to the first connection, every redirect hop and the HTTP
//! fallback; DNS answers pointing at refused addresses are still recorded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use spyder_model::HostName;

use crate::ProbeSettings;

/// Refused IPv4 ranges as `(network, prefix length)`.
const PRIVATE_V4: [([u8; 4], u8); 14] = [
    ([0, 0, 0, 0], 8),
    ([10, 0, 0, 0], 8),
    ([100, 64, 0, 0], 10),
    ([127, 0, 0, 0], 8),
    ([169, 254, 0, 0], 16),
    ([172, 16, 0, 0], 12),
    ([192, 0, 0, 0], 24),
    ([192, 0, 2, 0], 24),
    ([192, 168, 0, 0], 16),
    ([198, 18, 0, 0], 15),
    ([198, 51, 100, 0], 24),
    ([203, 0, 113, 0], 24),
    ([224, 0, 0, 0], 4),
    ([240, 0, 0, 0], 4),
];

/// Refused IPv6 ranges as `(network, prefix length)`; `::ffff:0:0/96` is handled
/// separately by judging the embedded IPv4 address.
const PRIVATE_V6: [(u128, u8); 9] = [
    (0, 128),                                        // ::/128
    (1, 128),                                        // ::1
    (0x0064_ff9b_0001_0000_0000_0000_0000_0000, 48), // 64:ff9b:1::/48
    (0x0100_0000_0000_0000_0000_0000_0000_0000, 64), // 100::/64
    (0x2001_0db8_0000_0000_0000_0000_0000_0000, 32), // 2001:db8::/32
    (0xfc00_0000_0000_0000_0000_0000_0000_0000, 7),  // fc00::/7
    (0xfe80_0000_0000_0000_0000_0000_0000_0000, 10), // fe80::/10
    (0xfec0_0000_0000_0000_0000_0000_0000_0000, 10), // fec0::/10
    (0xff00_0000_0000_0000_0000_0000_0000_0000, 8),  // ff00::/8
];

/// True when `ip` lies in one of the private or reserved ranges of SPEC §3.5.
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) is judged by its IPv4 address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_private_v4(v4),
            None => is_private_v6(v6),
        },
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let addr = u32::from(ip);
    PRIVATE_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - u32::from(len));
        addr & mask == u32::from_be_bytes(net)
    })
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    let addr = u128::from(ip);
    PRIVATE_V6.iter().any(|&(net, len)| {
        let mask = u128::MAX << (128 - u32::from(len));
        addr & mask == net
    })
}

/// True when the probe must not connect to `ip` under `settings`: the address is
/// private, `allow_private` is off, and no `allow_cidrs` range contains it.
///
/// An IPv4-mapped IPv6 address is also re-allowed by an IPv4 range containing its
/// embedded address, so `127.0.0.0/8` covers `::ffff:127.0.0.1` too.
pub fn is_refused(ip: IpAddr, settings: &ProbeSettings) -> bool {
    if settings.allow_private || !is_private(ip) {
        return false;
    }
    let mapped = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4),
        IpAddr::V4(_) => None,
    };
    !settings
        .allow_cidrs
        .iter()
        .any(|net| net.contains(&ip) || mapped.is_some_and(|m| net.contains(&m)))
}

/// True when the probe must not contact `host` by name: `localhost` and
/// `*.localhost`, unless `allow_private` is on.
pub fn is_refused_name(host: &HostName, settings: &ProbeSettings) -> bool {
    !settings.allow_private && host.is_localhost()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address parses")
    }

    #[test]
    fn ipv4_table_edges() {
        let refused = [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "100.64.0.0",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.0.0",
            "169.254.255.255",
            "172.16.0.0",
            "172.31.255.255",
            "192.0.0.0",
            "192.0.0.255",
            "192.0.2.0",
            "192.0.2.255",
            "192.168.0.0",
            "192.168.255.255",
            "198.18.0.0",
            "198.19.255.255",
            "198.51.100.0",
            "198.51.100.255",
            "203.0.113.0",
            "203.0.113.255",
            "224.0.0.0",
            "239.255.255.255",
            "240.0.0.0",
            "255.255.255.255",
        ];
        for a in refused {
            assert!(is_private(ip(a)), "{a} should be private");
        }
        let public = [
            "1.0.0.0",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "198.51.99.255",
            "198.51.101.0",
            "203.0.112.255",
            "203.0.114.0",
            "223.255.255.255",
            "8.8.8.8",
        ];
        for a in public {
            assert!(!is_private(ip(a)), "{a} should be public");
        }
    }

    #[test]
    fn ipv6_table_edges() {
        let refused = [
            "::",
            "::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "64:ff9b:1::",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
            "100::",
            "100::ffff:ffff:ffff:ffff",
            "2001:db8::",
            "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            "fc00::",
            "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe80::1",
            "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fec0::",
            "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "ff00::",
            "ff02::1",
        ];
        for a in refused {
            assert!(is_private(ip(a)), "{a} should be private");
        }
        let public = [
            "::2",
            "::ffff:8.8.8.8",
            "::ffff:93.184.216.34",
            "64:ff9b:2::",
            "64:ff9b:0:ffff:ffff:ffff:ffff:ffff",
            "100:0:0:1::",
            "2001:db9::",
            "2001:db7:ffff::",
            "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "fe00::",
            "2606:4700::1111",
        ];
        for a in public {
            assert!(!is_private(ip(a)), "{a} should be public");
        }
    }

    #[test]
    fn allow_private_and_allow_cidrs() {
        let mut settings = ProbeSettings::default();
        assert!(is_refused(ip("127.0.0.1"), &settings));
        assert!(is_refused(ip("10.1.2.3"), &settings));
        assert!(!is_refused(ip("8.8.8.8"), &settings));

        settings.allow_cidrs = vec!["127.0.0.0/8".parse().expect("cidr")];
        assert!(!is_refused(ip("127.0.0.1"), &settings));
        assert!(!is_refused(ip("127.200.0.9"), &settings));
        assert!(!is_refused(ip("::ffff:127.0.0.1"), &settings));
        assert!(is_refused(ip("10.1.2.3"), &settings));
        assert!(is_refused(ip("::1"), &settings));

        settings.allow_cidrs = Vec::new();
        settings.allow_private = true;
        assert!(!is_refused(ip("10.1.2.3"), &settings));
        assert!(!is_refused(ip("::1"), &settings));
    }

    #[test]
    fn localhost_names() {
        let mut settings = ProbeSettings::default();
        let name = |s: &str| HostName::from_input(s).expect("valid name");
        assert!(is_refused_name(&name("localhost"), &settings));
        assert!(is_refused_name(&name("LOCALHOST."), &settings));
        assert!(is_refused_name(&name("a.b.localhost"), &settings));
        assert!(!is_refused_name(&name("localhost.example.com"), &settings));
        assert!(!is_refused_name(&name("notlocalhost"), &settings));
        settings.allow_private = true;
        assert!(!is_refused_name(&name("localhost"), &settings));
    }
}

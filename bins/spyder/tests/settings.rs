//! Where config keys become the library crates' settings (`spyder::settings`, the
//! binary's one mapping from config to components): every relevant key reaches the
//! probe, in its value.

use std::net::SocketAddr;
use std::time::Duration;

use spyder::settings::{probe_config, probe_settings};
use spyder_config::{Config, FlagValue, Loaded, Sources, load};
use spyder_probe::TlsRoots;

/// Flags as `-name value` for a key with that flag name.
fn flag(name: &str, value: &str) -> FlagValue {
    FlagValue::flag(name, value)
}

/// `-set path=value`.
fn set(path: &str, value: &str) -> FlagValue {
    FlagValue::set(path, value)
}

/// Loads with the DNS servers pinned so that no test depends on /etc/resolv.conf.
fn load_ok(mut flags: Vec<FlagValue>) -> Loaded {
    flags.insert(0, set("dns.servers", "127.0.0.1:53"));
    let sources = Sources {
        file: None,
        env: Vec::new(),
        flags,
    };
    load(&sources).expect("configuration loads")
}

fn defaults() -> Config {
    load_ok(Vec::new()).config
}

#[test]
fn probe_config_maps_every_relevant_key() {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let pem = dir.path().join("roots.pem");
    std::fs::write(&pem, "pem").expect("write a test file");
    let flags = vec![
        flag("probe", "p-7"),
        flag("run", "r-7"),
        flag("ua", "Bot/3"),
        flag("exclude_tlds", "test"),
        set("crawling.rate_per_host", "3.5"),
        set("crawling.rate_burst", "6"),
        set("crawling.task_timeout", "11s"),
        set("crawling.dns_timeout", "3s"),
        set("crawling.tls_timeout", "4s"),
        set("crawling.http_timeout", "5s"),
        set("crawling.body_max_bytes", "4096"),
        set("crawling.max_redirects", "2"),
        set("crawling.http_fallback", "false"),
        flag("allow_private", "true"),
        flag("allow_cidrs", "127.0.0.0/8"),
        set("crawling.https_port", "8443"),
        set("crawling.http_port", "8080"),
        set("crawling.tls_roots", &pem.display().to_string()),
        flag("dns_servers", "127.0.0.2:5300"),
        set("dns.query_timeout", "250ms"),
        set("dns.retries", "1"),
        set("dns.max_inflight", "9"),
        set("dns.sockets", "3"),
        set("dns.cache_size", "77"),
    ];
    let probe = probe_config(&load_ok(flags).config);
    assert_eq!(
        (probe.probe_id.as_str(), probe.run_id.as_str()),
        ("p-7", "r-7")
    );
    assert_eq!(probe.tls_roots, TlsRoots::PemFile(pem));
    assert_eq!((probe.dns_sockets, probe.dns_cache_size), (3, 77));
    let s = &probe.settings;
    assert_eq!(s.user_agent, "Bot/3");
    assert_eq!(s.exclude_tlds, ["test"]);
    assert_eq!((s.rate_per_host, s.rate_burst), (3.5, 6));
    assert_eq!(s.task_timeout, Duration::from_secs(11));
    assert_eq!(s.dns_timeout, Duration::from_secs(3));
    assert_eq!(s.tls_timeout, Duration::from_secs(4));
    assert_eq!(s.http_timeout, Duration::from_secs(5));
    assert_eq!((s.body_max_bytes, s.max_redirects), (4096, 2));
    assert!(!s.http_fallback && s.allow_private);
    assert_eq!(s.allow_cidrs.len(), 1);
    assert_eq!((s.https_port, s.http_port), (8443, 8080));
    assert_eq!(
        s.dns.servers,
        ["127.0.0.2:5300".parse::<SocketAddr>().expect("addr")]
    );
    assert_eq!(s.dns.query_timeout, Duration::from_millis(250));
    assert_eq!((s.dns.retries, s.dns.max_inflight), (1, 9));

    let system = load_ok(vec![set("crawling.tls_roots", "system")]).config;
    assert_eq!(probe_config(&system).tls_roots, TlsRoots::System);
    assert_eq!(probe_config(&defaults()).tls_roots, TlsRoots::Webpki);
}

/// `crawling.max_conns_per_ip` reaches the probe's settings snapshot (moved from the
/// config crate's `max_conns_per_ip` tests with the mapping).
#[test]
fn the_conn_cap_reaches_the_probe_settings() {
    assert_eq!(probe_settings(&defaults()).max_conns_per_ip, 32);
    for (value, want) in [("0", 0), ("1", 1), ("8", 8), ("65536", 65_536)] {
        let config = load_ok(vec![set("crawling.max_conns_per_ip", value)]).config;
        assert_eq!(probe_settings(&config).max_conns_per_ip, want, "{value}");
    }
}

/// `crawling.redirect_ports` reaches the probe in order without repeats (moved from
/// the config crate's `redirect_ports` tests with the mapping).
#[test]
fn redirect_ports_reach_the_probe_settings() {
    let config = load_ok(vec![set("crawling.redirect_ports", "8080, 8443,8080")]).config;
    assert_eq!(probe_settings(&config).redirect_ports, [8080, 8443]);
    let empty = load_ok(vec![set("crawling.redirect_ports", "")]).config;
    assert!(probe_settings(&empty).redirect_ports.is_empty());
}

/// The whole-probe config carries the same hot settings as the snapshot (moved from
/// the config crate's extreme-values test).
#[test]
fn the_probe_config_carries_the_settings_snapshot() {
    let config = defaults();
    assert_eq!(probe_config(&config).settings, probe_settings(&config));
}

/// Every duration and whole number at its maximum at once maps to probe settings
/// whose deadlines still add to an instant (moved from the config crate's
/// extreme-values test with the mapping).
#[test]
fn every_maximum_at_once_maps_and_adds_to_an_instant() {
    let flags = FlagValue::every_maximum();
    let config = load_ok(flags).config;
    let probe = probe_config(&config);
    assert_eq!(probe.settings, probe_settings(&config));
    let s = &probe.settings;
    let now = std::time::Instant::now();
    for d in [
        s.task_timeout,
        s.dns_timeout,
        s.tls_timeout,
        s.http_timeout,
        s.dns.query_timeout,
    ] {
        assert!(now.checked_add(d).is_some(), "{d:?}");
    }
}

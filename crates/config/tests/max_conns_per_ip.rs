//! `crawling.max_conns_per_ip` (issue 11, SPEC §3.6 "Per address"): a Tier 1 whole
//! number 0–65536 (0 = no cap), default 32 (bins/spyder/tests/settings.rs: it reaches
//! the probe's settings snapshot).

use spyder_config::{Config, FlagValue, Sources, Tier, load, tier_of};

fn load_with(value: Option<&str>) -> Result<Config, String> {
    let mut flags = vec![FlagValue::new(
        "-set dns.servers",
        "dns.servers",
        "127.0.0.1:53",
    )];
    if let Some(value) = value {
        flags.push(FlagValue::new(
            "-set crawling.max_conns_per_ip",
            "crawling.max_conns_per_ip",
            value,
        ));
    }
    let sources = Sources {
        file: None,
        env: Vec::new(),
        flags,
    };
    load(&sources).map(|l| l.config).map_err(|e| e.to_string())
}

#[test]
fn the_cap_defaults_to_32_and_takes_its_range() {
    let config = load_with(None).expect("defaults load");
    assert_eq!(config.crawling.max_conns_per_ip, 32);
    for (value, want) in [("0", 0), ("1", 1), ("8", 8), ("65536", 65_536)] {
        let config = load_with(Some(value)).expect(value);
        assert_eq!(config.crawling.max_conns_per_ip, want, "{value}");
    }
    assert_eq!(tier_of("crawling.max_conns_per_ip"), Some(Tier::Immediate));
}

#[test]
fn values_out_of_range_are_refused_with_the_key() {
    for bad in ["-1", "65537", "1.5", "many"] {
        let message = load_with(Some(bad)).expect_err(bad);
        assert!(message.contains("crawling.max_conns_per_ip"), "{message}");
    }
}

//! `crawling.redirect_ports` (issue 10): a list of ports, from a file, `-set` or a
//! reload (bins/spyder/tests/settings.rs: they reach the probe in that order).

use spyder_config::{FlagValue, Sources, Tier, load, tier_of};

fn load_with(value: &str) -> Result<spyder_config::Config, String> {
    let flags = vec![
        FlagValue::new("-set dns.servers", "dns.servers", "127.0.0.1:53"),
        FlagValue::new(
            "-set crawling.redirect_ports",
            "crawling.redirect_ports",
            value,
        ),
    ];
    let sources = Sources {
        file: None,
        env: Vec::new(),
        flags,
    };
    load(&sources).map(|l| l.config).map_err(|e| e.to_string())
}

#[test]
fn ports_load_in_order_without_repeats() {
    let config = load_with("8080, 8443,8080").expect("valid ports");
    assert_eq!(config.crawling.redirect_ports, [8080, 8443]);
    let empty = load_with("").expect("empty is the default");
    assert!(empty.crawling.redirect_ports.is_empty());
    assert_eq!(tier_of("crawling.redirect_ports"), Some(Tier::Immediate));
}

#[test]
fn invalid_ports_are_refused_with_the_key_and_the_item() {
    for bad in ["0", "65536", "http", "-1", "80,8x"] {
        let message = load_with(bad).expect_err(bad);
        assert!(message.contains("crawling.redirect_ports"), "{message}");
        assert!(message.contains("1 to 65535"), "{message}");
    }
}

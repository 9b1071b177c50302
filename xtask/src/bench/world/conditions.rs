//! The internet between the world and its clients: round trips, jitter, DNS loss,
//! black-holed and shared addresses, as `world-serve` flags and world options.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spyder_testkit::world::WorldOptions;

use crate::bench::Result;

/// The internet conditions between the world and its clients (all zero by default:
/// loopback speed, no loss, no filtered addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Conditions {
    /// Round trip of every TCP exchange (`--rtt`), in seconds in JSON.
    #[serde(with = "seconds")]
    pub(crate) rtt: Duration,
    /// Up to this much more per TCP exchange (`--jitter`).
    #[serde(with = "seconds")]
    pub(crate) jitter: Duration,
    /// Round trip of every DNS answer (`--dns-rtt`).
    #[serde(with = "seconds")]
    pub(crate) dns_rtt: Duration,
    /// Up to this much more per DNS answer (`--dns-jitter`).
    #[serde(with = "seconds")]
    pub(crate) dns_jitter: Duration,
    /// Share of UDP DNS datagrams lost, each way (`--dns-loss`).
    pub(crate) dns_loss: f64,
    /// Share of sites whose address never completes a connect (`--blackhole`).
    pub(crate) blackhole: f64,
    /// Share of HTTPS sites on shared, skewed addresses (`--shared-ips`).
    pub(crate) shared_ips: f64,
}

impl Conditions {
    /// Takes `flag value` if it is one of the conditions' flags; `Ok(false)` if not.
    pub(crate) fn take(&mut self, flag: &str, value: &str) -> Result<bool> {
        let duration = |v: &str| parse_duration(v).map_err(|e| format!("{flag} {v}: {e}"));
        let share = |v: &str| parse_share(v).map_err(|e| format!("{flag} {v}: {e}"));
        match flag {
            "--rtt" => self.rtt = duration(value)?,
            "--jitter" => self.jitter = duration(value)?,
            "--dns-rtt" => self.dns_rtt = duration(value)?,
            "--dns-jitter" => self.dns_jitter = duration(value)?,
            "--dns-loss" => self.dns_loss = share(value)?,
            "--blackhole" => self.blackhole = share(value)?,
            "--shared-ips" => self.shared_ips = share(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The flags [`Conditions::take`] knows, each taking a value.
    pub(crate) const FLAGS: [&'static str; 7] = [
        "--rtt",
        "--jitter",
        "--dns-rtt",
        "--dns-jitter",
        "--dns-loss",
        "--blackhole",
        "--shared-ips",
    ];

    /// True when the network adds anything: the benchmark then sweeps.
    pub(crate) fn is_slow(&self) -> bool {
        *self != Self::default()
    }

    /// One line for the report.
    pub(crate) fn describe(&self) -> String {
        format!(
            "TCP RTT {} ms (± {} ms), DNS RTT {} ms (± {} ms), DNS loss {:.1} %, black holes {:.1} %, shared addresses {:.1} %",
            self.rtt.as_millis(),
            self.jitter.as_millis(),
            self.dns_rtt.as_millis(),
            self.dns_jitter.as_millis(),
            self.dns_loss * 100.0,
            self.blackhole * 100.0,
            self.shared_ips * 100.0
        )
    }

    /// The `world-serve` arguments that reproduce these conditions (none for zero).
    pub(crate) fn args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let durations = [
            ("--rtt", self.rtt),
            ("--jitter", self.jitter),
            ("--dns-rtt", self.dns_rtt),
            ("--dns-jitter", self.dns_jitter),
        ];
        for (flag, value) in durations {
            if !value.is_zero() {
                args.extend([flag.to_owned(), format!("{}us", value.as_micros())]);
            }
        }
        let shares = [
            ("--dns-loss", self.dns_loss),
            ("--blackhole", self.blackhole),
            ("--shared-ips", self.shared_ips),
        ];
        for (flag, value) in shares {
            if value > 0.0 {
                args.extend([flag.to_owned(), value.to_string()]);
            }
        }
        args
    }

    /// The world's options for these conditions, network draws seeded by `seed`.
    pub(crate) fn world_options(&self, seed: u64) -> WorldOptions {
        WorldOptions {
            filtered: self.blackhole,
            shared_ip_sites: self.shared_ips,
            tcp_rtt: self.rtt,
            tcp_jitter: self.jitter,
            dns_rtt: self.dns_rtt,
            dns_jitter: self.dns_jitter,
            dns_loss: self.dns_loss,
            seed,
            ..WorldOptions::default()
        }
    }
}

/// `100ms`, `1s`, `1.5s`, `250us`, or `0`.
fn parse_duration(text: &str) -> Result<Duration> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err("needs a unit: us, ms or s".into());
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|e| format!("not a number: {e}"))?;
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("not a duration: {e}"))
}

/// `1%` or `0.01`, within 0–1.
fn parse_share(text: &str) -> Result<f64> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (text, 1.0),
    };
    let value = number
        .parse::<f64>()
        .map_err(|e| format!("not a number: {e}"))?
        * scale;
    if (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err("must be between 0 and 100 %".into())
    }
}

/// A [`Duration`] as seconds (a JSON number).
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_shares_parse() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert!(parse_duration("ms").is_err());
        assert!(parse_duration("100").is_err(), "a unit is needed");
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1h").is_err());
        assert_eq!(parse_share("1%"), Ok(0.01));
        assert_eq!(parse_share("0.01"), Ok(0.01));
        assert_eq!(parse_share("100%"), Ok(1.0));
        assert!(parse_share("1.5").is_err());
        assert!(parse_share("NaN").is_err());
        assert!(parse_share("101%").is_err());
        assert!(parse_share("lots").is_err());
    }
}

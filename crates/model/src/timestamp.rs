//! RFC 3339 UTC timestamps formatted exactly as Go's `time.RFC3339Nano`.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A UTC instant that serialises as Go does: `2025-08-10T16:45:12.1234Z`
/// (fraction present only when non-zero, trailing zeros trimmed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self(OffsetDateTime::now_utc())
    }

    /// Seconds since the Unix epoch (may be negative).
    pub fn from_unix_seconds(secs: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp(secs).ok().map(Self)
    }

    /// Seconds since the Unix epoch.
    pub fn unix_seconds(&self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The wrapped `time` value, always in UTC.
    pub fn as_offset_date_time(&self) -> OffsetDateTime {
        self.0
    }
}

/// Seconds since the Unix epoch now (0 on a clock set before 1970).
pub fn unix_seconds_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch now (0 on a clock set before 1970).
pub fn unix_millis_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The run id a probe takes when none is given: `run-<unix seconds>`.
pub fn default_run_id() -> String {
    format!("run-{}", unix_seconds_now())
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        Self(OffsetDateTime::from(t).to_offset(time::UtcOffset::UTC))
    }
}

impl From<OffsetDateTime> for Timestamp {
    fn from(t: OffsetDateTime) -> Self {
        Self(t.to_offset(time::UtcOffset::UTC))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )?;
        let nanos = t.nanosecond();
        if nanos != 0 {
            let mut digits = format!("{nanos:09}");
            while digits.ends_with('0') {
                digits.pop();
            }
            write!(f, ".{digits}")?;
        }
        f.write_str("Z")
    }
}

impl std::str::FromStr for Timestamp {
    type Err = time::error::Parse;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OffsetDateTime::parse(s, &Rfc3339).map(Self::from)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unix_clock_helpers_agree_with_each_other_and_timestamp_now() {
        let before = Timestamp::now().unix_seconds();
        let secs = unix_seconds_now();
        let millis = unix_millis_now();
        let after = Timestamp::now().unix_seconds();
        assert!(
            (before..=after + 1).contains(&(secs as i64)),
            "{before} {secs} {after}"
        );
        assert!(
            millis / 1000 >= secs && millis / 1000 <= secs + 1,
            "{millis} {secs}"
        );
        let id = default_run_id();
        let n: u64 = id
            .strip_prefix("run-")
            .expect("run-<secs>")
            .parse()
            .expect("secs");
        assert!(n >= secs && n <= secs + 1, "{id}");
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("valid timestamp")
    }

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(
            at("2025-08-10T16:45:12.123400000Z").to_string(),
            "2025-08-10T16:45:12.1234Z"
        );
        assert_eq!(
            at("2025-08-10T16:45:12Z").to_string(),
            "2025-08-10T16:45:12Z"
        );
        assert_eq!(
            at("2025-08-10T18:45:12.000000001+02:00").to_string(),
            "2025-08-10T16:45:12.000000001Z"
        );
    }

    #[test]
    fn round_trips_through_json() {
        let t = at("2001-02-03T04:05:06.5Z");
        let json = serde_json::to_string(&t).expect("serialises");
        assert_eq!(json, "\"2001-02-03T04:05:06.5Z\"");
        let back: Timestamp = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, t);
    }
}

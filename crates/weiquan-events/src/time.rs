//! Business time: an instant plus the UTC offset it was written with.
//!
//! Rules compare instants (`unix_ms`); the offset is kept only so that a finding
//! can say "when" in the same local time the platform used.

use chrono::{DateTime, FixedOffset, SecondsFormat, TimeZone};
use std::cmp::Ordering;
use std::fmt;

/// Milliseconds in one day (the rulebook's day is exactly 24 hours).
pub const DAY_MS: i64 = 86_400_000;
/// Milliseconds in one hour.
pub const HOUR_MS: i64 = 3_600_000;

/// An RFC 3339 instant with its offset; ordered and compared by instant only.
#[derive(Clone, Copy, Debug)]
pub struct Time {
    ms: i64,
    offset_s: i32,
}

impl Time {
    /// Parses RFC 3339 with a mandatory `T` separator and a mandatory offset (`Z` or `±hh:mm`).
    pub fn parse(s: &str) -> Result<Time, String> {
        let bytes = s.as_bytes();
        if bytes.len() < 20 {
            return Err(format!(
                "`{s}` is not an RFC 3339 time; write it like 2026-11-11T00:00:00+08:00"
            ));
        }
        if bytes[10] != b'T' && bytes[10] != b't' {
            return Err(format!(
                "`{s}` must separate date and time with `T`, like 2026-11-11T00:00:00+08:00"
            ));
        }
        match DateTime::parse_from_rfc3339(s) {
            Ok(dt) => Ok(Time {
                ms: dt.timestamp_millis(),
                offset_s: dt.offset().local_minus_utc(),
            }),
            Err(_) => Err(format!(
                "`{s}` is not an RFC 3339 time with an offset; write it like 2026-11-11T00:00:00+08:00"
            )),
        }
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> i64 {
        self.ms
    }

    /// The same offset, `delta_ms` later (saturating: the far future stays far).
    pub fn plus_ms(self, delta_ms: i64) -> Time {
        Time {
            ms: self.ms.saturating_add(delta_ms),
            offset_s: self.offset_s,
        }
    }

    /// The same offset, `days` whole days later.
    pub fn plus_days(self, days: u32) -> Time {
        self.plus_ms(i64::from(days) * DAY_MS)
    }

    /// Builds a time from an instant and an offset in seconds east of UTC.
    pub fn from_unix_ms(ms: i64, offset_s: i32) -> Time {
        Time { ms, offset_s }
    }
}

impl PartialEq for Time {
    fn eq(&self, other: &Self) -> bool {
        self.ms == other.ms
    }
}
impl Eq for Time {}
impl PartialOrd for Time {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Time {
    fn cmp(&self, other: &Self) -> Ordering {
        self.ms.cmp(&other.ms)
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let offset = FixedOffset::east_opt(self.offset_s).ok_or(fmt::Error)?;
        match offset.timestamp_millis_opt(self.ms).single() {
            Some(dt) => f.write_str(&dt.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            None => write!(f, "@{}ms", self.ms),
        }
    }
}

impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offset_and_round_trips() {
        let t = Time::parse("2026-11-11T00:00:00+08:00").expect("valid");
        assert_eq!(t.to_string(), "2026-11-11T00:00:00+08:00");
        let z = Time::parse("2026-11-10T16:00:00Z").expect("valid");
        assert_eq!(t, z);
        assert_eq!(t.plus_days(1).to_string(), "2026-11-12T00:00:00+08:00");
    }

    #[test]
    fn rejects_missing_offset_space_and_words() {
        for bad in [
            "2026-11-11T00:00:00",
            "2026-11-11 00:00:00+08:00",
            "yesterday",
            "2026-11-11",
            "2026-13-11T00:00:00+08:00",
        ] {
            assert!(Time::parse(bad).is_err(), "{bad} must be rejected");
        }
    }
}

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
        if let Some(t) = fast_parse(bytes) {
            return Ok(t);
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

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` without a library call: the form every
/// producer sends, and most of an event's parsing time otherwise. Anything else
/// (or anything out of range) is left to chrono, which decides.
fn fast_parse(b: &[u8]) -> Option<Time> {
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut n = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            n = n * 10 + i64::from(c - b'0');
        }
        Some(n)
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || (b[10] != b'T' && b[10] != b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut i = 19;
    let mut frac_ms = 0i64;
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            if i - start < 3 {
                frac_ms = frac_ms * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        if i == start || i - start > 9 {
            return None;
        }
        for _ in (i - start)..3 {
            frac_ms *= 10;
        }
    }
    let offset_s = match b.get(i..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, c: u8| {
                (a.is_ascii_digit() && c.is_ascii_digit()).then(|| i64::from(a - b'0') * 10 + i64::from(c - b'0'))
            };
            let (oh, om) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            if *sign == b'-' {
                -off
            } else {
                off
            }
        }
        _ => return None,
    };
    // Days from 1970-01-01 (H. Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(Time {
        ms: secs * 1000 + frac_ms,
        offset_s: i32::try_from(offset_s).ok()?,
    })
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

/// RFC 3339 text in human-readable formats (JSON: the API and the ledger);
/// `(ms, offset)` in binary ones (an engine snapshot: no formatting or
/// parsing per time).
impl serde::Serialize for Time {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_str(self)
        } else {
            serde::Serialize::serialize(&(self.ms, self.offset_s), s)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Time {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        if d.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            Time::parse(&text).map_err(serde::de::Error::custom)
        } else {
            let (ms, offset_s) = <(i64, i32)>::deserialize(d)?;
            if FixedOffset::east_opt(offset_s).is_none() {
                return Err(serde::de::Error::custom(format!(
                    "UTC offset of {offset_s} s is out of range"
                )));
            }
            Ok(Time { ms, offset_s })
        }
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
    fn fast_path_agrees_with_chrono() {
        let mut n = 0u64;
        for year in [1970, 1999, 2000, 2024, 2026, 2100] {
            for month in 1..=12 {
                for day in [1, 15, 28, 29, 30, 31] {
                    for (time, off) in [
                        ("00:00:00", "Z"),
                        ("23:59:59.999", "+08:00"),
                        ("12:30:05.5", "-05:30"),
                        ("07:08:09.123456789", "+14:00"),
                    ] {
                        let s = format!("{year:04}-{month:02}-{day:02}T{time}{off}");
                        let fast = fast_parse(s.as_bytes());
                        match DateTime::parse_from_rfc3339(&s) {
                            Ok(dt) => {
                                let t = fast.expect("valid dates take the fast path");
                                assert_eq!(
                                    (t.ms, t.offset_s),
                                    (dt.timestamp_millis(), dt.offset().local_minus_utc()),
                                    "{s}"
                                );
                                n += 1;
                            }
                            Err(_) => assert!(fast.is_none(), "{s} is invalid"),
                        }
                    }
                }
            }
        }
        assert!(n > 1000);
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

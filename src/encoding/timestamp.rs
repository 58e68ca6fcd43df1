//! Timestamps for syslog headers without allocation: RFC 3339 (RFC 5424 TIMESTAMP) with a
//! configurable fraction and offset, the RFC 3164 `Mmm dd hh:mm:ss` form, and epoch
//! milliseconds (CEF `rt`, LEEF `devTime`).

use std::fmt;

use serde::{de, Deserialize, Deserializer};

/// The zone timestamps are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimeZone {
    /// UTC, written with the `Z` suffix (the default).
    #[default]
    Utc,
    /// The machine's local zone (per log, so daylight saving changes are followed).
    Local,
    /// A fixed offset from UTC in seconds, e.g. `+08:00` is 28800.
    Fixed(i32),
}

impl TimeZone {
    /// Parses `UTC` (or `Z`), `local`, or an offset `+08:00` / `-0530`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("utc") || text == "Z" {
            return Some(TimeZone::Utc);
        }
        if text.eq_ignore_ascii_case("local") {
            return Some(TimeZone::Local);
        }
        let (sign, rest) = match text.as_bytes().first()? {
            b'+' => (1, &text[1..]),
            b'-' => (-1, &text[1..]),
            _ => return None,
        };
        let digits: String = rest.chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hours: i32 = digits[..2].parse().ok()?;
        let minutes: i32 = digits[2..].parse().ok()?;
        (hours < 24 && minutes < 60)
            .then_some(TimeZone::Fixed(sign * (hours * 3600 + minutes * 60)))
    }

    /// The offset from UTC, in seconds, at `unix_seconds`.
    pub fn offset_at(self, unix_seconds: i64) -> i32 {
        match self {
            TimeZone::Utc => 0,
            TimeZone::Fixed(offset) => offset,
            TimeZone::Local => {
                use chrono::{Offset, TimeZone as _};
                chrono::Local
                    .timestamp_opt(unix_seconds, 0)
                    .earliest()
                    .map_or(0, |local| local.offset().fix().local_minus_utc())
            }
        }
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        TimeZone::parse(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid time zone `{text}`: use \"UTC\", \"local\" or an offset such as \"+08:00\""
            ))
        })
    }
}

/// Digits of the RFC 5424 fractional second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimePrecision {
    /// Whole seconds.
    Seconds,
    /// Three digits.
    Millis,
    /// Six digits (the RFC 5424 maximum; the default).
    #[default]
    Micros,
}

/// The date and time of day of a moment in some zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// Converts seconds since the epoch (already shifted into the zone) to a calendar date,
    /// with Howard Hinnant's `civil_from_days` algorithm.
    fn from_unix(seconds: i64) -> Self {
        let days = seconds.div_euclid(86_400);
        let of_day = seconds.rem_euclid(86_400) as u32;
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let month_index = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
        let month = if month_index < 10 {
            month_index + 3
        } else {
            month_index - 9
        } as u32;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: of_day / 3600,
            minute: of_day / 60 % 60,
            second: of_day % 60,
        }
    }
}

fn push_two_digits(value: u32, out: &mut Vec<u8>) {
    out.push(b'0' + (value / 10 % 10) as u8);
    out.push(b'0' + (value % 10) as u8);
}

fn push_padded(value: u32, width: usize, out: &mut Vec<u8>) {
    let mut digits = [b'0'; 9];
    let mut rest = value;
    for slot in digits[..width].iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.extend_from_slice(&digits[..width]);
}

/// Writes an RFC 5424 TIMESTAMP such as `2024-03-05T15:08:09.123456+08:00` or
/// `2024-03-05T07:08:09.123Z`.
pub fn write_rfc3339(
    unix_seconds: u32,
    nanos: Option<u32>,
    precision: TimePrecision,
    zone: TimeZone,
    out: &mut Vec<u8>,
) {
    let seconds = i64::from(unix_seconds);
    let offset = zone.offset_at(seconds);
    let civil = Civil::from_unix(seconds + i64::from(offset));
    push_padded(civil.year.clamp(0, 9999) as u32, 4, out);
    out.push(b'-');
    push_two_digits(civil.month, out);
    out.push(b'-');
    push_two_digits(civil.day, out);
    out.push(b'T');
    push_two_digits(civil.hour, out);
    out.push(b':');
    push_two_digits(civil.minute, out);
    out.push(b':');
    push_two_digits(civil.second, out);
    let nanos = nanos.unwrap_or(0).min(999_999_999);
    match precision {
        TimePrecision::Seconds => {}
        TimePrecision::Millis => {
            out.push(b'.');
            push_padded(nanos / 1_000_000, 3, out);
        }
        TimePrecision::Micros => {
            out.push(b'.');
            push_padded(nanos / 1_000, 6, out);
        }
    }
    if offset == 0 {
        out.push(b'Z');
    } else {
        out.push(if offset < 0 { b'-' } else { b'+' });
        let minutes = offset.unsigned_abs() / 60;
        push_two_digits(minutes / 60, out);
        out.push(b':');
        push_two_digits(minutes % 60, out);
    }
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Writes an RFC 3164 TIMESTAMP `Mmm dd hh:mm:ss` with a space-padded day (`Mar  5 07:08:09`).
pub fn write_rfc3164(unix_seconds: u32, zone: TimeZone, out: &mut Vec<u8>) {
    let seconds = i64::from(unix_seconds);
    let civil = Civil::from_unix(seconds + i64::from(zone.offset_at(seconds)));
    out.extend_from_slice(MONTHS[(civil.month - 1) as usize]);
    out.push(b' ');
    out.push(if civil.day < 10 {
        b' '
    } else {
        b'0' + (civil.day / 10) as u8
    });
    out.push(b'0' + (civil.day % 10) as u8);
    out.push(b' ');
    push_two_digits(civil.hour, out);
    out.push(b':');
    push_two_digits(civil.minute, out);
    out.push(b':');
    push_two_digits(civil.second, out);
}

/// Writes milliseconds since the epoch (`1709622489123`).
pub fn write_epoch_millis(unix_seconds: u32, nanos: Option<u32>, out: &mut Vec<u8>) {
    let millis =
        u64::from(unix_seconds) * 1000 + u64::from(nanos.unwrap_or(0).min(999_999_999) / 1_000_000);
    out.extend_from_slice(itoa::Buffer::new().format(millis).as_bytes());
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TimeZone::Utc => f.write_str("UTC"),
            TimeZone::Local => f.write_str("local"),
            TimeZone::Fixed(offset) => {
                let sign = if *offset < 0 { '-' } else { '+' };
                let minutes = offset.unsigned_abs() / 60;
                write!(f, "{sign}{:02}:{:02}", minutes / 60, minutes % 60)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-03-05T07:08:09Z.
    const MARCH_5: u32 = 1_709_622_489;

    fn render(write: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        write(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc3339_in_utc_and_with_offsets() {
        let utc = render(|o| {
            write_rfc3339(
                MARCH_5,
                Some(123_456_789),
                TimePrecision::Micros,
                TimeZone::Utc,
                o,
            )
        });
        assert_eq!(utc, "2024-03-05T07:08:09.123456Z");
        let plus8 = render(|o| {
            write_rfc3339(
                MARCH_5,
                Some(123_000_000),
                TimePrecision::Millis,
                TimeZone::Fixed(8 * 3600),
                o,
            )
        });
        assert_eq!(plus8, "2024-03-05T15:08:09.123+08:00");
        let minus = render(|o| {
            write_rfc3339(
                MARCH_5,
                None,
                TimePrecision::Seconds,
                TimeZone::parse("-09:30").unwrap(),
                o,
            )
        });
        assert_eq!(minus, "2024-03-04T21:38:09-09:30");
    }

    #[test]
    fn civil_dates_match_chrono_across_years() {
        for seconds in (0..4_102_444_800i64).step_by(86_400 * 37 + 3_601) {
            let expected = chrono::DateTime::from_timestamp(seconds, 0)
                .unwrap()
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string();
            let actual = render(|o| {
                write_rfc3339(
                    seconds as u32,
                    None,
                    TimePrecision::Seconds,
                    TimeZone::Utc,
                    o,
                )
            });
            assert_eq!(actual, expected);
        }
    }

    #[test]
    fn rfc3164_pads_the_day_with_a_space() {
        assert_eq!(
            render(|o| write_rfc3164(MARCH_5, TimeZone::Utc, o)),
            "Mar  5 07:08:09"
        );
        assert_eq!(
            render(|o| write_rfc3164(MARCH_5 + 10 * 86_400, TimeZone::Utc, o)),
            "Mar 15 07:08:09"
        );
    }

    #[test]
    fn epoch_millis() {
        assert_eq!(
            render(|o| write_epoch_millis(MARCH_5, Some(123_456_789), o)),
            "1709622489123"
        );
    }

    #[test]
    fn local_zone_follows_the_machine() {
        use chrono::{Offset, TimeZone as _};
        let expected = chrono::Local
            .timestamp_opt(i64::from(MARCH_5), 0)
            .unwrap()
            .offset()
            .fix()
            .local_minus_utc();
        assert_eq!(TimeZone::Local.offset_at(i64::from(MARCH_5)), expected);
    }

    #[test]
    fn zones_parse() {
        assert_eq!(TimeZone::parse("UTC"), Some(TimeZone::Utc));
        assert_eq!(TimeZone::parse("+0800"), Some(TimeZone::Fixed(28_800)));
        assert_eq!(TimeZone::parse("+25:00"), None);
        assert_eq!(TimeZone::parse("Asia/Shanghai"), None);
        assert_eq!(TimeZone::Fixed(-34_200).to_string(), "-09:30");
    }
}

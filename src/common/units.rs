//! Human-friendly durations (`20s`, `500ms`, `1m`) and byte sizes (`1MiB`, `512KB`) for config files.

use std::fmt;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer};

/// A duration written as a number with a unit: `ms`, `s`, `m`, `h` (e.g. `"20s"`, `"1.5s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct HumanDuration(pub Duration);

/// A byte size written as a number with an optional unit: `B`, `KB`, `MB`, `GB` (powers of
/// 1000), `KiB`, `MiB`, `GiB` (powers of 1024), e.g. `"1MiB"`. A bare integer is bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

/// Why a duration or size could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid {kind} `{text}`: {reason}")]
pub struct UnitError {
    kind: &'static str,
    text: String,
    reason: &'static str,
}

fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (text[..end].trim(), text[end..].trim())
}

impl std::str::FromStr for HumanDuration {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| UnitError {
            kind: "duration",
            text: text.to_owned(),
            reason,
        };
        let (number, unit) = split_number(text.trim());
        let value: f64 = number
            .parse()
            .map_err(|_| error("expected a number followed by ms, s, m or h, e.g. `20s`"))?;
        let seconds = match unit {
            "ms" => value / 1000.0,
            "s" => value,
            "m" | "min" => value * 60.0,
            "h" => value * 3600.0,
            "" => return Err(error("missing unit: write e.g. `20s` or `500ms`")),
            _ => return Err(error("unknown unit: use ms, s, m or h")),
        };
        Duration::try_from_secs_f64(seconds)
            .map(HumanDuration)
            .map_err(|_| error("too large"))
    }
}

impl std::str::FromStr for ByteSize {
    type Err = UnitError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason| UnitError {
            kind: "size",
            text: text.to_owned(),
            reason,
        };
        let (number, unit) = split_number(text.trim());
        let value: f64 = number
            .parse()
            .map_err(|_| error("expected a number with an optional unit, e.g. `1MiB`"))?;
        let multiplier: u64 = match unit {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(error("unknown unit: use B, KB, MB, GB, KiB, MiB or GiB")),
        };
        let bytes = (value * multiplier as f64).round();
        // `u64::MAX as f64` rounds up to 2^64, so this keeps the cast below exact.
        if bytes >= u64::MAX as f64 {
            return Err(error("too large"));
        }
        Ok(ByteSize(bytes as u64))
    }
}

fn deserialize_text_or_integer<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: std::str::FromStr<Err = UnitError> + From<u64>,
{
    struct Visitor<T>(&'static str, std::marker::PhantomData<T>);
    impl<T: std::str::FromStr<Err = UnitError> + From<u64>> de::Visitor<'_> for Visitor<T> {
        type Value = T;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
            v.parse().map_err(E::custom)
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
            Ok(T::from(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
            u64::try_from(v)
                .map(T::from)
                .map_err(|_| E::custom("must not be negative"))
        }
    }
    deserializer.deserialize_any(Visitor(expecting, std::marker::PhantomData))
}

impl From<u64> for HumanDuration {
    /// A bare integer in a config file counts as seconds.
    fn from(seconds: u64) -> Self {
        HumanDuration(Duration::from_secs(seconds))
    }
}

impl From<u64> for ByteSize {
    fn from(bytes: u64) -> Self {
        ByteSize(bytes)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text_or_integer(deserializer, "a duration such as \"20s\" or \"500ms\"")
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_text_or_integer(deserializer, "a size such as \"1MiB\" or a number of bytes")
    }
}

impl fmt::Display for HumanDuration {
    /// The largest whole unit that fits: `2h`, `90s`, `1500ms`; `{:?}` of the duration
    /// otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        let units = [
            (3_600_000_000_000, "h"),
            (60_000_000_000, "m"),
            (1_000_000_000, "s"),
            (1_000_000, "ms"),
        ];
        match units
            .iter()
            .find(|(size, _)| nanos != 0 && nanos % size == 0)
        {
            Some((size, unit)) => write!(f, "{}{unit}", nanos / size),
            None if nanos == 0 => f.write_str("0s"),
            None => write!(f, "{:?}", self.0),
        }
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size: `64MiB`, `512KiB`, `1000B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        match units
            .iter()
            .find(|(size, _)| self.0 != 0 && self.0 % size == 0)
        {
            Some((size, unit)) => write!(f, "{}{unit}", self.0 / size),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl HumanDuration {
    /// A duration of `seconds`.
    pub const fn secs(seconds: u64) -> Self {
        Self(Duration::from_secs(seconds))
    }

    /// A duration of `millis` milliseconds.
    pub const fn millis(millis: u64) -> Self {
        Self(Duration::from_millis(millis))
    }

    /// Checks `min <= self <= max`.
    ///
    /// # Errors
    ///
    /// The reason, stating the allowed range and the value.
    pub fn check_within(self, min: Self, max: Self) -> Result<(), String> {
        check_within(self, min, max)
    }
}

impl ByteSize {
    /// A size of `n` mebibytes.
    pub const fn mib(n: u64) -> Self {
        Self(n << 20)
    }

    /// Checks `min <= self <= max`.
    ///
    /// # Errors
    ///
    /// The reason, stating the allowed range and the value.
    pub fn check_within(self, min: Self, max: Self) -> Result<(), String> {
        check_within(self, min, max)
    }
}

/// Checks `min <= value <= max` for any displayable value (durations, sizes, counts).
///
/// # Errors
///
/// The reason, e.g. `must be between 100ms and 10m, got 0s`.
pub fn check_within<T: PartialOrd + fmt::Display>(value: T, min: T, max: T) -> Result<(), String> {
    if value < min || value > max {
        return Err(format!("must be between {min} and {max}, got {value}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(
            "20s".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(20)
        );
        assert_eq!(
            "500ms".parse::<HumanDuration>().unwrap().0,
            Duration::from_millis(500)
        );
        assert_eq!(
            "1.5s".parse::<HumanDuration>().unwrap().0,
            Duration::from_millis(1500)
        );
        assert_eq!(
            "2m".parse::<HumanDuration>().unwrap().0,
            Duration::from_secs(120)
        );
        assert!("20".parse::<HumanDuration>().is_err());
        assert!("20 parsecs".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn huge_durations_and_sizes_are_errors_not_panics() {
        for text in [
            "99999999999999999999s",
            "1e400s",
            "-1s",
            "NaN s",
            "inf",
            "1.5.5s",
        ] {
            assert!(text.parse::<HumanDuration>().is_err(), "{text}");
        }
        let huge = "9".repeat(400);
        assert!(format!("{huge}s").parse::<HumanDuration>().is_err());
        assert!(format!("{huge}GiB").parse::<ByteSize>().is_err());
        assert!("20000000000GiB".parse::<ByteSize>().is_err());
        assert!("-1MiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn ranges_state_the_bounds() {
        let check = |text: &str| {
            text.parse::<HumanDuration>()
                .unwrap()
                .check_within(HumanDuration::millis(100), HumanDuration::secs(600))
        };
        assert_eq!(
            check("0s").unwrap_err(),
            "must be between 100ms and 10m, got 0s"
        );
        assert_eq!(
            check("1h").unwrap_err(),
            "must be between 100ms and 10m, got 1h"
        );
        assert!(check("100ms").is_ok() && check("10m").is_ok());
        assert_eq!(
            ByteSize(1000)
                .check_within(ByteSize::mib(1), ByteSize::mib(4096))
                .unwrap_err(),
            "must be between 1MiB and 4GiB, got 1000B"
        );
        assert_eq!(
            check_within(0, 1, 1000).unwrap_err(),
            "must be between 1 and 1000, got 0"
        );
    }

    #[test]
    fn parses_sizes() {
        assert_eq!("1MiB".parse::<ByteSize>().unwrap().0, 1 << 20);
        assert_eq!("512KB".parse::<ByteSize>().unwrap().0, 512_000);
        assert_eq!("100".parse::<ByteSize>().unwrap().0, 100);
        assert!("1XB".parse::<ByteSize>().is_err());
    }
}

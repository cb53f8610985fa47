//! Human durations for windows: `90s`, `15m`, `12h`, `28d`, `2w`.

use chrono::Duration;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid duration {input:?}: expected a positive number followed by s, m, h, d or w (for example 3m or 28d)")]
pub struct DurationError {
    pub input: String,
}

/// Parses `<n><unit>` with unit `s`, `m`, `h`, `d` or `w`.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let err = || DurationError {
        input: input.to_owned(),
    };
    let trimmed = input.trim();
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(err)?;
    let (digits, unit) = trimmed.split_at(split);
    let n: i64 = digits.parse().map_err(|_| err())?;
    if n <= 0 {
        return Err(err());
    }
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(err()),
    };
    n.checked_mul(seconds)
        .and_then(Duration::try_seconds)
        .ok_or_else(err)
}

/// The inverse of [`parse_duration`] for whole units, for messages.
pub fn format_duration(d: Duration) -> String {
    let s = d.num_seconds();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if s >= size && s % size == 0 {
            return format!("{}{unit}", s / size);
        }
    }
    format!("{s}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_duration("3m").unwrap(), Duration::minutes(3));
        assert_eq!(parse_duration("28d").unwrap(), Duration::days(28));
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_duration("2w").unwrap(), Duration::days(14));
        for bad in [
            "",
            "3",
            "m",
            "0d",
            "-1d",
            "3 parsecs",
            "1.5h",
            "99999999999999999999d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for s in ["3m", "28d", "90s", "1h"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}

//! Wording shared by the analytics stage's findings and suggestions:
//! times, windows and counts as a person reads them. Pure formatting; it
//! never reads the clock or does IO.

use chrono::{DateTime, Duration, Utc};

/// `2024-03-10T12:00:00Z`: seconds are enough for a person.
pub fn time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// When a run of calls happened: `at T`, `on D between H1 and H2 UTC` or
/// `between T1 and T2`.
pub fn span(first: DateTime<Utc>, last: DateTime<Utc>) -> String {
    let (a, b) = (time(first), time(last));
    if a == b {
        format!("at {a}")
    } else if first.date_naive() == last.date_naive() {
        format!(
            "on {} between {} and {} UTC",
            first.format("%Y-%m-%d"),
            first.format("%H:%M:%S"),
            last.format("%H:%M:%S")
        )
    } else {
        format!("between {a} and {b}")
    }
}

/// A window as `START to END`, the end shortened to its time of day when
/// it falls on the same day.
pub fn range(start: DateTime<Utc>, end: DateTime<Utc>) -> String {
    if start.date_naive() == end.date_naive() {
        format!("{} to {}", time(start), end.format("%H:%M:%SZ"))
    } else {
        format!("{} to {}", time(start), time(end))
    }
}

/// A length of time as a person says it, rounded down to its largest
/// unit: `12 days`, `1 hour`, `3 minutes`, `under a minute`.
pub fn approx(d: Duration) -> String {
    let units = [
        (d.num_days(), "day"),
        (d.num_hours(), "hour"),
        (d.num_minutes(), "minute"),
    ];
    match units.iter().find(|(n, _)| *n >= 1) {
        Some((n, unit)) => format!("{n} {unit}{}", if *n == 1 { "" } else { "s" }),
        None => "under a minute".to_owned(),
    }
}

/// `1 call`, `3 calls`.
pub fn count(n: i64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("{n} {one}")
    } else {
        format!("{n} {many}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn spans_read_naturally() {
        let a = t("2023-01-27T18:31:10.5Z");
        assert_eq!(span(a, a), "at 2023-01-27T18:31:10Z");
        assert_eq!(
            span(a, t("2023-01-27T18:31:50Z")),
            "on 2023-01-27 between 18:31:10 and 18:31:50 UTC"
        );
        assert_eq!(
            span(a, t("2023-01-28T01:00:00Z")),
            "between 2023-01-27T18:31:10Z and 2023-01-28T01:00:00Z"
        );
        assert_eq!(
            range(t("2023-01-27T18:28:12Z"), t("2023-01-27T18:31:12Z")),
            "2023-01-27T18:28:12Z to 18:31:12Z"
        );
        assert_eq!(count(1, "call", "calls"), "1 call");
        assert_eq!(approx(Duration::hours(30)), "1 day");
        assert_eq!(approx(Duration::days(90)), "90 days");
        assert_eq!(approx(Duration::minutes(61)), "1 hour");
        assert_eq!(approx(Duration::minutes(3)), "3 minutes");
        assert_eq!(approx(Duration::seconds(59)), "under a minute");
        assert_eq!(approx(Duration::seconds(-5)), "under a minute");
        assert_eq!(count(0, "call", "calls"), "0 calls");
    }
}

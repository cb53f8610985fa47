//! The weekly right-sizing report: what `overreach report` computes and
//! stores as `DIR/reports/weekly/YYYY-Www.json`, and what
//! `GET /v1/reports/weekly` serves and renders (HTML, Markdown, CSV).
//!
//! Analytics fills it from two right-sizing runs, one ending at the end of
//! the week and one a week earlier; the api crate renders it. Nothing here
//! computes anything but the ISO week arithmetic.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc, Weekday};
use serde::{Deserialize, Serialize};

use crate::results::Suggestion;

/// An ISO 8601 week, `2026-W48`: Monday 00:00 UTC to the next Monday.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IsoWeek {
    pub year: i32,
    pub week: u32,
}

/// Why a week string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid week `{input}`: {reason} (expected YYYY-Www, for example 2026-W48)")]
pub struct WeekError {
    pub input: String,
    pub reason: &'static str,
}

impl IsoWeek {
    /// Parses `YYYY-Www` (also `YYYYWww`, and a lower-case `w`).
    pub fn parse(input: &str) -> Result<Self, WeekError> {
        let err = |reason| WeekError {
            input: input.to_owned(),
            reason,
        };
        let (year, week) = input
            .split_once(['W', 'w'])
            .ok_or_else(|| err("no `W` between year and week"))?;
        let year = year.strip_suffix('-').unwrap_or(year);
        if year.len() != 4 || week.len() != 2 {
            return Err(err("the year has 4 digits and the week 2"));
        }
        let year: i32 = year.parse().map_err(|_| err("the year is not a number"))?;
        let week: u32 = week.parse().map_err(|_| err("the week is not a number"))?;
        NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)
            .ok_or_else(|| err("that year has no such week"))?;
        Ok(Self { year, week })
    }

    /// The week holding `time`.
    pub fn containing(time: DateTime<Utc>) -> Self {
        let iso = time.date_naive().iso_week();
        Self {
            year: iso.year(),
            week: iso.week(),
        }
    }

    /// Monday 00:00 UTC.
    pub fn start(self) -> DateTime<Utc> {
        let monday = NaiveDate::from_isoywd_opt(self.year, self.week, Weekday::Mon)
            .expect("an IsoWeek is valid by construction");
        Utc.from_utc_datetime(&monday.and_hms_opt(0, 0, 0).expect("midnight exists"))
    }

    /// The next Monday 00:00 UTC, where the week ends (exclusive).
    pub fn end(self) -> DateTime<Utc> {
        self.start() + Duration::weeks(1)
    }

    pub fn previous(self) -> Self {
        Self::containing(self.start() - Duration::days(1))
    }
}

impl std::fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-W{:02}", self.year, self.week)
    }
}

impl std::str::FromStr for IsoWeek {
    type Err = WeekError;
    fn from_str(s: &str) -> Result<Self, WeekError> {
        Self::parse(s)
    }
}

/// Whether right-sizing judged an identity's grants.
pub const STATUS_JUDGED: &str = "judged";
/// Not judged: its stored history does not cover the observation window.
pub const STATUS_HISTORY_SHORT: &str = "history-short";
/// Judged, but some grants are younger than the grace period and were
/// left out.
pub const STATUS_PARTLY_IN_GRACE: &str = "partly-in-grace";

/// Granted against used for one identity, at the end of one week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityRightsizing {
    pub subject: String,
    /// The inventory it was judged against: `rbac`, `istio`, `opa` or
    /// `grants`.
    #[serde(default)]
    pub engine: String,
    /// [`STATUS_JUDGED`], [`STATUS_HISTORY_SHORT`] or
    /// [`STATUS_PARTLY_IN_GRACE`].
    pub status: String,
    /// Grants (rules) the inventory gives it.
    pub granted: i64,
    /// Grants at least one allowed call in the window needed.
    pub used: i64,
    /// Judged grants no call needed.
    pub unused: i64,
    /// Unused grants whose removal is `high` risk (write, delete,
    /// escalate, secrets): what an attacker holding the identity gains.
    pub unused_sensitive: i64,
    /// Grants younger than the grace period, not judged yet.
    pub in_grace: i64,
    /// Unused share of judged grants, 0-100 (`None` when not judged).
    pub creep_score: Option<i64>,
    /// The same a week earlier, if the identity was judged then.
    pub creep_score_previous: Option<i64>,
    /// Allowed calls in the observation window.
    pub allowed_calls: i64,
    /// Days of stored history inside the observation window.
    pub history_days: f64,
    /// Why it was not judged, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One suggestion with its place in the review queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RankedSuggestion {
    /// 1 is reviewed first.
    pub rank: i64,
    /// Risk weight × confidence, 0-100: what the ranking sorts by.
    pub priority: i64,
    /// Not among the previous week's suggestions.
    pub new: bool,
    #[serde(flatten)]
    pub suggestion: Suggestion,
}

/// A previous week's suggestion that is gone this week, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedSuggestion {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub grant: Option<String>,
    /// `grant-removed` (the inventory no longer grants it), `used` (the
    /// identity used it since) or `superseded` (the suggestion changed).
    pub reason: String,
}

/// What moved between the previous week and this one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeeklyChanges {
    /// Ids of this week's suggestions that are new.
    pub new_suggestions: Vec<String>,
    pub closed_suggestions: Vec<ClosedSuggestion>,
    /// Identities judged now and not a week ago, or the other way round.
    pub newly_judged: Vec<String>,
    /// Grants added to and removed from the inventory, as `subject: grant`.
    pub grants_added: i64,
    pub grants_removed: i64,
    /// Estate creep score a week ago (`None`: nothing was judged then).
    pub creep_score_previous: Option<i64>,
}

/// Estate-wide figures of one week.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WeeklyTotals {
    pub identities: i64,
    pub judged: i64,
    pub granted: i64,
    pub used: i64,
    pub unused: i64,
    pub unused_sensitive: i64,
    pub in_grace: i64,
    /// Unused share of all judged grants, 0-100.
    pub creep_score: Option<i64>,
    pub suggestions: i64,
    /// Suggestions by risk (`high`, `medium`, `low`).
    pub by_risk: std::collections::BTreeMap<String, i64>,
}

/// The weekly right-sizing report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeeklyReport {
    /// `2026-W48`.
    pub week: String,
    pub week_start: DateTime<Utc>,
    pub week_end: DateTime<Utc>,
    pub previous_week: String,
    /// What right-sizing judged at: the end of the week, or the latest
    /// stored event if the week was not over (absent in older reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<DateTime<Utc>>,
    /// The observation window each week is judged over (`90d`).
    pub observe: String,
    pub observe_start: DateTime<Utc>,
    pub grace: String,
    /// The inventory files, as given.
    pub inventory: Vec<String>,
    pub totals: WeeklyTotals,
    pub changes: WeeklyChanges,
    /// Sorted by creep score, highest first.
    pub identities: Vec<IdentityRightsizing>,
    /// Sorted by rank.
    pub suggestions: Vec<RankedSuggestion>,
    /// At most 10 identities with the most unused sensitive grants.
    pub top_unused_sensitive: Vec<IdentityRightsizing>,
    /// When the report was made (wall clock), for the footer.
    pub generated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_parse_print_and_bound() {
        let w = IsoWeek::parse("2026-W48").unwrap();
        assert_eq!(w.to_string(), "2026-W48");
        assert_eq!(w.start().to_rfc3339(), "2026-11-23T00:00:00+00:00");
        assert_eq!(w.end().to_rfc3339(), "2026-11-30T00:00:00+00:00");
        assert_eq!(IsoWeek::containing(w.end() - Duration::seconds(1)), w);
        assert_eq!(IsoWeek::containing(w.end()).week, 49);
        // Week 1 of 2026 starts on Monday 2025-12-29.
        let first = IsoWeek::parse("2026w01").unwrap();
        assert_eq!(first.start().to_rfc3339(), "2025-12-29T00:00:00+00:00");
        assert_eq!(first.previous().to_string(), "2025-W52");
        assert_eq!(IsoWeek::parse("2020-W53").unwrap().previous().week, 52);
        for bad in [
            "2026-48", "2026-W4", "26-W48", "2026-W54", "2021-W53", "x-Wyy",
        ] {
            let e = IsoWeek::parse(bad).unwrap_err();
            assert!(e.to_string().contains("YYYY-Www"), "{bad}: {e}");
        }
    }
}

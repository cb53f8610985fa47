//! What right-sizing knows about the evidence: how long each identity has
//! been watched, how complete the store's view of the observation window
//! is, how old each grant is. From it: whether an identity's grants may be
//! judged at all, and how confident a suggestion is.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use overreach_model::duration::format_duration;
use overreach_model::results::Suggestion;

use crate::explain;
use crate::hash::stable_id;
use crate::windows::Windows;

/// The lowest confidence history alone gives: no history at all.
pub const MIN_CONFIDENCE: f64 = 0.30;
/// The highest: the identity was seen for the whole window. Never 1.0,
/// since a window is a sample and some calls happen once a year.
pub const MAX_CONFIDENCE: f64 = 0.95;
/// Below this no gap, dead letter or periodicity pushes a confidence.
pub const FLOOR_CONFIDENCE: f64 = 0.05;

/// A stretch of at least this many clock hours without a single stored
/// event, anywhere in the estate, counts as a gap in the evidence: an
/// ingest outage, a lagging consumer, or an estate so quiet that nothing
/// can be concluded from it.
pub const SILENT_HOURS: i64 = 12;

/// An identity active on fewer than this share of the days it was
/// watched (and watched for at least [`PERIODIC_MIN_DAYS`]) looks like a
/// batch or monthly job, whose rarer calls a window can miss.
pub const PERIODIC_SHARE: f64 = 0.25;
pub const PERIODIC_MIN_DAYS: i64 = 14;
/// The confidence factor for such an identity.
pub const PERIODIC_FACTOR: f64 = 0.75;

/// How sure a suggestion is to break nothing, from how much of the
/// observation window the identity's history covers alone:
///
/// `confidence = 0.30 + 0.65 × min(1, observed / window)`
///
/// where `observed` is the time from the identity's first stored event (or
/// the window start, if later) to now. An identity seen for the whole
/// window gets 0.95; one seen for a tenth of it 0.365; one never seen 0.30.
/// [`Observed::confidence`] lowers it further for gaps and periodic use.
pub fn confidence(observed: Duration, window: Duration) -> f64 {
    let window = window.num_milliseconds();
    let fraction = if window <= 0 {
        0.0
    } else {
        (observed.num_milliseconds() as f64 / window as f64).clamp(0.0, 1.0)
    };
    MIN_CONFIDENCE + (MAX_CONFIDENCE - MIN_CONFIDENCE) * fraction
}

/// How complete the store's view of the observation window is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Gaps {
    /// Clock hours of the window inside silent stretches (see
    /// [`SILENT_HOURS`]).
    pub silent_hours: i64,
    pub silent_stretches: i64,
    /// Clock hours of the window the store could have seen: from its start
    /// (or the first stored event, if later) to now.
    pub window_hours: i64,
    /// Records the ingester dead-lettered since the window started.
    pub dead_letters: i64,
    /// Stored events in the window.
    pub stored: i64,
}

impl Gaps {
    /// From the sorted clock hours (since the epoch) that hold a stored
    /// event, between `from` and `now`.
    pub fn new(
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        hours: &[i64],
        stored: i64,
        dead_letters: i64,
    ) -> Self {
        let first = from.timestamp().div_euclid(3600);
        let last = now.timestamp().div_euclid(3600);
        let mut gaps = Gaps {
            window_hours: (last - first + 1).max(0),
            dead_letters,
            stored,
            ..Gaps::default()
        };
        let mut previous = first - 1;
        for &hour in hours
            .iter()
            .filter(|h| (first..=last).contains(*h))
            .chain(std::iter::once(&(last + 1)))
        {
            let silent = hour - previous - 1;
            if silent >= SILENT_HOURS {
                gaps.silent_hours += silent;
                gaps.silent_stretches += 1;
            }
            previous = hour;
        }
        gaps
    }

    fn silent_share(&self) -> f64 {
        if self.window_hours <= 0 {
            0.0
        } else {
            (self.silent_hours as f64 / self.window_hours as f64).clamp(0.0, 1.0)
        }
    }

    fn dead_letter_share(&self) -> f64 {
        let all = self.dead_letters + self.stored;
        if all <= 0 {
            0.0
        } else {
            self.dead_letters as f64 / all as f64
        }
    }

    /// `(1 - silent share / 2) × (1 - min(1/2, 5 × dead-letter share))`:
    /// a window half silent halves nothing but costs a quarter; one record
    /// in ten dead-lettered costs half.
    pub fn factor(&self) -> f64 {
        (1.0 - self.silent_share() / 2.0) * (1.0 - (5.0 * self.dead_letter_share()).min(0.5))
    }
}

/// What right-sizing needs to know about the identities and the window.
pub(crate) struct Observed<'a> {
    pub windows: &'a Windows,
    /// Each subject's first stored event.
    pub first_seen: HashMap<&'a str, DateTime<Utc>>,
    /// The first stored event of anyone.
    pub estate_first: DateTime<Utc>,
    /// Grants younger than this are not judged.
    pub grace: Duration,
    pub gaps: Gaps,
    /// Distinct days each subject was active in the window.
    pub active_days: HashMap<String, i64>,
}

impl<'a> Observed<'a> {
    /// No gaps, a 14-day grace period, and the estate watched since its
    /// first subject's first event.
    #[cfg(test)]
    pub fn new(windows: &'a Windows, first_seen: HashMap<&'a str, DateTime<Utc>>) -> Self {
        let estate_first = first_seen
            .values()
            .min()
            .copied()
            .unwrap_or(windows.now)
            .min(windows.now);
        Self {
            windows,
            first_seen,
            estate_first,
            grace: Duration::days(14),
            gaps: Gaps::default(),
            active_days: HashMap::new(),
        }
    }

    /// How far after the window start a history may begin and still count
    /// as covering it: a tenth of the window (9 days of 90), for an
    /// identity whose first call of the window came a few days in.
    fn slack(&self) -> Duration {
        self.windows.observe / 10
    }

    /// Whether the subject's grants may be judged: the store has watched
    /// the estate for the whole window and the subject for all of it (or
    /// never saw it at all, in which case every grant went unused).
    pub fn covers(&self, subject: &str) -> bool {
        let latest_start = self.windows.observe_start + self.slack();
        self.estate_first <= latest_start
            && self
                .first_seen
                .get(subject)
                .is_none_or(|first| *first <= latest_start)
    }

    /// Why [`Observed::covers`] is false, as a sentence.
    pub fn short_history_note(&self, subject: &str) -> String {
        let watched = match self.first_seen.get(subject) {
            Some(first) if self.estate_first <= self.windows.observe_start + self.slack() => {
                format!("{subject} was first seen {}", explain::time(*first))
            }
            _ => format!(
                "the stored events start {}",
                explain::time(self.estate_first)
            ),
        };
        format!(
            "Not judged yet: {watched}, so its history covers {} of the {} window.",
            explain::approx(self.history(subject)),
            format_duration(self.windows.observe)
        )
    }

    /// Whether a grant made at `granted_at` is still in its grace period.
    pub fn in_grace(&self, granted_at: Option<DateTime<Utc>>) -> bool {
        granted_at.is_some_and(|t| t > self.windows.now - self.grace)
    }

    /// How much of the observation window the subject's history covers.
    pub fn history(&self, subject: &str) -> Duration {
        let first = match self.first_seen.get(subject) {
            Some(first) => *first,
            // Never seen: watched as long as the estate was, but there is
            // no call of its own to be sure the name is spelled right.
            None => return Duration::zero(),
        };
        (self.windows.now - first.max(self.windows.observe_start).max(self.estate_first))
            .max(Duration::zero())
    }

    fn periodic(&self, subject: &str) -> Option<(i64, i64)> {
        let days = *self.active_days.get(subject)?;
        let watched = self.history(subject).num_days();
        (watched >= PERIODIC_MIN_DAYS && (days as f64) < PERIODIC_SHARE * watched as f64)
            .then_some((days, watched))
    }

    /// History, gaps in the window and periodic use, combined.
    pub fn confidence(&self, subject: &str) -> f64 {
        let base = confidence(self.history(subject), self.windows.observe);
        let periodic = if self.periodic(subject).is_some() {
            PERIODIC_FACTOR
        } else {
            1.0
        };
        (base * self.gaps.factor() * periodic).clamp(FLOOR_CONFIDENCE, MAX_CONFIDENCE)
    }

    /// The sentences that say where the confidence comes from.
    pub fn confidence_note(&self, subject: &str) -> String {
        let mut note = if self.first_seen.contains_key(subject) {
            format!(
                " Confidence {:.2}: the stored history of this identity covers {} of the {} window",
                self.confidence(subject),
                explain::approx(self.history(subject)),
                format_duration(self.windows.observe),
            )
        } else {
            format!(
                " Confidence {:.2}: the store watched the estate for the whole {} window and \
                 this identity made no call in it, but with no call of its own there is no \
                 proof the inventory spells it the way the events do",
                self.confidence(subject),
                format_duration(self.windows.observe),
            )
        };
        if self.gaps.silent_stretches > 0 {
            note.push_str(&format!(
                "; the store holds no event at all for {} ({} of {SILENT_HOURS}h or more), \
                 an ingest gap or an estate too quiet to tell",
                explain::count(self.gaps.silent_hours, "hour", "hours"),
                explain::count(self.gaps.silent_stretches, "stretch", "stretches"),
            ));
        }
        if self.gaps.dead_letters > 0 {
            note.push_str(&format!(
                "; {} were dead-lettered since the window began, calls that may be missing",
                explain::count(self.gaps.dead_letters, "record", "records"),
            ));
        }
        if let Some((days, watched)) = self.periodic(subject) {
            note.push_str(&format!(
                "; it was active on only {days} of {watched} days, like a periodic job whose \
                 rarer calls the window may have missed",
            ));
        }
        note.push('.');
        note
    }

    pub fn window_text(&self) -> String {
        format!(
            "{} observation window ({})",
            format_duration(self.windows.observe),
            explain::range(self.windows.observe_start, self.windows.now)
        )
    }

    /// A suggestion of `kind` for `subject` about `grant` over this window,
    /// with its confidence; the caller fills in the rest.
    pub fn suggestion(&self, kind: &str, subject: &str, grant: Option<String>) -> Suggestion {
        Suggestion {
            id: stable_id(&[Some(kind), Some(subject), grant.as_deref()]),
            kind: kind.to_owned(),
            subject: subject.to_owned(),
            grant,
            replacement: Vec::new(),
            used_count: 0,
            last_used: None,
            window_start: self.windows.observe_start,
            window_end: self.windows.now,
            confidence: self.confidence(subject),
            risk: String::new(),
            explanation: String::new(),
            policy: None,
            diff: None,
            sample_event_ids: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::hours(1_000_000 + hours)
    }

    #[test]
    fn silent_stretches_count_only_from_twelve_hours() {
        let h = |x: i64| 1_000_000 + x;
        // Events in hours 0-3, 10 (a 6-hour quiet night) and 30 (19 silent
        // hours before it), then nothing until hour 47 (16 silent).
        let hours = [h(0), h(1), h(2), h(3), h(10), h(30)];
        let gaps = Gaps::new(at(0), at(47), &hours, 100, 0);
        assert_eq!(gaps.window_hours, 48);
        assert_eq!(gaps.silent_stretches, 2);
        assert_eq!(gaps.silent_hours, 19 + 17);
        assert!((gaps.factor() - (1.0 - 36.0 / 48.0 / 2.0)).abs() < 1e-9);
        let none = Gaps::new(at(0), at(3), &hours, 100, 0);
        assert_eq!((none.silent_hours, none.factor()), (0, 1.0));
    }

    #[test]
    fn dead_letters_cost_at_most_half() {
        let g = |dead| Gaps {
            dead_letters: dead,
            stored: 100 - dead,
            ..Gaps::default()
        };
        assert_eq!(g(0).factor(), 1.0);
        assert!((g(1).factor() - 0.95).abs() < 1e-9);
        assert_eq!(g(50).factor(), 0.5);
    }

    #[test]
    fn confidence_grows_with_history_and_stays_in_band() {
        let window = Duration::days(90);
        assert_eq!(confidence(Duration::zero(), window), MIN_CONFIDENCE);
        assert_eq!(confidence(window, window), MAX_CONFIDENCE);
        assert_eq!(confidence(Duration::days(900), window), MAX_CONFIDENCE);
        assert_eq!(confidence(Duration::days(-5), window), MIN_CONFIDENCE);
        assert!((confidence(Duration::days(9), window) - 0.365).abs() < 1e-9);
        assert_eq!(
            confidence(Duration::days(1), Duration::zero()),
            MIN_CONFIDENCE
        );
    }

    #[test]
    fn coverage_grace_and_periodic_use() {
        let now = at(24 * 100);
        let w = Windows::new(
            now,
            Duration::days(28),
            Duration::days(1),
            Duration::days(90),
        )
        .unwrap();
        let first = HashMap::from([
            ("old", now - Duration::days(200)),
            ("late", now - Duration::days(85)),
            ("new", now - Duration::days(30)),
        ]);
        let mut o = Observed::new(&w, first);
        assert!(o.covers("old") && o.covers("late") && o.covers("never-seen"));
        assert!(!o.covers("new"));
        assert!(o.short_history_note("new").contains("30 days of the 90d"));
        assert!(o.in_grace(Some(now - Duration::days(3))));
        assert!(!o.in_grace(Some(now - Duration::days(15))) && !o.in_grace(None));
        assert_eq!(o.confidence("old"), MAX_CONFIDENCE);
        o.active_days.insert("old".to_owned(), 3);
        assert!((o.confidence("old") - MAX_CONFIDENCE * PERIODIC_FACTOR).abs() < 1e-9);
        assert!(o.confidence_note("old").contains("only 3 of 90 days"));
        // A store that starts late covers nobody.
        o.estate_first = now - Duration::days(40);
        assert!(!o.covers("old") && !o.covers("never-seen"));
        assert!(o
            .short_history_note("old")
            .contains("the stored events start"));
    }
}

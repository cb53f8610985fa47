//! The time windows one analysis run looks at, derived once from "now".
//! Part of the analytics stage; pure arithmetic, never the wall clock.

use chrono::{DateTime, Duration, Utc};

use crate::error::AnalyticsError;

/// ```text
///   baseline_start          detect_start                now
///        |------ baseline -------|------- detect --------|
///                  |------------- observe ---------------|
///             observe_start
/// ```
///
/// The baseline window is `[baseline_start, detect_start)`, the detection
/// window `[detect_start, now]` and the observation window for
/// right-sizing `[observe_start, now]`: "now" itself belongs to the
/// detection window, and no event is in both baseline and detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windows {
    pub now: DateTime<Utc>,
    pub detect_start: DateTime<Utc>,
    pub baseline_start: DateTime<Utc>,
    pub observe_start: DateTime<Utc>,
    /// Start of the "first ever" window `[history_start, detect_start)`:
    /// a reach key used anywhere in it is not new. Never after
    /// `baseline_start`; equal to it unless [`Windows::with_history`] set a
    /// longer history.
    pub history_start: DateTime<Utc>,
    pub baseline: Duration,
    pub detect: Duration,
    pub observe: Duration,
}

impl Windows {
    pub fn new(
        now: DateTime<Utc>,
        baseline: Duration,
        detect: Duration,
        observe: Duration,
    ) -> Result<Self, AnalyticsError> {
        Self::check_lengths(baseline, detect, observe)?;
        let before = |t: DateTime<Utc>, d: Duration, name: &'static str| {
            t.checked_sub_signed(d)
                .ok_or(AnalyticsError::WindowOutOfRange { name, now })
        };
        let detect_start = before(now, detect, "detect")?;
        let baseline_start = before(detect_start, baseline, "baseline")?;
        Ok(Self {
            now,
            detect_start,
            baseline_start,
            history_start: baseline_start,
            observe_start: before(now, observe, "observe")?,
            baseline,
            detect,
            observe,
        })
    }

    /// Fails unless every window is longer than zero.
    pub fn check_lengths(
        baseline: Duration,
        detect: Duration,
        observe: Duration,
    ) -> Result<(), AnalyticsError> {
        for (name, value) in [
            ("baseline", baseline),
            ("detect", detect),
            ("observe", observe),
        ] {
            if value <= Duration::zero() {
                return Err(AnalyticsError::InvalidWindow { name, value });
            }
        }
        Ok(())
    }

    /// Extends the first-ever window to `history` before the detection
    /// window (never shorter than the baseline window).
    pub fn with_history(mut self, history: Duration) -> Result<Self, AnalyticsError> {
        let start = self.detect_start.checked_sub_signed(history).ok_or(
            AnalyticsError::WindowOutOfRange {
                name: "history",
                now: self.now,
            },
        )?;
        self.history_start = start.min(self.baseline_start);
        Ok(self)
    }

    pub fn in_detect(&self, t: DateTime<Utc>) -> bool {
        self.detect_start <= t && t <= self.now
    }

    pub fn in_baseline(&self, t: DateTime<Utc>) -> bool {
        self.baseline_start <= t && t < self.detect_start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_touch_without_overlap() {
        let now = DateTime::parse_from_rfc3339("2024-03-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let w = Windows::new(
            now,
            Duration::days(28),
            Duration::days(1),
            Duration::days(90),
        )
        .unwrap();
        assert_eq!(w.detect_start, now - Duration::days(1));
        assert_eq!(w.baseline_start, now - Duration::days(29));
        assert_eq!(w.observe_start, now - Duration::days(90));
        assert!(w.in_detect(now) && w.in_detect(w.detect_start));
        assert!(!w.in_baseline(w.detect_start) && w.in_baseline(w.baseline_start));
        assert!(!w.in_detect(now + Duration::microseconds(1)));
    }

    #[test]
    fn rejects_empty_or_negative_windows() {
        let now = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
        let err =
            Windows::new(now, Duration::zero(), Duration::days(1), Duration::days(1)).unwrap_err();
        assert!(matches!(
            err,
            AnalyticsError::InvalidWindow {
                name: "baseline",
                ..
            }
        ));
        assert!(Windows::new(
            now,
            Duration::days(1),
            Duration::days(-1),
            Duration::days(1)
        )
        .is_err());
    }
}

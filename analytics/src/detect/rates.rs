//! The rate detectors: `volume-spike`, `deny-spike` and `off-hours`, on
//! calls per identity and clock hour.
//!
//! An identity's baseline gives, for each of the 168 hours of the week, how
//! many calls it made in that hour on average. Weeks are few (a 28-day
//! baseline sees each hour of the week four times), so the estimate is
//! shrunk toward the same hour of the day on every day:
//!
//! ```text
//! expected(h) = (sum_h + A * mean_hour_of_day(h)) / (n_h + A),   A = 2
//! ```
//!
//! where `sum_h` is the calls in the `n_h` baseline hours that fall on hour
//! of the week `h`. How much hourly counts swing around their expectation
//! (the dispersion index, see [`crate::stats::dispersion`]) picks the model:
//! Poisson when it is about 1, else a negative binomial with that variance.
//! Each detection hour is one test, its p-value the probability of at least
//! the observed count; p-values are Bonferroni-corrected for every hour of
//! every identity tested in the run, and compared with `alpha`.
//!
//! - `volume-spike`: allowed calls at least `spike_ratio` times and
//!   `volume_min_excess` above expectation, in an hour of the week the
//!   identity is normally active (else it is `off-hours`): for the identity
//!   in one hour, or for one of its keys (half the excess) in one hour or
//!   over the whole detection window, the key's expectation being its own
//!   rate since its first use (keys used for less than `min_history` are
//!   not tested: a deploy's new route has no rate yet).
//! - `deny-spike`: the same on denied calls, with at least
//!   `deny_min_count` denies; the expected rate is never below
//!   `(baseline denies + 1) / baseline hours`.
//! - `off-hours`: calls in hours of the week where the baseline has none,
//!   and none in the hour before or after (wrapping around the week), with
//!   at least a week of baseline; tested against the identity's rate
//!   at that hour of the day on any day, so a tool that never runs at 3 am
//!   is flagged and one that is merely quiet on Sundays is not.
//!
//! One finding per identity and kind, about its most significant hour and
//! listing the others.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

use super::{build, mix, score, Common, DetectSettings, Draft, FindingKind, ScoreInputs};
use crate::explain;
use crate::stats::{bonferroni, dispersion, upper_tail};
use crate::store::{EvidenceQuery, HourCount, KeyHour, KeyStats, Slot, SubjectStats};
use crate::windows::Windows;

const HOURS_PER_WEEK: i64 = 168;
/// Weight of the hour-of-day mean in each hour-of-week estimate.
const SHRINK: f64 = 2.0;

/// Hours since the epoch of `t`, rounded down.
pub fn hour_index(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(3600)
}

/// Hour of the week, Monday 00:00 UTC = 0 (1970-01-01 was a Thursday).
pub fn hour_of_week(hour: i64) -> usize {
    let day = hour.div_euclid(24);
    let weekday = (day + 3).rem_euclid(7);
    (weekday * 24 + hour.rem_euclid(24)) as usize
}

fn hour_start(hour: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(hour.saturating_mul(3600), 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One identity's baseline, as rates by hour of week.
#[derive(Debug, Clone)]
pub struct Profile {
    /// Baseline hours observed per hour of week, and calls / denies in them.
    pub hours: [u32; 168],
    pub calls: [i64; 168],
    pub denies: [i64; 168],
    pub exposure: i64,
    pub total_calls: i64,
    pub total_denies: i64,
    pub dispersion: f64,
    pub deny_dispersion: f64,
}

impl Profile {
    /// Builds the profile from the hourly counts of baseline hours
    /// `first..end` (hours without calls are zeros).
    pub fn new(first: i64, end: i64, counts: &BTreeMap<i64, (i64, i64)>) -> Self {
        let mut p = Profile {
            hours: [0; 168],
            calls: [0; 168],
            denies: [0; 168],
            exposure: (end - first).max(0),
            total_calls: 0,
            total_denies: 0,
            dispersion: 1.0,
            deny_dispersion: 1.0,
        };
        for hour in first..end {
            let how = hour_of_week(hour);
            p.hours[how] += 1;
            let (c, d) = counts.get(&hour).copied().unwrap_or((0, 0));
            p.calls[how] += c;
            p.denies[how] += d;
            p.total_calls += c;
            p.total_denies += d;
        }
        p.dispersion = dispersion((first..end).map(|h| {
            let c = counts.get(&h).map_or(0, |c| c.0);
            (c as f64, p.expected(h))
        }));
        p.deny_dispersion = dispersion((first..end).map(|h| {
            let d = counts.get(&h).map_or(0, |c| c.1);
            (d as f64, p.expected_denies(h))
        }));
        p
    }

    fn day_mean(&self, how: usize, of: &[i64; 168]) -> Option<f64> {
        let hod = how % 24;
        let (mut n, mut sum) = (0u32, 0i64);
        for day in 0..7 {
            n += self.hours[day * 24 + hod];
            sum += of[day * 24 + hod];
        }
        (n > 0).then(|| sum as f64 / f64::from(n))
    }

    fn shrunk(&self, hour: i64, of: &[i64; 168]) -> f64 {
        let how = hour_of_week(hour);
        let prior = self.day_mean(how, of).unwrap_or(0.0);
        (of[how] as f64 + SHRINK * prior) / (f64::from(self.hours[how]) + SHRINK)
    }

    /// Expected calls in `hour`.
    pub fn expected(&self, hour: i64) -> f64 {
        self.shrunk(hour, &self.calls)
    }

    /// Expected denies in `hour`, never below the identity's overall deny
    /// rate with one extra deny.
    pub fn expected_denies(&self, hour: i64) -> f64 {
        let floor = (self.total_denies as f64 + 1.0) / (self.exposure.max(1) as f64);
        self.shrunk(hour, &self.denies).max(floor)
    }

    /// The share of baseline calls that were allowed (1 with no calls).
    pub fn allowed_share(&self) -> f64 {
        if self.total_calls > 0 {
            (self.total_calls - self.total_denies).max(0) as f64 / self.total_calls as f64
        } else {
            1.0
        }
    }

    /// No baseline calls in this hour of the week nor the ones either side
    /// (wrapping around the week), each seen at least once, and its hour
    /// of the day seen on at least seven days.
    pub fn quiet(&self, hour: i64) -> bool {
        let how = hour_of_week(hour) as i64;
        let hod = (how % 24) as usize;
        let days_seen: u32 = (0..7).map(|day| self.hours[day * 24 + hod]).sum();
        days_seen >= 7
            && [how - 1, how, how + 1].iter().all(|h| {
                let h = h.rem_euclid(HOURS_PER_WEEK) as usize;
                self.calls[h] == 0 && self.hours[h] >= 1
            })
    }

    /// Expected calls in a quiet `hour`: the rate at that hour of the day on
    /// any day, with half a call of prior so it is never zero.
    pub fn expected_off_hours(&self, hour: i64) -> f64 {
        let hod = hour_of_week(hour) % 24;
        let (mut n, mut sum) = (0u32, 0i64);
        for day in 0..7 {
            n += self.hours[day * 24 + hod];
            sum += self.calls[day * 24 + hod];
        }
        (sum as f64 + 0.5) / (f64::from(n) + 1.0)
    }
}

/// Baseline calls and denies per hour.
type BaselineHours = BTreeMap<i64, (i64, i64)>;
/// Detection-window calls, allowed and denied calls per hour.
type DetectHours = BTreeMap<i64, (i64, i64, i64)>;

/// One tested hour (or, for a key's whole-window test, the first hour of
/// the window).
#[derive(Debug, Clone)]
struct Tested {
    hour: i64,
    observed: i64,
    allowed: i64,
    denied: i64,
    expected: f64,
    p: f64,
    /// The reach key tested, for key-level volume tests, and the store
    /// resources behind it.
    key: Option<(KeyRef, Vec<String>)>,
    /// True for a test over the whole detection window.
    whole_window: bool,
}

/// A reach key: action, generalized resource, target.
type KeyRef = (String, String, Option<String>);

/// Allowed calls of one key per detection hour, and the store resources
/// that generalized into it (for the evidence lookup).
#[derive(Debug, Default)]
struct KeyUse {
    by_hour: BTreeMap<i64, i64>,
    resources: std::collections::BTreeSet<String>,
}

impl Tested {
    fn hourly(hour: i64, observed: i64, allowed: i64, denied: i64, expected: f64, p: f64) -> Self {
        Self {
            hour,
            observed,
            allowed,
            denied,
            expected,
            p,
            key: None,
            whole_window: false,
        }
    }
}

pub(crate) fn detect(
    settings: &DetectSettings,
    windows: &Windows,
    seasoned: &[&SubjectStats],
    hourly: &[HourCount],
    keys: &[KeyStats],
    key_hourly: &[KeyHour],
) -> Vec<Draft> {
    // Allowed baseline calls per key, and detection-window allowed calls
    // per key and hour, by subject.
    let mut baseline_keys: HashMap<&str, HashMap<KeyRef, (i64, i64)>> = HashMap::new();
    // Keys are generalized as the novelty detectors' are (dates, tokens,
    // object-store keys, configured rules), so a key whose path carries a
    // date is one key with a rate, not one new key a day.
    let general = |resource: &str| settings.generalizer.resource(resource);
    for k in keys.iter().filter(|k| k.slot == Slot::Baseline) {
        let entry = baseline_keys
            .entry(&k.subject)
            .or_default()
            .entry((
                k.action.clone(),
                general(&k.resource_pattern),
                k.target.clone(),
            ))
            .or_insert((0, i64::MAX));
        entry.0 += k.allow_count;
        entry.1 = entry
            .1
            .min(hour_index(k.first_seen.max(windows.baseline_start)));
    }
    let mut key_hours: HashMap<&str, BTreeMap<KeyRef, KeyUse>> = HashMap::new();
    for k in key_hourly {
        let entry = key_hours
            .entry(&k.subject)
            .or_default()
            .entry((
                k.action.clone(),
                general(&k.resource_pattern),
                k.target.clone(),
            ))
            .or_default();
        *entry.by_hour.entry(k.hour).or_default() += k.allow_count;
        entry.resources.insert(k.resource_pattern.clone());
    }
    let mut by_subject: HashMap<&str, (BaselineHours, DetectHours)> = HashMap::new();
    for h in hourly {
        let entry = by_subject.entry(&h.subject).or_default();
        match h.slot {
            Slot::Detect => {
                let e = entry.1.entry(h.hour).or_default();
                e.0 += h.count;
                e.1 += h.allow_count;
                e.2 += h.deny_count;
            }
            _ => {
                let e = entry.0.entry(h.hour).or_default();
                e.0 += h.count;
                e.1 += h.deny_count;
            }
        }
    }
    let detect_first = hour_index(windows.detect_start);
    let detect_end = hour_index(windows.now) + 1;
    let baseline_end = detect_first;
    // Every (identity, hour) pair tested, for the correction.
    let mut tests = 0usize;
    let mut candidates: Vec<(FindingKind, &SubjectStats, Profile, Vec<Tested>)> = Vec::new();
    let empty = (BTreeMap::new(), BTreeMap::new());
    for s in seasoned {
        let (base, det) = by_subject.get(s.subject.as_str()).unwrap_or(&empty);
        let first = hour_index(windows.baseline_start.max(s.first_seen));
        if first >= baseline_end {
            continue;
        }
        let profile = Profile::new(first, baseline_end, base);
        tests += usize::try_from(detect_end - detect_first).unwrap_or(0);
        let mut volume = Vec::new();
        let mut denies = Vec::new();
        let mut off = Vec::new();
        let history = Duration::hours(profile.exposure);
        for (&hour, &(observed, allowed, denied)) in det {
            let quiet = profile.quiet(hour);
            if quiet {
                if history >= settings.off_hours_min_history
                    && observed >= settings.off_hours_min_count
                {
                    let expected = profile.expected_off_hours(hour);
                    let p = upper_tail(observed as u64, expected, 1.0);
                    off.push(Tested::hourly(hour, observed, allowed, denied, expected, p));
                }
            } else {
                let expected = profile.expected(hour) * profile.allowed_share();
                if allowed as f64 >= settings.spike_ratio * expected
                    && (allowed as f64 - expected) >= settings.volume_min_excess as f64
                {
                    let p = upper_tail(allowed as u64, expected, profile.dispersion);
                    volume.push(Tested::hourly(hour, allowed, allowed, denied, expected, p));
                }
            }
            let expected = profile.expected_denies(hour);
            if denied >= settings.deny_min_count && denied as f64 >= settings.spike_ratio * expected
            {
                let p = upper_tail(denied as u64, expected, profile.deny_dispersion);
                denies.push(Tested::hourly(hour, denied, allowed, denied, expected, p));
            }
        }
        tests += key_volume(
            settings,
            &profile,
            (detect_first, detect_end),
            key_hours.get(s.subject.as_str()),
            baseline_keys.get(s.subject.as_str()),
            &mut volume,
        );
        for (kind, hours) in [
            (FindingKind::VolumeSpike, volume),
            (FindingKind::DenySpike, denies),
            (FindingKind::OffHours, off),
        ] {
            if !hours.is_empty() {
                candidates.push((kind, s, profile.clone(), hours));
            }
        }
    }
    let mut drafts = Vec::new();
    for (kind, s, profile, hours) in candidates {
        let significant: Vec<Tested> = hours
            .into_iter()
            .filter(|t| bonferroni(t.p, tests) < settings.alpha)
            .collect();
        if let Some(draft) = finding(kind, windows, s, &profile, &significant, tests) {
            drafts.push(draft);
        }
    }
    drafts
}

/// Key-level volume tests: each key the identity has used for at least
/// `min_history` of its baseline is expected to keep its own rate (calls
/// since its first use), shaped by the identity's hour-of-week profile,
/// hour by hour and over the whole window; a key used far above that is a
/// spike even when the identity's total barely moves (one endpoint
/// scraped while the rest is quiet). The excess needed is half the
/// identity-level one. Keys younger than that (a deploy's new route) have
/// no stable rate yet and are not tested. Returns the number of tests made.
fn key_volume(
    settings: &DetectSettings,
    profile: &Profile,
    (detect_first, detect_end): (i64, i64),
    hours: Option<&BTreeMap<KeyRef, KeyUse>>,
    baseline: Option<&HashMap<KeyRef, (i64, i64)>>,
    out: &mut Vec<Tested>,
) -> usize {
    let (Some(hours), Some(baseline)) = (hours, baseline) else {
        return 0;
    };
    if profile.total_calls == 0 || profile.exposure == 0 {
        return 0;
    }
    let mean_rate = profile.total_calls as f64 / profile.exposure as f64;
    let min_hours = settings.min_history.num_hours().max(1);
    let min_excess = settings.volume_min_excess as f64 / 2.0;
    let mut tests = 0;
    let mut test = |observed: i64,
                    expected: f64,
                    dispersion: f64,
                    hour: i64,
                    key: (&KeyRef, &KeyUse),
                    whole_window: bool| {
        tests += 1;
        if observed as f64 >= settings.spike_ratio * expected
            && observed as f64 - expected >= min_excess
        {
            out.push(Tested {
                hour,
                observed,
                allowed: observed,
                denied: 0,
                expected,
                p: upper_tail(observed as u64, expected, dispersion),
                key: Some((key.0.clone(), key.1.resources.iter().cloned().collect())),
                whole_window,
            });
        }
    };
    for (key, key_use) in hours {
        let by_hour = &key_use.by_hour;
        let Some(&(base, first_hour)) = baseline.get(key).filter(|b| b.0 > 0) else {
            continue;
        };
        let key_hours = detect_first - first_hour;
        if key_hours < min_hours {
            continue;
        }
        // The key's own hourly rate, shaped by the identity's rhythm.
        let share = base as f64 / key_hours as f64 / mean_rate;
        // A key's calls are a thinned share of the identity's: with
        // identity variance `dispersion * m`, the key's is
        // `s*m * (1 + s*(dispersion - 1))` for share `s`.
        let dispersion = 1.0 + share.clamp(0.0, 1.0) * (profile.dispersion - 1.0).max(0.0);
        for (&hour, &observed) in by_hour {
            let expected = profile.expected(hour) * share;
            test(observed, expected, dispersion, hour, (key, key_use), false);
        }
        let observed: i64 = by_hour.values().sum();
        let expected: f64 = (detect_first..detect_end)
            .map(|h| profile.expected(h) * share)
            .sum();
        test(
            observed,
            expected,
            dispersion,
            detect_first,
            (key, key_use),
            true,
        );
    }
    tests
}

/// `3.1e-7`, or `< 1e-300` where the probability underflows.
fn p_text(p: f64) -> String {
    if p > 0.0 {
        format!("{p:.1e}")
    } else {
        "< 1e-300".to_owned()
    }
}

fn finding(
    kind: FindingKind,
    windows: &Windows,
    s: &SubjectStats,
    profile: &Profile,
    hours: &[Tested],
    tests: usize,
) -> Option<Draft> {
    let worst = hours
        .iter()
        .min_by(|a, b| a.p.total_cmp(&b.p).then(a.hour.cmp(&b.hour)))?;
    // Hourly tests of the identity's total, without overlapping key tests,
    // give the span; the most significant test gives the numbers.
    let hourly: Vec<&Tested> = hours.iter().filter(|t| !t.whole_window).collect();
    let first = hourly.iter().map(|t| t.hour).min().unwrap_or(worst.hour);
    let last = hourly.iter().map(|t| t.hour).max().unwrap_or(worst.hour);
    let (observed, expected) = (worst.observed, worst.expected);
    let (allow_count, deny_count) = (worst.allowed, worst.denied);
    let ratio = if expected > 0.0 {
        observed as f64 / expected
    } else {
        f64::INFINITY
    };
    let score = score(
        kind,
        ScoreInputs {
            allow_count: if kind == FindingKind::DenySpike {
                0
            } else {
                allow_count
            },
            deny_count,
            ratio,
            ..ScoreInputs::default()
        },
    );
    let (first_seen, last_seen) = if worst.whole_window {
        (windows.detect_start, windows.now)
    } else {
        (
            hour_start(first).max(windows.detect_start),
            (hour_start(last + 1) - Duration::microseconds(1)).min(windows.now),
        )
    };
    let weeks = profile.exposure as f64 / HOURS_PER_WEEK as f64;
    let model = if (if kind == FindingKind::DenySpike {
        profile.deny_dispersion
    } else {
        profile.dispersion
    }) > 1.0 + 1e-9
    {
        "negative binomial"
    } else {
        "Poisson"
    };
    let p_adjusted = bonferroni(worst.p, tests);
    let hour_text = |t: &Tested| {
        if t.whole_window {
            return format!(
                "the detection window ({})",
                explain::range(windows.detect_start, windows.now)
            );
        }
        let start = hour_start(t.hour);
        format!(
            "{} {}:00–{}:00 UTC",
            start.format("%a %Y-%m-%d"),
            start.format("%H"),
            (start + Duration::hours(1)).format("%H")
        )
    };
    let others = if hours.len() > 1 {
        format!(" {} more tests stand out.", hours.len() - 1)
    } else {
        String::new()
    };
    let on_key = worst
        .key
        .as_ref()
        .map(|((action, resource, target), _)| {
            let at = target
                .as_deref()
                .map(|t| format!(" at `{t}`"))
                .unwrap_or_default();
            format!(" `{action} {resource}`{at}")
        })
        .unwrap_or_default();
    let (what, baseline) = match kind {
        FindingKind::VolumeSpike => (
            format!("made {} allowed calls{on_key}", worst.observed),
            if worst.key.is_some() {
                format!(
                    "{:.1} expected from that call's share of its baseline rate",
                    worst.expected
                )
            } else {
                format!(
                    "{:.1} expected from its baseline rate for that hour of the week",
                    worst.expected
                )
            },
        ),
        FindingKind::DenySpike => (
            format!("was denied {} times", worst.observed),
            format!(
                "{:.2} denies expected ({} denies in its whole baseline)",
                worst.expected, profile.total_denies
            ),
        ),
        _ => (
            format!("made {} calls", worst.observed),
            format!(
                "none in that hour of the week or either side of it in its baseline, \
                 {:.2} expected from that hour of the day",
                worst.expected
            ),
        ),
    };
    let explanation = format!(
        "{subject} {what} in {hour} ({mix}); {baseline}, over {weeks:.1} weeks of baseline \
         ({range}). p-value ({model}) {p}, {p_adj} after correcting for {tests} tests.{others}",
        subject = s.subject,
        hour = hour_text(worst),
        mix = mix(worst.allowed, worst.denied),
        range = explain::range(
            windows.baseline_start.max(s.first_seen),
            windows.detect_start
        ),
        p = p_text(worst.p),
        p_adj = p_text(p_adjusted),
    );
    let evidence = json!({
        "baseline_start": explain::time(windows.baseline_start.max(s.first_seen)),
        "baseline_end": explain::time(windows.detect_start),
        "baseline_hours": profile.exposure,
        "baseline_calls": profile.total_calls,
        "baseline_denies": profile.total_denies,
        "dispersion": if kind == FindingKind::DenySpike { profile.deny_dispersion } else { profile.dispersion },
        "model": model,
        "tests": tests,
        "observed": observed,
        "expected": expected,
        "p_value": worst.p,
        "p_adjusted": p_adjusted,
        "key": worst.key.as_ref().map(|((a, r, t), raw)| json!({"action": a, "resource": r, "target": t, "resources": raw})),
        "tests_standing_out": hours.iter().map(|t| json!({
            "hour": explain::time(hour_start(t.hour)),
            "whole_window": t.whole_window,
            "key": t.key.as_ref().map(|((a, r, _), _)| format!("{a} {r}")),
            "observed": t.observed,
            "expected": t.expected,
            "p_value": t.p,
        })).collect::<Vec<_>>(),
    });
    let worst_hour = explain::time(hour_start(worst.hour));
    let worst_key = worst
        .key
        .as_ref()
        .map(|((a, r, t), _)| format!("{a} {r} {}", t.as_deref().unwrap_or("")));
    Some(build(
        Common {
            kind,
            subject: &s.subject,
            id_parts: vec![Some(&worst_hour), worst_key.as_deref()],
            action: None,
            resource_pattern: None,
            target: None,
            first_seen,
            last_seen,
            count: observed,
            allow_count,
            deny_count,
        },
        score,
        explanation,
        evidence,
        EvidenceQuery {
            subject: s.subject.clone(),
            start: Some(first_seen),
            until: Some(if worst.whole_window {
                windows.now
            } else {
                (hour_start(worst.hour + 1) - Duration::microseconds(1)).min(windows.now)
            }),
            action: worst.key.as_ref().map(|(k, _)| k.0.clone()),
            resources: worst
                .key
                .as_ref()
                .map(|(_, raw)| raw.clone())
                .unwrap_or_default(),
            target: worst.key.as_ref().map(|(k, _)| k.2.clone()),
            decision: match kind {
                FindingKind::DenySpike => Some("deny"),
                FindingKind::VolumeSpike => Some("allow"),
                _ => None,
            },
            ..EvidenceQuery::default()
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hour_of_week_starts_monday_and_wraps() {
        // 1970-01-01 00:00 was a Thursday: 3 days into the week.
        assert_eq!(hour_of_week(0), 72);
        // 1970-01-05 00:00 was a Monday.
        assert_eq!(hour_of_week(4 * 24), 0);
        assert_eq!(hour_of_week(4 * 24 - 1), 167);
        assert_eq!(hour_of_week(-1), 71);
    }
}

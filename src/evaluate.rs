//! `overreach evaluate`: how well the detectors find labelled incidents.
//!
//! Runs the analysis once per day (the detection window is that day, the
//! baseline the weeks before it) over stored events whose incidents are
//! labelled (`overreach simulate` writes `labels.jsonl`), and compares the
//! findings with the labels:
//!
//! - a finding is a true positive when some incident of the same subject
//!   overlaps it in time (one hour of slack either side), whatever the
//!   incident's kind: a lateral movement that also shows as new reach is
//!   still the incident;
//! - an incident is detected when a finding of its own kind matches it on
//!   any evaluated day ("by any kind" is reported too);
//! - precision per finding kind, recall per incident kind, and findings
//!   per identity per day on clean days (days with no incident at all).
//!
//! Findings that match a benign change (a labelled deploy) are false
//! positives and are counted separately, so the cost of legitimate change
//! is visible.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use overreach_analytics::AnalyzeSettings;
use overreach_model::results::{Finding, FINDING_KINDS};
use overreach_sim::Label;
use serde::Serialize;

/// A label with parsed times.
#[derive(Debug, Clone)]
pub struct Incident {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub benign: bool,
}

/// Reads `labels.jsonl`, naming the line of a bad label.
pub fn read_labels(path: &Path) -> Result<Vec<Incident>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let at = || format!("{}:{}", path.display(), i + 1);
        let line = line.with_context(at)?;
        if line.trim().is_empty() {
            continue;
        }
        let label: Label = serde_json::from_str(&line).with_context(at)?;
        let time = |s: &str| -> Result<DateTime<Utc>> {
            Ok(DateTime::parse_from_rfc3339(s)
                .with_context(at)?
                .with_timezone(&Utc))
        };
        out.push(Incident {
            start: time(&label.start)?,
            end: time(&label.end)?,
            id: label.id,
            kind: label.kind,
            subject: label.subject,
            benign: label.benign,
        });
    }
    Ok(out)
}

/// The findings of one evaluated day.
#[derive(Debug, Clone)]
pub struct DayFindings {
    pub day: NaiveDate,
    pub identities: i64,
    pub findings: Vec<Finding>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KindScore {
    pub findings: u64,
    pub true_positives: u64,
    pub on_benign_changes: u64,
    pub precision: Option<f64>,
    pub incidents: u64,
    pub detected: u64,
    pub detected_by_any_kind: u64,
    pub recall: Option<f64>,
    /// Findings of this kind per identity per evaluated day.
    pub per_identity_day: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Report {
    pub days: Vec<NaiveDate>,
    pub clean_days: Vec<NaiveDate>,
    pub by_kind: BTreeMap<String, KindScore>,
    pub findings: u64,
    pub true_positives: u64,
    pub precision: Option<f64>,
    pub incidents: u64,
    pub detected: u64,
    pub recall: Option<f64>,
    /// Findings per identity per day, over clean days.
    pub clean_findings_per_identity_day: Option<f64>,
    /// Findings per identity per day, over every evaluated day.
    pub findings_per_identity_day: Option<f64>,
    /// Incidents no finding of their kind matched.
    pub missed: Vec<String>,
}

const SLACK_HOURS: i64 = 1;

fn matches(f: &Finding, i: &Incident) -> bool {
    let slack = Duration::hours(SLACK_HOURS);
    f.subject == i.subject && f.first_seen <= i.end + slack && i.start - slack <= f.last_seen
}

fn ratio(num: u64, den: u64) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

/// Scores the findings of each day against the labels.
pub fn score(days: &[DayFindings], labels: &[Incident]) -> Report {
    let incidents: Vec<&Incident> = labels.iter().filter(|l| !l.benign).collect();
    let benign: Vec<&Incident> = labels.iter().filter(|l| l.benign).collect();
    let mut report = Report::default();
    for kind in FINDING_KINDS {
        report.by_kind.insert(kind.to_owned(), KindScore::default());
    }
    let mut detected: BTreeSet<&str> = BTreeSet::new();
    let mut detected_any: BTreeSet<&str> = BTreeSet::new();
    let (mut clean_findings, mut clean_identity_days) = (0u64, 0i64);
    let (mut all_findings, mut identity_days) = (0u64, 0i64);
    for day in days {
        report.days.push(day.day);
        let start = day.day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let clean = start.is_some_and(|s| {
            let end = s + Duration::days(1);
            !incidents.iter().any(|i| i.start < end && s <= i.end)
        });
        identity_days += day.identities;
        all_findings += day.findings.len() as u64;
        if clean {
            report.clean_days.push(day.day);
            clean_findings += day.findings.len() as u64;
            clean_identity_days += day.identities;
        }
        for f in &day.findings {
            let score = report.by_kind.entry(f.kind.clone()).or_default();
            score.findings += 1;
            let hits: Vec<&&Incident> = incidents.iter().filter(|i| matches(f, i)).collect();
            if hits.is_empty() {
                if benign.iter().any(|b| matches(f, b)) {
                    score.on_benign_changes += 1;
                }
            } else {
                score.true_positives += 1;
                for i in hits {
                    detected_any.insert(&i.id);
                    if i.kind == f.kind {
                        detected.insert(&i.id);
                    }
                }
            }
        }
    }
    for i in &incidents {
        let score = report.by_kind.entry(i.kind.clone()).or_default();
        score.incidents += 1;
        if detected.contains(i.id.as_str()) {
            score.detected += 1;
        } else {
            report.missed.push(format!(
                "{} {} {} ({})",
                i.id,
                i.kind,
                i.subject,
                i.start.format("%Y-%m-%dT%H:%MZ")
            ));
        }
        if detected_any.contains(i.id.as_str()) {
            score.detected_by_any_kind += 1;
        }
    }
    for score in report.by_kind.values_mut() {
        score.per_identity_day =
            (identity_days > 0).then(|| score.findings as f64 / identity_days as f64);
        score.precision = ratio(score.true_positives, score.findings);
        score.recall = ratio(score.detected, score.incidents);
        report.findings += score.findings;
        report.true_positives += score.true_positives;
        report.incidents += score.incidents;
        report.detected += score.detected;
    }
    report.precision = ratio(report.true_positives, report.findings);
    report.recall = ratio(report.detected, report.incidents);
    report.clean_findings_per_identity_day =
        (clean_identity_days > 0).then(|| clean_findings as f64 / clean_identity_days as f64);
    report.findings_per_identity_day =
        (identity_days > 0).then(|| all_findings as f64 / identity_days as f64);
    report
}

/// Runs the analysis for each day from `first` to `last` (inclusive), the
/// detection window being that day (ending at the latest event on the
/// last day), and returns each day's findings.
pub async fn analyze_days(
    base: &AnalyzeSettings,
    first: NaiveDate,
    last: NaiveDate,
    mut progress: impl FnMut(&DayFindings),
) -> Result<Vec<DayFindings>> {
    let mut out = Vec::new();
    let mut day = first;
    while day <= last {
        let mut settings = base.clone();
        let end = (day + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .context("day out of range")?
            .and_utc()
            - Duration::microseconds(1);
        settings.now = Some(end);
        settings.detect = Duration::days(1);
        settings.follow_up = false;
        let results = overreach_analytics::analyze(&settings)
            .await
            .with_context(|| format!("analysing {day}"))?;
        // Identities active in that day's detection window.
        let identities = results
            .identities
            .iter()
            .filter(|i| i.first_seen <= end && i.last_seen >= end - Duration::days(1))
            .count() as i64;
        let found = DayFindings {
            day,
            identities,
            findings: results.findings,
        };
        progress(&found);
        out.push(found);
        day += Duration::days(1);
    }
    Ok(out)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("–".to_owned(), |x| format!("{x:.3}"))
}

/// The report as a table a person reads.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<22} {:>8} {:>6} {:>7} {:>9}  {:>9} {:>8} {:>6} {:>7} {:>12}\n",
        "kind",
        "findings",
        "TP",
        "benign",
        "precision",
        "incidents",
        "detected",
        "any",
        "recall",
        "per id-day"
    ));
    for (kind, s) in &report.by_kind {
        out.push_str(&format!(
            "{:<22} {:>8} {:>6} {:>7} {:>9}  {:>9} {:>8} {:>6} {:>7} {:>12}\n",
            kind,
            s.findings,
            s.true_positives,
            s.on_benign_changes,
            pct(s.precision),
            s.incidents,
            s.detected,
            s.detected_by_any_kind,
            pct(s.recall),
            s.per_identity_day
                .map_or("–".to_owned(), |x| format!("{x:.5}"))
        ));
    }
    out.push_str(&format!(
        "{:<22} {:>8} {:>6} {:>7} {:>9}  {:>9} {:>8} {:>6} {:>7} {:>12}\n",
        "all",
        report.findings,
        report.true_positives,
        report
            .by_kind
            .values()
            .map(|s| s.on_benign_changes)
            .sum::<u64>(),
        pct(report.precision),
        report.incidents,
        report.detected,
        report
            .by_kind
            .values()
            .map(|s| s.detected_by_any_kind)
            .sum::<u64>(),
        pct(report.recall),
        report
            .findings_per_identity_day
            .map_or("–".to_owned(), |x| format!("{x:.5}"))
    ));
    out.push_str(&format!(
        "days evaluated: {} ({} clean); findings per identity per day: {} on clean days, {} overall\n",
        report.days.len(),
        report.clean_days.len(),
        report.clean_findings_per_identity_day.map_or("–".to_owned(), |x| format!("{x:.4}")),
        report.findings_per_identity_day.map_or("–".to_owned(), |x| format!("{x:.4}")),
    ));
    for m in &report.missed {
        out.push_str(&format!("missed: {m}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn finding(kind: &str, subject: &str, first: &str, last: &str) -> Finding {
        Finding {
            id: format!("{kind}{subject}{first}"),
            kind: kind.into(),
            subject: subject.into(),
            action: None,
            resource_pattern: None,
            target: None,
            first_seen: t(first),
            last_seen: t(last),
            count: 1,
            allow_count: 1,
            deny_count: 0,
            severity: "medium".into(),
            score: 50,
            explanation: String::new(),
            evidence: "{}".into(),
            sample_event_ids: vec![],
            controls: vec![],
        }
    }

    fn incident(
        id: &str,
        kind: &str,
        subject: &str,
        start: &str,
        end: &str,
        benign: bool,
    ) -> Incident {
        Incident {
            id: id.into(),
            kind: kind.into(),
            subject: subject.into(),
            start: t(start),
            end: t(end),
            benign,
        }
    }

    #[test]
    fn scores_precision_recall_and_the_clean_rate() {
        let labels = [
            incident(
                "i1",
                "deny-spike",
                "a",
                "2026-10-20T10:00:00Z",
                "2026-10-20T10:30:00Z",
                false,
            ),
            incident(
                "i2",
                "new-target",
                "b",
                "2026-10-20T12:00:00Z",
                "2026-10-20T12:05:00Z",
                false,
            ),
            incident(
                "d1",
                "deploy",
                "c",
                "2026-10-19T09:00:00Z",
                "2026-10-19T23:00:00Z",
                true,
            ),
        ];
        let days = [
            DayFindings {
                day: "2026-10-19".parse().unwrap(),
                identities: 10,
                findings: vec![finding(
                    "new-reach",
                    "c",
                    "2026-10-19T09:10:00Z",
                    "2026-10-19T09:20:00Z",
                )],
            },
            DayFindings {
                day: "2026-10-20".parse().unwrap(),
                identities: 10,
                findings: vec![
                    finding(
                        "deny-spike",
                        "a",
                        "2026-10-20T10:00:00Z",
                        "2026-10-20T10:59:59Z",
                    ),
                    // The right subject at the right time, another kind:
                    // a true positive that does not detect i2 by kind.
                    finding(
                        "new-reach",
                        "b",
                        "2026-10-20T12:01:00Z",
                        "2026-10-20T12:01:00Z",
                    ),
                    // The right subject, hours away.
                    finding(
                        "off-hours",
                        "a",
                        "2026-10-20T20:00:00Z",
                        "2026-10-20T20:10:00Z",
                    ),
                ],
            },
        ];
        let r = score(&days, &labels);
        assert_eq!((r.findings, r.true_positives), (4, 2));
        assert_eq!(r.precision, Some(0.5));
        assert_eq!((r.incidents, r.detected), (2, 1));
        assert_eq!(r.recall, Some(0.5));
        assert_eq!(r.by_kind["new-reach"].on_benign_changes, 1);
        assert_eq!(r.by_kind["new-target"].detected_by_any_kind, 1);
        assert_eq!(r.by_kind["new-target"].detected, 0);
        assert_eq!(r.clean_days, ["2026-10-19".parse::<NaiveDate>().unwrap()]);
        assert_eq!(r.clean_findings_per_identity_day, Some(0.1));
        assert_eq!(r.missed.len(), 1);
        assert_eq!(r.by_kind["new-reach"].per_identity_day, Some(0.1));
        assert_eq!(r.findings_per_identity_day, Some(0.2));
        assert!(render(&r).contains("precision"));
    }
}

//! The weekly right-sizing report: right-sizing at the end of an ISO week
//! and a week earlier, compared. The previous week is the report stored
//! for it (`DIR/reports/weekly/`), which reflects the inventory as it was
//! then; when there is none it is recomputed from today's inventory.
//!
//! Computes a [`WeeklyReport`]; the api crate renders it.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{Duration, Utc};
use overreach_model::duration::format_duration;
use overreach_model::report::{
    ClosedSuggestion, IdentityRightsizing, IsoWeek, RankedSuggestion, WeeklyChanges, WeeklyReport,
    WeeklyTotals, STATUS_HISTORY_SHORT,
};
use overreach_model::results::Suggestion;
use overreach_model::table::write_text_atomic;
use tracing::{info, warn};

use crate::error::{AnalyticsError, Result};
use crate::rightsizing::creep_score;
use crate::store::EventStore;
use crate::{as_i64, rightsize_at, AnalyzeSettings, Inventory, Rightsized, Windows};

/// At most this many identities in the "most unused sensitive grants" list.
pub const TOP_IDENTITIES: usize = 10;

/// How much removing a suggestion's grants matters, by risk, for ranking.
fn risk_weight(risk: &str) -> f64 {
    match risk {
        "high" => 1.0,
        "medium" => 0.6,
        _ => 0.3,
    }
}

/// Review order: risk weight × confidence, as 0-100.
pub fn priority(s: &Suggestion) -> i64 {
    (risk_weight(&s.risk) * s.confidence * 100.0).round() as i64
}

/// The report of `week`, or of the week of the latest stored event.
/// `settings.now` is ignored: the week says when.
pub async fn weekly_report(
    settings: &AnalyzeSettings,
    week: Option<IsoWeek>,
) -> Result<WeeklyReport> {
    let inventory = Inventory::load_all(&settings.grants)?;
    Windows::check_lengths(settings.baseline, settings.detect, settings.observe)?;
    let store = EventStore::open(&settings.data).await?;
    let subjects = store.subjects().await?;
    let (Some(first), Some(latest)) = (
        subjects.iter().map(|s| s.first_seen).min(),
        subjects.iter().map(|s| s.last_seen).max(),
    ) else {
        return Err(AnalyticsError::NoEvents {
            dir: settings.data.events(),
        });
    };
    let week = week.unwrap_or_else(|| IsoWeek::containing(latest));
    if week.end() <= first || week.start() > latest {
        return Err(AnalyticsError::WeekOutsideEvents {
            week: week.to_string(),
            first,
            latest,
        });
    }
    // The end of the week, or the latest event if the week is not over.
    let end = (week.end() - Duration::microseconds(1)).min(latest);
    inventory.check_trust_domain(&settings.trust_domain, &subjects);
    let at = |now| rightsize_at(settings, &store, &inventory, &subjects, now);
    info!(%week, now = %end, "right-sizing the week");
    let this = at(end).await?;
    let previous_week = week.previous();
    let stored = load_stored(settings, previous_week);
    let previous = match &stored {
        Some(report) => Previous::Stored(report),
        None => {
            info!(week = %previous_week, "no stored report of the previous week: recomputing it");
            Previous::Computed(at(end - Duration::weeks(1)).await?)
        }
    };
    Ok(compare(settings, week, &this, &previous))
}

/// Stores a report as `DIR/reports/weekly/YYYY-Www.json` (atomically),
/// where `overreach serve` and the next week's report find it.
pub fn store_weekly_report(
    data: &overreach_model::DataDir,
    report: &WeeklyReport,
) -> Result<std::path::PathBuf> {
    let json = serde_json::to_string_pretty(report).map_err(AnalyticsError::RunInfo)?;
    let path = data.weekly_report(&report.week);
    write_text_atomic(&path, &data.tmp(), &format!("{json}\n"))?;
    info!(path = %path.display(), "stored the weekly report");
    Ok(path)
}

fn load_stored(settings: &AnalyzeSettings, week: IsoWeek) -> Option<WeeklyReport> {
    let path = settings.data.weekly_report(&week.to_string());
    let text = std::fs::read_to_string(&path).ok()?;
    match serde_json::from_str(&text) {
        Ok(report) => Some(report),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the stored report; recomputing the previous week");
            None
        }
    }
}

enum Previous<'a> {
    Stored(&'a WeeklyReport),
    Computed(Rightsized),
}

impl Previous<'_> {
    fn identities(&self) -> Vec<&IdentityRightsizing> {
        match self {
            Previous::Stored(r) => r.identities.iter().collect(),
            Previous::Computed(r) => r.identities.iter().collect(),
        }
    }

    fn suggestions(&self) -> Vec<&Suggestion> {
        match self {
            Previous::Stored(r) => r.suggestions.iter().map(|s| &s.suggestion).collect(),
            Previous::Computed(r) => r.suggestions.iter().collect(),
        }
    }
}

/// Estate-wide sums. Identities whose history is short count no unused
/// grants, and none of their grants is judged.
fn totals(identities: &[IdentityRightsizing], suggestions: &[Suggestion]) -> WeeklyTotals {
    let sum = |f: fn(&IdentityRightsizing) -> i64| identities.iter().map(f).sum::<i64>();
    let judged: Vec<&IdentityRightsizing> = identities
        .iter()
        .filter(|i| i.status != STATUS_HISTORY_SHORT)
        .collect();
    let judged_grants = judged.iter().map(|i| i.granted - i.in_grace).sum();
    let unused = sum(|i| i.unused);
    let mut by_risk: BTreeMap<String, i64> = BTreeMap::new();
    for s in suggestions {
        *by_risk.entry(s.risk.clone()).or_insert(0) += 1;
    }
    WeeklyTotals {
        identities: as_i64(identities.len()),
        judged: as_i64(judged.len()),
        granted: sum(|i| i.granted),
        used: sum(|i| i.used),
        unused,
        unused_sensitive: sum(|i| i.unused_sensitive),
        in_grace: sum(|i| i.in_grace),
        creep_score: creep_score(unused, judged_grants),
        suggestions: as_i64(suggestions.len()),
        by_risk,
    }
}

fn compare(
    settings: &AnalyzeSettings,
    week: IsoWeek,
    this: &Rightsized,
    previous: &Previous<'_>,
) -> WeeklyReport {
    let key = |i: &IdentityRightsizing| (i.subject.clone(), i.engine.clone());
    let before: HashMap<(String, String), &IdentityRightsizing> = previous
        .identities()
        .into_iter()
        .map(|i| (key(i), i))
        .collect();
    let mut identities: Vec<IdentityRightsizing> = this
        .identities
        .iter()
        .map(|i| IdentityRightsizing {
            creep_score_previous: before.get(&key(i)).and_then(|p| p.creep_score),
            ..i.clone()
        })
        .collect();
    identities.sort_by(|a, b| {
        b.creep_score
            .cmp(&a.creep_score)
            .then_with(|| b.unused_sensitive.cmp(&a.unused_sensitive))
            .then_with(|| a.subject.cmp(&b.subject))
    });

    let previous_suggestions = previous.suggestions();
    let previous_ids: HashSet<&str> = previous_suggestions.iter().map(|s| s.id.as_str()).collect();
    let mut ranked: Vec<RankedSuggestion> = this
        .suggestions
        .iter()
        .map(|s| RankedSuggestion {
            rank: 0,
            priority: priority(s),
            new: !previous_ids.contains(s.id.as_str()),
            suggestion: s.clone(),
        })
        .collect();
    ranked.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.suggestion.subject.cmp(&b.suggestion.subject))
            .then_with(|| a.suggestion.id.cmp(&b.suggestion.id))
    });
    for (i, s) in ranked.iter_mut().enumerate() {
        s.rank = as_i64(i + 1);
    }

    let current_ids: HashSet<&str> = this.suggestions.iter().map(|s| s.id.as_str()).collect();
    let granted: HashSet<(&str, &str)> = this
        .granted
        .iter()
        .map(|(s, g)| (s.as_str(), g.as_str()))
        .collect();
    let used: HashSet<(&str, &str)> = this
        .used
        .iter()
        .map(|(s, g)| (s.as_str(), g.as_str()))
        .collect();
    let closed: Vec<ClosedSuggestion> = previous_suggestions
        .iter()
        .filter(|s| !current_ids.contains(s.id.as_str()))
        .map(|s| {
            let grant = s.grant.as_deref().unwrap_or_default();
            let pair = (s.subject.as_str(), grant);
            let reason = if s.grant.is_some() && used.contains(&pair) {
                "used"
            } else if s.grant.is_some() && !granted.contains(&pair) {
                "grant-removed"
            } else {
                "superseded"
            };
            ClosedSuggestion {
                id: s.id.clone(),
                kind: s.kind.clone(),
                subject: s.subject.clone(),
                grant: s.grant.clone(),
                reason: reason.to_owned(),
            }
        })
        .collect();
    let judged_before: HashSet<(String, String)> = before
        .iter()
        .filter(|(_, i)| i.status != STATUS_HISTORY_SHORT)
        .map(|(k, _)| k.clone())
        .collect();
    let newly_judged: Vec<String> = this
        .identities
        .iter()
        .filter(|i| i.status != STATUS_HISTORY_SHORT && !judged_before.contains(&key(i)))
        .map(|i| i.subject.clone())
        .collect();
    let (mut added, mut removed) = (0, 0);
    for i in &this.identities {
        let was = before.get(&key(i)).map_or(0, |p| p.granted);
        added += (i.granted - was).max(0);
        removed += (was - i.granted).max(0);
    }
    let previous_totals = match previous {
        Previous::Stored(r) => r.totals.clone(),
        Previous::Computed(r) => totals(&r.identities, &r.suggestions),
    };

    let mut top: Vec<IdentityRightsizing> = identities
        .iter()
        .filter(|i| i.unused_sensitive > 0)
        .cloned()
        .collect();
    top.sort_by(|a, b| {
        b.unused_sensitive
            .cmp(&a.unused_sensitive)
            .then_with(|| a.subject.cmp(&b.subject))
    });
    top.truncate(TOP_IDENTITIES);

    WeeklyReport {
        week: week.to_string(),
        week_start: week.start(),
        week_end: week.end(),
        previous_week: week.previous().to_string(),
        as_of: Some(this.now),
        observe: format_duration(settings.observe),
        observe_start: this.observe_start,
        grace: format_duration(settings.grace),
        inventory: settings
            .grants
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        totals: totals(&this.identities, &this.suggestions),
        changes: WeeklyChanges {
            new_suggestions: ranked
                .iter()
                .filter(|s| s.new)
                .map(|s| s.suggestion.id.clone())
                .collect(),
            closed_suggestions: closed,
            newly_judged,
            grants_added: added,
            grants_removed: removed,
            creep_score_previous: previous_totals.creep_score,
        },
        identities,
        suggestions: ranked,
        top_unused_sensitive: top,
        generated_at: Utc::now(),
    }
}

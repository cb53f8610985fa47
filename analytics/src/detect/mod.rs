//! Detectors of the analytics stage: calls outside an identity's normal
//! reach, each kind its own detector with a documented rule.
//!
//! Works on the aggregates the store computed (per reach key, per hour,
//! per source address, per credential); it never reads files, never talks
//! to Kafka and never serves HTTP. The detectors:
//!
//! | kind | rule (defaults in [`DetectSettings`]) |
//! | --- | --- |
//! | `new-identity` | active in the detection window with no baseline, or with less than `min_history` of it: one finding per subject, and no per-key findings until it has enough |
//! | `new-reach` | a reach key (action, generalized resource, target) used in the detection window and never in the first-ever window (`history`, which covers the baseline), on a target the identity already calls; some peer uses it too |
//! | `peer-rare` | as `new-reach`, but none of the identity's peers (identities whose SPIFFE ID shares its parent path, such as one namespace, at least `min_peers` of them) used it either |
//! | `new-target` | calls to a target the identity never called in the first-ever window: one finding per target |
//! | `trust-domain-crossing` | a new target in a trust domain the identity never called and is not its own |
//! | `environment-crossing` | a new target in an environment (from the target's trust domain: `prod.`, `staging.` ...) other than the identity's own, and that it never called |
//! | `volume-spike` | calls in one hour far above the identity's rate for that hour of the week (count test, see [`rates`]) |
//! | `deny-spike` | the same for denied calls |
//! | `off-hours` | calls in hours of the week where the baseline has none, beyond what chance allows |
//! | `weak-credential` | calls with a long-lived credential (a static kind, no expiry, or valid for longer than `max_credential_lifetime`) or an expired one |
//! | `used-after-suggestion` | a permission the previous run's open `remove-unused` or `remove-binding` suggestion proposed to remove, used after that suggestion's window ended (see [`follow_up`]) |
//!
//! A key-level finding is judged against the identity's known networks and
//! replicas: use from a network the baseline never saw raises its score;
//! use spread over several known replicas and hours (a rollout) lowers it.
//! Findings scoring below `min_score` are counted, not reported.

mod credentials;
mod follow_up;
mod novelty;
pub mod rates;
mod score;

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use overreach_model::results::{BaselineEntry, Finding};

pub(crate) use follow_up::used_after_suggestion;
pub use score::{score, severity, FindingKind, ScoreInputs};

use crate::generalize::Generalizer;
use crate::hash::stable_id;
use crate::store::{
    CredentialStats, EvidenceQuery, HourCount, KeyHour, KeyStats, SourceCount, SubjectStats,
};
use crate::windows::Windows;

/// How many event ids a finding carries as evidence.
pub const SAMPLE_EVENTS: usize = 5;

/// The tunable parts of detection. Defaults were tuned on the simulator's
/// training seed; see `bench/evaluate.sh`.
#[derive(Debug, Clone)]
pub struct DetectSettings {
    /// How far back the first-ever window reaches before the detection
    /// window (90d); never shorter than the baseline window.
    pub history: Duration,
    /// History an identity needs before per-key detectors judge it (7d;
    /// at most half the baseline window).
    pub min_history: Duration,
    /// Baseline calls an identity needs before per-key detectors judge it (10).
    pub min_history_events: i64,
    /// Resource generalization rules and the name-collapse threshold.
    pub generalizer: Generalizer,
    /// Peers needed before `peer-rare` judges a key (2).
    pub min_peers: usize,
    /// Findings scoring below this are counted but not reported (40).
    pub min_score: i64,
    /// Family-wise error rate of each rate detector (0.01), Bonferroni
    /// corrected over the hours tested.
    pub alpha: f64,
    /// A spike is at least this many times the expected count (3).
    pub spike_ratio: f64,
    /// A volume spike exceeds the expected count by at least this many calls (20).
    pub volume_min_excess: i64,
    /// A deny spike has at least this many denied calls in an hour (10).
    pub deny_min_count: i64,
    /// Off-hours activity needs at least this many calls (3).
    pub off_hours_min_count: i64,
    /// Baseline an identity needs before `off-hours` judges it (7d).
    pub off_hours_min_history: Duration,
    /// Credentials valid for longer than this at call time are long-lived (24h).
    pub max_credential_lifetime: Duration,
    /// Credential kinds that are long-lived by nature.
    pub long_lived_kinds: Vec<String>,
}

impl Default for DetectSettings {
    fn default() -> Self {
        Self {
            history: Duration::days(90),
            min_history: Duration::days(7),
            min_history_events: 10,
            generalizer: Generalizer::default(),
            min_peers: 2,
            min_score: 40,
            alpha: 0.01,
            spike_ratio: 3.0,
            volume_min_excess: 20,
            deny_min_count: 10,
            off_hours_min_count: 3,
            off_hours_min_history: Duration::days(7),
            max_credential_lifetime: Duration::hours(24),
            long_lived_kinds: [
                "static-key",
                "api-key",
                "access-key",
                "password",
                "basic",
                "long-lived-token",
                "service-account-token",
            ]
            .map(str::to_owned)
            .to_vec(),
        }
    }
}

/// What the detectors read: the store's aggregates of one run.
pub(crate) struct Inputs<'a> {
    pub windows: &'a Windows,
    pub subjects: &'a [SubjectStats],
    pub keys: &'a [KeyStats],
    pub hourly: &'a [HourCount],
    pub key_hours: &'a [KeyHour],
    pub sources: &'a [SourceCount],
    pub credentials: &'a [CredentialStats],
}

/// A finding before its evidence events are looked up.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub finding: Finding,
    pub evidence: EvidenceQuery,
}

/// What detection produced.
pub(crate) struct Detection {
    /// Reported findings, highest score first, evidence not yet filled in.
    pub drafts: Vec<Draft>,
    /// Findings that scored below `min_score`, by kind.
    pub below_min_score: HashMap<&'static str, i64>,
    /// The baseline keys after generalization.
    pub baselines: Vec<BaselineEntry>,
    /// Reach keys in the baseline and detection windows as stored, and
    /// after generalization.
    pub stored_keys: i64,
    pub generalized_keys: i64,
}

/// Runs every detector.
pub(crate) fn detect(settings: &DetectSettings, inputs: &Inputs<'_>) -> Detection {
    let windows = inputs.windows;
    let min_history = settings
        .min_history
        .min(windows.baseline / 2)
        .max(Duration::zero());
    let keys = novelty::generalize(&settings.generalizer, inputs.keys);
    let mut drafts = Vec::new();
    // Who has enough history for per-key and rate detectors.
    let mut seasoned = Vec::new();
    for s in inputs.subjects {
        let in_detect = keys.detect_of(&s.subject).next().is_some();
        if !in_detect {
            continue;
        }
        let baseline_events = keys.baseline_events(&s.subject);
        let history = windows.detect_start - s.first_seen;
        if baseline_events == 0
            || history < min_history
            || baseline_events < settings.min_history_events
        {
            drafts.push(novelty::new_identity(
                windows,
                s,
                &keys,
                baseline_events,
                min_history,
            ));
        } else {
            seasoned.push(s);
        }
    }
    drafts.extend(novelty::detect(settings, windows, &seasoned, &keys, inputs));
    drafts.extend(rates::detect(
        settings,
        windows,
        &seasoned,
        inputs.hourly,
        inputs.keys,
        inputs.key_hours,
    ));
    drafts.extend(credentials::detect(settings, windows, inputs.credentials));

    let mut below_min_score: HashMap<&'static str, i64> = HashMap::new();
    drafts.retain(|d| {
        let keep = d.finding.score >= settings.min_score;
        if !keep {
            *below_min_score
                .entry(kind_name(&d.finding.kind))
                .or_default() += 1;
        }
        keep
    });
    drafts.sort_by(|a, b| {
        let (a, b) = (&a.finding, &b.finding);
        b.score
            .cmp(&a.score)
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.action.cmp(&b.action))
            .then_with(|| a.resource_pattern.cmp(&b.resource_pattern))
            .then_with(|| a.target.cmp(&b.target))
            .then_with(|| a.first_seen.cmp(&b.first_seen))
    });
    Detection {
        drafts,
        below_min_score,
        baselines: keys.baselines(),
        stored_keys: keys.stored_keys,
        generalized_keys: keys.generalized_keys(),
    }
}

fn kind_name(kind: &str) -> &'static str {
    FindingKind::ALL
        .iter()
        .find(|k| k.as_str() == kind)
        .map_or("unknown", |k| k.as_str())
}

/// The stable id of a finding: the same finding gets the same id on every
/// run, so triage state and webhooks can key on it. `parts` are what makes
/// the finding itself (reach key, target, credential kind, spiking hour).
pub fn finding_id(kind: FindingKind, subject: &str, parts: &[Option<&str>]) -> String {
    let mut all = vec![Some(kind.as_str()), Some(subject)];
    all.extend_from_slice(parts);
    stable_id(&all)
}

/// The fields every finding shares, from which [`build`] makes one.
pub(crate) struct Common<'a> {
    pub kind: FindingKind,
    pub subject: &'a str,
    pub id_parts: Vec<Option<&'a str>>,
    pub action: Option<String>,
    pub resource_pattern: Option<String>,
    pub target: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: i64,
    pub allow_count: i64,
    pub deny_count: i64,
}

pub(crate) fn build(
    common: Common<'_>,
    score: i64,
    explanation: String,
    evidence: serde_json::Value,
    query: EvidenceQuery,
) -> Draft {
    let score = score.clamp(0, 100);
    Draft {
        finding: Finding {
            id: finding_id(common.kind, common.subject, &common.id_parts),
            kind: common.kind.as_str().to_owned(),
            subject: common.subject.to_owned(),
            action: common.action,
            resource_pattern: common.resource_pattern,
            target: common.target,
            first_seen: common.first_seen,
            last_seen: common.last_seen,
            count: common.count,
            allow_count: common.allow_count,
            deny_count: common.deny_count,
            severity: severity(score).to_owned(),
            score,
            explanation,
            evidence: evidence.to_string(),
            sample_event_ids: Vec::new(),
            controls: common
                .kind
                .controls()
                .iter()
                .map(|c| (*c).to_owned())
                .collect(),
        },
        evidence: query,
    }
}

/// `12 allowed, 3 denied`.
pub(crate) fn mix(allow: i64, deny: i64) -> String {
    format!("{allow} allowed, {deny} denied")
}

/// The environment a trust domain names by one of its labels
/// (`prod.example.org` is `prod`), if any.
pub fn environment_of(trust_domain: &str) -> Option<&'static str> {
    trust_domain.split(['.', '-']).find_map(|label| {
        Some(match label {
            "prod" | "production" | "prd" | "live" => "prod",
            "staging" | "stage" | "stg" | "preprod" => "staging",
            "dev" | "development" => "dev",
            "test" | "testing" | "qa" => "test",
            "sandbox" => "sandbox",
            _ => return None,
        })
    })
}

/// The trust domain of a SPIFFE ID, if it is one.
pub fn trust_domain_of(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("spiffe://")?;
    let td = rest.split('/').next().unwrap_or(rest);
    (!td.is_empty()).then_some(td)
}

#[cfg(test)]
mod tests;

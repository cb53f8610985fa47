//! Detectors of the analytics stage: calls outside an identity's baseline.
//!
//! Works on the per-key aggregates the store computed; it never reads
//! files, never talks to Kafka and never serves HTTP. Two detectors exist
//! so far:
//!
//! - `new-reach`: a subject with a baseline used a reach key (subject,
//!   action, resource pattern, target) in the detection window that it
//!   never used in the baseline window. One finding per such key.
//! - `new-identity`: a subject active in the detection window has no
//!   events at all in the baseline window. One finding per subject, not one
//!   per key, so a new workload yields one line to triage, not hundreds.

use std::collections::{BTreeMap, HashMap, HashSet};

use overreach_model::duration::format_duration;
use overreach_model::event::{is_sensitive_resource, is_write_action};
use overreach_model::results::Finding;
use serde_json::json;

use crate::explain;
use crate::hash::stable_id;
use crate::store::{KeyStats, Sample, Slot};
use crate::windows::Windows;

/// How many event ids a finding carries as evidence.
pub const SAMPLE_EVENTS: usize = 5;

/// The kinds of finding this crate produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    NewReach,
    NewIdentity,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::NewReach => "new-reach",
            FindingKind::NewIdentity => "new-identity",
        }
    }

    /// The controls a finding of this kind is evidence for. This is the
    /// one place the mapping lives:
    ///
    /// | kind | controls | why |
    /// | --- | --- | --- |
    /// | `new-reach` | OWASP NHI5:2025 Overprivileged NHI; NIST CSF PR.AC-4; NIST SP 800-207 tenet 3 | the identity could do more than it needs: least privilege, per-session access |
    /// | `new-identity` | NIST CSF PR.AC-1; NIST CSF DE.CM-7; NIST SP 800-207 tenet 5 | an identity nobody has seen before: identity management, monitoring for unknown actors, asset posture |
    ///
    /// NIST CSF ids are those of CSF 1.1 (PR.AC is PR.AA in CSF 2.0).
    pub fn controls(self) -> &'static [&'static str] {
        match self {
            FindingKind::NewReach => &[
                "OWASP NHI5:2025 Overprivileged NHI",
                "NIST CSF PR.AC-4 least privilege",
                "NIST SP 800-207 tenet 3 per-session least-privilege access",
            ],
            FindingKind::NewIdentity => &[
                "NIST CSF PR.AC-1 identities and credentials managed",
                "NIST CSF DE.CM-7 monitoring for unauthorized actors",
                "NIST SP 800-207 tenet 5 asset integrity and posture monitored",
            ],
        }
    }

    fn base_score(self) -> i64 {
        match self {
            FindingKind::NewReach => 40,
            FindingKind::NewIdentity => 35,
        }
    }
}

/// What the score of a finding depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScoreInputs {
    pub kind: FindingKind,
    pub allow_count: i64,
    pub deny_count: i64,
    /// A write, delete or escalate verb is involved (`is_write_action`).
    pub write: bool,
    /// A resource holding credentials or granting access is involved
    /// (`is_sensitive_resource`).
    pub sensitive: bool,
}

/// The 0-100 score of a finding:
///
/// ```text
///   base          new-reach 40, new-identity 35
/// + allowed       +20 when any call was allowed, -15 when all were denied
///                 (reach that worked matters more than reach that was refused)
/// + volume        +2 per doubling of allowed calls, at most +10
///                 (1 call: 0, 2: +2, 4: +4, ... 32 or more: +10)
/// + write         +15 for write, delete or escalate verbs
/// + sensitive     +15 for secrets, tokens, roles and bindings
/// clamped to 0..=100
/// ```
///
/// So a denied read of a config map is low (25), an allowed read of one
/// medium (60), an allowed read of a secret high (75) and an allowed write
/// to a secret critical (90 and up).
pub fn score(inputs: ScoreInputs) -> i64 {
    let allowed = if inputs.allow_count > 0 {
        20
    } else if inputs.deny_count > 0 {
        -15
    } else {
        0
    };
    let volume = match u64::try_from(inputs.allow_count) {
        Ok(n) if n > 0 => (2 * i64::from(n.ilog2())).min(10),
        _ => 0,
    };
    let write = if inputs.write { 15 } else { 0 };
    let sensitive = if inputs.sensitive { 15 } else { 0 };
    (inputs.kind.base_score() + allowed + volume + write + sensitive).clamp(0, 100)
}

/// `low` below 40, `medium` below 70, `high` below 90, else `critical`.
pub fn severity(score: i64) -> &'static str {
    match score {
        i64::MIN..=39 => "low",
        40..=69 => "medium",
        70..=89 => "high",
        _ => "critical",
    }
}

/// The stable id of a finding: the same finding gets the same id on every
/// run, so triage state and webhooks can key on it.
pub fn finding_id(
    kind: FindingKind,
    subject: &str,
    action: Option<&str>,
    resource_pattern: Option<&str>,
    target: Option<&str>,
) -> String {
    stable_id(&[
        Some(kind.as_str()),
        Some(subject),
        action,
        resource_pattern,
        target,
    ])
}

type ReachKey<'a> = (&'a str, &'a str, &'a str, Option<&'a str>);

fn reach_key(k: &KeyStats) -> ReachKey<'_> {
    (
        &k.subject,
        &k.action,
        &k.resource_pattern,
        k.target.as_deref(),
    )
}

/// What one subject did in the baseline window.
#[derive(Debug, Default, Clone, Copy)]
struct BaselineSize {
    events: i64,
    keys: i64,
}

/// Evidence event ids, earliest first.
struct Samples<'a> {
    by_key: HashMap<ReachKey<'a>, Vec<(u64, &'a str)>>,
    by_subject: HashMap<&'a str, Vec<(u64, &'a str)>>,
}

impl<'a> Samples<'a> {
    fn new(samples: &'a [Sample]) -> Self {
        let mut by_key: HashMap<ReachKey<'a>, Vec<(u64, &'a str)>> = HashMap::new();
        let mut by_subject: HashMap<&'a str, Vec<(u64, &'a str)>> = HashMap::new();
        for s in samples {
            let key = (
                s.subject.as_str(),
                s.action.as_str(),
                s.resource_pattern.as_str(),
                s.target.as_deref(),
            );
            by_key
                .entry(key)
                .or_default()
                .push((s.rank_in_key, &s.event_id));
            by_subject
                .entry(&s.subject)
                .or_default()
                .push((s.rank_in_subject, &s.event_id));
        }
        Self { by_key, by_subject }
    }

    fn first(ranked: Option<&Vec<(u64, &str)>>) -> Vec<String> {
        let mut ranked = ranked.cloned().unwrap_or_default();
        ranked.sort_unstable();
        ranked
            .into_iter()
            .take(SAMPLE_EVENTS)
            .map(|(_, id)| id.to_owned())
            .collect()
    }

    fn for_key(&self, key: &ReachKey<'a>) -> Vec<String> {
        Self::first(self.by_key.get(key))
    }

    fn for_subject(&self, subject: &str) -> Vec<String> {
        Self::first(self.by_subject.get(subject))
    }
}

/// Runs every detector over the key aggregates of both windows. Findings
/// come back sorted by score (highest first), then subject and key.
pub(crate) fn detect(windows: &Windows, keys: &[KeyStats], samples: &[Sample]) -> Vec<Finding> {
    let mut baseline_keys: HashSet<ReachKey<'_>> = HashSet::new();
    let mut baseline_size: HashMap<&str, BaselineSize> = HashMap::new();
    let mut detected: BTreeMap<&str, Vec<&KeyStats>> = BTreeMap::new();
    for k in keys {
        match k.slot {
            Slot::Baseline => {
                baseline_keys.insert(reach_key(k));
                let size = baseline_size.entry(&k.subject).or_default();
                size.events += k.count;
                size.keys += 1;
            }
            Slot::Detect => detected.entry(&k.subject).or_default().push(k),
        }
    }
    let samples = Samples::new(samples);
    let mut findings = Vec::new();
    for (subject, used) in detected {
        match baseline_size.get(subject) {
            Some(size) => findings.extend(
                used.into_iter()
                    .filter(|k| !baseline_keys.contains(&reach_key(k)))
                    .map(|k| new_reach(windows, k, *size, samples.for_key(&reach_key(k)))),
            ),
            None => findings.push(new_identity(
                windows,
                subject,
                &used,
                samples.for_subject(subject),
            )),
        }
    }
    findings.sort_by(|a, b| {
        b.score
            .cmp(&a.score)
            .then_with(|| a.subject.cmp(&b.subject))
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.action.cmp(&b.action))
            .then_with(|| a.resource_pattern.cmp(&b.resource_pattern))
            .then_with(|| a.target.cmp(&b.target))
    });
    findings
}

fn calls(allow: i64, deny: i64) -> String {
    format!("{allow} allowed, {deny} denied")
}

fn new_reach(
    windows: &Windows,
    k: &KeyStats,
    baseline: BaselineSize,
    samples: Vec<String>,
) -> Finding {
    let kind = FindingKind::NewReach;
    let write = is_write_action(&k.action);
    let sensitive = is_sensitive_resource(&k.resource_pattern);
    let score = score(ScoreInputs {
        kind,
        allow_count: k.allow_count,
        deny_count: k.deny_count,
        write,
        sensitive,
    });
    let target = k
        .target
        .as_deref()
        .map(|t| format!(" at `{t}`"))
        .unwrap_or_default();
    let explanation = format!(
        "{subject} called `{action}` on `{resource}`{target} {times} ({mix}) {when}; \
         it never did this in the {window} baseline window before ({range}), \
         where it made {events} on {keys}.",
        subject = k.subject,
        action = k.action,
        resource = k.resource_pattern,
        times = explain::count(k.count, "time", "times"),
        mix = calls(k.allow_count, k.deny_count),
        when = explain::span(k.first_seen, k.last_seen),
        window = format_duration(windows.baseline),
        range = explain::range(windows.baseline_start, windows.detect_start),
        events = explain::count(baseline.events, "call", "calls"),
        keys = explain::count(baseline.keys, "reach key", "reach keys"),
    );
    let evidence = json!({
        "baseline_start": explain::time(windows.baseline_start),
        "baseline_end": explain::time(windows.detect_start),
        "baseline_events": baseline.events,
        "baseline_keys": baseline.keys,
        "detect_start": explain::time(windows.detect_start),
        "detect_end": explain::time(windows.now),
        "count": k.count,
        "allow_count": k.allow_count,
        "deny_count": k.deny_count,
        "write_action": write,
        "sensitive_resource": sensitive,
    });
    Finding {
        id: finding_id(
            kind,
            &k.subject,
            Some(&k.action),
            Some(&k.resource_pattern),
            k.target.as_deref(),
        ),
        kind: kind.as_str().to_owned(),
        subject: k.subject.clone(),
        action: Some(k.action.clone()),
        resource_pattern: Some(k.resource_pattern.clone()),
        target: k.target.clone(),
        first_seen: k.first_seen,
        last_seen: k.last_seen,
        count: k.count,
        allow_count: k.allow_count,
        deny_count: k.deny_count,
        severity: severity(score).to_owned(),
        score,
        explanation,
        evidence: evidence.to_string(),
        sample_event_ids: samples,
        controls: kind.controls().iter().map(|c| (*c).to_owned()).collect(),
    }
}

fn new_identity(
    windows: &Windows,
    subject: &str,
    used: &[&KeyStats],
    samples: Vec<String>,
) -> Finding {
    let kind = FindingKind::NewIdentity;
    let count: i64 = used.iter().map(|k| k.count).sum();
    let allow_count: i64 = used.iter().map(|k| k.allow_count).sum();
    let deny_count: i64 = used.iter().map(|k| k.deny_count).sum();
    let first_seen = used
        .iter()
        .map(|k| k.first_seen)
        .min()
        .unwrap_or(windows.detect_start);
    let last_seen = used
        .iter()
        .map(|k| k.last_seen)
        .max()
        .unwrap_or(windows.now);
    let keys = i64::try_from(used.len()).unwrap_or(i64::MAX);
    let actions = used
        .iter()
        .map(|k| k.action.as_str())
        .collect::<HashSet<_>>()
        .len();
    let write = used.iter().any(|k| is_write_action(&k.action));
    let sensitive = used
        .iter()
        .any(|k| is_sensitive_resource(&k.resource_pattern));
    let score = score(ScoreInputs {
        kind,
        allow_count,
        deny_count,
        write,
        sensitive,
    });
    let explanation = format!(
        "{subject} made {calls} on {keys} with {actions} ({mix}) {when} \
         and has no history in the {window} baseline window before ({range}).",
        calls = explain::count(count, "call", "calls"),
        keys = explain::count(keys, "reach key", "reach keys"),
        actions = explain::count(
            i64::try_from(actions).unwrap_or(i64::MAX),
            "distinct action",
            "distinct actions"
        ),
        mix = calls(allow_count, deny_count),
        when = explain::span(first_seen, last_seen),
        window = format_duration(windows.baseline),
        range = explain::range(windows.baseline_start, windows.detect_start),
    );
    let evidence = json!({
        "baseline_start": explain::time(windows.baseline_start),
        "baseline_end": explain::time(windows.detect_start),
        "baseline_events": 0,
        "baseline_keys": 0,
        "detect_start": explain::time(windows.detect_start),
        "detect_end": explain::time(windows.now),
        "count": count,
        "allow_count": allow_count,
        "deny_count": deny_count,
        "reach_keys": keys,
        "actions": actions,
        "write_action": write,
        "sensitive_resource": sensitive,
    });
    Finding {
        id: finding_id(kind, subject, None, None, None),
        kind: kind.as_str().to_owned(),
        subject: subject.to_owned(),
        action: None,
        resource_pattern: None,
        target: None,
        first_seen,
        last_seen,
        count,
        allow_count,
        deny_count,
        severity: severity(score).to_owned(),
        score,
        explanation,
        evidence: evidence.to_string(),
        sample_event_ids: samples,
        controls: kind.controls().iter().map(|c| (*c).to_owned()).collect(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, Utc};

    use super::*;

    #[test]
    fn scores_stay_in_bounds_for_every_input() {
        let counts = [i64::MIN, -1, 0, 1, 2, 3, 31, 32, 1_000_000, i64::MAX];
        for kind in [FindingKind::NewReach, FindingKind::NewIdentity] {
            for allow_count in counts {
                for deny_count in counts {
                    for write in [false, true] {
                        for sensitive in [false, true] {
                            let s = score(ScoreInputs {
                                kind,
                                allow_count,
                                deny_count,
                                write,
                                sensitive,
                            });
                            assert!((0..=100).contains(&s), "{s}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn scores_order_what_matters() {
        let reach = |allow_count, deny_count, write, sensitive| {
            score(ScoreInputs {
                kind: FindingKind::NewReach,
                allow_count,
                deny_count,
                write,
                sensitive,
            })
        };
        assert_eq!(reach(0, 1, false, false), 25);
        assert_eq!(reach(1, 0, false, false), 60);
        assert_eq!(reach(1, 0, false, true), 75);
        assert_eq!(reach(1, 0, true, true), 90);
        assert_eq!(reach(4, 0, false, false), 64);
        assert_eq!(
            reach(1 << 20, 0, false, false),
            70,
            "volume is capped at +10"
        );
        assert!(
            reach(1, 5, false, false) > reach(0, 6, false, false),
            "allowed above denied"
        );
        assert!(
            reach(0, 1, true, false) > reach(0, 1, false, false),
            "writes above reads"
        );
        assert_eq!(severity(reach(0, 1, false, false)), "low");
        assert_eq!(severity(reach(1, 0, false, false)), "medium");
        assert_eq!(severity(reach(1, 0, false, true)), "high");
        assert_eq!(severity(reach(1, 0, true, true)), "critical");
        assert_eq!(severity(39), "low");
        assert_eq!(severity(40), "medium");
        assert_eq!(severity(69), "medium");
        assert_eq!(severity(70), "high");
        assert_eq!(severity(89), "high");
        assert_eq!(severity(90), "critical");
    }

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(19_000) + Duration::minutes(minutes)
    }

    fn stats(
        slot: Slot,
        subject: &str,
        action: &str,
        resource: &str,
        allow: i64,
        deny: i64,
    ) -> KeyStats {
        KeyStats {
            slot,
            usage: overreach_model::results::BaselineEntry {
                subject: subject.into(),
                action: action.into(),
                resource_pattern: resource.into(),
                target: None,
                count: allow + deny,
                allow_count: allow,
                deny_count: deny,
                first_seen: at(if slot == Slot::Baseline { 10 } else { 100 }),
                last_seen: at(if slot == Slot::Baseline { 20 } else { 110 }),
            },
        }
    }

    #[test]
    fn detects_new_reach_per_key_and_new_identity_per_subject() {
        let windows = Windows::new(
            at(120),
            Duration::minutes(60),
            Duration::minutes(60),
            Duration::days(90),
        )
        .unwrap();
        let keys = vec![
            stats(Slot::Baseline, "old", "get", "ns/core/configmaps", 5, 0),
            stats(Slot::Detect, "old", "get", "ns/core/configmaps", 2, 0),
            stats(Slot::Detect, "old", "create", "ns/core/secrets", 1, 1),
            stats(Slot::Detect, "new", "get", "ns/core/pods", 3, 0),
            stats(Slot::Detect, "new", "list", "ns/core/pods", 0, 2),
        ];
        let samples: Vec<Sample> = (1..=7)
            .map(|rank| Sample {
                subject: "old".into(),
                action: "create".into(),
                resource_pattern: "ns/core/secrets".into(),
                target: None,
                event_id: format!("e{rank}"),
                rank_in_key: 8 - rank,
                rank_in_subject: rank,
            })
            .collect();
        let findings = detect(&windows, &keys, &samples);
        assert_eq!(findings.len(), 2, "{findings:#?}");
        let reach = findings.iter().find(|f| f.kind == "new-reach").unwrap();
        assert_eq!(reach.subject, "old");
        assert_eq!(reach.action.as_deref(), Some("create"));
        assert_eq!(
            (reach.count, reach.allow_count, reach.deny_count),
            (2, 1, 1)
        );
        assert_eq!(
            reach.sample_event_ids,
            ["e7", "e6", "e5", "e4", "e3"],
            "earliest by rank"
        );
        assert!(
            reach
                .explanation
                .contains("where it made 5 calls on 1 reach key"),
            "{}",
            reach.explanation
        );
        let identity = findings.iter().find(|f| f.kind == "new-identity").unwrap();
        assert_eq!(identity.subject, "new");
        assert_eq!(
            (identity.count, identity.allow_count, identity.deny_count),
            (5, 3, 2)
        );
        assert_eq!(identity.action, None);
        assert!(identity
            .explanation
            .contains("5 calls on 2 reach keys with 2 distinct actions"));
        let evidence: serde_json::Value = serde_json::from_str(&identity.evidence).unwrap();
        assert_eq!(evidence["reach_keys"], 2);
        assert!(findings[0].score >= findings[1].score);
    }
}

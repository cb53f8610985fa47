//! The `weak-credential` detector: calls made with a long-lived credential
//! (a kind that is long-lived by nature, one with no expiry, or one still
//! valid for longer than `max_credential_lifetime` at call time) or with
//! an expired one. One finding per identity, credential kind and reason.
//! Needs no history: a weak credential is weak on its first use.

use chrono::Duration;
use serde_json::json;

use super::{build, mix, score, Common, DetectSettings, Draft, FindingKind, ScoreInputs};
use crate::explain;
use crate::store::{CredentialStats, EvidenceQuery};
use crate::windows::Windows;

pub(crate) fn detect(
    settings: &DetectSettings,
    windows: &Windows,
    credentials: &[CredentialStats],
) -> Vec<Draft> {
    let max_us = settings
        .max_credential_lifetime
        .num_microseconds()
        .unwrap_or(i64::MAX);
    let mut drafts = Vec::new();
    for c in credentials {
        let kind_lower = c.credential_kind.to_ascii_lowercase();
        let by_kind = settings
            .long_lived_kinds
            .iter()
            .any(|k| k.eq_ignore_ascii_case(&kind_lower));
        let too_long = c.max_remaining_us.is_some_and(|us| us > max_us);
        if by_kind || too_long {
            let why = if by_kind {
                format!("`{}` is a long-lived credential kind", c.credential_kind)
            } else {
                format!(
                    "it was still valid for {} at call time, longer than the {} allowed",
                    explain::approx(Duration::microseconds(c.max_remaining_us.unwrap_or(0))),
                    explain::approx(settings.max_credential_lifetime)
                )
            };
            drafts.push(finding(windows, c, "long-lived", &why, false));
        }
        if c.expired > 0 {
            let why = format!(
                "{} made after the credential had expired",
                explain::count(c.expired, "call was", "calls were")
            );
            drafts.push(finding(windows, c, "expired", &why, true));
        }
    }
    drafts
}

fn finding(
    windows: &Windows,
    c: &CredentialStats,
    reason: &str,
    why: &str,
    expired: bool,
) -> Draft {
    let kind = FindingKind::WeakCredential;
    let score = score(
        kind,
        ScoreInputs {
            allow_count: c.allow_count,
            deny_count: c.deny_count,
            expired,
            ..ScoreInputs::default()
        },
    );
    let explanation = format!(
        "{subject} made {calls} ({mix}) {when} with a `{cred}` credential: {why}. Workload \
         identities should use short-lived SVIDs that rotate automatically.",
        subject = c.subject,
        calls = explain::count(c.count, "call", "calls"),
        mix = mix(c.allow_count, c.deny_count),
        when = explain::span(c.first_seen, c.last_seen),
        cred = c.credential_kind,
    );
    let evidence = json!({
        "credential_kind": c.credential_kind,
        "reason": reason,
        "count": c.count,
        "expired_calls": c.expired,
        "calls_without_expiry": c.no_expiry,
        "max_remaining_seconds": c.max_remaining_us.map(|us| us / 1_000_000),
        "detect_start": explain::time(windows.detect_start),
        "detect_end": explain::time(windows.now),
    });
    build(
        Common {
            kind,
            subject: &c.subject,
            id_parts: vec![Some(&c.credential_kind), Some(reason)],
            action: None,
            resource_pattern: None,
            target: None,
            first_seen: c.first_seen,
            last_seen: c.last_seen,
            count: if expired { c.expired } else { c.count },
            allow_count: c.allow_count,
            deny_count: c.deny_count,
        },
        score,
        explanation,
        evidence,
        EvidenceQuery {
            subject: c.subject.clone(),
            credential_kind: Some(c.credential_kind.clone()),
            expired_only: expired,
            ..EvidenceQuery::default()
        },
    )
}

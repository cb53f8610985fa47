//! `used-after-suggestion`: an identity used a permission that an open
//! right-sizing suggestion (`remove-unused`, `remove-binding`) of the
//! previous run proposed to remove. Either the suggestion missed a rare
//! legitimate job, or someone is using dormant access; both need a person
//! before the removal is applied.

use overreach_model::event::{is_sensitive_resource, is_write_action};
use overreach_model::results::{Finding, Suggestion};
use serde_json::json;

use super::{build, score, Common, FindingKind, ScoreInputs};
use crate::explain;
use crate::rightsizing::{self, UsedGrant};

/// One finding per previous removal suggestion whose grant was used after
/// that suggestion's window ended.
pub(crate) fn used_after_suggestion(previous: &[Suggestion], used: &[UsedGrant]) -> Vec<Finding> {
    rightsizing::used_after(previous, used)
        .into_iter()
        .map(|(s, u)| finding(s, u))
        .collect()
}

fn finding(s: &Suggestion, u: &UsedGrant) -> Finding {
    let kind = FindingKind::UsedAfterSuggestion;
    let grant = s.grant.as_deref().unwrap_or_default();
    let inputs = ScoreInputs {
        allow_count: u.count,
        write: is_write_action(&u.action),
        sensitive: is_sensitive_resource(&u.resource_pattern),
        ..ScoreInputs::default()
    };
    let score = score(kind, inputs);
    let explanation = format!(
        "{subject} used `{grant}` at {last} ({action} {resource}), after suggestion {id} \
         ({kind}, made over the window ending {end}) proposed removing it as unused. A rare job \
         the window missed, or dormant access in someone else's hands: check the calls before \
         applying the suggestion.",
        subject = s.subject,
        last = explain::time(u.last_used),
        action = u.action,
        resource = u.resource_pattern,
        id = s.id,
        kind = s.kind,
        end = explain::time(s.window_end),
    );
    let evidence = json!({
        "suggestion_id": s.id,
        "suggestion_kind": s.kind,
        "grant": grant,
        "suggestion_window_end": explain::time(s.window_end),
        "uses_in_window": u.count,
        "last_used": explain::time(u.last_used),
    });
    let mut draft = build(
        Common {
            kind,
            subject: &s.subject,
            id_parts: vec![Some(&s.id)],
            action: Some(u.action.clone()),
            resource_pattern: Some(u.resource_pattern.clone()),
            target: None,
            first_seen: u.last_used,
            last_seen: u.last_used,
            count: u.count,
            allow_count: u.count,
            deny_count: 0,
        },
        score,
        explanation,
        evidence,
        Default::default(),
    );
    draft.finding.sample_event_ids = u.sample_event_ids.clone();
    draft.finding
}

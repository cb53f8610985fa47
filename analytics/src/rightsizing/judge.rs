//! The part of right-sizing every policy engine shares: given one
//! identity's granted permissions (each with the observed calls it allows)
//! decide which may be judged, account granted against used, and suggest
//! removing what no call needed: a whole binding when none of its
//! permissions was used, else each unused permission. The engine modules
//! say how a permission matches a call and how a policy is written.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use overreach_model::report::{
    IdentityRightsizing, STATUS_HISTORY_SHORT, STATUS_JUDGED, STATUS_PARTLY_IN_GRACE,
};
use overreach_model::results::Suggestion;

use super::observed::Observed;
use super::{creep_score, worst_risk, REMOVE_BINDING, REMOVE_UNUSED};
use crate::as_i64;
use crate::diff;
use crate::explain;
use crate::hash::stable_id;
use crate::store::Usage;

/// How many event ids a suggestion carries as evidence.
pub const SAMPLE_EVENTS: usize = 5;

/// One granted permission of one identity, as an engine sees it.
pub(crate) struct Permission<'u> {
    /// How the `grant` column names it (`get, list core/pods in namespace shop`).
    pub label: String,
    pub risk: &'static str,
    /// Where it comes from, for the sentence: `RoleBinding shop/api -> Role shop/api`.
    pub origin: String,
    /// The binding that grants it, if removing the binding is a change a
    /// person can make (RBAC bindings, OPA role assignments).
    pub binding: Option<String>,
    pub granted_at: Option<DateTime<Utc>>,
    /// Never suggested for removal (an Istio rule with conditions Overreach
    /// cannot evaluate).
    pub keep: bool,
    /// The observed allowed calls it allows.
    pub uses: Vec<&'u Usage>,
}

impl Permission<'_> {
    /// Unused, but younger than the grace period: not judged yet.
    fn in_grace(&self, observed: &Observed<'_>) -> bool {
        self.uses.is_empty() && observed.in_grace(self.granted_at)
    }
}

/// A permission an identity used in the window: what a later run checks
/// open removal suggestions against (`used-after-suggestion`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UsedGrant {
    pub subject: String,
    /// The permission's label, or the binding's.
    pub grant: String,
    pub count: i64,
    pub last_used: DateTime<Utc>,
    /// The latest call it allowed.
    pub action: String,
    pub resource_pattern: String,
    pub sample_event_ids: Vec<String>,
}

/// What right-sizing produced: suggestions, the per-identity accounting
/// of the weekly report, and what was used.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    pub suggestions: Vec<Suggestion>,
    pub identities: Vec<IdentityRightsizing>,
    pub used: Vec<UsedGrant>,
    /// Every (subject, grant label) and (subject, binding) of the inventory.
    pub granted: Vec<(String, String)>,
}

impl Outcome {
    pub fn extend(&mut self, other: Outcome) {
        self.suggestions.extend(other.suggestions);
        self.identities.extend(other.identities);
        self.used.extend(other.used);
        self.granted.extend(other.granted);
    }
}

/// One identity as an engine hands it over.
pub(crate) struct Identity<'a, 'u> {
    pub subject: &'a str,
    /// How sentences name it (`ServiceAccount shop/api (spiffe://...)`).
    pub who: String,
    pub engine: &'static str,
    pub permissions: Vec<Permission<'u>>,
    /// Every allowed call of the identity in the window.
    pub calls: Vec<&'u Usage>,
    /// The identity's granted policy with only the permissions whose flag
    /// is set, in the engine's language: what removal diffs are made of.
    pub render: &'a dyn Fn(&[bool]) -> String,
}

impl Identity<'_, '_> {
    pub fn granted_text(&self) -> String {
        (self.render)(&vec![true; self.permissions.len()])
    }

    /// The unified diff from the granted policy to `new`.
    pub fn diff_to(&self, new: &str) -> String {
        diff::unified(&self.granted_text(), new, "granted", "suggested")
    }

    fn diff_without(&self, removed: &[usize]) -> String {
        let keep: Vec<bool> = (0..self.permissions.len())
            .map(|i| !removed.contains(&i))
            .collect();
        self.diff_to(&(self.render)(&keep))
    }
}

/// The ids of up to [`SAMPLE_EVENTS`] of `uses`, latest first.
pub(crate) fn samples<'u>(uses: impl IntoIterator<Item = &'u Usage>) -> Vec<String> {
    let mut uses: Vec<&Usage> = uses.into_iter().collect();
    uses.sort_by_key(|u| std::cmp::Reverse(u.last_seen));
    let mut ids: Vec<String> = Vec::new();
    for u in uses {
        if ids.len() == SAMPLE_EVENTS {
            break;
        }
        if !ids.contains(&u.sample_event_id) {
            ids.push(u.sample_event_id.clone());
        }
    }
    ids
}

/// Judges one identity: pushes its accounting row, its used permissions
/// and its removal suggestions to `out`. Returns whether it was judged
/// (its history covers the window), so the engine adds the reduced policy.
pub(crate) fn judge(
    observed: &Observed<'_>,
    identity: &Identity<'_, '_>,
    out: &mut Outcome,
) -> bool {
    let subject = identity.subject;
    let perms = &identity.permissions;
    let covered = observed.covers(subject);
    let removable = |p: &Permission<'_>| p.uses.is_empty() && !p.keep && !p.in_grace(observed);

    let used = perms.iter().filter(|p| !p.uses.is_empty()).count();
    let grace = perms.iter().filter(|p| p.in_grace(observed)).count();
    let unused: Vec<usize> = (0..perms.len()).filter(|&i| removable(&perms[i])).collect();
    let sensitive = unused.iter().filter(|&&i| perms[i].risk == "high").count();
    let judged_count = perms.len() - grace;
    let status = if !covered {
        STATUS_HISTORY_SHORT
    } else if grace > 0 {
        STATUS_PARTLY_IN_GRACE
    } else {
        STATUS_JUDGED
    };
    out.identities.push(IdentityRightsizing {
        subject: subject.to_owned(),
        engine: identity.engine.to_owned(),
        status: status.to_owned(),
        granted: as_i64(perms.len()),
        used: as_i64(used),
        unused: if covered { as_i64(unused.len()) } else { 0 },
        unused_sensitive: if covered { as_i64(sensitive) } else { 0 },
        in_grace: as_i64(grace),
        creep_score: covered
            .then(|| creep_score(as_i64(unused.len()), as_i64(judged_count)))
            .flatten(),
        creep_score_previous: None,
        allowed_calls: identity.calls.iter().map(|u| u.count).sum(),
        history_days: (observed.history(subject).num_minutes() as f64 / 1440.0 * 10.0).round()
            / 10.0,
        note: (!covered).then(|| observed.short_history_note(subject)),
    });
    for p in perms {
        out.granted.push((subject.to_owned(), p.label.clone()));
        if let Some(binding) = &p.binding {
            out.granted.push((subject.to_owned(), binding.clone()));
        }
    }
    for p in perms.iter().filter(|p| !p.uses.is_empty()) {
        let latest = p
            .uses
            .iter()
            .max_by_key(|u| u.last_seen)
            .expect("uses is not empty");
        let used = |grant: &str| UsedGrant {
            subject: subject.to_owned(),
            grant: grant.to_owned(),
            count: p.uses.iter().map(|u| u.count).sum(),
            last_used: latest.last_seen,
            action: latest.action.clone(),
            resource_pattern: latest.resource_pattern.clone(),
            sample_event_ids: samples(p.uses.iter().copied()),
        };
        out.used.push(used(&p.label));
        if let Some(binding) = &p.binding {
            out.used.push(used(binding));
        }
    }
    if !covered {
        return false;
    }

    let calls = explain::count(
        identity.calls.iter().map(|u| u.count).sum(),
        "allowed call",
        "allowed calls",
    );
    let window = observed.window_text();
    let note = observed.confidence_note(subject);
    let never_seen = !observed.first_seen.contains_key(subject);

    // Bindings none of whose permissions anything needed go as a whole.
    let mut by_binding: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, p) in perms.iter().enumerate() {
        if let Some(b) = &p.binding {
            by_binding.entry(b).or_default().push(i);
        }
    }
    let mut whole: Vec<usize> = Vec::new();
    for (binding, members) in &by_binding {
        if !members.iter().all(|&i| removable(&perms[i])) {
            continue;
        }
        whole.extend(members);
        let labels: Vec<String> = members
            .iter()
            .map(|&i| format!("`{}`", perms[i].label))
            .collect();
        let mut s = observed.suggestion(REMOVE_BINDING, subject, Some((*binding).to_owned()));
        s.risk = worst_risk(members.iter().map(|&i| perms[i].risk)).to_owned();
        s.replacement = Vec::new();
        s.explanation = format!(
            "{who} holds {binding}, which grants it {n}: {list}. {none} Remove it from the \
             binding's subjects (or delete the binding, if it binds no one else).{note}",
            who = identity.who,
            n = explain::count(as_i64(members.len()), "permission", "permissions"),
            list = labels.join(", "),
            none = if never_seen {
                format!("It made no calls at all in the {window}, so none of them was used.")
            } else {
                format!("It made {calls} in the {window}, and none needed any of them.")
            },
        );
        s.diff = Some(identity.diff_without(members));
        out.suggestions.push(s);
    }
    for &i in unused.iter().filter(|i| !whole.contains(i)) {
        let p = &perms[i];
        let mut s = observed.suggestion(REMOVE_UNUSED, subject, Some(p.label.clone()));
        // Two bindings may grant the same rule: the origin tells them apart.
        s.id = stable_id(&[
            Some(REMOVE_UNUSED),
            Some(subject),
            Some(&p.label),
            Some(&p.origin),
        ]);
        s.risk = p.risk.to_owned();
        s.explanation = if never_seen {
            format!(
                "{who} made no calls at all in the stored events, so `{label}` (granted by \
                 {origin}) was never used in the {window}; remove it, or check that the \
                 inventory spells the identity the way the events do.{note}",
                who = identity.who,
                label = p.label,
                origin = p.origin,
            )
        } else {
            format!(
                "{who} is granted `{label}` by {origin}. It made {calls} in the {window}, and \
                 none needed it: removing it would not have refused any of them.{note}",
                who = identity.who,
                label = p.label,
                origin = p.origin,
            )
        };
        s.diff = Some(identity.diff_without(&[i]));
        out.suggestions.push(s);
    }
    true
}

/// The sentence a reduced policy adds when some grants are still in their
/// grace period and so are left as they are.
pub(crate) fn grace_note(observed: &Observed<'_>, identity: &Identity<'_, '_>) -> String {
    let young: Vec<&str> = identity
        .permissions
        .iter()
        .filter(|p| p.in_grace(observed))
        .map(|p| p.label.as_str())
        .collect();
    if young.is_empty() {
        return String::new();
    }
    format!(
        " {} younger than the {} grace period ({}) not judged yet: keep {} until then.",
        explain::count(as_i64(young.len()), "grant is", "grants are"),
        overreach_model::duration::format_duration(observed.grace),
        young
            .iter()
            .map(|l| format!("`{l}`"))
            .collect::<Vec<_>>()
            .join(", "),
        if young.len() == 1 { "it" } else { "them" },
    )
}

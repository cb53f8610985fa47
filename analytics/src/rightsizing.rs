//! Right-sizing, the least-privilege half of the analytics stage: compare
//! what each identity is granted with the allowed calls it made in the
//! observation window.
//!
//! Works on usage aggregates the store computed and on a parsed grants
//! file; it never changes any policy, never reads files itself, never talks
//! to Kafka and never serves HTTP. Every suggestion only ever takes access
//! away: a replacement is always matched by the grant it replaces.
//!
//! - `remove-unused`: a grant no allowed call in the window needed.
//! - `narrow-wildcard`: a grant with `*` that was used on only a few
//!   (at most `narrow_max_values`) concrete action/resource pairs; the
//!   replacement lists them.
//! - `minimal-policy` (no grants file): per subject, the grants file that
//!   allows exactly the action/resource-pattern pairs it used.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Duration, Utc};
use overreach_model::duration::format_duration;
use overreach_model::event::{is_sensitive_resource, is_write_action};
use overreach_model::results::Suggestion;

use crate::error::{AnalyticsError, Result};
use crate::explain;
use crate::glob::Glob;
use crate::grants::{self, Coverage, Grant, GrantRule, Grants, GrantsFile, SubjectGrants};
use crate::hash::stable_id;
use crate::istio;
use crate::opa_data;
use crate::rbac;
use crate::store::Usage;
use crate::windows::Windows;

pub const REMOVE_UNUSED: &str = "remove-unused";
pub const NARROW_WILDCARD: &str = "narrow-wildcard";
pub const MINIMAL_POLICY: &str = "minimal-policy";

/// The lowest confidence a suggestion gets: no history at all.
pub const MIN_CONFIDENCE: f64 = 0.30;
/// The highest: the identity was seen for the whole window. Never 1.0,
/// since a window is a sample and some calls happen once a year.
pub const MAX_CONFIDENCE: f64 = 0.95;

/// How sure a suggestion is to break nothing, from how much of the
/// observation window the identity's history covers:
///
/// `confidence = 0.30 + 0.65 × min(1, observed / window)`
///
/// where `observed` is the time from the identity's first stored event (or
/// the window start, if later) to now. An identity seen for the whole
/// window gets 0.95; one seen for a tenth of it 0.365; one never seen 0.30.
pub fn confidence(observed: Duration, window: Duration) -> f64 {
    let window = window.num_milliseconds();
    let fraction = if window <= 0 {
        0.0
    } else {
        (observed.num_milliseconds() as f64 / window as f64).clamp(0.0, 1.0)
    };
    MIN_CONFIDENCE + (MAX_CONFIDENCE - MIN_CONFIDENCE) * fraction
}

/// The risk of removing (or of getting wrong) access to `action` on
/// `resource`: `high` for wildcard actions, writes, deletes, escalations
/// and sensitive resources, `medium` for reads of a wildcard resource,
/// `low` for reads of one resource.
fn risk(action: &str, resource: &str) -> &'static str {
    if action.contains('*') || is_write_action(action) || is_sensitive_resource(resource) {
        "high"
    } else if resource.contains('*') {
        "medium"
    } else {
        "low"
    }
}

fn worst_risk<'a>(risks: impl IntoIterator<Item = &'a str>) -> &'static str {
    let rank = |r: &str| match r {
        "high" => 2,
        "medium" => 1,
        _ => 0,
    };
    match risks.into_iter().map(rank).max() {
        Some(2) => "high",
        Some(1) => "medium",
        _ => "low",
    }
}

/// What right-sizing needs to know about the identities and the window.
pub(crate) struct Observed<'a> {
    pub windows: &'a Windows,
    /// Each subject's first stored event.
    pub first_seen: HashMap<&'a str, DateTime<Utc>>,
}

impl Observed<'_> {
    /// How much of the observation window the subject's history covers.
    fn history(&self, subject: &str) -> Duration {
        match self.first_seen.get(subject) {
            Some(first) => {
                (self.windows.now - (*first).max(self.windows.observe_start)).max(Duration::zero())
            }
            None => Duration::zero(),
        }
    }

    fn confidence(&self, subject: &str) -> f64 {
        confidence(self.history(subject), self.windows.observe)
    }

    /// The sentence that says where the confidence comes from.
    fn confidence_note(&self, subject: &str) -> String {
        format!(
            " Confidence {:.2}: the stored history of this identity covers {} of the {} window.",
            self.confidence(subject),
            explain::approx(self.history(subject)),
            format_duration(self.windows.observe),
        )
    }

    fn window_text(&self) -> String {
        format!(
            "{} observation window ({})",
            format_duration(self.windows.observe),
            explain::range(self.windows.observe_start, self.windows.now)
        )
    }

    fn suggestion(&self, kind: &str, subject: &str, grant: Option<String>) -> Suggestion {
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
        }
    }
}

/// `action resource`, the way the `grant` and `replacement` columns read.
fn pair(action: &str, resource: &str) -> String {
    format!("{action} {resource}")
}

/// A grants document for one subject allowing exactly `pairs`, with a
/// comment saying where it came from.
fn policy_yaml(subject: &str, pairs: &BTreeSet<(String, String)>, origin: &str) -> Result<String> {
    let file = GrantsFile {
        grants: vec![SubjectGrants {
            subject: subject.to_owned(),
            allow: pairs
                .iter()
                .map(|(action, resource)| GrantRule {
                    action: Glob::escape(action),
                    resource: Glob::escape(resource),
                    since: None,
                })
                .collect(),
        }],
    };
    let yaml = grants::to_yaml(&file).map_err(|source| AnalyticsError::Policy {
        subject: subject.to_owned(),
        source,
    })?;
    Ok(format!("# {origin}\n{yaml}"))
}

/// Suggestions against a grants file: unused grants and wildcards used
/// for only a few things. Sorted by subject, kind and grant.
pub(crate) fn with_grants(
    observed: &Observed<'_>,
    grants: &Grants,
    usage: &[Usage],
    narrow_max_values: usize,
) -> Result<Vec<Suggestion>> {
    let mut by_subject: HashMap<&str, Vec<&Usage>> = HashMap::new();
    for u in usage {
        by_subject.entry(&u.subject).or_default().push(u);
    }
    let mut suggestions = Vec::new();
    for grant in grants.iter() {
        let used_by_subject = by_subject
            .get(grant.subject.as_str())
            .map_or(&[][..], Vec::as_slice);
        if let Some(s) = suggest_for_grant(observed, grant, used_by_subject, narrow_max_values)? {
            suggestions.push(s);
        }
    }
    for s in &mut suggestions {
        s.explanation
            .push_str(&observed.confidence_note(&s.subject));
    }
    sort(&mut suggestions);
    Ok(suggestions)
}

fn suggest_for_grant(
    observed: &Observed<'_>,
    grant: &Grant,
    usage: &[&Usage],
    narrow_max_values: usize,
) -> Result<Option<Suggestion>> {
    let subject = grant.subject.as_str();
    let label = grant.label();
    let mut used_count = 0;
    let mut last_used: Option<DateTime<Utc>> = None;
    // The concrete action/resource pairs the grant was needed for: the
    // resource pattern when the grant matched it, else the concrete
    // resource, so a replacement never covers more than the grant did.
    let mut values: BTreeSet<(String, String)> = BTreeSet::new();
    for u in usage {
        let resource = u.resource.as_deref().unwrap_or(&u.resource_pattern);
        let Some(coverage) = grant.covers(&u.action, resource, &u.resource_pattern) else {
            continue;
        };
        used_count += u.count;
        last_used = last_used.max(Some(u.last_seen));
        let value = match coverage {
            Coverage::Pattern => &u.resource_pattern,
            Coverage::Resource => resource,
        };
        values.insert((u.action.clone(), value.to_owned()));
    }
    let allowed_calls: i64 = usage.iter().map(|u| u.count).sum();
    let mut s = observed.suggestion(REMOVE_UNUSED, subject, Some(label.clone()));
    s.risk = risk(&grant.rule.action, &grant.rule.resource).to_owned();
    if used_count == 0 {
        s.explanation = if observed.first_seen.contains_key(subject) {
            format!(
                "{subject} made {calls} in the {window}, none of them covered by `{label}`; \
                 removing the grant would not have refused any of them.",
                calls = explain::count(allowed_calls, "allowed call", "allowed calls"),
                window = observed.window_text(),
            )
        } else {
            format!(
                "{subject} made no calls at all in the stored events, so `{label}` was never used \
                 in the {window}; remove it, or check that the grants file spells the identity \
                 the way the events do.",
                window = observed.window_text(),
            )
        };
        return Ok(Some(s));
    }
    if !grant.is_wildcard() || values.len() > narrow_max_values {
        return Ok(None);
    }
    let replacement: Vec<String> = values.iter().map(|(a, r)| pair(a, r)).collect();
    s.id = stable_id(&[Some(NARROW_WILDCARD), Some(subject), Some(&label)]);
    s.kind = NARROW_WILDCARD.to_owned();
    s.used_count = used_count;
    s.last_used = last_used;
    s.explanation = format!(
        "{subject} used `{label}` for {calls} in the {window}, last at {last}, on only {n}: {list}; \
         granting just {those} removes everything else the wildcard allows.",
        calls = explain::count(used_count, "allowed call", "allowed calls"),
        window = observed.window_text(),
        last = last_used.map(explain::time).unwrap_or_default(),
        n = explain::count(
            i64::try_from(values.len()).unwrap_or(i64::MAX),
            "action/resource pair",
            "action/resource pairs"
        ),
        list = replacement.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", "),
        those = if values.len() == 1 { "that" } else { "those" },
    );
    s.policy = Some(policy_yaml(
        subject,
        &values,
        &format!("narrow-wildcard for {subject}: replaces `{label}`"),
    )?);
    s.replacement = replacement;
    Ok(Some(s))
}

/// Without a grants file: for every subject with allowed calls in the
/// window, the minimal policy that covers them. Sorted by subject.
pub(crate) fn minimal_policies(
    observed: &Observed<'_>,
    usage: &[Usage],
) -> Result<Vec<Suggestion>> {
    let mut by_subject: BTreeMap<&str, Vec<&Usage>> = BTreeMap::new();
    for u in usage {
        by_subject.entry(&u.subject).or_default().push(u);
    }
    let mut suggestions = Vec::new();
    for (subject, used) in by_subject {
        let pairs: BTreeSet<(String, String)> = used
            .iter()
            .map(|u| (u.action.clone(), u.resource_pattern.clone()))
            .collect();
        let used_count: i64 = used.iter().map(|u| u.count).sum();
        let last_used = used.iter().map(|u| u.last_seen).max();
        let mut s = observed.suggestion(MINIMAL_POLICY, subject, None);
        s.replacement = pairs.iter().map(|(a, r)| pair(a, r)).collect();
        s.used_count = used_count;
        s.last_used = last_used;
        s.risk = worst_risk(pairs.iter().map(|(a, r)| risk(a, r))).to_owned();
        s.explanation = format!(
            "{subject} made {calls} in the {window}, last at {last}, on {n}; \
             this policy allows exactly those and nothing else.",
            calls = explain::count(used_count, "allowed call", "allowed calls"),
            window = observed.window_text(),
            last = last_used.map(explain::time).unwrap_or_default(),
            n = explain::count(
                i64::try_from(pairs.len()).unwrap_or(i64::MAX),
                "action/resource pair",
                "action/resource pairs"
            ),
        );
        s.policy = Some(policy_yaml(
            subject,
            &pairs,
            &format!(
                "minimal-policy for {subject}: what it used between {} and {}",
                explain::time(observed.windows.observe_start),
                explain::time(observed.windows.now)
            ),
        )?);
        s.explanation.push_str(&observed.confidence_note(subject));
        suggestions.push(s);
    }
    sort(&mut suggestions);
    Ok(suggestions)
}

fn sort(suggestions: &mut [Suggestion]) {
    suggestions.sort_by(|a, b| {
        a.subject
            .cmp(&b.subject)
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.grant.cmp(&b.grant))
    });
}

/// One RBAC rule as a person reads it: `get, list core/secrets
/// [db-creds] in namespace shop`, or `get /healthz` for a non-resource URL.
pub fn rbac_rule_text(grant: &rbac::Grant) -> String {
    let r = &grant.rule;
    let verbs = r.verbs.join(", ");
    let scope = match &grant.namespace {
        Some(ns) => format!(" in namespace {ns}"),
        None => " cluster-wide".to_owned(),
    };
    if !r.non_resource_urls.is_empty() {
        return format!("{verbs} {}", r.non_resource_urls.join(", "));
    }
    let groups: Vec<&str> = r
        .api_groups
        .iter()
        .map(|g| if g.is_empty() { "core" } else { g.as_str() })
        .collect();
    let names = if r.resource_names.is_empty() {
        String::new()
    } else {
        format!(" [{}]", r.resource_names.join(", "))
    };
    format!(
        "{verbs} {}/{}{names}{scope}",
        groups.join("|"),
        r.resources.join("|")
    )
}

fn rbac_risk(grant: &rbac::Grant) -> &'static str {
    let r = &grant.rule;
    worst_risk(r.verbs.iter().flat_map(|verb| {
        let resources: Vec<&String> = r.resources.iter().chain(&r.non_resource_urls).collect();
        resources
            .into_iter()
            .map(move |resource| risk(verb, resource))
    }))
}

/// Right-sizing against a Kubernetes RBAC inventory: for every service
/// account the bindings grant something to (its SPIFFE ID under
/// `trust_domain`), each granted rule that allowed none of its observed
/// calls is a `remove-unused` suggestion, and the minimal Role/ClusterRole
/// set covering every allowed call observed is a `minimal-policy`
/// suggestion whose `policy` is that RBAC YAML, each rule commented with
/// the calls that need it. The minimal policy is checked to be within the
/// granted rules; where it cannot be (a list of one name granted only by
/// `resourceNames`), the explanation says so.
pub(crate) fn with_rbac(
    observed: &Observed<'_>,
    accounts: &BTreeMap<rbac::ServiceAccount, Vec<rbac::Grant>>,
    trust_domain: &str,
    usage: &[Usage],
) -> Result<Vec<Suggestion>> {
    let mut by_subject: HashMap<&str, Vec<&Usage>> = HashMap::new();
    for u in usage {
        by_subject.entry(u.subject.as_str()).or_default().push(u);
    }
    let mut out = Vec::new();
    for (account, grants) in accounts {
        let Ok(id) = account.spiffe_id(trust_domain) else {
            continue;
        };
        let subject = id.to_string();
        let used = by_subject
            .get(subject.as_str())
            .cloned()
            .unwrap_or_default();
        // Each observed (action, concrete resource) as the authorizer sees it.
        let requests: Vec<(rbac::Request, &Usage)> = used
            .iter()
            .filter_map(|u| {
                let resource = u.resource.as_deref().unwrap_or(&u.resource_pattern);
                rbac::parse_request(&u.action, resource)
                    .ok()
                    .map(|r| (r, *u))
            })
            .collect();
        let window = observed.window_text();
        for grant in grants {
            let covered: Vec<&Usage> = requests
                .iter()
                .filter(|(r, _)| rbac::allows(std::slice::from_ref(grant), r).is_some())
                .map(|(_, u)| *u)
                .collect();
            if !covered.is_empty() {
                continue;
            }
            let text = rbac_rule_text(grant);
            let mut s = observed.suggestion(REMOVE_UNUSED, &subject, Some(text.clone()));
            s.risk = rbac_risk(grant).to_owned();
            s.explanation = format!(
                "ServiceAccount {account} ({subject}) is granted `{text}` by {source}, and none of its allowed \
                 calls in the {window} needed it.{note}",
                source = grant.source,
                note = observed.confidence_note(&subject),
            );
            out.push(s);
        }
        if requests.is_empty() {
            continue;
        }
        let calls: Vec<rbac::Request> = requests
            .iter()
            .flat_map(|(r, u)| {
                std::iter::repeat_n(r.clone(), usize::try_from(u.count).unwrap_or(0))
            })
            .collect();
        let minimal = rbac::minimal_policy(&rbac::Subject::ServiceAccount(account.clone()), &calls);
        let reduced = minimal.grants();
        let within = rbac::is_within(&reduced, grants);
        let mut s = observed.suggestion(MINIMAL_POLICY, &subject, None);
        s.replacement = reduced.iter().map(rbac_rule_text).collect();
        s.used_count = used.iter().map(|u| u.count).sum();
        s.last_used = used.iter().map(|u| u.last_seen).max();
        s.risk = worst_risk(grants.iter().map(rbac_risk)).to_owned();
        s.explanation = format!(
            "ServiceAccount {account} ({subject}) is granted {granted} and used {kept} of them for its {calls} \
             allowed calls in the {window}. The reduced policy ({rules}) allows every one of \
             those calls{within}.{note}",
            granted = explain::count(grants.len() as i64, "rule", "rules"),
            kept = grants
                .iter()
                .filter(|g| requests.iter().any(|(r, _)| rbac::allows(std::slice::from_ref(*g), r).is_some()))
                .count(),
            calls = s.used_count,
            rules = explain::count(reduced.len() as i64, "rule", "rules"),
            within = if within {
                " and nothing the granted rules do not"
            } else {
                "; some of its rules are broader than the grants (a list or watch of objects \
                 granted only by name): review them"
            },
            note = observed.confidence_note(&subject),
        );
        s.policy = Some(minimal.to_yaml());
        out.push(s);
    }
    Ok(out)
}

/// Right-sizing against OPA data-driven RBAC (see [`crate::opa_data`]):
/// for every identity the data binds to roles, each role grant that
/// allowed none of its observed calls is a `remove-unused` suggestion, and
/// the minimal data document covering every allowed call observed (ids
/// generalized to `*`) is a `minimal-policy` suggestion whose `policy` is
/// that JSON, checked to be within the granted roles.
pub(crate) fn with_opa(
    observed: &Observed<'_>,
    data: &opa_data::OpaData,
    usage: &[Usage],
) -> Result<Vec<Suggestion>> {
    let mut by_subject: HashMap<&str, Vec<&Usage>> = HashMap::new();
    for u in usage {
        by_subject.entry(u.subject.as_str()).or_default().push(u);
    }
    let window = observed.window_text();
    let mut out = Vec::new();
    for identity in data.user_roles.keys() {
        let subject = identity.to_string();
        let grants = opa_data::grants_for(data, identity);
        let used = by_subject
            .get(subject.as_str())
            .cloned()
            .unwrap_or_default();
        // Generalized where the pattern has ids (`/v1/orders/{id}` becomes
        // `/v1/orders/*`); else the concrete resource, which for
        // Kubernetes keeps the object name the pattern drops.
        let request = |u: &Usage, generalized: bool| opa_data::Request {
            identity: identity.clone(),
            action: u.action.clone(),
            resource: if generalized && u.resource_pattern.contains("{id}") {
                u.resource_pattern.clone()
            } else {
                u.resource
                    .clone()
                    .unwrap_or_else(|| u.resource_pattern.clone())
            },
        };
        let concrete: Vec<opa_data::Request> = used.iter().map(|u| request(u, false)).collect();
        for grant in &grants {
            if concrete
                .iter()
                .any(|r| opa_data::allows(std::slice::from_ref(grant), r))
            {
                continue;
            }
            let text = pair(&grant.action, &grant.resource);
            let mut s = observed.suggestion(REMOVE_UNUSED, &subject, Some(text.clone()));
            s.risk = risk(&grant.action, &grant.resource).to_owned();
            s.explanation = format!(
                "{subject} is granted `{text}` by role `{role}` and none of its allowed calls in \
                 the {window} needed it.{note}",
                role = grant.role,
                note = observed.confidence_note(&subject),
            );
            out.push(s);
        }
        if used.is_empty() {
            continue;
        }
        let generalized: Vec<opa_data::Request> = used.iter().map(|u| request(u, true)).collect();
        let minimal = opa_data::minimal_data(identity, &generalized);
        let reduced = minimal.grants();
        let covers_all = concrete.iter().all(|r| opa_data::allows(&reduced, r));
        let within = opa_data::is_within(&reduced, &grants);
        let mut s = observed.suggestion(MINIMAL_POLICY, &subject, None);
        s.replacement = reduced
            .iter()
            .map(|g| pair(&g.action, &g.resource))
            .collect();
        s.used_count = used.iter().map(|u| u.count).sum();
        s.last_used = used.iter().map(|u| u.last_seen).max();
        s.risk = worst_risk(grants.iter().map(|g| risk(&g.action, &g.resource))).to_owned();
        s.explanation = format!(
            "{subject} holds {granted} through {roles}; its {calls} allowed calls in the {window} \
             need {kept}. The reduced data document below{covers}{within}.{note}",
            granted = explain::count(grants.len() as i64, "grant", "grants"),
            roles = explain::count(
                data.user_roles.get(identity).map_or(0, |r| r.len()) as i64,
                "role",
                "roles"
            ),
            calls = s.used_count,
            kept = explain::count(reduced.len() as i64, "grant", "grants"),
            covers = if covers_all {
                " allows every one of them"
            } else {
                " does not cover every observed call: review it"
            },
            within = if within {
                " and nothing the granted roles do not"
            } else {
                "; some of its patterns are broader than a single granted one: review them"
            },
            note = observed.confidence_note(&subject),
        );
        s.policy = Some(opa_data::to_json(&[minimal]));
        out.push(s);
    }
    Ok(out)
}

/// Right-sizing against Istio AuthorizationPolicy ALLOW rules (see
/// [`crate::istio`]): for every SPIFFE identity with stored calls that the
/// rules name, each unconditional rule that allowed none of its observed
/// calls (method and path pattern, on a target whose namespace the rule's
/// policy covers) is a `remove-unused` suggestion; rules with conditions
/// Overreach cannot evaluate are never suggested for removal. The minimal
/// ALLOW policies covering every observed call are a `minimal-policy`
/// suggestion whose `policy` is their YAML. Identities with no stored
/// calls at all are not judged: there is no history to judge them by.
pub(crate) fn with_istio(
    observed: &Observed<'_>,
    imported: &istio::Imported,
    subjects: &[&str],
    usage: &[Usage],
) -> Result<Vec<Suggestion>> {
    let mut by_subject: HashMap<&str, Vec<&Usage>> = HashMap::new();
    for u in usage {
        by_subject.entry(u.subject.as_str()).or_default().push(u);
    }
    let window = observed.window_text();
    let mut out = Vec::new();
    for subject in subjects {
        let Ok(principal) = overreach_model::SpiffeId::parse(subject) else {
            continue;
        };
        let grants = istio::grants_for(imported, &principal);
        if grants.is_empty() {
            continue;
        }
        let used = by_subject.get(subject).cloned().unwrap_or_default();
        let requests: Vec<(istio::Request, &Usage)> = used
            .iter()
            .filter_map(|u| {
                let target = overreach_model::SpiffeId::parse(u.target.as_deref()?).ok()?;
                let namespace = istio::namespace_of(&target)?.to_owned();
                Some((
                    istio::Request {
                        principal: principal.clone(),
                        method: u.action.clone(),
                        path: u.resource_pattern.clone(),
                        host: None,
                        port: None,
                        target_namespace: namespace,
                    },
                    *u,
                ))
            })
            .collect();
        for grant in &grants {
            let needed = requests.iter().any(|(r, _)| {
                istio::allows(std::slice::from_ref(grant), r) != istio::Decision::Deny
            });
            if needed || grant.conditional {
                continue;
            }
            let text = format!("{} ({})", grant.source, grant.target);
            let mut s = observed.suggestion(REMOVE_UNUSED, subject, Some(text.clone()));
            // Any method (no operation, or no method listed) can write.
            s.risk = if grant.operations.is_empty()
                || grant
                    .operations
                    .iter()
                    .any(|op| op.methods.values.is_empty())
            {
                "high"
            } else {
                worst_risk(grant.operations.iter().flat_map(|op| {
                    op.methods
                        .values
                        .iter()
                        .map(|m| risk(&m.to_string(), "path"))
                        .collect::<Vec<_>>()
                }))
            }
            .to_owned();
            s.explanation = format!(
                "{subject} is allowed by {text}, and none of its calls in the {window} needed \
                 that rule.{note}",
                note = observed.confidence_note(subject),
            );
            out.push(s);
        }
        if requests.is_empty() {
            continue;
        }
        let calls: Vec<istio::Request> = requests
            .iter()
            .flat_map(|(r, u)| {
                std::iter::repeat_n(r.clone(), usize::try_from(u.count).unwrap_or(0))
            })
            .collect();
        let minimal = istio::minimal_policy(&principal, &calls);
        let reduced = minimal.grants();
        let within = istio::is_within(&reduced, &grants);
        let mut s = observed.suggestion(MINIMAL_POLICY, subject, None);
        s.used_count = used.iter().map(|u| u.count).sum();
        s.last_used = used.iter().map(|u| u.last_seen).max();
        s.replacement = requests
            .iter()
            .map(|(r, _)| format!("{} {} in {}", r.method, r.path, r.target_namespace))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        s.risk = "medium".to_owned();
        s.explanation = format!(
            "{subject} is allowed by {granted}; its {calls} calls in the {window} need the \
             reduced ALLOW {policies} below{within}.{note}",
            granted = explain::count(grants.len() as i64, "Istio rule", "Istio rules"),
            calls = s.used_count,
            policies = if minimal.policies.len() == 1 {
                "policy"
            } else {
                "policies"
            },
            within = if within {
                ", which allow nothing the granted rules do not"
            } else {
                "; some of its paths are broader than a granted rule or fall under a \
                 condition: review them"
            },
            note = observed.confidence_note(subject),
        );
        s.policy = Some(minimal.to_yaml());
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::grants::{parse, Format};

    fn at(days: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + Duration::days(19_000 + days)
    }

    fn windows() -> Windows {
        Windows::new(
            at(100),
            Duration::days(28),
            Duration::days(1),
            Duration::days(90),
        )
        .unwrap()
    }

    fn used(subject: &str, action: &str, pattern: &str, resource: &str, count: i64) -> Usage {
        Usage {
            subject: subject.into(),
            action: action.into(),
            resource_pattern: pattern.into(),
            resource: Some(resource.into()),
            target: None,
            count,
            last_seen: at(99),
        }
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
    fn narrowing_never_broadens() {
        let w = windows();
        let observed = Observed {
            windows: &w,
            first_seen: HashMap::from([("s", at(0))]),
        };
        let grants = parse(
            "grants:\n  - subject: s\n    allow:\n      - action: get\n        resource: 'namespaces/a/core/configmaps:app-*'\n      - action: '*'\n        resource: 'namespaces/a/*'\n",
            Format::Yaml,
            Path::new("g.yaml"),
        )
        .unwrap();
        let usage = vec![
            used(
                "s",
                "get",
                "namespaces/a/core/configmaps",
                "namespaces/a/core/configmaps:app-config",
                3,
            ),
            used(
                "s",
                "get",
                "namespaces/a/core/configmaps",
                "namespaces/a/core/configmaps:other",
                1,
            ),
            used(
                "s",
                "list",
                "namespaces/a/core/pods",
                "namespaces/a/core/pods",
                2,
            ),
        ];
        let suggestions = with_grants(&observed, &grants, &usage, 5).unwrap();
        assert_eq!(suggestions.len(), 2, "{suggestions:#?}");
        let by_grant = |g: &str| {
            suggestions
                .iter()
                .find(|s| s.grant.as_deref() == Some(g))
                .unwrap_or_else(|| panic!("no suggestion for {g}"))
        };
        // The name glob matched the concrete resource only: narrowing to
        // the pattern would allow every config map, so the name is kept.
        let names = by_grant("get namespaces/a/core/configmaps:app-*");
        assert_eq!(names.kind, NARROW_WILDCARD);
        assert_eq!(
            names.replacement,
            ["get namespaces/a/core/configmaps:app-config"]
        );
        assert_eq!(names.used_count, 3);
        let broad = by_grant("* namespaces/a/*");
        assert_eq!(
            broad.replacement,
            [
                "get namespaces/a/core/configmaps",
                "list namespaces/a/core/pods"
            ]
        );
        assert_eq!(broad.used_count, 6);
        assert_eq!(broad.risk, "high", "a wildcard action may cover writes");
        for s in &suggestions {
            let original: Vec<&Grant> = grants
                .iter()
                .filter(|g| Some(g.label()) == s.grant)
                .collect();
            assert_eq!(original.len(), 1);
            for value in &s.replacement {
                let (action, resource) = value.split_once(' ').unwrap();
                assert!(
                    original[0].covers(action, resource, resource).is_some(),
                    "{value}"
                );
            }
            // The policy, read back, covers no more than the original grant.
            let policy = parse(s.policy.as_deref().unwrap(), Format::Yaml, Path::new("p")).unwrap();
            for g in policy.iter() {
                assert!(!g.is_wildcard(), "{}", g.label());
                assert!(original[0]
                    .covers(&g.rule.action, &g.rule.resource, &g.rule.resource)
                    .is_some());
            }
        }
        assert!(with_grants(&observed, &grants, &usage, 1)
            .unwrap()
            .iter()
            .all(|s| s.grant.as_deref() != Some("* namespaces/a/*")));
    }

    #[test]
    fn unused_grants_are_flagged_with_the_right_confidence() {
        let w = windows();
        let observed = Observed {
            windows: &w,
            first_seen: HashMap::from([("s", at(91))]),
        };
        let grants = parse(
            r#"{"grants": [{"subject": "s", "allow": [{"action": "delete", "resource": "x"}]},
                           {"subject": "ghost", "allow": [{"action": "get", "resource": "y"}]}]}"#,
            Format::Json,
            Path::new("g.json"),
        )
        .unwrap();
        let usage = vec![used("s", "get", "x", "x", 4)];
        let suggestions = with_grants(&observed, &grants, &usage, 5).unwrap();
        assert_eq!(suggestions.len(), 2);
        let ghost = &suggestions[0];
        assert_eq!(
            (ghost.subject.as_str(), ghost.kind.as_str()),
            ("ghost", REMOVE_UNUSED)
        );
        assert_eq!(ghost.confidence, MIN_CONFIDENCE);
        assert_eq!(ghost.risk, "low");
        assert!(
            ghost.explanation.contains("made no calls"),
            "{}",
            ghost.explanation
        );
        let delete = &suggestions[1];
        assert_eq!(delete.kind, REMOVE_UNUSED);
        assert_eq!(delete.risk, "high");
        assert_eq!(delete.used_count, 0);
        assert!(
            delete.explanation.contains("4 allowed calls"),
            "{}",
            delete.explanation
        );
        assert!(
            delete
                .explanation
                .ends_with("the stored history of this identity covers 9 days of the 90d window."),
            "{}",
            delete.explanation
        );
        // Seen for 9 of 90 days.
        assert!(
            (delete.confidence - 0.365).abs() < 1e-9,
            "{}",
            delete.confidence
        );
    }
}

//! Right-sizing, the least-privilege half of the analytics stage: compare
//! what each identity is granted with the allowed calls it made in the
//! observation window.
//!
//! Works on usage aggregates the store computed and on parsed inventories;
//! it never changes any policy, never reads files itself, never talks to
//! Kafka and never serves HTTP. Every suggestion only ever takes access
//! away: a replacement is always matched by the grant it replaces.
//!
//! - `remove-unused`: a grant no allowed call in the window needed.
//! - `remove-binding`: a binding (RBAC) or role assignment (OPA) none of
//!   whose grants any call needed.
//! - `narrow-wildcard`: a grants-file grant with `*` that was used on only
//!   a few (at most `narrow_max_values`) concrete action/resource pairs; the
//!   replacement lists them.
//! - `minimal-policy`: per identity, the reduced policy in the inventory's
//!   language (or, with no inventory, the grants file) that allows exactly
//!   what it used, each rule with the calls that need it.
//!
//! An identity is judged only when its history covers the window, and a
//! grant younger than the grace period is left alone ([`observed`]); the
//! judging itself, shared by every engine, is in [`judge`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use overreach_model::event::{is_sensitive_resource, is_write_action};
use overreach_model::results::Suggestion;

use crate::as_i64;
use crate::error::{AnalyticsError, Result};
use crate::explain;
use crate::glob::Glob;
use crate::grants::{self, Coverage, Grant, GrantRule, Grants, GrantsFile, SubjectGrants};
use crate::hash::stable_id;
use crate::istio;
use crate::opa_data;
use crate::rbac;
use crate::store::Usage;

pub(crate) mod judge;
pub(crate) mod observed;

pub use observed::{confidence, MAX_CONFIDENCE, MIN_CONFIDENCE};

pub(crate) use judge::{Outcome, UsedGrant};
pub(crate) use observed::{Gaps, Observed};

use judge::{grace_note, judge, samples, Identity, Permission};

pub const REMOVE_UNUSED: &str = "remove-unused";
pub const REMOVE_BINDING: &str = "remove-binding";
pub const NARROW_WILDCARD: &str = "narrow-wildcard";
pub const MINIMAL_POLICY: &str = "minimal-policy";

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

/// `action resource`, the way the `grant` and `replacement` columns read.
fn pair(action: &str, resource: &str) -> String {
    format!("{action} {resource}")
}

fn grants_yaml(subject: &str, rules: Vec<GrantRule>, origin: &str) -> Result<String> {
    let file = GrantsFile {
        grants: vec![SubjectGrants {
            subject: subject.to_owned(),
            allow: rules,
        }],
    };
    let yaml = grants::to_yaml(&file).map_err(|source| AnalyticsError::Policy {
        subject: subject.to_owned(),
        source,
    })?;
    Ok(format!("# {origin}\n{yaml}"))
}

fn literal_rules(pairs: &BTreeSet<(String, String)>) -> Vec<GrantRule> {
    pairs
        .iter()
        .map(|(action, resource)| GrantRule {
            action: Glob::escape(action),
            resource: Glob::escape(resource),
            since: None,
        })
        .collect()
}

/// A grants document for one subject allowing exactly `pairs`, with a
/// comment saying where it came from.
fn policy_yaml(subject: &str, pairs: &BTreeSet<(String, String)>, origin: &str) -> Result<String> {
    grants_yaml(subject, literal_rules(pairs), origin)
}

fn usages_by_subject(usage: &[Usage]) -> HashMap<&str, Vec<&Usage>> {
    let mut by_subject: HashMap<&str, Vec<&Usage>> = HashMap::new();
    for u in usage {
        by_subject.entry(u.subject.as_str()).or_default().push(u);
    }
    by_subject
}

/// The items whose flag is set: an identity's policy after a removal.
fn kept<'a, T>(items: &'a [T], keep: &[bool]) -> Vec<&'a T> {
    items
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(item, _)| item)
        .collect()
}

/// Each observed request with the number of calls that made it, as the
/// minimal-policy builders take them.
fn counted<'a, R>(requests: &'a [(R, &Usage)]) -> impl Iterator<Item = (&'a R, usize)> {
    requests
        .iter()
        .map(|(r, u)| (r, usize::try_from(u.count).unwrap_or(0)))
}

/// The unused share of judged grants, 0-100; `None` when none was judged.
pub(crate) fn creep_score(unused: i64, judged: i64) -> Option<i64> {
    (judged > 0).then(|| (unused as f64 * 100.0 / judged as f64).round() as i64)
}

fn last_used(uses: &[&Usage]) -> Option<DateTime<Utc>> {
    uses.iter().map(|u| u.last_seen).max()
}

/// Suggestions against a grants file: unused grants and wildcards used
/// for only a few things. Sorted by subject, kind and grant.
pub(crate) fn with_grants(
    observed: &Observed<'_>,
    grants: &Grants,
    usage: &[Usage],
    narrow_max_values: usize,
) -> Result<Outcome> {
    let by_subject = usages_by_subject(usage);
    let mut out = Outcome::default();
    for subject in grants.subjects() {
        let granted: Vec<&Grant> = grants.iter().filter(|g| g.subject == subject).collect();
        let calls = by_subject.get(subject).cloned().unwrap_or_default();
        let permissions: Vec<Permission<'_>> = granted
            .iter()
            .map(|g| Permission {
                label: g.label(),
                risk: risk(&g.rule.action, &g.rule.resource),
                origin: "the grants file".to_owned(),
                binding: None,
                granted_at: g.rule.since,
                keep: false,
                uses: calls
                    .iter()
                    .copied()
                    .filter(|u| covers(g, u).is_some())
                    .collect(),
            })
            .collect();
        let render = |keep: &[bool]| {
            let rules: Vec<GrantRule> = kept(&granted, keep)
                .into_iter()
                .map(|g| g.rule.clone())
                .collect();
            grants_yaml(subject, rules, &format!("grants of {subject}")).unwrap_or_default()
        };
        let identity = Identity {
            subject,
            who: subject.to_owned(),
            engine: "grants",
            permissions,
            calls: calls.clone(),
            render: &render,
        };
        if !judge(observed, &identity, &mut out) {
            continue;
        }
        for i in 0..granted.len() {
            if let Some(s) = narrow(observed, &identity, &granted, i, narrow_max_values)? {
                out.suggestions.push(s);
            }
        }
    }
    sort(&mut out.suggestions);
    Ok(out)
}

/// Which of a usage row's resource columns `grant` matched, if any.
fn covers(grant: &Grant, u: &Usage) -> Option<Coverage> {
    let resource = u.resource.as_deref().unwrap_or(&u.resource_pattern);
    grant.covers(&u.action, resource, &u.resource_pattern)
}

/// `narrow-wildcard` for the `i`th grant of an identity, when it is a
/// wildcard used on at most `max` concrete action/resource pairs.
fn narrow(
    observed: &Observed<'_>,
    identity: &Identity<'_, '_>,
    granted: &[&Grant],
    i: usize,
    max: usize,
) -> Result<Option<Suggestion>> {
    let grant = granted[i];
    let uses = &identity.permissions[i].uses;
    if uses.is_empty() || !grant.is_wildcard() {
        return Ok(None);
    }
    // The concrete action/resource pairs the grant was needed for: the
    // resource pattern when the grant matched it, else the concrete
    // resource, so a replacement never covers more than the grant did.
    let mut values: BTreeSet<(String, String)> = BTreeSet::new();
    for u in uses {
        let resource = u.resource.as_deref().unwrap_or(&u.resource_pattern);
        let value = match covers(grant, u) {
            Some(Coverage::Pattern) => &u.resource_pattern,
            _ => resource,
        };
        values.insert((u.action.clone(), value.to_owned()));
    }
    if values.len() > max {
        return Ok(None);
    }
    let subject = identity.subject;
    let label = grant.label();
    let used_count: i64 = uses.iter().map(|u| u.count).sum();
    let last = last_used(uses);
    let replacement: Vec<String> = values.iter().map(|(a, r)| pair(a, r)).collect();
    let mut s = observed.suggestion(NARROW_WILDCARD, subject, Some(label.clone()));
    s.risk = risk(&grant.rule.action, &grant.rule.resource).to_owned();
    s.used_count = used_count;
    s.last_used = last;
    s.sample_event_ids = samples(uses.iter().copied());
    s.explanation = format!(
        "{subject} used `{label}` for {calls} in the {window}, last at {last}, on only {n}: {list}; \
         granting just {those} removes everything else the wildcard allows.{note}",
        calls = explain::count(used_count, "allowed call", "allowed calls"),
        window = observed.window_text(),
        last = last.map(explain::time).unwrap_or_default(),
        n = explain::count(
            as_i64(values.len()),
            "action/resource pair",
            "action/resource pairs"
        ),
        list = replacement
            .iter()
            .map(|r| format!("`{r}`"))
            .collect::<Vec<_>>()
            .join(", "),
        those = if values.len() == 1 { "that" } else { "those" },
        note = observed.confidence_note(subject),
    );
    s.policy = Some(policy_yaml(
        subject,
        &values,
        &format!("narrow-wildcard for {subject}: replaces `{label}`"),
    )?);
    // The subject's whole grants with the wildcard swapped for the pairs.
    let mut rules: Vec<GrantRule> = Vec::new();
    for (j, g) in granted.iter().enumerate() {
        if j == i {
            rules.extend(literal_rules(&values));
        } else {
            rules.push(g.rule.clone());
        }
    }
    s.diff = Some(identity.diff_to(&grants_yaml(
        subject,
        rules,
        &format!("grants of {subject}"),
    )?));
    s.replacement = replacement;
    Ok(Some(s))
}

/// Without an inventory: for every subject with allowed calls in the
/// window, the minimal policy that covers them. Sorted by subject.
pub(crate) fn minimal_policies(observed: &Observed<'_>, usage: &[Usage]) -> Result<Outcome> {
    let mut by_subject: BTreeMap<&str, Vec<&Usage>> = BTreeMap::new();
    for u in usage {
        by_subject.entry(&u.subject).or_default().push(u);
    }
    let mut out = Outcome::default();
    for (subject, used) in by_subject {
        let pairs: BTreeSet<(String, String)> = used
            .iter()
            .map(|u| (u.action.clone(), u.resource_pattern.clone()))
            .collect();
        let used_count: i64 = used.iter().map(|u| u.count).sum();
        let last = last_used(&used);
        let mut s = observed.suggestion(MINIMAL_POLICY, subject, None);
        s.replacement = pairs.iter().map(|(a, r)| pair(a, r)).collect();
        s.used_count = used_count;
        s.last_used = last;
        s.sample_event_ids = samples(used.iter().copied());
        s.risk = worst_risk(pairs.iter().map(|(a, r)| risk(a, r))).to_owned();
        s.explanation = format!(
            "{subject} made {calls} in the {window}, last at {last}, on {n}; \
             this policy allows exactly those and nothing else.",
            calls = explain::count(used_count, "allowed call", "allowed calls"),
            window = observed.window_text(),
            last = last.map(explain::time).unwrap_or_default(),
            n = explain::count(
                as_i64(pairs.len()),
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
        out.suggestions.push(s);
    }
    sort(&mut out.suggestions);
    Ok(out)
}

/// By subject, kind and grant: the order of `suggestions.parquet`.
pub(crate) fn sort(suggestions: &mut [Suggestion]) {
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
/// `trust_domain`; object names of a kind collapse past `max_names`), each
/// binding none of whose rules allowed any observed call is a
/// `remove-binding` suggestion, each other rule that allowed none
/// is a `remove-unused` suggestion, and the minimal Role/ClusterRole set
/// covering every allowed call observed is a `minimal-policy` suggestion
/// whose `policy` is that RBAC YAML, each rule commented with the calls
/// that need it, and whose `diff` is from the account's granted roles. The
/// minimal policy is checked to be within the granted rules; where it
/// cannot be (a list of one name granted only by `resourceNames`), the
/// explanation says so.
pub(crate) fn with_rbac(
    observed: &Observed<'_>,
    accounts: &BTreeMap<rbac::ServiceAccount, Vec<rbac::Grant>>,
    trust_domain: &str,
    usage: &[Usage],
    max_names: usize,
) -> Result<Outcome> {
    let by_subject = usages_by_subject(usage);
    let window = observed.window_text();
    let mut out = Outcome::default();
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
        let permissions: Vec<Permission<'_>> = grants
            .iter()
            .map(|grant| Permission {
                label: rbac_rule_text(grant),
                risk: rbac_risk(grant),
                origin: grant.source.to_string(),
                binding: Some(grant.source.to_string()),
                granted_at: grant.source.granted_at,
                keep: false,
                uses: requests
                    .iter()
                    .filter(|(r, _)| rbac::allows(std::slice::from_ref(grant), r).is_some())
                    .map(|(_, u)| *u)
                    .collect(),
            })
            .collect();
        let used_rules = permissions.iter().filter(|p| !p.uses.is_empty()).count();
        let render = |keep: &[bool]| rbac::granted_yaml(account, &kept(grants, keep));
        let identity = Identity {
            subject: &subject,
            who: format!("ServiceAccount {account} ({subject})"),
            engine: "rbac",
            permissions,
            calls: used.clone(),
            render: &render,
        };
        if !judge(observed, &identity, &mut out) || requests.is_empty() {
            continue;
        }
        // Object names collapse as the detectors' do, where the granted
        // rules allow the verb on every object of the kind.
        let rbac_subject = rbac::Subject::ServiceAccount(account.clone());
        let may_collapse = |namespace: Option<&str>, group: &str, resource: &str, verb: &str| {
            let Some(any) = grants.first() else {
                return false;
            };
            let wide = rbac::Grant {
                namespace: namespace.map(str::to_owned),
                rule: rbac::PolicyRule {
                    verbs: vec![verb.to_owned()],
                    api_groups: vec![group.to_owned()],
                    resources: vec![resource.to_owned()],
                    ..rbac::PolicyRule::default()
                },
                source: any.source.clone(),
            };
            rbac::is_within(std::slice::from_ref(&wide), grants)
        };
        let minimal = rbac::minimal_policy_collapsed(
            &rbac_subject,
            counted(&requests),
            max_names,
            &may_collapse,
        );
        let reduced = minimal.grants();
        let within = rbac::is_within(&reduced, grants);
        let mut s = observed.suggestion(MINIMAL_POLICY, &subject, None);
        s.id = stable_id(&[Some(MINIMAL_POLICY), Some(&subject), Some("rbac")]);
        s.replacement = reduced.iter().map(rbac_rule_text).collect();
        s.used_count = used.iter().map(|u| u.count).sum();
        s.last_used = last_used(&used);
        s.sample_event_ids = samples(used.iter().copied());
        s.risk = worst_risk(grants.iter().map(rbac_risk)).to_owned();
        s.explanation = format!(
            "ServiceAccount {account} ({subject}) is granted {granted} and used {used_rules} of them for \
             its {calls} allowed calls in the {window}. The reduced policy ({rules}) allows every \
             one of those calls{within}.{grace}{note}",
            granted = explain::count(as_i64(grants.len()), "rule", "rules"),
            calls = s.used_count,
            rules = explain::count(as_i64(reduced.len()), "rule", "rules"),
            within = if within {
                " and nothing the granted rules do not"
            } else {
                "; some of its rules are broader than the grants (a list or watch of objects \
                 granted only by name): review them"
            },
            grace = grace_note(observed, &identity),
            note = observed.confidence_note(&subject),
        );
        let yaml = minimal.to_yaml();
        s.diff = Some(identity.diff_to(&yaml));
        s.policy = Some(yaml);
        out.suggestions.push(s);
    }
    Ok(out)
}

/// Right-sizing against OPA data-driven RBAC (see [`crate::opa_data`]):
/// for every identity the data binds to roles, each role assignment none
/// of whose grants allowed an observed call is a `remove-binding`
/// suggestion, each other grant that allowed none a `remove-unused`
/// suggestion, and the minimal data document covering every allowed call
/// observed (ids generalized to `*`) is a `minimal-policy` suggestion whose
/// `policy` is that JSON, checked to be within the granted roles.
pub(crate) fn with_opa(
    observed: &Observed<'_>,
    data: &opa_data::OpaData,
    usage: &[Usage],
) -> Result<Outcome> {
    let by_subject = usages_by_subject(usage);
    let window = observed.window_text();
    let mut out = Outcome::default();
    for identity_id in data.user_roles.keys() {
        let subject = identity_id.to_string();
        let grants = opa_data::grants_for(data, identity_id);
        let used = by_subject
            .get(subject.as_str())
            .cloned()
            .unwrap_or_default();
        // Generalized where the pattern has ids (`/v1/orders/{id}` becomes
        // `/v1/orders/*`); else the concrete resource, which for
        // Kubernetes keeps the object name the pattern drops.
        let request = |u: &Usage, generalized: bool| opa_data::Request {
            identity: identity_id.clone(),
            action: u.action.clone(),
            resource: if generalized && u.resource_pattern.contains("{id}") {
                u.resource_pattern.clone()
            } else {
                u.resource
                    .clone()
                    .unwrap_or_else(|| u.resource_pattern.clone())
            },
        };
        let concrete: Vec<(opa_data::Request, &Usage)> =
            used.iter().map(|u| (request(u, false), *u)).collect();
        let permissions: Vec<Permission<'_>> = grants
            .iter()
            .map(|grant| Permission {
                label: pair(&grant.action, &grant.resource),
                risk: risk(&grant.action, &grant.resource),
                origin: format!("role `{}`", grant.role),
                binding: Some(format!("role {}", grant.role)),
                granted_at: None,
                keep: false,
                uses: concrete
                    .iter()
                    .filter(|(r, _)| opa_data::allows(std::slice::from_ref(grant), r))
                    .map(|(_, u)| *u)
                    .collect(),
            })
            .collect();
        let render = |keep: &[bool]| opa_data::granted_json(&kept(&grants, keep));
        let identity = Identity {
            subject: &subject,
            who: subject.clone(),
            engine: "opa",
            permissions,
            calls: used.clone(),
            render: &render,
        };
        if !judge(observed, &identity, &mut out) || used.is_empty() {
            continue;
        }
        let generalized: Vec<(opa_data::Request, &Usage)> =
            used.iter().map(|u| (request(u, true), *u)).collect();
        let minimal = opa_data::minimal_data(identity_id, counted(&generalized));
        let reduced = minimal.grants();
        let covers_all = concrete.iter().all(|(r, _)| opa_data::allows(&reduced, r));
        let within = opa_data::is_within(&reduced, &grants);
        let mut s = observed.suggestion(MINIMAL_POLICY, &subject, None);
        s.id = stable_id(&[Some(MINIMAL_POLICY), Some(&subject), Some("opa")]);
        s.replacement = reduced
            .iter()
            .map(|g| pair(&g.action, &g.resource))
            .collect();
        s.used_count = used.iter().map(|u| u.count).sum();
        s.last_used = last_used(&used);
        s.sample_event_ids = samples(used.iter().copied());
        s.risk = worst_risk(grants.iter().map(|g| risk(&g.action, &g.resource))).to_owned();
        s.explanation = format!(
            "{subject} holds {granted} through {roles}; its {calls} allowed calls in the {window} \
             need {kept}. The reduced data document below{covers}{within}. {needed}.{grace}{note}",
            needed = opa_needed_by(&minimal),
            granted = explain::count(as_i64(grants.len()), "grant", "grants"),
            roles = explain::count(
                as_i64(data.user_roles.get(identity_id).map_or(0, |r| r.len())),
                "role",
                "roles"
            ),
            calls = s.used_count,
            kept = explain::count(as_i64(reduced.len()), "grant", "grants"),
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
            grace = grace_note(observed, &identity),
            note = observed.confidence_note(&subject),
        );
        let json = opa_data::to_json(&[minimal]);
        s.diff = Some(identity.diff_to(&json));
        s.policy = Some(json);
        out.suggestions.push(s);
    }
    Ok(out)
}

/// Which calls each grant of a reduced OPA document is kept for: JSON has
/// no comments to carry it, so the explanation does.
fn opa_needed_by(minimal: &opa_data::MinimalData) -> String {
    const SHOWN: usize = 3;
    let kept: Vec<String> = minimal
        .grants
        .iter()
        .map(|g| {
            let calls: usize = g.needed_by.iter().map(|(_, n)| n).sum();
            let mut resources: Vec<&str> = g
                .needed_by
                .iter()
                .take(SHOWN)
                .map(|(r, _)| r.as_str())
                .collect();
            if g.needed_by.len() > SHOWN {
                resources.push("...");
            }
            format!(
                "`{}` for {} ({})",
                pair(&g.action, &g.resource),
                explain::count(as_i64(calls), "call", "calls"),
                resources.join(", ")
            )
        })
        .collect();
    format!("Kept: {}", kept.join("; "))
}

/// The Istio ALLOW rules naming one principal, one list item per rule, in
/// the shape a reviewer compares with the reduced policy. Istio rules bind
/// many principals, so this is the rules as they apply to this one, not
/// the manifests.
fn istio_granted_yaml(
    principal: &overreach_model::SpiffeId,
    grants: &[&istio::IstioGrant],
) -> String {
    let list = |v: &istio::Values| {
        let values: Vec<String> = v.values.iter().map(|m| quote(&m.to_string())).collect();
        let mut text = format!("[{}]", values.join(", "));
        if !v.not_values.is_empty() {
            let not: Vec<String> = v.not_values.iter().map(|m| quote(&m.to_string())).collect();
            let _ = write!(text, " not [{}]", not.join(", "));
        }
        text
    };
    let mut out = format!(
        "# Istio ALLOW rules naming {}, as Overreach read them.\n",
        istio::istio_principal(principal)
    );
    for g in grants {
        let _ = writeln!(out, "- rule: {}", quote(&g.source.to_string()));
        let _ = writeln!(out, "  appliesTo: {}", quote(&g.target.to_string()));
        if g.conditional {
            out.push_str("  conditional: true\n");
        }
        if g.operations.is_empty() {
            out.push_str("  operations: any\n");
        }
        for op in &g.operations {
            let _ = writeln!(out, "  - methods: {}", list(&op.methods));
            let _ = writeln!(out, "    paths: {}", list(&op.paths));
            if op.hosts.is_set() {
                let _ = writeln!(out, "    hosts: {}", list(&op.hosts));
            }
            if op.ports.is_set() {
                let _ = writeln!(out, "    ports: {}", list(&op.ports));
            }
        }
    }
    out
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
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
) -> Result<Outcome> {
    let by_subject = usages_by_subject(usage);
    let window = observed.window_text();
    let mut out = Outcome::default();
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
        let permissions: Vec<Permission<'_>> = grants
            .iter()
            .map(|grant| Permission {
                label: format!("{} ({})", grant.source, grant.target),
                risk: istio_risk(grant),
                origin: format!("AuthorizationPolicy {}", grant.source),
                binding: None,
                granted_at: grant.granted_at,
                keep: grant.conditional,
                uses: requests
                    .iter()
                    .filter(|(r, _)| {
                        istio::allows(std::slice::from_ref(grant), r) != istio::Decision::Deny
                    })
                    .map(|(_, u)| *u)
                    .collect(),
            })
            .collect();
        let render = |keep: &[bool]| istio_granted_yaml(&principal, &kept(&grants, keep));
        let identity = Identity {
            subject,
            who: (*subject).to_owned(),
            engine: "istio",
            permissions,
            calls: used.clone(),
            render: &render,
        };
        if !judge(observed, &identity, &mut out) || requests.is_empty() {
            continue;
        }
        let minimal = istio::minimal_policy(&principal, counted(&requests));
        let reduced = minimal.grants();
        let within = istio::is_within(&reduced, &grants);
        let mut s = observed.suggestion(MINIMAL_POLICY, subject, None);
        s.id = stable_id(&[Some(MINIMAL_POLICY), Some(subject), Some("istio")]);
        s.used_count = used.iter().map(|u| u.count).sum();
        s.last_used = last_used(&used);
        s.sample_event_ids = samples(used.iter().copied());
        s.replacement = requests
            .iter()
            .map(|(r, _)| format!("{} {} in {}", r.method, r.path, r.target_namespace))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        s.risk = worst_risk(grants.iter().map(|g| istio_risk(g))).to_owned();
        s.explanation = format!(
            "{subject} is allowed by {granted}; its {calls} calls in the {window} need the \
             reduced ALLOW {policies} below{within}.{grace}{note}",
            granted = explain::count(as_i64(grants.len()), "Istio rule", "Istio rules"),
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
            grace = grace_note(observed, &identity),
            note = observed.confidence_note(subject),
        );
        let yaml = minimal.to_yaml();
        s.diff = Some(identity.diff_to(&yaml));
        s.policy = Some(yaml);
        out.suggestions.push(s);
    }
    Ok(out)
}

/// Any method (no operation, or no method listed) can write.
fn istio_risk(grant: &istio::IstioGrant) -> &'static str {
    if grant.operations.is_empty()
        || grant
            .operations
            .iter()
            .any(|op| op.methods.values.is_empty())
    {
        return "high";
    }
    worst_risk(grant.operations.iter().flat_map(|op| {
        op.methods
            .values
            .iter()
            .map(|m| risk(&m.to_string(), "path"))
            .collect::<Vec<_>>()
    }))
}

/// Every finding-worthy use: a previous run's open removal suggestion
/// (`remove-unused`, `remove-binding`) whose grant this run saw used after
/// that run's window ended. Returned as (suggestion, use) pairs.
pub(crate) fn used_after<'a>(
    previous: &'a [Suggestion],
    used: &'a [UsedGrant],
) -> Vec<(&'a Suggestion, &'a UsedGrant)> {
    let mut index: HashMap<(&str, &str), &UsedGrant> = HashMap::new();
    for u in used {
        let key = (u.subject.as_str(), u.grant.as_str());
        match index.get(&key) {
            Some(other) if other.last_used >= u.last_used => {}
            _ => {
                index.insert(key, u);
            }
        }
    }
    previous
        .iter()
        .filter(|s| s.kind == REMOVE_UNUSED || s.kind == REMOVE_BINDING)
        .filter_map(|s| {
            let grant = s.grant.as_deref()?;
            let u = index.get(&(s.subject.as_str(), grant))?;
            (u.last_used > s.window_end).then_some((s, *u))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::Duration;

    use super::*;
    use crate::grants::{parse, Format};
    use crate::windows::Windows;

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
            first_seen: at(98),
            last_seen: at(99),
            days: 2,
            sample_event_id: format!("{subject}-{action}-{resource}"),
        }
    }

    #[test]
    fn creep_is_the_rounded_unused_share_of_judged_grants() {
        assert_eq!(creep_score(0, 0), None);
        assert_eq!(creep_score(0, 4), Some(0));
        assert_eq!(creep_score(1, 3), Some(33));
        assert_eq!(creep_score(1, 8), Some(13));
        assert_eq!(creep_score(113, 199), Some(57));
        assert_eq!(creep_score(5, 5), Some(100));
    }

    #[test]
    fn narrowing_never_broadens() {
        let w = windows();
        let observed = Observed::new(&w, HashMap::from([("s", at(0))]));
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
        let suggestions = with_grants(&observed, &grants, &usage, 5)
            .unwrap()
            .suggestions;
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
            .suggestions
            .iter()
            .all(|s| s.grant.as_deref() != Some("* namespaces/a/*")));
    }

    #[test]
    fn only_identities_watched_for_the_window_are_judged() {
        let w = windows();
        let mut observed = Observed::new(&w, HashMap::from([("new", at(91)), ("old", at(5))]));
        observed.estate_first = at(0);
        let grants = parse(
            r#"{"grants": [{"subject": "new", "allow": [{"action": "delete", "resource": "x"}]},
                           {"subject": "old", "allow": [{"action": "delete", "resource": "x"},
                                                        {"action": "get", "resource": "x"},
                                                        {"action": "list", "resource": "y",
                                                         "since": "2022-04-13T00:00:00Z"}]},
                           {"subject": "ghost", "allow": [{"action": "get", "resource": "y"}]}]}"#,
            Format::Json,
            Path::new("g.json"),
        )
        .unwrap();
        // "list y" was granted 5 days before now.
        assert!(observed.in_grace(Some(at(95))));
        let usage = vec![
            used("new", "get", "x", "x", 4),
            used("old", "get", "x", "x", 4),
        ];
        let out = with_grants(&observed, &grants, &usage, 5).unwrap();
        let summary: Vec<(&str, &str, Option<&str>)> = out
            .suggestions
            .iter()
            .map(|s| (s.subject.as_str(), s.kind.as_str(), s.grant.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                ("ghost", REMOVE_UNUSED, Some("get y")),
                ("old", REMOVE_UNUSED, Some("delete x")),
            ],
            "the new identity is not judged; the young grant waits"
        );
        let ghost = &out.suggestions[0];
        assert_eq!(ghost.confidence, MIN_CONFIDENCE);
        assert_eq!(ghost.risk, "low");
        assert!(
            ghost.explanation.contains("made no calls"),
            "{}",
            ghost.explanation
        );
        let delete = &out.suggestions[1];
        assert_eq!((delete.risk.as_str(), delete.used_count), ("high", 0));
        assert!(
            delete.explanation.contains("4 allowed calls"),
            "{}",
            delete.explanation
        );
        assert_eq!(delete.confidence, MAX_CONFIDENCE);
        let diff = delete.diff.as_deref().unwrap();
        assert!(
            diff.contains("-    - action: delete") || diff.contains("-  - action: delete"),
            "{diff}"
        );
        let status: Vec<(&str, &str, i64, i64, Option<i64>)> = out
            .identities
            .iter()
            .map(|i| {
                (
                    i.subject.as_str(),
                    i.status.as_str(),
                    i.granted,
                    i.in_grace,
                    i.creep_score,
                )
            })
            .collect();
        assert_eq!(
            status,
            [
                ("new", "history-short", 1, 0, None),
                ("old", "partly-in-grace", 3, 1, Some(50)),
                ("ghost", "judged", 1, 0, Some(100)),
            ]
        );
    }

    /// For random grants files and random use: a removed grant covered no
    /// call of its subject; a narrowed wildcard's replacement is within
    /// the wildcard and still allows every call the wildcard allowed; the
    /// subject's whole grants after the suggested change still allow every
    /// call they allowed before.
    #[test]
    fn grants_suggestions_only_take_away_unused_access() {
        use crate::test_rng::Rng;
        let actions = ["get", "list", "create", "delete", "*", "g*"];
        let resources = [
            "namespaces/a/core/pods",
            "namespaces/a/core/pods:web-*",
            "namespaces/a/core/*",
            "namespaces/*/core/secrets",
            "namespaces/b/apps/deployments:api",
            "*",
        ];
        let verbs = ["get", "list", "create", "delete"];
        let concrete = [
            ("namespaces/a/core/pods", "namespaces/a/core/pods:web-0"),
            ("namespaces/a/core/pods", "namespaces/a/core/pods:db-1"),
            ("namespaces/a/core/secrets", "namespaces/a/core/secrets:tls"),
            ("namespaces/b/core/secrets", "namespaces/b/core/secrets:x"),
            (
                "namespaces/b/apps/deployments",
                "namespaces/b/apps/deployments:api",
            ),
        ];
        let w = windows();
        let observed = Observed::new(&w, HashMap::from([("s", at(0))]));
        let mut rng = Rng(0x005e_ed0f_6a17);
        let (mut removed, mut narrowed_count) = (0, 0);
        for case in 0..300 {
            let n = 1 + rng.below(4);
            let mut yaml = String::from("grants:\n  - subject: s\n    allow:\n");
            for _ in 0..n {
                yaml.push_str(&format!(
                    "      - action: '{}'\n        resource: '{}'\n",
                    rng.pick(&actions),
                    rng.pick(&resources)
                ));
            }
            let grants = parse(&yaml, Format::Yaml, Path::new("g.yaml")).unwrap();
            let usage: Vec<Usage> = (0..rng.below(6))
                .map(|_| {
                    let (pattern, resource) = *rng.pick(&concrete);
                    let verb = verbs[rng.below(verbs.len())];
                    used("s", verb, pattern, resource, 1)
                })
                .filter(|u| {
                    grants.covers(
                        "s",
                        &u.action,
                        u.resource.as_deref().unwrap(),
                        &u.resource_pattern,
                    )
                })
                .collect();
            let out = with_grants(&observed, &grants, &usage, 3).unwrap();
            // Apply every suggestion to the subject's grants.
            let mut kept: Vec<GrantRule> = grants.iter().map(|g| g.rule.clone()).collect();
            for s in &out.suggestions {
                let label = s.grant.as_deref().unwrap();
                let original = grants.iter().find(|g| g.label() == label).unwrap();
                match s.kind.as_str() {
                    REMOVE_UNUSED => {
                        for u in &usage {
                            assert!(
                                covers(original, u).is_none(),
                                "case {case}: removed {label} covers {u:?}"
                            );
                        }
                        kept.retain(|r| r != &original.rule);
                        removed += 1;
                    }
                    NARROW_WILDCARD => {
                        narrowed_count += 1;
                        let narrowed =
                            parse(s.policy.as_deref().unwrap(), Format::Yaml, Path::new("p"))
                                .unwrap();
                        for g in narrowed.iter() {
                            assert!(
                                original
                                    .covers(&g.rule.action, &g.rule.resource, &g.rule.resource)
                                    .is_some(),
                                "case {case}: {} broadens {label}",
                                g.label()
                            );
                        }
                        kept.retain(|r| r != &original.rule);
                        kept.extend(narrowed.iter().map(|g| g.rule.clone()));
                    }
                    other => panic!("case {case}: unexpected {other}"),
                }
            }
            let after = grants::Grants::from_file(
                GrantsFile {
                    grants: vec![SubjectGrants {
                        subject: "s".into(),
                        allow: kept,
                    }],
                },
                Path::new("after"),
            )
            .unwrap();
            for u in &usage {
                assert!(
                    after.covers(
                        "s",
                        &u.action,
                        u.resource.as_deref().unwrap(),
                        &u.resource_pattern
                    ),
                    "case {case}: {u:?} refused after the suggestions\n{yaml}"
                );
            }
        }
        assert!(
            removed > 20 && narrowed_count > 20,
            "{removed} removed, {narrowed_count} narrowed"
        );
    }
}

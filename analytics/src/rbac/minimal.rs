//! The minimal RBAC that allows a set of observed requests of one subject.
//!
//! # Shape
//!
//! - Requests in namespace `NS` go to a Role in `NS` (bound by a
//!   RoleBinding there); cluster-scoped requests (no namespace, including
//!   all-namespace lists) and non-resource requests go to one ClusterRole
//!   (bound by a ClusterRoleBinding). Every object is named
//!   `overreach-minimal:<subject>`, where `<subject>` is `NS:NAME` for a
//!   service account, `user:NAME` for a user and `group:NAME` for a group
//!   (`/` and `%`, which object names cannot hold, become `_`). Service
//!   account names never contain `:`, so the scheme is unambiguous for
//!   them; a Role's namespace is its own.
//! - Resource rules are built per `(apiGroup, resource[/subresource])`:
//!   verbs that do not take a name (`create`, `list`, `watch`,
//!   `deletecollection`), and other verbs seen without a name, go to one
//!   rule without `resourceNames`; the remaining verbs go to rules with
//!   `resourceNames`, one per distinct set of verbs used on a name (so a
//!   rule `get, update` on `[a, b]` means both verbs were used on both
//!   names). Rules of one apiGroup that then have the same verbs and names
//!   are merged into one rule listing their resources, which allows
//!   nothing more. Non-resource paths with the same verbs share a rule.
//!   A Role leaves out what the ClusterRole already allows in every
//!   namespace.
//! - Each rule carries the observed calls that need it: in
//!   [`GeneratedRule::needed_by`], and as a YAML comment above it.
//!
//! # What it allows
//!
//! A request is allowed by the generated grants exactly when some observed
//! request has the same verb, apiGroup and resource/subresource (or the
//! same verb and path), and
//!
//! - the same namespace, or the observed one had no namespace (a
//!   ClusterRoleBinding applies in every namespace, so an all-namespace
//!   `list pods` also allows `list pods` in each namespace); and
//! - the same name, or the observed one had no name, or the observed verb
//!   is one that does not take a name (`list` of one object by field
//!   selector grants `list` of all of them).
//!
//! Following Kubernetes' advice, `resourceNames` are never used for
//! `create`, `list`, `watch` or `deletecollection`. So a `list` of one
//! object by field selector, granted by a rule with `resourceNames`, gets
//! a broader rule here than it was granted, and [`super::is_within`] is
//! false for that rule.
//!
//! Nothing else is allowed: no verb is merged into another resource's
//! rule, no name into another verb's rule. (An observed path that itself
//! ends in `*` would be read by Kubernetes as a prefix; Overreach's paths
//! do not.) The `namespaces` object `NS` is in namespace `NS` (see
//! [`super::parse_request`]), so reading it lands in a Role there.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::eval::rule_allows;
use super::{
    BindingKind, Grant, GrantSource, PolicyRule, Request, RoleKind, ServiceAccount, Subject,
    RBAC_API_VERSION, RBAC_GROUP,
};

/// Verbs whose requests have no object name, so `resourceNames` would
/// make a rule useless for them.
pub const UNNAMED_VERBS: [&str; 4] = ["create", "list", "watch", "deletecollection"];

/// How many calls a rule's comment lists before summarising the rest.
const COMMENT_CALLS: usize = 10;

/// The generated policy of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimalPolicy {
    pub subject: Subject,
    /// `metadata.name` of every generated role and binding.
    pub name: String,
    /// ClusterRole rules first, then Roles by namespace.
    pub rules: Vec<GeneratedRule>,
}

/// One generated rule and the observed calls that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedRule {
    /// `None`: the ClusterRole; `Some(ns)`: the Role in `ns`.
    pub namespace: Option<String>,
    pub rule: PolicyRule,
    /// Distinct observed requests this rule allows, with their counts.
    pub needed_by: Vec<(Request, usize)>,
}

/// The object name for a subject's generated roles and bindings.
pub fn object_name(subject: &Subject) -> String {
    let clean = |s: &str| s.replace(['/', '%'], "_");
    let part = match subject {
        Subject::ServiceAccount(sa) => format!("{}:{}", sa.namespace, sa.name),
        Subject::User(u) => match ServiceAccount::from_username(u) {
            Some(sa) => format!("{}:{}", sa.namespace, sa.name),
            None => format!("user:{}", clean(u)),
        },
        Subject::Group(g) => format!("group:{}", clean(g)),
    };
    format!("overreach-minimal:{part}")
}

#[derive(Default)]
struct ResourceUse<'a> {
    unnamed: BTreeSet<&'a str>,
    named: BTreeMap<&'a str, BTreeSet<&'a str>>,
}

/// Builds the minimal policy allowing every request in `observed`, each
/// given with the number of calls that made it (a request given twice
/// adds up).
pub fn minimal_policy<'a>(
    subject: &Subject,
    observed: impl IntoIterator<Item = (&'a Request, usize)>,
) -> MinimalPolicy {
    build(subject, observed, None)
}

/// As [`minimal_policy`], but a verb used on more than `max_names` objects
/// of one kind in one scope is granted on the kind, without
/// `resourceNames` (the detectors' name collapse: generated pod names,
/// rotating secrets, so that the next replica is not refused), wherever
/// `may_collapse(namespace, api_group, resource, verb)` allows it (for
/// example, where the granted rules do not name the objects themselves).
pub fn minimal_policy_collapsed<'a>(
    subject: &Subject,
    observed: impl IntoIterator<Item = (&'a Request, usize)>,
    max_names: usize,
    may_collapse: &MayCollapse<'_>,
) -> MinimalPolicy {
    build(subject, observed, Some((max_names, may_collapse)))
}

/// `(namespace, api_group, resource, verb)`: whether that verb may be
/// granted on every object of the kind.
pub type MayCollapse<'f> = dyn Fn(Option<&str>, &str, &str, &str) -> bool + 'f;

type Collapse<'f> = (usize, &'f MayCollapse<'f>);

fn build<'a>(
    subject: &Subject,
    observed: impl IntoIterator<Item = (&'a Request, usize)>,
    collapse: Option<Collapse<'_>>,
) -> MinimalPolicy {
    let mut counts: BTreeMap<&Request, usize> = BTreeMap::new();
    for (r, n) in observed {
        *counts.entry(r).or_insert(0) += n;
    }

    // scope -> (group, resource) -> use; scope None also holds paths.
    type Key<'a> = (&'a str, String);
    let mut resources: BTreeMap<Option<&str>, BTreeMap<Key<'_>, ResourceUse<'_>>> = BTreeMap::new();
    let mut paths: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for request in counts.keys() {
        match request {
            Request::NonResource(r) => {
                paths.entry(&r.path).or_default().insert(&r.verb);
            }
            Request::Resource(r) => {
                let entry = resources
                    .entry(r.namespace.as_deref())
                    .or_default()
                    .entry((r.api_group.as_str(), r.combined_resource()))
                    .or_default();
                match r.name.as_deref() {
                    Some(name) if !UNNAMED_VERBS.contains(&r.verb.as_str()) => {
                        entry.named.entry(name).or_default().insert(&r.verb);
                    }
                    _ => {
                        entry.unnamed.insert(&r.verb);
                    }
                }
            }
        }
    }

    if let Some((max, may_collapse)) = collapse {
        for (scope, uses) in resources.iter_mut() {
            for ((group, resource), usage) in uses.iter_mut() {
                let mut names_per_verb: BTreeMap<&str, usize> = BTreeMap::new();
                for verbs in usage.named.values() {
                    for verb in verbs {
                        *names_per_verb.entry(*verb).or_insert(0) += 1;
                    }
                }
                for (verb, n) in names_per_verb {
                    if n > max && may_collapse(*scope, group, resource, verb) {
                        usage.unnamed.insert(verb);
                        for verbs in usage.named.values_mut() {
                            verbs.remove(&verb);
                        }
                    }
                }
                usage.named.retain(|_, verbs| !verbs.is_empty());
            }
        }
    }

    // What the ClusterRole grants applies in every namespace too: drop it
    // from the Roles.
    if let Some(cluster) = resources.remove(&None) {
        for uses in resources.values_mut() {
            for (key, usage) in uses.iter_mut() {
                let Some(wide) = cluster.get(key) else {
                    continue;
                };
                usage.unnamed.retain(|v| !wide.unnamed.contains(v));
                for (name, verbs) in usage.named.iter_mut() {
                    verbs.retain(|v| {
                        !wide.unnamed.contains(v)
                            && !wide.named.get(name).is_some_and(|w| w.contains(v))
                    });
                }
            }
        }
        resources.insert(None, cluster);
    }

    let mut rules: Vec<(Option<String>, PolicyRule)> = Vec::new();
    if !paths.is_empty() {
        let mut by_verbs: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
        for (path, verbs) in paths {
            by_verbs
                .entry(strings(verbs))
                .or_default()
                .push(path.to_owned());
        }
        for (verbs, urls) in by_verbs {
            rules.push((
                None,
                PolicyRule {
                    verbs,
                    non_resource_urls: urls,
                    ..PolicyRule::default()
                },
            ));
        }
    }
    for (scope, uses) in resources {
        // (group, verbs, names) -> resources: merging keeps it exact.
        type Shape<'a> = (&'a str, Vec<String>, Vec<String>);
        let mut merged: BTreeMap<Shape<'_>, Vec<String>> = BTreeMap::new();
        for ((group, resource), mut usage) in uses {
            let mut by_verbs: BTreeMap<Vec<String>, Vec<String>> = BTreeMap::new();
            for (name, verbs) in &mut usage.named {
                verbs.retain(|v| !usage.unnamed.contains(v));
                if !verbs.is_empty() {
                    by_verbs
                        .entry(strings(verbs.iter().copied()))
                        .or_default()
                        .push((*name).to_owned());
                }
            }
            if !usage.unnamed.is_empty() {
                merged
                    .entry((group, strings(usage.unnamed), Vec::new()))
                    .or_default()
                    .push(resource.clone());
            }
            for (verbs, names) in by_verbs {
                merged
                    .entry((group, verbs, names))
                    .or_default()
                    .push(resource.clone());
            }
        }
        for ((group, verbs, names), resources) in merged {
            rules.push((
                scope.map(str::to_owned),
                PolicyRule {
                    verbs,
                    api_groups: vec![group.to_owned()],
                    resources,
                    resource_names: names,
                    non_resource_urls: Vec::new(),
                },
            ));
        }
    }

    let rules = rules
        .into_iter()
        .map(|(namespace, rule)| {
            let needed_by = counts
                .iter()
                .filter(|(r, _)| {
                    let in_scope = namespace.is_none() || r.namespace() == namespace.as_deref();
                    in_scope && rule_allows(&rule, r)
                })
                .map(|(r, n)| ((*r).clone(), *n))
                .collect();
            GeneratedRule {
                namespace,
                rule,
                needed_by,
            }
        })
        .collect();
    MinimalPolicy {
        name: object_name(subject),
        subject: subject.clone(),
        rules,
    }
}

fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    items.into_iter().map(str::to_owned).collect()
}

impl MinimalPolicy {
    /// The namespaces that get a Role, and `None` first when there is a
    /// ClusterRole.
    pub fn scopes(&self) -> Vec<Option<&str>> {
        let mut scopes: Vec<Option<&str>> =
            self.rules.iter().map(|r| r.namespace.as_deref()).collect();
        scopes.dedup();
        scopes
    }

    /// The policy as grants, for [`super::allows`] and [`super::is_within`].
    pub fn grants(&self) -> Vec<Grant> {
        self.rules
            .iter()
            .map(|r| {
                let (role_kind, binding_kind) = match r.namespace {
                    Some(_) => (RoleKind::Role, BindingKind::RoleBinding),
                    None => (RoleKind::ClusterRole, BindingKind::ClusterRoleBinding),
                };
                Grant {
                    namespace: r.namespace.clone(),
                    rule: r.rule.clone(),
                    source: GrantSource {
                        role_kind,
                        role: self.name.clone(),
                        binding_kind,
                        binding: self.name.clone(),
                        binding_namespace: r.namespace.clone(),
                        granted_at: None,
                    },
                }
            })
            .collect()
    }

    /// The policy as Kubernetes manifests: per scope a role and the
    /// binding of the subject to it, `rbac.authorization.k8s.io/v1`, each
    /// rule preceded by comments naming the calls that need it.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        let calls: usize = self
            .rules
            .iter()
            .flat_map(|r| &r.needed_by)
            .map(|(_, n)| n)
            .sum();
        let _ = writeln!(
            out,
            "# Minimal RBAC for {}, generated by Overreach from observed calls.",
            comment(&describe(&self.subject))
        );
        let _ = writeln!(
            out,
            "# {} rules for {calls} observed calls; each rule lists the calls that need it. Review before applying.",
            self.rules.len()
        );
        for scope in self.scopes() {
            let (role_kind, binding_kind) = match scope {
                Some(_) => ("Role", "RoleBinding"),
                None => ("ClusterRole", "ClusterRoleBinding"),
            };
            out.push_str("---\n");
            let _ = writeln!(out, "apiVersion: {RBAC_API_VERSION}");
            let _ = writeln!(out, "kind: {role_kind}");
            self.metadata(&mut out, scope);
            out.push_str("rules:\n");
            for r in self
                .rules
                .iter()
                .filter(|r| r.namespace.as_deref() == scope)
            {
                write_rule(&mut out, r);
            }
            out.push_str("---\n");
            let _ = writeln!(out, "apiVersion: {RBAC_API_VERSION}");
            let _ = writeln!(out, "kind: {binding_kind}");
            self.metadata(&mut out, scope);
            out.push_str("roleRef:\n");
            let _ = writeln!(out, "  apiGroup: {RBAC_GROUP}");
            let _ = writeln!(out, "  kind: {role_kind}");
            let _ = writeln!(out, "  name: {}", quote(&self.name));
            out.push_str("subjects:\n");
            match &self.subject {
                Subject::ServiceAccount(sa) => write_sa(&mut out, sa),
                Subject::User(u) => match ServiceAccount::from_username(u) {
                    Some(sa) => write_sa(&mut out, &sa),
                    None => write_named(&mut out, "User", u),
                },
                Subject::Group(g) => write_named(&mut out, "Group", g),
            }
        }
        out
    }

    fn metadata(&self, out: &mut String, scope: Option<&str>) {
        out.push_str("metadata:\n");
        let _ = writeln!(out, "  name: {}", quote(&self.name));
        if let Some(ns) = scope {
            let _ = writeln!(out, "  namespace: {}", quote(ns));
        }
        out.push_str("  labels:\n");
        out.push_str("    app.kubernetes.io/managed-by: overreach\n");
    }
}

fn describe(subject: &Subject) -> String {
    match subject {
        Subject::ServiceAccount(sa) => format!("ServiceAccount {sa}"),
        Subject::User(u) => match ServiceAccount::from_username(u) {
            Some(sa) => format!("ServiceAccount {sa}"),
            None => format!("User {u}"),
        },
        Subject::Group(g) => format!("Group {g}"),
    }
}

fn write_sa(out: &mut String, sa: &ServiceAccount) {
    out.push_str("  - kind: ServiceAccount\n");
    let _ = writeln!(out, "    name: {}", quote(&sa.name));
    let _ = writeln!(out, "    namespace: {}", quote(&sa.namespace));
}

fn write_named(out: &mut String, kind: &str, name: &str) {
    let _ = writeln!(out, "  - kind: {kind}");
    let _ = writeln!(out, "    apiGroup: {RBAC_GROUP}");
    let _ = writeln!(out, "    name: {}", quote(name));
}

fn write_rule(out: &mut String, r: &GeneratedRule) {
    out.push_str("  # needed by:\n");
    for (request, n) in r.needed_by.iter().take(COMMENT_CALLS) {
        let calls = if *n == 1 { "call" } else { "calls" };
        let _ = writeln!(out, "  #   {} ({n} {calls})", comment(&request.to_string()));
    }
    if r.needed_by.len() > COMMENT_CALLS {
        let _ = writeln!(
            out,
            "  #   ... and {} more requests",
            r.needed_by.len() - COMMENT_CALLS
        );
    }
    write_policy_rule(out, &r.rule);
}

/// One rule as a `rules:` list item, fields in the order Kubernetes
/// prints them.
fn write_policy_rule(out: &mut String, rule: &PolicyRule) {
    let mut first = true;
    let mut field = |out: &mut String, key: &str, values: &[String]| {
        if values.is_empty() {
            return;
        }
        let prefix = if first { "  - " } else { "    " };
        first = false;
        let list: Vec<String> = values.iter().map(|v| quote(v)).collect();
        let _ = writeln!(out, "{prefix}{key}: [{}]", list.join(", "));
    };
    field(out, "apiGroups", &rule.api_groups);
    field(out, "resources", &rule.resources);
    field(out, "resourceNames", &rule.resource_names);
    field(out, "nonResourceURLs", &rule.non_resource_urls);
    field(out, "verbs", &rule.verbs);
}

/// What a service account holds, rendered the way [`MinimalPolicy::to_yaml`]
/// renders a reduced policy, so that the two diff line by line: per role
/// (as resolved, aggregation applied) its kept rules, then per binding the
/// binding of this account to it. Roles left without rules, and their
/// bindings, are omitted.
pub fn granted_yaml(account: &ServiceAccount, grants: &[&Grant]) -> String {
    // (role kind, role name, role namespace) -> rules, in first-seen order.
    type RoleKey<'a> = (RoleKind, &'a str, Option<&'a str>);
    let mut roles: Vec<(RoleKey<'_>, Vec<&PolicyRule>)> = Vec::new();
    let mut bindings: Vec<&GrantSource> = Vec::new();
    for g in grants {
        let s = &g.source;
        let role_ns = match s.role_kind {
            RoleKind::Role => s.binding_namespace.as_deref(),
            RoleKind::ClusterRole => None,
        };
        let key = (s.role_kind, s.role.as_str(), role_ns);
        match roles.iter_mut().find(|(k, _)| *k == key) {
            Some((_, rules)) => {
                if !rules.contains(&&g.rule) {
                    rules.push(&g.rule);
                }
            }
            None => roles.push((key, vec![&g.rule])),
        }
        if !bindings.iter().any(|b| {
            (b.binding_kind, &b.binding, &b.binding_namespace)
                == (s.binding_kind, &s.binding, &s.binding_namespace)
        }) {
            bindings.push(s);
        }
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Granted RBAC of ServiceAccount {}, as Overreach resolved it.",
        comment(&account.to_string())
    );
    for ((kind, name, namespace), rules) in &roles {
        out.push_str("---\n");
        let _ = writeln!(out, "apiVersion: {RBAC_API_VERSION}");
        let _ = writeln!(out, "kind: {}", kind.as_str());
        out.push_str("metadata:\n");
        let _ = writeln!(out, "  name: {}", quote(name));
        if let Some(ns) = namespace {
            let _ = writeln!(out, "  namespace: {}", quote(ns));
        }
        out.push_str("rules:\n");
        for rule in rules {
            write_policy_rule(&mut out, rule);
        }
    }
    for b in bindings {
        out.push_str("---\n");
        let _ = writeln!(out, "apiVersion: {RBAC_API_VERSION}");
        let _ = writeln!(out, "kind: {}", b.binding_kind.as_str());
        out.push_str("metadata:\n");
        let _ = writeln!(out, "  name: {}", quote(&b.binding));
        if let Some(ns) = &b.binding_namespace {
            let _ = writeln!(out, "  namespace: {}", quote(ns));
        }
        out.push_str("roleRef:\n");
        let _ = writeln!(out, "  apiGroup: {RBAC_GROUP}");
        let _ = writeln!(out, "  kind: {}", b.role_kind.as_str());
        let _ = writeln!(out, "  name: {}", quote(&b.role));
        out.push_str("subjects:\n");
        write_sa(&mut out, account);
    }
    out
}

/// A YAML double-quoted scalar (JSON's string syntax is a subset of it).
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Text safe inside a one-line YAML comment.
fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

//! The Kubernetes RBAC inventory written beside `k8s-audit` output:
//! `rbac.yaml` (Roles, ClusterRoles and their bindings for the simulated
//! prod cluster's service accounts) and `rbac-overgrants.json` (the grants
//! in it that were put there on purpose and that nothing uses), so a test
//! can check right-sizing finds exactly what drifted.
//!
//! A test-data stage like the rest of the simulator: it only writes files,
//! never reads a cluster, and does not depend on the analytics crate's RBAC
//! evaluator; [`Rule::covers`] is the part of Kubernetes' RBAC matching the
//! simulated calls need (verb, group, resource or `resource/subresource`,
//! resourceName, and the binding's namespace).
//!
//! The inventory is built after the traffic, from the calls actually
//! written ([`Traffic`]), so it holds whatever the run produced:
//! - every allowed call outside an incident is granted by the account's own
//!   Role, named after the account and bound by a RoleBinding of the same
//!   name (what the audit annotations say), created well before the period;
//! - no rule, of any role, covers a call the simulator denied;
//! - incident calls are not granted on purpose: some happen to be covered
//!   (a volume spike on a usual route), most are not;
//! - the over-grants are chosen from the seed ([`STREAM_RBAC`]) and kept
//!   only where the account's calls fit them: a whole rule nothing matched
//!   ([`Unused::Rule`]), or a rule used for fewer verbs than it grants
//!   ([`Unused::Verbs`]). A few are created in the last days of the period
//!   and marked `in_grace`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::estate::{Estate, Route, DAY_US, HOUR_US, PROD};
use crate::generate::Ev;
use crate::render::rfc3339_secs;
use crate::rng::Rng;
use crate::{io, SimError, K8S_TRUST_DOMAIN};

/// Stream tag for [`Rng::derive`].
pub const STREAM_RBAC: u64 = 7;
pub const API_VERSION: &str = "rbac.authorization.k8s.io/v1";
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Grants created this close to the end of the period are `in_grace`.
pub const RECENT_US: i64 = 7 * DAY_US;

pub const YAML_FILE: &str = "rbac.yaml";
pub const OVERGRANTS_FILE: &str = "rbac-overgrants.json";

const READ_VERBS: [&str; 3] = ["get", "list", "watch"];
const VERB_ORDER: [&str; 9] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "*",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RoleKind {
    Role,
    ClusterRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum BindingKind {
    RoleBinding,
    ClusterRoleBinding,
}

/// One rule of a Role or ClusterRole; `""` is the core group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    /// Always written in `rbac-overgrants.json`; omitted from `rbac.yaml`
    /// when empty, as Kubernetes does.
    #[serde(default)]
    pub resource_names: Vec<String>,
}

impl Rule {
    fn new(verbs: &[&str], group: &str, resources: &[&str], names: &[&str]) -> Self {
        let mut rule = Rule {
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            api_groups: vec![group.to_owned()],
            resources: resources.iter().map(|r| r.to_string()).collect(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
        };
        sort_verbs(&mut rule.verbs);
        rule
    }

    /// Whether this rule allows `call`, as Kubernetes' RBAC authorizer
    /// decides it (the binding's namespace is checked by the caller).
    pub fn covers(&self, call: &Call) -> bool {
        let has = |list: &[String], x: &str| list.iter().any(|v| v == x || v == "*");
        let resource = match &call.subresource {
            Some(sub) => format!("{}/{sub}", call.resource),
            None => call.resource.clone(),
        };
        let resource_ok = self.resources.iter().any(|r| {
            *r == "*"
                || *r == resource
                || call
                    .subresource
                    .as_deref()
                    .is_some_and(|sub| r.strip_prefix("*/") == Some(sub))
        });
        has(&self.verbs, &call.verb)
            && has(&self.api_groups, &call.group)
            && resource_ok
            && (self.resource_names.is_empty()
                || call
                    .authorized_name()
                    .is_some_and(|n| self.resource_names.iter().any(|x| x == n)))
    }
}

fn sort_verbs(verbs: &mut Vec<String>) {
    verbs.sort_by_key(|v| {
        (
            VERB_ORDER
                .iter()
                .position(|o| o == v)
                .unwrap_or(VERB_ORDER.len()),
            v.clone(),
        )
    });
    verbs.dedup();
}

/// A Kubernetes service account, `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

/// A Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub kind: RoleKind,
    pub name: String,
    /// Set for a Role, `None` for a ClusterRole.
    pub namespace: Option<String>,
    pub created_us: i64,
    pub rules: Vec<Rule>,
}

/// A RoleBinding or ClusterRoleBinding of service accounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub kind: BindingKind,
    pub name: String,
    /// Set for a RoleBinding, `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    pub created_us: i64,
    pub role_kind: RoleKind,
    pub role: String,
    pub subjects: Vec<ServiceAccount>,
}

impl Binding {
    /// Whether the binding's grants apply to a call in `namespace`.
    pub fn applies_in(&self, namespace: Option<&str>) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| namespace == Some(ns))
    }

    /// The namespace of the role it refers to: its own, for a Role.
    fn role_namespace(&self) -> Option<&str> {
        match self.role_kind {
            RoleKind::Role => self.namespace.as_deref(),
            RoleKind::ClusterRole => None,
        }
    }
}

/// How much of an over-granted rule is unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Unused {
    /// No call of the account matches the rule at all: the whole grant can
    /// go (Overreach's `remove-unused`).
    Rule,
    /// Calls match the rule, but only for `used_verbs`; the rest of its
    /// verbs (all others, for `*`) are unused.
    Verbs,
}

/// The role and binding an over-grant comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef<K> {
    pub kind: K,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One entry of `rbac-overgrants.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Overgrant {
    pub service_account: ServiceAccount,
    /// The SPIFFE ID ingest gives the account (`--trust-domain
    /// prod.acme.example`).
    pub subject: String,
    pub role: ObjectRef<RoleKind>,
    pub binding: ObjectRef<BindingKind>,
    /// The namespace the grant applies in; `None` (null) for every
    /// namespace (a ClusterRoleBinding).
    pub applies_in: Option<String>,
    /// The rule exactly as `rbac.yaml` holds it.
    pub rule: Rule,
    pub unused: Unused,
    /// Verbs the account's calls used through this rule; empty for
    /// [`Unused::Rule`].
    pub used_verbs: Vec<String>,
    /// When the grant came to be: the later of the role's and the
    /// binding's `creationTimestamp`.
    pub created: String,
    /// Created within the last 7 days of the simulated period, so a grace
    /// period of 7 days or more keeps it from being judged at the end.
    pub in_grace: bool,
    pub why: String,
}

/// Counts of what the inventory holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RbacSummary {
    /// Service accounts bound to at least one role.
    pub service_accounts: usize,
    pub roles: usize,
    pub bindings: usize,
    /// (service account, rule, binding) triples: what an RBAC evaluator
    /// lists as grants.
    pub grants: usize,
    pub overgrants: usize,
    pub in_grace: usize,
}

/// The inventory and its answer key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    pub roles: Vec<Role>,
    pub bindings: Vec<Binding>,
    pub overgrants: Vec<Overgrant>,
}

/// A Kubernetes API call as the RBAC authorizer sees it, from a route.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    pub namespace: Option<String>,
    pub name: Name,
}

/// The object name of a call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Name {
    /// A collection request (list, watch, create).
    None,
    /// The same name on every call of the route.
    Fixed(String),
    /// A name with a generated part (a pod suffix): no resourceNames rule
    /// can name it in advance.
    Generated,
}

impl Call {
    /// The call a Kubernetes API route makes; `None` for other routes.
    pub fn of(route: &Route) -> Option<Call> {
        let k = route.k8s.as_ref()?;
        let name = match k.name_at {
            None => Name::None,
            Some(at) => {
                // The prefix before the name is literal, so it has the same
                // length in the template as in every rendered path.
                let template = route.display();
                let name = template
                    .get(route.method.len() + 1 + at..)
                    .unwrap_or("")
                    .split('/')
                    .next()
                    .unwrap_or("");
                if name.contains('{') {
                    Name::Generated
                } else {
                    Name::Fixed(name.to_owned())
                }
            }
        };
        Some(Call {
            verb: route.method.clone(),
            group: k.group.to_owned(),
            resource: k.resource.to_owned(),
            subresource: k.subresource.map(String::from),
            namespace: k.namespace.clone(),
            name,
        })
    }

    /// The name the authorizer checks resourceNames against: none for
    /// `create`, whose object does not exist yet.
    pub fn authorized_name(&self) -> Option<&str> {
        match &self.name {
            Name::Fixed(n) if self.verb != "create" => Some(n),
            _ => None,
        }
    }

    fn rule_resource(&self) -> String {
        match &self.subresource {
            Some(sub) => format!("{}/{sub}", self.resource),
            None => self.resource.clone(),
        }
    }
}

/// What one route of one account did in the written output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Seen {
    /// Allowed outside any incident (background or a benign deploy).
    pub allowed: bool,
    /// Allowed inside an incident.
    pub allowed_in_incident: bool,
    pub denied: bool,
}

/// The distinct (account, route) pairs written, with their decisions:
/// bounded by the estate's routes, not by the number of events.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    seen: BTreeMap<(usize, usize), Seen>,
}

impl Traffic {
    /// Records a written event; `incident` when its label is not benign.
    pub fn record(&mut self, ev: &Ev, incident: bool) {
        let s = self.seen.entry((ev.subject, ev.route)).or_default();
        match (ev.allow, incident) {
            (false, _) => s.denied = true,
            (true, false) => s.allowed = true,
            (true, true) => s.allowed_in_incident = true,
        }
    }
}

/// How the calls of one account fit a rule in one scope.
#[derive(Debug, Default)]
struct Fit {
    denied: bool,
    used_verbs: BTreeSet<String>,
}

impl Fit {
    /// The unused part of a rule with this fit; `None` when it must not be
    /// granted (it covers a denied call) or is wholly used.
    fn unused(&self, rule: &Rule) -> Option<Unused> {
        if self.denied {
            None
        } else if self.used_verbs.is_empty() {
            Some(Unused::Rule)
        } else {
            rule.verbs
                .iter()
                .any(|v| v == "*" || !self.used_verbs.contains(v))
                .then_some(Unused::Verbs)
        }
    }
}

/// Builds the inventory of the prod cluster for a run that covered
/// `[start_us, end_us)` and wrote `traffic`.
pub fn build(
    estate: &Estate,
    traffic: &Traffic,
    seed: u64,
    start_us: i64,
    end_us: i64,
) -> Inventory {
    let mut calls: BTreeMap<usize, Vec<(Call, Seen)>> = BTreeMap::new();
    for (&(wi, route), &seen) in &traffic.seen {
        if let Some(call) = Call::of(&estate.routes[route]) {
            calls.entry(wi).or_default().push((call, seen));
        }
    }
    let accounts = estate
        .workloads
        .iter()
        .enumerate()
        .filter(|(_, w)| w.env == PROD && !w.ghost)
        .map(|(i, _)| i)
        .collect();
    let mut b = Builder {
        estate,
        rng: Rng::derive(seed, &[STREAM_RBAC]),
        calls,
        accounts,
        start_us,
        end_us,
        roles: BTreeMap::new(),
        bindings: Vec::new(),
        overgrants: Vec::new(),
    };
    b.own_roles();
    b.secret_readers();
    b.legacy_operator();
    b.foreign_namespaces();
    b.recent_grants();
    b.finish()
}

type RoleKey = (RoleKind, Option<String>, String);

struct Builder<'a> {
    estate: &'a Estate,
    rng: Rng,
    calls: BTreeMap<usize, Vec<(Call, Seen)>>,
    /// Prod workloads: the cluster's service accounts.
    accounts: Vec<usize>,
    start_us: i64,
    end_us: i64,
    roles: BTreeMap<RoleKey, Role>,
    bindings: Vec<Binding>,
    overgrants: Vec<Overgrant>,
}

/// Per (group, resource) of an account's own allowed calls.
#[derive(Default)]
struct Uses {
    /// Verbs of calls without a name the authorizer checks.
    unnamed: BTreeSet<String>,
    /// Verbs of calls with a fixed name, and the names.
    named: BTreeSet<String>,
    names: BTreeSet<String>,
}

impl Builder<'_> {
    fn sa(&self, wi: usize) -> ServiceAccount {
        let w = &self.estate.workloads[wi];
        ServiceAccount {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
        }
    }

    fn calls(&self, wi: usize) -> &[(Call, Seen)] {
        self.calls.get(&wi).map_or(&[], Vec::as_slice)
    }

    fn fit(&self, wi: usize, rule: &Rule, scope: Option<&str>) -> Fit {
        let mut fit = Fit::default();
        for (call, seen) in self.calls(wi) {
            let in_scope = scope.is_none_or(|ns| call.namespace.as_deref() == Some(ns));
            if !in_scope || !rule.covers(call) {
                continue;
            }
            fit.denied |= seen.denied;
            if seen.allowed || seen.allowed_in_incident {
                fit.used_verbs.insert(call.verb.clone());
            }
        }
        fit
    }

    /// Whole seconds, as Kubernetes writes timestamps.
    fn secs(t_us: i64) -> i64 {
        t_us - t_us.rem_euclid(1_000_000)
    }

    /// A time `min_days..=max_days` days before the period.
    fn before_start(&mut self, min_days: u64, max_days: u64) -> i64 {
        let days = self.rng.range(min_days, max_days) as i64;
        Self::secs(self.start_us - days * DAY_US - self.rng.below(DAY_US as u64) as i64)
    }

    /// A binding's creation: after its role's, still `min_days` before the
    /// period.
    fn bound_after(&mut self, role_us: i64, min_days: u64, max_days: u64) -> i64 {
        let t = self.before_start(min_days, max_days);
        let latest = self.start_us - min_days as i64 * DAY_US;
        if t > role_us {
            t
        } else {
            Self::secs((role_us + self.rng.range(60, 3 * 86_400) as i64 * 1_000_000).min(latest))
        }
    }

    fn shuffled(&mut self, items: &[usize]) -> Vec<usize> {
        let mut out = items.to_vec();
        self.rng.shuffle(&mut out);
        out
    }

    fn add_role(&mut self, role: Role) {
        let key = (role.kind, role.namespace.clone(), role.name.clone());
        self.roles.insert(key, role);
    }

    fn role(&self, kind: RoleKind, namespace: Option<&str>, name: &str) -> Option<&Role> {
        self.roles
            .get(&(kind, namespace.map(String::from), name.to_owned()))
    }

    /// Adds `binding`, and lists each of `rules` as over-granted to each of
    /// `accounts` whose calls leave some of it unused.
    fn bind(&mut self, binding: Binding, accounts: &[usize], rules: &[Rule], why: &str) {
        for &wi in accounts {
            for rule in rules {
                self.overgrant(wi, &binding, rule, why);
            }
        }
        self.bindings.push(binding);
    }

    /// Lists `rule` of the role bound by `binding` to `wi` as over-granted,
    /// if the account's calls leave some of it unused.
    fn overgrant(&mut self, wi: usize, binding: &Binding, rule: &Rule, why: &str) {
        let fit = self.fit(wi, rule, binding.namespace.as_deref());
        let Some(unused) = fit.unused(rule) else {
            return;
        };
        let role_us = self
            .role(binding.role_kind, binding.role_namespace(), &binding.role)
            .map_or(binding.created_us, |r| r.created_us);
        let created = role_us.max(binding.created_us);
        let mut used_verbs: Vec<String> = fit.used_verbs.into_iter().collect();
        sort_verbs(&mut used_verbs);
        let sa = self.sa(wi);
        self.overgrants.push(Overgrant {
            subject: format!(
                "spiffe://{K8S_TRUST_DOMAIN}/ns/{}/sa/{}",
                sa.namespace, sa.name
            ),
            service_account: sa,
            role: ObjectRef {
                kind: binding.role_kind,
                name: binding.role.clone(),
                namespace: binding.role_namespace().map(str::to_owned),
            },
            binding: ObjectRef {
                kind: binding.kind,
                name: binding.name.clone(),
                namespace: binding.namespace.clone(),
            },
            applies_in: binding.namespace.clone(),
            rule: rule.clone(),
            unused,
            used_verbs,
            created: rfc3339_secs(created),
            in_grace: created >= self.end_us - RECENT_US,
            why: why.to_owned(),
        });
    }

    /// Each account's own Role (or ClusterRole, for cluster-scoped calls)
    /// with what its allowed calls outside incidents need; some drift
    /// further: a read rule widened to `delete` or `*`, or an extra rule it
    /// never uses.
    fn own_roles(&mut self) {
        let mut owners = Vec::new();
        for wi in self.accounts.clone() {
            let sa = self.sa(wi);
            let mut by_ns: BTreeMap<Option<String>, BTreeMap<(String, String), Uses>> =
                BTreeMap::new();
            for (call, seen) in self.calls(wi) {
                if !seen.allowed {
                    continue;
                }
                let uses = by_ns
                    .entry(call.namespace.clone())
                    .or_default()
                    .entry((call.group.clone(), call.rule_resource()))
                    .or_default();
                match (&call.name, call.authorized_name()) {
                    (Name::Fixed(_), Some(n)) => {
                        uses.named.insert(call.verb.clone());
                        uses.names.insert(n.to_owned());
                    }
                    _ => {
                        uses.unnamed.insert(call.verb.clone());
                    }
                }
            }
            for (ns, resources) in by_ns {
                let mut rules = Vec::new();
                for ((group, resource), uses) in resources {
                    let named: Vec<&str> = uses
                        .named
                        .difference(&uses.unnamed)
                        .map(String::as_str)
                        .collect();
                    let names: Vec<&str> = uses.names.iter().map(String::as_str).collect();
                    if !named.is_empty() && self.rng.chance(0.5) {
                        rules.push(Rule::new(&named, &group, &[&resource], &names));
                        if !uses.unnamed.is_empty() {
                            let verbs: Vec<&str> =
                                uses.unnamed.iter().map(String::as_str).collect();
                            rules.push(Rule::new(&verbs, &group, &[&resource], &[]));
                        }
                    } else {
                        let verbs: Vec<&str> = uses
                            .unnamed
                            .union(&uses.named)
                            .map(String::as_str)
                            .collect();
                        rules.push(Rule::new(&verbs, &group, &[&resource], &[]));
                    }
                }
                let (role_kind, binding_kind, name) = match &ns {
                    Some(n) if *n == sa.namespace => {
                        (RoleKind::Role, BindingKind::RoleBinding, sa.name.clone())
                    }
                    Some(_) => (
                        RoleKind::Role,
                        BindingKind::RoleBinding,
                        format!("{}-{}", sa.namespace, sa.name),
                    ),
                    None => (
                        RoleKind::ClusterRole,
                        BindingKind::ClusterRoleBinding,
                        format!("{}:{}", sa.namespace, sa.name),
                    ),
                };
                let created = self.before_start(120, 1000);
                let bound = self.bound_after(created, 100, 1000);
                if ns.as_deref() == Some(sa.namespace.as_str()) {
                    owners.push(wi);
                }
                self.add_role(Role {
                    kind: role_kind,
                    name: name.clone(),
                    namespace: ns.clone(),
                    created_us: created,
                    rules,
                });
                self.bindings.push(Binding {
                    kind: binding_kind,
                    name: name.clone(),
                    namespace: ns,
                    created_us: bound,
                    role_kind,
                    role: name,
                    subjects: vec![sa.clone()],
                });
            }
        }
        let n = owners.len().div_ceil(3);
        for wi in self.shuffled(&owners).into_iter().take(n) {
            self.widen(wi);
        }
        for wi in self.shuffled(&owners).into_iter().take(n) {
            self.extra_rule(wi);
        }
    }

    /// The account's own Role and RoleBinding in its namespace.
    fn own(&self, wi: usize) -> Option<(RoleKey, Binding)> {
        let sa = self.sa(wi);
        let key = (RoleKind::Role, Some(sa.namespace.clone()), sa.name.clone());
        let binding = self
            .bindings
            .iter()
            .find(|b| {
                b.role_kind == RoleKind::Role
                    && b.namespace.as_ref() == Some(&sa.namespace)
                    && b.role == sa.name
            })?
            .clone();
        Some((key, binding))
    }

    /// Widens a rule the account only reads with to `delete` or `*`.
    fn widen(&mut self, wi: usize) {
        let Some((key, binding)) = self.own(wi) else {
            return;
        };
        let Some(role) = self.roles.get(&key) else {
            return;
        };
        let candidates: Vec<usize> = (0..role.rules.len())
            .filter(|&i| {
                let r = &role.rules[i];
                r.resource_names.is_empty()
                    && r.verbs.iter().all(|v| READ_VERBS.contains(&v.as_str()))
            })
            .collect();
        if candidates.is_empty() {
            return;
        }
        let i = *self.rng.pick(&candidates);
        let mut wide = role.rules[i].clone();
        let why = if self.rng.chance(0.5) {
            wide.verbs = vec!["*".to_owned()];
            "own Role widened to every verb on a resource it only reads"
        } else {
            wide.verbs.push("delete".to_owned());
            sort_verbs(&mut wide.verbs);
            "own Role grants delete on a resource it only reads"
        };
        if self
            .fit(wi, &wide, binding.namespace.as_deref())
            .unused(&wide)
            .is_none()
        {
            return;
        }
        if let Some(role) = self.roles.get_mut(&key) {
            role.rules[i] = wide.clone();
        }
        self.overgrant(wi, &binding, &wide, why);
    }

    /// Adds a rule the account never uses to its own Role.
    fn extra_rule(&mut self, wi: usize) {
        let Some((key, binding)) = self.own(wi) else {
            return;
        };
        let Some(role) = self.roles.get(&key) else {
            return;
        };
        let name = self.estate.workloads[wi].name.clone();
        let mut options: Vec<(Rule, &str)> = role
            .rules
            .iter()
            .filter(|r| {
                r.resource_names.is_empty()
                    && r.verbs.iter().all(|v| READ_VERBS.contains(&v.as_str()))
            })
            .map(|r| {
                let resources: Vec<&str> = r.resources.iter().map(String::as_str).collect();
                (
                    Rule::new(&["delete"], &r.api_groups[0], &resources, &[]),
                    "own Role may delete what it only reads",
                )
            })
            .collect();
        options.push((
            Rule::new(
                &["get", "update", "patch"],
                "",
                &["configmaps"],
                &[&format!("{name}-legacy-config")],
            ),
            "own Role names a configmap left from an old release",
        ));
        options.push((
            Rule::new(&["get"], "", &["secrets"], &[&format!("{name}-token")]),
            "own Role names a token secret it never reads",
        ));
        self.rng.shuffle(&mut options);
        for (rule, why) in options {
            let fit = self.fit(wi, &rule, binding.namespace.as_deref());
            if fit.unused(&rule) != Some(Unused::Rule) {
                continue;
            }
            if let Some(role) = self.roles.get_mut(&key) {
                if role.rules.contains(&rule) {
                    continue;
                }
                role.rules.push(rule.clone());
            }
            self.overgrant(wi, &binding, &rule, why);
            return;
        }
    }

    /// The prod namespaces that hold service accounts.
    fn namespaces(&self) -> Vec<String> {
        let set: BTreeSet<String> = self
            .accounts
            .iter()
            .map(|&wi| self.estate.workloads[wi].namespace.clone())
            .collect();
        set.into_iter().collect()
    }

    /// A shared `secret-reader` ClusterRole bound in some namespaces to
    /// accounts that never read a secret.
    fn secret_readers(&mut self) {
        let rule = Rule::new(&READ_VERBS, "", &["secrets"], &[]);
        let mut namespaces = self.namespaces();
        self.rng.shuffle(&mut namespaces);
        let n = ((namespaces.len() as f64 * 0.3).round() as usize).max(1);
        let role_created = self.before_start(700, 1500);
        let mut bound_any = false;
        for ns in namespaces.into_iter().take(n) {
            let members: Vec<usize> = self
                .accounts
                .iter()
                .copied()
                .filter(|&wi| self.estate.workloads[wi].namespace == ns)
                .collect();
            let want = self.rng.range(1, 2) as usize;
            let subjects: Vec<usize> = self
                .shuffled(&members)
                .into_iter()
                .filter(|&wi| self.fit(wi, &rule, Some(&ns)).unused(&rule) == Some(Unused::Rule))
                .take(want)
                .collect();
            if subjects.is_empty() {
                continue;
            }
            let binding = Binding {
                kind: BindingKind::RoleBinding,
                name: "secret-reader".to_owned(),
                namespace: Some(ns.clone()),
                created_us: self.bound_after(role_created, 30, 600),
                role_kind: RoleKind::ClusterRole,
                role: "secret-reader".to_owned(),
                subjects: subjects.iter().map(|&wi| self.sa(wi)).collect(),
            };
            if !bound_any {
                self.add_role(Role {
                    kind: RoleKind::ClusterRole,
                    name: "secret-reader".to_owned(),
                    namespace: None,
                    created_us: role_created,
                    rules: vec![rule.clone()],
                });
                bound_any = true;
            }
            self.bind(
                binding,
                &subjects,
                std::slice::from_ref(&rule),
                "shared secret-reader ClusterRole bound in its namespace; it reads no secret",
            );
        }
    }

    /// A broad `legacy-operator` ClusterRole bound cluster-wide to a few
    /// accounts.
    fn legacy_operator(&mut self) {
        let rules = vec![
            Rule::new(&["*"], "apps", &["deployments"], &[]),
            Rule::new(&["*"], "", &["pods"], &[]),
            Rule::new(&["create"], "", &["pods/exec"], &[]),
        ];
        let want = self.rng.range(2, 4) as usize;
        let subjects: Vec<usize> = self
            .shuffled(&self.accounts.clone())
            .into_iter()
            .filter(|&wi| rules.iter().all(|r| !self.fit(wi, r, None).denied))
            .take(want)
            .collect();
        if subjects.is_empty() {
            return;
        }
        let created = self.before_start(600, 1500);
        let binding = Binding {
            kind: BindingKind::ClusterRoleBinding,
            name: "legacy-operator".to_owned(),
            namespace: None,
            created_us: self.bound_after(created, 60, 600),
            role_kind: RoleKind::ClusterRole,
            role: "legacy-operator".to_owned(),
            subjects: subjects.iter().map(|&wi| self.sa(wi)).collect(),
        };
        self.add_role(Role {
            kind: RoleKind::ClusterRole,
            name: "legacy-operator".to_owned(),
            namespace: None,
            created_us: created,
            rules: rules.clone(),
        });
        self.bind(
            binding,
            &subjects,
            &rules,
            "shared legacy-operator ClusterRole bound cluster-wide",
        );
    }

    /// A `config-editor` Role in a namespace the account never touches,
    /// bound to it there.
    fn foreign_namespaces(&mut self) {
        let rules = vec![
            Rule::new(
                &["get", "list", "watch", "update", "patch"],
                "",
                &["configmaps"],
                &[],
            ),
            Rule::new(&["get", "list"], "apps", &["deployments"], &[]),
        ];
        let all = self.namespaces();
        let n = ((self.accounts.len() as f64 * 0.15).round() as usize).max(1);
        for wi in self.shuffled(&self.accounts.clone()).into_iter().take(n) {
            let sa = self.sa(wi);
            let touched: BTreeSet<Option<&str>> = self
                .calls(wi)
                .iter()
                .map(|(c, _)| c.namespace.as_deref())
                .collect();
            let options: Vec<&String> = all
                .iter()
                .filter(|ns| **ns != sa.namespace && !touched.contains(&Some(ns.as_str())))
                .collect();
            if options.is_empty() {
                continue;
            }
            let ns = self.rng.pick(&options).to_string();
            if rules
                .iter()
                .any(|r| self.fit(wi, r, Some(&ns)).unused(r) != Some(Unused::Rule))
            {
                continue;
            }
            let role_created = match self.role(RoleKind::Role, Some(&ns), "config-editor") {
                Some(r) => r.created_us,
                None => {
                    let created = self.before_start(200, 900);
                    self.add_role(Role {
                        kind: RoleKind::Role,
                        name: "config-editor".to_owned(),
                        namespace: Some(ns.clone()),
                        created_us: created,
                        rules: rules.clone(),
                    });
                    created
                }
            };
            let binding = Binding {
                kind: BindingKind::RoleBinding,
                name: format!("config-editor-{}-{}", sa.namespace, sa.name),
                namespace: Some(ns.clone()),
                created_us: self.bound_after(role_created, 30, 300),
                role_kind: RoleKind::Role,
                role: "config-editor".to_owned(),
                subjects: vec![sa],
            };
            self.bind(
                binding,
                &[wi],
                &rules,
                "Role in a namespace it never touches, bound to it there",
            );
        }
    }

    /// A few unused grants created in the last days of the period: a grace
    /// period keeps them from being judged yet.
    fn recent_grants(&mut self) {
        let templates: [(&str, Vec<Rule>); 3] = [
            (
                "debug",
                vec![
                    Rule::new(&["create"], "", &["pods/exec"], &[]),
                    Rule::new(&["get"], "", &["pods/log"], &[]),
                ],
            ),
            (
                "secrets",
                vec![Rule::new(&["get", "list"], "", &["secrets"], &[])],
            ),
            (
                "events",
                vec![Rule::new(&["list", "watch"], "", &["events"], &[])],
            ),
        ];
        let want = self.rng.range(2, 3) as usize;
        for wi in self.shuffled(&self.accounts.clone()).into_iter().take(want) {
            let sa = self.sa(wi);
            let (suffix, rules) = self.rng.pick(&templates).clone();
            let ns = sa.namespace.clone();
            let rules: Vec<Rule> = rules
                .into_iter()
                .filter(|r| self.fit(wi, r, Some(&ns)).unused(r) == Some(Unused::Rule))
                .collect();
            let name = format!("{}-{suffix}", sa.name);
            if rules.is_empty() || self.role(RoleKind::Role, Some(&ns), &name).is_some() {
                continue;
            }
            let ago =
                self.rng.range(1, 6 * 24) as i64 * HOUR_US + self.rng.below(HOUR_US as u64) as i64;
            let created = Self::secs((self.end_us - ago).max(self.start_us));
            let bound = created + self.rng.range(5, 900) as i64 * 1_000_000;
            self.add_role(Role {
                kind: RoleKind::Role,
                name: name.clone(),
                namespace: Some(ns.clone()),
                created_us: created,
                rules: rules.clone(),
            });
            let binding = Binding {
                kind: BindingKind::RoleBinding,
                name: name.clone(),
                namespace: Some(ns),
                created_us: bound,
                role_kind: RoleKind::Role,
                role: name,
                subjects: vec![sa],
            };
            self.bind(
                binding,
                &[wi],
                &rules,
                "Role created and bound in the last days of the period",
            );
        }
    }

    fn finish(self) -> Inventory {
        // Cluster-wide objects first, then by namespace and name.
        let mut roles: Vec<Role> = self.roles.into_values().collect();
        roles.sort_by(|a, b| {
            (a.kind == RoleKind::Role, &a.namespace, &a.name).cmp(&(
                b.kind == RoleKind::Role,
                &b.namespace,
                &b.name,
            ))
        });
        let mut bindings = self.bindings;
        bindings.sort_by(|a, b| {
            (a.kind == BindingKind::RoleBinding, &a.namespace, &a.name).cmp(&(
                b.kind == BindingKind::RoleBinding,
                &b.namespace,
                &b.name,
            ))
        });
        let mut overgrants = self.overgrants;
        overgrants.sort_by(|a, b| {
            (&a.service_account, &a.binding.namespace, &a.binding.name).cmp(&(
                &b.service_account,
                &b.binding.namespace,
                &b.binding.name,
            ))
        });
        Inventory {
            roles,
            bindings,
            overgrants,
        }
    }
}

// Wire shapes of `rbac.yaml`: Kubernetes' own field names and order.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Manifest<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rules: Option<Vec<WireRule<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_ref: Option<WireRoleRef<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subjects: Option<Vec<WireSubject<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<&'a str>,
    creation_timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRule<'a> {
    api_groups: &'a [String],
    resources: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    resource_names: &'a [String],
    verbs: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WireRoleRef<'a> {
    api_group: &'static str,
    kind: &'static str,
    name: &'a str,
}

#[derive(Serialize)]
struct WireSubject<'a> {
    kind: &'static str,
    name: &'a str,
    namespace: &'a str,
}

fn wire_rules(rules: &[Rule]) -> Vec<WireRule<'_>> {
    rules
        .iter()
        .map(|r| WireRule {
            api_groups: &r.api_groups,
            resources: &r.resources,
            resource_names: &r.resource_names,
            verbs: &r.verbs,
        })
        .collect()
}

impl RoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Role => "Role",
            RoleKind::ClusterRole => "ClusterRole",
        }
    }
}

impl BindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::RoleBinding => "RoleBinding",
            BindingKind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }
}

impl Inventory {
    /// The service accounts' grants: each binding's subjects with each rule
    /// of the role it binds, and the namespace the grant applies in.
    pub fn grants(&self) -> Vec<(&ServiceAccount, &Rule, &Binding)> {
        let mut out = Vec::new();
        for b in &self.bindings {
            let Some(role) = self.roles.iter().find(|r| {
                r.kind == b.role_kind
                    && r.name == b.role
                    && r.namespace.as_deref() == b.role_namespace()
            }) else {
                continue;
            };
            for sa in &b.subjects {
                for rule in &role.rules {
                    out.push((sa, rule, b));
                }
            }
        }
        out
    }

    pub fn summary(&self) -> RbacSummary {
        let accounts: BTreeSet<&ServiceAccount> =
            self.bindings.iter().flat_map(|b| &b.subjects).collect();
        RbacSummary {
            service_accounts: accounts.len(),
            roles: self.roles.len(),
            bindings: self.bindings.len(),
            grants: self.grants().len(),
            overgrants: self.overgrants.len(),
            in_grace: self.overgrants.iter().filter(|o| o.in_grace).count(),
        }
    }

    /// `rbac.yaml`: one document per object, ClusterRoles, Roles,
    /// ClusterRoleBindings then RoleBindings.
    pub fn to_yaml(&self, seed: u64) -> Result<String, serde_yaml::Error> {
        let mut text = format!(
            "# Kubernetes RBAC of the simulated prod cluster ({K8S_TRUST_DOMAIN}), overreach-sim seed {seed}.\n\
             # Grants every service account its simulated API calls outside incidents, and the\n\
             # deliberate over-grants listed in {OVERGRANTS_FILE}.\n"
        );
        for r in &self.roles {
            let doc = Manifest {
                api_version: API_VERSION,
                kind: r.kind.as_str(),
                metadata: Metadata {
                    name: &r.name,
                    namespace: r.namespace.as_deref(),
                    creation_timestamp: rfc3339_secs(r.created_us),
                },
                rules: Some(wire_rules(&r.rules)),
                role_ref: None,
                subjects: None,
            };
            text.push_str("---\n");
            text.push_str(&serde_yaml::to_string(&doc)?);
        }
        for b in &self.bindings {
            let doc = Manifest {
                api_version: API_VERSION,
                kind: b.kind.as_str(),
                metadata: Metadata {
                    name: &b.name,
                    namespace: b.namespace.as_deref(),
                    creation_timestamp: rfc3339_secs(b.created_us),
                },
                rules: None,
                role_ref: Some(WireRoleRef {
                    api_group: RBAC_GROUP,
                    kind: b.role_kind.as_str(),
                    name: &b.role,
                }),
                subjects: Some(
                    b.subjects
                        .iter()
                        .map(|s| WireSubject {
                            kind: "ServiceAccount",
                            name: &s.name,
                            namespace: &s.namespace,
                        })
                        .collect(),
                ),
            };
            text.push_str("---\n");
            text.push_str(&serde_yaml::to_string(&doc)?);
        }
        Ok(text)
    }

    /// Writes `rbac.yaml` and `rbac-overgrants.json` into `dir`.
    pub fn write(&self, dir: &Path, seed: u64) -> crate::Result<()> {
        let yaml_path = dir.join(YAML_FILE);
        let yaml = self.to_yaml(seed).map_err(|source| SimError::EncodeYaml {
            path: yaml_path.clone(),
            source,
        })?;
        std::fs::write(&yaml_path, yaml).map_err(io(&yaml_path))?;
        let json_path = dir.join(OVERGRANTS_FILE);
        let mut json =
            serde_json::to_vec_pretty(&self.overgrants).map_err(|source| SimError::Encode {
                path: json_path.clone(),
                source,
            })?;
        json.push(b'\n');
        std::fs::write(&json_path, json).map_err(io(&json_path))?;
        Ok(())
    }
}

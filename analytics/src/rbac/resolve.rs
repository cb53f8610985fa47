//! From roles and bindings to effective grants.
//!
//! - An aggregated ClusterRole (`aggregationRule.clusterRoleSelectors`)
//!   gets the rules of every other ClusterRole whose labels match any of
//!   its selectors, transitively (an aggregated role can feed another), as
//!   Kubernetes' aggregation controller does. Its own `rules` are kept too:
//!   in a `kubectl get` export they are the controller's last result and
//!   may name roles the export lacks; in a hand-written manifest the
//!   controller would overwrite them, so keeping them can only overstate a
//!   grant, never hide one. A cycle is cut where it closes.
//! - A RoleBinding grants its Role (same namespace) or ClusterRole only in
//!   its own namespace; a ClusterRoleBinding grants a ClusterRole
//!   cluster-wide. A binding whose role is missing is a [`Warning`].
//! - Subjects reach a service account directly, as the User
//!   `system:serviceaccount:NS:NAME`, or through the groups every service
//!   account token carries: `system:serviceaccounts`,
//!   `system:serviceaccounts:NS` and `system:authenticated`.
//!
//! When two objects share kind, namespace and name, the later one wins (as
//! with `kubectl apply`) and a warning says so.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{
    Binding, BindingKind, Grant, GrantSource, PolicyRule, Rbac, Role, RoleKind, ServiceAccount,
    Subject,
};

/// The group of every service account.
pub const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// The group of every authenticated user, service accounts included.
pub const AUTHENTICATED: &str = "system:authenticated";

/// Something odd in the manifests that does not stop resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Warning {
    /// The binding's role does not exist: it grants nothing (until the
    /// role is created).
    DanglingBinding {
        binding_kind: BindingKind,
        binding: String,
        namespace: Option<String>,
        role_kind: RoleKind,
        role: String,
    },
    /// A later object replaced an earlier one with the same identity.
    Duplicate {
        kind: &'static str,
        namespace: Option<String>,
        name: String,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let qualified = |ns: &Option<String>, name: &str| match ns {
            Some(ns) => format!("{ns}/{name}"),
            None => name.to_owned(),
        };
        match self {
            Warning::DanglingBinding {
                binding_kind,
                binding,
                namespace,
                role_kind,
                role,
            } => {
                let role_ns = if *role_kind == RoleKind::Role {
                    namespace
                } else {
                    &None
                };
                write!(
                    f,
                    "{} {} references {} {}, which does not exist",
                    binding_kind.as_str(),
                    qualified(namespace, binding),
                    role_kind.as_str(),
                    qualified(role_ns, role)
                )
            }
            Warning::Duplicate {
                kind,
                namespace,
                name,
            } => write!(
                f,
                "{kind} {} is defined more than once; the last definition is used",
                qualified(namespace, name)
            ),
        }
    }
}

/// Every binding's grants, per subject.
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    /// `(subject, grant)` for every subject of every binding whose role
    /// exists, one grant per rule.
    pub bound: Vec<(Subject, Grant)>,
    /// Every service account the manifests name (as a subject, a
    /// `system:serviceaccount:` user, or a `ServiceAccount` object).
    pub accounts: BTreeSet<ServiceAccount>,
    pub warnings: Vec<Warning>,
}

impl Resolved {
    /// What a user with these groups may do (the authorizer's view: a
    /// subject matches by user name or by group).
    pub fn grants_for_user(&self, username: &str, groups: &[&str]) -> Vec<Grant> {
        let sa = ServiceAccount::from_username(username);
        let mut grants: Vec<Grant> = self
            .bound
            .iter()
            .filter(|(subject, _)| match subject {
                Subject::User(u) => u == username,
                Subject::Group(g) => groups.contains(&g.as_str()),
                Subject::ServiceAccount(s) => sa.as_ref() == Some(s),
            })
            .map(|(_, g)| g.clone())
            .collect();
        grants.sort();
        grants.dedup();
        grants
    }

    /// A service account's effective grants, through its own bindings and
    /// the groups its tokens carry.
    pub fn grants_for(&self, sa: &ServiceAccount) -> Vec<Grant> {
        let ns_group = format!("{ALL_SERVICE_ACCOUNTS}:{}", sa.namespace);
        self.grants_for_user(
            &sa.username(),
            &[ALL_SERVICE_ACCOUNTS, ns_group.as_str(), AUTHENTICATED],
        )
    }

    /// Every known service account with its effective grants.
    pub fn service_accounts(&self) -> BTreeMap<ServiceAccount, Vec<Grant>> {
        self.accounts
            .iter()
            .map(|sa| (sa.clone(), self.grants_for(sa)))
            .collect()
    }
}

type RoleKey = (RoleKind, Option<String>, String);

/// Resolves aggregation and bindings.
pub fn resolve(rbac: &Rbac) -> Resolved {
    let mut resolved = Resolved::default();
    let mut roles: BTreeMap<RoleKey, &Role> = BTreeMap::new();
    for role in &rbac.roles {
        let key = (role.kind, role.namespace.clone(), role.name.clone());
        if roles.insert(key, role).is_some() {
            resolved.warnings.push(Warning::Duplicate {
                kind: role.kind.as_str(),
                namespace: role.namespace.clone(),
                name: role.name.clone(),
            });
        }
    }
    let mut bindings: BTreeMap<(BindingKind, Option<String>, String), &Binding> = BTreeMap::new();
    for b in &rbac.bindings {
        if bindings
            .insert((b.kind, b.namespace.clone(), b.name.clone()), b)
            .is_some()
        {
            resolved.warnings.push(Warning::Duplicate {
                kind: b.kind.as_str(),
                namespace: b.namespace.clone(),
                name: b.name.clone(),
            });
        }
    }

    let cluster_roles: BTreeMap<&str, &Role> = roles
        .values()
        .filter(|r| r.kind == RoleKind::ClusterRole)
        .map(|r| (r.name.as_str(), *r))
        .collect();
    let mut aggregated = BTreeMap::new();

    resolved
        .accounts
        .extend(rbac.service_accounts.iter().cloned());
    for b in bindings.values() {
        let rules = match b.role_ref.kind {
            RoleKind::ClusterRole => cluster_roles.get(b.role_ref.name.as_str()).map(|_| {
                aggregate(
                    &b.role_ref.name,
                    &cluster_roles,
                    &mut aggregated,
                    &mut BTreeSet::new(),
                )
            }),
            RoleKind::Role => roles
                .get(&(RoleKind::Role, b.namespace.clone(), b.role_ref.name.clone()))
                .map(|r| r.rules.clone()),
        };
        let role_created = match b.role_ref.kind {
            RoleKind::ClusterRole => cluster_roles
                .get(b.role_ref.name.as_str())
                .and_then(|r| r.created),
            RoleKind::Role => roles
                .get(&(RoleKind::Role, b.namespace.clone(), b.role_ref.name.clone()))
                .and_then(|r| r.created),
        };
        let Some(rules) = rules else {
            resolved.warnings.push(Warning::DanglingBinding {
                binding_kind: b.kind,
                binding: b.name.clone(),
                namespace: b.namespace.clone(),
                role_kind: b.role_ref.kind,
                role: b.role_ref.name.clone(),
            });
            continue;
        };
        let source = GrantSource {
            role_kind: b.role_ref.kind,
            role: b.role_ref.name.clone(),
            binding_kind: b.kind,
            binding: b.name.clone(),
            binding_namespace: b.namespace.clone(),
            granted_at: b.created.max(role_created),
        };
        for subject in &b.subjects {
            match subject {
                Subject::ServiceAccount(sa) => {
                    resolved.accounts.insert(sa.clone());
                }
                Subject::User(u) => {
                    if let Some(sa) = ServiceAccount::from_username(u) {
                        resolved.accounts.insert(sa);
                    }
                }
                Subject::Group(_) => {}
            }
            for rule in &rules {
                resolved.bound.push((
                    subject.clone(),
                    Grant {
                        namespace: b.namespace.clone(),
                        rule: rule.clone(),
                        source: source.clone(),
                    },
                ));
            }
        }
    }
    resolved.warnings.sort();
    resolved.warnings.dedup();
    resolved
}

/// The rules of ClusterRole `name` after aggregation (memoised).
fn aggregate(
    name: &str,
    cluster_roles: &BTreeMap<&str, &Role>,
    memo: &mut BTreeMap<String, Vec<PolicyRule>>,
    visiting: &mut BTreeSet<String>,
) -> Vec<PolicyRule> {
    if let Some(rules) = memo.get(name) {
        return rules.clone();
    }
    let Some(role) = cluster_roles.get(name) else {
        return Vec::new();
    };
    let Some(selectors) = &role.aggregation else {
        return role.rules.clone();
    };
    if !visiting.insert(name.to_owned()) {
        // A cycle: the role contributes what it states itself.
        return role.rules.clone();
    }
    let mut rules = role.rules.clone();
    for (other, other_role) in cluster_roles {
        if *other != name && selectors.iter().any(|s| s.matches(&other_role.labels)) {
            for rule in aggregate(other, cluster_roles, memo, visiting) {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    visiting.remove(name);
    memo.insert(name.to_owned(), rules.clone());
    rules
}

//! Kubernetes RBAC in its own terms: read Roles, ClusterRoles and their
//! bindings, work out what each service account may do, decide requests the
//! way the API server's RBAC authorizer does, and write the minimal RBAC
//! that covers observed use. Part of the analytics stage; like the rest of
//! it, this module only reads what it is given and never changes a
//! cluster: generated YAML is for a person to review and apply.
//!
//! - [`import`]: manifests (multi-document YAML, one JSON/YAML object, or a
//!   `kubectl get -o json` `List`) into [`Rbac`]; wire types stay there.
//! - [`resolve`]: aggregation of ClusterRoles, bindings to roles, subjects
//!   to service accounts: [`Resolved`], a list of [`Grant`]s per account.
//! - [`eval`]: [`Request`], [`parse_request`] for Overreach's resource
//!   strings, [`allows`] (the authorizer) and [`is_within`] (the subset
//!   check between two sets of grants).
//! - [`minimal`]: [`minimal_policy`], the least RBAC that allows a set of
//!   observed requests, as reviewable YAML with per-rule provenance.
//!
//! Semantics follow Kubernetes' own RBAC authorizer and its escalation
//! check (`pkg/apis/rbac/v1/evaluation_helpers.go` and
//! `pkg/registry/rbac/validation/policy_comparator.go` upstream); where the
//! two could be read differently, the module docs say which reading is
//! used.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};

use overreach_model::{SpiffeId, SpiffeIdError};

pub mod eval;
pub mod import;
pub mod minimal;
pub mod resolve;

pub use eval::{
    allows, is_within, parse_request, rule_allows, NonResourceRequest, ParseRequestError, Request,
    ResourceRequest,
};
pub use import::{load, parse, Imported, RbacError};
pub use minimal::{
    granted_yaml, minimal_policy, minimal_policy_collapsed, GeneratedRule, MinimalPolicy,
};
pub use resolve::{resolve, Resolved, Warning};

/// The API group of the RBAC kinds.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// The `apiVersion` generated manifests use.
pub const RBAC_API_VERSION: &str = "rbac.authorization.k8s.io/v1";

/// One rule of a Role or ClusterRole, as Kubernetes defines it. Empty lists
/// are absent fields. `api_groups` uses `""` for the core group.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyRule {
    pub verbs: Vec<String>,
    pub api_groups: Vec<String>,
    pub resources: Vec<String>,
    pub resource_names: Vec<String>,
    pub non_resource_urls: Vec<String>,
}

/// Role (namespaced) or ClusterRole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoleKind {
    Role,
    ClusterRole,
}

impl RoleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleKind::Role => "Role",
            RoleKind::ClusterRole => "ClusterRole",
        }
    }
}

/// RoleBinding (namespaced) or ClusterRoleBinding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BindingKind {
    RoleBinding,
    ClusterRoleBinding,
}

impl BindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingKind::RoleBinding => "RoleBinding",
            BindingKind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }
}

/// `matchExpressions` operators of a label selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A Kubernetes label selector: every `match_labels` pair and every
/// requirement must hold. An empty selector matches every object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

/// A Role or ClusterRole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    pub kind: RoleKind,
    pub name: String,
    /// Set for a Role, `None` for a ClusterRole.
    pub namespace: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub rules: Vec<PolicyRule>,
    /// A ClusterRole's `aggregationRule.clusterRoleSelectors` (any match).
    pub aggregation: Option<Vec<LabelSelector>>,
    /// `metadata.creationTimestamp`, when the manifest has one.
    pub created: Option<DateTime<Utc>>,
}

/// Who a binding grants to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Subject {
    /// `namespace` is already defaulted to the RoleBinding's namespace.
    ServiceAccount(ServiceAccount),
    User(String),
    Group(String),
}

/// What a binding points at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoleRef {
    pub kind: RoleKind,
    pub name: String,
}

/// A RoleBinding or ClusterRoleBinding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub kind: BindingKind,
    pub name: String,
    /// Set for a RoleBinding, `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    pub role_ref: RoleRef,
    pub subjects: Vec<Subject>,
    /// `metadata.creationTimestamp`, when the manifest has one.
    pub created: Option<DateTime<Utc>>,
}

/// Everything imported from one or more manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rbac {
    pub roles: Vec<Role>,
    pub bindings: Vec<Binding>,
    /// `ServiceAccount` objects seen, so accounts that only get access
    /// through groups are listed too.
    pub service_accounts: Vec<ServiceAccount>,
}

impl Rbac {
    pub fn extend(&mut self, other: Rbac) {
        self.roles.extend(other.roles);
        self.bindings.extend(other.bindings);
        self.service_accounts.extend(other.service_accounts);
    }
}

/// A Kubernetes service account, `namespace/name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceAccount {
    pub namespace: String,
    pub name: String,
}

impl ServiceAccount {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The account behind a Kubernetes username
    /// `system:serviceaccount:NS:NAME`, if it is one.
    pub fn from_username(username: &str) -> Option<Self> {
        let rest = username.strip_prefix("system:serviceaccount:")?;
        let (namespace, name) = rest.split_once(':')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains(':'))
            .then(|| Self::new(namespace, name))
    }

    /// `system:serviceaccount:NS:NAME`, the username the API server sees.
    pub fn username(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }

    /// `spiffe://TD/ns/NS/sa/NAME`, the identity Istio and SPIRE give it.
    pub fn spiffe_id(&self, trust_domain: &str) -> Result<SpiffeId, SpiffeIdError> {
        SpiffeId::for_service_account(trust_domain, &self.namespace, &self.name)
    }
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Which role, through which binding, a grant comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GrantSource {
    pub role_kind: RoleKind,
    pub role: String,
    pub binding_kind: BindingKind,
    pub binding: String,
    /// The binding's (and so a Role's) namespace.
    pub binding_namespace: Option<String>,
    /// Since when the grant exists: the later creation time of the binding
    /// and the role (`None` when the manifests do not say).
    pub granted_at: Option<DateTime<Utc>>,
}

impl fmt::Display for GrantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = |f: &mut fmt::Formatter<'_>| match &self.binding_namespace {
            Some(ns) => write!(f, "{ns}/"),
            None => Ok(()),
        };
        write!(f, "{} ", self.binding_kind.as_str())?;
        ns(f)?;
        write!(f, "{} -> {} ", self.binding, self.role_kind.as_str())?;
        if self.role_kind == RoleKind::Role {
            ns(f)?;
        }
        f.write_str(&self.role)
    }
}

/// One effective permission: a rule and where it applies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    /// `None`: cluster-wide (a ClusterRoleBinding); `Some(ns)`: only
    /// requests in namespace `ns` (a RoleBinding).
    pub namespace: Option<String>,
    pub rule: PolicyRule,
    pub source: GrantSource,
}

#[cfg(test)]
mod tests;

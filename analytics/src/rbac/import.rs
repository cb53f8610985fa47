//! Reading RBAC manifests.
//!
//! Accepts a stream of YAML documents separated by `---` (JSON is YAML, so
//! one JSON object works too), where each document is a Role, ClusterRole,
//! RoleBinding, ClusterRoleBinding (`rbac.authorization.k8s.io/*`), a
//! `ServiceAccount` (`v1`, recorded so group grants reach it), or a `List`
//! of those (`kubectl get ... -o json|yaml`). Any other kind is skipped and
//! counted in [`Imported::skipped`]; an empty document is ignored.
//!
//! The wire types below mirror the manifests field by field and are
//! converted explicitly into the domain types of [`super`]. Fields of rules,
//! subjects, role references and selectors are checked strictly (an unknown
//! key such as `verb:` is an error, not a rule that silently grants
//! nothing), and so is what the API server's validation would reject: a
//! rule without verbs, a rule mixing resources and non-resource URLs, a
//! Role with non-resource URLs, a ClusterRoleBinding to a Role, a
//! ServiceAccount subject of a ClusterRoleBinding without a namespace.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_yaml::Value;

use super::{
    Binding, BindingKind, LabelSelector, Operator, PolicyRule, Rbac, Requirement, Role, RoleKind,
    RoleRef, ServiceAccount, Subject, RBAC_GROUP,
};

/// Why manifests could not be imported. `document` is the 0-based index of
/// the YAML document in the file; `at` says where inside it (`items[3]` in
/// a List, then the object's kind and name when known).
#[derive(Debug, thiserror::Error)]
pub enum RbacError {
    #[error("cannot read RBAC manifests {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Not YAML/JSON at all. `line` and `column` are 1-based.
    #[error("{}: document {document}{}: not valid YAML/JSON: {reason}", origin.display(), line_suffix(*line, *column))]
    Syntax {
        origin: PathBuf,
        document: usize,
        line: Option<usize>,
        column: Option<usize>,
        reason: String,
    },
    /// Valid YAML, but not a well-formed object of its kind.
    #[error("{}: document {document}{}: {at}: {reason}", origin.display(), line_suffix(*line, None))]
    Shape {
        origin: PathBuf,
        document: usize,
        /// Where serde_yaml knew it; it does not for objects inside lists.
        line: Option<usize>,
        at: String,
        reason: String,
    },
    /// Well-formed, but something the API server would reject.
    #[error("{}: document {document}: {at}: {reason}", origin.display())]
    Invalid {
        origin: PathBuf,
        document: usize,
        at: String,
        reason: &'static str,
    },
}

fn line_suffix(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

/// What a file held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    pub rbac: Rbac,
    /// Skipped objects per `apiVersion kind` (`v1 ConfigMap`).
    pub skipped: BTreeMap<String, usize>,
}

impl Imported {
    /// Adds another file's objects and skip counts.
    pub fn merge(&mut self, other: Imported) {
        self.rbac.extend(other.rbac);
        for (kind, n) in other.skipped {
            *self.skipped.entry(kind).or_insert(0) += n;
        }
    }
}

/// Reads and parses one manifest file.
pub fn load(path: &Path) -> Result<Imported, RbacError> {
    let text = std::fs::read_to_string(path).map_err(|source| RbacError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses manifests; `origin` only names them in errors.
pub fn parse(text: &str, origin: &Path) -> Result<Imported, RbacError> {
    let mut imported = Imported::default();
    for document in crate::manifests::documents(text) {
        let (document, value) = document.map_err(|e| RbacError::Syntax {
            origin: origin.to_owned(),
            document: e.document,
            line: e.line,
            column: e.column,
            reason: e.reason,
        })?;
        let mut cx = Context {
            origin,
            document,
            imported: &mut imported,
        };
        cx.object(value, String::new())?;
    }
    Ok(imported)
}

struct Context<'a> {
    origin: &'a Path,
    document: usize,
    imported: &'a mut Imported,
}

/// The fields every object has, read first to dispatch on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    api_version: Option<String>,
    kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ObjectMeta {
    name: Option<String>,
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default, rename = "creationTimestamp")]
    creation_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListWire {
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleWire {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRuleWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterRoleWire {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    rules: Option<Vec<PolicyRuleWire>>,
    aggregation_rule: Option<AggregationRuleWire>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AggregationRuleWire {
    #[serde(default)]
    cluster_role_selectors: Option<Vec<LabelSelectorWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LabelSelectorWire {
    #[serde(default)]
    match_labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    match_expressions: Option<Vec<RequirementWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RequirementWire {
    key: String,
    operator: String,
    #[serde(default)]
    values: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyRuleWire {
    #[serde(default)]
    verbs: Option<Vec<String>>,
    #[serde(default)]
    api_groups: Option<Vec<String>>,
    #[serde(default)]
    resources: Option<Vec<String>>,
    #[serde(default)]
    resource_names: Option<Vec<String>>,
    #[serde(default, rename = "nonResourceURLs")]
    non_resource_urls: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BindingWire {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    subjects: Option<Vec<SubjectWire>>,
    role_ref: RoleRefWire,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubjectWire {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    api_group: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleRefWire {
    kind: String,
    name: String,
    #[serde(default)]
    api_group: Option<String>,
}

#[derive(Deserialize)]
struct ServiceAccountWire {
    #[serde(default)]
    metadata: ObjectMeta,
}

impl Context<'_> {
    fn shape(&self, at: &str, e: &serde_yaml::Error) -> RbacError {
        RbacError::Shape {
            origin: self.origin.to_owned(),
            document: self.document,
            line: e.location().map(|l| l.line()),
            at: if at.is_empty() {
                "document".into()
            } else {
                at.into()
            },
            reason: e.to_string(),
        }
    }

    fn invalid(&self, at: &str, reason: &'static str) -> RbacError {
        RbacError::Invalid {
            origin: self.origin.to_owned(),
            document: self.document,
            at: at.to_owned(),
            reason,
        }
    }

    fn decode<T: DeserializeOwned>(&self, value: Value, at: &str) -> Result<T, RbacError> {
        serde_yaml::from_value(value).map_err(|e| self.shape(at, &e))
    }

    /// One object (or a List of them) at `path` (`""` at the top).
    fn object(&mut self, value: Value, path: String) -> Result<(), RbacError> {
        if value.is_null() {
            return Ok(());
        }
        let meta: TypeMeta = self.decode(value.clone(), &path)?;
        let api_version = meta.api_version.unwrap_or_default();
        let kind = meta.kind.unwrap_or_default();
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let name = value
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let at = {
            let mut at = path.clone();
            if !at.is_empty() {
                at.push(' ');
            }
            at.push_str(&kind);
            if !name.is_empty() {
                at.push(' ');
                at.push_str(name);
            }
            at
        };
        match (group, kind.as_str()) {
            (_, "List")
            | (
                _,
                "RoleList"
                | "ClusterRoleList"
                | "RoleBindingList"
                | "ClusterRoleBindingList"
                | "ServiceAccountList",
            ) => {
                let list: ListWire = self.decode(value, &at)?;
                for (i, item) in list.items.into_iter().enumerate() {
                    let item_path = if path.is_empty() {
                        format!("items[{i}]")
                    } else {
                        format!("{path}.items[{i}]")
                    };
                    self.object(item, item_path)?;
                }
            }
            (RBAC_GROUP, "Role") => {
                let wire: RoleWire = self.decode(value, &at)?;
                let role = self.role(RoleKind::Role, wire.metadata, wire.rules, None, &at)?;
                self.imported.rbac.roles.push(role);
            }
            (RBAC_GROUP, "ClusterRole") => {
                let wire: ClusterRoleWire = self.decode(value, &at)?;
                let role = self.role(
                    RoleKind::ClusterRole,
                    wire.metadata,
                    wire.rules,
                    wire.aggregation_rule,
                    &at,
                )?;
                self.imported.rbac.roles.push(role);
            }
            (RBAC_GROUP, "RoleBinding") => {
                let wire: BindingWire = self.decode(value, &at)?;
                let binding = self.binding(BindingKind::RoleBinding, wire, &at)?;
                self.imported.rbac.bindings.push(binding);
            }
            (RBAC_GROUP, "ClusterRoleBinding") => {
                let wire: BindingWire = self.decode(value, &at)?;
                let binding = self.binding(BindingKind::ClusterRoleBinding, wire, &at)?;
                self.imported.rbac.bindings.push(binding);
            }
            ("", "ServiceAccount") if api_version == "v1" => {
                let wire: ServiceAccountWire = self.decode(value, &at)?;
                let name = required(wire.metadata.name, || {
                    self.invalid(&at, "metadata.name is missing")
                })?;
                let namespace = required(wire.metadata.namespace, || {
                    self.invalid(&at, "a ServiceAccount needs metadata.namespace")
                })?;
                self.imported
                    .rbac
                    .service_accounts
                    .push(ServiceAccount::new(namespace, name));
            }
            _ => {
                let key = match (api_version.is_empty(), kind.is_empty()) {
                    (_, true) => "(no kind)".to_owned(),
                    (true, false) => kind,
                    (false, false) => format!("{api_version} {kind}"),
                };
                *self.imported.skipped.entry(key).or_insert(0) += 1;
            }
        }
        Ok(())
    }

    fn role(
        &self,
        kind: RoleKind,
        metadata: ObjectMeta,
        rules: Option<Vec<PolicyRuleWire>>,
        aggregation: Option<AggregationRuleWire>,
        at: &str,
    ) -> Result<Role, RbacError> {
        let name = required(metadata.name, || {
            self.invalid(at, "metadata.name is missing")
        })?;
        let namespace = match kind {
            RoleKind::Role => Some(required(metadata.namespace, || {
                self.invalid(at, "a Role needs metadata.namespace")
            })?),
            // A namespace on a cluster-scoped object is ignored by the API.
            RoleKind::ClusterRole => None,
        };
        let rules = rules
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, r)| self.rule(kind, r, &format!("{at} rules[{i}]")))
            .collect::<Result<Vec<_>, _>>()?;
        let aggregation = aggregation
            .map(|a| {
                a.cluster_role_selectors
                    .unwrap_or_default()
                    .into_iter()
                    .enumerate()
                    .map(|(i, s)| {
                        self.selector(
                            s,
                            &format!("{at} aggregationRule.clusterRoleSelectors[{i}]"),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let created = self.created(metadata.creation_timestamp.as_deref(), at)?;
        Ok(Role {
            kind,
            name,
            namespace,
            created,
            labels: metadata.labels,
            rules,
            aggregation,
        })
    }

    fn rule(&self, kind: RoleKind, r: PolicyRuleWire, at: &str) -> Result<PolicyRule, RbacError> {
        let rule = PolicyRule {
            verbs: r.verbs.unwrap_or_default(),
            api_groups: r.api_groups.unwrap_or_default(),
            resources: r.resources.unwrap_or_default(),
            resource_names: r.resource_names.unwrap_or_default(),
            non_resource_urls: r.non_resource_urls.unwrap_or_default(),
        };
        if rule.verbs.is_empty() {
            return Err(self.invalid(at, "a rule needs at least one verb"));
        }
        if !rule.non_resource_urls.is_empty() {
            if kind == RoleKind::Role {
                return Err(self.invalid(at, "a Role cannot have nonResourceURLs"));
            }
            if !rule.api_groups.is_empty() || !rule.resources.is_empty() {
                return Err(
                    self.invalid(at, "a rule cannot have both resources and nonResourceURLs")
                );
            }
        } else {
            if rule.api_groups.is_empty() {
                return Err(self.invalid(at, "a resource rule needs at least one apiGroup"));
            }
            if rule.resources.is_empty() {
                return Err(self.invalid(at, "a resource rule needs at least one resource"));
            }
        }
        Ok(rule)
    }

    fn selector(&self, s: LabelSelectorWire, at: &str) -> Result<LabelSelector, RbacError> {
        let match_expressions =
            s.match_expressions
                .unwrap_or_default()
                .into_iter()
                .map(|r| {
                    let operator = match r.operator.as_str() {
                        "In" => Operator::In,
                        "NotIn" => Operator::NotIn,
                        "Exists" => Operator::Exists,
                        "DoesNotExist" => Operator::DoesNotExist,
                        _ => return Err(self.invalid(
                            at,
                            "matchExpressions operator must be In, NotIn, Exists or DoesNotExist",
                        )),
                    };
                    let values = r.values.unwrap_or_default();
                    match (operator, values.is_empty()) {
                        (Operator::In | Operator::NotIn, true) => {
                            Err(self.invalid(at, "matchExpressions with In or NotIn need values"))
                        }
                        (Operator::Exists | Operator::DoesNotExist, false) => Err(self.invalid(
                            at,
                            "matchExpressions with Exists or DoesNotExist take no values",
                        )),
                        _ => Ok(Requirement {
                            key: r.key,
                            operator,
                            values,
                        }),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
        Ok(LabelSelector {
            match_labels: s.match_labels.unwrap_or_default(),
            match_expressions,
        })
    }

    fn binding(
        &self,
        kind: BindingKind,
        wire: BindingWire,
        at: &str,
    ) -> Result<Binding, RbacError> {
        let name = required(wire.metadata.name, || {
            self.invalid(at, "metadata.name is missing")
        })?;
        let namespace = match kind {
            BindingKind::RoleBinding => Some(required(wire.metadata.namespace, || {
                self.invalid(at, "a RoleBinding needs metadata.namespace")
            })?),
            BindingKind::ClusterRoleBinding => None,
        };
        let created = self.created(wire.metadata.creation_timestamp.as_deref(), at)?;
        let r = wire.role_ref;
        if r.api_group.as_deref().is_some_and(|g| g != RBAC_GROUP) {
            return Err(self.invalid(at, "roleRef.apiGroup must be rbac.authorization.k8s.io"));
        }
        let role_kind = match (r.kind.as_str(), kind) {
            ("ClusterRole", _) => RoleKind::ClusterRole,
            ("Role", BindingKind::RoleBinding) => RoleKind::Role,
            ("Role", BindingKind::ClusterRoleBinding) => {
                return Err(
                    self.invalid(at, "a ClusterRoleBinding can only reference a ClusterRole")
                )
            }
            _ => return Err(self.invalid(at, "roleRef.kind must be Role or ClusterRole")),
        };
        let subjects = wire
            .subjects
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let at = format!("{at} subjects[{i}]");
                match s.kind.as_str() {
                    "ServiceAccount" => {
                        if s.api_group.as_deref().is_some_and(|g| !g.is_empty()) {
                            return Err(self.invalid(&at, "a ServiceAccount subject has apiGroup \"\""));
                        }
                        let ns = s
                            .namespace
                            .filter(|ns| !ns.is_empty())
                            .or_else(|| namespace.clone())
                            .ok_or_else(|| {
                                self.invalid(&at, "a ServiceAccount subject of a ClusterRoleBinding needs a namespace")
                            })?;
                        Ok(Subject::ServiceAccount(ServiceAccount::new(ns, s.name)))
                    }
                    "User" => Ok(Subject::User(s.name)),
                    "Group" => Ok(Subject::Group(s.name)),
                    _ => Err(self.invalid(&at, "subject kind must be ServiceAccount, User or Group")),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Binding {
            kind,
            created,
            name,
            namespace,
            role_ref: RoleRef {
                kind: role_kind,
                name: r.name,
            },
            subjects,
        })
    }

    /// `metadata.creationTimestamp` (RFC 3339), if present.
    fn created(
        &self,
        value: Option<&str>,
        at: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, RbacError> {
        value
            .filter(|v| !v.is_empty())
            .map(|v| {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| {
                        self.invalid(at, "metadata.creationTimestamp is not an RFC 3339 time")
                    })
            })
            .transpose()
    }
}

fn required(value: Option<String>, error: impl FnOnce() -> RbacError) -> Result<String, RbacError> {
    value.filter(|v| !v.is_empty()).ok_or_else(error)
}

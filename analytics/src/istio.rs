//! Istio `AuthorizationPolicy` in its own terms: read policies, work out
//! what each workload identity is allowed to call, decide requests the way
//! Istio's ALLOW policies do, and write the minimal AuthorizationPolicy
//! that covers observed use. Like [`crate::rbac`], this only reads what it
//! is given; generated YAML is for a person to review and apply.
//!
//! # Input
//!
//! [`parse`] and [`load`] accept a stream of YAML documents separated by
//! `---` (JSON is YAML, so one JSON object works too) where each document
//! is an `AuthorizationPolicy` of `security.istio.io/v1` or `/v1beta1`, or
//! a `List` of objects (`kubectl get authorizationpolicies -A -o json`).
//! Other kinds are skipped and counted in [`Imported::skipped`]. Wire types
//! (private, `*Wire`) are separate from the domain types below; the fields
//! of `spec`, rules, sources, operations and conditions are checked
//! strictly, so a typo such as `principal:` is an error, not a rule that
//! silently matches everything. A policy without `metadata.namespace` is in
//! `default`.
//!
//! # Semantics (ALLOW only)
//!
//! Only `action: ALLOW` policies (or no `action`, which means ALLOW) grant;
//! DENY, AUDIT and CUSTOM policies are kept in [`Imported::aside`] and
//! counted in [`Imported::aside_counts`], and [`allows`] does not apply
//! them (a DENY that would win in the proxy is for the caller to weigh).
//! An ALLOW policy without rules allows nothing; a rule `{}` allows
//! everything. Within a rule `from`, `to` and `when` are ANDed; `from`
//! entries are ORed, `to` entries are ORed, values inside a field are ORed
//! and a field's `not*` values exclude. A string value is exact, a prefix
//! `abc*` (which also matches `abc`), a suffix `*abc`, or `*` (any
//! non-empty value); as in Istio, a leading `*` wins, so `*a*` is the
//! suffix `a*`. Methods are compared after ASCII upper-casing, hosts
//! after lower-casing, paths without their query string.
//!
//! Principals are written by Istio without the scheme
//! (`cluster.local/ns/NS/sa/NAME`); [`istio_principal`] and
//! [`principal_to_spiffe`] convert. A source's `namespaces` are matched
//! against the `/ns/NS/` segment of the caller's SPIFFE ID, as Istio does.
//!
//! `when` conditions and source fields Overreach cannot see in its events
//! (`requestPrincipals`, `ipBlocks`, `remoteIpBlocks` and their `not*`
//! forms) are kept, and make the rule *conditional*
//! ([`IstioGrant::conditional`]): [`allows`] answers
//! [`Decision::Conditional`] when only such rules match, [`is_within`] never
//! counts a conditional granted rule as covering anything, and callers must
//! only report a conditional rule, never suggest removing part of it.
//!
//! # Targets
//!
//! A policy applies to the workloads its `selector.matchLabels` selects in
//! its namespace, or (without a selector) to the whole namespace, or, in
//! the root namespace ([`DEFAULT_ROOT_NAMESPACE`] unless
//! [`parse_with_root`] says otherwise), to the whole mesh. This is
//! [`Target`]. Overreach's events carry the server's SPIFFE ID or host,
//! never its pod labels, so a request is matched to targets **by namespace
//! only** ([`Request::target_namespace`], see [`namespace_of`]): a policy
//! with a selector is treated as applying to every workload of its
//! namespace. That over-approximates what is granted (never under), which
//! is the safe side for "is this used?". [`is_within`], which must not
//! call a broader policy a reduction, does compare selectors: a granted
//! policy with a selector covers only reduced policies whose selector
//! contains it. `targetRef`/`targetRefs` are recorded as descriptions and
//! treated like a selector.
//!
//! # Minimal policy
//!
//! [`minimal_policy`] writes one ALLOW policy per target namespace, with
//! one rule: `from.source.principals: [the principal]` and one `to`
//! operation per distinct set of methods, listing the paths those methods
//! were used on (so every method of an operation was observed on every
//! path of it). Observed paths may hold placeholder segments such as
//! `{id}` (any segment `{...}`, as ingest writes them); Istio paths have no
//! wildcard in the middle, so a path is cut at its first placeholder and
//! becomes the prefix `literal/*`: `/v1/orders/{id}` is `/v1/orders/*` and
//! so is `/v1/orders/{id}/items`. The longest literal prefix was chosen
//! over listing values because the observed values are gone by then; it
//! allows every observed request and every value of its placeholders, and
//! more (the listing says so in the comment above each operation). Paths
//! without placeholders are exact. The generated policies have no
//! selector; set [`GeneratedPolicy::selector`] to narrow them. Beware that
//! a policy without selector in the root namespace applies to the whole
//! mesh: [`MinimalPolicy::grants`] says so (assuming
//! [`DEFAULT_ROOT_NAMESPACE`]), so [`is_within`] only accepts it under a
//! mesh-wide grant.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::{self, Write as _};
use std::io;
use std::path::{Path, PathBuf};

use overreach_model::SpiffeId;
use serde::Deserialize;
use serde_yaml::Value;

/// Istio's default root namespace: policies there apply mesh-wide.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";
/// The API group of `AuthorizationPolicy`.
pub const ISTIO_SECURITY_GROUP: &str = "security.istio.io";
/// The `apiVersion` generated policies use.
pub const ISTIO_API_VERSION: &str = "security.istio.io/v1";
/// How many calls an operation's comment lists before summarising.
const COMMENT_CALLS: usize = 10;

pub type Result<T, E = IstioError> = std::result::Result<T, E>;

/// Why policies could not be imported. `document` is the 0-based index of
/// the YAML document; `at` says where inside it (`items[3]`, then kind and
/// `namespace/name` when known, then the field).
#[derive(Debug, thiserror::Error)]
pub enum IstioError {
    #[error("cannot read Istio policies {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: document {document}{}: not valid YAML/JSON: {reason}", origin.display(), line_suffix(*line, *column))]
    Syntax {
        origin: PathBuf,
        document: usize,
        line: Option<usize>,
        column: Option<usize>,
        reason: String,
    },
    /// Valid YAML, but not a well-formed object of its kind.
    #[error("{}: document {document}: {at}: {reason}", origin.display())]
    Shape {
        origin: PathBuf,
        document: usize,
        at: String,
        reason: String,
    },
    /// Well-formed, but something Istio's validation would reject.
    #[error("{}: document {document}: {at}: {reason}", origin.display())]
    Invalid {
        origin: PathBuf,
        document: usize,
        at: String,
        reason: String,
    },
}

fn line_suffix(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (line {l}, column {c})"),
        (Some(l), None) => format!(" (line {l})"),
        _ => String::new(),
    }
}

// ---------------------------------------------------------------------------
// Domain types

/// `spec.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Allow,
    Deny,
    Audit,
    Custom,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "ALLOW",
            Action::Deny => "DENY",
            Action::Audit => "AUDIT",
            Action::Custom => "CUSTOM",
        }
    }
}

/// One string value of a field, as Istio matches it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StringMatch {
    Exact(String),
    /// `abc*`: starts with `abc` (including `abc` itself).
    Prefix(String),
    /// `*abc`: ends with `abc`.
    Suffix(String),
    /// `*`: any non-empty value.
    Any,
}

impl StringMatch {
    pub fn parse(value: &str) -> Self {
        // Istio's order (`pilot/pkg/security/authz/matcher`): a leading `*`
        // wins, so `*abc*` is the suffix `abc*` with a literal `*`.
        if value == "*" {
            StringMatch::Any
        } else if let Some(s) = value.strip_prefix('*') {
            StringMatch::Suffix(s.to_owned())
        } else if let Some(p) = value.strip_suffix('*') {
            StringMatch::Prefix(p.to_owned())
        } else {
            StringMatch::Exact(value.to_owned())
        }
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            StringMatch::Exact(e) => value == e,
            StringMatch::Prefix(p) => value.starts_with(p.as_str()),
            StringMatch::Suffix(s) => value.ends_with(s.as_str()),
            StringMatch::Any => !value.is_empty(),
        }
    }

    /// True when every value `other` matches, `self` matches too.
    pub fn covers(&self, other: &StringMatch) -> bool {
        match (self, other) {
            (StringMatch::Any, _) => match other {
                StringMatch::Exact(e) => !e.is_empty(),
                StringMatch::Prefix(p) => !p.is_empty(),
                StringMatch::Suffix(s) => !s.is_empty(),
                StringMatch::Any => true,
            },
            (_, StringMatch::Exact(e)) => self.matches(e),
            (StringMatch::Prefix(a), StringMatch::Prefix(b)) => b.starts_with(a.as_str()),
            (StringMatch::Suffix(a), StringMatch::Suffix(b)) => b.ends_with(a.as_str()),
            _ => false,
        }
    }

    /// True when some value may match both (conservative: may say true).
    pub fn overlaps(&self, other: &StringMatch) -> bool {
        match (self, other) {
            (StringMatch::Exact(e), o) | (o, StringMatch::Exact(e)) => o.matches(e),
            (StringMatch::Prefix(a), StringMatch::Prefix(b))
            | (StringMatch::Suffix(a), StringMatch::Suffix(b)) => {
                a.starts_with(b.as_str())
                    || b.starts_with(a.as_str())
                    || a.ends_with(b.as_str())
                    || b.ends_with(a.as_str())
            }
            _ => true,
        }
    }
}

impl fmt::Display for StringMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StringMatch::Exact(e) => f.write_str(e),
            StringMatch::Prefix(p) => write!(f, "{p}*"),
            StringMatch::Suffix(s) => write!(f, "*{s}"),
            StringMatch::Any => f.write_str("*"),
        }
    }
}

/// A field and its `not*` twin. Both empty: the field is not set and
/// matches anything, including an absent value.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Values {
    pub values: Vec<StringMatch>,
    pub not_values: Vec<StringMatch>,
}

impl Values {
    fn from_wire(
        values: Option<Vec<String>>,
        not: Option<Vec<String>>,
        map: fn(&str) -> String,
    ) -> Self {
        let conv = |v: Option<Vec<String>>| {
            v.unwrap_or_default()
                .iter()
                .map(|s| StringMatch::parse(&map(s)))
                .collect()
        };
        Values {
            values: conv(values),
            not_values: conv(not),
        }
    }

    pub fn is_set(&self) -> bool {
        !self.values.is_empty() || !self.not_values.is_empty()
    }

    /// An absent value matches only a field with nothing but `not*` values.
    pub fn matches(&self, value: Option<&str>) -> bool {
        match value {
            None => self.values.is_empty(),
            Some(v) => {
                (self.values.is_empty() || self.values.iter().any(|m| m.matches(v)))
                    && !self.not_values.iter().any(|m| m.matches(v))
            }
        }
    }

    /// True when every value `pattern` matches is matched by `self`.
    fn covers(&self, pattern: &StringMatch) -> bool {
        (self.values.is_empty() || self.values.iter().any(|v| v.covers(pattern)))
            && !self.not_values.iter().any(|n| n.overlaps(pattern))
    }

    /// The reduced side of a subset check: its `not*` values are ignored,
    /// which can only make it broader.
    fn patterns(&self) -> Vec<StringMatch> {
        if self.values.is_empty() {
            vec![StringMatch::Any]
        } else {
            self.values.clone()
        }
    }
}

/// `rules[].from[].source`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Source {
    /// Istio-form principals (`TD/ns/NS/sa/NAME`).
    pub principals: Values,
    pub namespaces: Values,
    /// Set fields Overreach cannot evaluate (`requestPrincipals`, ...).
    pub unmodelled: BTreeSet<&'static str>,
}

impl Source {
    /// Whether a caller with this Istio principal may match (ignoring the
    /// unmodelled fields, which make the match conditional).
    pub fn matches(&self, principal: &str) -> bool {
        self.principals.matches(Some(principal))
            && self.namespaces.matches(principal_namespace(principal))
    }
}

/// `rules[].to[].operation`. Methods are upper-case, hosts lower-case.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Operation {
    pub methods: Values,
    pub paths: Values,
    pub hosts: Values,
    pub ports: Values,
}

impl Operation {
    pub fn matches(&self, r: &Request) -> bool {
        let method = r.method.to_ascii_uppercase();
        let host = r.host.as_ref().map(|h| h.to_ascii_lowercase());
        let port = r.port.map(|p| p.to_string());
        self.methods.matches(Some(&method))
            && self.paths.matches(Some(strip_query(&r.path)))
            && self.hosts.matches(host.as_deref())
            && self.ports.matches(port.as_deref())
    }
}

/// `rules[].when[]`, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Condition {
    pub key: String,
    pub values: Vec<String>,
    pub not_values: Vec<String>,
}

/// One rule. Empty `from`: any caller; empty `to`: any operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub from: Vec<Source>,
    pub to: Vec<Operation>,
    pub when: Vec<Condition>,
}

/// Which workloads a policy applies to.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// The policy's namespace.
    pub namespace: String,
    /// In the root namespace without a selector: every workload of the mesh.
    pub mesh_wide: bool,
    /// `selector.matchLabels`; empty: every workload of the namespace.
    pub selector: BTreeMap<String, String>,
    /// `targetRef`/`targetRefs` as `Kind/name`.
    pub target_refs: Vec<String>,
}

impl Target {
    /// Whether a request to a workload in `namespace` may be covered (by
    /// namespace only; see the module docs).
    pub fn applies_to_namespace(&self, namespace: &str) -> bool {
        self.mesh_wide || self.namespace == namespace
    }

    /// Whether every workload `other` applies to, `self` applies to.
    pub fn covers(&self, other: &Target) -> bool {
        if !self.target_refs.is_empty() && self.target_refs != other.target_refs {
            return false;
        }
        let scope = self.mesh_wide || (!other.mesh_wide && self.namespace == other.namespace);
        scope
            && self
                .selector
                .iter()
                .all(|(k, v)| other.selector.get(k) == Some(v))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mesh_wide {
            f.write_str("mesh")?;
        } else {
            write!(f, "namespace {}", self.namespace)?;
        }
        for (k, v) in &self.selector {
            write!(f, " {k}={v}")?;
        }
        for r in &self.target_refs {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

/// One AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub name: String,
    pub namespace: String,
    pub action: Action,
    pub target: Target,
    pub rules: Vec<Rule>,
    /// `metadata.creationTimestamp`, when the manifest has one (an
    /// unreadable one counts as unknown).
    pub created: Option<chrono::DateTime<chrono::Utc>>,
}

/// Everything read from one or more files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Imported {
    /// ALLOW policies: the grants.
    pub allow: Vec<Policy>,
    /// DENY, AUDIT and CUSTOM policies, kept but not evaluated.
    pub aside: Vec<Policy>,
    pub aside_counts: BTreeMap<Action, usize>,
    /// Skipped objects per `apiVersion kind`.
    pub skipped: BTreeMap<String, usize>,
    /// `namespace/name` of each policy a later one of the same name
    /// replaced (as `kubectl apply` would), once per replacement.
    pub replaced: Vec<String>,
}

impl Imported {
    /// Adds a policy; one with the same namespace and name, from this file
    /// or an earlier one, is replaced.
    pub fn add(&mut self, policy: Policy) {
        let same = |p: &Policy| p.namespace == policy.namespace && p.name == policy.name;
        if let Some(i) = self.allow.iter().position(same) {
            self.allow.remove(i);
            self.replaced
                .push(format!("{}/{}", policy.namespace, policy.name));
        } else if let Some(i) = self.aside.iter().position(same) {
            let old = self.aside.remove(i);
            if let Some(n) = self.aside_counts.get_mut(&old.action) {
                *n -= 1;
            }
            self.aside_counts.retain(|_, n| *n > 0);
            self.replaced
                .push(format!("{}/{}", policy.namespace, policy.name));
        }
        if policy.action == Action::Allow {
            self.allow.push(policy);
        } else {
            *self.aside_counts.entry(policy.action).or_insert(0) += 1;
            self.aside.push(policy);
        }
    }

    /// Adds another file's policies after these (see [`Imported::add`]).
    pub fn merge(&mut self, other: Imported) {
        for policy in other.allow.into_iter().chain(other.aside) {
            self.add(policy);
        }
        self.replaced.extend(other.replaced);
        for (k, n) in other.skipped {
            *self.skipped.entry(k).or_insert(0) += n;
        }
    }
}

/// `namespace/name` of a policy and the index of a rule in it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleRef {
    pub namespace: String,
    pub policy: String,
    pub rule: usize,
}

impl fmt::Display for RuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} rules[{}]", self.namespace, self.policy, self.rule)
    }
}

/// What one ALLOW rule grants one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioGrant {
    pub principal: SpiffeId,
    pub source: RuleRef,
    pub target: Target,
    /// Empty: any operation.
    pub operations: Vec<Operation>,
    pub conditions: Vec<Condition>,
    /// `when` conditions, or a source field Overreach cannot see: report
    /// such a rule, never suggest removing part of it.
    pub conditional: bool,
    /// The policy's creation time, if known.
    pub granted_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// A request of one identity, as Overreach's events describe it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Request {
    pub principal: SpiffeId,
    pub method: String,
    /// The path, possibly with `{id}`-style placeholder segments. [`allows`]
    /// matches it literally: `/v1/orders/{id}` is allowed by the prefix
    /// `/v1/orders/*`, not by the exact `/v1/orders/42`.
    pub path: String,
    pub host: Option<String>,
    pub port: Option<u16>,
    /// The server's namespace, e.g. from [`namespace_of`] of its SPIFFE ID.
    pub target_namespace: String,
}

/// What the ALLOW grants say about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// An unconditional rule allows it.
    Allow,
    /// Only rules with conditions Overreach cannot evaluate match.
    Conditional,
    /// No ALLOW rule matches.
    Deny,
}

// ---------------------------------------------------------------------------
// Identities

/// The Istio form of a SPIFFE ID: without `spiffe://`.
pub fn istio_principal(id: &SpiffeId) -> String {
    let s = id.to_string();
    s.strip_prefix("spiffe://").unwrap_or(&s).to_owned()
}

/// The SPIFFE ID an exact Istio principal names, if it is a valid one.
pub fn principal_to_spiffe(principal: &str) -> Option<SpiffeId> {
    SpiffeId::parse(&format!("spiffe://{principal}")).ok()
}

/// The Kubernetes namespace of an identity `spiffe://TD/ns/NS/sa/NAME`.
pub fn namespace_of(id: &SpiffeId) -> Option<&str> {
    let rest = id.path().strip_prefix("/ns/")?;
    let (ns, rest) = rest.split_once('/')?;
    rest.starts_with("sa/").then_some(ns)
}

fn principal_namespace(principal: &str) -> Option<&str> {
    let (_, rest) = principal.split_once("/ns/")?;
    let (ns, rest) = rest.split_once('/')?;
    rest.starts_with("sa/").then_some(ns)
}

fn strip_query(path: &str) -> &str {
    path.split_once('?').map_or(path, |(p, _)| p)
}

// ---------------------------------------------------------------------------
// Import

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMetaWire {
    api_version: Option<String>,
    kind: Option<String>,
}

#[derive(Deserialize)]
struct ListWire {
    #[serde(default)]
    items: Vec<Value>,
}

#[derive(Deserialize)]
struct PolicyWire {
    #[serde(default)]
    spec: SpecWire,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SpecWire {
    selector: Option<SelectorWire>,
    target_ref: Option<TargetRefWire>,
    target_refs: Option<Vec<TargetRefWire>>,
    action: Option<String>,
    provider: Option<Value>,
    rules: Option<Vec<RuleWire>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelectorWire {
    #[serde(default)]
    match_labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TargetRefWire {
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleWire {
    from: Option<Vec<FromWire>>,
    to: Option<Vec<ToWire>>,
    when: Option<Vec<ConditionWire>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FromWire {
    #[serde(default)]
    source: SourceWire,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SourceWire {
    principals: Option<Vec<String>>,
    not_principals: Option<Vec<String>>,
    request_principals: Option<Vec<String>>,
    not_request_principals: Option<Vec<String>>,
    namespaces: Option<Vec<String>>,
    not_namespaces: Option<Vec<String>>,
    ip_blocks: Option<Vec<String>>,
    not_ip_blocks: Option<Vec<String>>,
    remote_ip_blocks: Option<Vec<String>>,
    not_remote_ip_blocks: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToWire {
    #[serde(default)]
    operation: OperationWire,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OperationWire {
    hosts: Option<Vec<String>>,
    not_hosts: Option<Vec<String>>,
    ports: Option<Vec<String>>,
    not_ports: Option<Vec<String>>,
    methods: Option<Vec<String>>,
    not_methods: Option<Vec<String>>,
    paths: Option<Vec<String>>,
    not_paths: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConditionWire {
    key: String,
    values: Option<Vec<String>>,
    not_values: Option<Vec<String>>,
}

/// Reads and parses one file (root namespace `istio-system`).
pub fn load(path: &Path) -> Result<Imported> {
    let text = std::fs::read_to_string(path).map_err(|source| IstioError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// Parses policies; `origin` only names them in errors.
pub fn parse(text: &str, origin: &Path) -> Result<Imported> {
    parse_with_root(text, origin, DEFAULT_ROOT_NAMESPACE)
}

/// [`parse`] for a mesh whose root namespace is `root_namespace`.
pub fn parse_with_root(text: &str, origin: &Path, root_namespace: &str) -> Result<Imported> {
    let mut imported = Imported::default();
    for document in crate::manifests::documents(text) {
        let (document, value) = document.map_err(|e| IstioError::Syntax {
            origin: origin.to_owned(),
            document: e.document,
            line: e.line,
            column: e.column,
            reason: e.reason,
        })?;
        let mut cx = Context {
            origin,
            document,
            root_namespace,
            imported: &mut imported,
        };
        cx.object(value, String::new())?;
    }
    Ok(imported)
}

struct Context<'a> {
    origin: &'a Path,
    document: usize,
    root_namespace: &'a str,
    imported: &'a mut Imported,
}

impl Context<'_> {
    fn shape(&self, at: &str, reason: impl fmt::Display) -> IstioError {
        IstioError::Shape {
            origin: self.origin.to_owned(),
            document: self.document,
            at: at.to_owned(),
            reason: reason.to_string(),
        }
    }

    fn invalid(&self, at: &str, reason: impl fmt::Display) -> IstioError {
        IstioError::Invalid {
            origin: self.origin.to_owned(),
            document: self.document,
            at: at.to_owned(),
            reason: reason.to_string(),
        }
    }

    fn object(&mut self, value: Value, path: String) -> Result<()> {
        if value.is_null() {
            return Ok(());
        }
        let meta: TypeMetaWire =
            serde_yaml::from_value(value.clone()).map_err(|e| self.shape(&path, e))?;
        let api_version = meta.api_version.unwrap_or_default();
        let kind = meta.kind.unwrap_or_default();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
        let mut at = path.clone();
        if !at.is_empty() {
            at.push(' ');
        }
        at.push_str(&kind);
        if kind == "List" || kind == "AuthorizationPolicyList" {
            let list: ListWire = serde_yaml::from_value(value).map_err(|e| self.shape(&at, e))?;
            for (i, item) in list.items.into_iter().enumerate() {
                let item_path = if path.is_empty() {
                    format!("items[{i}]")
                } else {
                    format!("{path}.items[{i}]")
                };
                self.object(item, item_path)?;
            }
            return Ok(());
        }
        if group != ISTIO_SECURITY_GROUP
            || kind != "AuthorizationPolicy"
            || !matches!(version, "v1" | "v1beta1")
        {
            *self
                .imported
                .skipped
                .entry(format!("{api_version} {kind}"))
                .or_insert(0) += 1;
            return Ok(());
        }
        let meta_str = |field: &str| {
            value
                .get("metadata")
                .and_then(|m| m.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let namespace = meta_str("namespace").unwrap_or_else(|| "default".to_owned());
        let name = meta_str("name").unwrap_or_default();
        let created = meta_str("creationTimestamp")
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&chrono::Utc));
        let at = format!("{at} {namespace}/{name}");
        let wire: PolicyWire = serde_yaml::from_value(value).map_err(|e| self.shape(&at, e))?;
        if name.is_empty() {
            return Err(self.invalid(&at, "metadata.name is missing"));
        }
        let mut policy = self.policy(wire.spec, name, namespace, &at)?;
        policy.created = created;
        self.imported.add(policy);
        Ok(())
    }

    fn policy(&self, spec: SpecWire, name: String, namespace: String, at: &str) -> Result<Policy> {
        let action = match spec.action.as_deref() {
            None | Some("ALLOW") => Action::Allow,
            Some("DENY") => Action::Deny,
            Some("AUDIT") => Action::Audit,
            Some("CUSTOM") => Action::Custom,
            Some(other) => {
                return Err(self.invalid(
                    &format!("{at}: spec.action"),
                    format!("unknown action {other:?}"),
                ))
            }
        };
        if action == Action::Custom && spec.provider.is_none() {
            return Err(self.invalid(&format!("{at}: spec.provider"), "CUSTOM needs a provider"));
        }
        let selector = spec.selector.map(|s| s.match_labels).unwrap_or_default();
        let target_refs: Vec<String> = spec
            .target_ref
            .into_iter()
            .chain(spec.target_refs.unwrap_or_default())
            .map(|r| {
                format!(
                    "{}/{}",
                    r.kind.unwrap_or_default(),
                    r.name.unwrap_or_default()
                )
            })
            .collect();
        if !selector.is_empty() && !target_refs.is_empty() {
            return Err(self.invalid(at, "selector and targetRef are mutually exclusive"));
        }
        let mesh_wide =
            namespace == self.root_namespace && selector.is_empty() && target_refs.is_empty();
        let mut rules = Vec::new();
        for (i, r) in spec.rules.unwrap_or_default().into_iter().enumerate() {
            let rat = format!("{at}: spec.rules[{i}]");
            let when = r
                .when
                .unwrap_or_default()
                .into_iter()
                .enumerate()
                .map(|(j, c)| {
                    if c.values.is_none() && c.not_values.is_none() {
                        return Err(self.invalid(
                            &format!("{rat}.when[{j}]"),
                            "a condition needs values or notValues",
                        ));
                    }
                    Ok(Condition {
                        key: c.key,
                        values: c.values.unwrap_or_default(),
                        not_values: c.not_values.unwrap_or_default(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let from = r
                .from
                .unwrap_or_default()
                .into_iter()
                .map(|f| source(f.source))
                .collect();
            let to =
                r.to.unwrap_or_default()
                    .into_iter()
                    .map(|t| operation(t.operation))
                    .collect();
            rules.push(Rule { from, to, when });
        }
        Ok(Policy {
            created: None,
            name,
            namespace: namespace.clone(),
            action,
            target: Target {
                namespace,
                mesh_wide,
                selector,
                target_refs,
            },
            rules,
        })
    }
}

fn same(s: &str) -> String {
    s.to_owned()
}

fn source(w: SourceWire) -> Source {
    let mut unmodelled = BTreeSet::new();
    for (name, set) in [
        ("requestPrincipals", &w.request_principals),
        ("notRequestPrincipals", &w.not_request_principals),
        ("ipBlocks", &w.ip_blocks),
        ("notIpBlocks", &w.not_ip_blocks),
        ("remoteIpBlocks", &w.remote_ip_blocks),
        ("notRemoteIpBlocks", &w.not_remote_ip_blocks),
    ] {
        if set.as_ref().is_some_and(|v| !v.is_empty()) {
            unmodelled.insert(name);
        }
    }
    Source {
        principals: Values::from_wire(w.principals, w.not_principals, same),
        namespaces: Values::from_wire(w.namespaces, w.not_namespaces, same),
        unmodelled,
    }
}

fn operation(w: OperationWire) -> Operation {
    Operation {
        methods: Values::from_wire(w.methods, w.not_methods, |s| s.to_ascii_uppercase()),
        paths: Values::from_wire(w.paths, w.not_paths, same),
        hosts: Values::from_wire(w.hosts, w.not_hosts, |s| s.to_ascii_lowercase()),
        ports: Values::from_wire(w.ports, w.not_ports, same),
    }
}

// ---------------------------------------------------------------------------
// Evaluation

/// The ALLOW rules that may apply to `principal`: every rule with no
/// `from`, or with a `from` entry matching it. A rule whose matching
/// sources all need fields Overreach cannot see is conditional.
pub fn grants_for(imported: &Imported, principal: &SpiffeId) -> Vec<IstioGrant> {
    let p = istio_principal(principal);
    let mut grants = Vec::new();
    for policy in &imported.allow {
        for (i, rule) in policy.rules.iter().enumerate() {
            let unconditional_source = if rule.from.is_empty() {
                Some(true)
            } else {
                let matching: Vec<&Source> = rule.from.iter().filter(|s| s.matches(&p)).collect();
                (!matching.is_empty()).then(|| matching.iter().any(|s| s.unmodelled.is_empty()))
            };
            let Some(unconditional_source) = unconditional_source else {
                continue;
            };
            grants.push(IstioGrant {
                principal: principal.clone(),
                source: RuleRef {
                    namespace: policy.namespace.clone(),
                    policy: policy.name.clone(),
                    rule: i,
                },
                target: policy.target.clone(),
                operations: rule.to.clone(),
                conditions: rule.when.clone(),
                conditional: !unconditional_source || !rule.when.is_empty(),
                granted_at: policy.created,
            });
        }
    }
    grants
}

/// Decides `request` against grants (of any principals; only those of the
/// request's principal count).
pub fn allows(grants: &[IstioGrant], request: &Request) -> Decision {
    let mut decision = Decision::Deny;
    for g in grants {
        if g.principal != request.principal
            || !g.target.applies_to_namespace(&request.target_namespace)
        {
            continue;
        }
        if g.operations.is_empty() || g.operations.iter().any(|o| o.matches(request)) {
            if !g.conditional {
                return Decision::Allow;
            }
            decision = Decision::Conditional;
        }
    }
    decision
}

/// True when everything `reduced` allows, `granted` allows too, without
/// relying on any conditional granted rule. Decided per (method, path,
/// host, port) combination of each reduced operation; the reduced side's
/// `not*` values and conditions are ignored (which can only make the
/// answer more cautious).
pub fn is_within(reduced: &[IstioGrant], granted: &[IstioGrant]) -> bool {
    reduced.iter().all(|r| {
        let candidates: Vec<&IstioGrant> = granted
            .iter()
            .filter(|g| !g.conditional && g.principal == r.principal && g.target.covers(&r.target))
            .collect();
        if candidates.iter().any(|g| g.operations.is_empty()) {
            return true;
        }
        let any_op = [Operation::default()];
        let ops: &[Operation] = if r.operations.is_empty() {
            &any_op
        } else {
            &r.operations
        };
        ops.iter().all(|op| {
            let (methods, paths, hosts, ports) = (
                op.methods.patterns(),
                op.paths.patterns(),
                op.hosts.patterns(),
                op.ports.patterns(),
            );
            methods.iter().all(|m| {
                paths.iter().all(|p| {
                    hosts.iter().all(|h| {
                        ports.iter().all(|port| {
                            candidates.iter().any(|g| {
                                g.operations.iter().any(|go| {
                                    covers_field(&go.methods, m, &op.methods)
                                        && covers_field(&go.paths, p, &op.paths)
                                        && covers_field(&go.hosts, h, &op.hosts)
                                        && covers_field(&go.ports, port, &op.ports)
                                })
                            })
                        })
                    })
                })
            })
        })
    })
}

/// Whether granted field `g` covers one pattern of the reduced field `r`.
/// An unset reduced field also matches absent values, which only an unset
/// (or `not*`-only) granted field allows.
fn covers_field(g: &Values, pattern: &StringMatch, r: &Values) -> bool {
    if !r.is_set() {
        return g.values.is_empty() && g.not_values.is_empty();
    }
    g.covers(pattern)
}

// ---------------------------------------------------------------------------
// Minimal policy

/// The generated policies of one principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimalPolicy {
    pub principal: SpiffeId,
    /// `metadata.name` of every generated policy.
    pub name: String,
    /// By namespace.
    pub policies: Vec<GeneratedPolicy>,
}

/// One generated AuthorizationPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedPolicy {
    pub namespace: String,
    /// Empty as generated: the whole namespace (see the module docs).
    pub selector: BTreeMap<String, String>,
    pub operations: Vec<GeneratedOperation>,
}

/// One `to[].operation` and the observed calls that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedOperation {
    pub methods: Vec<String>,
    /// Exact paths, or prefixes ending in `*`.
    pub paths: Vec<String>,
    /// Distinct observed `METHOD path` calls and their counts.
    pub needed_by: Vec<(String, usize)>,
}

/// The path Istio can express for an observed path: cut at the first
/// `{...}` placeholder segment, which becomes `*` (a prefix).
pub fn istio_path(observed: &str) -> String {
    let path = strip_query(observed);
    let mut out = String::new();
    for (i, seg) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.starts_with('{') && seg.ends_with('}') && seg.len() >= 2 {
            out.push('*');
            return out;
        }
        out.push_str(seg);
    }
    // A literal trailing `*` would read as a prefix; that is the path's
    // own business, Overreach's paths do not end in one.
    out
}

/// A DNS-1123 name for the principal's generated policies.
pub fn policy_name(principal: &SpiffeId) -> String {
    let raw = format!(
        "overreach-minimal-{}{}",
        principal.trust_domain(),
        principal.path()
    )
    .to_ascii_lowercase();
    let mut out = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || c == '.' {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    out.truncate(253);
    out.trim_end_matches(['-', '.']).to_owned()
}

/// The minimal ALLOW policies for `principal` that allow every request of
/// it in `observed`, each given with the number of calls that made it
/// (requests of other principals are ignored; a request given twice adds
/// up).
pub fn minimal_policy<'a>(
    principal: &SpiffeId,
    observed: impl IntoIterator<Item = (&'a Request, usize)>,
) -> MinimalPolicy {
    // namespace -> generated path -> method -> observed call -> count
    type Calls = BTreeMap<String, usize>;
    let mut by_ns: BTreeMap<&str, BTreeMap<String, BTreeMap<String, Calls>>> = BTreeMap::new();
    for (r, n) in observed {
        if &r.principal != principal {
            continue;
        }
        let method = r.method.to_ascii_uppercase();
        let call = format!("{method} {}", r.path);
        *by_ns
            .entry(&r.target_namespace)
            .or_default()
            .entry(istio_path(&r.path))
            .or_default()
            .entry(method)
            .or_default()
            .entry(call)
            .or_insert(0) += n;
    }
    let mut policies = Vec::new();
    for (ns, paths) in by_ns {
        let mut by_methods: BTreeMap<Vec<String>, (Vec<String>, Calls)> = BTreeMap::new();
        for (path, methods) in paths {
            let key: Vec<String> = methods.keys().cloned().collect();
            let entry = by_methods.entry(key).or_default();
            entry.0.push(path);
            for calls in methods.into_values() {
                for (call, n) in calls {
                    *entry.1.entry(call).or_insert(0) += n;
                }
            }
        }
        let operations = by_methods
            .into_iter()
            .map(|(methods, (paths, calls))| GeneratedOperation {
                methods,
                paths,
                needed_by: calls.into_iter().collect(),
            })
            .collect();
        policies.push(GeneratedPolicy {
            namespace: ns.to_owned(),
            selector: BTreeMap::new(),
            operations,
        });
    }
    MinimalPolicy {
        principal: principal.clone(),
        name: policy_name(principal),
        policies,
    }
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

fn values(list: &[String]) -> Values {
    Values {
        values: list.iter().map(|s| StringMatch::parse(s)).collect(),
        not_values: Vec::new(),
    }
}

impl MinimalPolicy {
    /// The generated policies as grants, for [`allows`] and [`is_within`].
    pub fn grants(&self) -> Vec<IstioGrant> {
        self.policies
            .iter()
            .map(|p| IstioGrant {
                granted_at: None,
                principal: self.principal.clone(),
                source: RuleRef {
                    namespace: p.namespace.clone(),
                    policy: self.name.clone(),
                    rule: 0,
                },
                target: Target {
                    namespace: p.namespace.clone(),
                    mesh_wide: p.namespace == DEFAULT_ROOT_NAMESPACE && p.selector.is_empty(),
                    selector: p.selector.clone(),
                    target_refs: Vec::new(),
                },
                operations: p
                    .operations
                    .iter()
                    .map(|o| Operation {
                        methods: values(&o.methods),
                        paths: values(&o.paths),
                        ..Operation::default()
                    })
                    .collect(),
                conditions: Vec::new(),
                conditional: false,
            })
            .collect()
    }

    /// Multi-document YAML, one AuthorizationPolicy per namespace, with a
    /// comment above each operation naming the observed calls needing it.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        let principal = istio_principal(&self.principal);
        for (i, p) in self.policies.iter().enumerate() {
            if i > 0 {
                out.push_str("---\n");
            }
            let _ = writeln!(
                out,
                "# Minimal access of {} observed by Overreach.",
                self.principal
            );
            let _ = writeln!(out, "apiVersion: {ISTIO_API_VERSION}");
            out.push_str("kind: AuthorizationPolicy\nmetadata:\n");
            let _ = writeln!(out, "  name: {}", quote(&self.name));
            let _ = writeln!(out, "  namespace: {}", quote(&p.namespace));
            out.push_str("spec:\n");
            if !p.selector.is_empty() {
                out.push_str("  selector:\n    matchLabels:\n");
                for (k, v) in &p.selector {
                    let _ = writeln!(out, "      {}: {}", quote(k), quote(v));
                }
            }
            out.push_str("  action: ALLOW\n  rules:\n  - from:\n    - source:\n");
            let _ = writeln!(out, "        principals: [{}]", quote(&principal));
            out.push_str("    to:\n");
            for op in &p.operations {
                let total: usize = op.needed_by.iter().map(|(_, n)| n).sum();
                let _ = writeln!(out, "    # needed by {total} observed call(s):");
                for (call, n) in op.needed_by.iter().take(COMMENT_CALLS) {
                    let call = call.replace(['\n', '\r'], " ");
                    let _ = writeln!(out, "    #   {call} ({n})");
                }
                if op.needed_by.len() > COMMENT_CALLS {
                    let _ = writeln!(
                        out,
                        "    #   ... and {} more",
                        op.needed_by.len() - COMMENT_CALLS
                    );
                }
                let list = |v: &[String]| v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ");
                if op.paths.iter().any(|p| p.ends_with('*')) {
                    out.push_str(
                        "    # a path ending in * is a prefix cut at a placeholder: it allows more than was observed\n",
                    );
                }
                out.push_str("    - operation:\n");
                let _ = writeln!(out, "        methods: [{}]", list(&op.methods));
                let _ = writeln!(out, "        paths: [{}]", list(&op.paths));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;

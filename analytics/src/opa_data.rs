//! Data-driven RBAC for Open Policy Agent, in the shape of OPA's own RBAC
//! example: read the data document, work out what each identity is
//! granted, decide requests, and write the minimal data document that
//! covers observed use. Like [`crate::rbac`], this only reads what it is
//! given; the generated document is for a person to review and load.
//!
//! # Accepted shape
//!
//! ```json
//! {
//!   "user_roles": {
//!     "spiffe://prod.example.org/ns/shop/sa/frontend": ["orders-reader"]
//!   },
//!   "role_grants": {
//!     "orders-reader": [
//!       {"action": "GET", "type": "/v1/orders/*"},
//!       {"action": "GET", "resource": "/v1/customers/*/address"}
//!     ]
//!   }
//! }
//! ```
//!
//! - `user_roles` maps an identity, which must be a valid SPIFFE ID, to
//!   the names of its roles (an array of strings).
//! - `role_grants` maps a role name to an array of grants; a grant is an
//!   object with a string `action` and exactly one of `type` (the name in
//!   OPA's example) or `resource` (a string). Any other key is an error,
//!   so a typo does not silently grant nothing.
//! - Both sections may be absent (empty). Other top-level keys are allowed
//!   (data documents often hold more) and listed in
//!   [`OpaData::ignored_keys`]; roles named in `user_roles` but not
//!   defined grant nothing and are listed in [`OpaData::undefined_roles`].
//!
//! Errors name the JSON pointer (RFC 6901; a SPIFFE ID's `/` is written
//! `~1`) of the bad value, or the line and column of a syntax error.
//!
//! # Matching
//!
//! `action` and the resource are patterns in the glob language of
//! [`crate::glob`]: `*` matches any run of characters (including none and
//! including `/`), `\*` and `\\` are a literal `*` and `\`. Actions are
//! compared ASCII case-insensitively (`GET` is `get`), resources exactly.
//! A request is allowed when any grant of any role of its identity matches
//! both its action and its resource. (OPA's example compares with `==`;
//! with no `*` in a grant, this is the same.)
//!
//! # Minimal document
//!
//! [`minimal_data`] gives an identity one role named
//! `overreach-minimal:<trust domain><path>` holding one grant per distinct
//! observed (action, resource), actions upper-cased. Placeholder segments
//! of observed resources (`{id}`, any segment `{...}`) become `*`, so
//! `/v1/orders/{id}/items` is `/v1/orders/*/items`; since `*` crosses `/`,
//! that also allows `/v1/orders/a/b/items`. Literal `*` and `\` in a
//! resource are escaped. [`to_json`] writes one document for several
//! identities, pretty-printed, keys sorted, grants sorted by action then
//! resource, so equal input gives byte-equal output.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use overreach_model::SpiffeId;
use serde::Serialize;
use serde_json::Value;

use crate::glob::Glob;

pub type Result<T, E = OpaError> = std::result::Result<T, E>;

/// Why a data document could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum OpaError {
    #[error("cannot read OPA data {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// Not JSON. `line` and `column` are 1-based.
    #[error("{}: not valid JSON (line {line}, column {column}): {reason}", origin.display())]
    Syntax {
        origin: PathBuf,
        line: usize,
        column: usize,
        reason: String,
    },
    /// JSON, but not the accepted shape; `pointer` names the bad value.
    #[error("{}: at {pointer:?}: {reason}", origin.display())]
    Invalid {
        origin: PathBuf,
        pointer: String,
        reason: String,
    },
}

/// Whether a grant spelled its resource `type` or `resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceKey {
    Type,
    Resource,
}

/// One entry of a role's grants, as written.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Permission {
    pub action: String,
    pub resource: String,
    pub key: ResourceKey,
}

/// A parsed data document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpaData {
    pub user_roles: BTreeMap<SpiffeId, Vec<String>>,
    pub role_grants: BTreeMap<String, Vec<Permission>>,
    /// Top-level keys other than the two above.
    pub ignored_keys: Vec<String>,
    /// Roles named in `user_roles` that `role_grants` does not define.
    pub undefined_roles: BTreeSet<String>,
}

impl OpaData {
    /// Adds another document's assignments and roles (a role defined in
    /// both grants what either grants, each grant once); a role one file
    /// uses and another defines is defined.
    pub fn merge(&mut self, other: OpaData) {
        for (id, roles) in other.user_roles {
            let held = self.user_roles.entry(id).or_default();
            for role in roles {
                if !held.contains(&role) {
                    held.push(role);
                }
            }
        }
        for (role, grants) in other.role_grants {
            let held = self.role_grants.entry(role).or_default();
            for grant in grants {
                if !held.contains(&grant) {
                    held.push(grant);
                }
            }
        }
        self.ignored_keys.extend(other.ignored_keys);
        self.undefined_roles = self
            .user_roles
            .values()
            .flatten()
            .filter(|r| !self.role_grants.contains_key(*r))
            .cloned()
            .collect();
    }
}

/// One grant of one identity, through one role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpaGrant {
    pub identity: SpiffeId,
    pub role: String,
    /// Index in the role's grants (or in the generated role).
    pub index: usize,
    pub action: String,
    pub resource: String,
}

impl fmt::Display for OpaGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role {} grant {}: {} {}",
            self.role, self.index, self.action, self.resource
        )
    }
}

/// A request of one identity.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Request {
    pub identity: SpiffeId,
    pub action: String,
    /// Possibly with `{id}`-style placeholder segments.
    pub resource: String,
}

// ---------------------------------------------------------------------------
// Import

/// Reads and parses one data document.
pub fn load(path: &Path) -> Result<OpaData> {
    let text = std::fs::read_to_string(path).map_err(|source| OpaError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, path)
}

/// `token` escaped for a JSON pointer.
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Parses a data document; `origin` only names it in errors.
pub fn parse(text: &str, origin: &Path) -> Result<OpaData> {
    let value: Value = serde_json::from_str(text).map_err(|e| OpaError::Syntax {
        origin: origin.to_owned(),
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let invalid = |pointer: String, reason: &str| OpaError::Invalid {
        origin: origin.to_owned(),
        pointer,
        reason: reason.to_owned(),
    };
    let Value::Object(top) = value else {
        return Err(invalid(String::new(), "expected an object"));
    };
    let mut data = OpaData::default();
    for (key, section) in top {
        let at = format!("/{}", pointer_token(&key));
        match key.as_str() {
            "user_roles" => {
                let Value::Object(users) = section else {
                    return Err(invalid(at, "expected an object of identity to role names"));
                };
                for (identity, roles) in users {
                    let at = format!("{at}/{}", pointer_token(&identity));
                    let id = SpiffeId::parse(&identity)
                        .map_err(|e| invalid(at.clone(), &format!("not an identity: {e}")))?;
                    let Value::Array(roles) = roles else {
                        return Err(invalid(at, "expected an array of role names"));
                    };
                    let mut names = Vec::new();
                    for (i, role) in roles.into_iter().enumerate() {
                        let Value::String(role) = role else {
                            return Err(invalid(format!("{at}/{i}"), "expected a role name"));
                        };
                        names.push(role);
                    }
                    data.user_roles.insert(id, names);
                }
            }
            "role_grants" => {
                let Value::Object(roles) = section else {
                    return Err(invalid(at, "expected an object of role name to grants"));
                };
                for (role, grants) in roles {
                    let at = format!("{at}/{}", pointer_token(&role));
                    let Value::Array(grants) = grants else {
                        return Err(invalid(at, "expected an array of grants"));
                    };
                    let mut perms = Vec::new();
                    for (i, grant) in grants.into_iter().enumerate() {
                        let at = format!("{at}/{i}");
                        let Value::Object(grant) = grant else {
                            return Err(invalid(at, "expected a grant object"));
                        };
                        let (mut action, mut resource) = (None, None);
                        for (k, v) in grant {
                            let vat = format!("{at}/{}", pointer_token(&k));
                            let Value::String(v) = v else {
                                return Err(invalid(vat, "expected a string"));
                            };
                            match k.as_str() {
                                "action" => action = Some(v),
                                "type" | "resource" => {
                                    if resource.is_some() {
                                        return Err(invalid(
                                            vat,
                                            "a grant has either type or resource, not both",
                                        ));
                                    }
                                    let key = if k == "type" {
                                        ResourceKey::Type
                                    } else {
                                        ResourceKey::Resource
                                    };
                                    resource = Some((v, key));
                                }
                                _ => return Err(invalid(vat, "unknown grant field")),
                            }
                        }
                        let action = action.ok_or_else(|| invalid(at.clone(), "missing action"))?;
                        let (resource, key) = resource
                            .ok_or_else(|| invalid(at.clone(), "missing type (or resource)"))?;
                        perms.push(Permission {
                            action,
                            resource,
                            key,
                        });
                    }
                    data.role_grants.insert(role, perms);
                }
            }
            _ => data.ignored_keys.push(key),
        }
    }
    data.undefined_roles = data
        .user_roles
        .values()
        .flatten()
        .filter(|r| !data.role_grants.contains_key(*r))
        .cloned()
        .collect();
    Ok(data)
}

// ---------------------------------------------------------------------------
// Patterns

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Char(char),
    Star,
}

/// The glob language of [`crate::glob`]; `upper` folds ASCII case.
fn tokens(pattern: &str, upper: bool) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut chars = pattern.chars().peekable();
    let fold = |c: char| if upper { c.to_ascii_uppercase() } else { c };
    while let Some(c) = chars.next() {
        match c {
            '*' => {
                if out.last() != Some(&Tok::Star) {
                    out.push(Tok::Star);
                }
            }
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '\\')) => {
                    chars.next();
                    out.push(Tok::Char(next));
                }
                _ => out.push(Tok::Char('\\')),
            },
            other => out.push(Tok::Char(fold(other))),
        }
    }
    out
}

fn literal(text: &str, upper: bool) -> Vec<Tok> {
    text.chars()
        .map(|c| Tok::Char(if upper { c.to_ascii_uppercase() } else { c }))
        .collect()
}

/// True when pattern `g` matches every string pattern `p` matches: `g`'s
/// stars may absorb any run of `p`'s tokens, `p`'s stars only by a star
/// of `g`. Sound, and exact when `p` is a literal.
fn covers(g: &[Tok], p: &[Tok]) -> bool {
    // dp[j]: g[i..] covers p[j..], computed from the end of g.
    let mut next = vec![false; p.len() + 1];
    next[p.len()] = true;
    for gi in (0..g.len()).rev() {
        let mut cur = vec![false; p.len() + 1];
        for j in (0..=p.len()).rev() {
            cur[j] = match g[gi] {
                Tok::Star => next[j] || (j < p.len() && cur[j + 1]),
                Tok::Char(c) => j < p.len() && p[j] == Tok::Char(c) && next[j + 1],
            };
        }
        next = cur;
    }
    next[0]
}

fn action_matches(pattern: &str, action: &str) -> bool {
    covers(&tokens(pattern, true), &literal(action, true))
}

fn resource_matches(pattern: &str, resource: &str) -> bool {
    covers(&tokens(pattern, false), &literal(resource, false))
}

// ---------------------------------------------------------------------------
// Evaluation

/// Every grant of every role of `identity`, in role order.
pub fn grants_for(data: &OpaData, identity: &SpiffeId) -> Vec<OpaGrant> {
    let mut out = Vec::new();
    for role in data.user_roles.get(identity).into_iter().flatten() {
        for (index, p) in data.role_grants.get(role).into_iter().flatten().enumerate() {
            out.push(OpaGrant {
                identity: identity.clone(),
                role: role.clone(),
                index,
                action: p.action.clone(),
                resource: p.resource.clone(),
            });
        }
    }
    out
}

/// Whether some grant of the request's identity matches it.
pub fn allows(grants: &[OpaGrant], request: &Request) -> bool {
    grants.iter().any(|g| {
        g.identity == request.identity
            && action_matches(&g.action, &request.action)
            && resource_matches(&g.resource, &request.resource)
    })
}

/// True when each reduced grant is covered by one granted grant of the
/// same identity. (A reduced pattern covered only by several granted ones
/// together is reported as not within: the safe answer.)
pub fn is_within(reduced: &[OpaGrant], granted: &[OpaGrant]) -> bool {
    reduced.iter().all(|r| {
        let (ra, rr) = (tokens(&r.action, true), tokens(&r.resource, false));
        granted.iter().any(|g| {
            g.identity == r.identity
                && covers(&tokens(&g.action, true), &ra)
                && covers(&tokens(&g.resource, false), &rr)
        })
    })
}

// ---------------------------------------------------------------------------
// Minimal document

/// The generated role of one identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinimalData {
    pub identity: SpiffeId,
    pub role: String,
    /// Sorted by action, then resource.
    pub grants: Vec<GeneratedGrant>,
}

/// One generated grant and the observed requests that need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedGrant {
    pub action: String,
    pub resource: String,
    /// Distinct observed resources and their counts.
    pub needed_by: Vec<(String, usize)>,
}

/// `overreach-minimal:<trust domain><path>`.
pub fn role_name(identity: &SpiffeId) -> String {
    format!(
        "overreach-minimal:{}{}",
        identity.trust_domain(),
        identity.path()
    )
}

/// The grant pattern for an observed resource: placeholder segments
/// become `*`, everything else is literal.
pub fn resource_pattern(observed: &str) -> String {
    observed
        .split('/')
        .map(|seg| {
            if seg.len() >= 2 && seg.starts_with('{') && seg.ends_with('}') {
                "*".to_owned()
            } else {
                Glob::escape(seg)
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The least grants for `identity` allowing its requests in `observed`,
/// each given with the number of calls that made it (others' are ignored;
/// a request given twice adds up).
pub fn minimal_data<'a>(
    identity: &SpiffeId,
    observed: impl IntoIterator<Item = (&'a Request, usize)>,
) -> MinimalData {
    let mut by_grant: BTreeMap<(String, String), BTreeMap<String, usize>> = BTreeMap::new();
    for (r, n) in observed {
        if &r.identity != identity {
            continue;
        }
        let key = (
            Glob::escape(&r.action.to_ascii_uppercase()),
            resource_pattern(&r.resource),
        );
        *by_grant
            .entry(key)
            .or_default()
            .entry(r.resource.clone())
            .or_insert(0) += n;
    }
    MinimalData {
        identity: identity.clone(),
        role: role_name(identity),
        grants: by_grant
            .into_iter()
            .map(|((action, resource), calls)| GeneratedGrant {
                action,
                resource,
                needed_by: calls.into_iter().collect(),
            })
            .collect(),
    }
}

impl MinimalData {
    /// The generated grants, for [`allows`] and [`is_within`].
    pub fn grants(&self) -> Vec<OpaGrant> {
        self.grants
            .iter()
            .enumerate()
            .map(|(index, g)| OpaGrant {
                identity: self.identity.clone(),
                role: self.role.clone(),
                index,
                action: g.action.clone(),
                resource: g.resource.clone(),
            })
            .collect()
    }
}

#[derive(Serialize)]
struct DocumentWire<'a> {
    user_roles: BTreeMap<String, Vec<&'a str>>,
    role_grants: BTreeMap<&'a str, Vec<GrantWire<'a>>>,
}

#[derive(Serialize)]
struct GrantWire<'a> {
    action: &'a str,
    #[serde(rename = "type")]
    resource: &'a str,
}

/// What `grants` (some of one identity's [`grants_for`]) leave of the data
/// document: the identity's roles that keep a grant and those grants, in
/// the shape [`to_json`] writes, so that the two diff line by line.
pub fn granted_json(grants: &[&OpaGrant]) -> String {
    let mut doc = DocumentWire {
        user_roles: BTreeMap::new(),
        role_grants: BTreeMap::new(),
    };
    for g in grants {
        let roles = doc.user_roles.entry(g.identity.to_string()).or_default();
        if !roles.contains(&g.role.as_str()) {
            roles.push(&g.role);
        }
        doc.role_grants.entry(&g.role).or_default().push(GrantWire {
            action: &g.action,
            resource: &g.resource,
        });
    }
    let mut out = serde_json::to_string_pretty(&doc).expect("strings serialize");
    out.push('\n');
    out
}

/// One data document holding the generated roles of several identities,
/// pretty-printed with a stable order. Identities with no grants get no
/// role.
pub fn to_json(minimal: &[MinimalData]) -> String {
    let mut doc = DocumentWire {
        user_roles: BTreeMap::new(),
        role_grants: BTreeMap::new(),
    };
    for m in minimal.iter().filter(|m| !m.grants.is_empty()) {
        doc.user_roles
            .entry(m.identity.to_string())
            .or_default()
            .push(&m.role);
        let grants = doc.role_grants.entry(&m.role).or_default();
        for g in &m.grants {
            grants.push(GrantWire {
                action: &g.action,
                resource: &g.resource,
            });
        }
        grants.sort_by(|a, b| (a.action, a.resource).cmp(&(b.action, b.resource)));
        grants.dedup_by(|a, b| (a.action, a.resource) == (b.action, b.resource));
    }
    for roles in doc.user_roles.values_mut() {
        roles.sort_unstable();
        roles.dedup();
    }
    let mut out = serde_json::to_string_pretty(&doc).expect("strings serialize");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests;

//! The grants file: what each identity is allowed to do, as the input to
//! right-sizing. Part of the analytics stage; it only reads the file it is
//! given and never changes any policy engine's configuration.
//!
//! # Format
//!
//! YAML (`.yaml`, `.yml`) or JSON (`.json`; any other name is read as JSON
//! when it starts with `{`, else as YAML):
//!
//! ```yaml
//! grants:
//!   - subject: spiffe://cluster.local/ns/argo-cd/sa/argocd-server
//!     allow:
//!       - action: get            # glob: * matches any run of characters
//!         resource: namespaces/argo-cd/core/secrets
//!       - action: "*"
//!         resource: "namespaces/argo-cd/apps/*"
//! ```
//!
//! - `subject` is compared exactly with the events' `subject` column (a
//!   SPIFFE ID or the source's principal name).
//! - `action` and `resource` are globs: `*` matches any run of characters,
//!   `/` included; `\*` and `\\` are a literal `*` and `\`. Actions match
//!   ASCII case-insensitively (`GET` = `get`), resources exactly.
//! - A grant covers an event when its action matches the event's `action`
//!   and its resource matches the event's `resource` **or** its
//!   `resource_pattern`, so `namespaces/a/core/secrets` covers every named
//!   secret in namespace `a` (`namespaces/a/core/secrets:db`) and
//!   `/v1/accounts/{id}` covers every account path.
//! - `since` (optional, RFC 3339) on a rule says when it was granted; a
//!   rule younger than the grace period (`--grace`, 14d) is not judged.
//! - Unknown keys are errors, so a typo (`alow:`) cannot silently grant
//!   nothing. An identical grant listed twice for one subject counts once.
//!
//! The `policy` column of `minimal-policy` and `narrow-wildcard`
//! suggestions is written in this format, so a reviewed suggestion can be
//! fed back with `--grants`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::glob::{Case, Glob};

/// The document as written, for reading and writing grants files.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsFile {
    pub grants: Vec<SubjectGrants>,
}

/// Everything one identity is granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectGrants {
    pub subject: String,
    pub allow: Vec<GrantRule>,
}

/// One `action` × `resource` permission, both globs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantRule {
    pub action: String,
    pub resource: String,
    /// Since when the grant exists (RFC 3339), if known: grants younger
    /// than the grace period (14d) are not judged yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The syntax a grants file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        })
    }
}

/// Why a grants file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum GrantsError {
    #[error("cannot read grants file {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    /// The file is not valid YAML/JSON or not in the grants format.
    /// `line` and `column` are 1-based, when the parser knows them.
    #[error("grants file {} is not valid {format} in the grants format: {reason}", path.display())]
    Syntax {
        path: PathBuf,
        format: Format,
        line: Option<usize>,
        column: Option<usize>,
        reason: String,
    },
    /// The file parses but an entry is unusable.
    #[error("grants file {}: {at}: {reason}", path.display())]
    Invalid {
        path: PathBuf,
        /// Where in the document, e.g. `grants[2].allow[0].action`.
        at: String,
        reason: &'static str,
    },
}

/// One compiled grant of one subject.
#[derive(Debug, Clone)]
pub struct Grant {
    pub subject: String,
    pub rule: GrantRule,
    action: Glob,
    resource: Glob,
}

/// Which of an event's resource columns a grant matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// The generalized `resource_pattern` (so all names / ids are covered).
    Pattern,
    /// Only the concrete `resource`.
    Resource,
}

impl Grant {
    pub fn new(subject: impl Into<String>, rule: GrantRule) -> Self {
        Self {
            subject: subject.into(),
            action: Glob::new(&rule.action, Case::AsciiInsensitive),
            resource: Glob::new(&rule.resource, Case::Sensitive),
            rule,
        }
    }

    /// Whether this grant covers a call of `action` on `resource` (whose
    /// generalized form is `resource_pattern`), and through which column.
    /// The pattern is preferred: a grant that matches it covers every
    /// concrete resource of that shape.
    pub fn covers(&self, action: &str, resource: &str, resource_pattern: &str) -> Option<Coverage> {
        if !self.action.matches(action) {
            None
        } else if self.resource.matches(resource_pattern) {
            Some(Coverage::Pattern)
        } else if self.resource.matches(resource) {
            Some(Coverage::Resource)
        } else {
            None
        }
    }

    /// True when the action or the resource contains a `*`.
    pub fn is_wildcard(&self) -> bool {
        self.action.is_wildcard() || self.resource.is_wildcard()
    }

    /// True when the action is a wildcard (`*`, `get*`): it may cover writes.
    pub fn has_wildcard_action(&self) -> bool {
        self.action.is_wildcard()
    }

    /// `action resource`, as the `grant` column shows it.
    pub fn label(&self) -> String {
        format!("{} {}", self.rule.action, self.rule.resource)
    }
}

/// A parsed grants file: every grant, in file order, duplicates removed.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    grants: Vec<Grant>,
}

impl Grants {
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.grants.iter()
    }

    pub fn len(&self) -> usize {
        self.grants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// Adds another file's grants after these, dropping duplicates.
    pub fn extend(&mut self, other: Grants) {
        for g in other.grants {
            if !self
                .grants
                .iter()
                .any(|h| h.subject == g.subject && h.rule == g.rule)
            {
                self.grants.push(g);
            }
        }
    }

    /// The distinct subjects that have grants, in file order.
    pub fn subjects(&self) -> Vec<&str> {
        let mut seen = std::collections::HashSet::new();
        self.grants
            .iter()
            .map(|g| g.subject.as_str())
            .filter(|s| seen.insert(*s))
            .collect()
    }

    /// True when some grant of `subject` covers the call.
    pub fn covers(
        &self,
        subject: &str,
        action: &str,
        resource: &str,
        resource_pattern: &str,
    ) -> bool {
        self.grants
            .iter()
            .any(|g| g.subject == subject && g.covers(action, resource, resource_pattern).is_some())
    }

    /// Validates and compiles a parsed document; `path` is for messages.
    pub fn from_file(file: GrantsFile, path: &Path) -> Result<Self, GrantsError> {
        let invalid = |at: String, reason| GrantsError::Invalid {
            path: path.to_owned(),
            at,
            reason,
        };
        let mut grants: Vec<Grant> = Vec::new();
        for (i, entry) in file.grants.into_iter().enumerate() {
            if entry.subject.trim().is_empty() {
                return Err(invalid(format!("grants[{i}].subject"), "is empty"));
            }
            for (j, rule) in entry.allow.into_iter().enumerate() {
                if rule.action.trim().is_empty() {
                    return Err(invalid(
                        format!("grants[{i}].allow[{j}].action"),
                        "is empty",
                    ));
                }
                if rule.resource.trim().is_empty() {
                    return Err(invalid(
                        format!("grants[{i}].allow[{j}].resource"),
                        "is empty",
                    ));
                }
                let duplicate = grants
                    .iter()
                    .any(|g| g.subject == entry.subject && g.rule == rule);
                if !duplicate {
                    grants.push(Grant::new(entry.subject.clone(), rule));
                }
            }
        }
        Ok(Self { grants })
    }
}

/// Reads and validates a grants file, choosing the syntax by extension.
pub fn load(path: &Path) -> Result<Grants, GrantsError> {
    let text = std::fs::read_to_string(path).map_err(|source| GrantsError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_detected(&text, path)
}

/// [`parse`] in the format `path`'s extension names, else JSON when the
/// text starts with `{`, else YAML.
pub fn parse_detected(text: &str, path: &Path) -> Result<Grants, GrantsError> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match extension.as_deref() {
        Some("json") => Format::Json,
        Some("yaml" | "yml") => Format::Yaml,
        _ if text.trim_start().starts_with('{') => Format::Json,
        _ => Format::Yaml,
    };
    parse(text, format, path)
}

/// Parses grants from text; `path` only names the source in errors.
pub fn parse(text: &str, format: Format, path: &Path) -> Result<Grants, GrantsError> {
    let syntax = |line: Option<usize>, column: Option<usize>, reason: String| GrantsError::Syntax {
        path: path.to_owned(),
        format,
        line,
        column,
        reason,
    };
    let file: GrantsFile = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let known = |n: usize| (n > 0).then_some(n);
            syntax(known(e.line()), known(e.column()), e.to_string())
        })?,
        Format::Yaml => serde_yaml::from_str(text).map_err(|e| {
            let location = e.location();
            syntax(
                location.as_ref().map(|l| l.line()),
                location.as_ref().map(|l| l.column()),
                e.to_string(),
            )
        })?,
    };
    Grants::from_file(file, path)
}

/// Writes a grants document as YAML, the form `parse` reads back.
pub fn to_yaml(file: &GrantsFile) -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
grants:
  - subject: spiffe://cluster.local/ns/argo-cd/sa/argocd-server
    allow:
      - action: get            # glob: * matches any run of characters
        resource: namespaces/argo-cd/core/secrets
      - action: "*"
        resource: "namespaces/argo-cd/apps/*"
      - action: get
        resource: namespaces/argo-cd/core/secrets
  - subject: kubernetes-admin
    allow: []
"#;

    fn path() -> PathBuf {
        PathBuf::from("grants.yaml")
    }

    #[test]
    fn parses_yaml_and_drops_duplicates() {
        let grants = parse(YAML, Format::Yaml, &path()).unwrap();
        assert_eq!(
            grants.len(),
            2,
            "the repeated get secrets grant counts once"
        );
        let server = "spiffe://cluster.local/ns/argo-cd/sa/argocd-server";
        assert_eq!(grants.subjects(), vec![server]);
        let labels: Vec<String> = grants.iter().map(Grant::label).collect();
        assert_eq!(
            labels,
            [
                "get namespaces/argo-cd/core/secrets",
                "* namespaces/argo-cd/apps/*"
            ]
        );
        assert!(grants.covers(
            server,
            "GET",
            "namespaces/argo-cd/core/secrets:argocd-secret",
            "namespaces/argo-cd/core/secrets"
        ));
        assert!(grants.covers(
            server,
            "delete",
            "namespaces/argo-cd/apps/deployments:x",
            "namespaces/argo-cd/apps/deployments"
        ));
        assert!(!grants.covers(
            server,
            "list",
            "namespaces/argo-cd/core/secrets",
            "namespaces/argo-cd/core/secrets"
        ));
        assert!(!grants.covers(
            "kubernetes-admin",
            "get",
            "namespaces/argo-cd/core/secrets",
            "namespaces/argo-cd/core/secrets"
        ));
    }

    #[test]
    fn parses_json() {
        let json = r#"{"grants": [{"subject": "spiffe://td/a",
            "allow": [{"action": "GET", "resource": "/v1/accounts/{id}"}]}]}"#;
        let grants = parse(json, Format::Json, Path::new("g.json")).unwrap();
        assert!(grants.covers(
            "spiffe://td/a",
            "get",
            "/v1/accounts/4711",
            "/v1/accounts/{id}"
        ));
        assert!(!grants.covers("spiffe://td/a", "get", "/v1/accounts", "/v1/accounts"));
    }

    #[test]
    fn coverage_says_which_column_matched() {
        let grant = Grant::new(
            "s",
            GrantRule {
                action: "get".into(),
                resource: "namespaces/a/core/configmaps:app-*".into(),
                since: None,
            },
        );
        assert_eq!(
            grant.covers(
                "get",
                "namespaces/a/core/configmaps:app-config",
                "namespaces/a/core/configmaps"
            ),
            Some(Coverage::Resource)
        );
        assert_eq!(
            grant.covers(
                "get",
                "namespaces/a/core/configmaps:other",
                "namespaces/a/core/configmaps"
            ),
            None
        );
        let broad = Grant::new(
            "s",
            GrantRule {
                action: "get".into(),
                resource: "namespaces/a/core/*".into(),
                since: None,
            },
        );
        assert_eq!(
            broad.covers(
                "get",
                "namespaces/a/core/configmaps:x",
                "namespaces/a/core/configmaps"
            ),
            Some(Coverage::Pattern)
        );
        assert!(broad.is_wildcard() && !broad.has_wildcard_action());
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let bad = "grants:\n  - subject: spiffe://td/a\n    allow:\n      - action: get\n        resorce: x\n";
        let err = parse(bad, Format::Yaml, &path()).unwrap_err();
        match &err {
            GrantsError::Syntax { line, format, .. } => {
                assert_eq!(*format, Format::Yaml);
                assert_eq!(*line, Some(5), "{err}");
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("grants.yaml"), "{message}");
        assert!(message.contains("line 5"), "{message}");
        assert!(message.contains("resorce"), "{message}");
    }

    #[test]
    fn json_errors_name_the_line() {
        let bad =
            "{\"grants\": [\n  {\"subject\": \"s\",\n   \"allow\": [{\"action\": \"get\"}]}\n]}";
        let err = parse(bad, Format::Json, Path::new("g.json")).unwrap_err();
        assert!(
            matches!(err, GrantsError::Syntax { line: Some(3), .. }),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("missing field `resource`"),
            "{err}"
        );
    }

    #[test]
    fn empty_fields_are_invalid() {
        let bad = "grants:\n  - subject: s\n    allow:\n      - action: ''\n        resource: x\n";
        let err = parse(bad, Format::Yaml, &path()).unwrap_err();
        assert!(
            matches!(&err, GrantsError::Invalid { at, .. } if at == "grants[0].allow[0].action"),
            "{err:?}"
        );
    }

    #[test]
    fn round_trips_through_yaml() {
        let file = GrantsFile {
            grants: vec![SubjectGrants {
                subject: "spiffe://td/ns/a/sa/b".into(),
                allow: vec![
                    GrantRule {
                        action: "get".into(),
                        resource: "/v1/accounts/{id}".into(),
                        since: None,
                    },
                    GrantRule {
                        action: "*".into(),
                        resource: Glob::escape("/odd/*/path"),
                        since: None,
                    },
                ],
            }],
        };
        let yaml = to_yaml(&file).unwrap();
        let back: GrantsFile = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, file);
        let grants = parse(&yaml, Format::Yaml, &path()).unwrap();
        assert!(grants.covers(
            "spiffe://td/ns/a/sa/b",
            "post",
            "/odd/*/path",
            "/odd/*/path"
        ));
        assert!(!grants.covers(
            "spiffe://td/ns/a/sa/b",
            "post",
            "/odd/x/path",
            "/odd/x/path"
        ));
    }
}

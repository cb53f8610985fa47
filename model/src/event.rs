//! The canonical decision event: every source format is normalized into
//! this one shape, stored as one row of the `events` table.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether the request was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Allow,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Allow => "allow",
            Decision::Deny => "deny",
        }
    }
}

/// What kind of principal the subject is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubjectKind {
    Spiffe,
    AwsRole,
    GcpServiceAccount,
    User,
    System,
    Unknown,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Spiffe => "spiffe",
            SubjectKind::AwsRole => "aws-role",
            SubjectKind::GcpServiceAccount => "gcp-service-account",
            SubjectKind::User => "user",
            SubjectKind::System => "system",
            SubjectKind::Unknown => "unknown",
        }
    }
}

/// One authorization decision, whatever format it arrived in.
///
/// Field meanings are those of DESIGN.md's canonical event table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DecisionEvent {
    /// Unique per stored event: a hash of the source id and what
    /// identifies the request, or of the origin when the source has no id.
    pub event_id: String,
    /// The source's own id (OPA `decision_id`, Kubernetes `auditID`), kept
    /// for search.
    pub source_id: Option<String>,
    pub time: DateTime<Utc>,
    pub subject: String,
    pub subject_kind: SubjectKind,
    pub trust_domain: Option<String>,
    pub action: String,
    pub resource: String,
    pub resource_pattern: String,
    pub target: Option<String>,
    pub decision: Decision,
    pub policy: Option<String>,
    pub reason: Option<String>,
    pub environment: Option<String>,
    pub namespace: Option<String>,
    pub source_address: Option<String>,
    pub credential_kind: Option<String>,
    pub credential_expires_at: Option<DateTime<Utc>>,
    /// Which decoder produced the event: `native`, `k8s-audit`, `opa`.
    pub format: String,
    /// Where the record came from: `topic/partition/offset` or `file:line`.
    pub origin: String,
    /// Remaining context as a JSON object, credentials already masked.
    pub attributes: Option<String>,
}

pub(crate) fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// A UTC timestamp column with microsecond precision.
pub(crate) fn timestamp(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        nullable,
    )
}

/// The Arrow schema of the `events` table. Parquet dictionary-encodes the
/// low-cardinality string columns on disk.
pub fn event_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("event_id", false),
        utf8("source_id", true),
        timestamp("time", false),
        utf8("subject", false),
        utf8("subject_kind", false),
        utf8("trust_domain", true),
        utf8("action", false),
        utf8("resource", false),
        utf8("resource_pattern", false),
        utf8("target", true),
        utf8("decision", false),
        utf8("policy", true),
        utf8("reason", true),
        utf8("environment", true),
        utf8("namespace", true),
        utf8("source_address", true),
        utf8("credential_kind", true),
        timestamp("credential_expires_at", true),
        utf8("format", false),
        utf8("origin", false),
        utf8("attributes", true),
    ]))
}

/// True for actions that change state or widen access: what a reviewer
/// should look at first.
pub fn is_write_action(action: &str) -> bool {
    let a = action.to_ascii_lowercase();
    let a = a.rsplit(':').next().unwrap_or(&a);
    matches!(
        a,
        "create"
            | "update"
            | "patch"
            | "delete"
            | "deletecollection"
            | "escalate"
            | "bind"
            | "impersonate"
            | "approve"
            | "sign"
            | "post"
            | "put"
    ) || a.starts_with("put")
        || a.starts_with("delete")
        || a.starts_with("create")
        || a.starts_with("update")
        || a.starts_with("attach")
}

/// True for resources that hold credentials or grant access.
pub fn is_sensitive_resource(resource: &str) -> bool {
    let r = resource.to_ascii_lowercase();
    [
        "secrets",
        "serviceaccounts/token",
        "clusterrolebindings",
        "rolebindings",
        "clusterroles",
        "roles",
        "certificatesigningrequests",
        "tokenreviews",
        "secret",
        "credential",
        "password",
        "/token",
    ]
    .iter()
    .any(|needle| r.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_actions_and_resources() {
        assert!(is_write_action("create"));
        assert!(is_write_action("DELETE"));
        assert!(is_write_action("s3:PutObject"));
        assert!(!is_write_action("get"));
        assert!(!is_write_action("s3:GetObject"));
        assert!(is_sensitive_resource("namespaces/argo-cd/core/secrets"));
        assert!(!is_sensitive_resource("namespaces/argo-cd/core/configmaps"));
    }
}

//! The tables `overreach analyze` writes and `overreach serve` reads.
//!
//! These are storage rows, not API responses: the api crate wraps them in
//! its own response types.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::event::{timestamp as ts, utf8};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

fn int(name: &str) -> Field {
    Field::new(name, DataType::Int64, false)
}

fn list(name: &str) -> Field {
    Field::new(
        name,
        DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
        false,
    )
}

/// One reach key of one subject's baseline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineEntry {
    pub subject: String,
    pub action: String,
    pub resource_pattern: String,
    pub target: Option<String>,
    pub count: i64,
    pub allow_count: i64,
    pub deny_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

pub fn baseline_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("subject", false),
        utf8("action", false),
        utf8("resource_pattern", false),
        utf8("target", true),
        int("count"),
        int("allow_count"),
        int("deny_count"),
        ts("first_seen", false),
        ts("last_seen", false),
    ]))
}

/// Every kind of finding analytics produces, one per detector (analytics
/// documents each rule; its tests keep this list in step).
pub const FINDING_KINDS: [&str; 11] = [
    "new-identity",
    "new-reach",
    "peer-rare",
    "new-target",
    "trust-domain-crossing",
    "environment-crossing",
    "volume-spike",
    "deny-spike",
    "off-hours",
    "weak-credential",
    "used-after-suggestion",
];

/// Something a SOC analyst should look at, with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable across re-runs: derived from kind, subject and reach key.
    pub id: String,
    /// One of [`FINDING_KINDS`].
    pub kind: String,
    pub subject: String,
    pub action: Option<String>,
    pub resource_pattern: Option<String>,
    pub target: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub count: i64,
    pub allow_count: i64,
    pub deny_count: i64,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// 0 to 100.
    pub score: i64,
    pub explanation: String,
    /// The numbers behind the finding, as a JSON object.
    pub evidence: String,
    #[serde(default)]
    pub sample_event_ids: Vec<String>,
    #[serde(default)]
    pub controls: Vec<String>,
}

pub fn finding_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("id", false),
        utf8("kind", false),
        utf8("subject", false),
        utf8("action", true),
        utf8("resource_pattern", true),
        utf8("target", true),
        ts("first_seen", false),
        ts("last_seen", false),
        int("count"),
        int("allow_count"),
        int("deny_count"),
        utf8("severity", false),
        int("score"),
        utf8("explanation", false),
        utf8("evidence", false),
        list("sample_event_ids"),
        list("controls"),
    ]))
}

/// A least-privilege suggestion for one subject.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub id: String,
    /// `remove-unused`, `remove-binding`, `narrow-wildcard` or
    /// `minimal-policy`.
    pub kind: String,
    pub subject: String,
    /// The grant the suggestion is about (`action resource`), if any.
    pub grant: Option<String>,
    /// What to grant instead (`action resource` each); empty to remove.
    #[serde(default)]
    pub replacement: Vec<String>,
    /// Allowed calls in the observation window that the grant covered.
    pub used_count: i64,
    pub last_used: Option<DateTime<Utc>>,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// 0.0 to 1.0: how sure we are the change breaks nothing.
    pub confidence: f64,
    /// `low` (read), `medium`, `high` (write, delete, escalate, secrets).
    pub risk: String,
    pub explanation: String,
    /// The suggested policy in the inventory's own language (Kubernetes
    /// Role YAML, Istio AuthorizationPolicy YAML, OPA data JSON, or the
    /// grants-file YAML), if any.
    pub policy: Option<String>,
    /// A unified diff from the identity's granted policy, rendered in the
    /// same language, to `policy` (or to the policy without the grant).
    #[serde(default)]
    pub diff: Option<String>,
    /// Ids of observed calls the kept access is needed for (at most 5):
    /// evidence a reviewer can look up in the events.
    #[serde(default)]
    pub sample_event_ids: Vec<String>,
}

pub fn suggestion_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("id", false),
        utf8("kind", false),
        utf8("subject", false),
        utf8("grant", true),
        list("replacement"),
        int("used_count"),
        ts("last_used", true),
        ts("window_start", false),
        ts("window_end", false),
        Field::new("confidence", DataType::Float64, false),
        utf8("risk", false),
        utf8("explanation", false),
        utf8("policy", true),
        utf8("diff", true),
        list("sample_event_ids"),
    ]))
}

/// One row per subject seen in the analysed data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentitySummary {
    pub subject: String,
    pub subject_kind: String,
    pub trust_domain: Option<String>,
    pub events: i64,
    pub allow_count: i64,
    pub deny_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Reach keys in the baseline window.
    pub baseline_keys: i64,
    pub findings: i64,
    pub suggestions: i64,
}

pub fn identity_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        utf8("subject", false),
        utf8("subject_kind", false),
        utf8("trust_domain", true),
        int("events"),
        int("allow_count"),
        int("deny_count"),
        ts("first_seen", false),
        ts("last_seen", false),
        int("baseline_keys"),
        int("findings"),
        int("suggestions"),
    ]))
}

/// `run.json`: what the last analysis covered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    pub now: DateTime<Utc>,
    pub baseline_start: DateTime<Utc>,
    pub detect_start: DateTime<Utc>,
    pub observe_start: DateTime<Utc>,
    pub baseline: String,
    pub detect: String,
    pub observe: String,
    pub events: i64,
    pub identities: i64,
    pub findings: i64,
    pub suggestions: i64,
    pub grants_file: Option<String>,
    /// Reach keys in the baseline and detection windows: distinct
    /// (subject, action, concrete resource, target); as stored (ingest's
    /// resource patterns); and after the analysis' generalization.
    #[serde(default)]
    pub reach_keys_concrete: i64,
    #[serde(default)]
    pub reach_keys_stored: i64,
    #[serde(default)]
    pub reach_keys_generalized: i64,
    /// Findings that scored below the reporting threshold, by kind.
    #[serde(default)]
    pub below_min_score: std::collections::BTreeMap<String, i64>,
}

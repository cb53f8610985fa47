//! Helpers shared by the analytics integration tests: decision events as
//! ingest stores them, and the result tables read back as the api reads
//! them.
#![allow(dead_code)] // each test binary uses its own subset

use chrono::{DateTime, Utc};
use overreach_model::results::{Finding, Suggestion};
use overreach_model::table::read_rows;
use overreach_model::{DataDir, Decision, DecisionEvent, SubjectKind};

/// A Kubernetes API call as ingest stores it: a SPIFFE subject (trust
/// domain `cluster.local`) or else a user, the resource's pattern being
/// the resource without its object name.
pub fn event(
    id: &str,
    time: DateTime<Utc>,
    subject: &str,
    action: &str,
    resource: &str,
    decision: Decision,
) -> DecisionEvent {
    let (kind, trust_domain) = if subject.starts_with("spiffe://") {
        (SubjectKind::Spiffe, Some("cluster.local".to_owned()))
    } else {
        (SubjectKind::User, None)
    };
    DecisionEvent {
        event_id: id.to_owned(),
        source_id: Some(id.to_owned()),
        time,
        subject: subject.to_owned(),
        subject_kind: kind,
        trust_domain,
        action: action.to_owned(),
        resource: resource.to_owned(),
        resource_pattern: resource.split(':').next().unwrap_or(resource).to_owned(),
        target: Some("kubernetes-api".to_owned()),
        decision,
        policy: None,
        reason: None,
        environment: None,
        namespace: None,
        source_address: None,
        credential_kind: None,
        credential_expires_at: None,
        format: "k8s-audit".to_owned(),
        origin: format!("test:{id}"),
        attributes: None,
    }
}

pub fn findings(data: &DataDir) -> Vec<Finding> {
    read_rows(&data.findings()).unwrap()
}

pub fn suggestions(data: &DataDir) -> Vec<Suggestion> {
    read_rows(&data.suggestions()).unwrap()
}

//! A small analysed data directory, written the way `overreach analyze`
//! writes it (Parquet tables by atomic rename, `run.json` last), and helpers
//! to drive the router.
#![allow(dead_code)] // each test binary uses a different part

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use overreach_model::results::{
    baseline_schema, finding_schema, identity_schema, suggestion_schema, BaselineEntry, Finding,
    IdentitySummary, RunInfo, Suggestion,
};
use overreach_model::table::{write_rows_atomic, write_text_atomic};
use overreach_model::DataDir;
use tower::ServiceExt;

pub const ALICE: &str = "spiffe://cluster.local/ns/a/sa/b";
pub const ALICE_ENCODED: &str = "spiffe%3A%2F%2Fcluster.local%2Fns%2Fa%2Fsa%2Fb";
pub const PAYMENTS: &str = "spiffe://cluster.local/ns/payments/sa/api";
pub const DEPLOYER: &str = "arn:aws:iam::123456789012:role/deployer";
pub const DEPLOYER_ENCODED: &str = "arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fdeployer";
pub const SCRIPT_EXPLANATION: &str =
    "GET /v1/secrets/<script>alert(1)</script> was never seen in the 28d baseline";

pub fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("test timestamp")
}

pub fn run_info(events: i64, findings: i64) -> RunInfo {
    RunInfo {
        now: t("2023-01-28T00:00:00Z"),
        baseline_start: t("2022-12-30T00:00:00Z"),
        detect_start: t("2023-01-27T00:00:00Z"),
        observe_start: t("2022-10-30T00:00:00Z"),
        baseline: "28d".into(),
        detect: "1d".into(),
        observe: "90d".into(),
        events,
        identities: 3,
        findings,
        suggestions: 3,
        grants_file: Some("grants.yaml".into()),
        reach_keys_concrete: 40,
        reach_keys_stored: 30,
        reach_keys_generalized: 20,
        below_min_score: [("new-reach".to_owned(), 2)].into(),
    }
}

pub fn identity(
    subject: &str,
    kind: &str,
    events: i64,
    findings: i64,
    suggestions: i64,
) -> IdentitySummary {
    IdentitySummary {
        subject: subject.into(),
        subject_kind: kind.into(),
        trust_domain: subject
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.split('/').next())
            .map(str::to_owned),
        events,
        allow_count: events - 1,
        deny_count: 1,
        first_seen: t("2022-12-30T01:00:00Z"),
        last_seen: t("2023-01-27T19:00:00Z"),
        baseline_keys: 2,
        findings,
        suggestions,
    }
}

pub fn baseline(subject: &str, action: &str, resource: &str, count: i64) -> BaselineEntry {
    BaselineEntry {
        subject: subject.into(),
        action: action.into(),
        resource_pattern: resource.into(),
        target: Some("spiffe://cluster.local/ns/ledger/sa/db".into()),
        count,
        allow_count: count,
        deny_count: 0,
        first_seen: t("2022-12-30T01:00:00Z"),
        last_seen: t("2023-01-26T12:00:00Z"),
    }
}

pub fn finding(
    id: &str,
    kind: &str,
    subject: &str,
    last_seen: &str,
    score: i64,
    explanation: &str,
) -> Finding {
    Finding {
        id: id.into(),
        kind: kind.into(),
        subject: subject.into(),
        action: (kind == "new-reach").then(|| "GET".to_owned()),
        resource_pattern: (kind == "new-reach").then(|| "/v1/secrets/{id}".to_owned()),
        target: None,
        first_seen: t("2023-01-27T01:00:00Z"),
        last_seen: t(last_seen),
        count: 3,
        allow_count: 2,
        deny_count: 1,
        severity: if score >= 70 { "high" } else { "medium" }.into(),
        score,
        explanation: explanation.into(),
        evidence: r#"{"baseline_days":28}"#.into(),
        sample_event_ids: vec!["ev-1".into(), "ev-2".into()],
        controls: vec!["NIST CSF PR.AC-4".into()],
    }
}

pub fn suggestion(id: &str, kind: &str, subject: &str, risk: &str, confidence: f64) -> Suggestion {
    Suggestion {
        id: id.into(),
        kind: kind.into(),
        subject: subject.into(),
        grant: Some("DELETE /v1/accounts/*".into()),
        replacement: if kind == "remove-unused" {
            vec![]
        } else {
            vec!["GET /v1/accounts/{id}".into()]
        },
        used_count: 0,
        last_used: None,
        window_start: t("2022-10-30T00:00:00Z"),
        window_end: t("2023-01-28T00:00:00Z"),
        confidence,
        risk: risk.into(),
        explanation: format!("{kind} for {subject}"),
        policy: None,
        diff: None,
        sample_event_ids: Vec::new(),
    }
}

pub fn findings_v1() -> Vec<Finding> {
    vec![
        finding(
            "f-reach-old",
            "new-reach",
            ALICE,
            "2023-01-27T10:00:00Z",
            40,
            "GET /v1/ledger/{id} is new",
        ),
        finding(
            "f-reach-script",
            "new-reach",
            ALICE,
            "2023-01-27T18:35:00Z",
            80,
            SCRIPT_EXPLANATION,
        ),
        finding(
            "f-identity",
            "new-identity",
            PAYMENTS,
            "2023-01-27T19:00:00Z",
            60,
            "no baseline for this identity",
        ),
    ]
}

/// Writes every table and then `run.json`, as `overreach analyze` does.
pub fn write_analysis(data: &DataDir, events: i64, findings: &[Finding]) {
    let identities = vec![
        identity(DEPLOYER, "aws-role", 10, 0, 1),
        identity(PAYMENTS, "spiffe", 20, 1, 0),
        identity(ALICE, "spiffe", 30, 2, 2),
    ];
    let baselines = vec![
        baseline(ALICE, "GET", "/v1/accounts/{id}", 12),
        baseline(ALICE, "POST", "/v1/transfers", 5),
        baseline(DEPLOYER, "s3:GetObject", "arn:aws:s3:::artifacts/*", 7),
    ];
    let suggestions = vec![
        suggestion("s-low", "narrow-wildcard", DEPLOYER, "low", 0.9),
        suggestion("s-medium", "minimal-policy", ALICE, "medium", 0.7),
        suggestion("s-high", "remove-unused", ALICE, "high", 0.8),
    ];
    let tmp = data.tmp();
    write_rows_atomic(
        &data.identities(),
        &tmp,
        &identity_schema(),
        &identities,
        &[],
    )
    .unwrap();
    write_rows_atomic(&data.baselines(), &tmp, &baseline_schema(), &baselines, &[]).unwrap();
    write_rows_atomic(&data.findings(), &tmp, &finding_schema(), findings, &[]).unwrap();
    write_rows_atomic(
        &data.suggestions(),
        &tmp,
        &suggestion_schema(),
        &suggestions,
        &[],
    )
    .unwrap();
    let run = run_info(events, findings.len() as i64);
    write_text_atomic(
        &data.run_info(),
        &tmp,
        &serde_json::to_string_pretty(&run).unwrap(),
    )
    .unwrap();
}

/// A temporary data directory with the standard analysis written.
pub fn analysed() -> (tempfile::TempDir, DataDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    write_analysis(&data, 1234, &findings_v1());
    (dir, data)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

pub async fn request(app: &Router, method: &str, uri: &str) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

pub async fn get(app: &Router, uri: &str) -> Reply {
    request(app, "GET", uri).await
}

/// Asserts the stable error shape and returns the message.
pub fn assert_error(reply: &Reply, status: StatusCode, code: &str) -> String {
    assert_eq!(
        reply.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(
        reply.content_type().starts_with("application/json"),
        "{}",
        reply.content_type()
    );
    let body = reply.json();
    let error = body["error"].as_object().expect("error object");
    assert_eq!(error.len(), 2, "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "{body}");
    assert_eq!(error["code"], code, "{body}");
    error["message"]
        .as_str()
        .expect("message string")
        .to_owned()
}

pub fn subjects(list: &serde_json::Value, field: &str) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|item| item[field].as_str().expect("string field").to_owned())
        .collect()
}

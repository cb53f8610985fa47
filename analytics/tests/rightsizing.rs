//! Right-sizing through `run`, on an estate watched for 40 days: several
//! inventories merged, the grace period, identities whose history is too
//! short, dead letters lowering confidence, and `used-after-suggestion`
//! when a later run sees a permission in use that an earlier one said to
//! remove.

mod common;

use chrono::{DateTime, Duration, Utc};
use overreach_analytics::{run, AnalyzeSettings};
use overreach_model::event::event_schema;
use overreach_model::results::{Finding, Suggestion};
use overreach_model::table::write_rows_atomic;
use overreach_model::{DataDir, Decision, DecisionEvent};

const API: &str = "spiffe://cluster.local/ns/shop/sa/api";
const NEWBIE: &str = "spiffe://cluster.local/ns/shop/sa/newbie";
const JOB: &str = "spiffe://cluster.local/ns/batch/sa/job";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-20T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn allowed(
    id: &str,
    time: DateTime<Utc>,
    subject: &str,
    action: &str,
    resource: &str,
) -> DecisionEvent {
    common::event(id, time, subject, action, resource, Decision::Allow)
}

/// The api reads its config map every hour for 40 days; the newbie starts
/// 5 days before now.
fn write_estate(data: &DataDir) {
    let mut events = Vec::new();
    for h in 0..(40 * 24) {
        let t = now() - Duration::hours(h);
        events.push(allowed(
            &format!("api-{h}"),
            t,
            API,
            "get",
            "namespaces/shop/core/configmaps:app-config",
        ));
        if h < 5 * 24 {
            events.push(allowed(
                &format!("newbie-{h}"),
                t,
                NEWBIE,
                "get",
                "namespaces/shop/core/pods:web-0",
            ));
        }
    }
    write(data, "part-0.parquet", &events);
}

fn write(data: &DataDir, name: &str, events: &[DecisionEvent]) {
    let dest = data.events().join(name);
    write_rows_atomic(&dest, &data.tmp(), &event_schema(), events, &[]).unwrap();
}

/// The api's Role (one rule used, one not) in one file ...
const ROLES: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: api, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
rules:
  - {apiGroups: [""], resources: [configmaps], verbs: [get]}
  - {apiGroups: [""], resources: [secrets], verbs: [delete]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: api-new, namespace: shop, creationTimestamp: "2026-11-17T00:00:00Z"}
rules:
  - {apiGroups: [""], resources: [pods], verbs: [list]}
"#;

/// ... its bindings (one made three days ago) and the newbie's in another.
const BINDINGS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: api, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: api}
subjects:
  - {kind: ServiceAccount, name: api, namespace: shop}
  - {kind: ServiceAccount, name: newbie, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: api-new, namespace: shop, creationTimestamp: "2026-11-17T00:00:00Z"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: api-new}
subjects:
  - {kind: ServiceAccount, name: api, namespace: shop}
"#;

/// And a grants file for a batch job that never ran.
const GRANTS: &str = "grants:\n  - subject: spiffe://cluster.local/ns/batch/sa/job\n    allow:\n      - action: get\n        resource: namespaces/batch/core/configmaps\n";

fn settings(dir: &std::path::Path, data: &DataDir) -> AnalyzeSettings {
    let mut settings = AnalyzeSettings::new(data.clone());
    for (name, text) in [
        ("roles.yaml", ROLES),
        ("bindings.yaml", BINDINGS),
        ("grants.yaml", GRANTS),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        settings.grants.push(path);
    }
    settings.observe = Duration::days(30);
    settings.now = Some(now());
    settings
}

fn removal<'a>(found: &'a [Suggestion], subject: &str, grant: &str) -> Option<&'a Suggestion> {
    found.iter().find(|s| {
        s.subject == subject && s.kind == "remove-unused" && s.grant.as_deref() == Some(grant)
    })
}

#[tokio::test]
async fn several_inventories_grace_and_short_histories() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    write_estate(&data);
    let settings = settings(dir.path(), &data);
    let info = run(&settings).await.unwrap();
    assert!(info.grants_file.unwrap().contains("bindings.yaml"));
    let found = common::suggestions(&data);

    // The binding in one file found the role in the other.
    let delete = removal(&found, API, "delete core/secrets in namespace shop")
        .unwrap_or_else(|| panic!("{found:#?}"));
    assert_eq!(delete.risk, "high");
    assert!(
        delete.confidence > 0.9,
        "40 days of hourly calls: {}",
        delete.confidence
    );
    let diff = delete.diff.as_deref().unwrap();
    assert!(diff.contains("-  - apiGroups: [\"\"]"), "{diff}");
    assert!(diff.contains("-    resources: [\"secrets\"]"), "{diff}");
    // Three days old: in its grace period, not judged.
    assert!(
        found
            .iter()
            .all(|s| !s.grant.as_deref().unwrap_or("").contains("pods")),
        "{found:#?}"
    );
    let minimal = found
        .iter()
        .find(|s| s.subject == API && s.kind == "minimal-policy")
        .unwrap();
    assert!(
        minimal
            .explanation
            .contains("younger than the 14d grace period"),
        "{}",
        minimal.explanation
    );
    assert!(minimal
        .sample_event_ids
        .iter()
        .all(|id| id.starts_with("api-")));
    // Five days of history in a 30-day window: the newbie is not judged.
    assert!(found.iter().all(|s| s.subject != NEWBIE), "{found:#?}");
    // The grants file's job never ran in a window the store watched whole.
    let job = removal(&found, JOB, "get namespaces/batch/core/configmaps").unwrap();
    assert!(
        job.explanation.contains("made no calls"),
        "{}",
        job.explanation
    );

    let results = overreach_analytics::analyze(&settings).await.unwrap();
    let status: Vec<(&str, &str, &str, i64, i64, i64)> = results
        .rightsizing
        .iter()
        .map(|i| {
            (
                i.subject.as_str(),
                i.engine.as_str(),
                i.status.as_str(),
                i.granted,
                i.unused,
                i.in_grace,
            )
        })
        .collect();
    assert_eq!(
        status,
        [
            (API, "rbac", "partly-in-grace", 3, 1, 1),
            (NEWBIE, "rbac", "history-short", 2, 0, 0),
            (JOB, "grants", "judged", 1, 1, 0),
        ]
    );
}

#[tokio::test]
async fn dead_letters_lower_confidence() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    write_estate(&data);
    let settings = settings(dir.path(), &data);
    run(&settings).await.unwrap();
    let clean = removal(
        &common::suggestions(&data),
        API,
        "delete core/secrets in namespace shop",
    )
    .unwrap()
    .clone();
    assert!(!clean.explanation.contains("dead-lettered"));

    // One record in ten of the window's was dead-lettered.
    std::fs::create_dir_all(data.dead_letter()).unwrap();
    let letter = serde_json::json!({
        "origin": "decisions/0/17", "reason": "invalid-json", "error": "expected value at line 1",
        "size": 3, "payload": "{{{", "payload_truncated": false,
        "ingested_at": (now() - Duration::days(2)).to_rfc3339(),
    });
    let lines: Vec<String> = (0..107).map(|_| letter.to_string()).collect();
    std::fs::write(data.dead_letter().join("part-1.jsonl"), lines.join("\n")).unwrap();
    run(&settings).await.unwrap();
    let gappy = removal(
        &common::suggestions(&data),
        API,
        "delete core/secrets in namespace shop",
    )
    .unwrap()
    .clone();
    assert!(
        gappy.confidence < clean.confidence * 0.8,
        "{} then {}",
        clean.confidence,
        gappy.confidence
    );
    assert!(
        gappy.explanation.contains("107 records were dead-lettered"),
        "{}",
        gappy.explanation
    );
}

#[tokio::test]
async fn using_a_permission_after_its_removal_was_suggested_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path().join("data"));
    write_estate(&data);
    let mut settings = settings(dir.path(), &data);
    run(&settings).await.unwrap();
    let suggested = removal(
        &common::suggestions(&data),
        API,
        "delete core/secrets in namespace shop",
    )
    .unwrap()
    .clone();

    // An hour later the api deletes a secret.
    let later = now() + Duration::hours(1);
    write(
        &data,
        "part-1.parquet",
        &[
            allowed(
                "api-later",
                later,
                API,
                "get",
                "namespaces/shop/core/configmaps:app-config",
            ),
            allowed(
                "api-delete",
                later,
                API,
                "delete",
                "namespaces/shop/core/secrets:db-creds",
            ),
        ],
    );
    settings.now = Some(later);
    run(&settings).await.unwrap();
    let findings: Vec<Finding> = common::findings(&data);
    let follow_up: Vec<&Finding> = findings
        .iter()
        .filter(|f| f.kind == "used-after-suggestion")
        .collect();
    assert_eq!(follow_up.len(), 1, "{findings:#?}");
    let f = follow_up[0];
    assert_eq!(f.subject, API);
    assert_eq!(f.action.as_deref(), Some("delete"));
    assert_eq!(f.sample_event_ids, ["api-delete"]);
    assert!(f.explanation.contains(&suggested.id), "{}", f.explanation);
    assert!(f.score >= 70, "a write to secrets: {}", f.score);
    assert!(f.controls.iter().any(|c| c.contains("NHI5")));
    // The removal is no longer suggested.
    assert!(removal(
        &common::suggestions(&data),
        API,
        "delete core/secrets in namespace shop"
    )
    .is_none());
    // A rerun at the same time sees no use after the new suggestions.
    run(&settings).await.unwrap();
    let findings: Vec<Finding> = common::findings(&data);
    assert!(findings.iter().all(|f| f.kind != "used-after-suggestion"));
}

//! End to end: events written the way ingest writes them, `run`, and the
//! result tables read back the way the api reads them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use overreach_analytics::grants::{self, Format};
use overreach_analytics::{run, AnalyticsError, AnalyzeSettings};
use overreach_model::event::event_schema;
use overreach_model::results::{BaselineEntry, Finding, IdentitySummary, RunInfo, Suggestion};
use overreach_model::table::{read_rows, write_rows_atomic};
use overreach_model::{DataDir, Decision, DecisionEvent};

const API: &str = "spiffe://cluster.local/ns/shop/sa/api";
const IMPORTER: &str = "spiffe://cluster.local/ns/batch/sa/importer";
const ADMIN: &str = "kubernetes-admin";
const GHOST: &str = "spiffe://cluster.local/ns/ghost/sa/ghost";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2024-03-10T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn event(
    id: &str,
    before_now: Duration,
    subject: &str,
    action: &str,
    resource: &str,
    decision: Decision,
) -> DecisionEvent {
    common::event(id, now() - before_now, subject, action, resource, decision)
}

/// The history the tests analyse. The api identity has a baseline and
/// starts creating secrets in the detection window; the importer appears
/// only in the detection window; the admin does what it always did.
fn history() -> Vec<DecisionEvent> {
    use Decision::{Allow, Deny};
    let d = Duration::days;
    let h = Duration::hours;
    let m = Duration::minutes;
    let cm = "namespaces/shop/core/configmaps:app-config";
    let secret = "namespaces/shop/core/secrets:db-creds";
    let pods = "namespaces/shop/core/pods";
    vec![
        // api, baseline window.
        event("api-b1", d(5), API, "get", cm, Allow),
        event("api-b2", d(4), API, "get", cm, Allow),
        event("api-b3", d(3), API, "get", cm, Allow),
        event("api-b4", d(4), API, "get", secret, Allow),
        event("api-b5", d(3), API, "list", pods, Allow),
        // api, detection window: one old key, one new key (twice).
        event("api-d1", h(2), API, "get", cm, Allow),
        event("api-create-1", h(1), API, "create", secret, Allow),
        event("api-create-2", m(30), API, "create", secret, Allow),
        event("api-d4", Duration::zero(), API, "list", pods, Allow),
        // importer: detection window only. Its third event reuses an id of
        // the api's: a different request, so a different event.
        event(
            "imp-1",
            h(3),
            IMPORTER,
            "get",
            "namespaces/batch/core/configmaps:jobs",
            Allow,
        ),
        event(
            "imp-2",
            h(2),
            IMPORTER,
            "list",
            "namespaces/batch/core/pods",
            Deny,
        ),
        event(
            "api-create-1",
            h(1),
            IMPORTER,
            "get",
            "namespaces/batch/core/pods:worker-0",
            Allow,
        ),
        // admin: same key in both windows.
        event(
            "adm-1",
            d(2),
            ADMIN,
            "get",
            "namespaces/kube-system/core/configmaps:kubeadm-config",
            Allow,
        ),
        event(
            "adm-2",
            h(5),
            ADMIN,
            "get",
            "namespaces/kube-system/core/configmaps:kubeadm-config",
            Allow,
        ),
    ]
}

/// Writes `history()` by event day, plus a second file in one partition
/// holding a copy of an event that is already stored, plus a stray
/// non-Parquet file that must be ignored.
fn write_history(data: &DataDir) {
    let mut by_day: BTreeMap<NaiveDate, Vec<DecisionEvent>> = BTreeMap::new();
    for e in history() {
        by_day.entry(e.time.date_naive()).or_default().push(e);
    }
    for (day, events) in &by_day {
        let dest = data.events_partition(*day).join("part-0.parquet");
        write_rows_atomic(&dest, &data.tmp(), &event_schema(), events, &[]).unwrap();
    }
    let copy: Vec<DecisionEvent> = history()
        .into_iter()
        .filter(|e| e.event_id == "api-create-1" && e.subject == API)
        .collect();
    let day = copy[0].time.date_naive();
    let copy: Vec<DecisionEvent> = copy
        .into_iter()
        .map(|e| DecisionEvent {
            origin: "events/1/4711".to_owned(),
            ..e
        })
        .collect();
    let dest = data
        .events_partition(day)
        .join("part-1-redelivered.parquet");
    write_rows_atomic(&dest, &data.tmp(), &event_schema(), &copy, &[]).unwrap();
    std::fs::write(data.events().join("NOTES.txt"), "not an event file").unwrap();
}

fn setup() -> (tempfile::TempDir, DataDir) {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    write_history(&data);
    (dir, data)
}

/// The default settings, except that a day of history is enough for the
/// per-key detectors: the test history spans days, not weeks.
fn settings(data: &DataDir) -> AnalyzeSettings {
    let mut settings = AnalyzeSettings::new(data.clone());
    settings.detect_settings.min_history = Duration::days(1);
    settings.detect_settings.min_history_events = 1;
    settings
}

#[tokio::test]
async fn finds_new_reach_and_new_identities() {
    let (_dir, data) = setup();
    let info = run(&settings(&data)).await.unwrap();

    assert_eq!(info.now, now(), "now defaults to the latest event");
    assert_eq!(info.detect_start, now() - Duration::days(1));
    assert_eq!(info.baseline_start, now() - Duration::days(29));
    assert_eq!(
        info.events, 14,
        "the redelivered copy counts once, the reused id twice"
    );
    assert_eq!(info.identities, 3);
    assert_eq!(info.findings, 2);
    let on_disk: RunInfo =
        serde_json::from_str(&std::fs::read_to_string(data.run_info()).unwrap()).unwrap();
    assert_eq!(on_disk, info);

    let found = common::findings(&data);
    assert_eq!(found.len(), 2, "{found:#?}");

    let reach: Vec<&Finding> = found.iter().filter(|f| f.kind == "new-reach").collect();
    assert_eq!(
        reach.len(),
        1,
        "only the key the api never used before: {reach:#?}"
    );
    let reach = reach[0];
    assert_eq!(reach.subject, API);
    assert_eq!(reach.action.as_deref(), Some("create"));
    assert_eq!(
        reach.resource_pattern.as_deref(),
        Some("namespaces/shop/core/secrets:db-creds"),
        "few object names: the name stays in the key"
    );
    assert_eq!(reach.target.as_deref(), Some("kubernetes-api"));
    assert_eq!(
        (reach.count, reach.allow_count, reach.deny_count),
        (2, 2, 0)
    );
    assert_eq!(reach.first_seen, now() - Duration::hours(1));
    assert_eq!(reach.last_seen, now() - Duration::minutes(30));
    assert_eq!(reach.sample_event_ids, ["api-create-1", "api-create-2"]);
    // Allowed write to a secret, twice, no peers to compare with:
    // 25 + 10 + 2 + 15 + 15.
    assert_eq!(reach.score, 67);
    assert_eq!(reach.severity, "medium");
    assert!(
        reach.controls.iter().any(|c| c.contains("PR.AC-4")),
        "{:?}",
        reach.controls
    );
    assert!(
        reach
            .explanation
            .contains("called `create` on `namespaces/shop/core/secrets:db-creds`")
            && reach.explanation.contains("2 times (2 allowed, 0 denied)")
            && reach
                .explanation
                .contains("never did this in the 90 days before")
            && reach
                .explanation
                .contains("where it made 5 baseline calls on 3 reach keys"),
        "{}",
        reach.explanation
    );
    let evidence: serde_json::Value = serde_json::from_str(&reach.evidence).unwrap();
    assert_eq!(evidence["baseline_events"], 5);
    assert_eq!(evidence["baseline_keys"], 3);
    assert_eq!(evidence["allow_count"], 2);
    assert_eq!(evidence["detect_end"], "2024-03-10T12:00:00Z");

    let identity: Vec<&Finding> = found.iter().filter(|f| f.kind == "new-identity").collect();
    assert_eq!(
        identity.len(),
        1,
        "one finding per new identity, not per key"
    );
    let identity = identity[0];
    assert_eq!(identity.subject, IMPORTER);
    assert_eq!(identity.action, None);
    assert_eq!(
        (identity.count, identity.allow_count, identity.deny_count),
        (3, 2, 1)
    );
    assert_eq!(
        identity.sample_event_ids,
        ["imp-1", "imp-2", "api-create-1"]
    );
    assert!(
        identity
            .explanation
            .contains("made 3 calls on 3 reach keys")
            && identity
                .explanation
                .contains("no history in the 28d baseline window"),
        "{}",
        identity.explanation
    );
    assert!(found[0].score >= found[1].score, "sorted by score");

    let baselines: Vec<BaselineEntry> = read_rows(&data.baselines()).unwrap();
    assert_eq!(baselines.len(), 4, "{baselines:#?}");
    let cm = baselines
        .iter()
        .find(|b| {
            b.subject == API && b.resource_pattern == "namespaces/shop/core/configmaps:app-config"
        })
        .unwrap();
    assert_eq!((cm.count, cm.allow_count, cm.deny_count), (3, 3, 0));
    assert_eq!(cm.first_seen, now() - Duration::days(5));
    assert_eq!(cm.last_seen, now() - Duration::days(3));
    assert!(baselines.iter().all(|b| b.subject != IMPORTER));

    let identities: Vec<IdentitySummary> = read_rows(&data.identities()).unwrap();
    let by_subject: BTreeMap<&str, &IdentitySummary> =
        identities.iter().map(|i| (i.subject.as_str(), i)).collect();
    assert_eq!(by_subject.len(), 3);
    let api = by_subject[API];
    assert_eq!((api.events, api.allow_count, api.deny_count), (9, 9, 0));
    assert_eq!(
        (api.baseline_keys, api.findings, api.suggestions),
        (3, 1, 1)
    );
    assert_eq!(api.subject_kind, "spiffe");
    assert_eq!(api.trust_domain.as_deref(), Some("cluster.local"));
    let importer = by_subject[IMPORTER];
    assert_eq!(
        (importer.events, importer.baseline_keys, importer.findings),
        (3, 0, 1)
    );
    let admin = by_subject[ADMIN];
    assert_eq!(
        (admin.events, admin.findings, admin.subject_kind.as_str()),
        (2, 0, "user")
    );
}

#[tokio::test]
async fn reruns_give_the_same_ids() {
    let (_dir, data) = setup();
    let settings = settings(&data);
    run(&settings).await.unwrap();
    let first = common::findings(&data);
    let first_suggestions = common::suggestions(&data);
    run(&settings).await.unwrap();
    let second = common::findings(&data);
    assert_eq!(first, second);
    assert_eq!(first_suggestions, common::suggestions(&data));
    let ids: Vec<&str> = first.iter().map(|f| f.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| id.len() == 16), "{ids:?}");
    assert_ne!(ids[0], ids[1]);
}

#[tokio::test]
async fn minimal_policy_covers_exactly_what_was_used() {
    let (_dir, data) = setup();
    let info = run(&AnalyzeSettings::new(data.clone())).await.unwrap();
    let found = common::suggestions(&data);
    assert_eq!(info.suggestions, 3);
    assert!(found
        .iter()
        .all(|s| s.kind == "minimal-policy" && s.grant.is_none()));
    let api = found.iter().find(|s| s.subject == API).unwrap();
    assert_eq!(
        api.replacement,
        [
            "create namespaces/shop/core/secrets",
            "get namespaces/shop/core/configmaps",
            "get namespaces/shop/core/secrets",
            "list namespaces/shop/core/pods",
        ]
    );
    assert_eq!(api.used_count, 9);
    assert_eq!(api.last_used, Some(now()));
    assert_eq!(api.window_start, now() - Duration::days(90));
    assert_eq!(api.window_end, now());
    assert_eq!(api.risk, "high", "it creates secrets");
    // Seen for 5 of 90 days, and the test history is sparse: days with
    // no event at all are gaps in the evidence, which cost up to half.
    let history_only = 0.30 + 0.65 * 5.0 / 90.0;
    assert!(
        api.confidence < history_only && api.confidence >= history_only / 2.0,
        "{}",
        api.confidence
    );
    assert!(
        api.explanation
            .contains("the store holds no event at all for"),
        "{}",
        api.explanation
    );
    let importer = found.iter().find(|s| s.subject == IMPORTER).unwrap();
    assert_eq!(
        importer.replacement,
        [
            "get namespaces/batch/core/configmaps",
            "get namespaces/batch/core/pods"
        ],
        "denied calls are not part of the minimal policy"
    );

    for s in &found {
        let policy = s.policy.as_deref().unwrap();
        let parsed = grants::parse(policy, Format::Yaml, Path::new("policy.yaml"))
            .unwrap_or_else(|e| panic!("{e}\n{policy}"));
        assert_eq!(parsed.subjects(), vec![s.subject.as_str()]);
        assert_eq!(parsed.len(), s.replacement.len());
        for e in history()
            .iter()
            .filter(|e| e.subject == s.subject && e.decision == Decision::Allow)
        {
            assert!(
                parsed.covers(&e.subject, &e.action, &e.resource, &e.resource_pattern),
                "{} is not covered by\n{policy}",
                e.event_id
            );
        }
    }
    let api_policy =
        grants::parse(api.policy.as_deref().unwrap(), Format::Yaml, Path::new("p")).unwrap();
    assert!(!api_policy.covers(
        API,
        "delete",
        "namespaces/shop/core/pods:x",
        "namespaces/shop/core/pods"
    ));
    assert!(!api_policy.covers(
        API,
        "get",
        "namespaces/shop/core/pods",
        "namespaces/shop/core/pods"
    ));
}

const GRANTS: &str = r#"
grants:
  - subject: spiffe://cluster.local/ns/shop/sa/api
    allow:
      - action: get
        resource: namespaces/shop/core/configmaps
      - action: list
        resource: namespaces/shop/core/pods
      - action: delete
        resource: namespaces/shop/core/pods
      - action: "*"
        resource: "namespaces/shop/core/secrets*"
  - subject: spiffe://cluster.local/ns/ghost/sa/ghost
    allow:
      - action: get
        resource: namespaces/ghost/core/configmaps
"#;

#[tokio::test]
async fn grants_give_remove_and_narrow_suggestions() {
    let (dir, data) = setup();
    let path = dir.path().join("grants.yaml");
    std::fs::write(&path, GRANTS).unwrap();
    let mut settings = AnalyzeSettings::new(data.clone());
    settings.grants = vec![path.clone()];
    settings.observe = Duration::days(5);
    let info = run(&settings).await.unwrap();
    assert_eq!(
        info.grants_file.as_deref(),
        Some(path.display().to_string().as_str())
    );

    let found = common::suggestions(&data);
    let summary: Vec<(&str, &str, Option<&str>)> = found
        .iter()
        .map(|s| (s.subject.as_str(), s.kind.as_str(), s.grant.as_deref()))
        .collect();
    assert_eq!(
        summary,
        [
            (
                GHOST,
                "remove-unused",
                Some("get namespaces/ghost/core/configmaps")
            ),
            (
                API,
                "narrow-wildcard",
                Some("* namespaces/shop/core/secrets*")
            ),
            (
                API,
                "remove-unused",
                Some("delete namespaces/shop/core/pods")
            ),
        ]
    );

    let ghost = &found[0];
    assert!(
        ghost.explanation.contains("made no calls"),
        "{}",
        ghost.explanation
    );
    assert!(
        ghost.confidence < 0.30 && ghost.confidence >= 0.15,
        "no history of its own, and a sparse estate: {}",
        ghost.confidence
    );
    assert_eq!(ghost.used_count, 0);

    let narrow = &found[1];
    assert_eq!(
        narrow.replacement,
        [
            "create namespaces/shop/core/secrets",
            "get namespaces/shop/core/secrets"
        ]
    );
    assert_eq!(narrow.used_count, 3);
    assert_eq!(narrow.last_used, Some(now() - Duration::minutes(30)));
    let original = grants::load(&path).unwrap();
    let wildcard = original
        .iter()
        .find(|g| g.label() == "* namespaces/shop/core/secrets*")
        .unwrap();
    for value in &narrow.replacement {
        let (action, resource) = value.split_once(' ').unwrap();
        assert!(
            wildcard.covers(action, resource, resource).is_some(),
            "{value} broadens the grant"
        );
    }
    let narrowed = grants::parse(
        narrow.policy.as_deref().unwrap(),
        Format::Yaml,
        Path::new("p"),
    )
    .unwrap();
    assert!(narrowed.covers(
        API,
        "create",
        "namespaces/shop/core/secrets:db-creds",
        "namespaces/shop/core/secrets"
    ));
    assert!(!narrowed.covers(
        API,
        "delete",
        "namespaces/shop/core/secrets:db-creds",
        "namespaces/shop/core/secrets"
    ));

    let unused = &found[2];
    assert_eq!(unused.risk, "high", "delete is a write");
    assert_eq!(unused.used_count, 0);
    assert_eq!(unused.last_used, None);
    assert!(unused.replacement.is_empty());

    let identities: Vec<IdentitySummary> = read_rows(&data.identities()).unwrap();
    let api = identities.iter().find(|i| i.subject == API).unwrap();
    assert_eq!(api.suggestions, 2);
    assert!(
        identities.iter().all(|i| i.subject != GHOST),
        "the ghost never made a call"
    );
}

#[tokio::test]
async fn bad_grants_fail_before_reading_events() {
    let (dir, data) = setup();
    let path = dir.path().join("grants.yml");
    std::fs::write(
        &path,
        "grants:\n  - subject: x\n    allow:\n      - action: get\n",
    )
    .unwrap();
    let mut settings = AnalyzeSettings::new(data.clone());
    settings.grants = vec![path];
    settings.observe = Duration::days(5);
    let err = run(&settings).await.unwrap_err();
    assert!(
        matches!(
            &err,
            AnalyticsError::Grants(grants::GrantsError::Syntax { line: Some(4), .. })
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("grants.yml") && message.contains("missing field `resource`"),
        "{message}"
    );
    assert!(!data.run_info().exists());
}

#[tokio::test]
async fn explicit_now_moves_the_windows() {
    let (_dir, data) = setup();
    let mut settings = settings(&data);
    // Two days back the detection window is [now-3d, now-2d], both ends
    // included: it holds the api's calls of day -3 (one of them a key its
    // baseline of days -5 and -4 lacks) and the admin's first call.
    settings.now = Some(now() - Duration::days(2));
    let info = run(&settings).await.unwrap();
    assert_eq!(info.now, now() - Duration::days(2));
    assert_eq!(info.events, 14, "identities still cover every stored event");
    let found = common::findings(&data);
    let summary: Vec<(&str, &str, Option<&str>, i64)> = found
        .iter()
        .map(|f| {
            (
                f.kind.as_str(),
                f.subject.as_str(),
                f.action.as_deref(),
                f.count,
            )
        })
        .collect();
    // The api's first `list pods` scores 25 + 10 (allowed): a read of a
    // plain resource, below the reporting threshold of 40, so it is
    // counted, not reported.
    assert_eq!(summary, [("new-identity", ADMIN, None, 1)]);
    assert_eq!(found[0].score, 45);
    assert_eq!(info.below_min_score.get("new-reach"), Some(&1));
    settings.detect_settings.min_score = 0;
    run(&settings).await.unwrap();
    let found = common::findings(&data);
    let reach = found.iter().find(|f| f.kind == "new-reach").unwrap();
    assert_eq!(
        (reach.subject.as_str(), reach.action.as_deref(), reach.score),
        (API, Some("list"), 35)
    );
}

#[tokio::test]
async fn no_events_says_to_ingest_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    let err = run(&AnalyzeSettings::new(data.clone())).await.unwrap_err();
    assert!(matches!(err, AnalyticsError::NoEvents { .. }), "{err:?}");
    assert!(err.to_string().contains("overreach ingest"), "{err}");
    std::fs::create_dir_all(data.events_partition(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap()))
        .unwrap();
    std::fs::write(data.events().join("stray.json"), "{}").unwrap();
    let err = run(&AnalyzeSettings::new(data)).await.unwrap_err();
    assert!(matches!(err, AnalyticsError::NoEvents { .. }), "{err:?}");
}

/// The api's access as Kubernetes RBAC: one Role rule it uses for config
/// maps and secrets, one it uses half of for pods, one it never uses
/// (deployments), and a cluster-wide node reader it never uses.
const RBAC: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: api, namespace: shop}
rules:
  - apiGroups: [""]
    resources: [configmaps, secrets]
    verbs: [get, list, watch, create, update]
  - apiGroups: [""]
    resources: [pods]
    verbs: [list, delete]
  - apiGroups: [apps]
    resources: [deployments]
    verbs: ["*"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: api, namespace: shop}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: api}
subjects:
  - {kind: ServiceAccount, name: api, namespace: shop}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: node-reader}
rules:
  - apiGroups: [""]
    resources: [nodes]
    verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: api-nodes}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: node-reader}
subjects:
  - {kind: ServiceAccount, name: api, namespace: shop}
"#;

#[tokio::test]
async fn rbac_grants_give_unused_rules_and_a_reduced_role() {
    use overreach_analytics::rbac;
    let (dir, data) = setup();
    let path = dir.path().join("rbac.yaml");
    std::fs::write(&path, RBAC).unwrap();
    let mut settings = AnalyzeSettings::new(data.clone());
    settings.grants = vec![path.clone()];
    settings.observe = Duration::days(5);
    run(&settings).await.unwrap();

    let found = common::suggestions(&data);
    let mut unused: Vec<&str> = found
        .iter()
        .filter(|s| s.kind == "remove-unused")
        .map(|s| s.grant.as_deref().unwrap())
        .collect();
    unused.sort_unstable();
    assert_eq!(
        unused,
        ["* apps/deployments in namespace shop"],
        "{found:#?}"
    );
    // Nothing the node-reader binding grants was used: the binding goes.
    let binding: Vec<&Suggestion> = found
        .iter()
        .filter(|s| s.kind == "remove-binding")
        .collect();
    assert_eq!(binding.len(), 1, "{found:#?}");
    assert_eq!(
        binding[0].grant.as_deref(),
        Some("ClusterRoleBinding api-nodes -> ClusterRole node-reader")
    );
    assert!(
        binding[0]
            .explanation
            .contains("`get, list core/nodes cluster-wide`"),
        "{}",
        binding[0].explanation
    );
    let diff = binding[0].diff.as_deref().unwrap();
    assert!(
        diff.contains("-kind: ClusterRoleBinding") && diff.contains("-  name: \"api-nodes\""),
        "{diff}"
    );
    let deployments = found
        .iter()
        .find(|s| s.grant.as_deref() == Some("* apps/deployments in namespace shop"))
        .unwrap();
    assert_eq!(deployments.risk, "high", "a wildcard verb can write");
    assert!(
        deployments
            .explanation
            .contains("by RoleBinding shop/api -> Role shop/api"),
        "{}",
        deployments.explanation
    );

    let minimal: Vec<_> = found
        .iter()
        .filter(|s| s.kind == "minimal-policy")
        .collect();
    assert_eq!(minimal.len(), 1, "{found:#?}");
    let minimal = minimal[0];
    assert_eq!(minimal.subject, API);
    assert_eq!(minimal.used_count, 9, "every allowed call of the api");
    assert!(
        minimal
            .explanation
            .contains("nothing the granted rules do not"),
        "{}",
        minimal.explanation
    );
    let yaml = minimal.policy.as_deref().unwrap();
    assert!(
        !yaml.contains("deployments") && !yaml.contains("nodes") && !yaml.contains("delete"),
        "{yaml}"
    );
    // The diff from the granted roles to the reduced policy, applied to
    // the granted side, gives the reduced policy.
    let diff = minimal.diff.as_deref().unwrap();
    assert!(diff.starts_with("--- granted\n+++ suggested\n"), "{diff}");
    assert!(diff.contains("-  - apiGroups: [\"apps\"]"), "{diff}");
    assert!(!minimal.sample_event_ids.is_empty());
    assert!(minimal.sample_event_ids.len() <= 5);

    // The reduced policy, read back as RBAC, allows every allowed call the
    // api made and stays within what it was granted.
    let reduced = rbac::parse(yaml, Path::new("reduced.yaml")).unwrap();
    let account = rbac::ServiceAccount::new("shop", "api");
    let reduced = rbac::resolve(&reduced.rbac).grants_for(&account);
    let granted = rbac::parse(RBAC, Path::new("rbac.yaml")).unwrap();
    let granted = rbac::resolve(&granted.rbac).grants_for(&account);
    assert!(rbac::is_within(&reduced, &granted));
    for e in history()
        .iter()
        .filter(|e| e.subject == API && e.decision == Decision::Allow)
    {
        let request = rbac::parse_request(&e.action, &e.resource).unwrap();
        assert!(
            rbac::allows(&reduced, &request).is_some(),
            "{} {} not allowed:\n{yaml}",
            e.action,
            e.resource
        );
    }
    let never = rbac::parse_request("delete", "namespaces/shop/core/pods:web-0").unwrap();
    assert!(rbac::allows(&reduced, &never).is_none());
}

/// The api's access as OPA data-driven RBAC: a reader role it uses and an
/// admin role it uses for creating secrets, never for deleting.
const OPA_DATA: &str = r#"{
  "user_roles": {"spiffe://cluster.local/ns/shop/sa/api": ["shop-reader", "shop-admin"]},
  "role_grants": {
    "shop-reader": [
      {"action": "get", "type": "namespaces/shop/core/*"},
      {"action": "list", "type": "namespaces/shop/core/pods"}
    ],
    "shop-admin": [
      {"action": "create", "type": "namespaces/shop/core/secrets*"},
      {"action": "delete", "type": "namespaces/shop/*"}
    ]
  }
}"#;

#[tokio::test]
async fn opa_data_grants_give_unused_grants_and_a_reduced_document() {
    use overreach_analytics::opa_data;
    let (dir, data) = setup();
    let path = dir.path().join("data.json");
    std::fs::write(&path, OPA_DATA).unwrap();
    let mut settings = AnalyzeSettings::new(data.clone());
    settings.grants = vec![path.clone()];
    settings.observe = Duration::days(5);
    run(&settings).await.unwrap();

    let found = common::suggestions(&data);
    let unused: Vec<&str> = found
        .iter()
        .filter(|s| s.kind == "remove-unused")
        .map(|s| s.grant.as_deref().unwrap())
        .collect();
    assert_eq!(unused, ["delete namespaces/shop/*"], "{found:#?}");
    let minimal = found.iter().find(|s| s.kind == "minimal-policy").unwrap();
    assert_eq!(minimal.used_count, 9);
    assert!(
        minimal
            .explanation
            .contains("allows every one of them and nothing the granted roles do not"),
        "{}",
        minimal.explanation
    );
    assert!(
        minimal
            .explanation
            .contains("`CREATE namespaces/shop/core/secrets:db-creds` for 2 calls"),
        "each kept grant with the calls that need it: {}",
        minimal.explanation
    );
    let reduced = opa_data::parse(
        minimal.policy.as_deref().unwrap(),
        Path::new("reduced.json"),
    )
    .unwrap();
    let granted = opa_data::parse(OPA_DATA, Path::new("data.json")).unwrap();
    let id = granted.user_roles.keys().next().unwrap().clone();
    let reduced = opa_data::grants_for(&reduced, &id);
    assert!(opa_data::is_within(
        &reduced,
        &opa_data::grants_for(&granted, &id)
    ));
    for e in history()
        .iter()
        .filter(|e| e.subject == API && e.decision == Decision::Allow)
    {
        let request = opa_data::Request {
            identity: id.clone(),
            action: e.action.clone(),
            resource: e.resource.clone(),
        };
        assert!(
            opa_data::allows(&reduced, &request),
            "{} {}",
            e.action,
            e.resource
        );
    }
}

/// The api as an Istio mesh sees it: one ALLOW rule it uses (GET orders),
/// one it never uses (DELETE orders), and a conditional rule on the ledger
/// that must never be suggested for removal.
const ISTIO: &str = r#"
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: orders, namespace: orders}
spec:
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/shop/sa/api"]}}]
      to: [{operation: {methods: ["GET"], paths: ["/v1/orders/*"]}}]
    - from: [{source: {principals: ["cluster.local/ns/shop/sa/api"]}}]
      to: [{operation: {methods: ["DELETE"], paths: ["/v1/orders/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ledger, namespace: ledger}
spec:
  rules:
    - from: [{source: {principals: ["cluster.local/ns/shop/sa/api"]}}]
      when: [{key: "request.headers[x-debug]", values: ["1"]}]
"#;

#[tokio::test]
async fn istio_policies_give_unused_rules_and_a_reduced_policy() {
    let dir = tempfile::tempdir().unwrap();
    let data = DataDir::new(dir.path());
    let orders = "spiffe://cluster.local/ns/orders/sa/orders";
    let events: Vec<DecisionEvent> = (0..6)
        .map(|i| DecisionEvent {
            resource: format!("/v1/orders/{}", 4700 + i),
            resource_pattern: "/v1/orders/{id}".to_owned(),
            target: Some(orders.to_owned()),
            format: "native".to_owned(),
            ..event(
                &format!("o{i}"),
                Duration::hours(i),
                API,
                "GET",
                "",
                Decision::Allow,
            )
        })
        .collect();
    let day = events[0].time.date_naive();
    let dest = data.events_partition(day).join("part-0.parquet");
    write_rows_atomic(&dest, &data.tmp(), &event_schema(), &events, &[]).unwrap();
    let path = dir.path().join("istio.yaml");
    std::fs::write(&path, ISTIO).unwrap();
    let mut settings = AnalyzeSettings::new(data.clone());
    settings.grants = vec![path];
    settings.observe = Duration::hours(5);
    run(&settings).await.unwrap();

    let found = common::suggestions(&data);
    let unused: Vec<&Suggestion> = found.iter().filter(|s| s.kind == "remove-unused").collect();
    assert_eq!(
        unused.len(),
        1,
        "only the unconditional DELETE rule: {found:#?}"
    );
    let grant = unused[0].grant.as_deref().unwrap();
    assert!(
        grant.contains("orders") && grant.contains("rules[1]"),
        "{grant}"
    );
    assert_eq!(unused[0].risk, "high", "DELETE writes");
    let minimal = found.iter().find(|s| s.kind == "minimal-policy").unwrap();
    assert_eq!(minimal.used_count, 6);
    assert_eq!(minimal.risk, "high", "it drops the DELETE rule too");
    assert!(
        minimal
            .explanation
            .contains("allow nothing the granted rules do not"),
        "{}",
        minimal.explanation
    );
    let yaml = minimal.policy.as_deref().unwrap();
    assert!(
        yaml.contains("kind: AuthorizationPolicy") && yaml.contains("/v1/orders/*"),
        "{yaml}"
    );
    assert!(yaml.contains("GET") && !yaml.contains("DELETE"), "{yaml}");
}

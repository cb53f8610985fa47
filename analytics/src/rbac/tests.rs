//! Unit tests on small manifests in the shapes the Kubernetes RBAC
//! documentation uses.

use std::path::Path;

use super::import::RbacError;
use super::*;

fn import(text: &str) -> Imported {
    parse(text, Path::new("test.yaml")).expect("manifests parse")
}

fn req(action: &str, resource: &str) -> Request {
    parse_request(action, resource).expect("request parses")
}

fn sa(ns: &str, name: &str) -> ServiceAccount {
    ServiceAccount::new(ns, name)
}

const BASICS: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  namespace: default
  name: pod-reader
rules:
- apiGroups: [""]
  resources: ["pods", "pods/log"]
  verbs: ["get", "watch", "list"]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm, namespace: default}
data: {a: b}
---
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
  namespace: default
subjects:
- kind: ServiceAccount
  name: reader
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: secret-reader
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-secrets
  namespace: development
subjects:
- kind: ServiceAccount
  name: dave
  namespace: development
roleRef:
  kind: ClusterRole
  name: secret-reader
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: read-secrets-global
subjects:
- kind: Group
  name: manager
  apiGroup: rbac.authorization.k8s.io
roleRef:
  kind: ClusterRole
  name: secret-reader
  apiGroup: rbac.authorization.k8s.io
"#;

#[test]
fn imports_documents_skips_other_kinds_and_defaults_sa_namespace() {
    let imported = import(BASICS);
    assert_eq!(imported.rbac.roles.len(), 2);
    assert_eq!(imported.rbac.bindings.len(), 3);
    assert_eq!(imported.skipped.get("v1 ConfigMap"), Some(&1));
    let rb = &imported.rbac.bindings[0];
    assert_eq!(
        rb.subjects,
        vec![
            Subject::ServiceAccount(sa("default", "reader")),
            Subject::User("jane".into())
        ]
    );
    assert_eq!(
        imported.rbac.roles[0].rules[0].resources,
        ["pods", "pods/log"]
    );
}

#[test]
fn rolebinding_to_clusterrole_applies_only_in_its_namespace() {
    let resolved = resolve(&import(BASICS).rbac);
    assert!(resolved.warnings.is_empty(), "{:?}", resolved.warnings);
    let dave = resolved.grants_for(&sa("development", "dave"));
    assert_eq!(dave.len(), 1);
    assert_eq!(dave[0].namespace.as_deref(), Some("development"));
    assert_eq!(
        dave[0].source.to_string(),
        "RoleBinding development/read-secrets -> ClusterRole secret-reader"
    );
    assert!(allows(&dave, &req("get", "namespaces/development/core/secrets:db")).is_some());
    assert!(allows(&dave, &req("get", "namespaces/default/core/secrets:db")).is_none());
    assert!(allows(&dave, &req("list", "core/secrets")).is_none());

    let manager = resolved.grants_for_user("ann", &["manager"]);
    assert!(allows(&manager, &req("list", "core/secrets")).is_some());
    assert!(allows(&manager, &req("get", "namespaces/x/core/secrets:y")).is_some());

    let reader = resolved.grants_for(&sa("default", "reader"));
    assert!(allows(
        &reader,
        &req("get", "namespaces/default/core/pods/log:web-0")
    )
    .is_some());
    assert!(allows(&reader, &req("create", "namespaces/default/core/pods")).is_none());
    let accounts = resolved.service_accounts();
    assert_eq!(
        accounts.keys().cloned().collect::<Vec<_>>(),
        vec![sa("default", "reader"), sa("development", "dave")]
    );
}

#[test]
fn aggregated_cluster_roles_collect_matching_rules() {
    let text = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring
aggregationRule:
  clusterRoleSelectors:
  - matchLabels:
      rbac.example.com/aggregate-to-monitoring: "true"
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: monitoring-endpoints
  labels:
    rbac.example.com/aggregate-to-monitoring: "true"
rules:
- apiGroups: [""]
  resources: ["services", "endpointslices", "pods"]
  verbs: ["get", "list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: not-monitoring
  labels:
    rbac.example.com/aggregate-to-monitoring: "false"
rules:
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: expressions
aggregationRule:
  clusterRoleSelectors:
  - matchExpressions:
    - {key: tier, operator: In, values: [a, b]}
    - {key: legacy, operator: DoesNotExist}
  - matchExpressions:
    - {key: extra, operator: Exists}
    - {key: tier, operator: NotIn, values: [c]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: tier-a, labels: {tier: a}}
rules: [{apiGroups: [apps], resources: [deployments], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: tier-b-legacy, labels: {tier: b, legacy: "yes"}}
rules: [{apiGroups: [apps], resources: [statefulsets], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: extra-c, labels: {tier: c, extra: "1"}}
rules: [{apiGroups: [batch], resources: [jobs], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: extra-d, labels: {extra: "1"}, aggregationRule: null}
rules: [{apiGroups: [batch], resources: [cronjobs], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus}
subjects:
- {kind: ServiceAccount, name: prometheus, namespace: monitoring}
roleRef: {kind: ClusterRole, name: monitoring, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: expressions}
subjects:
- {kind: User, name: "system:serviceaccount:ops:bot"}
roleRef: {kind: ClusterRole, name: expressions, apiGroup: rbac.authorization.k8s.io}
"#;
    // metadata.aggregationRule is not a field of ObjectMeta: ignored.
    let resolved = resolve(&import(text).rbac);
    let prometheus = resolved.grants_for(&sa("monitoring", "prometheus"));
    assert_eq!(prometheus.len(), 1);
    assert!(allows(&prometheus, &req("watch", "core/endpointslices")).is_some());
    assert!(allows(&prometheus, &req("get", "namespaces/a/core/secrets:x")).is_none());

    let bot = resolved.grants_for(&sa("ops", "bot"));
    let resources: Vec<&str> = bot
        .iter()
        .flat_map(|g| g.rule.resources.iter().map(String::as_str))
        .collect();
    assert_eq!(resources, ["deployments", "cronjobs"]);
}

#[test]
fn group_subjects_reach_service_accounts() {
    let text = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: view-cm}
rules: [{apiGroups: [""], resources: [configmaps], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: list-nodes}
rules: [{apiGroups: [""], resources: [nodes], verbs: [list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: all-in-qa, namespace: qa}
subjects: [{kind: Group, name: "system:serviceaccounts:qa", apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: view-cm, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: all-sas}
subjects: [{kind: Group, name: "system:serviceaccounts", apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: list-nodes, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: tester, namespace: qa}
"#;
    let resolved = resolve(&import(text).rbac);
    let tester = resolved.grants_for(&sa("qa", "tester"));
    assert_eq!(tester.len(), 2);
    assert!(allows(&tester, &req("get", "namespaces/qa/core/configmaps:c")).is_some());
    assert!(allows(&tester, &req("list", "core/nodes")).is_some());
    let other = resolved.grants_for(&sa("prod", "api"));
    assert_eq!(other.len(), 1);
    assert!(allows(&other, &req("get", "namespaces/qa/core/configmaps:c")).is_none());
    assert!(resolved
        .grants_for_user("bob", &["system:authenticated"])
        .is_empty());
    assert_eq!(
        resolved.service_accounts().into_keys().collect::<Vec<_>>(),
        vec![sa("qa", "tester")]
    );
}

#[test]
fn dangling_bindings_are_warnings() {
    let text = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rb, namespace: a}
subjects: [{kind: ServiceAccount, name: x}]
roleRef: {kind: Role, name: missing, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: crb}
subjects: [{kind: ServiceAccount, name: x, namespace: a}]
roleRef: {kind: ClusterRole, name: gone, apiGroup: rbac.authorization.k8s.io}
"#;
    let resolved = resolve(&import(text).rbac);
    assert!(resolved.bound.is_empty());
    let warnings: Vec<String> = resolved.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "RoleBinding a/rb references Role a/missing, which does not exist",
            "ClusterRoleBinding crb references ClusterRole gone, which does not exist",
        ]
    );
}

#[test]
fn kubectl_json_list() {
    let text = r#"{
  "apiVersion": "v1",
  "kind": "List",
  "metadata": {"resourceVersion": ""},
  "items": [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
     "metadata": {"name": "health", "uid": "1", "resourceVersion": "9", "creationTimestamp": "2024-01-01T00:00:00Z"},
     "rules": [{"nonResourceURLs": ["/healthz", "/metrics*"], "verbs": ["get"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
     "metadata": {"name": "health"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "health"},
     "subjects": [{"kind": "ServiceAccount", "name": "probe", "namespace": "mon"}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
     "metadata": {"name": "health-ns", "namespace": "mon"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "health"},
     "subjects": [{"kind": "ServiceAccount", "name": "other"}]},
    {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
  ]
}"#;
    let imported = import(text);
    assert_eq!(imported.skipped.get("v1 Secret"), Some(&1));
    let resolved = resolve(&imported.rbac);
    let probe = resolved.grants_for(&sa("mon", "probe"));
    assert!(allows(&probe, &req("get", "/healthz")).is_some());
    assert!(allows(&probe, &req("get", "/healthz/ready")).is_none());
    assert!(allows(&probe, &req("get", "/metrics")).is_some());
    assert!(allows(&probe, &req("get", "/metrics/cadvisor")).is_some());
    assert!(allows(&probe, &req("post", "/healthz")).is_none());
    // Non-resource URLs only work through ClusterRoleBindings.
    let other = resolved.grants_for(&sa("mon", "other"));
    assert_eq!(other.len(), 1);
    assert!(allows(&other, &req("get", "/healthz")).is_none());
}

#[test]
fn errors_name_file_document_and_problem() {
    let syntax = parse("kind: Role\n---\nkind: [unclosed\n", Path::new("bad.yaml")).unwrap_err();
    let RbacError::Syntax { document, line, .. } = &syntax else {
        panic!("{syntax:?}")
    };
    // The flow sequence is found unclosed at the end of the input; lines
    // count from the start of the file, not of the document.
    assert_eq!((*document, *line), (1, Some(4)));
    assert!(
        syntax
            .to_string()
            .starts_with("bad.yaml: document 1 (line 4"),
        "{syntax}"
    );

    let typo = parse(
        "apiVersion: v1\nkind: ConfigMap\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: a}\nrules: [{apiGroups: [''], resources: [pods], verb: [get]}]\n",
        Path::new("typo.yaml"),
    )
    .unwrap_err();
    let message = typo.to_string();
    assert!(message.starts_with("typo.yaml: document 1"), "{message}");
    assert!(
        message.contains("Role r") && message.contains("verb"),
        "{message}"
    );

    let list = parse(
        r#"{"kind": "List", "items": [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"}}]}"#,
        Path::new("list.json"),
    )
    .unwrap_err();
    assert_eq!(
        list.to_string(),
        "list.json: document 0: items[0] RoleBinding b: a RoleBinding needs metadata.namespace"
    );

    for (text, reason) in [
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: r, namespace: a}\nrules: [{nonResourceURLs: [/x], verbs: [get]}]",
            "a Role cannot have nonResourceURLs",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: r}\nrules: [{apiGroups: [''], resources: [pods]}]",
            "a rule needs at least one verb",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\nroleRef: {kind: Role, name: r}",
            "a ClusterRoleBinding can only reference a ClusterRole",
        ),
        (
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: b}\nroleRef: {kind: ClusterRole, name: r}\nsubjects: [{kind: ServiceAccount, name: x}]",
            "a ServiceAccount subject of a ClusterRoleBinding needs a namespace",
        ),
    ] {
        let e = parse(text, Path::new("x.yaml")).unwrap_err();
        assert!(matches!(&e, RbacError::Invalid { reason: r, .. } if *r == reason), "{e}");
    }
}

fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], names: &[&str]) -> PolicyRule {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
    PolicyRule {
        verbs: v(verbs),
        api_groups: v(groups),
        resources: v(resources),
        resource_names: v(names),
        non_resource_urls: Vec::new(),
    }
}

fn urls(verbs: &[&str], urls: &[&str]) -> PolicyRule {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect();
    PolicyRule {
        verbs: v(verbs),
        non_resource_urls: v(urls),
        ..PolicyRule::default()
    }
}

fn grant(namespace: Option<&str>, rule: PolicyRule) -> Grant {
    Grant {
        namespace: namespace.map(str::to_owned),
        rule,
        source: GrantSource {
            role_kind: RoleKind::ClusterRole,
            role: "r".into(),
            binding_kind: BindingKind::ClusterRoleBinding,
            binding: "b".into(),
            binding_namespace: namespace.map(str::to_owned),
            granted_at: None,
        },
    }
}

#[test]
fn rule_matching_follows_kubernetes() {
    let star = rule(&["*"], &["*"], &["*"], &[]);
    assert!(rule_allows(
        &star,
        &req("delete", "namespaces/a/apps/deployments:x")
    ));
    assert!(rule_allows(
        &star,
        &req("get", "namespaces/a/core/pods/log:x")
    ));
    assert!(!rule_allows(&star, &req("get", "/healthz")));

    let names = rule(
        &["get", "update", "list"],
        &[""],
        &["configmaps"],
        &["my-configmap"],
    );
    assert!(rule_allows(
        &names,
        &req("get", "namespaces/a/core/configmaps:my-configmap")
    ));
    assert!(!rule_allows(
        &names,
        &req("get", "namespaces/a/core/configmaps:other")
    ));
    assert!(!rule_allows(
        &names,
        &req("list", "namespaces/a/core/configmaps")
    ));
    assert!(!rule_allows(
        &names,
        &req("get", "namespaces/a/apps/configmaps:my-configmap")
    ));

    let pods = rule(&["get"], &[""], &["pods"], &[]);
    assert!(rule_allows(&pods, &req("get", "namespaces/a/core/pods:p")));
    assert!(!rule_allows(
        &pods,
        &req("get", "namespaces/a/core/pods/log:p")
    ));
    let log = rule(&["get"], &[""], &["pods/log"], &[]);
    assert!(rule_allows(
        &log,
        &req("get", "namespaces/a/core/pods/log:p")
    ));
    assert!(!rule_allows(&log, &req("get", "namespaces/a/core/pods:p")));
    let any_scale = rule(&["update"], &["*"], &["*/scale"], &[]);
    assert!(rule_allows(
        &any_scale,
        &req("update", "namespaces/a/apps/deployments/scale:d")
    ));
    assert!(!rule_allows(
        &any_scale,
        &req("update", "namespaces/a/apps/deployments:d")
    ));
    // `pods/*` is not a pattern in Kubernetes RBAC.
    let pods_star = rule(&["get"], &[""], &["pods/*"], &[]);
    assert!(!rule_allows(
        &pods_star,
        &req("get", "namespaces/a/core/pods/log:p")
    ));

    let health = urls(&["get"], &["/healthz", "/metrics*"]);
    assert!(rule_allows(&health, &req("get", "/healthz")));
    assert!(rule_allows(&health, &req("GET", "/metrics/x")));
    assert!(!rule_allows(&health, &req("get", "/healthzz")));
    assert!(!rule_allows(&health, &req("get", "namespaces/a/core/pods")));
}

#[test]
fn scope_of_grants() {
    let ns = [grant(Some("a"), rule(&["*"], &["*"], &["*"], &[]))];
    assert!(allows(&ns, &req("get", "namespaces/a/core/pods:p")).is_some());
    assert!(allows(&ns, &req("get", "namespaces/b/core/pods:p")).is_none());
    assert!(allows(&ns, &req("get", "core/nodes:n")).is_none());
    assert!(allows(&ns, &req("list", "core/pods")).is_none());
    // The namespace object is in its own namespace.
    assert!(allows(&ns, &req("get", "core/namespaces:a")).is_some());
    assert!(allows(&ns, &req("get", "core/namespaces:b")).is_none());
    let wide = [grant(None, rule(&["get"], &[""], &["nodes", "pods"], &[]))];
    assert!(allows(&wide, &req("get", "core/nodes:n")).is_some());
    assert!(allows(&wide, &req("get", "namespaces/z/core/pods:p")).is_some());
}

#[test]
fn parses_overreach_resource_strings() {
    let Request::Resource(r) = req("get", "namespaces/argo-cd/core/secrets:argocd-secret") else {
        panic!()
    };
    assert_eq!(
        (
            r.namespace.as_deref(),
            r.api_group.as_str(),
            r.resource.as_str(),
            r.name.as_deref()
        ),
        (Some("argo-cd"), "", "secrets", Some("argocd-secret"))
    );
    let Request::Resource(r) = req("get", "namespaces/shop/core/pods/log:web-0") else {
        panic!()
    };
    assert_eq!(r.combined_resource(), "pods/log");
    let Request::Resource(r) = req("list", "apps/deployments") else {
        panic!()
    };
    assert_eq!(
        (r.namespace, r.api_group.as_str(), r.name),
        (None, "apps", None)
    );
    let Request::Resource(r) = req(
        "get",
        "rbac.authorization.k8s.io/clusterroles:system:controller:x",
    ) else {
        panic!()
    };
    assert_eq!(r.name.as_deref(), Some("system:controller:x"));
    let ns = req("get", "core/namespaces:shop");
    assert_eq!(ns.namespace(), Some("shop"));
    assert_eq!(ns.to_string(), "get core/namespaces:shop");
    assert_eq!(
        req("get", "/version"),
        Request::NonResource(NonResourceRequest {
            verb: "get".into(),
            path: "/version".into()
        })
    );
    for s in [
        "namespaces/shop/core/pods/log:web-0",
        "apps/deployments",
        "namespaces/a/apps/deployments/scale:d",
        "/healthz",
    ] {
        assert_eq!(req("get", s).resource_string(), s);
    }
    for bad in [
        "pods",
        "namespaces/a",
        "core//x",
        "a/b/c/d",
        "namespaces//core/pods",
        "core/pods:",
    ] {
        assert!(parse_request("get", bad).is_err(), "{bad}");
    }
}

#[test]
fn subset_check() {
    let granted = [
        grant(
            None,
            rule(&["get", "list"], &["", "apps"], &["pods", "*/scale"], &[]),
        ),
        grant(Some("a"), rule(&["*"], &[""], &["secrets"], &["s1", "s2"])),
        grant(None, urls(&["get"], &["/metrics*"])),
    ];
    let within = |ns: Option<&str>, r: PolicyRule| is_within(&[grant(ns, r)], &granted);
    assert!(within(Some("x"), rule(&["get"], &[""], &["pods"], &["p"])));
    assert!(within(
        None,
        rule(&["list"], &["apps"], &["deployments/scale"], &[])
    ));
    assert!(!within(
        None,
        rule(&["list"], &["apps"], &["deployments"], &[])
    ));
    assert!(within(
        Some("a"),
        rule(&["delete"], &[""], &["secrets"], &["s2"])
    ));
    assert!(!within(
        Some("a"),
        rule(&["delete"], &[""], &["secrets"], &["s3"])
    ));
    assert!(!within(
        Some("a"),
        rule(&["delete"], &[""], &["secrets"], &[])
    ));
    assert!(!within(
        Some("b"),
        rule(&["get"], &[""], &["secrets"], &["s1"])
    ));
    assert!(!within(None, rule(&["get"], &[""], &["secrets"], &["s1"])));
    assert!(!within(None, rule(&["*"], &[""], &["pods"], &[])));
    assert!(within(None, urls(&["get"], &["/metrics/x", "/metrics*"])));
    assert!(!within(None, urls(&["get"], &["/healthz"])));
    assert!(!within(Some("a"), urls(&["post"], &["/metrics"])));
    assert!(is_within(&[], &granted));
}

#[test]
fn minimal_policy_splits_names_and_roundtrips() {
    let subject = Subject::ServiceAccount(sa("shop", "web"));
    let observed = [
        req("get", "namespaces/shop/core/secrets:db"),
        req("get", "namespaces/shop/core/secrets:db"),
        req("update", "namespaces/shop/core/secrets:db"),
        req("get", "namespaces/shop/core/secrets:tls"),
        req("list", "namespaces/shop/core/secrets"),
        req("watch", "namespaces/shop/core/configmaps"),
        req("watch", "namespaces/shop/core/secrets"),
        req("create", "namespaces/shop/core/pods"),
        req("get", "namespaces/shop/core/pods/log:web-0"),
        req("list", "core/pods"),
        req("list", "namespaces/other/core/pods"),
        req("list", "namespaces/shop/core/pods"),
        req("get", "core/nodes:n1"),
        req("get", "/healthz"),
        req("get", "/version"),
        req("list", "apps/deployments:one"),
    ];
    let policy = minimal_policy(&subject, observed.iter().map(|r| (r, 1)));
    assert_eq!(policy.name, "overreach-minimal:shop:web");
    let grants = policy.grants();
    for r in &observed {
        assert!(allows(&grants, r).is_some(), "{r}");
    }
    for r in [
        "update namespaces/shop/core/secrets:tls",
        "get namespaces/shop/core/secrets:other",
        "get namespaces/other/core/secrets:db",
        "delete namespaces/shop/core/secrets:db",
        "get namespaces/shop/core/pods:web-0",
        "get namespaces/shop/core/pods/log:web-1",
        "create namespaces/other/core/pods",
        "watch namespaces/shop/core/pods",
        "get core/nodes:n2",
        "get /metrics",
        "post /healthz",
    ] {
        let (verb, resource) = r.split_once(' ').unwrap();
        assert!(allows(&grants, &req(verb, resource)).is_none(), "{r}");
    }
    // Forced by the structure: list without a name lets every name through.
    assert!(allows(&grants, &req("list", "apps/deployments:two")).is_some());
    assert!(allows(&grants, &req("list", "namespaces/z/core/pods")).is_some());

    let shop: Vec<&GeneratedRule> = policy
        .rules
        .iter()
        .filter(|r| r.namespace.as_deref() == Some("shop"))
        .collect();
    let summary: Vec<String> = shop
        .iter()
        .map(|r| {
            format!(
                "{:?} {:?} {:?}",
                r.rule.resources, r.rule.verbs, r.rule.resource_names
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            r#"["pods"] ["create"] []"#,
            r#"["secrets"] ["get"] ["tls"]"#,
            r#"["pods/log"] ["get"] ["web-0"]"#,
            r#"["secrets"] ["get", "update"] ["db"]"#,
            r#"["secrets"] ["list", "watch"] []"#,
            r#"["configmaps"] ["watch"] []"#,
        ],
        "list pods in shop is left to the ClusterRole"
    );
    let db = shop[3];
    assert_eq!(db.needed_by.len(), 2);
    assert_eq!(db.needed_by[0].1, 2);

    let yaml = policy.to_yaml();
    assert!(
        yaml.contains("#   get namespaces/shop/core/secrets:db (2 calls)"),
        "{yaml}"
    );
    let imported = parse(&yaml, Path::new("generated.yaml")).expect("generated YAML parses");
    assert_eq!(imported.rbac.roles.len(), 2);
    assert_eq!(imported.rbac.bindings.len(), 2);
    let resolved = resolve(&imported.rbac);
    assert!(resolved.warnings.is_empty());
    let mut again = resolved.grants_for(&sa("shop", "web"));
    let mut expected = grants.clone();
    again.sort();
    expected.sort();
    assert_eq!(again, expected);
}

#[test]
fn minimal_policy_for_users_and_nothing() {
    let policy = minimal_policy(&Subject::User("bob/x".into()), [(&req("get", "/api"), 1)]);
    assert_eq!(policy.name, "overreach-minimal:user:bob_x");
    let yaml = policy.to_yaml();
    let resolved = resolve(&parse(&yaml, Path::new("g.yaml")).unwrap().rbac);
    let bob = resolved.grants_for_user("bob/x", &[]);
    assert!(allows(&bob, &req("get", "/api")).is_some());
    assert!(allows(&bob, &req("get", "/apis")).is_none());

    // A request's calls add up, however they are given.
    let (api, apis) = (req("get", "/api"), req("get", "/apis"));
    let counted = minimal_policy(
        &Subject::User("bob/x".into()),
        [(&api, 3), (&apis, 1), (&api, 2)],
    );
    let needed: Vec<(String, usize)> = counted
        .rules
        .iter()
        .flat_map(|r| r.needed_by.iter().map(|(q, n)| (q.to_string(), *n)))
        .collect();
    assert_eq!(needed, [(api.to_string(), 5), (apis.to_string(), 1)]);

    let empty = minimal_policy(&Subject::Group("g".into()), []);
    assert!(empty.rules.is_empty());
    let imported = parse(&empty.to_yaml(), Path::new("e.yaml")).unwrap();
    assert_eq!(imported, Imported::default());
}

#[test]
fn spiffe_ids_of_service_accounts() {
    let web = sa("shop", "web");
    assert_eq!(
        web.spiffe_id("cluster.local").unwrap().to_string(),
        "spiffe://cluster.local/ns/shop/sa/web"
    );
    assert_eq!(web.username(), "system:serviceaccount:shop:web");
    assert_eq!(ServiceAccount::from_username(&web.username()), Some(web));
    assert_eq!(
        ServiceAccount::from_username("system:serviceaccount:a"),
        None
    );
    assert_eq!(ServiceAccount::from_username("bob"), None);
}

#[test]
fn many_names_of_a_kind_collapse_few_stay_named() {
    let sa = Subject::ServiceAccount(ServiceAccount::new("ledger", "controller"));
    let mut calls: Vec<Request> = (0..7)
        .map(|i| req("patch", &format!("namespaces/ledger/core/pods:worker-{i}")))
        .collect();
    calls.push(req("get", "namespaces/ledger/core/secrets:tls"));
    calls.push(req("get", "namespaces/ledger/core/secrets:db"));
    let collapsed =
        minimal_policy_collapsed(&sa, calls.iter().map(|r| (r, 1)), 5, &|_, _, _, _| true);
    // Where the grants name the objects, names stay.
    let named = minimal_policy_collapsed(&sa, calls.iter().map(|r| (r, 1)), 5, &|_, _, _, verb| {
        verb != "patch"
    });
    assert!(named.rules.iter().any(|r| r.rule.resource_names.len() == 7));
    let rules: Vec<(&[String], &[String], &[String])> = collapsed
        .rules
        .iter()
        .map(|r| {
            (
                &r.rule.verbs[..],
                &r.rule.resources[..],
                &r.rule.resource_names[..],
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            (
                &["get".to_owned()][..],
                &["secrets".to_owned()][..],
                &["db".to_owned(), "tls".to_owned()][..]
            ),
            (&["patch".to_owned()][..], &["pods".to_owned()][..], &[][..]),
        ],
        "{}",
        collapsed.to_yaml()
    );
    // The next replica is allowed; other secrets are not.
    let grants = collapsed.grants();
    assert!(allows(
        &grants,
        &req("patch", "namespaces/ledger/core/pods:worker-99")
    )
    .is_some());
    assert!(allows(&grants, &req("get", "namespaces/ledger/core/secrets:other")).is_none());
    // Without collapsing, every name is listed.
    let exact = minimal_policy(&sa, calls.iter().map(|r| (r, 1)));
    assert!(exact.rules.iter().any(|r| r.rule.resource_names.len() == 7));
}

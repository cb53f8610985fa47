//! Kubernetes RBAC end to end: fixtures under `tests/data/rbac/`, the
//! audit2rbac demo log (minimal policies per identity, golden YAML in
//! `tests/data/rbac/audit2rbac-minimal.yaml`; regenerate with
//! `OVERREACH_UPDATE_GOLDEN=1 cargo test -p overreach-analytics --test rbac`
//! and review the diff), and property-style checks on generated input.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use overreach_analytics::rbac::{
    allows, is_within, load, minimal_policy, parse_request, resolve, Grant, GrantSource,
    MinimalPolicy, PolicyRule, Request, ServiceAccount, Subject, Warning,
};
use overreach_analytics::rbac::{BindingKind, RoleKind};
use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rbac")
        .join(name)
}

fn audit_log(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data/k8s-audit-audit2rbac")
        .join(name)
}

fn req(action: &str, resource: &str) -> Request {
    parse_request(action, resource).unwrap()
}

#[test]
fn fixtures_resolve_per_service_account() {
    let mut imported = load(&data("manifests.yaml")).unwrap();
    imported.merge(load(&data("kubectl-list.json")).unwrap());
    assert_eq!(imported.rbac.roles.len(), 5);
    assert_eq!(imported.rbac.bindings.len(), 4);
    assert_eq!(imported.skipped.get("v1 ConfigMap"), Some(&1));
    let resolved = resolve(&imported.rbac);
    assert_eq!(
        resolved.warnings,
        [Warning::DanglingBinding {
            binding_kind: BindingKind::RoleBinding,
            binding: "stale".into(),
            namespace: Some("shop".into()),
            role_kind: RoleKind::ClusterRole,
            role: "removed-long-ago".into(),
        }]
    );
    let accounts = resolved.service_accounts();
    let names: Vec<String> = accounts
        .keys()
        .map(|sa| sa.spiffe_id("cluster.local").unwrap().to_string())
        .collect();
    assert_eq!(
        names,
        [
            "spiffe://cluster.local/ns/ci/sa/runner",
            "spiffe://cluster.local/ns/monitoring/sa/prometheus",
            "spiffe://cluster.local/ns/shop/sa/deployer",
            "spiffe://cluster.local/ns/shop/sa/support",
        ]
    );
    for (sa, grants) in &accounts {
        println!("{sa}: {} grants", grants.len());
        for g in grants {
            println!("  {:?} {:?} from {}", g.namespace, g.rule, g.source);
        }
    }
    let prometheus = &accounts[&ServiceAccount::new("monitoring", "prometheus")];
    assert!(allows(prometheus, &req("watch", "namespaces/a/core/endpoints")).is_some());
    assert!(allows(prometheus, &req("get", "/metrics/cadvisor")).is_some());
    assert!(allows(prometheus, &req("get", "namespaces/a/core/secrets:s")).is_none());
    // The group system:serviceaccounts:ci gives the runner the deployer's role.
    let runner = &accounts[&ServiceAccount::new("ci", "runner")];
    assert!(allows(
        runner,
        &req("patch", "namespaces/shop/apps/deployments/scale:web")
    )
    .is_some());
    assert!(allows(
        runner,
        &req("patch", "namespaces/shop/core/configmaps:web-config")
    )
    .is_some());
    assert!(allows(
        runner,
        &req("patch", "namespaces/shop/core/configmaps:other")
    )
    .is_none());
    assert!(allows(runner, &req("get", "namespaces/ci/apps/deployments:web")).is_none());
    let support = &accounts[&ServiceAccount::new("shop", "support")];
    assert!(allows(support, &req("get", "namespaces/shop/core/pods/log:web-0")).is_some());
    assert!(allows(support, &req("get", "namespaces/prod/core/pods/log:web-0")).is_none());
}

/// `(identity, request)` of every allowed request in an audit log, once
/// per audit ID: the `ResponseComplete` stage, or the last one logged.
fn allowed_requests(path: &Path) -> Vec<(String, Request)> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut latest: BTreeMap<String, Value> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let event: Value = serde_json::from_str(line).unwrap();
        let id = event["auditID"].as_str().unwrap().to_owned();
        let complete = event["stage"] == "ResponseComplete";
        if complete || !latest.contains_key(&id) {
            latest.insert(id, event);
        }
    }
    let mut out = Vec::new();
    for event in latest.values() {
        let Some(code) = event["responseStatus"]["code"].as_i64() else {
            continue; // RequestReceived only: the decision is unknown.
        };
        if code == 401 || code == 403 {
            continue;
        }
        let user = event["impersonatedUser"]["username"]
            .as_str()
            .or(event["user"]["username"].as_str())
            .unwrap()
            .to_owned();
        let o = &event["objectRef"];
        let resource = match o["resource"].as_str() {
            Some(resource) => {
                let group = o["apiGroup"]
                    .as_str()
                    .filter(|g| !g.is_empty())
                    .or_else(|| {
                        o["apiVersion"]
                            .as_str()
                            .and_then(|v| v.split_once('/'))
                            .map(|(g, _)| g)
                    })
                    .unwrap_or("core");
                let mut s = String::new();
                if let Some(ns) = o["namespace"].as_str().filter(|ns| !ns.is_empty()) {
                    s.push_str(&format!("namespaces/{ns}/"));
                }
                s.push_str(&format!("{group}/{resource}"));
                if let Some(sub) = o["subresource"].as_str().filter(|s| !s.is_empty()) {
                    s.push_str(&format!("/{sub}"));
                }
                if let Some(name) = o["name"].as_str().filter(|n| !n.is_empty()) {
                    s.push_str(&format!(":{name}"));
                }
                s
            }
            None => {
                let uri = event["requestURI"].as_str().unwrap();
                uri.split('?').next().unwrap().to_owned()
            }
        };
        let verb = event["verb"].as_str().unwrap();
        out.push((user, parse_request(verb, &resource).unwrap()));
    }
    out
}

/// `(verb, group, resource)` of a resource request, `(verb, "", path)` of
/// a non-resource one.
fn triple(request: &Request) -> (String, String, String) {
    match request {
        Request::Resource(r) => (r.verb.clone(), r.api_group.clone(), r.combined_resource()),
        Request::NonResource(r) => (r.verb.clone(), String::new(), r.path.clone()),
    }
}

fn rule_triples(rule: &PolicyRule) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for verb in &rule.verbs {
        for group in &rule.api_groups {
            for resource in &rule.resources {
                out.push((verb.clone(), group.clone(), resource.clone()));
            }
        }
        for url in &rule.non_resource_urls {
            out.push((verb.clone(), String::new(), url.clone()));
        }
    }
    out
}

fn subject_of(user: &str) -> Subject {
    match ServiceAccount::from_username(user) {
        Some(sa) => Subject::ServiceAccount(sa),
        None => Subject::User(user.to_owned()),
    }
}

fn policies_of(path: &Path) -> Vec<(String, usize, MinimalPolicy)> {
    let mut by_user: BTreeMap<String, Vec<Request>> = BTreeMap::new();
    for (user, request) in allowed_requests(path) {
        by_user.entry(user).or_default().push(request);
    }
    let mut out = Vec::new();
    for (user, requests) in by_user {
        let policy = minimal_policy(&subject_of(&user), requests.iter().map(|r| (r, 1)));
        let grants = policy.grants();
        for r in &requests {
            assert!(allows(&grants, r).is_some(), "{user}: {r} not allowed");
        }
        let requested: BTreeSet<_> = requests.iter().map(triple).collect();
        for rule in &policy.rules {
            for t in rule_triples(&rule.rule) {
                assert!(
                    requested.contains(&t),
                    "{user}: rule for {t:?} never requested"
                );
            }
            assert!(!rule.needed_by.is_empty());
        }
        out.push((user, requests.len(), policy));
    }
    out
}

#[test]
fn audit2rbac_minimal_policies() {
    for file in ["demo-full-v1beta1.log", "demo-v1.log"] {
        println!("{file}:");
        let policies = policies_of(&audit_log(file));
        for (user, requests, policy) in &policies {
            let roles = policy.scopes().len();
            println!(
                "  {user}: {requests} allowed requests, {} rules in {roles} roles",
                policy.rules.len()
            );
        }
        if file == "demo-full-v1beta1.log" {
            let users: Vec<&str> = policies.iter().map(|(u, _, _)| u.as_str()).collect();
            assert_eq!(
                users,
                ["bob", "system:admin", "system:serviceaccount:ns1:sa1"]
            );
            let yaml: String = policies.iter().map(|(_, _, p)| p.to_yaml()).collect();
            golden(&data("audit2rbac-minimal.yaml"), &yaml);
            // The golden file itself is valid input again.
            let reread = load(&data("audit2rbac-minimal.yaml")).unwrap();
            assert!(resolve(&reread.rbac).warnings.is_empty());
        }
    }
}

fn golden(path: &Path, actual: &str) {
    if std::env::var_os("OVERREACH_UPDATE_GOLDEN").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with OVERREACH_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs; rerun with OVERREACH_UPDATE_GOLDEN=1 and review the diff.\nactual:\n{actual}",
        path.display()
    );
}

/// A small deterministic generator (64-bit LCG), so the test needs no
/// dependency and every failure reproduces from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn subset(&mut self, items: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = items
            .iter()
            .filter(|_| self.chance(40))
            .map(|s| s.to_string())
            .collect();
        if out.is_empty() {
            out.push(self.pick(items).to_owned());
        }
        out
    }
}

const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const NAMED_VERBS: &[&str] = &["get", "update", "patch", "delete"];
const GROUPS: &[&str] = &["", "apps", "batch"];
const RESOURCES: &[&str] = &[
    "pods",
    "pods/log",
    "secrets",
    "deployments",
    "deployments/scale",
    "nodes",
];
const NAMES: &[&str] = &["a", "b", "c"];
const NAMESPACES: &[&str] = &["x", "y", "z"];
const URLS: &[&str] = &["/healthz", "/metrics", "/metrics/*", "/version"];

fn random_grant(rng: &mut Rng) -> Grant {
    let namespace = rng.chance(60).then(|| rng.pick(NAMESPACES).to_owned());
    let rule = if namespace.is_none() && rng.chance(20) {
        PolicyRule {
            verbs: if rng.chance(20) {
                vec!["*".into()]
            } else {
                rng.subset(&["get", "post"])
            },
            non_resource_urls: rng.subset(URLS),
            ..PolicyRule::default()
        }
    } else {
        let wild = |rng: &mut Rng, items: &[&str], extra: &[&str]| {
            if rng.chance(15) {
                vec!["*".to_owned()]
            } else {
                let mut v = rng.subset(items);
                if !extra.is_empty() && rng.chance(15) {
                    v.push(rng.pick(extra).to_owned());
                }
                v
            }
        };
        let resource_names = if rng.chance(30) {
            rng.subset(NAMES)
        } else {
            Vec::new()
        };
        PolicyRule {
            verbs: wild(rng, VERBS, &[]),
            api_groups: wild(rng, GROUPS, &[]),
            resources: wild(rng, RESOURCES, &["*/log", "*/scale"]),
            resource_names,
            non_resource_urls: Vec::new(),
        }
    };
    Grant {
        namespace,
        rule,
        source: GrantSource {
            role_kind: RoleKind::ClusterRole,
            role: "granted".into(),
            binding_kind: BindingKind::ClusterRoleBinding,
            binding: "granted".into(),
            binding_namespace: None,
            granted_at: None,
        },
    }
}

/// A request `grant` allows, or `None` when this draw cannot make one
/// (a rule with resourceNames has no name-taking verb).
fn request_from(rng: &mut Rng, grant: &Grant) -> Option<Request> {
    let rule = &grant.rule;
    let choose = |rng: &mut Rng, list: &[String], all: &[&str]| -> Option<String> {
        let options: Vec<&str> = list
            .iter()
            .flat_map(|v| {
                if v == "*" {
                    all.to_vec()
                } else {
                    vec![v.as_str()]
                }
            })
            .filter(|v| all.contains(v) || all.is_empty())
            .collect();
        (!options.is_empty()).then(|| rng.pick(&options).to_owned())
    };
    if !rule.non_resource_urls.is_empty() {
        let verb = choose(rng, &rule.verbs, &["get", "post"])?;
        let url = rng
            .pick(
                &rule
                    .non_resource_urls
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
            .to_owned();
        let path = match url.strip_suffix('*') {
            Some(prefix) => format!("{prefix}{}", rng.pick(&["", "cadvisor", "x/y"])),
            None => url,
        };
        return Some(req(&verb, &path));
    }
    let verbs = if rule.resource_names.is_empty() {
        VERBS
    } else {
        NAMED_VERBS
    };
    let verb = choose(rng, &rule.verbs, verbs)?;
    let group = choose(rng, &rule.api_groups, GROUPS)?;
    let resource = match choose(rng, &rule.resources, &[])?.as_str() {
        "*" => rng.pick(RESOURCES).to_owned(),
        "*/log" => format!("{}/log", rng.pick(&["pods", "deployments"])),
        "*/scale" => format!("{}/scale", rng.pick(&["pods", "deployments"])),
        other => other.to_owned(),
    };
    let name = if rule.resource_names.is_empty() {
        (rng.chance(50) && verb != "create").then(|| rng.pick(NAMES).to_owned())
    } else {
        Some(
            rng.pick(
                &rule
                    .resource_names
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
            )
            .to_owned(),
        )
    };
    let namespace = match &grant.namespace {
        Some(ns) => Some(ns.clone()),
        None => rng.chance(60).then(|| rng.pick(NAMESPACES).to_owned()),
    };
    let mut s = String::new();
    if let Some(ns) = &namespace {
        s.push_str(&format!("namespaces/{ns}/"));
    }
    s.push_str(if group.is_empty() { "core" } else { &group });
    s.push('/');
    s.push_str(&resource);
    if let Some(name) = name {
        s.push(':');
        s.push_str(&name);
    }
    Some(req(&verb, &s))
}

#[test]
fn minimal_policy_is_within_grants_and_covers_usage() {
    let subject = Subject::ServiceAccount(ServiceAccount::new("x", "app"));
    for seed in 0..500u64 {
        let mut rng = Rng(seed);
        let granted: Vec<Grant> = (0..1 + rng.below(5))
            .map(|_| random_grant(&mut rng))
            .collect();
        let mut usage = Vec::new();
        for _ in 0..rng.below(25) {
            let grant = &granted[rng.below(granted.len())];
            if let Some(request) = request_from(&mut rng, grant) {
                assert!(
                    allows(&granted, &request).is_some(),
                    "seed {seed}: generator drew {request} outside {grant:?}"
                );
                usage.push(request);
            }
        }
        let policy = minimal_policy(&subject, usage.iter().map(|r| (r, 1)));
        let minimal = policy.grants();
        for r in &usage {
            assert!(
                allows(&minimal, r).is_some(),
                "seed {seed}: {r} not allowed by the minimal policy"
            );
        }
        assert!(
            is_within(&minimal, &granted),
            "seed {seed}: minimal policy not within grants\ngranted: {granted:#?}\nminimal:\n{}",
            policy.to_yaml()
        );
        assert!(is_within(&minimal, &minimal));
    }
}

/// What the minimal policy's docs promise it allows, for a probe.
fn promised(observed: &[Request], probe: &Request) -> bool {
    observed.iter().any(|o| match (o, probe) {
        (Request::NonResource(o), Request::NonResource(p)) => o.verb == p.verb && o.path == p.path,
        (Request::Resource(o), Request::Resource(p)) => {
            o.verb == p.verb
                && o.api_group == p.api_group
                && o.combined_resource() == p.combined_resource()
                && (o.namespace.is_none() || o.namespace == p.namespace)
                && (o.name.is_none()
                    || o.name == p.name
                    || ["create", "list", "watch", "deletecollection"].contains(&o.verb.as_str()))
        }
        _ => false,
    })
}

fn random_request(rng: &mut Rng) -> Request {
    if rng.chance(10) {
        let path = rng.pick(&["/healthz", "/metrics", "/version"]);
        return req(rng.pick(&["get", "post"]), path);
    }
    let verb = rng.pick(VERBS);
    let mut s = String::new();
    if rng.chance(70) {
        s.push_str(&format!("namespaces/{}/", rng.pick(NAMESPACES)));
    }
    s.push_str(rng.pick(&["core", "apps"]));
    s.push('/');
    s.push_str(rng.pick(&["pods", "pods/log", "secrets", "deployments/scale"]));
    if rng.chance(60) {
        s.push(':');
        s.push_str(rng.pick(NAMES));
    }
    req(verb, &s)
}

#[test]
fn minimal_policy_allows_exactly_what_it_promises() {
    let subject = Subject::User("probe".into());
    for seed in 0..300u64 {
        let mut rng = Rng(seed ^ 0x9e37_79b9);
        let observed: Vec<Request> = (0..rng.below(12))
            .map(|_| random_request(&mut rng))
            .collect();
        let grants = minimal_policy(&subject, observed.iter().map(|r| (r, 1))).grants();
        for _ in 0..200 {
            let probe = random_request(&mut rng);
            assert_eq!(
                allows(&grants, &probe).is_some(),
                promised(&observed, &probe),
                "seed {seed}: probe {probe}, observed {observed:?}"
            );
        }
    }
}

use std::path::Path;

use super::*;
use crate::test_rng::Rng;

const POLICIES: &str = include_str!("../../tests/data/istio/policies.yaml");
const KUBECTL_LIST: &str = include_str!("../../tests/data/istio/kubectl-list.json");

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn req(principal: &str, method: &str, path: &str, ns: &str) -> Request {
    Request {
        principal: id(principal),
        method: method.into(),
        path: path.into(),
        host: None,
        port: None,
        target_namespace: ns.into(),
    }
}

fn imported() -> Imported {
    parse(POLICIES, Path::new("policies.yaml")).unwrap()
}

const FRONTEND: &str = "spiffe://cluster.local/ns/web/sa/frontend";

#[test]
fn reads_allow_policies_and_keeps_the_rest_aside() {
    let im = imported();
    let names: Vec<&str> = im.allow.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["httpbin", "orders-read", "mesh-health"]);
    assert_eq!(im.aside.len(), 1);
    assert_eq!(im.aside_counts.get(&Action::Deny), Some(&1));
    assert_eq!(im.skipped.get("v1 ConfigMap"), Some(&1));
    let httpbin = &im.allow[0];
    assert_eq!(
        httpbin.target.selector.get("app").map(String::as_str),
        Some("httpbin")
    );
    assert!(!httpbin.target.mesh_wide);
    assert!(im.allow[2].target.mesh_wide);
    assert_eq!(httpbin.rules[0].when[0].key, "request.auth.claims[iss]");
}

#[test]
fn principals_and_methods_and_paths() {
    let im = imported();
    let grants = grants_for(&im, &id(FRONTEND));
    // orders-read rules 0 and 1, mesh-health.
    assert_eq!(grants.len(), 3);
    assert_eq!(
        allows(&grants, &req(FRONTEND, "get", "/v1/orders/42", "shop")),
        Decision::Allow
    );
    assert_eq!(
        allows(&grants, &req(FRONTEND, "POST", "/v1/orders", "shop")),
        Decision::Allow
    );
    assert_eq!(
        allows(&grants, &req(FRONTEND, "POST", "/v1/orders/42", "shop")),
        Decision::Deny
    );
    assert_eq!(
        allows(&grants, &req(FRONTEND, "GET", "/v1/orders/42", "web")),
        Decision::Deny
    );
    // DENY policies are not applied.
    assert_eq!(
        grants
            .iter()
            .filter(|g| g.source.policy == "deny-delete")
            .count(),
        0
    );
}

#[test]
fn prefix_suffix_and_not_paths() {
    let im = imported();
    let batch = "spiffe://cluster.local/ns/batch/sa/nightly";
    let grants = grants_for(&im, &id(batch));
    assert_eq!(
        allows(&grants, &req(batch, "HEAD", "/v1/orders/7?x=1", "shop")),
        Decision::Allow
    );
    assert_eq!(
        allows(&grants, &req(batch, "GET", "/anything/healthz", "shop")),
        Decision::Allow
    );
    assert_eq!(
        allows(&grants, &req(batch, "GET", "/v1/orders/admin/1", "shop")),
        Decision::Deny
    );
    // Rule 1 names only the frontend.
    assert_eq!(
        allows(&grants, &req(batch, "POST", "/v1/orders", "shop")),
        Decision::Deny
    );
    // The mesh-wide policy applies in every namespace, except to notPrincipals.
    assert_eq!(
        allows(&grants, &req(batch, "GET", "/healthz", "elsewhere")),
        Decision::Allow
    );
    let untrusted = "spiffe://cluster.local/ns/untrusted/sa/x";
    let g = grants_for(&im, &id(untrusted));
    assert_eq!(
        allows(&g, &req(untrusted, "GET", "/healthz", "shop")),
        Decision::Deny
    );
}

#[test]
fn string_matching() {
    assert!(StringMatch::parse("abc*").matches("abc"));
    assert!(StringMatch::parse("abc*").matches("abcd"));
    assert!(!StringMatch::parse("abc*").matches("ab"));
    assert!(StringMatch::parse("*abc").matches("xabc"));
    assert!(StringMatch::parse("*").matches("x"));
    assert!(!StringMatch::parse("*").matches(""));
    assert!(StringMatch::parse("/a/*").covers(&StringMatch::parse("/a/b/*")));
    assert!(!StringMatch::parse("/a/b/*").covers(&StringMatch::parse("/a/*")));
    assert!(StringMatch::parse("*").covers(&StringMatch::parse("/x")));
    assert_eq!(StringMatch::parse("*a*"), StringMatch::Suffix("a*".into()));
}

#[test]
fn when_conditions_make_a_rule_conditional() {
    let im = imported();
    let sleep = "spiffe://cluster.local/ns/default/sa/sleep";
    let grants = grants_for(&im, &id(sleep));
    let httpbin: Vec<&IstioGrant> = grants
        .iter()
        .filter(|g| g.source.policy == "httpbin")
        .collect();
    assert_eq!(httpbin.len(), 1);
    assert!(httpbin[0].conditional);
    assert_eq!(
        allows(&grants, &req(sleep, "GET", "/info/x", "foo")),
        Decision::Conditional
    );
    // A conditional granted rule never covers a reduction.
    let m = minimal_policy(&id(sleep), [(&req(sleep, "GET", "/info/x", "foo"), 1)]);
    assert!(!is_within(&m.grants(), &grants));
    // Namespaces of the source come from the caller's identity.
    let dev = "spiffe://cluster.local/ns/dev/sa/any";
    let g = grants_for(&im, &id(dev));
    assert_eq!(
        allows(&g, &req(dev, "POST", "/data", "foo")),
        Decision::Conditional
    );
}

#[test]
fn a_policy_given_twice_is_replaced_by_the_later_one() {
    let policy = |action: &str, method: &str| {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\n\
             metadata: {{name: orders, namespace: shop}}\n\
             spec:\n  action: {action}\n  rules:\n  - from:\n    - source:\n        \
             principals: [cluster.local/ns/web/sa/frontend]\n    to:\n    - operation:\n        \
             methods: [{method}]\n"
        )
    };
    // In one file.
    let twice = format!("{}---\n{}", policy("ALLOW", "GET"), policy("ALLOW", "POST"));
    let im = parse(&twice, Path::new("twice.yaml")).unwrap();
    assert_eq!(im.replaced, ["shop/orders"]);
    let grants = grants_for(&im, &id(FRONTEND));
    assert_eq!(grants.len(), 1);
    assert_eq!(
        allows(&grants, &req(FRONTEND, "POST", "/x", "shop")),
        Decision::Allow
    );
    assert_eq!(
        allows(&grants, &req(FRONTEND, "GET", "/x", "shop")),
        Decision::Deny
    );
    // Across files, and across actions: a DENY replacing an ALLOW.
    let mut all = parse(&policy("ALLOW", "GET"), Path::new("a.yaml")).unwrap();
    all.merge(parse(&policy("ALLOW", "GET"), Path::new("b.yaml")).unwrap());
    assert_eq!((all.allow.len(), all.replaced.len()), (1, 1));
    all.merge(parse(&policy("DENY", "GET"), Path::new("c.yaml")).unwrap());
    assert!(all.allow.is_empty());
    assert_eq!(all.aside_counts.get(&Action::Deny), Some(&1));
    assert_eq!(all.replaced, ["shop/orders", "shop/orders"]);
}

#[test]
fn reads_a_kubectl_list() {
    let im = parse(KUBECTL_LIST, Path::new("list.json")).unwrap();
    assert_eq!(im.allow.len(), 1);
    assert_eq!(im.aside_counts.get(&Action::Custom), Some(&1));
    let checkout = "spiffe://cluster.local/ns/shop/sa/checkout";
    let grants = grants_for(&im, &id(checkout));
    let mut r = req(checkout, "POST", "/v1/charges", "payments");
    r.port = Some(8080);
    assert_eq!(allows(&grants, &r), Decision::Allow);
    r.port = Some(9090);
    assert_eq!(allows(&grants, &r), Decision::Deny);
}

#[test]
fn errors_name_document_and_place() {
    let text = "kind: ConfigMap\napiVersion: v1\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: n}\nspec:\n  rules:\n  - to:\n    - operation:\n        method: [GET]\n";
    let e = parse(text, Path::new("bad.yaml")).unwrap_err().to_string();
    assert!(e.contains("bad.yaml: document 1"), "{e}");
    assert!(e.contains("n/p"), "{e}");
    assert!(e.contains("method"), "{e}");
    let e = parse("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec: {action: PERMIT}\n", Path::new("x"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("default/p: spec.action"), "{e}");
    assert!(parse("a: [", Path::new("x")).is_err());
}

#[test]
fn identities_convert() {
    assert_eq!(
        istio_principal(&id(FRONTEND)),
        "cluster.local/ns/web/sa/frontend"
    );
    assert_eq!(
        principal_to_spiffe("cluster.local/ns/web/sa/frontend"),
        Some(id(FRONTEND))
    );
    assert_eq!(namespace_of(&id(FRONTEND)), Some("web"));
    assert_eq!(namespace_of(&id("spiffe://td/service")), None);
    assert_eq!(
        policy_name(&id(FRONTEND)),
        "overreach-minimal-cluster.local-ns-web-sa-frontend"
    );
}

#[test]
fn paths_generalize_to_the_longest_literal_prefix() {
    assert_eq!(istio_path("/v1/orders/{id}"), "/v1/orders/*");
    assert_eq!(istio_path("/v1/orders/{id}/items"), "/v1/orders/*");
    assert_eq!(istio_path("/v1/orders?limit=3"), "/v1/orders");
    assert_eq!(istio_path("/{id}"), "/*");
}

const EXPECTED_YAML: &str = r##"# Minimal access of spiffe://cluster.local/ns/web/sa/frontend observed by Overreach.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: "overreach-minimal-cluster.local-ns-web-sa-frontend"
  namespace: "shop"
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/web/sa/frontend"]
    to:
    # needed by 3 observed call(s):
    #   GET /v1/orders/{id} (2)
    #   GET /v1/orders/{id}/items (1)
    # a path ending in * is a prefix cut at a placeholder: it allows more than was observed
    - operation:
        methods: ["GET"]
        paths: ["/v1/orders/*"]
    # needed by 1 observed call(s):
    #   POST /v1/orders (1)
    - operation:
        methods: ["POST"]
        paths: ["/v1/orders"]
---
# Minimal access of spiffe://cluster.local/ns/web/sa/frontend observed by Overreach.
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: "overreach-minimal-cluster.local-ns-web-sa-frontend"
  namespace: "web"
spec:
  action: ALLOW
  rules:
  - from:
    - source:
        principals: ["cluster.local/ns/web/sa/frontend"]
    to:
    # needed by 1 observed call(s):
    #   GET /healthz (1)
    - operation:
        methods: ["GET"]
        paths: ["/healthz"]
"##;

#[test]
fn minimal_policy_yaml_round_trips() {
    let observed = [
        req(FRONTEND, "GET", "/v1/orders/{id}", "shop"),
        req(FRONTEND, "GET", "/v1/orders/{id}", "shop"),
        req(FRONTEND, "GET", "/v1/orders/{id}/items", "shop"),
        req(FRONTEND, "POST", "/v1/orders", "shop"),
        req(FRONTEND, "GET", "/healthz", "web"),
        req(
            "spiffe://cluster.local/ns/x/sa/other",
            "DELETE",
            "/",
            "shop",
        ),
    ];
    let m = minimal_policy(&id(FRONTEND), observed.iter().map(|r| (r, 1)));
    assert_eq!(m.policies.len(), 2);
    let shop = &m.policies[0];
    assert_eq!(shop.namespace, "shop");
    assert_eq!(shop.operations[0].methods, ["GET"]);
    assert_eq!(shop.operations[0].paths, ["/v1/orders/*"]);
    assert_eq!(shop.operations[0].needed_by.len(), 2);
    // Calls given with a count add up with the same calls given again.
    let counted = minimal_policy(&id(FRONTEND), [(&observed[0], 7), (&observed[1], 1)]);
    assert_eq!(
        counted.policies[0].operations[0].needed_by,
        [("GET /v1/orders/{id}".to_owned(), 8)]
    );
    assert_eq!(shop.operations[1].methods, ["POST"]);
    let yaml = m.to_yaml();
    assert_eq!(yaml, EXPECTED_YAML);
    assert!(yaml.contains("#   GET /v1/orders/{id} (2)"), "{yaml}");
    let back = parse(&yaml, Path::new("generated")).unwrap();
    assert_eq!(back.allow.len(), 2);
    let grants = grants_for(&back, &id(FRONTEND));
    for r in observed.iter().filter(|r| r.principal == id(FRONTEND)) {
        assert_eq!(allows(&grants, r), Decision::Allow, "{r:?}");
        assert_eq!(allows(&m.grants(), r), Decision::Allow, "{r:?}");
    }
    assert!(is_within(&grants, &m.grants()));
    assert!(is_within(&m.grants(), &grants));
    // Not within what the frontend is granted: the prefix /v1/orders/*
    // that /v1/orders/{id}/items needs includes the notPaths
    // /v1/orders/admin*.
    let granted = grants_for(&imported(), &id(FRONTEND));
    assert!(!is_within(&m.grants(), &granted));
    // Exact paths are: GET /healthz in web through the mesh-wide policy,
    // the rest through orders-read.
    let exact = minimal_policy(
        &id(FRONTEND),
        [
            req(FRONTEND, "GET", "/v1/orders/42", "shop"),
            req(FRONTEND, "GET", "/x/healthz", "shop"),
            req(FRONTEND, "POST", "/v1/orders", "shop"),
            req(FRONTEND, "GET", "/healthz", "web"),
        ]
        .iter()
        .map(|r| (r, 1)),
    );
    assert!(is_within(&exact.grants(), &granted));
    let broader = minimal_policy(
        &id(FRONTEND),
        [(&req(FRONTEND, "PUT", "/v1/orders/1", "shop"), 1)],
    );
    assert!(!is_within(&broader.grants(), &granted));
}

#[test]
fn selectors_are_compared_by_is_within() {
    let im = parse(KUBECTL_LIST, Path::new("list.json")).unwrap();
    let checkout = "spiffe://cluster.local/ns/shop/sa/checkout";
    let granted = grants_for(&im, &id(checkout));
    let mut m = minimal_policy(
        &id(checkout),
        [(&req(checkout, "POST", "/v1/charges", "payments"), 1)],
    );
    // Namespace-wide is broader than app=payments; and the grant has ports.
    assert!(!is_within(&m.grants(), &granted));
    m.policies[0]
        .selector
        .insert("app".into(), "payments".into());
    assert!(!is_within(&m.grants(), &granted));
}

const SEGMENTS: [&str; 5] = ["a", "b", "orders", "v1", "x"];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const NAMESPACES: [&str; 3] = ["shop", "web", "istio-system"];

fn random_path(rng: &mut Rng) -> String {
    (0..1 + rng.below(3))
        .map(|_| format!("/{}", rng.pick(&SEGMENTS)))
        .collect()
}

/// A concrete request the operation allows, or None when it found none.
fn draw(rng: &mut Rng, p: &SpiffeId, g: &IstioGrant) -> Option<Request> {
    let op = g.operations.get(rng.below(g.operations.len().max(1)));
    let method = match op.map(|o| &o.methods.values[..]) {
        Some([]) | None => rng.pick(&METHODS).to_string(),
        Some(ms) => match rng.pick(ms) {
            StringMatch::Exact(m) => m.clone(),
            _ => rng.pick(&METHODS).to_string(),
        },
    };
    let path = match op.map(|o| &o.paths.values[..]) {
        Some([]) | None => random_path(rng),
        Some(ps) => match rng.pick(ps) {
            StringMatch::Exact(e) => e.clone(),
            // A placeholder after a prefix stays under the prefix.
            StringMatch::Prefix(pre) if op.is_some_and(|o| o.paths.not_values.is_empty()) => {
                match rng.below(3) {
                    0 => format!("{pre}{{id}}"),
                    1 => format!("{pre}{{id}}/items"),
                    _ => format!("{pre}{}", rng.pick(&SEGMENTS)),
                }
            }
            StringMatch::Prefix(pre) => format!("{pre}{}", rng.pick(&SEGMENTS)),
            StringMatch::Suffix(s) => format!("{}{s}", random_path(rng)),
            StringMatch::Any => random_path(rng),
        },
    };
    let namespace = if g.target.mesh_wide {
        rng.pick(&NAMESPACES).to_string()
    } else {
        g.target.namespace.clone()
    };
    let r = Request {
        principal: p.clone(),
        method,
        path,
        host: None,
        port: None,
        target_namespace: namespace,
    };
    (allows(std::slice::from_ref(g), &r) == Decision::Allow).then_some(r)
}

fn random_grant(rng: &mut Rng, p: &SpiffeId) -> IstioGrant {
    let namespace = rng.pick(&NAMESPACES).to_string();
    let operations = (0..rng.below(3))
        .map(|_| {
            let methods = (0..rng.below(3))
                .map(|_| rng.pick(&METHODS).to_string())
                .collect::<Vec<_>>();
            let paths = (0..rng.below(3))
                .map(|_| {
                    let base = random_path(rng);
                    match rng.below(4) {
                        0 => format!("{base}/*"),
                        1 => format!("*{base}"),
                        2 => "*".to_owned(),
                        _ => base,
                    }
                })
                .collect::<Vec<_>>();
            let mut op = Operation {
                methods: values(&methods),
                paths: values(&paths),
                ..Operation::default()
            };
            if rng.below(4) == 0 {
                op.paths
                    .not_values
                    .push(StringMatch::parse(&format!("{}*", random_path(rng))));
            }
            op
        })
        .collect();
    IstioGrant {
        granted_at: None,
        principal: p.clone(),
        source: RuleRef {
            namespace: namespace.clone(),
            policy: "random".into(),
            rule: 0,
        },
        target: Target {
            mesh_wide: namespace == DEFAULT_ROOT_NAMESPACE,
            namespace,
            selector: BTreeMap::new(),
            target_refs: Vec::new(),
        },
        operations,
        conditions: Vec::new(),
        conditional: false,
    }
}

#[test]
fn property_minimal_policy_is_within_grants_and_allows_usage() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let p = id(FRONTEND);
    let mut checked = 0;
    for _ in 0..400 {
        let grants: Vec<IstioGrant> = (0..1 + rng.below(3))
            .map(|_| random_grant(&mut rng, &p))
            .collect();
        let mut usage = Vec::new();
        for _ in 0..rng.below(8) {
            let g = rng.pick(&grants).clone();
            if let Some(r) = draw(&mut rng, &p, &g) {
                usage.push(r);
            }
        }
        let m = minimal_policy(&p, usage.iter().map(|r| (r, 1)));
        let reduced = m.grants();
        for r in &usage {
            assert_eq!(
                allows(&reduced, r),
                Decision::Allow,
                "{r:?}\n{}",
                m.to_yaml()
            );
        }
        assert!(
            is_within(&reduced, &grants),
            "{usage:?}\n{grants:#?}\n{}",
            m.to_yaml()
        );
        let back = parse(&m.to_yaml(), Path::new("generated")).unwrap();
        assert!(is_within(&grants_for(&back, &p), &reduced));
        checked += usage.len();
    }
    assert!(checked > 300, "{checked}");
}

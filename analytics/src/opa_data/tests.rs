use std::path::Path;

use super::*;
use crate::glob::{Case, Glob};
use crate::test_rng::Rng;

const DATA: &str = include_str!("../../tests/data/opa/rbac-data.json");
const FRONTEND: &str = "spiffe://prod.example.org/ns/shop/sa/frontend";
const CHECKOUT: &str = "spiffe://prod.example.org/ns/shop/sa/checkout";
const ADMIN: &str = "spiffe://prod.example.org/ns/ops/sa/admin";

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn req(identity: &str, action: &str, resource: &str) -> Request {
    Request {
        identity: id(identity),
        action: action.into(),
        resource: resource.into(),
    }
}

fn data() -> OpaData {
    parse(DATA, Path::new("rbac-data.json")).unwrap()
}

#[test]
fn reads_the_documented_shape() {
    let d = data();
    assert_eq!(d.user_roles.len(), 3);
    assert_eq!(d.role_grants["cart-writer"][0].key, ResourceKey::Resource);
    assert_eq!(d.role_grants["payments"][0].key, ResourceKey::Type);
    assert_eq!(d.ignored_keys, ["version"]);
    assert_eq!(d.undefined_roles.iter().collect::<Vec<_>>(), ["ghost"]);
}

#[test]
fn roles_shared_by_two_identities() {
    let d = data();
    let f = grants_for(&d, &id(FRONTEND));
    let c = grants_for(&d, &id(CHECKOUT));
    assert_eq!(f.len(), 4);
    assert_eq!(c.len(), 3);
    for (grants, who) in [(&f, FRONTEND), (&c, CHECKOUT)] {
        assert!(allows(grants, &req(who, "GET", "/v1/orders/42")));
        assert!(allows(grants, &req(who, "get", "/v1/orders")));
    }
    assert!(allows(&c, &req(CHECKOUT, "POST", "/v1/charges")));
    assert!(!allows(&f, &req(FRONTEND, "POST", "/v1/charges")));
    // Grants of another identity never count.
    assert!(!allows(&c, &req(FRONTEND, "GET", "/v1/orders")));
}

#[test]
fn glob_matching() {
    let d = data();
    let f = grants_for(&d, &id(FRONTEND));
    assert!(allows(&f, &req(FRONTEND, "PUT", "/v1/carts/7/items")));
    // `*` crosses `/`.
    assert!(allows(&f, &req(FRONTEND, "PUT", "/v1/carts/a/b/items")));
    assert!(!allows(&f, &req(FRONTEND, "PUT", "/v1/carts/7/items/1")));
    assert!(allows(&f, &req(FRONTEND, "DELETE", "/v1/carts/7/items/1")));
    assert!(!allows(&f, &req(FRONTEND, "GET", "/v1/customers")));
    let a = grants_for(&d, &id(ADMIN));
    assert!(allows(&a, &req(ADMIN, "PATCH", "/anything")));
    assert!(resource_matches(r"/a/\*", "/a/*"));
    assert!(!resource_matches(r"/a/\*", "/a/b"));
}

#[test]
fn errors_name_the_json_pointer() {
    let cases = [
        (
            r#"{"user_roles": {"not-an-id": []}}"#,
            "/user_roles/not-an-id",
        ),
        (
            r#"{"user_roles": {"spiffe://td/ns/a/sa/b": ["r", 3]}}"#,
            "/user_roles/spiffe:~1~1td~1ns~1a~1sa~1b/1",
        ),
        (
            r#"{"role_grants": {"r": [{"action": "GET"}]}}"#,
            "/role_grants/r/0",
        ),
        (
            r#"{"role_grants": {"a/b": [{"action": "GET", "type": "/x", "verb": "x"}]}}"#,
            "/role_grants/a~1b/0/verb",
        ),
        (
            r#"{"role_grants": {"r": [{"action": "GET", "type": "/x", "resource": "/y"}]}}"#,
            "/role_grants/r/0/type",
        ),
        (r#"{"role_grants": []}"#, "/role_grants"),
        ("[]", ""),
    ];
    for (text, pointer) in cases {
        match parse(text, Path::new("d.json")) {
            Err(OpaError::Invalid { pointer: p, .. }) => {
                // serde_json::Map may keep keys in either order.
                assert!(
                    p == pointer || pointer.ends_with("/type") && p.ends_with("/resource"),
                    "{text}: {p}"
                )
            }
            other => panic!("{text}: {other:?}"),
        }
    }
    let e = parse("{\n  \"user_roles\": ,\n}", Path::new("d.json")).unwrap_err();
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn minimal_data_document() {
    let observed = [
        req(FRONTEND, "get", "/v1/orders/{id}"),
        req(FRONTEND, "GET", "/v1/orders/{id}"),
        req(FRONTEND, "PUT", "/v1/carts/{id}/items"),
        req(FRONTEND, "GET", "/v1/orders"),
        req(CHECKOUT, "POST", "/v1/charges"),
    ];
    let f = minimal_data(&id(FRONTEND), observed.iter().map(|r| (r, 1)));
    let c = minimal_data(&id(CHECKOUT), observed.iter().map(|r| (r, 1)));
    assert_eq!(
        f.role,
        "overreach-minimal:prod.example.org/ns/shop/sa/frontend"
    );
    assert_eq!(f.grants.len(), 3);
    assert_eq!(f.grants[1].resource, "/v1/orders/*");
    assert_eq!(f.grants[1].needed_by, [("/v1/orders/{id}".to_owned(), 2)]);
    // Calls given with a count add up with the same calls given again.
    let counted = minimal_data(&id(FRONTEND), [(&observed[0], 7), (&observed[1], 1)]);
    assert_eq!(
        counted.grants[0].needed_by,
        [("/v1/orders/{id}".to_owned(), 8)]
    );
    let json = to_json(&[f.clone(), c.clone()]);
    let expected = r#"{
  "user_roles": {
    "spiffe://prod.example.org/ns/shop/sa/checkout": [
      "overreach-minimal:prod.example.org/ns/shop/sa/checkout"
    ],
    "spiffe://prod.example.org/ns/shop/sa/frontend": [
      "overreach-minimal:prod.example.org/ns/shop/sa/frontend"
    ]
  },
  "role_grants": {
    "overreach-minimal:prod.example.org/ns/shop/sa/checkout": [
      {
        "action": "POST",
        "type": "/v1/charges"
      }
    ],
    "overreach-minimal:prod.example.org/ns/shop/sa/frontend": [
      {
        "action": "GET",
        "type": "/v1/orders"
      },
      {
        "action": "GET",
        "type": "/v1/orders/*"
      },
      {
        "action": "PUT",
        "type": "/v1/carts/*/items"
      }
    ]
  }
}
"#;
    assert_eq!(json, expected);
    assert_eq!(to_json(&[c.clone(), f.clone()]), expected);
    // It reads back, allows what was observed and is within the grants.
    let back = parse(&json, Path::new("generated")).unwrap();
    let d = data();
    for m in [&f, &c] {
        let regrants = grants_for(&back, &m.identity);
        assert_eq!(regrants, m.grants());
        for r in observed.iter().filter(|r| r.identity == m.identity) {
            assert!(allows(&regrants, r), "{r:?}");
        }
        assert!(is_within(&m.grants(), &grants_for(&d, &m.identity)));
    }
    let broader = minimal_data(
        &id(CHECKOUT),
        [(&req(CHECKOUT, "DELETE", "/v1/orders/1"), 1)],
    );
    assert!(!is_within(
        &broader.grants(),
        &grants_for(&d, &id(CHECKOUT))
    ));
}

#[test]
fn covers_is_a_subset_check() {
    let c = |g: &str, p: &str| covers(&tokens(g, false), &tokens(p, false));
    assert!(c("/a/*", "/a/*/b"));
    assert!(c("*", "*"));
    assert!(c("/a/*/b", "/a/x/b"));
    assert!(!c("/a/*/b", "/a/*"));
    assert!(!c("/a/x", "/a/*"));
    assert!(c("*/x", "/*/x"));
    assert!(c(r"/a/\*", r"/a/\*"));
    assert!(!c(r"/a/\*", "/a/*"));
}

const SEGMENTS: [&str; 6] = ["a", "b", "v1", "orders", "x*", r"y\"];
const ACTIONS: [&str; 5] = ["GET", "get", "POST", "DELETE", "*"];

fn random_pattern(rng: &mut Rng) -> String {
    let mut out = String::new();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 => out.push_str("/*"),
            1 => out.push('*'),
            _ => {
                out.push('/');
                let seg: &&str = rng.pick(&SEGMENTS);
                out.push_str(&Glob::escape(seg));
            }
        }
    }
    out
}

/// A concrete resource matching `pattern`: each `*` becomes a random run,
/// possibly with a placeholder segment.
fn instantiate(rng: &mut Rng, pattern: &str) -> String {
    let mut out = String::new();
    for tok in tokens(pattern, false) {
        match tok {
            Tok::Char(c) => out.push(c),
            Tok::Star => match rng.below(5) {
                0 => {}
                1 => out.push_str("/{id}"),
                2 => out.push_str("/{id}/"),
                _ => {
                    let seg: &&str = rng.pick(&SEGMENTS);
                    out.push_str(seg)
                }
            },
        }
    }
    out
}

#[test]
fn property_minimal_data_is_within_grants_and_allows_usage() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let identities: Vec<SpiffeId> = ["a", "b", "c"]
        .iter()
        .map(|n| SpiffeId::for_service_account("td", "ns", n).unwrap())
        .collect();
    let mut checked = 0;
    for _ in 0..300 {
        let mut d = OpaData::default();
        for r in 0..1 + rng.below(3) {
            let perms = (0..1 + rng.below(3))
                .map(|_| Permission {
                    action: rng.pick(&ACTIONS).to_string(),
                    resource: random_pattern(&mut rng),
                    key: ResourceKey::Type,
                })
                .collect();
            d.role_grants.insert(format!("role{r}"), perms);
        }
        let roles: Vec<String> = d.role_grants.keys().cloned().collect();
        for who in &identities {
            // Roles are often shared between identities.
            let mine = (0..1 + rng.below(2))
                .map(|_| rng.pick(&roles).clone())
                .collect();
            d.user_roles.insert(who.clone(), mine);
        }
        let who = rng.pick(&identities).clone();
        let granted = grants_for(&d, &who);
        let mut usage = Vec::new();
        for _ in 0..rng.below(8) {
            let g = rng.pick(&granted);
            let action = if g.action == "*" {
                rng.pick(&["PATCH", "GET"]).to_string()
            } else {
                g.action.clone()
            };
            let resource = instantiate(&mut rng, &g.resource);
            // The local matcher agrees with crate::glob.
            assert_eq!(
                resource_matches(&g.resource, &resource),
                Glob::new(&g.resource, Case::Sensitive).matches(&resource)
            );
            let r = Request {
                identity: who.clone(),
                action,
                resource,
            };
            assert!(allows(&granted, &r), "{r:?} {g:?}");
            usage.push(r);
        }
        let m = minimal_data(&who, usage.iter().map(|r| (r, 1)));
        let reduced = m.grants();
        for r in &usage {
            assert!(
                allows(&reduced, r),
                "{r:?}\n{}",
                to_json(std::slice::from_ref(&m))
            );
        }
        assert!(
            is_within(&reduced, &granted),
            "{usage:?}\n{granted:?}\n{}",
            to_json(std::slice::from_ref(&m))
        );
        let back = parse(&to_json(std::slice::from_ref(&m)), Path::new("generated")).unwrap();
        assert_eq!(grants_for(&back, &who), reduced);
        checked += usage.len();
    }
    assert!(checked > 300, "{checked}");
}

#[test]
fn merged_documents_define_each_others_roles() {
    let users = parse(
        &format!(r#"{{"user_roles": {{"{FRONTEND}": ["reader"]}}, "role_grants": {{}}}}"#),
        Path::new("users.json"),
    )
    .unwrap();
    assert!(users.undefined_roles.contains("reader"));
    let roles = parse(
        r#"{"user_roles": {}, "role_grants": {"reader": [{"action": "GET", "type": "/v1/*"}]}}"#,
        Path::new("roles.json"),
    )
    .unwrap();
    let mut all = users;
    all.merge(roles.clone());
    assert!(all.undefined_roles.is_empty(), "{:?}", all.undefined_roles);
    assert_eq!(grants_for(&all, &id(FRONTEND)).len(), 1);
    // The same role in a third file grants nothing twice.
    all.merge(roles);
    assert_eq!(grants_for(&all, &id(FRONTEND)).len(), 1);
}

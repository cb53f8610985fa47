//! audit2rbac's own demo log through the binary, against a deliberately
//! over-broad inventory for its one service account (ns1/sa1): edit-like
//! rules in ns1 through a RoleBinding, and read of everything cluster-wide.
//! The log ships no RBAC of its own; the inventory is
//! `tests/data/rbac/audit2rbac-sa1-broad.yaml`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use overreach_analytics::rbac;
use overreach_model::results::Suggestion;
use overreach_model::table::read_rows;
use overreach_model::DataDir;

const SA1: &str = "spiffe://cluster.local/ns/ns1/sa/sa1";

/// The demo log ingested into a fresh data directory (inside the returned
/// temporary one), and the broad inventory.
fn ingested() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let log = repo().join("../shared/data/k8s-audit-audit2rbac/demo-full-v1beta1.log");
    let inventory = repo().join("tests/data/rbac/audit2rbac-sa1-broad.yaml");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    overreach(&[
        "ingest",
        "--data",
        data.to_str().unwrap(),
        "--file",
        log.to_str().unwrap(),
    ]);
    (dir, data, inventory)
}

#[test]
fn a_broad_inventory_for_audit2rbacs_demo_shrinks_to_what_the_log_needs() {
    let (_dir, data, inventory) = ingested();
    let data_arg = data.to_str().unwrap();
    // The log covers 34 minutes; sa1 is first seen 2 minutes into a
    // 30-minute window, inside the tenth of slack.
    overreach(&[
        "analyze",
        "--data",
        data_arg,
        "--grants",
        inventory.to_str().unwrap(),
        "--observe",
        "30m",
    ]);
    let found: Vec<Suggestion> = read_rows(&DataDir::new(&data).suggestions()).unwrap();
    let mine: Vec<(&str, Option<&str>)> = found
        .iter()
        .filter(|s| s.subject == SA1)
        .map(|s| (s.kind.as_str(), s.grant.as_deref()))
        .collect();
    assert_eq!(
        mine,
        [
            ("minimal-policy", None),
            (
                "remove-binding",
                Some("RoleBinding ns1/sa1-edit -> ClusterRole edit-lite")
            ),
        ],
        "{found:#?}"
    );
    let minimal = &found[found
        .iter()
        .position(|s| s.subject == SA1 && s.kind == "minimal-policy")
        .unwrap()];
    assert!(
        minimal
            .explanation
            .contains("is granted 4 rules and used 1 of them"),
        "{}",
        minimal.explanation
    );
    assert_eq!(minimal.replacement, ["list core/pods cluster-wide"]);
    assert_eq!(minimal.sample_event_ids.len(), 1);
    // Read back as RBAC: within the grants, and it still lists pods.
    let reduced = rbac::parse(
        minimal.policy.as_deref().unwrap(),
        Path::new("reduced.yaml"),
    )
    .unwrap();
    let granted = rbac::load(&inventory).unwrap();
    let account = rbac::ServiceAccount::new("ns1", "sa1");
    let reduced = rbac::resolve(&reduced.rbac).grants_for(&account);
    let granted = rbac::resolve(&granted.rbac).grants_for(&account);
    assert_eq!(granted.len(), 4);
    assert!(rbac::is_within(&reduced, &granted));
    let list = rbac::parse_request("list", "namespaces/default/core/pods").unwrap();
    assert!(rbac::allows(&reduced, &list).is_some());
    let delete = rbac::parse_request("delete", "namespaces/ns1/core/pods:x").unwrap();
    assert!(rbac::allows(&granted, &delete).is_some() && rbac::allows(&reduced, &delete).is_none());
}

/// An analysis given another trust domain than ingest used would find
/// every grant unused; it says so and names the domain the accounts were
/// seen under.
#[test]
fn a_trust_domain_no_account_was_seen_under_is_named_with_the_right_one() {
    let (_dir, data, inventory) = ingested();
    let data_arg = data.to_str().unwrap();
    let analyze = |trust_domain: &str| {
        let out = std::process::Command::new(bin())
            .args(["analyze", "--data", data_arg, "--observe", "30m"])
            .args(["--grants", inventory.to_str().unwrap()])
            .args(["--trust-domain", trust_domain])
            .env("OVERREACH_LOG", "warn")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let wrong = analyze("prod.example.org");
    assert!(
        wrong.contains("under --trust-domain prod.example.org, but 1 did under cluster.local")
            && wrong.contains("pass --trust-domain cluster.local"),
        "{wrong}"
    );
    let right = analyze("cluster.local");
    assert!(!right.contains("--trust-domain"), "{right}");
}

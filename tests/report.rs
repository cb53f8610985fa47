//! The weekly right-sizing report on a simulated month, end to end through
//! the binary: `overreach simulate --format k8s-audit` writes a month of
//! audit events and the estate's RBAC inventory with deliberate
//! over-grants (and the list of them, `rbac-overgrants.json`, the ground
//! truth); ingest, `overreach report` in every format, the stored report
//! served by `overreach serve` on a real port, and the HTML page rendered
//! by headless Chromium, whose screenshot is kept as a test artifact.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use overreach_analytics::rbac;
use serde_json::Value;

const TRUST_DOMAIN: &str = "prod.acme.example";

/// Where the screenshot is kept: `$OVERREACH_ARTIFACTS`, or
/// `<target>/tmp/artifacts`.
fn artifacts() -> PathBuf {
    let dir = std::env::var_os("OVERREACH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `overreach report` of `week`, or of the latest event's week.
fn report(data: &Path, sim: &Path, week: Option<&str>, format: &str, out: &Path) {
    let grants = sim.join("rbac.yaml");
    let mut args = vec![
        "report",
        "--data",
        data.to_str().unwrap(),
        "--grants",
        grants.to_str().unwrap(),
        "--trust-domain",
        TRUST_DOMAIN,
        "--observe",
        "28d",
        "--format",
        format,
        "--out",
        out.to_str().unwrap(),
    ];
    if let Some(week) = week {
        args.extend(["--week", week]);
    }
    overreach(&args);
}

/// `RoleBinding ns/name -> Role ns/role`, as suggestions name bindings.
fn binding_label(o: &Value) -> String {
    let b = &o["binding"];
    let r = &o["role"];
    let ns = |v: &Value| match v["namespace"].as_str() {
        Some(ns) => format!("{ns}/"),
        None => String::new(),
    };
    let role_ns = if r["kind"] == "Role" {
        ns(b)
    } else {
        String::new()
    };
    format!(
        "{} {}{} -> {} {}{}",
        b["kind"].as_str().unwrap(),
        ns(b),
        b["name"].as_str().unwrap(),
        r["kind"].as_str().unwrap(),
        role_ns,
        r["name"].as_str().unwrap()
    )
}

/// `get, delete core/endpoints in namespace ledger`, as suggestions name rules.
fn rule_label(o: &Value) -> String {
    let rule = &o["rule"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let groups: Vec<String> = strings(&rule["apiGroups"])
        .into_iter()
        .map(|g| if g.is_empty() { "core".to_owned() } else { g })
        .collect();
    let names = strings(&rule["resourceNames"]);
    let names = if names.is_empty() {
        String::new()
    } else {
        format!(" [{}]", names.join(", "))
    };
    let scope = match o["applies_in"].as_str() {
        Some(ns) => format!(" in namespace {ns}"),
        None => " cluster-wide".to_owned(),
    };
    format!(
        "{} {}/{}{names}{scope}",
        strings(&rule["verbs"]).join(", "),
        groups.join("|"),
        strings(&rule["resources"]).join("|")
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn weekly_report_of_a_simulated_month() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let data = dir.path().join("data");
    overreach(&[
        "simulate",
        "--out",
        sim.to_str().unwrap(),
        "--format",
        "k8s-audit",
        "--identities",
        "60",
        "--days",
        "35",
        "--seed",
        "11",
    ]);
    let files: Vec<String> = std::fs::read_dir(sim.join("decisions"))
        .unwrap()
        .map(|e| e.unwrap().path().display().to_string())
        .collect();
    let mut args = vec![
        "ingest",
        "--format",
        "k8s-audit",
        "--trust-domain",
        TRUST_DOMAIN,
        "--data",
        data.to_str().unwrap(),
    ];
    for f in &files {
        args.extend(["--file", f.as_str()]);
    }
    overreach(&args);

    let overgrants: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(sim.join("rbac-overgrants.json")).unwrap())
            .unwrap();
    assert!(overgrants.len() >= 10, "the simulator over-grants");

    // The week of the last event (grant ages are the simulator's as of
    // then), and the week before it, stored first.
    let week = overreach_model::report::IsoWeek::containing(
        chrono::DateTime::parse_from_rfc3339(&last_event_time(&files))
            .unwrap()
            .with_timezone(&chrono::Utc),
    );
    let before = week.previous();
    let json_before = dir.path().join("before.json");
    report(&data, &sim, Some(&before.to_string()), "json", &json_before);
    // Without --week: the week of the latest stored event.
    let json = dir.path().join("report.json");
    report(&data, &sim, None, "json", &json);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let b: Value = serde_json::from_str(&std::fs::read_to_string(&json_before).unwrap()).unwrap();
    assert_eq!(r["week"], week.to_string());
    assert_eq!(
        r["changes"]["creep_score_previous"], b["totals"]["creep_score"],
        "the previous week is the stored one"
    );

    // Every deliberate over-grant outside its grace period is suggested
    // for removal, as a rule or with its whole binding; none in grace is.
    let suggestions = r["suggestions"].as_array().unwrap();
    let removal = |subject: &str, label: &str| {
        suggestions.iter().find(|s| {
            s["subject"] == subject
                && (s["kind"] == "remove-unused" || s["kind"] == "remove-binding")
                && s["grant"] == label
        })
    };
    let mut expected_unused = 0;
    let mut checked_verbs = 0;
    for o in &overgrants {
        let subject = o["subject"].as_str().unwrap();
        let (rule, binding) = (rule_label(o), binding_label(o));
        match (
            o["unused"].as_str().unwrap(),
            o["in_grace"].as_bool().unwrap(),
        ) {
            ("rule", false) => {
                expected_unused += 1;
                assert!(
                    removal(subject, &rule).is_some() || removal(subject, &binding).is_some(),
                    "no removal of `{rule}` ({binding}) for {subject}"
                );
            }
            ("rule", true) => {
                assert!(removal(subject, &rule).is_none(), "judged in grace: {rule}");
                assert!(
                    removal(subject, &binding).is_none(),
                    "judged in grace: {binding}"
                );
            }
            ("verbs", _) => {
                // Used for some verbs: the reduced policy keeps those only.
                let minimal = suggestions
                    .iter()
                    .find(|s| s["subject"] == subject && s["kind"] == "minimal-policy")
                    .unwrap_or_else(|| panic!("no reduced policy for {subject}"));
                let yaml = minimal["policy"].as_str().unwrap();
                let parsed = rbac::parse(yaml, Path::new("reduced.yaml")).unwrap();
                let sa = &o["service_account"];
                let account = rbac::ServiceAccount::new(
                    sa["namespace"].as_str().unwrap(),
                    sa["name"].as_str().unwrap(),
                );
                let reduced = rbac::resolve(&parsed.rbac).grants_for(&account);
                let group = o["rule"]["apiGroups"][0].as_str().unwrap();
                let group = if group.is_empty() { "core" } else { group };
                let resource = o["rule"]["resources"][0].as_str().unwrap();
                let ns = o["applies_in"].as_str().unwrap_or("ledger");
                let used: BTreeSet<&str> = o["used_verbs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect();
                assert!(!used.contains("delete"));
                let request =
                    rbac::parse_request("delete", &format!("namespaces/{ns}/{group}/{resource}:x"))
                        .unwrap();
                assert!(
                    rbac::allows(&reduced, &request).is_none(),
                    "the reduced policy of {subject} still deletes {resource}:\n{yaml}"
                );
                checked_verbs += 1;
            }
            (other, _) => panic!("unknown over-grant kind {other}"),
        }
    }
    assert!(checked_verbs > 0);
    // Generated object names collapse as the detectors' do: no reduced
    // rule lists more than --collapse-names (5) of them.
    for s in suggestions.iter().filter(|s| s["kind"] == "minimal-policy") {
        let parsed = rbac::parse(s["policy"].as_str().unwrap(), Path::new("reduced.yaml")).unwrap();
        for role in &parsed.rbac.roles {
            for rule in &role.rules {
                assert!(rule.resource_names.len() <= 5, "{}", s["policy"]);
            }
        }
    }
    let totals = &r["totals"];
    assert_eq!(
        totals["unused"], expected_unused,
        "unused grants are exactly the deliberate ones: {totals}"
    );
    assert!(totals["in_grace"].as_i64().unwrap() > 0);
    assert!(totals["unused_sensitive"].as_i64().unwrap() > 0);
    // Ranked by priority, every removal comes with a diff of the inventory.
    let priorities: Vec<i64> = suggestions
        .iter()
        .map(|s| s["priority"].as_i64().unwrap())
        .collect();
    assert!(
        priorities.windows(2).all(|w| w[0] >= w[1]),
        "{priorities:?}"
    );
    for s in suggestions {
        assert!(
            s["diff"]
                .as_str()
                .is_some_and(|d| d.starts_with("--- granted")),
            "{s}"
        );
    }
    let top = r["top_unused_sensitive"].as_array().unwrap();
    assert!(!top.is_empty());
    let creep = |i: &Value| i["creep_score"].as_i64();
    for i in r["identities"].as_array().unwrap() {
        if let Some(c) = creep(i) {
            assert!((0..=100).contains(&c), "{i}");
            let judged = i["granted"].as_i64().unwrap() - i["in_grace"].as_i64().unwrap();
            let unused = i["unused"].as_i64().unwrap();
            assert_eq!(
                c,
                (unused as f64 * 100.0 / judged as f64).round() as i64,
                "{i}"
            );
        }
    }

    // Markdown and CSV carry the same figures.
    let md = dir.path().join("report.md");
    report(&data, &sim, Some(&week.to_string()), "md", &md);
    let md = std::fs::read_to_string(&md).unwrap();
    assert!(
        md.starts_with(&format!("# Right-sizing report {week}")),
        "{md}"
    );
    let csv = dir.path().join("report.csv");
    report(&data, &sim, Some(&week.to_string()), "csv", &csv);
    let csv = std::fs::read_to_string(&csv).unwrap();
    assert!(csv.lines().count() > suggestions.len(), "{csv}");

    // The HTML page in a real browser: charts and the top identity.
    let html = dir.path().join("report.html");
    report(&data, &sim, Some(&week.to_string()), "html", &html);
    let shot = artifacts().join("weekly-report.png");
    let dom = chromium_dom(&format!("file://{}", html.display()), &shot);
    assert!(dom.contains("<svg"), "no chart in the page");
    assert!(
        dom.contains(top[0]["subject"].as_str().unwrap()),
        "the page lacks the top identity"
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    println!("screenshot of the weekly report: {}", shot.display());

    // Without an inventory there is nothing to report, and nothing is stored.
    let out = std::process::Command::new(bin())
        .args(["report", "--data", data.to_str().unwrap(), "--week"])
        .arg(week.to_string())
        .env("OVERREACH_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--grants FILE"), "{stderr}");

    // The stored report, served.
    let server = Server::start(&data);
    let served = server
        .get_json(&format!("/v1/reports/weekly?week={week}"))
        .await;
    assert_eq!(served["totals"], r["totals"]);
    let latest_served = server.get_json("/v1/reports/weekly").await;
    assert_eq!(latest_served["week"], week.to_string(), "the latest stored");
    let page = reqwest::get(format!(
        "{}/v1/reports/weekly?week={week}&format=html",
        server.base
    ))
    .await
    .unwrap();
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(page.text().await.unwrap().contains("<svg"));
    for (query, status) in [
        ("week=2026-W99", 400),
        ("week=1999-W01", 404),
        ("format=pdf", 400),
        ("weeks=1", 400),
    ] {
        let resp = reqwest::get(format!("{}/v1/reports/weekly?{query}", server.base))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), status, "{query}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["error"]["message"].as_str().unwrap().len() > 10,
            "{body}"
        );
    }
}

/// The latest `stageTimestamp` in the simulated audit files.
fn last_event_time(files: &[String]) -> String {
    let mut latest = String::new();
    for f in files {
        for line in std::fs::read_to_string(f).unwrap().lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if let Some(t) = v["stageTimestamp"].as_str() {
                if t > latest.as_str() {
                    latest = t.to_owned();
                }
            }
        }
    }
    latest
}

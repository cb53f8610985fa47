//! Detection quality end to end, through the binary: `simulate` a small
//! fixed estate, `ingest` it, `evaluate` the detectors against the labels,
//! and compare every finding with the golden list kept in
//! `tests/data/golden/detection-findings.json`.
//!
//! A change to a detector, a default or the simulator shows up as a diff of
//! that file. When the change is intended, regenerate it with
//! `OVERREACH_UPDATE_GOLDEN=1 cargo test --test detection` and review the
//! diff like code.

mod common;

use std::path::Path;

use common::overreach;

const GOLDEN: &str = "tests/data/golden/detection-findings.json";

/// One finding reduced to what should not change by accident.
fn summary(line: &serde_json::Value) -> serde_json::Value {
    let f = &line["finding"];
    serde_json::json!({
        "day": line["day"],
        "id": f["id"],
        "kind": f["kind"],
        "subject": f["subject"],
        "action": f["action"],
        "resource_pattern": f["resource_pattern"],
        "target": f["target"],
        "count": f["count"],
        "score": f["score"],
        "severity": f["severity"],
    })
}

#[test]
fn simulated_estate_findings_match_labels_and_golden_list() {
    let dir = tempfile::tempdir().unwrap();
    let sim = dir.path().join("sim");
    let data = dir.path().join("data");
    let sim_s = sim.to_str().unwrap();
    let simulated = overreach(&[
        "simulate",
        "--out",
        sim_s,
        "--seed",
        "11",
        "--identities",
        "40",
        "--days",
        "16",
        "--incident-days",
        "3",
        "--incidents-per-kind",
        "1",
        "--rate-scale",
        "0.5",
    ]);
    assert!(simulated.contains("10 incidents"), "{simulated}");
    let mut files: Vec<String> = std::fs::read_dir(sim.join("decisions"))
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .collect();
    files.sort();
    let mut ingest = vec!["ingest", "--data", data.to_str().unwrap()];
    for f in &files {
        ingest.extend(["--file", f.as_str()]);
    }
    let ingested = overreach(&ingest);
    assert!(ingested.contains("0 dead-lettered"), "{ingested}");

    let report_path = dir.path().join("report.json");
    let findings_path = dir.path().join("findings.jsonl");
    let table = overreach(&[
        "evaluate",
        "--data",
        data.to_str().unwrap(),
        "--labels",
        sim.join("labels.jsonl").to_str().unwrap(),
        "--clean-days",
        "2",
        "--json",
        report_path.to_str().unwrap(),
        "--findings-out",
        findings_path.to_str().unwrap(),
    ]);
    println!("{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    assert_eq!(report["incidents"], 10);
    let precision = report["precision"].as_f64().unwrap();
    let recall = report["recall"].as_f64().unwrap();
    assert!(precision >= 0.8, "precision {precision}\n{table}");
    assert!(recall >= 0.8, "recall {recall}\n{table}");
    let clean = report["clean_findings_per_identity_day"].as_f64().unwrap();
    assert!(
        clean < 1.0,
        "{clean} findings per identity per clean day\n{table}"
    );
    assert_eq!(report["clean_days"].as_array().unwrap().len(), 2);

    // Every finding explains itself and points at events.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&findings_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let f = &line["finding"];
        assert!(f["explanation"].as_str().unwrap().len() > 40, "{f:#?}");
        assert!(
            !f["sample_event_ids"].as_array().unwrap().is_empty(),
            "{f:#?}"
        );
        assert!(!f["controls"].as_array().unwrap().is_empty(), "{f:#?}");
        let score = f["score"].as_i64().unwrap();
        assert!((40..=100).contains(&score), "{f:#?}");
        let _: serde_json::Value = serde_json::from_str(f["evidence"].as_str().unwrap()).unwrap();
    }

    let actual: Vec<serde_json::Value> = lines.iter().map(summary).collect();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(GOLDEN);
    let rendered = serde_json::to_string_pretty(&actual).unwrap() + "\n";
    if std::env::var_os("OVERREACH_UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &rendered).unwrap();
        println!("rewrote {GOLDEN}");
        return;
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!("{GOLDEN}: {e}; run with OVERREACH_UPDATE_GOLDEN=1 to create it")
    });
    assert!(
        expected == rendered,
        "findings differ from {GOLDEN}; if the change is intended, rerun with \
         OVERREACH_UPDATE_GOLDEN=1 and review the diff.\nactual:\n{rendered}"
    );
}

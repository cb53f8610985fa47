//! End to end on the real Kubernetes audit sample, through the binary:
//! Kafka (librdkafka's in-process mock cluster, or a real Tansu broker)
//! -> Parquet -> analyze -> HTTP.
//!
//! Expected values were derived from the raw sample independently of the
//! product (a short Python script over the JSON lines: latest stage per
//! auditID, service accounts mapped to SPIFFE IDs, a 3-minute baseline
//! and a 1-minute detection window ending at the last event,
//! 2023-01-27T18:32:12.473826Z).

mod common;

use std::path::Path;

use common::*;
use rdkafka::mocking::MockCluster;

const ARGOCD_SERVER: &str = "spiffe://cluster.local/ns/argo-cd/sa/argocd-server";
const DASHBOARD: &str = "spiffe://cluster.local/ns/kubernetes-dashboard/sa/my-kubernetes-dashboard";

fn encode(subject: &str) -> String {
    subject
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Produce the sample into `topic`, ingest it until caught up, and check
/// what was stored, with pyarrow as the independent reader. `create`
/// extra flags make `produce` create the topic.
fn kafka_to_parquet(brokers: &str, topic: &str, create: &[&str], data: &Path) {
    let input = sample();
    let mut args = vec!["produce", "--brokers", brokers, "--topic", topic];
    args.extend_from_slice(create);
    args.push(input.to_str().unwrap());
    let produced = overreach(&args);
    assert!(produced.contains("produced 16563 messages"), "{produced}");
    let ingested = overreach(&[
        "ingest",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        &format!("{topic}-group"),
        "--data",
        data.to_str().unwrap(),
        "--until-caught-up",
    ]);
    assert!(ingested.contains("16563 records"), "{ingested}");

    let distinct = distinct_audit_ids(&sample());
    assert_eq!(distinct, 16_474);
    let days: Vec<String> = std::fs::read_dir(data.join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(days, ["date=2023-01-27"], "the sample's one day");
    let (rows, ids) = pyarrow_counts(data);
    assert_eq!(rows as usize, distinct, "one stored event per auditID");
    assert_eq!(ids as usize, distinct, "no duplicate event ids");
}

#[tokio::test(flavor = "multi_thread")]
async fn mock_kafka_to_findings_over_http() {
    let cluster = MockCluster::new(1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let topic = topic("e2e");
    // The mock cluster keeps at most 5 MiB per partition and the sample
    // is 8.9 MB, so spread it over 8 partitions.
    cluster.create_topic(&topic, 8, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    kafka_to_parquet(&brokers, &topic, &[], data);

    let analyzed = overreach(&[
        "analyze",
        "--data",
        data.to_str().unwrap(),
        "--baseline",
        "3m",
        "--detect",
        "1m",
    ]);
    assert!(
        analyzed.contains("16474 events of 46 identities"),
        "{analyzed}"
    );

    let server = Server::start(data);
    let health = server.get_json("/healthz").await;
    assert_eq!(health["status"], "ok");

    let identities = server.get_json("/v1/identities").await;
    assert_eq!(identities["identities"].as_array().unwrap().len(), 46);

    // Seven identities have no baseline, or too little of it (less than
    // half the 3m baseline, or fewer than 10 calls): one new-identity
    // finding each and no per-key findings. This list was checked with a
    // separate Python pass over the raw audit lines.
    let findings = server.get_json("/v1/findings").await;
    let all = findings["findings"].as_array().unwrap();
    let mut new_identities: Vec<&str> = all
        .iter()
        .filter(|f| f["kind"] == "new-identity")
        .map(|f| f["subject"].as_str().unwrap())
        .collect();
    new_identities.sort_unstable();
    let sa = |ns: &str, name: &str| format!("spiffe://cluster.local/ns/{ns}/sa/{name}");
    assert_eq!(
        new_identities,
        [
            sa("argo-cd", "argocd-application-controller"),
            sa("argo-cd", "argocd-server"),
            sa("cert-manager", "my-cert-manager"),
            sa("cert-manager", "my-cert-manager-cainjector"),
            sa("cert-manager", "my-cert-manager-startupapicheck"),
            sa("kube-prometheus-stack", "my-kube-prometheus-stack-grafana"),
            DASHBOARD.to_owned(),
        ]
    );
    // The skeleton flagged every new reach key: 164 findings. Generalized
    // keys, peers and the reporting threshold leave far fewer, each
    // explained, scored and backed by events.
    assert!(all.len() < 60, "{} findings", all.len());
    for f in all {
        assert!(!f["explanation"].as_str().unwrap().is_empty(), "{f:#?}");
        assert!((40..=100).contains(&f["score"].as_i64().unwrap()), "{f:#?}");
        assert!(
            !f["sample_event_ids"].as_array().unwrap().is_empty(),
            "{f:#?}"
        );
        assert!(!f["controls"].as_array().unwrap().is_empty(), "{f:#?}");
    }

    // argocd-server appeared 1-2 minutes before the detection window: one
    // finding that says so, not one per key.
    let argocd = server
        .get_json(&format!("/v1/findings?subject={}", encode(ARGOCD_SERVER)))
        .await;
    let argocd = argocd["findings"].as_array().unwrap();
    assert_eq!(argocd.len(), 1, "{argocd:#?}");
    assert_eq!(argocd[0]["kind"], "new-identity");
    let explanation = argocd[0]["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("was first seen 2023-01-27T18:3"),
        "{explanation}"
    );
    assert!(!argocd[0]["sample_event_ids"].as_array().unwrap().is_empty());

    // Its minimal policy is exactly the 14 (verb, resource) pairs it was
    // allowed to use in the sample.
    let recs = server
        .get_json(&format!(
            "/v1/recommendations?subject={}",
            encode(ARGOCD_SERVER)
        ))
        .await;
    let recs = recs["recommendations"].as_array().unwrap();
    let minimal: Vec<_> = recs
        .iter()
        .filter(|r| r["kind"] == "minimal-policy")
        .collect();
    assert_eq!(minimal.len(), 1, "{recs:#?}");
    let mut pairs: Vec<&str> = minimal[0]["replacement"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    pairs.sort_unstable();
    assert_eq!(
        pairs,
        [
            "get /version",
            "get namespaces/argo-cd/argoproj.io/appprojects",
            "get namespaces/argo-cd/core/configmaps",
            "get namespaces/argo-cd/core/secrets",
            "list namespaces/argo-cd/argoproj.io/applications",
            "list namespaces/argo-cd/argoproj.io/appprojects",
            "list namespaces/argo-cd/core/configmaps",
            "list namespaces/argo-cd/core/secrets",
            "update namespaces/argo-cd/core/configmaps",
            "update namespaces/argo-cd/core/secrets",
            "watch namespaces/argo-cd/argoproj.io/applications",
            "watch namespaces/argo-cd/argoproj.io/appprojects",
            "watch namespaces/argo-cd/core/configmaps",
            "watch namespaces/argo-cd/core/secrets",
        ]
    );
    assert_eq!(minimal[0]["used_count"], 45);

    let detail = server
        .get_json(&format!("/v1/identities/{}", encode(ARGOCD_SERVER)))
        .await;
    assert_eq!(detail["identity"]["subject"], ARGOCD_SERVER);
    assert_eq!(detail["findings"].as_array().unwrap().len(), 1);

    // The built-in page, rendered by a real browser, lists the finding.
    let shot = std::env::temp_dir().join("overreach-page.png");
    let dom = chromium_dom(&format!("{}/", server.base), &shot);
    assert!(
        dom.contains("my-kubernetes-dashboard"),
        "page lacks the new identity"
    );
    assert!(dom.contains("new-reach"), "page lacks findings");
    drop(cluster);
}

#[tokio::test(flavor = "multi_thread")]
async fn tansu_broker_kafka_to_parquet() {
    let brokers = std::env::var("OVERREACH_TEST_BROKERS").unwrap_or_else(|_| {
        panic!(
            "OVERREACH_TEST_BROKERS is not set: this test needs a real Kafka-protocol broker. \
             Run `bash scripts/test.sh`, which installs and starts Tansu, or start one \
             (`tansu broker --storage-engine memory://tansu/`) and set OVERREACH_TEST_BROKERS=127.0.0.1:9092"
        )
    });
    println!("real broker: tansu at {brokers}");
    let dir = tempfile::tempdir().unwrap();
    kafka_to_parquet(
        &brokers,
        &topic("tansu"),
        &["--create-partitions", "3"],
        dir.path(),
    );
    println!("tansu: stored 16474 events from 16563 records, read back by pyarrow");
}

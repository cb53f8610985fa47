//! Each decoder on real lines from `../shared/data` (see its SOURCES.md).

use std::path::PathBuf;

use overreach_ingest::decode::{decode, DecodeOptions, Format, Reason};
use overreach_ingest::files::for_each_line;
use overreach_model::{Decision, SubjectKind};

fn shared(path: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/data")
        .join(path);
    assert!(
        p.exists(),
        "{} is missing: these tests read the shared sample data beside the repository",
        p.display()
    );
    p
}

fn lines(path: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for_each_line(&shared(path), |_, l| {
        out.push(l.to_vec());
        Ok(())
    })
    .unwrap();
    out
}

#[test]
fn kubernetes_v1_perfspec_every_line_decodes() {
    let lines = lines("k8s-audit-perfspec/audit-logs.v1.jsonl.gz");
    assert_eq!(lines.len(), 16_563);
    let opts = DecodeOptions::default();
    let mut denies = 0;
    for (i, line) in lines.iter().enumerate() {
        let d = decode(line, &format!("perfspec:{}", i + 1), &opts)
            .unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        assert_eq!(d.event.format, "k8s-audit");
        denies += usize::from(d.event.decision == Decision::Deny);
    }
    // SOURCES.md: 71 responses with status 403 (and no 401).
    assert_eq!(denies, 71);
}

#[test]
fn kubernetes_service_account_becomes_spiffe_id() {
    let lines = lines("k8s-audit-perfspec/audit-logs.v1.jsonl.gz");
    let line = lines
        .iter()
        .find(|l| {
            let s = String::from_utf8_lossy(l);
            s.contains("system:serviceaccount:argo-cd:argocd-server") && s.contains("\"objectRef\"")
        })
        .expect("argocd-server makes requests in the sample");
    let e = decode(line, "x:1", &DecodeOptions::default())
        .unwrap()
        .event;
    assert_eq!(
        e.subject,
        "spiffe://cluster.local/ns/argo-cd/sa/argocd-server"
    );
    assert_eq!(e.subject_kind, SubjectKind::Spiffe);
    assert_eq!(e.trust_domain.as_deref(), Some("cluster.local"));

    let other_domain = DecodeOptions {
        trust_domain: "prod.example.org".into(),
        ..DecodeOptions::default()
    };
    let e = decode(line, "x:1", &other_domain).unwrap().event;
    assert_eq!(
        e.subject,
        "spiffe://prod.example.org/ns/argo-cd/sa/argocd-server"
    );
}

#[test]
fn kubernetes_resources_and_stages() {
    // The first line: a kubelet watching one configmap, answered 403.
    let lines = lines("k8s-audit-perfspec/audit-logs.v1.jsonl.gz");
    let first = decode(&lines[0], "x:1", &DecodeOptions::default()).unwrap();
    let e = &first.event;
    assert_eq!(e.subject, "system:node:k8s-node-1-perfspec");
    assert_eq!(e.subject_kind, SubjectKind::System);
    assert_eq!(e.action, "watch");
    assert_eq!(
        e.resource,
        "namespaces/kube-flannel/core/configmaps:kube-flannel-cfg"
    );
    assert_eq!(
        e.resource_pattern,
        "namespaces/kube-flannel/core/configmaps"
    );
    assert_eq!(e.namespace.as_deref(), Some("kube-flannel"));
    assert_eq!(e.decision, Decision::Deny);
    assert_eq!(
        e.source_id.as_deref(),
        Some("a1b86d5d-6f8f-4058-9710-19f5cc40a68a")
    );
    assert_eq!(e.time.to_rfc3339(), "2023-01-27T18:28:08.129781+00:00");

    // The same request logged again at ResponseComplete shares the event id.
    let later = lines
        .iter()
        .skip(1)
        .map(|l| decode(l, "x:2", &DecodeOptions::default()).unwrap())
        .find(|d| d.event.source_id == e.source_id)
        .expect("the watch is logged again when it completes");
    assert_eq!(later.event.event_id, e.event_id);
    assert!(later.stage_rank > first.stage_rank);
}

#[test]
fn kubernetes_requests_without_an_object_keep_their_path() {
    let line = lines("k8s-audit-perfspec/audit-logs.v1.jsonl.gz")
        .into_iter()
        .find(|l| {
            String::from_utf8_lossy(l)
                .contains("\"auditID\":\"de328861-2bc8-4764-8605-1b380b768e13\"")
        })
        .expect("argocd-server's GET /version is in the sample");
    let e = decode(&line, "x:1", &DecodeOptions::default())
        .unwrap()
        .event;
    assert_eq!(e.action, "get");
    assert_eq!(e.resource, "/version");
    assert_eq!(e.resource_pattern, "/version");
    assert!(e
        .attributes
        .unwrap()
        .contains("\"requestURI\":\"/version\""));
}

#[test]
fn kubernetes_v1beta1_impersonation_and_denies() {
    let opts = DecodeOptions::default();
    let events: Vec<_> = lines("k8s-audit-audit2rbac/demo-full-v1beta1.log")
        .iter()
        .enumerate()
        .map(|(i, l)| {
            decode(l, &format!("demo:{}", i + 1), &opts)
                .unwrap_or_else(|e| panic!("line {}: {e}", i + 1))
                .event
        })
        .collect();
    assert_eq!(events.len(), 757);
    let sa = "spiffe://cluster.local/ns/ns1/sa/sa1";
    assert!(
        events.iter().any(|e| e.subject == sa),
        "impersonated service account"
    );
    let bob_denied = events
        .iter()
        .filter(|e| e.subject == "bob" && e.decision == Decision::Deny)
        .count();
    assert!(bob_denied > 0);
    let impersonated = events.iter().find(|e| e.subject == "bob").unwrap();
    assert!(impersonated
        .attributes
        .as_deref()
        .unwrap()
        .contains("\"impersonatedBy\":\"system:admin\""));
}

#[test]
fn kubernetes_falco_fixtures_decode_or_are_rejected_with_a_reason() {
    let dir = shared("k8s-audit-falco");
    let mut decoded = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Most fixtures are one pretty-printed event; one is JSON lines.
        let records: Vec<String> = match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => vec![v.to_string()],
            Err(_) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(String::from)
                .collect(),
        };
        for record in records {
            match decode(record.as_bytes(), "falco:1", &DecodeOptions::default()) {
                Ok(d) => {
                    decoded += 1;
                    assert_eq!(d.event.format, "k8s-audit");
                }
                Err(e) => assert!(path.ends_with("fal_01_003.json"), "{}: {e}", path.display()),
            }
        }
    }
    // SOURCES.md: 51 valid events; `fal_01_003.json` is `{"kind": 0}`.
    assert_eq!(decoded, 51);
}

#[test]
fn opa_decision_logs_decode() {
    let opts = DecodeOptions::default();
    let lines = lines("derived-opa-envoy/decisions.jsonl.gz");
    assert_eq!(lines.len(), 6_806);
    let events: Vec<_> = lines
        .iter()
        .map(|l| decode(l, "opa:1", &opts).unwrap().event)
        .collect();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.decision == Decision::Deny)
            .count(),
        17
    );
    let e = &events[0];
    assert_eq!(
        e.subject,
        "spiffe://cluster.local/ns/kube-flannel/sa/flannel"
    );
    assert_eq!(e.action, "GET");
    assert_eq!(e.resource_pattern, "/api/v1/nodes");
    assert_eq!(
        e.target.as_deref(),
        Some("spiffe://cluster.local/ns/default/sa/kube-apiserver")
    );
    assert_eq!(e.policy.as_deref(), Some("envoy/authz/allow"));
    assert_eq!(
        e.source_id.as_deref(),
        Some("80e5491b-7629-4d63-872a-25cc8ba4b820")
    );
    assert_eq!(e.format, "opa");

    let forced = DecodeOptions {
        format: Format::Opa,
        opa_principal_path: vec![
            "input".into(),
            "attributes".into(),
            "destination".into(),
            "principal".into(),
        ],
        ..DecodeOptions::default()
    };
    let e = decode(&lines[0], "opa:1", &forced).unwrap().event;
    assert_eq!(
        e.subject,
        "spiffe://cluster.local/ns/default/sa/kube-apiserver"
    );
}

#[test]
fn forced_format_rejects_other_shapes() {
    let line = &lines("derived-opa-envoy/decisions.jsonl.gz")[0];
    let k8s_only = DecodeOptions {
        format: Format::K8sAudit,
        ..DecodeOptions::default()
    };
    let err = decode(line, "opa:1", &k8s_only).unwrap_err();
    assert_eq!(err.reason, Reason::MissingField, "{err}");
}

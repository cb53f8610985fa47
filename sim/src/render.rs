//! Wire formats: one simulated decision as one line of native JSON, an OPA
//! decision log event or a Kubernetes audit event, each exactly as
//! `overreach-ingest`'s decoders read them.
//!
//! Not every format carries every event ([`Renderer::carries`]); the rest
//! are skipped and counted in the summary:
//! - `opa` (Envoy ext_authz) never sees Kubernetes API calls, so
//!   controllers' traffic is skipped; it has no credential expiry either,
//!   so no `weak-credential` incidents are placed;
//! - `k8s-audit` carries only Kubernetes API calls, and service accounts
//!   map to one trust domain (the decoder's `--trust-domain`), so only
//!   prod (`prod.acme.example`) API calls are written: controllers and the
//!   API incidents placed on them.

use chrono::{DateTime, SecondsFormat};
use serde::Serialize;
use serde_json::json;

use crate::estate::{Estate, TargetRef, ENVS, PROD};
use crate::generate::{Cred, Ev};
use crate::rng::Rng;
use crate::SimFormat;

/// RFC 3339 UTC with milliseconds.
pub fn rfc3339(t_us: i64) -> String {
    rfc3339_with(t_us, SecondsFormat::Millis)
}

/// RFC 3339 UTC with whole seconds, as Kubernetes writes
/// `creationTimestamp`.
pub fn rfc3339_secs(t_us: i64) -> String {
    rfc3339_with(t_us, SecondsFormat::Secs)
}

fn rfc3339_with(t_us: i64, precision: SecondsFormat) -> String {
    DateTime::from_timestamp_micros(t_us)
        .unwrap_or_default()
        .to_rfc3339_opts(precision, true)
}

#[derive(Serialize)]
struct Native<'a> {
    id: &'a str,
    time: &'a str,
    subject: &'a str,
    action: &'a str,
    resource: &'a str,
    target: &'a str,
    decision: &'static str,
    policy: &'a str,
    reason: &'a str,
    context: NativeContext<'a>,
}

#[derive(Serialize)]
struct NativeContext<'a> {
    environment: &'static str,
    namespace: &'a str,
    source_address: &'a str,
    credential: NativeCredential,
}

#[derive(Serialize)]
struct NativeCredential {
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
}

pub struct Renderer {
    format: SimFormat,
    seed: u64,
    apiservers: Vec<String>,
    partner_ids: Vec<String>,
}

const DENY_REASON: &str = "RBAC: access denied";

impl Renderer {
    pub fn new(format: SimFormat, seed: u64, estate: &Estate) -> Self {
        Self {
            format,
            seed,
            apiservers: (0..ENVS.len())
                .map(|e| estate.target_id(TargetRef::ApiServer(e)))
                .collect(),
            partner_ids: estate.partners.iter().map(|p| p.subject.clone()).collect(),
        }
    }

    fn target<'a>(&'a self, estate: &'a Estate, t: TargetRef) -> &'a str {
        match t {
            TargetRef::Workload(j) => &estate.workloads[j].subject,
            TargetRef::Partner(j) => &self.partner_ids[j],
            TargetRef::ApiServer(e) => &self.apiservers[e],
        }
    }

    /// Whether this format can carry the event.
    pub fn carries(&self, estate: &Estate, ev: &Ev) -> bool {
        match self.format {
            SimFormat::Native => true,
            SimFormat::Opa => !matches!(ev.target, TargetRef::ApiServer(_)),
            SimFormat::K8sAudit => {
                ev.target == TargetRef::ApiServer(PROD) && estate.workloads[ev.subject].env == PROD
            }
        }
    }

    /// Appends one line (with its newline) for event number `seq`.
    pub fn line(
        &self,
        estate: &Estate,
        ev: &Ev,
        seq: u64,
        out: &mut Vec<u8>,
    ) -> serde_json::Result<()> {
        let w = &estate.workloads[ev.subject];
        let route = &estate.routes[ev.route];
        let source = format!(
            "{}.{}.{}.{}",
            ev.source[0], ev.source[1], ev.source[2], ev.source[3]
        );
        let target = self.target(estate, ev.target);
        let policy = match ev.target {
            TargetRef::Workload(j) => format!(
                "{}/{}",
                estate.workloads[j].namespace,
                if route.method == "GET" {
                    "read"
                } else {
                    "write"
                }
            ),
            TargetRef::Partner(_) => "egress/partner".to_owned(),
            TargetRef::ApiServer(_) => "kubernetes/rbac".to_owned(),
        };
        match self.format {
            SimFormat::Native => {
                let (kind, expires) = match ev.cred {
                    Cred::Svid { kind, expires_us } => (kind.name(), Some(expires_us)),
                    Cred::StaticKey { expires_us } => ("static-key", expires_us),
                    Cred::ExpiredJwt { expires_us } => ("jwt-svid", Some(expires_us)),
                };
                let reason = if ev.allow {
                    format!("allowed by {policy}")
                } else {
                    DENY_REASON.to_owned()
                };
                let record = Native {
                    id: &format!("sim-{}-{seq:012}", self.seed),
                    time: &rfc3339(ev.t_us),
                    subject: &w.subject,
                    action: &route.method,
                    resource: &ev.resource,
                    target,
                    decision: if ev.allow { "allow" } else { "deny" },
                    policy: &policy,
                    reason: &reason,
                    context: NativeContext {
                        environment: ENVS[w.env].name,
                        namespace: &w.namespace,
                        source_address: &source,
                        credential: NativeCredential {
                            kind,
                            expires_at: expires.map(|t| rfc3339_with(t, SecondsFormat::Secs)),
                        },
                    },
                };
                serde_json::to_writer(&mut *out, &record)?;
            }
            SimFormat::Opa => {
                let port = 32768 + (seq % 28000);
                let host = match ev.target {
                    TargetRef::Workload(j) => {
                        let t = &estate.workloads[j];
                        format!("{}.{}.svc.cluster.local", t.name, t.namespace)
                    }
                    _ => target.split('/').nth(2).unwrap_or("").to_owned(),
                };
                let mut result = json!({ "allowed": ev.allow });
                if !ev.allow {
                    result["reason"] = json!(DENY_REASON);
                }
                let record = json!({
                    "decision_id": self.uuid(seq),
                    "timestamp": rfc3339_with(ev.t_us, SecondsFormat::Micros),
                    "path": "envoy/authz/allow",
                    "labels": {"id": "overreach-sim", "version": "0.70.0"},
                    "input": {"attributes": {
                        "source": {
                            "principal": w.subject,
                            "address": {"socketAddress": {"address": source, "portValue": port}},
                        },
                        "destination": {"principal": target},
                        "request": {"http": {
                            "method": route.method,
                            "path": ev.resource,
                            "host": host,
                            "protocol": "HTTP/1.1",
                        }},
                    }},
                    "result": result,
                });
                serde_json::to_writer(&mut *out, &record)?;
            }
            SimFormat::K8sAudit => {
                let k = route.k8s.as_ref();
                let name = k.and_then(|k| k.name_at).map(|at| {
                    let rest = ev.resource.get(at..).unwrap_or("");
                    rest.split('/').next().unwrap_or("").to_owned()
                });
                let mut uri = ev.resource.clone();
                if route.method == "watch" {
                    uri.push_str("?watch=true");
                }
                let code = match (ev.allow, route.method.as_str()) {
                    (false, _) => 403,
                    (true, "create") => 201,
                    _ => 200,
                };
                let mut object = json!({
                    "resource": k.map(|k| k.resource),
                    "apiVersion": k.map(|k| k.version),
                });
                if let Some(k) = k {
                    if !k.group.is_empty() {
                        object["apiGroup"] = json!(k.group);
                    }
                    if let Some(ns) = &k.namespace {
                        object["namespace"] = json!(ns);
                    }
                    if let Some(sub) = k.subresource {
                        object["subresource"] = json!(sub);
                    }
                }
                if let Some(name) = &name {
                    object["name"] = json!(name);
                }
                let mut status = json!({"metadata": {}, "code": code});
                let mut annotations = json!({
                    "authorization.k8s.io/decision": if ev.allow { "allow" } else { "forbid" },
                });
                if ev.allow {
                    annotations["authorization.k8s.io/reason"] = json!(format!(
                        "RBAC: allowed by RoleBinding \"{0}/{1}\" of Role \"{0}\" to ServiceAccount \"{0}/{1}\"",
                        w.name, w.namespace
                    ));
                } else {
                    status["status"] = json!("Failure");
                    status["reason"] = json!("Forbidden");
                    status["message"] = json!(format!(
                        "{} is forbidden: User \"system:serviceaccount:{}:{}\" cannot {} resource",
                        k.map_or("resource", |k| k.resource),
                        w.namespace,
                        w.name,
                        route.method
                    ));
                }
                let received = rfc3339_with(ev.t_us, SecondsFormat::Micros);
                let done = rfc3339_with(
                    ev.t_us + 1_000 + (seq % 40) as i64 * 1_000,
                    SecondsFormat::Micros,
                );
                let record = json!({
                    "kind": "Event",
                    "apiVersion": "audit.k8s.io/v1",
                    "level": "Metadata",
                    "auditID": self.uuid(seq),
                    "stage": "ResponseComplete",
                    "requestURI": uri,
                    "verb": route.method,
                    "user": {
                        "username": format!("system:serviceaccount:{}:{}", w.namespace, w.name),
                        "uid": self.uuid(ev.subject as u64 ^ 0xffff_0000_0000),
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", w.namespace), "system:authenticated"],
                    },
                    "sourceIPs": [source],
                    "userAgent": format!("{}/v1.4.2 (linux/amd64) kubernetes/controller", w.name),
                    "objectRef": object,
                    "responseStatus": status,
                    "requestReceivedTimestamp": received,
                    "stageTimestamp": done,
                    "annotations": annotations,
                });
                serde_json::to_writer(&mut *out, &record)?;
            }
        }
        out.push(b'\n');
        Ok(())
    }

    /// A UUID-shaped id, deterministic in the seed and `n`.
    fn uuid(&self, n: u64) -> String {
        let mut r = Rng::derive(self.seed, &[6, n]);
        let (a, b) = (r.next_u64(), r.next_u64());
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xfff,
            0x8000 | (b >> 48) & 0x3fff,
            b & 0xffff_ffff_ffff
        )
    }
}

//! Kubernetes audit events (`audit.k8s.io/v1` and `v1beta1`).
//!
//! The subject is the impersonated user when there is one, else the
//! authenticated user; service accounts become SPIFFE IDs. The resource is
//! written `[namespaces/NS/]GROUP/RESOURCE[/SUBRESOURCE][:NAME]`, with
//! `core` for the legacy API group so the form reads back unambiguously;
//! its pattern drops the name. Requests without an object (`/healthz`,
//! `/apis`) keep their path. The decision comes from the authorizer's
//! annotation, else from a 401/403 status.
//!
//! One request is logged once per stage; all stages share an event id, so
//! the sink keeps one event per request (the latest stage wins).

use std::collections::BTreeMap;

use overreach_model::{Decision, DecisionEvent};
use serde::Deserialize;
use serde_json::json;

use super::mask::{generalize_path, mask_path};
use super::subject::classify;
use super::{parse_time, stable_id, DecodeError, DecodeOptions, Decoded};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    api_version: Option<String>,
    #[serde(rename = "auditID")]
    audit_id: String,
    stage: Option<String>,
    #[serde(rename = "requestURI")]
    request_uri: Option<String>,
    verb: String,
    user: UserInfo,
    impersonated_user: Option<UserInfo>,
    #[serde(rename = "sourceIPs")]
    source_ips: Option<Vec<String>>,
    user_agent: Option<String>,
    object_ref: Option<ObjectRef>,
    response_status: Option<Status>,
    request_received_timestamp: Option<String>,
    stage_timestamp: Option<String>,
    /// v1beta1 only.
    timestamp: Option<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct UserInfo {
    username: Option<String>,
    groups: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectRef {
    resource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    api_group: Option<String>,
    api_version: Option<String>,
    subresource: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    code: Option<i64>,
    reason: Option<String>,
    message: Option<String>,
}

const DECISION_ANNOTATION: &str = "authorization.k8s.io/decision";
const REASON_ANNOTATION: &str = "authorization.k8s.io/reason";

fn stage_rank(stage: Option<&str>) -> u8 {
    match stage {
        Some("RequestReceived") => 0,
        Some("ResponseStarted") => 1,
        Some("ResponseComplete") => 2,
        Some("Panic") => 3,
        _ => 0,
    }
}

/// `(resource, pattern, namespace)` of the request.
fn resource_of(object: Option<&ObjectRef>, uri: Option<&str>) -> (String, String, Option<String>) {
    match object.and_then(|o| o.resource.as_deref().map(|r| (o, r))) {
        Some((o, resource)) => {
            let group = o
                .api_group
                .as_deref()
                .filter(|g| !g.is_empty())
                .or_else(|| {
                    o.api_version
                        .as_deref()
                        .and_then(|v| v.split_once('/'))
                        .map(|(g, _)| g)
                })
                .unwrap_or("core");
            let mut pattern = String::new();
            if let Some(ns) = o.namespace.as_deref().filter(|ns| !ns.is_empty()) {
                pattern.push_str("namespaces/");
                pattern.push_str(ns);
                pattern.push('/');
            }
            pattern.push_str(group);
            pattern.push('/');
            pattern.push_str(resource);
            if let Some(sub) = o.subresource.as_deref().filter(|s| !s.is_empty()) {
                pattern.push('/');
                pattern.push_str(sub);
            }
            let concrete = match o.name.as_deref().filter(|n| !n.is_empty()) {
                Some(name) => format!("{pattern}:{name}"),
                None => pattern.clone(),
            };
            (
                concrete,
                pattern,
                o.namespace.clone().filter(|ns| !ns.is_empty()),
            )
        }
        None => {
            let path = mask_path(uri.unwrap_or("/"));
            let path = path.split('?').next().unwrap_or("/").to_owned();
            let pattern = generalize_path(&path);
            (path, pattern, None)
        }
    }
}

pub(crate) fn decode(
    text: &str,
    origin: &str,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    let e: Event = serde_json::from_str(text).map_err(DecodeError::from_json)?;
    let principal = e
        .impersonated_user
        .as_ref()
        .and_then(|u| u.username.as_deref())
        .or(e.user.username.as_deref())
        .ok_or_else(|| DecodeError::missing("user.username"))?;
    let subject = classify(principal, &opts.trust_domain)?;
    let (time_field, time_value) = [
        ("requestReceivedTimestamp", &e.request_received_timestamp),
        ("timestamp", &e.timestamp),
        ("stageTimestamp", &e.stage_timestamp),
    ]
    .into_iter()
    .find_map(|(f, v)| v.as_deref().map(|v| (f, v)))
    .ok_or_else(|| DecodeError::missing("requestReceivedTimestamp"))?;
    let time = parse_time(time_field, time_value)?;
    let (resource, resource_pattern, namespace) =
        resource_of(e.object_ref.as_ref(), e.request_uri.as_deref());
    let code = e.response_status.as_ref().and_then(|s| s.code);
    let decision = match e.annotations.get(DECISION_ANNOTATION).map(String::as_str) {
        Some("forbid") => Decision::Deny,
        Some("allow") => Decision::Allow,
        _ if matches!(code, Some(401 | 403)) => Decision::Deny,
        _ => Decision::Allow,
    };
    let reason = e.annotations.get(REASON_ANNOTATION).cloned().or_else(|| {
        e.response_status
            .as_ref()
            .filter(|_| decision == Decision::Deny)
            .and_then(|s| s.message.clone().or_else(|| s.reason.clone()))
    });
    let action = e.verb;
    let event_id = stable_id(&[
        "k8s-audit",
        &e.audit_id,
        &subject.id,
        &action,
        &resource_pattern,
    ]);
    let impersonated_by = e.impersonated_user.as_ref().and(e.user.username.as_deref());
    let groups = e
        .impersonated_user
        .as_ref()
        .and_then(|u| u.groups.as_ref())
        .or(e.user.groups.as_ref());
    let mut attributes = json!({
        "stage": e.stage,
        "apiVersion": e.api_version,
        "requestURI": e.request_uri.as_deref().map(mask_path),
        "responseCode": code,
    });
    if let Some(map) = attributes.as_object_mut() {
        if let Some(by) = impersonated_by {
            map.insert("impersonatedBy".into(), json!(by));
        }
        if let Some(groups) = groups {
            map.insert("groups".into(), json!(groups));
        }
        if let Some(ua) = &e.user_agent {
            map.insert("userAgent".into(), json!(ua));
        }
        map.retain(|_, v| !v.is_null());
    }
    Ok(Decoded {
        stage_rank: stage_rank(e.stage.as_deref()),
        event: DecisionEvent {
            event_id,
            source_id: Some(e.audit_id),
            time,
            subject: subject.id,
            subject_kind: subject.kind,
            trust_domain: subject.trust_domain,
            action,
            resource,
            resource_pattern,
            target: None,
            decision,
            policy: None,
            reason,
            environment: None,
            namespace,
            source_address: e.source_ips.and_then(|ips| ips.into_iter().next()),
            credential_kind: None,
            credential_expires_at: None,
            format: "k8s-audit".into(),
            origin: origin.to_owned(),
            attributes: Some(attributes.to_string()),
        },
    })
}

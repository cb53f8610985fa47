//! OPA decision logs (EventV1), by default in the input shape of Envoy's
//! ext_authz filter: principal at `input.attributes.source.principal`
//! (configurable), method and path under `input.attributes.request.http`,
//! the decision in `result` (a boolean, or `result.allowed`).
//!
//! Headers are never stored (they carry bearer tokens); queries are
//! masked. What OPA itself erased or masked is recorded as such.

use overreach_model::{Decision, DecisionEvent};
use serde::Deserialize;
use serde_json::{json, Value};

use super::mask::{generalize_path, mask_path};
use super::subject::classify;
use super::{parse_time, stable_id, DecodeError, DecodeOptions, Decoded, Reason};

#[derive(Deserialize)]
struct Event {
    decision_id: Option<String>,
    path: Option<String>,
    input: Option<Value>,
    result: Option<Value>,
    timestamp: String,
    labels: Option<serde_json::Map<String, Value>>,
    requested_by: Option<String>,
    erased: Option<Vec<String>>,
    masked: Option<Vec<String>>,
}

fn walk<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, key| v.get(key))
}

fn string_at(input: &Value, dotted: &str) -> Result<Option<String>, DecodeError> {
    let path: Vec<&str> = dotted.split('.').collect();
    match walk(input, &path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(DecodeError::new(
            Reason::WrongType,
            format!("`{dotted}` is {other}, expected a string"),
        )),
    }
}

fn required(input: &Value, dotted: &str) -> Result<String, DecodeError> {
    string_at(input, dotted)?.ok_or_else(|| DecodeError::missing(dotted))
}

fn decision_of(result: Option<&Value>) -> Result<Decision, DecodeError> {
    let allowed = match result {
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::Object(o)) => o
            .get("allowed")
            .or_else(|| o.get("allow"))
            .and_then(Value::as_bool),
        _ => None,
    };
    match (allowed, result) {
        (Some(true), _) => Ok(Decision::Allow),
        (Some(false), _) => Ok(Decision::Deny),
        (None, None) => Err(DecodeError::missing("result")),
        (None, Some(other)) => Err(DecodeError::new(
            Reason::WrongType,
            format!("`result` is {other}, expected a boolean or an object with `allowed`"),
        )),
    }
}

pub(crate) fn decode(
    text: &str,
    origin: &str,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    let e: Event = serde_json::from_str(text).map_err(DecodeError::from_json)?;
    let root = json!({ "input": e.input.unwrap_or(Value::Null) });
    let principal_path = opts.opa_principal_path.join(".");
    let principal = walk(
        &root,
        &opts
            .opa_principal_path
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    )
    .ok_or_else(|| DecodeError::missing(&principal_path))?
    .as_str()
    .ok_or_else(|| {
        DecodeError::new(
            Reason::WrongType,
            format!("`{principal_path}` is not a string"),
        )
    })?;
    let subject = classify(principal, &opts.trust_domain)?;
    let action = required(&root, "input.attributes.request.http.method")?;
    let raw_path = required(&root, "input.attributes.request.http.path")?;
    let resource = mask_path(&raw_path);
    let resource_pattern = generalize_path(&resource);
    let target = match string_at(&root, "input.attributes.destination.principal")? {
        Some(t) => Some(t),
        None => string_at(&root, "input.attributes.request.http.host")?,
    };
    let decision = decision_of(e.result.as_ref())?;
    let reason = e
        .result
        .as_ref()
        .and_then(|r| r.get("reason"))
        .and_then(Value::as_str)
        .map(String::from);
    let time = parse_time("timestamp", &e.timestamp)?;
    let source_address = string_at(
        &root,
        "input.attributes.source.address.socketAddress.address",
    )?;
    let event_id = match &e.decision_id {
        Some(id) => stable_id(&["opa", id, &subject.id, &action, &resource]),
        None => stable_id(&["opa-origin", origin]),
    };
    let mut attributes = serde_json::Map::new();
    for (key, value) in [
        ("labels", e.labels.map(Value::Object)),
        ("requested_by", e.requested_by.map(Value::String)),
        ("erased", e.erased.map(|v| json!(v))),
        ("masked", e.masked.map(|v| json!(v))),
        (
            "host",
            string_at(&root, "input.attributes.request.http.host")?.map(Value::String),
        ),
    ] {
        if let Some(value) = value {
            attributes.insert(key.into(), value);
        }
    }
    let credential_kind = (subject.kind == overreach_model::SubjectKind::Spiffe
        && principal_path == "input.attributes.source.principal")
        .then(|| "x509-svid".to_owned());
    Ok(Decoded {
        stage_rank: 0,
        event: DecisionEvent {
            event_id,
            source_id: e.decision_id,
            time,
            subject: subject.id,
            subject_kind: subject.kind,
            trust_domain: subject.trust_domain,
            action,
            resource,
            resource_pattern,
            target,
            decision,
            policy: e.path,
            reason,
            environment: None,
            namespace: None,
            source_address,
            credential_kind,
            credential_expires_at: None,
            format: "opa".into(),
            origin: origin.to_owned(),
            attributes: Some(Value::Object(attributes).to_string()),
        },
    })
}

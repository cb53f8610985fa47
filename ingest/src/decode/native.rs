//! Overreach's native JSON: one decision per object, fields as in
//! DESIGN.md ("Native JSON").

use overreach_model::{Decision, DecisionEvent};
use serde::Deserialize;

use super::mask::{generalize_path, mask_path};
use super::subject::classify;
use super::{parse_time, stable_id, DecodeError, DecodeOptions, Decoded, Reason};

#[derive(Deserialize)]
struct Record {
    id: Option<String>,
    time: String,
    subject: String,
    action: String,
    resource: String,
    target: Option<String>,
    decision: String,
    policy: Option<String>,
    reason: Option<String>,
    #[serde(default)]
    context: Context,
}

#[derive(Deserialize, Default)]
struct Context {
    environment: Option<String>,
    namespace: Option<String>,
    source_address: Option<String>,
    credential: Option<Credential>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct Credential {
    kind: Option<String>,
    expires_at: Option<String>,
}

pub(crate) fn parse_decision(value: &str) -> Result<Decision, DecodeError> {
    match value.to_ascii_lowercase().as_str() {
        "allow" | "allowed" | "permit" => Ok(Decision::Allow),
        "deny" | "denied" | "forbid" => Ok(Decision::Deny),
        _ => Err(DecodeError::new(
            Reason::InvalidValue,
            format!("`decision` is {value:?}, expected \"allow\" or \"deny\""),
        )),
    }
}

pub(crate) fn decode(
    text: &str,
    origin: &str,
    opts: &DecodeOptions,
) -> Result<Decoded, DecodeError> {
    let r: Record = serde_json::from_str(text).map_err(DecodeError::from_json)?;
    let subject = classify(&r.subject, &opts.trust_domain)?;
    if let Some(target) = r.target.as_deref().filter(|t| t.starts_with("spiffe:")) {
        overreach_model::SpiffeId::parse(target)
            .map_err(|e| DecodeError::new(Reason::InvalidSpiffeId, format!("target: {e}")))?;
    }
    let time = parse_time("time", &r.time)?;
    let decision = parse_decision(&r.decision)?;
    let credential_expires_at = r
        .context
        .credential
        .as_ref()
        .and_then(|c| c.expires_at.as_deref())
        .map(|t| parse_time("context.credential.expires_at", t))
        .transpose()?;
    let resource = mask_path(&r.resource);
    let resource_pattern = generalize_path(&resource);
    let event_id = match &r.id {
        Some(id) => stable_id(&["native", id, &subject.id, &r.action, &resource]),
        None => stable_id(&["native-origin", origin]),
    };
    let attributes =
        (!r.context.rest.is_empty()).then(|| serde_json::Value::Object(r.context.rest).to_string());
    Ok(Decoded {
        event: DecisionEvent {
            event_id,
            source_id: r.id,
            time,
            subject: subject.id,
            subject_kind: subject.kind,
            trust_domain: subject.trust_domain,
            action: r.action,
            resource,
            resource_pattern,
            target: r.target,
            decision,
            policy: r.policy,
            reason: r.reason,
            environment: r.context.environment,
            namespace: r.context.namespace,
            source_address: r.context.source_address,
            credential_kind: r.context.credential.and_then(|c| c.kind),
            credential_expires_at,
            format: "native".into(),
            origin: origin.to_owned(),
            attributes,
        },
        stage_rank: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{decode as decode_any, DecodeOptions, Reason};
    use overreach_model::{Decision, SubjectKind};

    const GOOD: &str = r#"{"id": "d-1", "time": "2026-11-30T12:00:00.123Z",
 "subject": "spiffe://prod.example.org/ns/payments/sa/api",
 "action": "GET", "resource": "/v1/accounts/4711?access_token=s3cret",
 "target": "spiffe://prod.example.org/ns/ledger/sa/db",
 "decision": "allow", "policy": "ledger/read", "reason": "role reader",
 "context": {"environment": "prod", "namespace": "payments",
             "source_address": "10.1.2.3", "region": "eu-1",
             "credential": {"kind": "x509-svid", "expires_at": "2026-11-30T13:00:00Z"}}}"#;

    #[test]
    fn decodes_the_documented_shape() {
        let d = decode_any(GOOD.as_bytes(), "f:1", &DecodeOptions::default()).unwrap();
        let e = d.event;
        assert_eq!(e.subject, "spiffe://prod.example.org/ns/payments/sa/api");
        assert_eq!(e.subject_kind, SubjectKind::Spiffe);
        assert_eq!(e.trust_domain.as_deref(), Some("prod.example.org"));
        assert_eq!(e.resource, "/v1/accounts/4711?access_token=***");
        assert_eq!(e.resource_pattern, "/v1/accounts/{id}");
        assert_eq!(e.decision, Decision::Allow);
        assert_eq!(e.credential_kind.as_deref(), Some("x509-svid"));
        assert_eq!(e.environment.as_deref(), Some("prod"));
        assert_eq!(e.attributes.as_deref(), Some(r#"{"region":"eu-1"}"#));
        assert_eq!(e.time.to_rfc3339(), "2026-11-30T12:00:00.123+00:00");
        assert_eq!(e.format, "native");
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            (GOOD.replace("\"GET\"", "5"), Reason::WrongType),
            (
                GOOD.replace("\"action\": \"GET\",", ""),
                Reason::MissingField,
            ),
            (
                GOOD.replace("prod.example.org/ns/payments", "prod.example.org//payments"),
                Reason::InvalidSpiffeId,
            ),
            (
                GOOD.replace("2026-11-30T12:00:00.123Z", "yesterday"),
                Reason::InvalidTimestamp,
            ),
            (GOOD.replace("\"allow\"", "\"maybe\""), Reason::InvalidValue),
        ];
        for (text, reason) in cases {
            let err = decode_any(text.as_bytes(), "f:1", &DecodeOptions::default()).unwrap_err();
            assert_eq!(err.reason, reason, "{err}");
        }
    }
}

//! Decoders: one wire type per source format, converted explicitly into
//! the canonical event. Decoding is pure: bytes and an origin in, an event
//! or a [`DecodeError`] out.

mod hash;
mod k8s;
pub mod mask;
mod native;
mod opa;
mod subject;

use std::fmt;

use chrono::{DateTime, Utc};

use overreach_model::DecisionEvent;
use serde::Deserialize;

pub use hash::stable_id;

/// Which decoder to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Pick the decoder per record from its shape.
    #[default]
    Auto,
    Native,
    K8sAudit,
    Opa,
}

impl Format {
    pub const NAMES: [&'static str; 4] = ["auto", "native", "k8s-audit", "opa"];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Native => "native",
            Format::K8sAudit => "k8s-audit",
            Format::Opa => "opa",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Format::Auto),
            "native" => Ok(Format::Native),
            "k8s-audit" | "k8s" | "kubernetes" => Ok(Format::K8sAudit),
            "opa" => Ok(Format::Opa),
            other => Err(format!(
                "unknown format {other:?}: expected one of {}",
                Format::NAMES.join(", ")
            )),
        }
    }
}

/// How records are decoded.
#[derive(Debug, Clone)]
pub struct DecodeOptions {
    pub format: Format,
    /// Trust domain for identities derived from Kubernetes service accounts.
    pub trust_domain: String,
    /// Where the principal sits in an OPA decision's input, as path segments.
    pub opa_principal_path: Vec<String>,
    /// Records larger than this are dead-lettered without being parsed.
    pub max_record_bytes: usize,
    /// Events dated before this are implausible (a broken clock, a unit
    /// mix-up) and dead-lettered.
    pub earliest: DateTime<Utc>,
    /// Events dated after this are implausible; `None` accepts any future.
    pub latest: Option<DateTime<Utc>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            format: Format::Auto,
            trust_domain: "cluster.local".into(),
            opa_principal_path: "input.attributes.source.principal"
                .split('.')
                .map(String::from)
                .collect(),
            max_record_bytes: 1 << 20,
            earliest: DateTime::from_timestamp(946_684_800, 0).unwrap_or_default(), // 2000-01-01
            latest: None,
        }
    }
}

/// Why a record was dead-lettered. The names are stable: they label
/// metrics and dead-letter entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    Empty,
    TooLarge,
    InvalidUtf8,
    InvalidJson,
    UnknownFormat,
    MissingField,
    WrongType,
    InvalidValue,
    InvalidSpiffeId,
    InvalidTimestamp,
    ImplausibleTimestamp,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Empty => "empty",
            Reason::TooLarge => "too-large",
            Reason::InvalidUtf8 => "invalid-utf8",
            Reason::InvalidJson => "invalid-json",
            Reason::UnknownFormat => "unknown-format",
            Reason::MissingField => "missing-field",
            Reason::WrongType => "wrong-type",
            Reason::InvalidValue => "invalid-value",
            Reason::InvalidSpiffeId => "invalid-spiffe-id",
            Reason::InvalidTimestamp => "invalid-timestamp",
            Reason::ImplausibleTimestamp => "implausible-timestamp",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    pub reason: Reason,
    pub detail: String,
}

impl DecodeError {
    pub(crate) fn new(reason: Reason, detail: impl Into<String>) -> Self {
        Self {
            reason,
            detail: detail.into(),
        }
    }

    pub(crate) fn missing(field: &str) -> Self {
        Self::new(Reason::MissingField, format!("missing field `{field}`"))
    }

    /// Classifies a serde_json error: syntax and truncation are invalid
    /// JSON, data errors are missing fields or wrong types.
    pub(crate) fn from_json(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        let detail = e.to_string();
        let reason = match e.classify() {
            Category::Data if detail.starts_with("missing field") => Reason::MissingField,
            Category::Data => Reason::WrongType,
            Category::Syntax | Category::Eof | Category::Io => Reason::InvalidJson,
        };
        Self { reason, detail }
    }
}

/// A decoded record. `stage_rank` orders the stages of one Kubernetes
/// request (a later stage carries the final status); other formats use 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub event: DecisionEvent,
    pub stage_rank: u8,
}

/// Decodes one record (a Kafka message or a file line).
pub fn decode(bytes: &[u8], origin: &str, opts: &DecodeOptions) -> Result<Decoded, DecodeError> {
    if bytes.len() > opts.max_record_bytes {
        return Err(DecodeError::new(
            Reason::TooLarge,
            format!(
                "record is {} bytes, over the limit of {} bytes",
                bytes.len(),
                opts.max_record_bytes
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        DecodeError::new(
            Reason::InvalidUtf8,
            format!("invalid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    if text.trim().is_empty() {
        return Err(DecodeError::new(Reason::Empty, "empty record"));
    }
    let format = match opts.format {
        Format::Auto => sniff(text)?,
        f => f,
    };
    let decoded = match format {
        Format::Native => native::decode(text, origin, opts),
        Format::K8sAudit => k8s::decode(text, origin, opts),
        Format::Opa => opa::decode(text, origin, opts),
        Format::Auto => unreachable!("sniff never returns Auto"),
    }?;
    let time = decoded.event.time;
    if time < opts.earliest || opts.latest.is_some_and(|latest| time > latest) {
        return Err(DecodeError::new(
            Reason::ImplausibleTimestamp,
            format!(
                "event time {} is outside the plausible range {} to {}",
                time.to_rfc3339(),
                opts.earliest.to_rfc3339(),
                opts.latest.map_or("any".into(), |t| t.to_rfc3339())
            ),
        ));
    }
    Ok(decoded)
}

/// Just enough of a record to tell the formats apart, without building a
/// tree of values.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    api_version: Option<String>,
    #[serde(rename = "auditID")]
    audit_id: Option<serde::de::IgnoredAny>,
    decision_id: Option<serde::de::IgnoredAny>,
    input: Option<serde::de::IgnoredAny>,
    subject: Option<serde::de::IgnoredAny>,
    action: Option<serde::de::IgnoredAny>,
}

fn sniff(text: &str) -> Result<Format, DecodeError> {
    let probe: Probe = serde_json::from_str(text).map_err(|e| {
        let err = DecodeError::from_json(e);
        if err.reason == Reason::InvalidJson {
            err
        } else {
            DecodeError::new(
                Reason::UnknownFormat,
                format!("not a decision record: {}", err.detail),
            )
        }
    })?;
    if probe.audit_id.is_some()
        || probe
            .api_version
            .as_deref()
            .is_some_and(|v| v.starts_with("audit.k8s.io/"))
    {
        Ok(Format::K8sAudit)
    } else if probe.decision_id.is_some() || probe.input.is_some() {
        Ok(Format::Opa)
    } else if probe.subject.is_some() || probe.action.is_some() {
        Ok(Format::Native)
    } else {
        Err(DecodeError::new(
            Reason::UnknownFormat,
            "not a Kubernetes audit event (no auditID), OPA decision (no decision_id/input) \
             or native record (no subject or action)",
        ))
    }
}

pub(crate) fn parse_time(
    field: &str,
    value: &str,
) -> Result<chrono::DateTime<chrono::Utc>, DecodeError> {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            DecodeError::new(
                Reason::InvalidTimestamp,
                format!("`{field}` is {value:?}, not an RFC 3339 time: {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> DecodeOptions {
        DecodeOptions::default()
    }

    #[test]
    fn rejects_bytes_that_are_not_records() {
        let cases: [(&[u8], Reason); 7] = [
            (b"", Reason::Empty),
            (b"   ", Reason::Empty),
            (
                b"{\"subject\": \"spiffe://a/b\", \"act",
                Reason::InvalidJson,
            ),
            (b"\xff\xfe{}", Reason::InvalidUtf8),
            (b"[1, 2, 3]", Reason::UnknownFormat),
            (b"{\"hello\": \"world\"}", Reason::UnknownFormat),
            (b"42", Reason::UnknownFormat),
        ];
        for (bytes, reason) in cases {
            let err = decode(bytes, "t/0/0", &opts()).unwrap_err();
            assert_eq!(
                err.reason,
                reason,
                "{:?}: {err}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn refuses_implausible_times() {
        let line = br#"{"time":"1970-01-01T00:00:01Z","subject":"u","action":"get","resource":"/","decision":"allow"}"#;
        let err = decode(line, "f:1", &opts()).unwrap_err();
        assert_eq!(err.reason, Reason::ImplausibleTimestamp, "{err}");
        let future = br#"{"time":"2090-01-01T00:00:00Z","subject":"u","action":"get","resource":"/","decision":"allow"}"#;
        assert!(
            decode(future, "f:1", &opts()).is_ok(),
            "no upper bound by default"
        );
        let bounded = DecodeOptions {
            latest: DateTime::from_timestamp(2_000_000_000, 0),
            ..opts()
        };
        assert_eq!(
            decode(future, "f:1", &bounded).unwrap_err().reason,
            Reason::ImplausibleTimestamp
        );
    }

    #[test]
    fn refuses_oversized_records_before_parsing() {
        let opts = DecodeOptions {
            max_record_bytes: 10,
            ..opts()
        };
        let err = decode(b"{\"subject\": \"x\"}", "f:1", &opts).unwrap_err();
        assert_eq!(err.reason, Reason::TooLarge);
        assert!(err.detail.contains("16 bytes"), "{err}");
    }
}

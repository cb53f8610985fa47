//! Multi-document YAML (JSON is YAML too), the form Kubernetes and Istio
//! manifests come in: the shared first step of the RBAC and Istio
//! importers.

use serde::Deserialize;
use serde_yaml::Value;

/// A document that is not YAML: which one, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    /// 0-based index of the document in the stream.
    pub document: usize,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub reason: String,
}

/// Each document of `text` with its index, in order.
pub(crate) fn documents(
    text: &str,
) -> impl Iterator<Item = Result<(usize, Value), SyntaxError>> + '_ {
    serde_yaml::Deserializer::from_str(text)
        .enumerate()
        .map(|(document, de)| {
            Value::deserialize(de)
                .map(|value| (document, value))
                .map_err(|e| {
                    let at = e.location();
                    SyntaxError {
                        document,
                        line: at.as_ref().map(|l| l.line()),
                        column: at.as_ref().map(|l| l.column()),
                        reason: e.to_string(),
                    }
                })
        })
}

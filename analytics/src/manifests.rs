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

/// Which importer an inventory file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InventoryKind {
    Grants,
    Rbac,
    Istio,
    Opa,
}

/// Decides by the documents' shape, never by a substring (a grants-file
/// resource may well name `rbac.authorization.k8s.io`): the first document
/// with top-level `user_roles` and `role_grants` is OPA data, with
/// `grants` a grants file, with an `apiVersion` of
/// `rbac.authorization.k8s.io/...` or `security.istio.io/...` (directly or
/// in a `kubectl get -o json` list's `items`) RBAC or Istio. A file that is
/// not YAML at all is tried as a grants file, whose parser says where.
pub(crate) fn inventory_kind(text: &str) -> InventoryKind {
    fn by_api_version(value: &Value) -> Option<InventoryKind> {
        let api = value.get("apiVersion")?.as_str()?;
        let group = api.split('/').next()?;
        match group {
            "rbac.authorization.k8s.io" => Some(InventoryKind::Rbac),
            "security.istio.io" => Some(InventoryKind::Istio),
            _ => None,
        }
    }
    for document in documents(text) {
        let Ok((_, value)) = document else {
            break;
        };
        let Some(map) = value.as_mapping() else {
            continue;
        };
        if map.contains_key("user_roles") && map.contains_key("role_grants") {
            return InventoryKind::Opa;
        }
        if map.contains_key("grants") {
            return InventoryKind::Grants;
        }
        if let Some(kind) = by_api_version(&value) {
            return kind;
        }
        if let Some(items) = value.get("items").and_then(Value::as_sequence) {
            if let Some(kind) = items.iter().find_map(by_api_version) {
                return kind;
            }
        }
    }
    InventoryKind::Grants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inventories_are_told_apart_by_shape() {
        let cases = [
            // A grants file naming RBAC objects as resources.
            (
                "grants:\n  - subject: s\n    allow:\n      - action: get\n        resource: namespaces/tax/rbac.authorization.k8s.io/rolebindings\n",
                InventoryKind::Grants,
            ),
            (
                r#"{"grants": [{"subject": "s", "allow": [{"action": "get", "resource": "security.istio.io"}]}]}"#,
                InventoryKind::Grants,
            ),
            (
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: a}\nrules: []\n",
                InventoryKind::Rbac,
            ),
            (
                "# comment\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: a, namespace: b}\n",
                InventoryKind::Istio,
            ),
            (
                r#"{"apiVersion": "v1", "kind": "List", "items": [{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole"}]}"#,
                InventoryKind::Rbac,
            ),
            (
                r#"{"user_roles": {}, "role_grants": {"r": [{"action": "get", "type": "rbac.authorization.k8s.io"}]}}"#,
                InventoryKind::Opa,
            ),
            ("grants: [\n", InventoryKind::Grants),
        ];
        for (text, kind) in cases {
            assert_eq!(inventory_kind(text), kind, "{text}");
        }
    }
}

//! Turning a source's principal into the canonical subject.

use overreach_model::{SpiffeId, SubjectKind};

use super::{DecodeError, Reason};

#[derive(Debug)]
pub(crate) struct Subject {
    pub id: String,
    pub kind: SubjectKind,
    pub trust_domain: Option<String>,
}

impl Subject {
    fn spiffe(id: SpiffeId) -> Self {
        Subject {
            trust_domain: Some(id.trust_domain().to_owned()),
            id: id.to_string(),
            kind: SubjectKind::Spiffe,
        }
    }
}

/// Classifies a principal. SPIFFE IDs are validated (an invalid one is bad
/// input); Kubernetes service accounts become SPIFFE IDs in `trust_domain`.
pub(crate) fn classify(principal: &str, trust_domain: &str) -> Result<Subject, DecodeError> {
    let invalid = |e: overreach_model::SpiffeIdError| {
        DecodeError::new(Reason::InvalidSpiffeId, e.to_string())
    };
    if principal.is_empty() {
        return Err(DecodeError::new(
            Reason::MissingField,
            "the subject is empty",
        ));
    }
    if principal.starts_with("spiffe:") {
        return SpiffeId::parse(principal)
            .map(Subject::spiffe)
            .map_err(invalid);
    }
    if let Some(rest) = principal.strip_prefix("system:serviceaccount:") {
        let (ns, sa) = rest.split_once(':').ok_or_else(|| {
            DecodeError::new(
                Reason::InvalidValue,
                format!(
                    "service account {principal:?} is not system:serviceaccount:NAMESPACE:NAME"
                ),
            )
        })?;
        return SpiffeId::for_service_account(trust_domain, ns, sa)
            .map(Subject::spiffe)
            .map_err(invalid);
    }
    let kind = if principal.starts_with("arn:aws:") {
        SubjectKind::AwsRole
    } else if principal.ends_with(".gserviceaccount.com") {
        SubjectKind::GcpServiceAccount
    } else if principal.starts_with("system:") {
        SubjectKind::System
    } else {
        SubjectKind::User
    };
    Ok(Subject {
        id: principal.to_owned(),
        kind,
        trust_domain: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_principals() {
        let s = classify(
            "system:serviceaccount:argo-cd:argocd-server",
            "cluster.local",
        )
        .unwrap();
        assert_eq!(s.id, "spiffe://cluster.local/ns/argo-cd/sa/argocd-server");
        assert_eq!(s.kind, SubjectKind::Spiffe);
        assert_eq!(s.trust_domain.as_deref(), Some("cluster.local"));
        assert_eq!(
            classify("system:kube-scheduler", "td").unwrap().kind,
            SubjectKind::System
        );
        assert_eq!(
            classify("kubernetes-admin", "td").unwrap().kind,
            SubjectKind::User
        );
        assert_eq!(
            classify("arn:aws:iam::123456789012:role/x", "td")
                .unwrap()
                .kind,
            SubjectKind::AwsRole
        );
        assert_eq!(
            classify("spiffe://Bad.Domain/x", "td").unwrap_err().reason,
            Reason::InvalidSpiffeId
        );
        assert_eq!(
            classify("system:serviceaccount:only-namespace", "td")
                .unwrap_err()
                .reason,
            Reason::InvalidValue
        );
    }
}

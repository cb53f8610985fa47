//! SPIFFE IDs validated as the SPIFFE ID specification says.
//!
//! Parsing is delegated to the SPIFFE community's `spiffe` crate. On top of
//! it we refuse upper-case letters in the trust domain: the specification
//! allows only lower-case ones, and the crate would silently fold them, so
//! two spellings of one identity could end up as two baselines.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid SPIFFE ID.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpiffeIdError {
    #[error("invalid SPIFFE ID {id:?}: {reason}")]
    Invalid { id: String, reason: String },
    #[error("invalid SPIFFE ID {id:?}: trust domain must be lower case")]
    UpperCaseTrustDomain { id: String },
    #[error("invalid SPIFFE ID of {len} bytes: the limit is {MAX_LEN} bytes")]
    TooLong { len: usize },
}

/// The SPIFFE ID specification's length limit for a whole ID.
pub const MAX_LEN: usize = 2048;

/// A valid SPIFFE ID such as `spiffe://prod.example.org/ns/payments/sa/api`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId(spiffe::SpiffeId);

impl SpiffeId {
    pub fn parse(id: &str) -> Result<Self, SpiffeIdError> {
        if id.len() > MAX_LEN {
            return Err(SpiffeIdError::TooLong { len: id.len() });
        }
        let authority = id
            .strip_prefix("spiffe://")
            .map(|rest| rest.split('/').next().unwrap_or(""))
            .unwrap_or("");
        if authority.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(SpiffeIdError::UpperCaseTrustDomain { id: id.to_owned() });
        }
        spiffe::SpiffeId::new(id)
            .map(SpiffeId)
            .map_err(|e| SpiffeIdError::Invalid {
                id: id.to_owned(),
                reason: e.to_string(),
            })
    }

    /// The identity Istio and SPIRE give a Kubernetes service account.
    pub fn for_service_account(
        trust_domain: &str,
        namespace: &str,
        service_account: &str,
    ) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!(
            "spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"
        ))
    }

    pub fn trust_domain(&self) -> &str {
        self.0.trust_domain_name()
    }

    pub fn path(&self) -> &str {
        self.0.path()
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ids_the_spec_allows() {
        for id in [
            "spiffe://example.org/service",
            "spiffe://prod.example.org/ns/payments/sa/api",
            "spiffe://cluster.local/ns/kube-system/sa/coredns",
            "spiffe://trust_domain-1.example/a/b.c/d-e/f_g",
            "spiffe://example.org",
        ] {
            let parsed = SpiffeId::parse(id).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(parsed.to_string(), id);
        }
        let id = SpiffeId::parse("spiffe://example.org/ns/a/sa/b").unwrap();
        assert_eq!(id.trust_domain(), "example.org");
        assert_eq!(id.path(), "/ns/a/sa/b");
    }

    #[test]
    fn rejects_ids_the_spec_forbids() {
        for id in [
            "",
            "http://example.org/service",
            "spiffe:/example.org/service",
            "spiffe:///service",
            "spiffe://Example.org/service",
            "spiffe://exa mple.org/service",
            "spiffe://example.org:8080/service",
            "spiffe://user@example.org/service",
            "spiffe://example.org/service/",
            "spiffe://example.org//service",
            "spiffe://example.org/./service",
            "spiffe://example.org/a/../b",
            "spiffe://example.org/service?x=1",
            "spiffe://example.org/service#frag",
            "spiffe://example.org/serv%20ice",
        ] {
            assert!(SpiffeId::parse(id).is_err(), "{id:?} should be rejected");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(2100));
        assert!(SpiffeId::parse(&long).is_err(), "over 2048 bytes");
        let long_td = format!("spiffe://{}/a", "a".repeat(256));
        assert!(SpiffeId::parse(&long_td).is_err(), "trust domain over 255");
    }

    #[test]
    fn maps_service_accounts() {
        let id =
            SpiffeId::for_service_account("cluster.local", "argo-cd", "argocd-server").unwrap();
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/argo-cd/sa/argocd-server"
        );
    }
}

//! Finding kinds, the controls each maps to, and the 0-100 score.

/// The kinds of finding the detectors produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FindingKind {
    NewIdentity,
    NewReach,
    PeerRare,
    NewTarget,
    TrustDomainCrossing,
    EnvironmentCrossing,
    VolumeSpike,
    DenySpike,
    OffHours,
    WeakCredential,
    UsedAfterSuggestion,
}

impl FindingKind {
    pub const ALL: [FindingKind; 11] = [
        FindingKind::NewIdentity,
        FindingKind::NewReach,
        FindingKind::PeerRare,
        FindingKind::NewTarget,
        FindingKind::TrustDomainCrossing,
        FindingKind::EnvironmentCrossing,
        FindingKind::VolumeSpike,
        FindingKind::DenySpike,
        FindingKind::OffHours,
        FindingKind::WeakCredential,
        FindingKind::UsedAfterSuggestion,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::NewIdentity => "new-identity",
            FindingKind::NewReach => "new-reach",
            FindingKind::PeerRare => "peer-rare",
            FindingKind::NewTarget => "new-target",
            FindingKind::TrustDomainCrossing => "trust-domain-crossing",
            FindingKind::EnvironmentCrossing => "environment-crossing",
            FindingKind::VolumeSpike => "volume-spike",
            FindingKind::DenySpike => "deny-spike",
            FindingKind::OffHours => "off-hours",
            FindingKind::WeakCredential => "weak-credential",
            FindingKind::UsedAfterSuggestion => "used-after-suggestion",
        }
    }

    /// The controls a finding of this kind is evidence for. This is the
    /// one place the mapping lives (OWASP Non-Human Identities Top 10 2025;
    /// NIST CSF 1.1 ids, where PR.AC is PR.AA in CSF 2.0; NIST SP 800-207
    /// zero-trust tenets):
    ///
    /// | kind | OWASP NHI | NIST CSF | SP 800-207 |
    /// | --- | --- | --- | --- |
    /// | new-identity | NHI1 Improper Offboarding | PR.AC-1, DE.CM-7 | tenet 5 |
    /// | new-reach, peer-rare | NHI5 Overprivileged NHI | PR.AC-4 | tenet 3 |
    /// | new-target | NHI5 Overprivileged NHI | PR.AC-4, PR.AC-5 | tenet 3 |
    /// | trust-domain-crossing, environment-crossing | NHI8 Environment Isolation | PR.AC-4, PR.AC-5 | tenet 2 |
    /// | volume-spike | NHI2 Secret Leakage | PR.AC-4, DE.AE-1 | tenet 7 |
    /// | deny-spike | NHI2 Secret Leakage | PR.AC-4, DE.CM-7 | tenet 7 |
    /// | off-hours | NHI10 Human Use of NHI | PR.AC-4, DE.CM-7 | tenet 4 |
    /// | weak-credential | NHI7 Long-Lived Secrets | PR.AC-1, PR.AC-4 | tenet 6 |
    /// | used-after-suggestion | NHI5 Overprivileged NHI | PR.AC-4, DE.CM-7 | tenet 3 |
    pub fn controls(self) -> &'static [&'static str] {
        const PR_AC_1: &str = "NIST CSF PR.AC-1 identities and credentials managed";
        const PR_AC_4: &str = "NIST CSF PR.AC-4 least privilege";
        const PR_AC_5: &str = "NIST CSF PR.AC-5 network integrity and segregation";
        const DE_CM_7: &str = "NIST CSF DE.CM-7 monitoring for unauthorized activity";
        match self {
            FindingKind::NewIdentity => &[
                "OWASP NHI1:2025 Improper Offboarding",
                PR_AC_1,
                DE_CM_7,
                "NIST SP 800-207 tenet 5 asset integrity and posture monitored",
            ],
            FindingKind::NewReach | FindingKind::PeerRare => &[
                "OWASP NHI5:2025 Overprivileged NHI",
                PR_AC_4,
                "NIST SP 800-207 tenet 3 per-session least-privilege access",
            ],
            FindingKind::NewTarget => &[
                "OWASP NHI5:2025 Overprivileged NHI",
                PR_AC_4,
                PR_AC_5,
                "NIST SP 800-207 tenet 3 per-session least-privilege access",
            ],
            FindingKind::TrustDomainCrossing | FindingKind::EnvironmentCrossing => &[
                "OWASP NHI8:2025 Environment Isolation",
                PR_AC_4,
                PR_AC_5,
                "NIST SP 800-207 tenet 2 all communication secured regardless of location",
            ],
            FindingKind::VolumeSpike => &[
                "OWASP NHI2:2025 Secret Leakage",
                PR_AC_4,
                "NIST CSF DE.AE-1 baseline of operations and expected flows",
                "NIST SP 800-207 tenet 7 collect and use telemetry",
            ],
            FindingKind::DenySpike => &[
                "OWASP NHI2:2025 Secret Leakage",
                PR_AC_4,
                DE_CM_7,
                "NIST SP 800-207 tenet 7 collect and use telemetry",
            ],
            FindingKind::OffHours => &[
                "OWASP NHI10:2025 Human Use of NHI",
                PR_AC_4,
                DE_CM_7,
                "NIST SP 800-207 tenet 4 dynamic policy including behaviour and time",
            ],
            FindingKind::WeakCredential => &[
                "OWASP NHI7:2025 Long-Lived Secrets",
                PR_AC_1,
                PR_AC_4,
                "NIST SP 800-207 tenet 6 dynamic, strictly enforced authentication",
            ],
            FindingKind::UsedAfterSuggestion => &[
                "OWASP NHI5:2025 Overprivileged NHI",
                PR_AC_4,
                DE_CM_7,
                "NIST SP 800-207 tenet 3 per-session least-privilege access",
            ],
        }
    }

    /// The score a finding of this kind starts from.
    pub fn base_score(self) -> i64 {
        match self {
            FindingKind::NewReach => 25,
            FindingKind::NewIdentity | FindingKind::PeerRare | FindingKind::VolumeSpike => 35,
            FindingKind::NewTarget | FindingKind::OffHours => 40,
            FindingKind::DenySpike | FindingKind::WeakCredential => 45,
            FindingKind::TrustDomainCrossing => 50,
            FindingKind::EnvironmentCrossing => 60,
            // Dormant access, judged removable, in use: a rare job the
            // suggestion missed, or someone else holding the identity.
            FindingKind::UsedAfterSuggestion => 55,
        }
    }
}

/// What the score of a finding depends on.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ScoreInputs {
    pub allow_count: i64,
    pub deny_count: i64,
    /// A write, delete or escalate verb is involved (`is_write_action`).
    pub write: bool,
    /// A resource holding credentials or granting access is involved
    /// (`is_sensitive_resource`).
    pub sensitive: bool,
    /// Used from a network (IPv4 /16, IPv6 /48) the baseline never saw.
    pub new_network: bool,
    /// Spread over several known replicas and hours, as a rollout is.
    pub rollout: bool,
    /// Observed over expected count, for the rate detectors (0 otherwise).
    pub ratio: f64,
    /// The credential had expired at call time.
    pub expired: bool,
}

/// The 0-100 score of a finding:
///
/// ```text
///   base         new-reach 25; new-identity, peer-rare, volume-spike 35;
///                new-target, off-hours 40; deny-spike, weak-credential 45;
///                trust-domain-crossing 50; used-after-suggestion 55;
///                environment-crossing 60
/// + allowed      +10 when any call was allowed; -15 when all were denied
///                (reach that worked matters more than reach that was
///                refused), except for deny-spike, which is about denies
/// + volume       +2 per doubling of calls, at most +10 (1 call: 0, 32: +10)
/// + ratio        +4 per doubling of observed over expected, at most +20
/// + write        +15 for write, delete or escalate verbs
/// + sensitive    +15 for secrets, tokens, roles and bindings
/// + new network  +25 from a network the identity's baseline never used
/// + expired      +10 for an expired credential
/// - rollout      -30 when spread over known replicas and hours
/// clamped to 0..=100
/// ```
pub fn score(kind: FindingKind, inputs: ScoreInputs) -> i64 {
    let allowed = if inputs.allow_count > 0 {
        10
    } else if inputs.deny_count > 0 && kind != FindingKind::DenySpike {
        -15
    } else {
        0
    };
    let calls = inputs.allow_count.saturating_add(inputs.deny_count.max(0));
    let volume = match u64::try_from(calls) {
        Ok(n) if n > 0 => (2 * i64::from(n.ilog2())).min(10),
        _ => 0,
    };
    let ratio = if inputs.ratio.is_finite() && inputs.ratio > 1.0 {
        // Truncation is intended: whole points only.
        ((4.0 * inputs.ratio.log2()).min(20.0)) as i64
    } else if inputs.ratio == f64::INFINITY {
        20
    } else {
        0
    };
    let flag = |on: bool, points: i64| if on { points } else { 0 };
    (kind.base_score()
        + allowed
        + volume
        + ratio
        + flag(inputs.write, 15)
        + flag(inputs.sensitive, 15)
        + flag(inputs.new_network, 25)
        + flag(inputs.expired, 10)
        - flag(inputs.rollout, 30))
    .clamp(0, 100)
}

/// `low` below 40, `medium` below 70, `high` below 90, else `critical`.
pub fn severity(score: i64) -> &'static str {
    match score {
        i64::MIN..=39 => "low",
        40..=69 => "medium",
        70..=89 => "high",
        _ => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_order_what_matters() {
        let s = |kind, allow_count, deny_count, write, sensitive| {
            score(
                kind,
                ScoreInputs {
                    allow_count,
                    deny_count,
                    write,
                    sensitive,
                    ..ScoreInputs::default()
                },
            )
        };
        let reach = FindingKind::PeerRare;
        assert!(
            s(reach, 1, 5, false, false) > s(reach, 0, 6, false, false),
            "allowed above denied"
        );
        assert!(
            s(reach, 0, 1, true, false) > s(reach, 0, 1, false, false),
            "writes above reads"
        );
        assert!(
            s(reach, 1, 0, false, true) > s(reach, 1, 0, false, false),
            "secrets above reads"
        );
        assert_eq!(s(reach, 1, 0, false, false), 45);
        assert_eq!(
            s(reach, 1 << 20, 0, false, false),
            55,
            "volume is capped at +10"
        );
        assert_eq!(s(FindingKind::EnvironmentCrossing, 1, 0, true, true), 100);
        assert_eq!(
            s(FindingKind::DenySpike, 0, 50, false, false),
            45 + 10,
            "denies do not lower a deny spike"
        );
        let stolen = ScoreInputs {
            allow_count: 3,
            new_network: true,
            ..ScoreInputs::default()
        };
        let rollout = ScoreInputs {
            allow_count: 300,
            rollout: true,
            ..ScoreInputs::default()
        };
        assert!(score(FindingKind::NewReach, stolen) >= 40);
        assert!(score(FindingKind::NewReach, rollout) < 40);
        assert_eq!(severity(39), "low");
        assert_eq!(severity(40), "medium");
        assert_eq!(severity(70), "high");
        assert_eq!(severity(90), "critical");
    }
}

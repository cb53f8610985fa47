//! Detector unit tests on hand-built aggregates: each detector's rule, its
//! edge cases (empty baseline, one event, all denies, hour-of-week
//! wrap-around) and property tests of the scores.

use chrono::{DateTime, Duration, TimeZone, Utc};
use overreach_model::results::BaselineEntry;
use proptest::prelude::*;

use super::rates::{hour_index, hour_of_week, Profile};
use super::*;
use crate::store::{
    CredentialStats, HourCount, KeyHour, KeyStats, Slot, SourceCount, SubjectStats,
};

const API: &str = "spiffe://prod.example.org/ns/shop/sa/api";
const WEB: &str = "spiffe://prod.example.org/ns/shop/sa/web";
const CART: &str = "spiffe://prod.example.org/ns/shop/sa/cart";
const DB: &str = "spiffe://prod.example.org/ns/data/sa/db";

/// Monday 2026-11-30 12:00 UTC: detection is the day before it.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()
}

fn windows() -> Windows {
    Windows::new(
        now(),
        Duration::days(28),
        Duration::days(1),
        Duration::days(90),
    )
    .unwrap()
}

fn subject(name: &str, days_of_history: i64) -> SubjectStats {
    SubjectStats {
        subject: name.into(),
        subject_kind: "spiffe".into(),
        trust_domain: trust_domain_of(name).map(str::to_owned),
        environment: None,
        events: 0,
        allow_count: 0,
        deny_count: 0,
        first_seen: now() - Duration::days(days_of_history),
        last_seen: now(),
    }
}

fn key(
    slot: Slot,
    subject: &str,
    action: &str,
    resource: &str,
    target: Option<&str>,
    allow: i64,
    deny: i64,
) -> KeyStats {
    let at = match slot {
        Slot::Detect => now() - Duration::hours(2),
        _ => now() - Duration::days(10),
    };
    KeyStats {
        slot,
        usage: BaselineEntry {
            subject: subject.into(),
            action: action.into(),
            resource_pattern: resource.into(),
            target: target.map(str::to_owned),
            count: allow + deny,
            allow_count: allow,
            deny_count: deny,
            first_seen: at,
            last_seen: at,
        },
        sources: 1,
        hours: 1,
    }
}

fn source(
    slot: Slot,
    subject: &str,
    key: Option<(&str, &str, Option<&str>)>,
    address: &str,
) -> SourceCount {
    SourceCount {
        slot,
        subject: subject.into(),
        action: key.map(|k| k.0.to_owned()),
        resource_pattern: key.map(|k| k.1.to_owned()),
        target: key.and_then(|k| k.2.map(str::to_owned)),
        source_address: address.into(),
        count: 1,
    }
}

/// Every hour of the baseline with `per_hour` calls, for `subject`.
fn steady(subject: &str, per_hour: i64) -> Vec<HourCount> {
    let w = windows();
    (hour_index(w.baseline_start)..hour_index(w.detect_start))
        .map(|hour| HourCount {
            slot: Slot::Baseline,
            subject: subject.into(),
            hour,
            count: per_hour,
            allow_count: per_hour,
            deny_count: 0,
        })
        .collect()
}

fn run(settings: &DetectSettings, inputs: Inputs<'_>) -> Detection {
    detect(settings, &inputs)
}

fn kinds(d: &Detection) -> Vec<(&str, &str)> {
    d.drafts
        .iter()
        .map(|d| (d.finding.kind.as_str(), d.finding.subject.as_str()))
        .collect()
}

fn inputs<'a>(
    w: &'a Windows,
    subjects: &'a [SubjectStats],
    keys: &'a [KeyStats],
    hourly: &'a [HourCount],
    sources: &'a [SourceCount],
    credentials: &'a [CredentialStats],
) -> Inputs<'a> {
    Inputs {
        windows: w,
        subjects,
        keys,
        hourly,
        key_hours: &[],
        sources,
        credentials,
    }
}

/// A baseline of 20 calls on one key, for subjects with history.
fn baseline(subject: &str) -> KeyStats {
    key(
        Slot::Baseline,
        subject,
        "GET",
        "/v1/items/{id}",
        Some(DB),
        20,
        0,
    )
}

#[test]
fn empty_baseline_gives_one_new_identity_and_no_per_key_noise() {
    let w = windows();
    let subjects = [subject(API, 0)];
    let keys: Vec<KeyStats> = (0..30)
        .map(|i| {
            key(
                Slot::Detect,
                API,
                "GET",
                &format!("/v1/thing{i}"),
                Some(DB),
                1,
                0,
            )
        })
        .collect();
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &subjects, &keys, &[], &[], &[]),
    );
    assert_eq!(kinds(&d), [("new-identity", API)]);
    let f = &d.drafts[0].finding;
    assert_eq!((f.count, f.allow_count), (30, 30));
    assert!(
        f.explanation.contains("no history in the 28d baseline"),
        "{}",
        f.explanation
    );
}

#[test]
fn one_event_of_history_is_too_little() {
    let w = windows();
    let subjects = [subject(API, 20)];
    let keys = [
        key(Slot::Baseline, API, "GET", "/a", Some(DB), 1, 0),
        key(Slot::Detect, API, "DELETE", "/a", Some(DB), 1, 0),
    ];
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &subjects, &keys, &[], &[], &[]),
    );
    assert_eq!(kinds(&d), [("new-identity", API)]);
    assert!(d.drafts[0]
        .finding
        .explanation
        .contains("with 1 call in the baseline"));
    // With the threshold at one call, the key itself is judged.
    let settings = DetectSettings {
        min_history_events: 1,
        ..DetectSettings::default()
    };
    let d = run(&settings, inputs(&w, &subjects, &keys, &[], &[], &[]));
    assert_eq!(kinds(&d), [("new-reach", API)]);
}

#[test]
fn all_denied_new_reach_scores_low_and_is_only_counted() {
    let w = windows();
    let subjects = [subject(API, 20)];
    let keys = [
        baseline(API),
        key(Slot::Detect, API, "GET", "/admin", Some(DB), 0, 3),
    ];
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &subjects, &keys, &[], &[], &[]),
    );
    assert!(d.drafts.is_empty(), "{:?}", kinds(&d));
    assert_eq!(d.below_min_score.get("new-reach"), Some(&1));
}

#[test]
fn peers_decide_between_new_reach_and_peer_rare() {
    let w = windows();
    let subjects = [subject(API, 20), subject(WEB, 20), subject(CART, 20)];
    let mut keys = vec![baseline(API), baseline(WEB), baseline(CART)];
    // web does `POST /v1/orders` normally; nobody does `/admin/roles`.
    keys.push(key(
        Slot::Baseline,
        WEB,
        "POST",
        "/v1/orders",
        Some(DB),
        5,
        0,
    ));
    keys.push(key(Slot::Detect, API, "POST", "/v1/orders", Some(DB), 2, 0));
    keys.push(key(
        Slot::Detect,
        API,
        "POST",
        "/admin/roles",
        Some(DB),
        1,
        0,
    ));
    let settings = DetectSettings {
        min_score: 0,
        ..DetectSettings::default()
    };
    let d = run(&settings, inputs(&w, &subjects, &keys, &[], &[], &[]));
    let by_resource: Vec<(&str, &str)> = d
        .drafts
        .iter()
        .map(|d| {
            (
                d.finding.kind.as_str(),
                d.finding.resource_pattern.as_deref().unwrap(),
            )
        })
        .collect();
    assert!(
        by_resource.contains(&("new-reach", "/v1/orders")),
        "{by_resource:?}"
    );
    assert!(
        by_resource.contains(&("peer-rare", "/admin/roles")),
        "{by_resource:?}"
    );
    let rare = d
        .drafts
        .iter()
        .find(|d| d.finding.kind == "peer-rare")
        .unwrap();
    assert!(rare
        .finding
        .explanation
        .contains("None of its 2 peers under `spiffe://prod.example.org/ns/shop/sa/`"));
    assert!(
        rare.finding.score
            > d.drafts
                .iter()
                .find(|d| d.finding.kind == "new-reach")
                .unwrap()
                .finding
                .score
    );
}

#[test]
fn new_targets_are_classified_by_trust_domain_and_environment() {
    let w = windows();
    let subjects = [subject(API, 20)];
    let same = "spiffe://prod.example.org/ns/ledger/sa/books";
    let partner = "spiffe://prod.partner.example/ns/pay/sa/gw";
    let staging = "spiffe://staging.example.org/ns/shop/sa/db";
    let keys = [
        baseline(API),
        key(Slot::Detect, API, "GET", "/x", Some(same), 1, 0),
        key(Slot::Detect, API, "GET", "/y", Some(same), 1, 0),
        key(Slot::Detect, API, "GET", "/x", Some(partner), 1, 0),
        key(Slot::Detect, API, "GET", "/x", Some(staging), 1, 0),
    ];
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &subjects, &keys, &[], &[], &[]),
    );
    let mut found: Vec<(&str, &str, i64)> = d
        .drafts
        .iter()
        .map(|d| {
            (
                d.finding.kind.as_str(),
                d.finding.target.as_deref().unwrap(),
                d.finding.count,
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("environment-crossing", staging, 1),
            ("new-target", same, 2),
            ("trust-domain-crossing", partner, 1),
        ],
        "one finding per target, the most specific kind"
    );
}

#[test]
fn new_networks_raise_and_rollouts_lower_the_score() {
    let w = windows();
    let subjects = [subject(API, 20)];
    let new_key = ("GET", "/v2/items/{id}", Some(DB));
    let mut rolled = key(Slot::Detect, API, new_key.0, new_key.1, new_key.2, 300, 0);
    rolled.sources = 3;
    rolled.hours = 10;
    let keys = [baseline(API), rolled];
    let known = [
        source(Slot::Baseline, API, None, "10.1.0.5"),
        source(Slot::Detect, API, Some(new_key), "10.1.7.1"),
        source(Slot::Detect, API, Some(new_key), "10.1.7.2"),
        source(Slot::Detect, API, Some(new_key), "10.1.7.3"),
    ];
    let settings = DetectSettings {
        min_score: 0,
        ..DetectSettings::default()
    };
    let d = run(&settings, inputs(&w, &subjects, &keys, &[], &known, &[]));
    let rollout = &d.drafts[0].finding;
    assert!(
        rollout.explanation.contains("as a rollout looks"),
        "{}",
        rollout.explanation
    );
    let stolen = [
        source(Slot::Baseline, API, None, "10.1.0.5"),
        source(Slot::Detect, API, Some(new_key), "203.0.113.9"),
    ];
    let d = run(&settings, inputs(&w, &subjects, &keys, &[], &stolen, &[]));
    let from_afar = &d.drafts[0].finding;
    assert!(
        from_afar
            .explanation
            .contains("network 203.0.0.0/16 it never used"),
        "{}",
        from_afar.explanation
    );
    assert!(
        from_afar.score >= rollout.score + 40,
        "{} vs {}",
        from_afar.score,
        rollout.score
    );
    assert!(rollout.score < DetectSettings::default().min_score);
}

#[test]
fn volume_spike_needs_a_big_and_significant_excess() {
    let w = windows();
    let subjects = [subject(API, 40)];
    let keys = [
        baseline(API),
        key(Slot::Detect, API, "GET", "/v1/items/{id}", Some(DB), 1, 0),
    ];
    let mut hourly = steady(API, 10);
    let spike_hour = hour_index(now()) - 3;
    let detect = |count| HourCount {
        slot: Slot::Detect,
        subject: API.into(),
        hour: spike_hour,
        count,
        allow_count: count,
        deny_count: 0,
    };
    hourly.push(detect(25));
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &subjects, &keys, &hourly, &[], &[]),
    );
    assert!(
        kinds(&d).is_empty(),
        "25 against 10 is not 3x: {:?}",
        kinds(&d)
    );
    hourly.pop();
    hourly.push(detect(200));
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &subjects, &keys, &hourly, &[], &[]),
    );
    assert_eq!(kinds(&d), [("volume-spike", API)]);
    let f = &d.drafts[0].finding;
    let evidence: serde_json::Value = serde_json::from_str(&f.evidence).unwrap();
    assert_eq!(evidence["observed"], 200);
    assert!((evidence["expected"].as_f64().unwrap() - 10.0).abs() < 1e-9);
    assert!(evidence["p_adjusted"].as_f64().unwrap() < 0.01);
    assert_eq!(
        evidence["model"], "Poisson",
        "a constant baseline is not overdispersed"
    );
    assert!(
        f.explanation.contains("made 200 allowed calls in"),
        "{}",
        f.explanation
    );
}

#[test]
fn one_key_far_above_its_share_is_a_volume_spike() {
    let w = windows();
    let subjects = [subject(API, 40)];
    let hours = hour_index(w.detect_start) - hour_index(w.baseline_start);
    // 20 calls an hour: 19 on the main key, 1 on the blob key.
    let keys = [
        key(
            Slot::Baseline,
            API,
            "GET",
            "/v1/items/{id}",
            Some(DB),
            19 * hours,
            0,
        ),
        key(
            Slot::Baseline,
            API,
            "GET",
            "/v1/blobs/{id}",
            Some(DB),
            hours,
            0,
        ),
        key(Slot::Detect, API, "GET", "/v1/items/{id}", Some(DB), 19, 0),
        key(Slot::Detect, API, "GET", "/v1/blobs/{id}", Some(DB), 16, 0),
    ];
    let mut hourly = steady(API, 20);
    let hour = hour_index(now()) - 5;
    hourly.push(HourCount {
        slot: Slot::Detect,
        subject: API.into(),
        hour,
        count: 35,
        allow_count: 35,
        deny_count: 0,
    });
    let key_hour = |resource: &str, allow_count| KeyHour {
        subject: API.into(),
        action: "GET".into(),
        resource_pattern: resource.into(),
        target: Some(DB.into()),
        hour,
        allow_count,
    };
    let key_hours = [
        key_hour("/v1/items/{id}", 19),
        key_hour("/v1/blobs/{id}", 16),
    ];
    let mut i = inputs(&w, &subjects, &keys, &hourly, &[], &[]);
    let d = run(
        &DetectSettings::default(),
        Inputs {
            key_hours: &[],
            ..i
        },
    );
    assert!(
        kinds(&d).is_empty(),
        "35 against 20 is no spike for the identity"
    );
    i.key_hours = &key_hours;
    let d = run(&DetectSettings::default(), i);
    assert_eq!(kinds(&d), [("volume-spike", API)]);
    let f = &d.drafts[0];
    assert!(
        f.finding
            .explanation
            .contains("made 16 allowed calls `GET /v1/blobs/{id}`"),
        "{}",
        f.finding.explanation
    );
    assert_eq!(f.evidence.resources, ["/v1/blobs/{id}"]);
}

#[test]
fn key_level_volume_sees_through_dates_in_paths() {
    let w = windows();
    let subjects = [subject(API, 40)];
    let hours = hour_index(w.detect_start) - hour_index(w.baseline_start);
    // One call an hour on a stats path that carries the day, each day's
    // path a different stored resource; 19 an hour elsewhere.
    let mut keys: Vec<KeyStats> = (1..=28)
        .map(|day| {
            let resource = format!("/v1/stats/2026-11-{day:02}");
            key(
                Slot::Baseline,
                API,
                "GET",
                &resource,
                Some(DB),
                hours / 28,
                0,
            )
        })
        .collect();
    keys.push(key(
        Slot::Baseline,
        API,
        "GET",
        "/v1/items/{id}",
        Some(DB),
        19 * hours,
        0,
    ));
    keys.push(key(
        Slot::Detect,
        API,
        "GET",
        "/v1/stats/2026-11-29",
        Some(DB),
        16,
        0,
    ));
    let mut hourly = steady(API, 20);
    let hour = hour_index(now()) - 5;
    hourly.push(HourCount {
        slot: Slot::Detect,
        subject: API.into(),
        hour,
        count: 35,
        allow_count: 35,
        deny_count: 0,
    });
    let key_hours = [KeyHour {
        subject: API.into(),
        action: "GET".into(),
        resource_pattern: "/v1/stats/2026-11-29".into(),
        target: Some(DB.into()),
        hour,
        allow_count: 16,
    }];
    let mut i = inputs(&w, &subjects, &keys, &hourly, &[], &[]);
    i.key_hours = &key_hours;
    let d = run(&DetectSettings::default(), i);
    let spike = d.drafts.iter().find(|d| d.finding.kind == "volume-spike");
    let spike = spike.unwrap_or_else(|| panic!("{:?}", kinds(&d)));
    assert!(
        spike.finding.explanation.contains("`GET /v1/stats/{id}`"),
        "{}",
        spike.finding.explanation
    );
    assert_eq!(
        spike.evidence.resources,
        ["/v1/stats/2026-11-29"],
        "evidence uses the stored resource"
    );
}

#[test]
fn all_denies_make_a_deny_spike() {
    let w = windows();
    let subjects = [subject(API, 40)];
    let keys = [
        baseline(API),
        key(Slot::Detect, API, "GET", "/v1/items/{id}", Some(DB), 0, 80),
    ];
    let mut hourly = steady(API, 10);
    hourly.push(HourCount {
        slot: Slot::Detect,
        subject: API.into(),
        hour: hour_index(now()) - 1,
        count: 80,
        allow_count: 0,
        deny_count: 80,
    });
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &subjects, &keys, &hourly, &[], &[]),
    );
    let k = kinds(&d);
    assert!(k.contains(&("deny-spike", API)), "{k:?}");
    let f = d
        .drafts
        .iter()
        .find(|d| d.finding.kind == "deny-spike")
        .unwrap();
    assert_eq!((f.finding.allow_count, f.finding.deny_count), (0, 80));
    assert!(
        f.finding.explanation.contains("was denied 80 times"),
        "{}",
        f.finding.explanation
    );
    assert_eq!(f.evidence.decision, Some("deny"));
}

#[test]
fn off_hours_wraps_around_the_week() {
    // Active only on Sundays 23:00 (hour of week 167).
    let w = windows();
    let mut hourly: Vec<HourCount> = steady(API, 0)
        .into_iter()
        .filter(|h| hour_of_week(h.hour) == 167)
        .map(|h| HourCount {
            count: 30,
            allow_count: 30,
            ..h
        })
        .collect();
    let profile = Profile::new(
        hour_index(w.baseline_start),
        hour_index(w.detect_start),
        &hourly.iter().map(|h| (h.hour, (h.count, 0))).collect(),
    );
    // Monday 00:00 is next to Sunday 23:00 across the week's end.
    let monday_midnight = hour_index(Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap());
    assert_eq!(hour_of_week(monday_midnight), 0);
    assert!(!profile.quiet(monday_midnight));
    assert!(
        !profile.quiet(monday_midnight - 2),
        "Sunday 22:00 is next to 23:00"
    );
    assert!(profile.quiet(monday_midnight + 3));
    assert!(profile.quiet(monday_midnight - 3));

    let subjects = [subject(API, 40)];
    let keys = [
        baseline(API),
        key(Slot::Detect, API, "GET", "/v1/items/{id}", Some(DB), 20, 0),
    ];
    for (hour, expect) in [(monday_midnight, false), (monday_midnight + 3, true)] {
        hourly.retain(|h| h.slot == Slot::Baseline);
        hourly.push(HourCount {
            slot: Slot::Detect,
            subject: API.into(),
            hour,
            count: 20,
            allow_count: 20,
            deny_count: 0,
        });
        let d = run(
            &DetectSettings::default(),
            inputs(&w, &subjects, &keys, &hourly, &[], &[]),
        );
        assert_eq!(
            kinds(&d).contains(&("off-hours", API)),
            expect,
            "hour {hour}: {:?}",
            kinds(&d)
        );
    }
}

#[test]
fn weak_credentials_by_kind_lifetime_and_expiry() {
    let w = windows();
    let cred = |kind: &str, remaining_hours: Option<i64>, expired: i64| CredentialStats {
        subject: API.into(),
        credential_kind: kind.into(),
        count: 5,
        allow_count: 5,
        deny_count: 0,
        expired,
        no_expiry: if remaining_hours.is_none() { 5 } else { 0 },
        max_remaining_us: remaining_hours.map(|h| h * 3_600_000_000),
        first_seen: now() - Duration::hours(3),
        last_seen: now() - Duration::hours(2),
    };
    let creds = [
        cred("x509-svid", Some(1), 0),
        cred("static-key", None, 0),
        cred("jwt-svid", Some(24 * 30), 0),
        cred("jwt-svid-expired", Some(-1), 2),
    ];
    let d = run(
        &DetectSettings::default(),
        inputs(&w, &[], &[], &[], &[], &creds),
    );
    let mut found: Vec<(String, String)> = d
        .drafts
        .iter()
        .map(|d| {
            let e: serde_json::Value = serde_json::from_str(&d.finding.evidence).unwrap();
            (
                e["credential_kind"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("jwt-svid".to_owned(), "long-lived".to_owned()),
            ("jwt-svid-expired".to_owned(), "expired".to_owned()),
            ("static-key".to_owned(), "long-lived".to_owned()),
        ]
    );
    let ids: std::collections::BTreeSet<&str> =
        d.drafts.iter().map(|d| d.finding.id.as_str()).collect();
    assert_eq!(ids.len(), 3, "distinct stable ids");
}

#[test]
fn the_model_lists_every_kind() {
    let ours: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(ours, overreach_model::results::FINDING_KINDS);
}

#[test]
fn environments_and_trust_domains() {
    assert_eq!(environment_of("prod.acme.example"), Some("prod"));
    assert_eq!(environment_of("acme-staging.example"), Some("staging"));
    assert_eq!(environment_of("cluster.local"), None);
    assert_eq!(trust_domain_of("spiffe://a.b/x"), Some("a.b"));
    assert_eq!(trust_domain_of("kubernetes-api"), None);
}

proptest! {
    #[test]
    fn every_score_is_in_range(
        kind in 0usize..FindingKind::ALL.len(),
        allow_count in any::<i64>(),
        deny_count in any::<i64>(),
        write in any::<bool>(),
        sensitive in any::<bool>(),
        new_network in any::<bool>(),
        rollout in any::<bool>(),
        expired in any::<bool>(),
        ratio in prop_oneof![any::<f64>(), Just(f64::INFINITY), Just(f64::NAN), Just(0.0)],
    ) {
        let s = score(FindingKind::ALL[kind], ScoreInputs {
            allow_count, deny_count, write, sensitive, new_network, rollout, ratio, expired,
        });
        prop_assert!((0..=100).contains(&s));
        prop_assert!(["low", "medium", "high", "critical"].contains(&severity(s)));
    }

    #[test]
    fn count_tests_are_probabilities(
        observed in any::<u64>(),
        expected in prop_oneof![any::<f64>(), 0.0..1e6f64],
        dispersion in prop_oneof![any::<f64>(), 0.0..50.0f64],
    ) {
        let p = crate::stats::upper_tail(observed, expected, dispersion);
        prop_assert!(p.is_finite() && (0.0..=1.0).contains(&p));
    }

    #[test]
    fn rate_findings_have_finite_scores_and_numbers(
        per_hour in 0i64..50,
        observed in 0i64..5_000,
        denied_share in 0.0..=1.0f64,
        hours_back in 0i64..24,
    ) {
        let w = windows();
        let subjects = [subject(API, 40)];
        let keys = [baseline(API), key(Slot::Detect, API, "GET", "/v1/items/{id}", Some(DB), 1, 0)];
        let mut hourly = steady(API, per_hour);
        let denied = (observed as f64 * denied_share) as i64;
        hourly.push(HourCount {
            slot: Slot::Detect,
            subject: API.into(),
            hour: hour_index(now()) - hours_back,
            count: observed,
            allow_count: observed - denied,
            deny_count: denied,
        });
        let settings = DetectSettings { min_score: 0, ..DetectSettings::default() };
        let d = run(&settings, inputs(&w, &subjects, &keys, &hourly, &[], &[]));
        for draft in &d.drafts {
            prop_assert!((0..=100).contains(&draft.finding.score));
            let e: serde_json::Value = serde_json::from_str(&draft.finding.evidence).unwrap();
            if let Some(p) = e.get("p_value") {
                let p = p.as_f64().unwrap();
                prop_assert!(p.is_finite() && (0.0..=1.0).contains(&p));
            }
        }
    }
}

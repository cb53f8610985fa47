//! End to end: simulate small estates and read the files back with the
//! real decoders of overreach-ingest.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use overreach_ingest::decode::{decode, DecodeOptions, Format};
use overreach_model::{Decision, DecisionEvent};
use overreach_sim::{incidents::KINDS, run, Label, SimFormat, SimSettings, Summary};

fn settings(out: &Path, format: SimFormat) -> SimSettings {
    SimSettings {
        out: out.to_owned(),
        seed: 11,
        identities: 40,
        days: 10,
        start: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
        format,
        rate_scale: 1.0,
        incident_days: 3,
        incidents_per_kind: 1,
    }
}

fn simulate(s: &SimSettings) -> Summary {
    let mut days = 0;
    let summary = run(s, |_| days += 1).unwrap();
    assert_eq!(days, s.days);
    summary
}

/// Every file of a run, by relative path.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.insert(rel, std::fs::read(&path).unwrap());
            }
        }
    }
    out
}

fn labels(dir: &Path) -> Vec<Label> {
    std::fs::read_to_string(dir.join("labels.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().to_utc()
}

/// Decodes every line; panics on the first dead letter.
fn decode_all(dir: &Path, opts: &DecodeOptions) -> Vec<DecisionEvent> {
    let mut events = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir.join("decisions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    let mut previous = None;
    for path in names {
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let origin = format!("{}:{}", path.display(), n + 1);
            let d = decode(line.as_bytes(), &origin, opts)
                .unwrap_or_else(|e| panic!("{origin}: {e}\n{line}"));
            let e = d.event;
            assert!(previous <= Some(e.time), "{origin}: events in time order");
            previous = Some(e.time);
            events.push(e);
        }
    }
    events
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let mut s = settings(a.path(), SimFormat::Native);
    s.days = 4;
    s.incident_days = 2;
    simulate(&s);
    s.out = b.path().to_owned();
    simulate(&s);
    let (fa, fb) = (files(a.path()), files(b.path()));
    assert_eq!(fa.keys().collect::<Vec<_>>(), fb.keys().collect::<Vec<_>>());
    assert!(fa.contains_key("decisions/2026-10-04.jsonl") && fa.contains_key("estate.json"));
    assert!(fa == fb, "byte-identical");
    s.out = c.path().to_owned();
    s.seed = 12;
    simulate(&s);
    let fc = files(c.path());
    assert_ne!(
        fa["decisions/2026-10-01.jsonl"],
        fc["decisions/2026-10-01.jsonl"]
    );
    assert_ne!(fa["estate.json"], fc["estate.json"]);
}

fn opts(format: SimFormat) -> DecodeOptions {
    DecodeOptions {
        format: match format {
            SimFormat::Native => Format::Native,
            SimFormat::Opa => Format::Opa,
            SimFormat::K8sAudit => Format::K8sAudit,
        },
        trust_domain: overreach_sim::K8S_TRUST_DOMAIN.into(),
        ..DecodeOptions::default()
    }
}

/// Each label's events are in the output, inside `[start, end]`.
fn check_labels(s: &SimSettings, events: &[DecisionEvent], labels: &[Label]) {
    let window = s.start + chrono::Days::new((s.days - s.incident_days) as u64);
    let window = window.and_hms_opt(0, 0, 0).unwrap().and_utc();
    for l in labels {
        let (start, end) = (time(&l.start), time(&l.end));
        assert!(start <= end && l.events > 0, "{l:?}");
        if !l.benign {
            assert!(start >= window, "incident before the incident days: {l:?}");
        }
        let inside = events
            .iter()
            .filter(|e| e.subject == l.subject && e.time >= start && e.time <= end)
            .count() as u64;
        assert!(inside >= l.events, "{l:?}: only {inside} events inside");
        if l.kind == "new-identity" {
            let all = events.iter().filter(|e| e.subject == l.subject).count() as u64;
            assert_eq!(all, l.events, "a new identity exists only in its incident");
        }
    }
}

#[test]
fn every_native_line_decodes_and_labels_hold() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), SimFormat::Native);
    let summary = simulate(&s);
    let events = decode_all(dir.path(), &opts(s.format));
    assert_eq!(events.len() as u64, summary.events);
    assert_eq!(summary.skipped_events, 0);
    let labels = labels(dir.path());
    for kind in KINDS {
        assert_eq!(
            labels.iter().filter(|l| l.kind == kind).count(),
            1,
            "{kind}: {:?}",
            summary.shortfall
        );
    }
    assert!(summary.shortfall.is_empty(), "{:?}", summary.shortfall);
    check_labels(&s, &events, &labels);

    // Kinds that must show in the decoded events.
    let of = |kind: &str| labels.iter().find(|l| l.kind == kind).unwrap();
    let spike = of("deny-spike");
    let denied = events
        .iter()
        .filter(|e| {
            e.subject == spike.subject && e.time >= time(&spike.start) && e.time <= time(&spike.end)
        })
        .filter(|e| e.decision == Decision::Deny)
        .count() as f64;
    assert!(
        denied >= 0.9 * spike.events as f64,
        "{spike:?}: {denied} denied"
    );
    let weak = of("weak-credential");
    assert!(events.iter().any(|e| e.subject == weak.subject
        && (e.credential_kind.as_deref() == Some("static-key")
            || e.credential_expires_at.is_some_and(|x| x < e.time))));
    let reach = of("new-reach");
    assert!(events.iter().any(|e| e.subject == reach.subject
        && e.source_address
            .as_deref()
            .is_some_and(|a| a.starts_with("203.0.113."))));
    let crossing = of("environment-crossing");
    assert!(events.iter().any(|e| e.subject == crossing.subject
        && e.target
            .as_deref()
            .is_some_and(|t| t.starts_with("spiffe://prod.acme.example/"))));
    let partner = of("trust-domain-crossing");
    assert!(events.iter().any(|e| e.subject == partner.subject
        && e.target
            .as_deref()
            .is_some_and(|t| t.starts_with("spiffe://prod.partner.example/"))));
    // Background credentials are valid at call time.
    let clean = |e: &&DecisionEvent| !labels.iter().any(|l| !l.benign && l.subject == e.subject);
    assert!(events
        .iter()
        .filter(clean)
        .all(|e| e.credential_expires_at.is_some_and(|x| x > e.time)));

    // Office-hours workloads are silent outside weekdays 07:00-19:00,
    // except inside labelled incidents.
    let estate: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("estate.json")).unwrap()).unwrap();
    let office: Vec<&str> = estate["workloads"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "office-hours")
        .map(|w| w["subject"].as_str().unwrap())
        .collect();
    assert!(!office.is_empty());
    let mut seen = 0;
    for e in events
        .iter()
        .filter(|e| office.contains(&e.subject.as_str()))
    {
        let in_incident = labels.iter().any(|l| {
            !l.benign
                && l.subject == e.subject
                && e.time >= time(&l.start)
                && e.time <= time(&l.end)
        });
        if in_incident {
            continue;
        }
        seen += 1;
        let weekday = e.time.weekday().num_days_from_monday();
        assert!(
            weekday < 5 && (7..19).contains(&e.time.hour()),
            "{} at {}",
            e.subject,
            e.time
        );
    }
    assert!(seen > 0);
}

#[test]
fn every_opa_and_k8s_line_decodes() {
    for format in [SimFormat::Opa, SimFormat::K8sAudit] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path(), format);
        s.days = 6;
        let summary = simulate(&s);
        let events = decode_all(dir.path(), &opts(format));
        assert_eq!(events.len() as u64, summary.events, "{format:?}");
        assert!(
            summary.events > 0 && summary.skipped_events > 0,
            "{format:?}: {summary:?}"
        );
        let labels = labels(dir.path());
        assert!(labels.iter().any(|l| !l.benign), "{format:?}: {summary:?}");
        check_labels(&s, &events, &labels);
        if format == SimFormat::K8sAudit {
            assert!(events
                .iter()
                .all(|e| e.subject.starts_with("spiffe://prod.acme.example/ns/")));
            assert!(summary
                .shortfall
                .iter()
                .any(|l| l.starts_with("weak-credential")));
        }
    }
}

#[test]
fn volume_scales_with_rate_scale() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut s = settings(a.path(), SimFormat::Native);
    s.days = 3;
    s.incidents_per_kind = 0;
    let full = simulate(&s).events as f64;
    s.out = b.path().to_owned();
    s.rate_scale = 0.5;
    let half = simulate(&s).events as f64;
    let ratio = half / full;
    assert!((0.4..0.6).contains(&ratio), "{half} / {full} = {ratio}");
}

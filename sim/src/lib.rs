//! Simulation: a seeded generator of realistic authorization decision logs
//! for an estate of workloads, with labelled injected incidents, to
//! measure the detectors' precision and recall.
//!
//! It is a test-data stage beside the pipeline, not part of it: it only
//! writes files (`decisions/*.jsonl`, `labels.jsonl`, `estate.json`) that
//! `overreach ingest --file` reads like any other log. With `k8s-audit`
//! output it also writes the prod cluster's RBAC inventory ([`rbac`]):
//! `rbac.yaml` (Roles, ClusterRoles and bindings that allow every allowed
//! call outside incidents, plus deliberate over-grants) and
//! `rbac-overgrants.json` (those over-grants, the answer key for
//! right-sizing, for `overreach analyze --grants rbac.yaml`). It never
//! reads a data directory and never depends on the pipeline's crates (they
//! are dev-dependencies, to check every line decodes).
//!
//! Invariants:
//! - the same settings give byte-identical files: randomness comes from
//!   our own PRNG ([`rng`]), one independent stream per workload and hour
//!   (and one for the RBAC inventory);
//! - no incident before the last `incident_days` days, so baselines are
//!   clean;
//! - at most one simulated hour of events is held in memory (the RBAC
//!   inventory keeps one entry per distinct account and route, not per
//!   event);
//! - no RBAC rule covers a call the simulator wrote as denied.
#![forbid(unsafe_code)]

pub mod estate;
pub mod generate;
pub mod incidents;
pub mod rbac;
pub mod render;
pub mod rng;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Serialize;

use estate::{Estate, HOUR_US};
use incidents::{Ctx, Plan};
use render::{rfc3339, Renderer};

pub type Result<T, E = SimError> = std::result::Result<T, E>;

/// The wire format of the generated decision logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SimFormat {
    #[default]
    Native,
    Opa,
    K8sAudit,
}

impl SimFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            SimFormat::Native => "native",
            SimFormat::Opa => "opa",
            SimFormat::K8sAudit => "k8s-audit",
        }
    }
}

impl std::str::FromStr for SimFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(SimFormat::Native),
            "opa" => Ok(SimFormat::Opa),
            "k8s-audit" | "k8s" => Ok(SimFormat::K8sAudit),
            other => Err(format!(
                "unknown format {other:?}: expected native, opa or k8s-audit"
            )),
        }
    }
}

/// The trust domain Kubernetes service accounts map to in `k8s-audit`
/// output (pass it to `overreach ingest --trust-domain`).
pub const K8S_TRUST_DOMAIN: &str = "prod.acme.example";

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimSettings {
    pub out: PathBuf,
    pub seed: u64,
    /// Workloads in the estate (split 50/30/20 over prod, staging, dev).
    pub identities: usize,
    pub days: u32,
    /// First simulated day (00:00 UTC).
    pub start: NaiveDate,
    pub format: SimFormat,
    /// Multiplies every workload's call rate.
    pub rate_scale: f64,
    /// Incidents fall in the last this many days.
    pub incident_days: u32,
    pub incidents_per_kind: u32,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            out: PathBuf::from("./overreach-sim"),
            seed: 1,
            identities: 500,
            days: 30,
            start: NaiveDate::from_ymd_opt(2026, 10, 1).unwrap_or_default(),
            format: SimFormat::Native,
            rate_scale: 1.0,
            incident_days: 7,
            incidents_per_kind: 4,
        }
    }
}

impl SimSettings {
    pub fn validate(&self) -> Result<()> {
        let invalid =
            |field: &'static str, reason: String| Err(SimError::Invalid { field, reason });
        if self.identities < 10 {
            return invalid(
                "identities",
                format!("{} is below the minimum of 10", self.identities),
            );
        }
        if self.days == 0 || self.days > 3660 {
            return invalid("days", format!("{} is not in 1..=3660", self.days));
        }
        if self.incident_days > self.days {
            return invalid(
                "incident-days",
                format!("{} is more than --days {}", self.incident_days, self.days),
            );
        }
        if !(self.rate_scale > 0.0 && self.rate_scale <= 10_000.0) {
            return invalid(
                "rate-scale",
                format!("{} is not in (0, 10000]", self.rate_scale),
            );
        }
        Ok(())
    }

    fn start_us(&self) -> i64 {
        self.start
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_micros())
            .unwrap_or_default()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("invalid --{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode a record for {path}: {source}")]
    Encode {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot encode {path}: {source}")]
    EncodeYaml {
        path: PathBuf,
        source: serde_yaml::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SimError + '_ {
    move |source| SimError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Reported after each simulated day.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub day: NaiveDate,
    /// 1-based.
    pub day_number: u32,
    pub days: u32,
    /// Events written so far.
    pub events: u64,
}

/// What a run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub format: &'static str,
    pub identities: usize,
    pub days: u32,
    /// Lines written to `decisions/`.
    pub events: u64,
    /// Events the format cannot carry (`opa`: Kubernetes API calls;
    /// `k8s-audit`: everything but prod Kubernetes API calls).
    pub skipped_events: u64,
    /// Incident labels written (`benign: false`), by kind.
    pub incidents: BTreeMap<String, u64>,
    /// Benign deploy labels written.
    pub deploys: u64,
    /// Of which events were labelled incident events.
    pub incident_events: u64,
    /// Kinds with fewer incidents than asked, and why.
    pub shortfall: Vec<String>,
    /// What `rbac.yaml` holds (`k8s-audit` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rbac: Option<rbac::RbacSummary>,
}

/// One line of `labels.jsonl`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Label {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub start: String,
    pub end: String,
    pub events: u64,
    pub description: String,
    pub benign: bool,
}

#[derive(Clone, Copy)]
struct Seen {
    first: i64,
    last: i64,
    count: u64,
}

/// Simulates `settings` into `settings.out`, reporting each finished day.
pub fn run(settings: &SimSettings, mut progress: impl FnMut(Progress)) -> Result<Summary> {
    settings.validate()?;
    let out = &settings.out;
    let decisions = out.join("decisions");
    std::fs::create_dir_all(&decisions).map_err(io(&decisions))?;
    let start_us = settings.start_us();
    let mut estate = Estate::build(settings.seed, settings.identities);
    let ctx = Ctx {
        seed: settings.seed,
        start_us,
        days: settings.days,
        incident_days: settings.incident_days,
        per_kind: settings.incidents_per_kind,
        format: settings.format,
        rate_scale: settings.rate_scale,
    };
    let Plan {
        labels: planned,
        events: mut incident_events,
        shortfall,
    } = incidents::plan(&mut estate, &ctx);

    let estate_path = out.join("estate.json");
    let mut text =
        serde_json::to_vec_pretty(&estate.to_json(settings.rate_scale)).map_err(|source| {
            SimError::Encode {
                path: estate_path.clone(),
                source,
            }
        })?;
    text.push(b'\n');
    std::fs::write(&estate_path, text).map_err(io(&estate_path))?;

    let renderer = Renderer::new(settings.format, settings.seed, &estate);
    let mut seen: Vec<Option<Seen>> = vec![None; planned.len()];
    let mut events = 0u64;
    let mut skipped = 0u64;
    let mut hour_events = Vec::new();
    let mut line = Vec::with_capacity(1024);
    let mut traffic = (settings.format == SimFormat::K8sAudit).then(rbac::Traffic::default);
    for day in 0..settings.days {
        let date = settings.start + chrono::Days::new(day as u64);
        let path = decisions.join(format!("{}.jsonl", date.format("%Y-%m-%d")));
        let mut file = BufWriter::with_capacity(1 << 20, File::create(&path).map_err(io(&path))?);
        for hour in 0..24 {
            let index = day as i64 * 24 + hour;
            let hour_us = start_us + index * HOUR_US;
            hour_events.clear();
            generate::background_hour(
                &estate,
                settings.seed,
                settings.rate_scale,
                hour_us,
                &mut hour_events,
            );
            if let Some(extra) = incident_events.remove(&index) {
                hour_events.extend(extra);
            }
            hour_events.sort_by_key(|e| e.t_us);
            for ev in &hour_events {
                if !renderer.carries(&estate, ev) {
                    skipped += 1;
                    continue;
                }
                line.clear();
                renderer
                    .line(&estate, ev, events, &mut line)
                    .map_err(|source| SimError::Encode {
                        path: path.clone(),
                        source,
                    })?;
                file.write_all(&line).map_err(io(&path))?;
                events += 1;
                if let Some(traffic) = traffic.as_mut() {
                    let incident = ev.label.is_some_and(|l| !planned[l as usize].benign);
                    traffic.record(ev, incident);
                }
                if let Some(l) = ev.label {
                    let s = seen[l as usize].get_or_insert(Seen {
                        first: ev.t_us,
                        last: ev.t_us,
                        count: 0,
                    });
                    s.first = s.first.min(ev.t_us);
                    s.last = s.last.max(ev.t_us);
                    s.count += 1;
                }
            }
        }
        file.flush().map_err(io(&path))?;
        progress(Progress {
            day: date,
            day_number: day + 1,
            days: settings.days,
            events,
        });
    }
    debug_assert!(
        incident_events.is_empty(),
        "every planned incident hour was generated"
    );

    // Labels, in time order.
    let mut written: Vec<(Seen, &incidents::Planned)> = planned
        .iter()
        .zip(&seen)
        .filter_map(|(p, s)| s.map(|s| (s, p)))
        .collect();
    written.sort_by_key(|(s, p)| (s.first, p.subject));
    let labels_path = out.join("labels.jsonl");
    let mut file = BufWriter::new(File::create(&labels_path).map_err(io(&labels_path))?);
    let mut summary = Summary {
        format: settings.format.as_str(),
        identities: settings.identities,
        days: settings.days,
        events,
        skipped_events: skipped,
        incidents: BTreeMap::new(),
        deploys: 0,
        incident_events: 0,
        shortfall,
        rbac: None,
    };
    for (i, (s, p)) in written.iter().enumerate() {
        let label = Label {
            id: format!("inc-{:04}", i + 1),
            kind: p.kind.to_owned(),
            subject: estate.workloads[p.subject].subject.clone(),
            start: rfc3339(s.first),
            end: rfc3339(s.last),
            events: s.count,
            description: p.description.clone(),
            benign: p.benign,
        };
        if p.benign {
            summary.deploys += 1;
        } else {
            *summary.incidents.entry(p.kind.to_owned()).or_default() += 1;
            summary.incident_events += s.count;
        }
        serde_json::to_writer(&mut file, &label).map_err(|source| SimError::Encode {
            path: labels_path.clone(),
            source,
        })?;
        file.write_all(b"\n").map_err(io(&labels_path))?;
    }
    file.flush().map_err(io(&labels_path))?;

    if let Some(traffic) = &traffic {
        let end_us = start_us + settings.days as i64 * estate::DAY_US;
        let inventory = rbac::build(&estate, traffic, settings.seed, start_us, end_us);
        inventory.write(out, settings.seed)?;
        summary.rbac = Some(inventory.summary());
    }
    Ok(summary)
}

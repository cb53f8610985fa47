//! The analytics stage of Overreach: reads the stored decision events
//! (`DIR/events/**.parquet`) with DataFusion and writes the result tables
//! under `DIR/analytics/` that `overreach serve` reads:
//!
//! - `baselines.parquet`: each identity's reach keys in the baseline window;
//! - `findings.parquet`: calls outside that reach, one kind per detector
//!   (see [`detect`]), scored and explained, with evidence;
//! - `suggestions.parquet`: least-privilege suggestions against a grants
//!   file, or the minimal policy of each identity without one;
//! - `identities.parquet`: one summary row per identity;
//! - `run.json`, written last, so its presence means the run is complete.
//!
//! Entry point: [`run`] with [`AnalyzeSettings`].
//!
//! Analytics never talks to Kafka, never serves HTTP, never writes under
//! `DIR/events/` and never changes a policy: suggestions are files for a
//! person to review. "Now" is an input (by default the latest stored event),
//! never the wall clock, so replaying old logs gives the same answers.
#![forbid(unsafe_code)]

pub mod detect;
pub mod diff;
mod error;
mod explain;
pub mod generalize;
pub mod glob;
pub mod grants;
mod hash;
pub mod istio;
mod manifests;
pub mod opa_data;
pub mod rbac;
pub mod rightsizing;
pub mod stats;
mod store;
#[cfg(test)]
mod test_rng;
pub mod weekly;
mod windows;

use std::collections::HashMap;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use overreach_model::duration::format_duration;
use overreach_model::report::IdentityRightsizing;
use overreach_model::results::{
    baseline_schema, finding_schema, identity_schema, suggestion_schema, BaselineEntry, Finding,
    IdentitySummary, RunInfo, Suggestion,
};
use overreach_model::table::{write_rows_atomic, write_text_atomic};
use overreach_model::DataDir;
use tracing::{info, warn};

pub use detect::DetectSettings;
pub use error::{AnalyticsError, Result};
pub use hash::stable_id;
pub use weekly::{store_weekly_report, weekly_report};
pub use windows::Windows;

use store::{EventStore, SubjectStats};

/// What one analysis run looks at. Build it with [`AnalyzeSettings::new`]
/// and change the fields that differ from the defaults.
#[derive(Debug, Clone)]
pub struct AnalyzeSettings {
    pub data: DataDir,
    /// The end of the detection and observation windows. `None`: the time
    /// of the latest stored event, so historical logs replay correctly.
    pub now: Option<DateTime<Utc>>,
    /// Baseline window, ending where the detection window begins (28d).
    pub baseline: Duration,
    /// Detection window, ending at now (1d).
    pub detect: Duration,
    /// Right-sizing observation window, ending at now (90d).
    pub observe: Duration,
    /// Grants inventories, each a grants file (see [`grants`]), Kubernetes
    /// RBAC manifests (see [`rbac`]), Istio AuthorizationPolicies (see
    /// [`istio`]) or OPA data-driven RBAC (see [`opa_data`]), detected by
    /// content; files of one kind are merged (a Role in one file, its
    /// binding in another). Without any, right-sizing derives each
    /// identity's minimal policy.
    pub grants: Vec<PathBuf>,
    /// Grants younger than this (by `creationTimestamp` or `since`) are not
    /// judged yet (14d).
    pub grace: Duration,
    /// Trust domain of the SPIFFE IDs of Kubernetes service accounts named
    /// in RBAC bindings (`cluster.local`), as ingest maps them.
    pub trust_domain: String,
    /// A wildcard grant is narrowed only when it was used for at most this
    /// many distinct action/resource pairs (5).
    pub narrow_max_values: usize,
    /// Detector settings: first-ever window, history needed, thresholds,
    /// resource generalization.
    pub detect_settings: DetectSettings,
    /// Compare with the previous run's suggestions (`suggestions.parquet`)
    /// for `used-after-suggestion` findings (true). An evaluation over many
    /// "now"s turns it off: the stored suggestions are not its previous run.
    pub follow_up: bool,
}

impl AnalyzeSettings {
    pub fn new(data: DataDir) -> Self {
        Self {
            data,
            now: None,
            baseline: Duration::days(28),
            detect: Duration::days(1),
            observe: Duration::days(90),
            grants: Vec::new(),
            grace: Duration::days(14),
            trust_domain: "cluster.local".to_owned(),
            narrow_max_values: 5,
            detect_settings: DetectSettings::default(),
            follow_up: true,
        }
    }
}

/// Runs the whole analysis and writes every result table, then `run.json`.
///
/// Fails with [`AnalyticsError::NoEvents`] when nothing has been ingested,
/// and before reading any event when the grants file or a window is bad.
///
/// Queries run on DataFusion; reading the grants file and writing the
/// (small) result files are plain blocking file IO on the calling task, so
/// a server that runs analyses should give them a task it can spare, or a
/// process of their own, as `overreach analyze` does.
pub async fn run(settings: &AnalyzeSettings) -> Result<RunInfo> {
    let results = analyze(settings).await?;
    let data = &settings.data;
    write_results(
        data,
        &results.info,
        &results.baselines,
        &results.findings,
        &results.suggestions,
        &results.identities,
    )?;
    info!(
        dir = %data.analytics().display(),
        baselines = results.baselines.len(),
        findings = results.info.findings,
        suggestions = results.info.suggestions,
        identities = results.info.identities,
        "wrote analysis results"
    );
    Ok(results.info)
}

/// Everything one analysis computes, before it is written.
#[derive(Debug, Clone)]
pub struct Results {
    pub info: RunInfo,
    pub baselines: Vec<BaselineEntry>,
    pub findings: Vec<Finding>,
    pub suggestions: Vec<Suggestion>,
    pub identities: Vec<IdentitySummary>,
    /// Granted against used per identity and inventory, for the weekly
    /// report.
    pub rightsizing: Vec<IdentityRightsizing>,
}

/// Runs the whole analysis and returns its results without writing them:
/// [`run`] writes them; an evaluation runs it for many "now"s.
pub async fn analyze(settings: &AnalyzeSettings) -> Result<Results> {
    let data = &settings.data;
    let inventory = Inventory::load_all(&settings.grants)?;
    // Validate the windows before the (possibly long) first query.
    Windows::check_lengths(settings.baseline, settings.detect, settings.observe)?;

    let store = EventStore::open(data).await?;
    let subjects = store.subjects().await?;
    let events: i64 = subjects.iter().map(|s| s.events).sum();
    let latest = subjects.iter().map(|s| s.last_seen).max();
    let (Some(latest), true) = (latest, events > 0) else {
        return Err(AnalyticsError::NoEvents { dir: data.events() });
    };
    let stored = store.stored_rows().await?;
    info!(
        events,
        copies_dropped = stored - events,
        identities = subjects.len(),
        "read stored events"
    );

    let now = settings.now.unwrap_or(latest);
    let windows = Windows::new(now, settings.baseline, settings.detect, settings.observe)?
        .with_history(settings.detect_settings.history)?;
    info!(
        now = %explain::time(windows.now),
        baseline_start = %explain::time(windows.baseline_start),
        detect_start = %explain::time(windows.detect_start),
        observe_start = %explain::time(windows.observe_start),
        "analysing windows"
    );

    let keys = store.key_stats(&windows).await?;
    let hourly = store.hourly(&windows).await?;
    let key_hours = store.key_hours(&windows).await?;
    let sources = store.sources(&windows).await?;
    let credentials = store.credentials(&windows).await?;
    let concrete_keys = store.concrete_keys(&windows).await?;
    let detection = detect::detect(
        &settings.detect_settings,
        &detect::Inputs {
            windows: &windows,
            subjects: &subjects,
            keys: &keys,
            hourly: &hourly,
            key_hours: &key_hours,
            sources: &sources,
            credentials: &credentials,
        },
    );
    let queries: Vec<_> = detection
        .drafts
        .iter()
        .map(|d| d.evidence.clone())
        .collect();
    let samples = store
        .evidence(&windows, &queries, detect::SAMPLE_EVENTS)
        .await?;
    let findings: Vec<Finding> = detection
        .drafts
        .into_iter()
        .zip(samples)
        .map(|(draft, samples)| Finding {
            sample_event_ids: samples,
            ..draft.finding
        })
        .collect();
    let below: i64 = detection.below_min_score.values().sum();
    info!(
        findings = findings.len(),
        below_min_score = below,
        reach_keys_concrete = concrete_keys,
        reach_keys_stored = detection.stored_keys,
        reach_keys_generalized = detection.generalized_keys,
        "detected findings"
    );

    inventory.check_trust_domain(&settings.trust_domain, &subjects);
    let outcome = right_size(settings, &store, &inventory, &subjects, &windows).await?;
    info!(
        suggestions = outcome.suggestions.len(),
        identities = outcome.identities.len(),
        "derived right-sizing suggestions"
    );
    let mut findings = findings;
    let previous = if settings.follow_up {
        previous_suggestions(data)
    } else {
        Vec::new()
    };
    let follow_ups = detect::used_after_suggestion(&previous, &outcome.used);
    if !follow_ups.is_empty() {
        info!(
            findings = follow_ups.len(),
            "permissions used after a suggestion proposed removing them"
        );
    }
    findings.extend(follow_ups);
    let suggestions = outcome.suggestions;

    let baselines = detection.baselines;
    let identities = summarize(&subjects, &baselines, &findings, &suggestions);

    let info = RunInfo {
        now,
        baseline_start: windows.baseline_start,
        detect_start: windows.detect_start,
        observe_start: windows.observe_start,
        baseline: format_duration(windows.baseline),
        detect: format_duration(windows.detect),
        observe: format_duration(windows.observe),
        events,
        identities: as_i64(identities.len()),
        findings: as_i64(findings.len()),
        suggestions: as_i64(suggestions.len()),
        grants_file: (!settings.grants.is_empty()).then(|| {
            settings
                .grants
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }),
        reach_keys_concrete: concrete_keys,
        reach_keys_stored: detection.stored_keys,
        reach_keys_generalized: detection.generalized_keys,
        below_min_score: detection
            .below_min_score
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
    };
    Ok(Results {
        info,
        baselines,
        findings,
        suggestions,
        identities,
        rightsizing: outcome.identities,
    })
}

/// Right-sizing alone at `now`, over a store and inventory the caller
/// opened and loaded once: what the weekly report runs for the end of the
/// week and a week earlier.
async fn rightsize_at(
    settings: &AnalyzeSettings,
    store: &EventStore,
    inventory: &Inventory,
    subjects: &[SubjectStats],
    now: DateTime<Utc>,
) -> Result<Rightsized> {
    let windows = Windows::new(now, settings.baseline, settings.detect, settings.observe)?;
    // Only what had happened by then counts, so a past week reads as it
    // did at the time.
    let subjects: Vec<SubjectStats> = subjects
        .iter()
        .filter(|s| s.first_seen <= now)
        .cloned()
        .collect();
    let outcome = right_size(settings, store, inventory, &subjects, &windows).await?;
    Ok(Rightsized {
        now,
        observe_start: windows.observe_start,
        suggestions: outcome.suggestions,
        identities: outcome.identities,
        granted: outcome.granted,
        used: outcome
            .used
            .into_iter()
            .map(|u| (u.subject, u.grant))
            .collect(),
    })
}

/// What [`rightsize_at`] found.
#[derive(Debug, Clone)]
struct Rightsized {
    pub now: DateTime<Utc>,
    pub observe_start: DateTime<Utc>,
    pub suggestions: Vec<Suggestion>,
    pub identities: Vec<IdentityRightsizing>,
    /// Every (subject, grant) and (subject, binding) the inventory holds.
    pub granted: Vec<(String, String)>,
    /// Every (subject, grant) and (subject, binding) used in the window.
    pub used: Vec<(String, String)>,
}

/// The previous run's suggestions, if it left any: the open suggestions a
/// `used-after-suggestion` finding refers to.
fn previous_suggestions(data: &DataDir) -> Vec<Suggestion> {
    let path = data.suggestions();
    if !path.exists() {
        return Vec::new();
    }
    match overreach_model::table::read_rows(&path) {
        Ok(rows) => rows,
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the previous suggestions; no used-after-suggestion findings this run");
            Vec::new()
        }
    }
}

/// Dead letters written since `since` (by their `ingested_at`), from the
/// ingester's `DIR/dead-letter/*.jsonl`. A record of a replayed old log is
/// dead-lettered long after its events happened, so for replays this
/// counts every dead letter since the window began: the cautious reading.
fn dead_letters_since(data: &DataDir, since: DateTime<Utc>) -> i64 {
    #[derive(serde::Deserialize)]
    struct Letter {
        ingested_at: DateTime<Utc>,
    }
    let Ok(entries) = std::fs::read_dir(data.dead_letter()) else {
        return 0;
    };
    let mut count = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&path) else {
            warn!(path = %path.display(), "cannot read a dead-letter file; confidence ignores it");
            continue;
        };
        count += text
            .lines()
            .filter_map(|l| serde_json::from_str::<Letter>(l).ok())
            .filter(|l| l.ingested_at >= since)
            .count();
    }
    as_i64(count)
}

/// Warns when none of the inventory's service accounts appears in the
/// events under `trust_domain` but some appear under another one: the
/// `--trust-domain` ingest used differs from the one analysis was given,
/// and every grant would look unused.
fn warn_on_trust_domain(
    accounts: &std::collections::BTreeMap<rbac::ServiceAccount, Vec<rbac::Grant>>,
    trust_domain: &str,
    subjects: &[SubjectStats],
) {
    let stored: std::collections::HashSet<&str> =
        subjects.iter().map(|s| s.subject.as_str()).collect();
    let ids: Vec<String> = accounts
        .keys()
        .filter_map(|sa| sa.spiffe_id(trust_domain).ok())
        .map(|id| id.to_string())
        .collect();
    if ids.is_empty() || ids.iter().any(|id| stored.contains(id.as_str())) {
        return;
    }
    // The accounts' SPIFFE paths, and the trust domains they were seen under.
    let paths: std::collections::HashSet<String> = accounts
        .keys()
        .map(|sa| format!("/ns/{}/sa/{}", sa.namespace, sa.name))
        .collect();
    let mut elsewhere: std::collections::BTreeMap<&str, usize> = Default::default();
    for s in subjects {
        let Some(domain) = s.trust_domain.as_deref() else {
            continue;
        };
        let path = s
            .subject
            .strip_prefix("spiffe://")
            .and_then(|rest| rest.strip_prefix(domain));
        if path.is_some_and(|p| paths.contains(p)) {
            *elsewhere.entry(domain).or_insert(0) += 1;
        }
    }
    match elsewhere.iter().max_by_key(|(_, n)| **n) {
        Some((domain, n)) => warn!(
            trust_domain,
            found_under = %domain,
            accounts = n,
            "no service account of the RBAC inventory made a call under --trust-domain {trust_domain}, but {n} did under {domain}: pass --trust-domain {domain}, or every grant looks unused"
        ),
        None => warn!(
            trust_domain,
            accounts = ids.len(),
            "no service account of the RBAC inventory made any stored call: check --trust-domain and that the events are from this cluster"
        ),
    }
}

/// Every inventory's right-sizing over `windows`, concatenated; without
/// an inventory, each identity's minimal policy.
async fn right_size(
    settings: &AnalyzeSettings,
    store: &EventStore,
    inventory: &Inventory,
    subjects: &[SubjectStats],
    windows: &Windows,
) -> Result<rightsizing::Outcome> {
    let coverage = store.coverage(windows).await?;
    let estate_first = subjects
        .iter()
        .map(|s| s.first_seen)
        .min()
        .unwrap_or(windows.now);
    let stored: i64 = coverage.events;
    let dead = dead_letters_since(&settings.data, windows.observe_start);
    let observed = rightsizing::Observed {
        windows,
        first_seen: subjects
            .iter()
            .map(|s| (s.subject.as_str(), s.first_seen))
            .collect(),
        estate_first,
        grace: settings.grace,
        gaps: rightsizing::Gaps::new(
            windows.observe_start.max(estate_first),
            windows.now,
            &coverage.hours,
            stored,
            dead,
        ),
        active_days: coverage.active_days,
    };
    if inventory.is_empty() {
        let usage = store.usage(windows, None).await?;
        return rightsizing::minimal_policies(&observed, &usage);
    }
    // Each inventory's identities, and one usage query over them all: each
    // engine looks its own identities up in it.
    let rbac_ids: Vec<String> = inventory
        .rbac
        .iter()
        .flat_map(|accounts| accounts.keys())
        .filter_map(|sa| sa.spiffe_id(&settings.trust_domain).ok())
        .map(|id| id.to_string())
        .collect();
    let spiffe: Vec<&str> = match inventory.istio {
        Some(_) => subjects
            .iter()
            .filter(|s| s.subject_kind == "spiffe")
            .map(|s| s.subject.as_str())
            .collect(),
        None => Vec::new(),
    };
    let opa_ids: Vec<String> = inventory
        .opa
        .iter()
        .flat_map(|data| data.user_roles.keys())
        .map(|id| id.to_string())
        .collect();
    let granted: std::collections::HashSet<&str> = inventory
        .grants
        .iter()
        .flat_map(|grants| grants.subjects())
        .collect();
    let mut names: Vec<&str> = rbac_ids
        .iter()
        .chain(&opa_ids)
        .map(String::as_str)
        .chain(spiffe.iter().copied())
        .chain(granted.iter().copied())
        .collect();
    names.sort_unstable();
    names.dedup();
    let usage = store.usage(windows, Some(&names)).await?;

    let mut out = rightsizing::Outcome::default();
    if let Some(accounts) = &inventory.rbac {
        out.extend(rightsizing::with_rbac(
            &observed,
            accounts,
            &settings.trust_domain,
            &usage,
            settings.detect_settings.generalizer.collapse_names(),
        )?);
    }
    if let Some(imported) = &inventory.istio {
        out.extend(rightsizing::with_istio(
            &observed, imported, &spiffe, &usage,
        )?);
    }
    if let Some(data) = &inventory.opa {
        out.extend(rightsizing::with_opa(&observed, data, &usage)?);
    }
    if let Some(grants) = &inventory.grants {
        let uncovered: i64 = usage
            .iter()
            .filter(|u| granted.contains(u.subject.as_str()))
            .filter(|u| {
                let resource = u.resource.as_deref().unwrap_or(&u.resource_pattern);
                !grants.covers(&u.subject, &u.action, resource, &u.resource_pattern)
            })
            .map(|u| u.count)
            .sum();
        if uncovered > 0 {
            warn!(
                calls = uncovered,
                "allowed calls of granted identities that no grant covers: the grants file is incomplete"
            );
        }
        out.extend(rightsizing::with_grants(
            &observed,
            grants,
            &usage,
            settings.narrow_max_values,
        )?);
    }
    rightsizing::sort(&mut out.suggestions);
    Ok(out)
}

/// What the `--grants` files hold, merged by kind: grants files,
/// Istio AuthorizationPolicies, OPA data-driven RBAC, and Kubernetes RBAC
/// resolved to each service account's rules.
#[derive(Default)]
struct Inventory {
    grants: Option<grants::Grants>,
    istio: Option<istio::Imported>,
    opa: Option<opa_data::OpaData>,
    rbac: Option<std::collections::BTreeMap<rbac::ServiceAccount, Vec<rbac::Grant>>>,
}

impl Inventory {
    /// See [`warn_on_trust_domain`]; once per run, not per window.
    fn check_trust_domain(&self, trust_domain: &str, subjects: &[SubjectStats]) {
        if let Some(accounts) = &self.rbac {
            warn_on_trust_domain(accounts, trust_domain, subjects);
        }
    }

    fn is_empty(&self) -> bool {
        self.grants.is_none() && self.istio.is_none() && self.opa.is_none() && self.rbac.is_none()
    }

    /// Reads every file once; its content says which importer it is for.
    /// Files of one kind are merged before they are resolved, so a
    /// binding may name a role defined in another file.
    fn load_all(paths: &[PathBuf]) -> Result<Self> {
        let mut inventory = Inventory::default();
        let mut rbac_all: Option<rbac::Imported> = None;
        for path in paths {
            let text =
                std::fs::read_to_string(path).map_err(|source| grants::GrantsError::Read {
                    path: path.to_owned(),
                    source,
                })?;
            match manifests::inventory_kind(&text) {
                manifests::InventoryKind::Opa => {
                    let data = opa_data::parse(&text, path)?;
                    info!(
                        path = %path.display(),
                        identities = data.user_roles.len(),
                        roles = data.role_grants.len(),
                        "loaded OPA data-driven RBAC inventory"
                    );
                    merge_into(&mut inventory.opa, data, opa_data::OpaData::merge);
                }
                manifests::InventoryKind::Istio => {
                    let imported = istio::parse(&text, path)?;
                    info!(
                        path = %path.display(),
                        allow_policies = imported.allow.len(),
                        other_policies = imported.aside.len(),
                        "loaded Istio AuthorizationPolicy inventory"
                    );
                    merge_into(&mut inventory.istio, imported, istio::Imported::merge);
                }
                manifests::InventoryKind::Rbac => {
                    let imported = rbac::parse(&text, path)?;
                    info!(
                        path = %path.display(),
                        roles = imported.rbac.roles.len(),
                        bindings = imported.rbac.bindings.len(),
                        "loaded Kubernetes RBAC manifests"
                    );
                    merge_into(&mut rbac_all, imported, rbac::Imported::merge);
                }
                manifests::InventoryKind::Grants => {
                    let parsed = grants::parse_detected(&text, path)?;
                    info!(path = %path.display(), grants = parsed.len(), "loaded grants file");
                    merge_into(&mut inventory.grants, parsed, grants::Grants::extend);
                }
            }
        }
        for policy in inventory.istio.iter().flat_map(|i| &i.replaced) {
            warn!(
                %policy,
                "AuthorizationPolicy given twice: the later definition replaces the earlier"
            );
        }
        if let Some(imported) = rbac_all {
            let resolved = rbac::resolve(&imported.rbac);
            for warning in &resolved.warnings {
                warn!(%warning, "rbac inventory");
            }
            let accounts = resolved.service_accounts();
            info!(
                service_accounts = accounts.len(),
                "resolved Kubernetes RBAC inventory"
            );
            inventory.rbac = Some(accounts);
        }
        Ok(inventory)
    }
}

/// Adds `item` to what `slot` holds already, or makes it the first.
fn merge_into<T>(slot: &mut Option<T>, item: T, merge: fn(&mut T, T)) {
    match slot {
        Some(all) => merge(all, item),
        None => *slot = Some(item),
    }
}

/// A count as the `i64` the tables store (saturating, never wrapping).
pub(crate) fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One row per subject, with how many baseline keys, findings and
/// suggestions it has.
fn summarize(
    subjects: &[SubjectStats],
    baselines: &[BaselineEntry],
    findings: &[Finding],
    suggestions: &[Suggestion],
) -> Vec<IdentitySummary> {
    fn tally<'a>(names: impl Iterator<Item = &'a str>) -> HashMap<&'a str, i64> {
        let mut counts = HashMap::new();
        for name in names {
            *counts.entry(name).or_insert(0) += 1;
        }
        counts
    }
    let baseline_keys = tally(baselines.iter().map(|b| b.subject.as_str()));
    let finding_counts = tally(findings.iter().map(|f| f.subject.as_str()));
    let suggestion_counts = tally(suggestions.iter().map(|s| s.subject.as_str()));
    let get =
        |counts: &HashMap<&str, i64>, subject: &str| counts.get(subject).copied().unwrap_or(0);
    subjects
        .iter()
        .map(|s| IdentitySummary {
            subject: s.subject.clone(),
            subject_kind: s.subject_kind.clone(),
            trust_domain: s.trust_domain.clone(),
            events: s.events,
            allow_count: s.allow_count,
            deny_count: s.deny_count,
            first_seen: s.first_seen,
            last_seen: s.last_seen,
            baseline_keys: get(&baseline_keys, &s.subject),
            findings: get(&finding_counts, &s.subject),
            suggestions: get(&suggestion_counts, &s.subject),
        })
        .collect()
}

/// Writes every table atomically, then `run.json`: a reader that finds
/// `run.json` finds the tables of that run (or of a later one).
fn write_results(
    data: &DataDir,
    info: &RunInfo,
    baselines: &[BaselineEntry],
    findings: &[Finding],
    suggestions: &[Suggestion],
    identities: &[IdentitySummary],
) -> Result<()> {
    let tmp = data.tmp();
    let metadata = [
        ("overreach.now", explain::time(info.now)),
        (
            "overreach.baseline_start",
            explain::time(info.baseline_start),
        ),
        ("overreach.detect_start", explain::time(info.detect_start)),
        ("overreach.observe_start", explain::time(info.observe_start)),
    ]
    .map(|(k, v)| (k.to_owned(), v));
    write_rows_atomic(
        &data.baselines(),
        &tmp,
        &baseline_schema(),
        baselines,
        &metadata,
    )?;
    write_rows_atomic(
        &data.findings(),
        &tmp,
        &finding_schema(),
        findings,
        &metadata,
    )?;
    write_rows_atomic(
        &data.suggestions(),
        &tmp,
        &suggestion_schema(),
        suggestions,
        &metadata,
    )?;
    write_rows_atomic(
        &data.identities(),
        &tmp,
        &identity_schema(),
        identities,
        &metadata,
    )?;
    let json = serde_json::to_string_pretty(info).map_err(AnalyticsError::RunInfo)?;
    write_text_atomic(&data.run_info(), &tmp, &format!("{json}\n"))?;
    Ok(())
}

//! The server's state: where the data directory is, the analysis results
//! loaded from it, and the metrics.
//!
//! Results are loaded lazily, on the first request that needs them, and
//! kept until `run.json` changes. `overreach analyze` writes its tables
//! first and `run.json` last, each by atomic rename, so a changed `run.json`
//! (modification time, size or file identity) means a complete new run:
//! the next request loads it, without a restart. This module only reads;
//! it never writes into the data directory and never recomputes analytics.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use overreach_model::results::{BaselineEntry, Finding, IdentitySummary, RunInfo, Suggestion};
use overreach_model::table::{read_rows, TableError};
use overreach_model::DataDir;

use crate::error::{ApiError, Result};
use crate::metrics::{AnalysisGauges, Metrics};

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    data: DataDir,
    /// The last loaded results, if any.
    cached: RwLock<Option<Arc<Snapshot>>>,
    /// Held while loading, so concurrent requests load a new run once.
    loading: tokio::sync::Mutex<()>,
    metrics: Metrics,
}

impl AppState {
    pub fn new(data: DataDir) -> Self {
        Self {
            inner: Arc::new(Inner {
                data,
                cached: RwLock::new(None),
                loading: tokio::sync::Mutex::new(()),
                metrics: Metrics::new(),
            }),
        }
    }

    pub fn data(&self) -> &DataDir {
        &self.inner.data
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The results of the last analysis, loading them if `run.json` changed
    /// since they were last loaded. [`ApiError::NotAnalyzed`] if there is no
    /// `run.json`.
    pub async fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let run_info = self.inner.data.run_info();
        let stamp = {
            let run_info = run_info.clone();
            tokio::task::spawn_blocking(move || Stamp::of(&run_info)).await?
        };
        let stamp = match stamp {
            Ok(stamp) => stamp,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.set_cached(None);
                return Err(self.not_analyzed());
            }
            Err(source) => {
                return Err(ApiError::RunInfo {
                    path: run_info,
                    source,
                })
            }
        };
        if let Some(snapshot) = self.cached_if(&stamp) {
            return Ok(snapshot);
        }
        let _loading = self.inner.loading.lock().await;
        // Another request may have loaded this run while we waited.
        if let Some(snapshot) = self.cached_if(&stamp) {
            return Ok(snapshot);
        }
        let data = self.inner.data.clone();
        let loaded = tokio::task::spawn_blocking(move || Snapshot::load(&data)).await?;
        match loaded {
            Ok(snapshot) => {
                let snapshot = Arc::new(snapshot);
                tracing::info!(
                    analytics = %self.inner.data.analytics().display(),
                    identities = snapshot.identities.len(),
                    findings = snapshot.findings.len(),
                    suggestions = snapshot.suggestions.len(),
                    "loaded analysis results"
                );
                self.set_cached(Some(snapshot.clone()));
                Ok(snapshot)
            }
            Err(LoadError::NotAnalyzed) => {
                self.set_cached(None);
                Err(self.not_analyzed())
            }
            Err(LoadError::Api(e)) => Err(e),
        }
    }

    /// The analysis gauges for `/metrics`, or `None` before analysis.
    pub async fn gauges(&self) -> Result<Option<AnalysisGauges>> {
        match self.snapshot().await {
            Ok(snapshot) => Ok(Some(snapshot.gauges())),
            Err(ApiError::NotAnalyzed { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn not_analyzed(&self) -> ApiError {
        ApiError::NotAnalyzed {
            data_dir: self.inner.data.root().to_owned(),
        }
    }

    fn cached_if(&self, stamp: &Stamp) -> Option<Arc<Snapshot>> {
        let cached = self
            .inner
            .cached
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cached.as_ref().filter(|s| s.stamp == *stamp).cloned()
    }

    fn set_cached(&self, snapshot: Option<Arc<Snapshot>>) {
        let mut cached = self
            .inner
            .cached
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *cached = snapshot;
    }
}

/// What identifies one version of `run.json`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    /// Inode on Unix: a rename puts a new file in place even when time and
    /// size happen to match.
    file_id: u64,
}

impl Stamp {
    fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            file_id: file_id(&meta),
        })
    }
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(meta)
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> u64 {
    0
}

enum LoadError {
    NotAnalyzed,
    Api(ApiError),
}

impl From<ApiError> for LoadError {
    fn from(e: ApiError) -> Self {
        LoadError::Api(e)
    }
}

impl From<TableError> for LoadError {
    fn from(e: TableError) -> Self {
        LoadError::Api(e.into())
    }
}

/// One loaded analysis, sorted and indexed for the handlers.
#[derive(Debug)]
pub struct Snapshot {
    stamp: Stamp,
    pub run: RunInfo,
    /// By findings, descending, then subject.
    pub identities: Vec<IdentitySummary>,
    identity_index: HashMap<String, usize>,
    /// Per subject, by count descending, then action and resource.
    baselines: HashMap<String, Vec<BaselineEntry>>,
    /// By score descending, then last seen descending, then id.
    pub findings: Vec<Finding>,
    /// Riskiest first, then by confidence descending, then subject and id.
    pub suggestions: Vec<Suggestion>,
}

/// How often a load is retried when `run.json` changes while it runs.
const LOAD_ATTEMPTS: usize = 3;

impl Snapshot {
    /// Reads `run.json` and every table. If `run.json` changed while the
    /// tables were read (a new analysis finished meanwhile), reads again, a
    /// few times at most; the snapshot keeps the stamp seen *before*
    /// reading, so a mixed read is replaced on the next request.
    fn load(data: &DataDir) -> Result<Self, LoadError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let snapshot = Self::load_once(data)?;
            let after = match Stamp::of(&data.run_info()) {
                Ok(stamp) => stamp,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(LoadError::NotAnalyzed)
                }
                Err(source) => {
                    return Err(ApiError::RunInfo {
                        path: data.run_info(),
                        source,
                    }
                    .into())
                }
            };
            if after == snapshot.stamp || attempt >= LOAD_ATTEMPTS {
                return Ok(snapshot);
            }
            tracing::debug!(attempt, "run.json changed while loading, reading again");
        }
    }

    fn load_once(data: &DataDir) -> Result<Self, LoadError> {
        let path = data.run_info();
        let stamp = match Stamp::of(&path) {
            Ok(stamp) => stamp,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::NotAnalyzed),
            Err(source) => return Err(ApiError::RunInfo { path, source }.into()),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(LoadError::NotAnalyzed),
            Err(source) => return Err(ApiError::RunInfo { path, source }.into()),
        };
        let run: RunInfo =
            serde_json::from_str(&text).map_err(|source| ApiError::RunInfoJson { path, source })?;
        let identities = read_rows::<IdentitySummary>(&data.identities())?;
        let baseline = read_rows::<BaselineEntry>(&data.baselines())?;
        let findings = read_rows::<Finding>(&data.findings())?;
        let suggestions = read_rows::<Suggestion>(&data.suggestions())?;
        Ok(Self::new(
            stamp,
            run,
            identities,
            baseline,
            findings,
            suggestions,
        ))
    }

    fn new(
        stamp: Stamp,
        run: RunInfo,
        mut identities: Vec<IdentitySummary>,
        baseline: Vec<BaselineEntry>,
        mut findings: Vec<Finding>,
        mut suggestions: Vec<Suggestion>,
    ) -> Self {
        identities.sort_by(|a, b| {
            b.findings
                .cmp(&a.findings)
                .then_with(|| a.subject.cmp(&b.subject))
        });
        let identity_index = identities
            .iter()
            .enumerate()
            .map(|(i, identity)| (identity.subject.clone(), i))
            .collect();
        let mut baselines: HashMap<String, Vec<BaselineEntry>> = HashMap::new();
        for entry in baseline {
            baselines
                .entry(entry.subject.clone())
                .or_default()
                .push(entry);
        }
        for entries in baselines.values_mut() {
            entries.sort_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.action.cmp(&b.action))
                    .then_with(|| a.resource_pattern.cmp(&b.resource_pattern))
                    .then_with(|| a.target.cmp(&b.target))
            });
        }
        findings.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| b.last_seen.cmp(&a.last_seen))
                .then_with(|| a.id.cmp(&b.id))
        });
        suggestions.sort_by(|a, b| {
            risk_rank(&b.risk)
                .cmp(&risk_rank(&a.risk))
                .then_with(|| {
                    b.confidence
                        .partial_cmp(&a.confidence)
                        .unwrap_or(Ordering::Equal)
                })
                .then_with(|| a.subject.cmp(&b.subject))
                .then_with(|| a.id.cmp(&b.id))
        });
        Self {
            stamp,
            run,
            identities,
            identity_index,
            baselines,
            findings,
            suggestions,
        }
    }

    pub fn identity(&self, subject: &str) -> Option<&IdentitySummary> {
        self.identity_index
            .get(subject)
            .and_then(|&i| self.identities.get(i))
    }

    /// The baseline reach keys of `subject` (empty if it has none).
    pub fn baseline(&self, subject: &str) -> &[BaselineEntry] {
        self.baselines
            .get(subject)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    pub fn findings_of<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = &'a Finding> + 'a {
        self.findings.iter().filter(move |f| f.subject == subject)
    }

    pub fn suggestions_of<'a>(
        &'a self,
        subject: &'a str,
    ) -> impl Iterator<Item = &'a Suggestion> + 'a {
        self.suggestions
            .iter()
            .filter(move |s| s.subject == subject)
    }

    pub fn gauges(&self) -> AnalysisGauges {
        AnalysisGauges::new(
            self.findings.iter().map(|f| f.kind.as_str()),
            self.identities.len(),
            self.run.events,
            self.suggestions.len(),
        )
    }
}

/// Orders suggestion risks: unknown values sort last.
fn risk_rank(risk: &str) -> u8 {
    match risk {
        "high" => 3,
        "medium" => 2,
        "low" => 1,
        _ => 0,
    }
}

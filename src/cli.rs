//! Flags, validated once into each stage's settings, then handed to the
//! library crates. Every flag has an `OVERREACH_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use overreach_analytics::AnalyzeSettings;
use overreach_ingest::decode::{DecodeOptions, Format};
use overreach_ingest::sink::FlushPolicy;
use overreach_model::duration::parse_duration;
use overreach_model::DataDir;

const EXAMPLES: &str = "\
Examples:
  overreach demo
      everything on the shipped Kubernetes audit sample, served on http://127.0.0.1:8080
  overreach ingest --file audit.jsonl.gz --data ./data
  overreach ingest --brokers localhost:9092 --topic decisions --group overreach --data ./data --until-caught-up
  overreach produce --brokers localhost:9092 --topic decisions audit.jsonl.gz
  overreach analyze --data ./data --baseline 3m --detect 1m
  overreach analyze --data ./data --grants grants.yaml
  overreach report --data ./data --grants rbac.yaml --week 2026-W48 --out week48.html
  overreach serve --data ./data --listen 127.0.0.1:8080
  overreach simulate --out ./sim --identities 500 --days 30
  overreach evaluate --data ./sim-data --labels ./sim/labels.jsonl      (after ingesting ./sim/decisions)";

#[derive(Debug, Parser)]
#[command(
    name = "overreach",
    version,
    about = "Watches what workload identities do and shows where they reach too far",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// Log filter (tracing syntax), for example `info` or `overreach_ingest=debug`.
    #[arg(long, global = true, env = "OVERREACH_LOG", default_value = "info")]
    pub log: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Store decision logs from Kafka or files as Parquet.
    #[command(after_help = "Examples:
  overreach ingest --file audit.jsonl.gz --file opa.jsonl --data ./data
  cat audit.jsonl | overreach ingest --file - --data ./data
  overreach ingest --brokers localhost:9092 --topic decisions --group overreach --data ./data --until-caught-up")]
    Ingest(IngestArgs),
    /// Replay files into a Kafka topic, one message per line.
    #[command(after_help = "Example:
  overreach produce --brokers localhost:9092 --topic decisions --create-partitions 3 audit.jsonl.gz")]
    Produce(ProduceArgs),
    /// Compute baselines, findings and least-privilege suggestions.
    #[command(after_help = "Examples:
  overreach analyze --data ./data
  overreach analyze --data ./data --baseline 3m --detect 1m --now 2023-01-27T18:32:12Z
  overreach analyze --data ./data --grants grants.yaml --observe 90d
  overreach analyze --data ./data --grants rbac.json   # kubectl get roles,rolebindings,clusterroles,clusterrolebindings -A -o json
  overreach analyze --data ./data --grants rbac.yaml --grants istio.yaml --grace 7d
  overreach analyze --data ./data --min-score 60 --generalize '^/tenants/[^/]+=>/tenants/{tenant}'")]
    Analyze(AnalyzeArgs),
    /// Write the weekly right-sizing report: granted against used, creep
    /// scores, ranked suggestions, what changed since the week before.
    #[command(after_help = "Examples:
  overreach report --data ./data --grants rbac.yaml --week 2026-W48 --out week48.html
  overreach report --data ./data --grants rbac.yaml --grants istio.yaml --format md
  overreach report --data ./data --grants data.json --format csv --out week.csv

The report is also stored as JSON under DIR/reports/weekly/, where
`overreach serve` finds it (GET /v1/reports/weekly?week=2026-W48&format=html)
and next week's report finds the week before.")]
    Report(ReportArgs),
    /// Serve the HTTP API, metrics and the built-in page.
    #[command(after_help = "Example:
  overreach serve --data ./data --listen 127.0.0.1:8080")]
    Serve(ServeArgs),
    /// Run the whole pipeline on the shipped sample: in-process Kafka, ingest, analyze, serve.
    #[command(after_help = "Example:
  overreach demo                # then open http://127.0.0.1:8080/
  overreach demo --no-serve     # run the pipeline, print the summary, exit")]
    Demo(DemoArgs),
    /// Generate labelled synthetic decision logs to measure the detectors.
    #[command(after_help = "Examples:
  overreach simulate --out ./sim                       # 500 identities, 30 days, native JSON
  overreach simulate --out ./sim --identities 40 --days 10 --incidents-per-kind 1
  overreach simulate --out ./sim-opa --format opa --seed 7 --rate-scale 0.5
  overreach simulate --out ./sim-k8s --format k8s-audit
      then: overreach ingest --format k8s-audit --trust-domain prod.acme.example --data ./sim-k8s-data --file ./sim-k8s/decisions/*.jsonl
      and:  overreach report --data ./sim-k8s-data --grants ./sim-k8s/rbac.yaml --trust-domain prod.acme.example --observe 28d --out week.html")]
    Simulate(SimulateArgs),
    /// Measure the detectors on labelled data: precision, recall and findings per identity per day.
    #[command(after_help = "Examples:
  overreach simulate --out ./sim --seed 2
  overreach ingest --file ./sim/decisions/*.jsonl --data ./sim-data
  overreach evaluate --data ./sim-data --labels ./sim/labels.jsonl --clean-days 3
  bash bench/evaluate.sh          # the whole loop, training and evaluation seeds")]
    Evaluate(EvaluateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The labels `overreach simulate` wrote (labels.jsonl).
    #[arg(long, env = "OVERREACH_LABELS")]
    pub labels: PathBuf,
    /// Also evaluate this many incident-free days before the first incident.
    #[arg(long, default_value_t = 3)]
    pub clean_days: u32,
    /// Baseline window before each evaluated day.
    #[arg(long, env = "OVERREACH_BASELINE", default_value = "28d")]
    pub baseline: String,
    /// Write the report as JSON here as well.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write every evaluated day's findings (JSON lines) here.
    #[arg(long)]
    pub findings_out: Option<PathBuf>,
    #[command(flatten)]
    pub detect: DetectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Data directory: events, dead letters and analysis results.
    #[arg(long, env = "OVERREACH_DATA", default_value = "./overreach-data")]
    pub data: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct DecodeArgs {
    /// Input format: auto (per record), native, k8s-audit or opa.
    #[arg(long, env = "OVERREACH_FORMAT", default_value = "auto")]
    pub format: Format,
    /// Trust domain for SPIFFE IDs derived from Kubernetes service accounts.
    #[arg(long, env = "OVERREACH_TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
    /// Where OPA decision logs keep the caller's identity.
    #[arg(
        long,
        env = "OVERREACH_OPA_PRINCIPAL_PATH",
        default_value = "input.attributes.source.principal"
    )]
    pub opa_principal_path: String,
    /// Records larger than this many bytes are dead-lettered unparsed.
    #[arg(long, env = "OVERREACH_MAX_RECORD_BYTES", default_value_t = 1 << 20)]
    pub max_record_bytes: usize,
    /// Events dated further than this into the future (of the ingest
    /// clock) are dead-lettered as implausible (s, m, h, d).
    #[arg(long, env = "OVERREACH_MAX_FUTURE", default_value = "1d")]
    pub max_future: String,
}

impl DecodeArgs {
    fn options(&self) -> Result<DecodeOptions> {
        overreach_model::SpiffeId::parse(&format!("spiffe://{}", self.trust_domain))
            .with_context(|| format!("--trust-domain {:?}", self.trust_domain))?;
        let path: Vec<String> = self
            .opa_principal_path
            .split('.')
            .map(String::from)
            .collect();
        if path.first().map(String::as_str) != Some("input") || path.iter().any(String::is_empty) {
            bail!(
                "--opa-principal-path {:?}: expected a dotted path under `input`, for example input.attributes.source.principal",
                self.opa_principal_path
            );
        }
        let max_future = parse_duration(&self.max_future).context("--max-future")?;
        Ok(DecodeOptions {
            format: self.format,
            trust_domain: self.trust_domain.clone(),
            opa_principal_path: path,
            max_record_bytes: self.max_record_bytes,
            latest: Some(Utc::now() + max_future),
            ..DecodeOptions::default()
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct FlushArgs {
    /// Write a Parquet file once this many records are waiting.
    #[arg(long, env = "OVERREACH_BATCH_ROWS", default_value_t = 100_000)]
    pub batch_rows: usize,
    /// ... or once the waiting records hold this many bytes ...
    #[arg(long, env = "OVERREACH_BATCH_BYTES", default_value_t = 64 << 20)]
    pub batch_bytes: usize,
    /// ... or once the oldest waiting record is this old (s, m, h).
    #[arg(long, env = "OVERREACH_FLUSH_INTERVAL", default_value = "5s")]
    pub flush_interval: String,
}

impl FlushArgs {
    fn policy(&self) -> Result<FlushPolicy> {
        let age = parse_duration(&self.flush_interval).context("--flush-interval")?;
        Ok(FlushPolicy {
            max_rows: self.batch_rows.max(1),
            max_bytes: self.batch_bytes.max(1),
            max_age: age.to_std().unwrap_or(Duration::from_secs(5)),
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Files to ingest (NDJSON, .gz, or - for stdin); instead of Kafka.
    #[arg(long, num_args = 1.., conflicts_with_all = ["brokers", "topic"])]
    pub file: Vec<PathBuf>,
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, env = "OVERREACH_BROKERS")]
    pub brokers: Option<String>,
    /// Topic to consume.
    #[arg(long, env = "OVERREACH_TOPIC")]
    pub topic: Option<String>,
    /// Consumer group.
    #[arg(long, env = "OVERREACH_GROUP", default_value = "overreach-ingest")]
    pub group: String,
    /// Exit once every partition's high watermark seen at start is reached
    /// (for a group's only member: it waits for all partitions).
    #[arg(long)]
    pub until_caught_up: bool,
    /// How long the group waits for a silent member before moving its
    /// partitions to the others (s, m).
    #[arg(long, env = "OVERREACH_SESSION_TIMEOUT", default_value = "45s")]
    pub session_timeout: String,
    /// Serve Prometheus metrics (GET /metrics) on this address.
    #[arg(long, env = "OVERREACH_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Also send dead letters (JSON, keyed by origin) to this topic.
    #[arg(long, env = "OVERREACH_DEAD_LETTER_TOPIC")]
    pub dead_letter_topic: Option<String>,
    #[command(flatten)]
    pub decode: DecodeArgs,
    #[command(flatten)]
    pub flush: FlushArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ProduceArgs {
    /// Kafka bootstrap servers, HOST:PORT[,HOST:PORT...].
    #[arg(long, env = "OVERREACH_BROKERS")]
    pub brokers: String,
    /// Topic to write to.
    #[arg(long, env = "OVERREACH_TOPIC")]
    pub topic: String,
    /// Create the topic with this many partitions if it does not exist.
    #[arg(long)]
    pub create_partitions: Option<i32>,
    /// At most this many records per produced batch. Tansu 0.6 serves a
    /// fetch only from the first offset of a batch, so consumers that seek
    /// (restarts) need `--batch-records 1` against it.
    #[arg(long)]
    pub batch_records: Option<u32>,
    /// Files to replay (NDJSON, .gz, or - for stdin).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct WindowArgs {
    /// End of the detection window (RFC 3339); default: the latest event.
    #[arg(long, env = "OVERREACH_NOW")]
    pub now: Option<DateTime<Utc>>,
    /// Baseline window, ending where detection begins (s, m, h, d, w).
    #[arg(long, env = "OVERREACH_BASELINE", default_value = "28d")]
    pub baseline: String,
    /// Detection window, ending at now.
    #[arg(long, env = "OVERREACH_DETECT", default_value = "1d")]
    pub detect: String,
    #[command(flatten)]
    pub rightsize: RightsizeArgs,
}

/// What right-sizing compares: the window, the inventories, the grace
/// period.
#[derive(Debug, Clone, Args)]
pub struct RightsizeArgs {
    /// Right-sizing observation window, ending at now (s, m, h, d, w).
    #[arg(long, env = "OVERREACH_OBSERVE", default_value = "90d")]
    pub observe: String,
    /// Granted permissions to right-size; repeat the flag for several files
    /// (`--grants rbac.yaml --grants istio.yaml`; in OVERREACH_GRANTS,
    /// comma-separated). Each is detected by its shape: a grants file (YAML
    /// or JSON), Kubernetes RBAC manifests (Roles, ClusterRoles and their
    /// bindings, multi-document YAML or `kubectl get -o json`), Istio
    /// AuthorizationPolicies, or OPA data-driven RBAC (`user_roles` and
    /// `role_grants`). Files of one kind are merged.
    #[arg(long, env = "OVERREACH_GRANTS", value_delimiter = ',')]
    pub grants: Vec<PathBuf>,
    /// Grants younger than this (by `metadata.creationTimestamp`, or
    /// `since` in a grants file) are not judged yet (s, m, h, d, w).
    #[arg(long, env = "OVERREACH_GRACE", default_value = "14d")]
    pub grace: String,
    /// Trust domain of the SPIFFE IDs of service accounts named in RBAC
    /// bindings (as `overreach ingest --trust-domain` maps them).
    #[arg(long, env = "OVERREACH_TRUST_DOMAIN", default_value = "cluster.local")]
    pub trust_domain: String,
}

impl RightsizeArgs {
    fn apply(&self, s: &mut AnalyzeSettings) -> Result<()> {
        s.observe = parse_duration(&self.observe).context("--observe")?;
        s.grace = parse_duration(&self.grace).context("--grace")?;
        s.grants = self.grants.clone();
        s.trust_domain = self.trust_domain.clone();
        Ok(())
    }
}

impl WindowArgs {
    fn settings(&self, data: DataDir) -> Result<AnalyzeSettings> {
        let mut s = AnalyzeSettings::new(data);
        s.now = self.now;
        s.baseline = parse_duration(&self.baseline).context("--baseline")?;
        s.detect = parse_duration(&self.detect).context("--detect")?;
        self.rightsize.apply(&mut s)?;
        Ok(s)
    }
}

/// Detector settings; each rule and default is documented in the README
/// ("Analysis") and in `overreach_analytics::detect`, and the defaults were
/// tuned on the simulator's training seed (`bench/evaluate.sh`).
#[derive(Debug, Clone, Args)]
pub struct DetectArgs {
    /// First-ever window: a reach key used this long before the detection
    /// window is not new (never shorter than --baseline).
    #[arg(long, env = "OVERREACH_HISTORY", default_value = "90d")]
    pub history: String,
    /// History an identity needs before per-key detectors judge it; until
    /// then it gets one new-identity finding (at most half of --baseline).
    #[arg(long, env = "OVERREACH_MIN_HISTORY", default_value = "7d")]
    pub min_history: String,
    /// Findings scoring below this (0-100) are counted, not reported.
    #[arg(long, env = "OVERREACH_MIN_SCORE", default_value_t = 40)]
    pub min_score: i64,
    /// Family-wise error rate of the rate detectors (Bonferroni-corrected).
    #[arg(long, env = "OVERREACH_ALPHA", default_value_t = 0.01)]
    pub alpha: f64,
    /// Kubernetes object names of one kind collapse to `*` for an identity
    /// that touches more than this many.
    #[arg(long, env = "OVERREACH_COLLAPSE_NAMES", default_value_t = 5)]
    pub collapse_names: usize,
    /// A Kubernetes kind's namespace collapses to `*` for an identity that
    /// touches it in more than this many namespaces.
    #[arg(long, env = "OVERREACH_COLLAPSE_NAMESPACES", default_value_t = 2)]
    pub collapse_namespaces: usize,
    /// Extra resource generalization rule `REGEX=>REPLACEMENT`, applied
    /// after the built-in ones; repeatable. Example: '^/tenants/[^/]+=>/tenants/{tenant}'.
    #[arg(long = "generalize", env = "OVERREACH_GENERALIZE")]
    pub generalize: Vec<String>,
    /// Credentials valid for longer than this at call time are long-lived.
    #[arg(long, env = "OVERREACH_MAX_CREDENTIAL_LIFETIME", default_value = "24h")]
    pub max_credential_lifetime: String,
}

impl DetectArgs {
    pub fn apply(&self, s: &mut overreach_analytics::DetectSettings) -> Result<()> {
        s.history = parse_duration(&self.history).context("--history")?;
        s.min_history = parse_duration(&self.min_history).context("--min-history")?;
        if !(0..=100).contains(&self.min_score) {
            bail!("--min-score must be within 0..=100, got {}", self.min_score);
        }
        s.min_score = self.min_score;
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            bail!("--alpha must be between 0 and 1, got {}", self.alpha);
        }
        s.alpha = self.alpha;
        let rules = self
            .generalize
            .iter()
            .map(|r| overreach_analytics::generalize::Rule::parse(r))
            .collect::<Result<Vec<_>, _>>()
            .context("--generalize")?;
        s.generalizer = overreach_analytics::generalize::Generalizer::new(
            rules,
            self.collapse_names,
            self.collapse_namespaces,
        );
        s.max_credential_lifetime =
            parse_duration(&self.max_credential_lifetime).context("--max-credential-lifetime")?;
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub window: WindowArgs,
    #[command(flatten)]
    pub detect: DetectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The ISO week, YYYY-Www; default: the week of the latest stored event.
    #[arg(long, env = "OVERREACH_WEEK")]
    pub week: Option<String>,
    /// html (a self-contained page with charts), md, csv or json.
    #[arg(long, default_value = "html")]
    pub format: String,
    /// Write the report here instead of standard output.
    #[arg(long, short)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub rightsize: RightsizeArgs,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "OVERREACH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Address to serve on.
    #[arg(long, env = "OVERREACH_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Data directory for the demo (default: a new temporary directory).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Run the pipeline and print the summary, without serving.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Directory for decisions/YYYY-MM-DD.jsonl, labels.jsonl and estate.json
    /// (with --format k8s-audit also rbac.yaml, the cluster's RBAC with
    /// deliberate over-grants, and rbac-overgrants.json, the list of them).
    #[arg(long, env = "OVERREACH_SIM_OUT")]
    pub out: PathBuf,
    /// Seed: the same flags and seed give byte-identical files.
    #[arg(long, env = "OVERREACH_SIM_SEED", default_value_t = 1)]
    pub seed: u64,
    /// Workloads in the estate (50 % prod, 30 % staging, 20 % dev).
    #[arg(long, env = "OVERREACH_SIM_IDENTITIES", default_value_t = 500)]
    pub identities: usize,
    /// Simulated days.
    #[arg(long, env = "OVERREACH_SIM_DAYS", default_value_t = 30)]
    pub days: u32,
    /// First simulated day (UTC).
    #[arg(long, env = "OVERREACH_SIM_START", default_value = "2026-10-01")]
    pub start: chrono::NaiveDate,
    /// Output format: native, opa or k8s-audit (prod Kubernetes API calls only).
    #[arg(long, env = "OVERREACH_SIM_FORMAT", default_value = "native")]
    pub format: overreach_sim::SimFormat,
    /// Multiplies every workload's call rate.
    #[arg(long, env = "OVERREACH_SIM_RATE_SCALE", default_value_t = 1.0)]
    pub rate_scale: f64,
    /// Incidents fall in the last this many days.
    #[arg(long, env = "OVERREACH_SIM_INCIDENT_DAYS", default_value_t = 7)]
    pub incident_days: u32,
    /// Incidents of each kind (each in a different identity).
    #[arg(long, env = "OVERREACH_SIM_INCIDENTS_PER_KIND", default_value_t = 4)]
    pub incidents_per_kind: u32,
}

async fn evaluate(args: EvaluateArgs) -> Result<()> {
    use crate::evaluate::{analyze_days, read_labels, render, score};
    let labels = read_labels(&args.labels)?;
    let incidents: Vec<_> = labels.iter().filter(|l| !l.benign).collect();
    let first = incidents
        .iter()
        .map(|i| i.start.date_naive())
        .min()
        .context("the labels hold no incident to evaluate against")?;
    let last = incidents
        .iter()
        .map(|i| i.end.date_naive())
        .max()
        .context("the labels hold no incident to evaluate against")?;
    let first = first - chrono::Duration::days(i64::from(args.clean_days));
    let mut settings = AnalyzeSettings::new(DataDir::new(&args.data.data));
    settings.baseline = parse_duration(&args.baseline).context("--baseline")?;
    args.detect.apply(&mut settings.detect_settings)?;
    eprintln!(
        "evaluating {first} to {last} against {} incidents",
        incidents.len()
    );
    let started = std::time::Instant::now();
    let days = analyze_days(&settings, first, last, |d| {
        eprintln!(
            "{}: {} findings, {} active identities ({:.0}s)",
            d.day,
            d.findings.len(),
            d.identities,
            started.elapsed().as_secs_f64()
        );
    })
    .await?;
    if let Some(path) = &args.findings_out {
        let mut lines = String::new();
        for d in &days {
            for f in &d.findings {
                lines.push_str(&serde_json::to_string(
                    &serde_json::json!({"day": d.day, "finding": f}),
                )?);
                lines.push('\n');
            }
        }
        std::fs::write(path, lines).with_context(|| format!("writing {}", path.display()))?;
    }
    let report = score(&days, &labels);
    print!("{}", render(&report));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn simulate(args: SimulateArgs) -> Result<()> {
    let settings = overreach_sim::SimSettings {
        out: args.out,
        seed: args.seed,
        identities: args.identities,
        days: args.days,
        start: args.start,
        format: args.format,
        rate_scale: args.rate_scale,
        incident_days: args.incident_days,
        incidents_per_kind: args.incidents_per_kind,
    };
    let started = std::time::Instant::now();
    let summary = overreach_sim::run(&settings, |p| {
        let secs = started.elapsed().as_secs_f64().max(1e-6);
        eprintln!(
            "day {}/{} {}: {} events, {:.0} events/s",
            p.day_number,
            p.days,
            p.day,
            p.events,
            p.events as f64 / secs
        );
    })
    .with_context(|| format!("simulating into {}", settings.out.display()))?;
    for line in &summary.shortfall {
        eprintln!("fewer incidents than asked: {line}");
    }
    println!(
        "simulated {} identities over {} days in {:.1}s: {} {} events ({} skipped), {} incidents ({} events), {} benign deploys; labels in {}",
        summary.identities,
        summary.days,
        started.elapsed().as_secs_f64(),
        summary.events,
        summary.format,
        summary.skipped_events,
        summary.incidents.values().sum::<u64>(),
        summary.incident_events,
        summary.deploys,
        settings.out.join("labels.jsonl").display()
    );
    Ok(())
}

pub fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Set when ctrl-c or SIGTERM arrives.
pub fn shutdown_flag(rt: &tokio::runtime::Runtime) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    rt.spawn(async move {
        shutdown_signal().await;
        set.store(true, Ordering::Relaxed);
    });
    flag
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// An error and its causes on one line, `outer: cause: root`, leaving out
/// a cause whose text the line already holds (many errors name their
/// source in their own message, which `{:#}` would print twice).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

pub fn run(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Ingest(args) => ingest(&rt, args),
        Command::Produce(args) => {
            if let Some(n) = args.create_partitions {
                rt.block_on(overreach_ingest::produce::ensure_topic(
                    &args.brokers,
                    &args.topic,
                    n,
                ))?;
            }
            let job = overreach_ingest::produce::Produce {
                brokers: args.brokers,
                topic: args.topic,
                paths: args.files,
                batch_records: args.batch_records,
            };
            let sent = overreach_ingest::produce::run(&job)?;
            println!("produced {sent} messages to {}", job.topic);
            Ok(())
        }
        Command::Analyze(args) => {
            let mut settings = args.window.settings(DataDir::new(&args.data.data))?;
            args.detect.apply(&mut settings.detect_settings)?;
            let info = rt.block_on(overreach_analytics::run(&settings))?;
            println!(
                "analyzed {} events of {} identities up to {}: {} findings ({} more below --min-score), \
                 {} suggestions; reach keys: {} concrete, {} stored, {} generalized; results in {}",
                info.events,
                info.identities,
                info.now.to_rfc3339(),
                info.findings,
                info.below_min_score.values().sum::<i64>(),
                info.suggestions,
                info.reach_keys_concrete,
                info.reach_keys_stored,
                info.reach_keys_generalized,
                settings.data.analytics().display()
            );
            Ok(())
        }
        Command::Report(args) => rt.block_on(report(args)),
        Command::Serve(args) => rt.block_on(serve(DataDir::new(&args.data.data), args.listen)),
        Command::Demo(args) => crate::demo::run(&rt, args),
        Command::Simulate(args) => simulate(args),
        Command::Evaluate(args) => rt.block_on(evaluate(args)),
    }
}

fn ingest(rt: &tokio::runtime::Runtime, args: IngestArgs) -> Result<()> {
    let data = DataDir::new(&args.data.data);
    let decode = args.decode.options()?;
    let flush = args.flush.policy()?;
    let summary = if !args.file.is_empty() {
        let job = overreach_ingest::files::FileIngest {
            paths: args.file,
            data,
            decode,
            flush,
        };
        overreach_ingest::files::run(&job)?
    } else {
        let (Some(brokers), Some(topic)) = (args.brokers, args.topic) else {
            bail!("give --file PATH..., or --brokers and --topic to consume from Kafka");
        };
        let job = overreach_ingest::kafka::KafkaIngest {
            brokers,
            topic,
            group: args.group,
            data,
            decode,
            flush,
            until_caught_up: args.until_caught_up,
            session_timeout: parse_duration(&args.session_timeout)
                .context("--session-timeout")?
                .to_std()
                .context("--session-timeout")?,
            metrics_listen: args.metrics_listen,
            dead_letter_topic: args.dead_letter_topic,
        };
        let shutdown = shutdown_flag(rt);
        overreach_ingest::kafka::run(&job, shutdown)?
    };
    println!("ingest: {summary}");
    Ok(())
}

/// Computes, stores and renders the weekly report.
async fn report(args: ReportArgs) -> Result<()> {
    use overreach_api::report::{render, ReportFormat};
    use overreach_model::report::IsoWeek;
    let format = ReportFormat::parse(&args.format)
        .map_err(anyhow::Error::msg)
        .context("--format")?;
    if args.rightsize.grants.is_empty() {
        bail!(
            "give the inventory to right-size with --grants FILE (repeat it for several files): \
             the report compares what identities are granted with what they use; \
             `overreach analyze` without --grants gives each identity's minimal policy instead"
        );
    }
    let mut settings = AnalyzeSettings::new(DataDir::new(&args.data.data));
    args.rightsize.apply(&mut settings)?;
    let week = args
        .week
        .as_deref()
        .map(IsoWeek::parse)
        .transpose()
        .context("--week")?;
    let report = overreach_analytics::weekly_report(&settings, week).await?;
    let text = render(&report, format);
    // The output first: a report that could not be written is not stored.
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?
        }
        None => print!("{text}"),
    }
    let stored = overreach_analytics::store_weekly_report(&settings.data, &report)?;
    eprintln!(
        "report {}: {} identities ({} judged), {} grants, {} unused ({} sensitive), {} in grace, {} suggestions; {}stored as {}",
        report.week,
        report.totals.identities,
        report.totals.judged,
        report.totals.granted,
        report.totals.unused,
        report.totals.unused_sensitive,
        report.totals.in_grace,
        report.totals.suggestions,
        args.out
            .as_ref()
            .map(|p| format!("written to {}, ", p.display()))
            .unwrap_or_default(),
        stored.display()
    );
    Ok(())
}

/// Serves until ctrl-c or SIGTERM; prints the bound address first.
pub async fn serve(data: DataDir, listen: SocketAddr) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}/");
    let state = overreach_api::AppState::new(data);
    overreach_api::serve(listener, state, shutdown_signal())
        .await
        .context("serving HTTP")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_text_names_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory");
        let grants = overreach_analytics::grants::GrantsError::Read {
            path: PathBuf::from("/tmp/nope.yaml"),
            source: io,
        };
        let e = anyhow::Error::new(grants).context("loading --grants");
        assert_eq!(
            error_text(&e),
            "loading --grants: cannot read grants file /tmp/nope.yaml: No such file or directory"
        );
        let plain = anyhow::anyhow!("root").context("middle").context("outer");
        assert_eq!(error_text(&plain), "outer: middle: root");
    }
}

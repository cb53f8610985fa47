//! `overreach demo`: the whole pipeline on one machine with no setup.
//!
//! An in-process Kafka-protocol broker (librdkafka's mock cluster) gets the
//! shipped real Kubernetes audit sample; ingest consumes it through a
//! consumer group into Parquet, analyze splits the sample's four minutes
//! into a three-minute baseline and a one-minute detection window, and the
//! API and page are served.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use overreach_analytics::AnalyzeSettings;
use overreach_ingest::decode::DecodeOptions;
use overreach_ingest::kafka::KafkaIngest;
use overreach_ingest::produce::Produce;
use overreach_ingest::sink::FlushPolicy;
use overreach_model::duration::parse_duration;
use overreach_model::DataDir;
use rdkafka::mocking::MockCluster;

use crate::cli::DemoArgs;

/// The real sample: Kubernetes audit events of a cluster during Helm
/// installs (PerfSPEC, CC-BY-4.0; see tests/data/k8s-audit-perfspec/).
const SAMPLE: &[u8] = include_bytes!("../tests/data/k8s-audit-perfspec/audit-logs.v1.jsonl.gz");
const TOPIC: &str = "k8s-audit";
/// The mock cluster keeps at most 5 MiB per partition (older records are
/// dropped, as retention would), and the sample is 8.9 MB: spread it wide.
const PARTITIONS: i32 = 8;

pub fn run(rt: &tokio::runtime::Runtime, args: DemoArgs) -> Result<()> {
    let root = match args.data {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("overreach-demo-{}", std::process::id())),
    };
    let data = DataDir::new(&root);
    // Stored positions belong to the topic they came from; the demo's
    // broker is new every run, so old positions would skip its records.
    if data.events().exists() {
        anyhow::bail!(
            "{} already holds events from an earlier run; the demo needs a new data directory \
             (remove it, or give another --data)",
            root.display()
        );
    }
    std::fs::create_dir_all(data.root()).with_context(|| format!("creating {}", root.display()))?;
    let sample = data.root().join("sample-k8s-audit.jsonl.gz");
    std::fs::write(&sample, SAMPLE).with_context(|| format!("writing {}", sample.display()))?;

    let cluster = MockCluster::new(1).context("starting the in-process Kafka mock cluster")?;
    cluster
        .create_topic(TOPIC, PARTITIONS, 1)
        .context("creating the demo topic")?;
    let brokers = cluster.bootstrap_servers();
    println!("kafka: in-process broker at {brokers}, topic {TOPIC} ({PARTITIONS} partitions)");

    let sent = overreach_ingest::produce::run(&Produce {
        brokers: brokers.clone(),
        topic: TOPIC.into(),
        paths: vec![sample],
        batch_records: None,
    })?;
    println!("produce: {sent} Kubernetes audit records (PerfSPEC sample, CC-BY-4.0)");

    let summary = overreach_ingest::kafka::run(
        &KafkaIngest {
            brokers,
            topic: TOPIC.into(),
            group: "overreach-demo".into(),
            data: data.clone(),
            decode: DecodeOptions::default(),
            flush: FlushPolicy::default(),
            until_caught_up: true,
            session_timeout: std::time::Duration::from_secs(10),
            metrics_listen: None,
            dead_letter_topic: None,
        },
        Arc::new(AtomicBool::new(false)),
    )?;
    println!("ingest: {summary}");
    drop(cluster);

    let mut settings = AnalyzeSettings::new(data.clone());
    settings.baseline = parse_duration("3m")?;
    settings.detect = parse_duration("1m")?;
    let info = rt.block_on(overreach_analytics::run(&settings))?;
    println!(
        "analyze: {} events, {} identities; baseline {} and detection {} windows ending {}: {} findings \
         ({} more below the reporting score), {} suggestions; reach keys: {} concrete, {} generalized",
        info.events,
        info.identities,
        info.baseline,
        info.detect,
        info.now.to_rfc3339(),
        info.findings,
        info.below_min_score.values().sum::<i64>(),
        info.suggestions,
        info.reach_keys_concrete,
        info.reach_keys_generalized,
    );
    println!("data: {}", data.root().display());
    if args.no_serve {
        return Ok(());
    }
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (try --listen 127.0.0.1:0)",
                    args.listen
                )
            })?;
        let addr = listener.local_addr()?;
        println!("\nOverreach is serving the demo (ctrl-c to stop):");
        println!("  page:            http://{addr}/");
        println!("  findings:        http://{addr}/v1/findings");
        println!("  identities:      http://{addr}/v1/identities");
        println!("  recommendations: http://{addr}/v1/recommendations");
        println!("  metrics:         http://{addr}/metrics");
        println!("listening on http://{addr}/");
        let state = overreach_api::AppState::new(data);
        overreach_api::serve(listener, state, crate::cli::shutdown_signal())
            .await
            .context("serving HTTP")
    })
}

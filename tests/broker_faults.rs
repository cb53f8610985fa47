//! Broker faults injected with librdkafka's in-process mock cluster while
//! an ingester runs: failing fetches and offset commits, partition leaders
//! moving between brokers, and every broker down for longer than the
//! session timeout. Nothing is lost and nothing is stored twice.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const N: u64 = 60_000;
const PARTITIONS: i32 = 6;

#[test]
fn ingest_survives_broker_faults_without_loss_or_duplicates() {
    let cluster = MockCluster::new(3).unwrap();
    let brokers = cluster.bootstrap_servers();
    let topic = topic("faults");
    cluster.create_topic(&topic, PARTITIONS, 3).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    write_records(&input, 0, N);
    overreach(&[
        "produce",
        "--brokers",
        &brokers,
        "--topic",
        &topic,
        input.to_str().unwrap(),
    ]);

    let data = dir.path().join("data");
    let child = Command::new(bin())
        .args([
            "ingest",
            "--brokers",
            &brokers,
            "--topic",
            &topic,
            "--batch-rows",
            "2000",
            "--flush-interval",
            "1s",
            "--session-timeout",
            "3s",
            "--until-caught-up",
            "--data",
        ])
        .arg(&data)
        .env("OVERREACH_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    std::thread::sleep(Duration::from_millis(1500));
    // Fetches and commits fail for a while.
    cluster.request_errors(
        RDKafkaApiKey::Fetch,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION; 6],
    );
    cluster.request_errors(
        RDKafkaApiKey::OffsetCommit,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT; 4],
    );
    // Leaders move.
    for p in 0..PARTITIONS {
        cluster
            .partition_leader(&topic, p, Some(1 + (p + 1) % 3))
            .unwrap();
    }
    std::thread::sleep(Duration::from_millis(1000));
    // Every broker down for longer than the session timeout.
    for b in 1..=3 {
        cluster.broker_down(b).unwrap();
    }
    std::thread::sleep(Duration::from_secs(6));
    for b in 1..=3 {
        cluster.broker_up(b).unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(240);
    let mut child = child;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "ingest did not catch up after the faults"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{}", String::from_utf8_lossy(&output.stdout).trim());
    let (rows, distinct) = pyarrow_counts(&data);
    assert_eq!(distinct, N, "every record stored");
    assert_eq!(rows, N, "no record stored twice");
}

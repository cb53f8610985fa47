//! Ingest stores every record exactly once, whatever happens to it: killed
//! with SIGKILL at random moments and restarted, or sharing the partitions
//! with a second ingester that stops and starts again. Storage is read
//! back by pyarrow.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::mocking::MockCluster;

/// A small deterministic generator (xorshift), so a failing run can be
/// replayed with the seed it prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

fn seed() -> u64 {
    let seed = std::env::var("OVERREACH_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("seed {seed} (OVERREACH_TEST_SEED={seed} replays it)");
    seed
}

fn ingest_cmd(brokers: &str, topic: &str, data: &Path, until_caught_up: bool) -> Command {
    let mut cmd = Command::new(bin());
    cmd.args([
        "ingest",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--group",
        &format!("{topic}-group"),
        "--batch-rows",
        "3000",
        "--flush-interval",
        "1s",
        "--session-timeout",
        "3s",
        "--data",
    ])
    .arg(data)
    .stdout(Stdio::piped());
    // OVERREACH_TEST_LOG_DIR keeps every ingester's log, for a failure.
    match std::env::var_os("OVERREACH_TEST_LOG_DIR") {
        Some(dir) => {
            static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = Path::new(&dir).join(format!("{topic}-{n}.log"));
            cmd.env("OVERREACH_LOG", "info")
                .stderr(std::fs::File::create(path).unwrap());
        }
        None => {
            cmd.env("OVERREACH_LOG", "warn").stderr(Stdio::null());
        }
    }
    if until_caught_up {
        cmd.arg("--until-caught-up");
    }
    cmd
}

fn kill(mut child: Child) {
    let _ = child.kill(); // SIGKILL: no flush, no commit, no goodbye
    let _ = child.wait();
}

/// Stored rows must equal `n` with no duplicate event ids.
fn assert_exactly(data: &Path, n: u64) {
    let (rows, distinct) = pyarrow_counts(data);
    assert_eq!(distinct, n, "every record stored");
    assert_eq!(rows, n, "no record stored twice");
}

fn crash_loop(brokers: &str, topic: &str, create: &[&str]) {
    const N: u64 = 200_000;
    const KILLS: usize = 20;
    let mut rng = Rng(seed());
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("records.jsonl");
    write_records(&input, 0, N);
    let mut args = vec!["produce", "--brokers", brokers, "--topic", topic];
    args.extend_from_slice(create);
    args.push(input.to_str().unwrap());
    overreach(&args);
    let data = dir.path().join("data");

    // Rows stored after each kill: a kill between 0 and N hit mid-stream.
    let mut after_kill = Vec::new();
    while after_kill.len() < KILLS {
        let child = ingest_cmd(brokers, topic, &data, true).spawn().unwrap();
        // Long enough to rejoin the group (the killed member's session
        // must expire first) and flush some batches, short enough to die
        // mid-stream.
        let wait = Duration::from_millis(rng.between(2_500, 6_000));
        std::thread::sleep(wait);
        kill(child);
        let rows = if data.join("events").exists() {
            pyarrow_counts(&data).0
        } else {
            0
        };
        after_kill.push(rows);
    }
    println!("rows stored after each kill: {after_kill:?}");
    let mid_stream = after_kill
        .iter()
        .filter(|&&rows| rows > 0 && rows < N)
        .count();
    assert!(
        mid_stream >= 5,
        "only {mid_stream} of {KILLS} kills hit mid-stream: the test did not exercise restarts"
    );
    let started = Instant::now();
    let out = ingest_cmd(brokers, topic, &data, true).output().unwrap();
    assert!(out.status.success(), "final ingest failed");
    println!(
        "{KILLS} kills ({mid_stream} mid-stream); final run took {:?}: {}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    assert_exactly(&data, N);
}

/// Starts a group member and returns once it has been handed partitions
/// (its "partitions assigned" log line), or after 90 s. Tansu 0.6's group
/// coordinator never expires a member that leaves in the middle of
/// joining, and the group then stalls for good, so a member may leave only
/// after this, however slow the machine is.
fn join_member(brokers: &str, topic: &str, data: &Path) -> Child {
    let mut cmd = ingest_cmd(brokers, topic, data, false);
    cmd.env("OVERREACH_LOG", "info").stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (joined, wait) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        // Keep reading to the end so the member never blocks on its log.
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line.contains("partitions assigned") {
                let _ = joined.send(());
            }
        }
    });
    if wait.recv_timeout(Duration::from_secs(90)).is_err() {
        println!("a joining member got no partitions within 90 s");
    }
    child
}

fn rebalance(brokers: &str, topic: &str, create: &[&str]) {
    const ROUNDS: u64 = 6;
    const PER_ROUND: u64 = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut rng = Rng(seed());
    let steady = ingest_cmd(brokers, topic, &data, false).spawn().unwrap();
    let mut other = None;
    for round in 0..ROUNDS {
        let input = dir.path().join(format!("round-{round}.jsonl"));
        write_records(&input, round * PER_ROUND, PER_ROUND);
        let mut args = vec!["produce", "--brokers", brokers, "--topic", topic];
        // (Creating an existing topic is a no-op; Tansu needs the batch
        // flag on every round.)
        args.extend_from_slice(create);
        args.push(input.to_str().unwrap());
        overreach(&args);
        // The second member joins and leaves while records flow.
        other = match other.take() {
            None => Some(join_member(brokers, topic, &data)),
            Some(child) => {
                terminate(child);
                None
            }
        };
        std::thread::sleep(Duration::from_millis(rng.between(1_000, 4_000)));
    }
    if let Some(child) = other {
        terminate(child);
    }
    // Let the steady member take everything over and drain, then stop it.
    let deadline = Instant::now() + Duration::from_secs(240);
    let stored = |data: &Path| {
        if data.join("events").exists() {
            pyarrow_counts(data).1
        } else {
            0
        }
    };
    while stored(&data) < ROUNDS * PER_ROUND && Instant::now() < deadline {
        std::thread::sleep(Duration::from_secs(1));
    }
    terminate(steady);
    assert_exactly(&data, ROUNDS * PER_ROUND);
}

fn mock_topic(
    cluster: &MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    prefix: &str,
) -> String {
    let topic = topic(prefix);
    // The mock cluster keeps 5 MiB per partition: 16 partitions hold the
    // 40 MB of the crash loop.
    cluster.create_topic(&topic, 16, 1).unwrap();
    topic
}

#[test]
fn crash_loop_mock_cluster() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = mock_topic(&cluster, "crash");
    crash_loop(&cluster.bootstrap_servers(), &topic, &[]);
}

#[test]
fn rebalance_mock_cluster() {
    let cluster = MockCluster::new(1).unwrap();
    let topic = mock_topic(&cluster, "rebalance");
    rebalance(&cluster.bootstrap_servers(), &topic, &[]);
}

fn tansu() -> String {
    std::env::var("OVERREACH_TEST_BROKERS").unwrap_or_else(|_| {
        panic!(
            "OVERREACH_TEST_BROKERS is not set: run `bash scripts/test.sh`, which starts Tansu, \
             or set it to a Kafka-protocol broker's HOST:PORT"
        )
    })
}

/// Tansu 0.6 answers a fetch only at the first offset of a stored batch
/// (a fetch from the middle of one returns nothing) and reports the high
/// watermark as the last batch's first offset; one record per batch keeps
/// every offset a batch start, so restarts can resume anywhere.
const TANSU_PRODUCE: [&str; 4] = ["--create-partitions", "4", "--batch-records", "1"];

#[test]
fn crash_loop_tansu() {
    crash_loop(&tansu(), &topic("crash"), &TANSU_PRODUCE);
}

#[test]
fn rebalance_tansu() {
    rebalance(&tansu(), &topic("rebalance"), &TANSU_PRODUCE);
}

/// A kill between creating a day's directory and renaming the day's first
/// file into it leaves a directory without files. The crash loop reads the
/// table after every kill, so that state must count as empty, and a table
/// with files beside it must still count every row.
#[test]
fn a_day_directory_without_files_counts_as_empty() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("events/date=2024-01-01")).unwrap();
    assert_eq!(pyarrow_counts(&data), (0, 0));

    let input = dir.path().join("records.jsonl");
    write_records(&input, 0, 10);
    overreach(&[
        "ingest",
        "--data",
        data.to_str().unwrap(),
        "--file",
        input.to_str().unwrap(),
    ]);
    std::fs::create_dir_all(data.join("events/date=1999-01-01")).unwrap();
    assert_exactly(&data, 10);
}

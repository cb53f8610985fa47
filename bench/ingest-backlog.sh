#!/usr/bin/env bash
# End-to-end ingest bench: drain a backlog of N decision records (default
# 2,000,000) from a real broker (Tansu, memory storage) with
# `overreach ingest --until-caught-up` (release build), and print records/s
# and peak RSS next to a peer run on the same topic: a bare librdkafka
# consumer (Python confluent-kafka) that reads every message and stores
# nothing, the floor any Kafka ingester pays.
#
# usage: bash bench/ingest-backlog.sh        (N=..., PARTITIONS=..., BATCH_ROWS=... to vary)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-2000000}
PARTITIONS=${PARTITIONS:-8}
BATCH_ROWS=${BATCH_ROWS:-100000}
FLUSH_INTERVAL=${FLUSH_INTERVAL:-5s}
work=$(mktemp -d /tmp/overreach-bench.XXXXXX)
echo "== bench in $work: $N records, $PARTITIONS partitions, --batch-rows $BATCH_ROWS --flush-interval $FLUSH_INTERVAL"

cargo build --release --quiet
bin=${CARGO_TARGET_DIR:-target}/release/overreach
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check confluent-kafka
TANSU="${TANSU:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}"
[ -x "$TANSU" ] || { echo "tansu not found: cargo install tansu --locked --features dynostore" >&2; exit 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$TANSU" broker --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" >"$work/tansu.log" 2>&1 &
tansu_pid=$!
trap 'kill $tansu_pid 2>/dev/null || true' EXIT
sleep 1
brokers=127.0.0.1:$port

python3 - "$work/records.jsonl" "$N" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as out:
    for i in range(n):
        out.write('{"id":"b-%d","time":"2026-11-30T%02d:%02d:%02d.%03dZ","subject":"spiffe://prod.example.org/ns/ns%d/sa/app%d","action":"%s","resource":"/v1/items/%d","target":"spiffe://prod.example.org/ns/db/sa/store","decision":"%s","context":{"environment":"prod","credential":{"kind":"x509-svid"}}}\n'
                  % (i, (i // 360000) % 24, (i // 6000) % 60, (i // 100) % 60, (i % 100) * 10,
                     i % 17, i % 53, "GET" if i % 5 else "POST", i, "allow" if i % 97 else "deny"))
PY
echo "== producing"
"$bin" produce --brokers "$brokers" --topic backlog --create-partitions "$PARTITIONS" "$work/records.jsonl" --log warn

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -v "$@" >"$work/$name.out" 2>"$work/$name.time"
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {split($2, t, ":"); s=0; for (i=1; i<=length(t); i++) s=s*60+t[i]; print s}' "$work/$name.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/$name.time")
  echo "$name $secs $rss"
}

echo "== overreach ingest"
read -r _ o_secs o_rss < <(measure overreach "$bin" ingest --brokers "$brokers" --topic backlog --group bench \
  --data "$work/data" --until-caught-up --batch-rows "$BATCH_ROWS" --flush-interval "$FLUSH_INTERVAL" --log warn)
cat "$work/overreach.out"

echo "== peer: bare librdkafka consumer (python confluent-kafka), no storage"
cat >"$work/peer.py" <<'PY'
import sys
from confluent_kafka import Consumer, KafkaError
brokers, n = sys.argv[1], int(sys.argv[2])
c = Consumer({"bootstrap.servers": brokers, "group.id": "peer", "auto.offset.reset": "earliest",
              "enable.auto.commit": False})
c.subscribe(["backlog"])
seen = 0
while seen < n:
    for m in c.consume(10000, timeout=1.0):
        if m.error() is None:
            seen += 1
print("peer read", seen, "messages")
PY
read -r _ p_secs p_rss < <(measure peer python3 "$work/peer.py" "$brokers" "$N")
cat "$work/peer.out"

rows=$(python3 -c "import pyarrow.dataset as ds; print(ds.dataset('$work/data/events', format='parquet', partitioning='hive').count_rows())")
python3 - "$N" "$rows" "$o_secs" "$o_rss" "$p_secs" "$p_rss" <<'PY'
import sys
n, rows = int(sys.argv[1]), int(sys.argv[2])
o_s, o_rss, p_s, p_rss = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
print()
print(f"{'run':<28}{'seconds':>10}{'records/s':>12}{'peak RSS MiB':>14}")
print(f"{'overreach ingest':<28}{o_s:>10.1f}{n / o_s:>12,.0f}{o_rss / 1024:>14.0f}")
print(f"{'peer (consume only)':<28}{p_s:>10.1f}{n / p_s:>12,.0f}{p_rss / 1024:>14.0f}")
print(f"stored rows {rows} of {n}; overreach/peer time ratio {o_s / p_s:.2f}, RSS ratio {o_rss / p_rss:.2f}")
PY

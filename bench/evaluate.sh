#!/usr/bin/env bash
# Detection quality bench: simulate an estate (default 500 identities over
# 30 days, incidents in the last 7), ingest it, and run `overreach
# evaluate`, once on the training seed (defaults are tuned there) and once
# on a different evaluation seed (the figures to report). Prints the
# precision/recall table of each seed and the time each step took.
#
# usage: bash bench/evaluate.sh   (IDENTITIES=, DAYS=, TRAIN_SEED=, EVAL_SEED=,
#                                  INCIDENTS_PER_KIND=, CLEAN_DAYS=, KEEP=1 to vary)
# Extra arguments go to `overreach evaluate` (for example --min-score 50).
set -euo pipefail
cd "$(dirname "$0")/.."
IDENTITIES=${IDENTITIES:-500}
DAYS=${DAYS:-30}
TRAIN_SEED=${TRAIN_SEED:-1}
EVAL_SEED=${EVAL_SEED:-2}
INCIDENTS_PER_KIND=${INCIDENTS_PER_KIND:-4}
CLEAN_DAYS=${CLEAN_DAYS:-3}
work=$(mktemp -d /tmp/overreach-eval.XXXXXX)
[ -n "${KEEP:-}" ] || trap 'rm -rf "$work"' EXIT

cargo build --release --quiet --bin overreach
bin=${CARGO_TARGET_DIR:-target}/release/overreach

for seed in "$TRAIN_SEED" "$EVAL_SEED"; do
  role=training; [ "$seed" = "$EVAL_SEED" ] && role=evaluation
  echo "== seed $seed ($role): $IDENTITIES identities, $DAYS days, in $work/$seed"
  t0=$(date +%s)
  "$bin" simulate --out "$work/$seed/sim" --seed "$seed" --identities "$IDENTITIES" --days "$DAYS" \
    --incidents-per-kind "$INCIDENTS_PER_KIND" 2>/dev/null
  t1=$(date +%s)
  OVERREACH_LOG=warn "$bin" ingest --data "$work/$seed/data" \
    $(for f in "$work/$seed"/sim/decisions/*.jsonl; do printf -- '--file %s ' "$f"; done)
  t2=$(date +%s)
  OVERREACH_LOG=warn "$bin" evaluate --data "$work/$seed/data" --labels "$work/$seed/sim/labels.jsonl" \
    --clean-days "$CLEAN_DAYS" --json "$work/$seed/report.json" "$@"
  t3=$(date +%s)
  echo "-- seed $seed: simulate $((t1 - t0))s, ingest $((t2 - t1))s, evaluate $((t3 - t2))s"
done

#!/usr/bin/env bash
# The one test command: installs what the tests need (Tansu, pyarrow,
# chromium) when it is missing, starts a Tansu broker on a free loopback
# port, runs the whole suite against it, and stops the broker.
# Usage: bash scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n== %s\n' "$*" >&2; }

say "cargo target directory: ${CARGO_TARGET_DIR:-./target}"

# Tansu: a Kafka-protocol broker process for the integration suite.
TANSU="${TANSU:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}"
if [ ! -x "$TANSU" ]; then
  say "installing tansu (cargo install tansu --locked --features dynostore; about 13 minutes, once)"
  env -u CARGO_TARGET_DIR cargo install tansu --locked --features dynostore
  TANSU="$HOME/.cargo/bin/tansu"
fi

# pyarrow: the independent Parquet reader the end-to-end test checks with.
if ! python3 -c 'import pyarrow' 2>/dev/null; then
  say "installing pyarrow from PyPI"
  python3 -m pip install --quiet --disable-pip-version-check pyarrow
fi

# chromium: the browser that loads the built-in page.
if [ -z "${OVERREACH_CHROMIUM:-}" ]; then
  OVERREACH_CHROMIUM=$(command -v chromium || true)
  if [ -z "$OVERREACH_CHROMIUM" ]; then
    say "installing Debian's chromium"
    if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    OVERREACH_CHROMIUM=$(command -v chromium)
  fi
fi
export OVERREACH_CHROMIUM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp /tmp/tansu.XXXXXX.log)
say "starting tansu on 127.0.0.1:$port (log: $log)"
"$TANSU" broker --storage-engine memory://tansu/ \
  --listener-url "tcp://127.0.0.1:$port" \
  --advertised-listener-url "tcp://127.0.0.1:$port" >"$log" 2>&1 &
tansu_pid=$!
trap 'kill "$tansu_pid" 2>/dev/null || true; wait "$tansu_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  if python3 -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then break; fi
  if ! kill -0 "$tansu_pid" 2>/dev/null; then cat "$log" >&2; echo "tansu exited" >&2; exit 1; fi
  sleep 0.1
done
export OVERREACH_TEST_BROKERS="127.0.0.1:$port"

say "cargo test --workspace (broker $OVERREACH_TEST_BROKERS)"
cargo test --workspace --no-fail-fast "$@"
say "all tests passed"

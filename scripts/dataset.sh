#!/usr/bin/env bash
# `make dataset`: scrape, curate, snapshot and verify a plan (default config/lennonnet.toml,
# the founding plan) from the real engines. With MIRROR=1 the same plan runs against the offline
# mirror on 127.0.0.1:$MIRROR_PORT instead: scripts/mirror-config.sh writes
# config/<name>-mirror.toml from the plan (its own dataset folder, datasets/<name>-mirror), the
# mirror is started (warmed with that plan) and stopped at the end; STRICT=1 runs the mirror's
# `strict` profile (the engines as strict as the real ones today) with
# config/<name>-mirror-strict.toml and datasets/<name>-mirror-strict. Before scraping,
# `lennonnet engines check` asks each engine one canary query and the run stops when none works.
# Each step prints its wall and CPU time; a failure names the step and the fix. Resumable: run it
# again to continue.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/release/lennonnet}
CONFIG=${CONFIG:-config/lennonnet.toml}
MIRROR=${MIRROR:-0}
STRICT=${STRICT:-0}
PORT=${MIRROR_PORT:-8322}
[ -x "$BIN" ] || fail build "no $BIN: run 'make build' first"
[ -f "$CONFIG" ] || fail config "no config file $CONFIG (CONFIG=...)"
mkdir -p datasets

if [ "$MIRROR" = 1 ]; then
  base=$CONFIG
  if [ "$STRICT" = 1 ]; then
    CONFIG=${base%.toml}-mirror-strict.toml
    profile=(--profile strict)
  else
    CONFIG=${base%.toml}-mirror.toml
    profile=()
  fi
  step mirror-config "see the message above" \
    bash -c "scripts/mirror-config.sh '$base' '$PORT' '$STRICT' > '$CONFIG'"
  start_mirror "$BIN" "127.0.0.1:$PORT" "$CONFIG" datasets/mirror-$PORT.log "${profile[@]}"
elif [ "$STRICT" = 1 ]; then
  fail config "STRICT=1 is the mirror's strict profile: use it with MIRROR=1"
fi

step plan "the config is invalid: the message above names the file, line and key" \
  "$BIN" plan --config "$CONFIG" --format table

# One canary query on each engine, two pages: minutes, not hours, to learn that none works.
step engines "no search engine answers (the table above says how each failed and what to do; \
every response is saved for 'lennonnet engines parse'); fix that before scraping: the real \
engines block clients for about an hour after bursts, so try again later, or behind a proxy set \
[http] proxy or HTTPS_PROXY" \
  "$BIN" engines check --config "$CONFIG" --require any

if [ "$MIRROR" = 1 ]; then
  scrape_fix="see the messages above (the mirror's log is datasets/mirror-$PORT.log); run the \
same command again to continue where it stopped"
else
  scrape_fix="see the messages above: an engine that refuses or rate-limits says so (run again \
later to continue where it stopped; 'lennonnet scrape --retry-failed' retries transient \
failures); behind a proxy set [http] proxy or HTTPS_PROXY"
fi
step scrape "$scrape_fix" "$BIN" scrape --config "$CONFIG"
stop_mirror

step curate "see the messages above" "$BIN" curate --config "$CONFIG"

# (Functions run as a step's command are in an `||` context, where `set -e` is off: chain with &&.)
snapshot() {
  local id
  id=$("$BIN" -q snapshot --config "$CONFIG" create) &&
    "$BIN" snapshot --config "$CONFIG" show "$id"
}
step snapshot "see the messages above" snapshot

verify() { "$BIN" -q store verify --config "$CONFIG" | tail -n 1; }
step verify "the store has corrupt or missing objects (listed above)" verify

print_times
echo "dataset done: config $CONFIG; 'make train CONFIG=$CONFIG' trains on its latest snapshot" >&2

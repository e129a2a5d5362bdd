#!/usr/bin/env bash
# `make bench`: runs every benchmark of the workspace (`cargo bench --workspace --benches`: each
# crate's benches/ and the root benches/), shows their output as they run, and prints one table
# of their headline figures, collected from the `BENCH {json}` lines they print
# (lennonnet_core::bench): stage, figure, value, baseline, baseline value, ratio. Benchmarks that
# printed no BENCH line are listed under the table. The full output is kept in $BENCH_LOG.
# Extra arguments go to cargo bench in place of --workspace (e.g. `-p lennonnet-plan`).
#
# The curation-quality benchmarks measure against a mirror world with known truth: unless
# LENNONNET_MIRROR_DIR names one already, `lennonnet mirror generate` first writes the demo
# plan's world (config/demo.toml, the default seed, as `make demo` serves it) to
# <target>/bench-mirror-world; it is reused while its truth.jsonl exists.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
LOG=${BENCH_LOG:-${CARGO_TARGET_DIR:-target}/bench.log}
mkdir -p "$(dirname "$LOG")"

start=$(date +%s)
rc=0
if [ -z "${LENNONNET_MIRROR_DIR:-}" ]; then
  world=${CARGO_TARGET_DIR:-target}/bench-mirror-world
  if [ ! -s "$world/truth.jsonl" ]; then
    echo "bench: generating the demo plan's mirror world in $world for the curation-quality benchmarks"
    "$CARGO" run --release --locked -q --bin lennonnet -- -q mirror generate \
      -c config/demo.toml --out "$world.tmp" > /dev/null
    rm -rf "$world" && mv "$world.tmp" "$world"
  fi
  case $world in /*) ;; *) world=$PWD/$world ;; esac
  export LENNONNET_MIRROR_DIR=$world
  export LENNONNET_CONFIG=${LENNONNET_CONFIG:-$PWD/config/demo.toml}
fi
scope=(--workspace)
[ $# -gt 0 ] && scope=("$@")
"$CARGO" bench --locked --benches "${scope[@]}" 2>&1 | tee "$LOG" || rc=$?
took=$(($(date +%s) - start))

python3 - "$LOG" "$took" <<'PY'
import json, re, sys

log, took = sys.argv[1], int(sys.argv[2])
rows, silent, current, seen = [], [], None, set()
for line in open(log, encoding="utf-8", errors="replace"):
    m = re.match(r"\s*Running (benches/\S+|\S+/benches/\S+) ", line)
    if m:
        if current and current not in seen:
            silent.append(current)
        current = m.group(1)
        continue
    if line.startswith("BENCH "):
        try:
            v = json.loads(line[len("BENCH "):])
        except json.JSONDecodeError as e:
            sys.exit(f"bench: a malformed BENCH line ({e}): {line.strip()}")
        rows.append(v)
        seen.add(current)
if current and current not in seen:
    silent.append(current)

def num(x):
    if x is None:
        return "-"
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"

table = [("stage", "figure", "value", "baseline", "baseline value", "ratio")]
for r in rows:
    table.append((r["stage"], r["figure"], num(r["value"]), r["baseline"],
                  num(r["baseline_value"]), num(r["ratio"])))
widths = [max(len(row[i]) for row in table) for i in range(6)]
print()
for i, row in enumerate(table):
    print("  ".join(c.rjust(w) if j in (2, 4, 5) else c.ljust(w)
                    for j, (c, w) in enumerate(zip(row, widths))).rstrip())
    if i == 0:
        print("  ".join("-" * w for w in widths))
print(f"\n{len(rows)} figures in {took // 60} min {took % 60} s; ratio = value / baseline value; full output in {log}")
if silent:
    print("benchmarks without a BENCH line: " + ", ".join(silent))
PY
if [ "$rc" -ne 0 ]; then
  echo "bench: cargo bench failed (exit $rc): see the output above or $LOG" >&2
  exit "$rc"
fi

# Shared by scripts/demo.sh and scripts/dataset.sh (sourced, not run): timed steps that name
# themselves and their fix on failure, and the offline mirror as a child stopped on exit.

DEMO_T0=$(date +%s.%N)
STEP_TIMES=()

TIMES_FILE=$(mktemp)
# Cumulative CPU seconds (user + system) of this shell's finished children. `times` runs in this
# shell (not in a $(...) subshell, whose children are its own); its second line holds the
# children's user and system time as "XmY.YYYs XmY.YYYs".
children_cpu() {
  times > "$TIMES_FILE"
  awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub("s", "", a[2]); s += a[1] * 60 + a[2] } printf "%.1f", s }' "$TIMES_FILE"
}

now() { date +%s.%N; }

# step NAME FIX COMMAND...: runs COMMAND, prints its wall and CPU time; on failure says which
# step failed and FIX, and exits 1.
step() {
  local name=$1 fix=$2
  shift 2
  echo >&2
  echo "== [$name] $(date +%H:%M:%S)" >&2
  local t0 c0 c1 rc=0
  t0=$(now)
  children_cpu > "$TIMES_FILE.c"
  c0=$(cat "$TIMES_FILE.c")
  "$@" || rc=$?
  local wall cpu
  wall=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  children_cpu > "$TIMES_FILE.c"
  c1=$(cat "$TIMES_FILE.c")
  cpu=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.1f", b - a }')
  STEP_TIMES+=("$name $wall $cpu")
  if [ "$rc" -ne 0 ]; then
    echo >&2
    echo "FAILED at step '$name' (exit $rc, after ${wall} s)." >&2
    echo "Fix: $fix" >&2
    exit 1
  fi
  echo "-- [$name] done in ${wall} s wall, ${cpu} s CPU" >&2
}

# fail NAME FIX: a check outside a command failed.
fail() {
  echo >&2
  echo "FAILED at step '$1'." >&2
  echo "Fix: $2" >&2
  exit 1
}

# The per-step timing table, on stderr.
print_times() {
  local total
  total=$(awk -v a="$DEMO_T0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
  {
    echo
    printf '%-10s %10s %10s\n' step "wall s" "CPU s"
    local row
    for row in "${STEP_TIMES[@]}"; do
      # shellcheck disable=SC2086
      printf '%-10s %10s %10s\n' $row
    done
    children_cpu > "$TIMES_FILE.c"
    printf '%-10s %10s %10s\n' total "$total" "$(cat "$TIMES_FILE.c")"
  } >&2
  rm -f "$TIMES_FILE" "$TIMES_FILE.c"
}

MIRROR_PID=
MIRROR_T0=
# Stops the mirror and adds its lifetime and CPU time to the timing table as the row "mirror".
stop_mirror() {
  if [ -n "$MIRROR_PID" ]; then
    local c0 c1
    children_cpu > "$TIMES_FILE.c"
    c0=$(cat "$TIMES_FILE.c")
    kill "$MIRROR_PID" 2>/dev/null || true
    wait "$MIRROR_PID" 2>/dev/null || true
    MIRROR_PID=
    children_cpu > "$TIMES_FILE.c"
    c1=$(cat "$TIMES_FILE.c")
    STEP_TIMES+=("mirror $(awk -v a="$MIRROR_T0" -v b="$(now)" -v c="$c0" -v d="$c1" \
      'BEGIN { printf "%.1f %.1f", b - a, d - c }')")
  fi
}

# start_mirror BIN ADDR WARM_CONFIG LOG [extra mirror serve args...]: starts the mirror in the
# background (stopped on exit, also on failure or Ctrl-C) and waits until it listens.
start_mirror() {
  local bin=$1 addr=$2 warm=$3 log=$4
  shift 4
  local port=${addr##*:}
  if (exec 3<> "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail mirror "port $port is already in use (a mirror left from an earlier run, or another \
service: 'ss -ltnp sport = :$port' shows which process); stop it, or use another port: \
MIRROR_PORT=NNNN"
  fi
  local addr_file
  addr_file=$(mktemp)
  MIRROR_T0=$(now)
  "$bin" -q mirror serve --addr "$addr" --warm "$warm" "$@" > "$addr_file" 2> "$log" &
  MIRROR_PID=$!
  trap 'stop_mirror' EXIT
  trap 'stop_mirror; exit 130' INT TERM
  local _
  for _ in $(seq 1 300); do
    [ -s "$addr_file" ] && break
    kill -0 "$MIRROR_PID" 2>/dev/null || {
      MIRROR_PID=
      fail mirror "the mirror exited at start: $(tail -n 3 "$log")"
    }
    sleep 0.1
  done
  [ -s "$addr_file" ] || fail mirror "the mirror did not listen on $addr within 30 s (log: $log)"
  echo "mirror listening: $(cat "$addr_file") (pid $MIRROR_PID, log $log)" >&2
  rm -f "$addr_file"
}

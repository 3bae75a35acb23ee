#!/usr/bin/env bash
# State store benchmark (issue 20): a run of STEPS `shell: {argv: [true]}` steps with the state
# store in PostgreSQL against the same run with the default SQLite store, in turn, and the
# PostgreSQL store's round trips per event, counted by a proxy in front of the server (each
# time the client speaks after the server answered is one). Goal: at most 2 round trips per
# event.
#
#   bench/state.sh [PAIRS] [STEPS]               default: 5 pairs, 200 steps
#   RUNBOOK=path/to/runbook bench/state.sh        another binary (default: target/release/runbook)
#   RUNBOOK_BEFORE=path/to/old/runbook            also time an older binary, in turn
# Prints per-step milliseconds (medians, with the spread) and round trips per event.
set -euo pipefail

PAIRS=${1:-5}
STEPS=${2:-200}
BENCH=state
. "$(dirname "$0")/cluster.sh"
start_cluster
PROXY_PORT=$((PORT + 1))
python3 - "$PORT" "$PROXY_PORT" "$WORK/trips" <<'EOF' &
import os, socket, sys, threading
upstream, port, counter = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
trips = [0]
def pump(src, dst, conn, client):
    while True:
        try:
            data = src.recv(65536)
        except OSError:
            break
        if not data:
            break
        with lock:
            if client and not conn[0]:
                trips[0] += 1
                save(trips[0])
            conn[0] = client
        try:
            dst.sendall(data)
        except OSError:
            break
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def save(n):  # whole or not at all: a reader never sees a half-written count
    with open(counter + ".new", "w") as f:
        f.write(str(n))
    os.replace(counter + ".new", counter)
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(16)
save(0)
while True:
    c, _ = srv.accept()
    s = socket.create_connection(("127.0.0.1", upstream))
    conn = [False]  # whether the client spoke last
    threading.Thread(target=pump, args=(c, s, conn, True), daemon=True).start()
    threading.Thread(target=pump, args=(s, c, conn, False), daemon=True).start()
EOF
PROXY=$!
trap 'kill $PROXY 2>/dev/null; cleanup' EXIT
for _ in $(seq 50); do [ -s "$WORK/trips" ] && break; sleep 0.1; done
P=$WORK/project; mkdir -p "$P/playbooks"
{ echo "name: steps"; echo "steps:"; for i in $(seq "$STEPS"); do
  printf '  - id: s%s\n    shell: { argv: ["true"] }\n' "$i"; done; } > "$P/playbooks/steps.yaml"
{ echo "name: one"; echo "steps:"; printf '  - id: s1\n    shell: { argv: ["true"] }\n'; } > "$P/playbooks/one.yaml"
ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
spread() { printf '%s\n' "$@" | sort -g | awk -v n="$STEPS" 'NR == 1 {lo=$1} {hi=$1} END {printf "%.2f-%.2f", lo / n / 1000, hi / n / 1000}'; }

state_db() { # PORT -> a new database's URL on the server (PORT) or through the proxy
  local n; n=$(date +%s%N); "$BIN/psql" -X -q -d "postgres://postgres@127.0.0.1:$PORT/postgres" -c "CREATE DATABASE s$n"
  echo "postgres://postgres@127.0.0.1:$1/s$n"
}
one() { # BINARY STORE -> microseconds (straight to the server, not through the proxy)
  if [ "$2" = postgres ]; then
    local db; db=$(state_db "$PORT")
    "$1" -q -C "$P" run one --target "sqlite:$WORK/t.db" --state "$db" >/dev/null # tables made first
    (cd "$P" && ms "$1" -q run steps --target "sqlite:$WORK/t.db" --state "$db")
  else
    (cd "$P" && ms "$1" -q run steps --target "sqlite:$WORK/t.db" --state "sqlite:$WORK/s$RANDOM$RANDOM.db")
  fi
}
trips() { # BINARY -> round trips per event: a run of STEPS steps (2 events a step) against one of 1
  local db a b c; db=$(state_db "$PROXY_PORT")
  through() { "$1" -q -C "$P" run "$2" --target "sqlite:$WORK/t.db" --state "$db" >/dev/null; sleep 0.3; }
  through "$1" one
  a=$(cat "$WORK/trips"); through "$1" one
  b=$(cat "$WORK/trips"); through "$1" steps
  c=$(cat "$WORK/trips")
  awk -v a="$a" -v b="$b" -v c="$c" -v n="$STEPS" 'BEGIN { printf "%.2f", ((c - b) - (b - a)) / (2 * (n - 1)) }'
}
per_step() { awk -v v="$1" -v n="$STEPS" 'BEGIN { printf "%.2f", v / n / 1000 }'; }
row() { # LABEL BINARY PG-TIMES... -- SQLITE-TIMES...
  local label=$1 bin=$2; shift 2
  local pg=() sq=() side=pg
  for v in "$@"; do
    if [ "$v" = -- ]; then side=sq; elif [ $side = pg ]; then pg+=("$v"); else sq+=("$v"); fi
  done
  local mp ms_; mp=$(median "${pg[@]}"); ms_=$(median "${sq[@]}")
  printf '%-7s postgres store %s ms/step (%s)   sqlite store %s ms/step (%s)   ratio %.2f   round trips/event %s\n' \
    "$label" "$(per_step "$mp")" "$(spread "${pg[@]}")" "$(per_step "$ms_")" "$(spread "${sq[@]}")" \
    "$(awk -v a="$mp" -v b="$ms_" 'BEGIN { print a / b }')" "$(trips "$bin")"
}
echo "$STEPS steps of \`true\`, $PAIRS runs of each, in turn; medians (spread); round trips counted by a proxy"
APG=(); ASQ=(); BPG=(); BSQ=()
for _ in $(seq 1 "$PAIRS"); do
  APG+=("$(one "$RUNBOOK" postgres)"); ASQ+=("$(one "$RUNBOOK" sqlite)")
  if [ -n "${RUNBOOK_BEFORE:-}" ]; then
    BPG+=("$(one "$RUNBOOK_BEFORE" postgres)"); BSQ+=("$(one "$RUNBOOK_BEFORE" sqlite)")
  fi
done
[ -n "${RUNBOOK_BEFORE:-}" ] && row before "$RUNBOOK_BEFORE" "${BPG[@]}" -- "${BSQ[@]}"
row after "$RUNBOOK" "${APG[@]}" -- "${ASQ[@]}"

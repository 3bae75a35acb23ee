#!/usr/bin/env bash
# Health benchmark (issue 20): `runbook run` of a playbook with one `health` step, `checks: all`,
# on a database of 1,000 and of 10,000 tables (each with a few rows, every other one with a
# foreign key to the one before), timed in turn. Goal: under 0.3 s at 1,000, under 2 s at 10,000.
#
#   bench/health.sh [PAIRS]                   default: 3 pairs
#   RUNBOOK=path/to/runbook bench/health.sh    another binary (default: target/release/runbook)
#   RUNBOOK_BEFORE=path/to/old/runbook          also time an older binary, in turn, for a ratio
# Prints `case  seconds` rows and whether both sizes found every table.
set -euo pipefail

PAIRS=${1:-3}
BENCH=health
. "$(dirname "$0")/cluster.sh"
start_cluster
URL="postgres://postgres@127.0.0.1:$PORT"
for n in 1000 10000; do
  "$BIN/psql" -X -q -d "$URL/postgres" -c "CREATE DATABASE t$n"
  for from in $(seq 0 1000 $((n - 1))); do
  "$BIN/psql" -X -q -d "$URL/t$n" -c "DO \$\$ BEGIN FOR i IN $from..$((from + 999)) LOOP
      EXECUTE format('CREATE TABLE t%s (id int PRIMARY KEY, p int)', i);
      EXECUTE format('INSERT INTO t%s SELECT g, g FROM generate_series(1, %s) g', i, i % 5 + 1);
      IF i % 2 = 1 THEN EXECUTE format('ALTER TABLE t%s ADD FOREIGN KEY (p) REFERENCES t%s (id) NOT VALID', i, i - 1); END IF;
    END LOOP; END \$\$;" >/dev/null
  done
  "$BIN/psql" -X -q -d "$URL/t$n" -c "ANALYZE" >/dev/null
  P=$WORK/p$n; mkdir -p "$P/playbooks"
  printf 'environments:\n  bench:\n    target: { url_env: BENCH_URL }\n' > "$P/runbook.yaml"
  printf 'name: health\nsteps:\n  - id: health\n    health: { checks: all }\n' > "$P/playbooks/health.yaml"
done
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
one() { # BINARY N
  (cd "$WORK/p$2" && BENCH_URL=$URL/t$2 seconds "$1" run health -e bench)
}
for n in 1000 10000; do
  A=(); B=()
  for _ in $(seq 1 "$PAIRS"); do
    A+=("$(one "$RUNBOOK" "$n")")
    [ -n "${RUNBOOK_BEFORE:-}" ] && B+=("$(one "$RUNBOOK_BEFORE" "$n")")
  done
  if [ -n "${RUNBOOK_BEFORE:-}" ]; then
    printf '%-34s %8ss  before %8ss\n' "health checks: all, $n tables" "$(median "${A[@]}")" "$(median "${B[@]}")"
  else
    printf '%-34s %8ss\n' "health checks: all, $n tables" "$(median "${A[@]}")"
  fi
done
for n in 1000 10000; do
  got=$(cd "$WORK/p$n" && "$RUNBOOK" status "$("$RUNBOOK" runs --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')" --format json |
    python3 -c 'import json,sys; s=[x for x in json.load(sys.stdin)["steps"] if x["step"]=="health"][0]["outputs"]["checks"]; print(len(s["row_counts"]["tables"]), len(s["row_counts"]["errors"]), s["orphaned_rows"]["total"], len(s["orphaned_rows"]["errors"]))')
  echo "$n tables: counted, count errors, orphans, orphan errors = $got"
done

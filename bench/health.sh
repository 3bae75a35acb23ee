#!/usr/bin/env bash
# Health benchmark (issue 20): `runbook run` of a playbook with one `health` step, `checks: all`,
# on a database of 1,000 and of 10,000 tables (each with a few rows, every other one with a
# foreign key to the one before), timed in turn. Goal: under 0.3 s at 1,000, under 2 s at 10,000.
#
#   bench/health.sh [PAIRS]                   default: 3 pairs
#   RUNBOOK=path/to/runbook bench/health.sh    another binary (default: target/release/runbook)
#   RUNBOOK_BEFORE=path/to/old/runbook          also time an older binary, in turn, for a ratio
# Prints `case  median (min-max) seconds` rows with the load, what each size counted, and with
# RUNBOOK_BEFORE whether both binaries gave identical row_counts, indexes, foreign_keys and
# orphaned_rows outputs, their messages aside (a message names at most ten tables or keys, where
# older builds named them all; the other checks measure the server live: those that differ are
# named).
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
  for who in after before; do # a project (state store) per binary
    P=$WORK/p$n-$who; mkdir -p "$P/playbooks"
    printf 'environments:\n  bench:\n    target: { url_env: BENCH_URL }\n' > "$P/runbook.yaml"
    printf 'name: health\nsteps:\n  - id: health\n    health: { checks: all }\n' > "$P/playbooks/health.yaml"
  done
done
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
# "median (min-max)" of the arguments.
stats() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {m=(NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f (%.3f-%.3f)", m, v[1], v[NR]}'; }
one() { # BINARY N WHO
  (cd "$WORK/p$2-$3" && BENCH_URL=$URL/t$2 seconds "$1" run health -e bench)
}
# The health step's `checks` output of the newest run in the project of N and WHO, as JSON.
checks() { # BINARY N WHO
  (cd "$WORK/p$2-$3" && id=$("$1" runs --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["runs"][0]["run_id"])') &&
    "$1" status "$id" --format json | python3 -c 'import json,sys; print(json.dumps([x for x in json.load(sys.stdin)["steps"] if x["step"]=="health"][0]["outputs"]["checks"]))')
}
echo "load: $(uptime | sed 's/.*load average: //')"
for n in 1000 10000; do
  A=(); B=()
  for _ in $(seq 1 "$PAIRS"); do
    A+=("$(one "$RUNBOOK" "$n" after)")
    [ -n "${RUNBOOK_BEFORE:-}" ] && B+=("$(one "$RUNBOOK_BEFORE" "$n" before)")
  done
  if [ -n "${RUNBOOK_BEFORE:-}" ]; then
    printf '%-34s %s s  before %s s\n' "health checks: all, $n tables" "$(stats "${A[@]}")" "$(stats "${B[@]}")"
  else
    printf '%-34s %s s\n' "health checks: all, $n tables" "$(stats "${A[@]}")"
  fi
done
echo "load: $(uptime | sed 's/.*load average: //')"
for n in 1000 10000; do
  checks "$RUNBOOK" "$n" after > "$WORK/checks-$n-after.json"
  python3 - "$WORK/checks-$n-after.json" "$n" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
r, o = c["row_counts"], c["orphaned_rows"]
print(f"{sys.argv[2]} tables: counted, count errors, orphans, orphan errors = "
      f"{len(r['tables'])} {len(r['errors'])} {o['total']} {len(o['errors'])}")
PY
  [ -n "${RUNBOOK_BEFORE:-}" ] || continue
  checks "$RUNBOOK_BEFORE" "$n" before > "$WORK/checks-$n-before.json"
  # The checks that read the tables must be identical; the others measure the server at the
  # moment (connections, statistics, timings), so they are only listed when they differ.
  python3 - "$WORK/checks-$n-before.json" "$WORK/checks-$n-after.json" "$n" <<'PY'
import json, sys
before, after = (json.load(open(f)) for f in sys.argv[1:3])
same = ["row_counts", "indexes", "foreign_keys", "orphaned_rows"]
# Their figures and lists; a message may name fewer items than an older build's did.
figures = lambda c: {k: v for k, v in (c or {}).items() if k != "message"}
bad = [k for k in same if figures(before.get(k)) != figures(after.get(k))]
other = sorted(k for k in set(before) | set(after) if k not in same and before.get(k) != after.get(k))
print(f"{sys.argv[3]} tables: before and after " + ("identical" if not bad else "DIFFER in " + ", ".join(bad))
      + f" for {', '.join(same)}; other checks that differ (measured live): {', '.join(other) or 'none'}")
sys.exit(1 if bad else 0)
PY
done

#!/usr/bin/env bash
# Backup benchmark (issue 20): runbook's backup step (exact row counts, sha256, manifest,
# verification) against raw pg_dump of the same database, as a ratio, pair by pair.
#
#   bench/backup.sh [SCALE] [PAIRS] [JOBS]     defaults: pgbench scale 20 (~300 MB), 5 pairs, 2 jobs
#
# It starts a throwaway PostgreSQL cluster (as the `postgres` OS user when run as root), fills
# it with `pgbench -i` plus a wide table, then alternates, pair by pair (the machine may be
# shared: alternating spreads the load over both sides alike):
#   custom:    `runbook run bk` (format custom, verify on)        vs `pg_dump -Fc`
#   noverify:  `runbook run bk` (format custom, verify off)       vs `pg_dump -Fc`
#   directory: `runbook run bkd` (format directory, JOBS, verify) vs `pg_dump -Fd -j JOBS`
# and prints each pair's ratio and the median per case. RUNBOOK=path picks the binary
# (default: target/release/runbook; build with `cargo build --release`); BASELINE=path adds a
# second runbook binary (an older build) timed in the same pairs, for before/after ratios.
set -euo pipefail

SCALE=${1:-20}
PAIRS=${2:-5}
JOBS=${3:-2}
BENCH=backup
. "$(dirname "$0")/cluster.sh"
start_cluster -c max_wal_size=4GB
URL="postgres://postgres@127.0.0.1:$PORT/bench"
"$BIN/psql" -X -q -d "postgres://postgres@127.0.0.1:$PORT/postgres" -c "CREATE DATABASE bench"
echo "filling pgbench scale $SCALE and a wide table..."
"$BIN/pgbench" -q -i -s "$SCALE" "$URL" >/dev/null 2>&1
"$BIN/psql" -X -q -d "$URL" -c "CREATE TABLE wide AS SELECT g AS id, md5(g::text) AS a, md5((g + 1)::text) AS b, now() AS t FROM generate_series(1, $((SCALE * 50000))) g" -c "ALTER TABLE wide ADD PRIMARY KEY (id)" -c "VACUUM ANALYZE"
"$BIN/psql" -X -qAt -d "$URL" -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size('bench'))"

PROJECT=$WORK/project
mkdir -p "$PROJECT/playbooks" "$WORK/raw"
printf 'name: bk\nsteps:\n  - id: backup\n    backup: { dir: %s/backups }\n' "$WORK" > "$PROJECT/playbooks/bk.yaml"
printf 'name: bkn\nsteps:\n  - id: backup\n    backup: { dir: %s/backups, verify: false }\n' "$WORK" > "$PROJECT/playbooks/bkn.yaml"
printf 'name: bkd\nsteps:\n  - id: backup\n    backup: { dir: %s/backups, format: directory, jobs: %s }\n' "$WORK" "$JOBS" > "$PROJECT/playbooks/bkd.yaml"
# The baseline runs in a project of its own: its state store, of an older layout, is its own
# (a store a newer runbook wrote is refused by an older one).
BASE_PROJECT=$WORK/base-project
mkdir -p "$BASE_PROJECT"
cp -r "$PROJECT/playbooks" "$BASE_PROJECT/"

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
clean() { rm -rf "$WORK"/backups "$WORK"/raw/*; sync; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

declare -A RATIOS BRATIOS
for i in $(seq 1 "$PAIRS"); do
  for case in custom noverify directory; do
    case $case in
      custom) pb=bk; raw=("$BIN/pg_dump" -Fc --file="$WORK/raw/a.dump" --dbname="$URL") ;;
      noverify) pb=bkn; raw=("$BIN/pg_dump" -Fc --file="$WORK/raw/a.dump" --dbname="$URL") ;;
      directory) pb=bkd; raw=("$BIN/pg_dump" -Fd -j "$JOBS" --file="$WORK/raw/a.dir" --dbname="$URL") ;;
    esac
    # The sides take turns going first (the baseline too), so none always meets a warmer
    # cache or always follows the same side.
    sides=(new raw)
    [ -n "${BASELINE:-}" ] && sides+=(base)
    for k in $(seq 0 $((${#sides[@]} - 1))); do
      clean
      case ${sides[$(((k + i) % ${#sides[@]}))]} in
        new) a=$(seconds "$RUNBOOK" -C "$PROJECT" run "$pb" --target "$URL") ;;
        raw) b=$(seconds "${raw[@]}") ;;
        base) c=$(seconds "$BASELINE" -C "$BASE_PROJECT" run "$pb" --target "$URL") ;;
      esac
    done
    r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
    line="pair $i $case: runbook ${a}s, pg_dump ${b}s, ratio ${r}"
    RATIOS[$case]="${RATIOS[$case]:-} $r"
    if [ -n "${BASELINE:-}" ]; then
      rc=$(awk -v c="$c" -v b="$b" 'BEGIN { printf "%.3f", c / b }')
      line="$line; baseline ${c}s, ratio ${rc}"
      BRATIOS[$case]="${BRATIOS[$case]:-} $rc"
    fi
    echo "$line"
  done
done
for case in custom noverify directory; do
  # shellcheck disable=SC2086
  echo "median ratio $case: $(median ${RATIOS[$case]}) (of$(printf ' %s' ${RATIOS[$case]}))"
  if [ -n "${BASELINE:-}" ]; then
    # shellcheck disable=SC2086
    echo "  baseline $case: $(median ${BRATIOS[$case]}) (of$(printf ' %s' ${BRATIOS[$case]}))"
  fi
done
echo "(load average: $(cut -d' ' -f1-3 /proc/loadavg); a shared machine: read the ratios, not the seconds)"

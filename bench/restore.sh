#!/usr/bin/env bash
# Restore benchmark (issue 13): runbook's exact restore of a ~1 GB PostgreSQL database against
# raw `pg_restore` of the same archive at the same number of jobs, as a ratio, pair by pair.
#
#   bench/restore.sh [ROWS] [PAIRS] [JOBS]     defaults: 8000000 rows (~1 GB), 3 pairs, 1 job
#
# It starts a throwaway PostgreSQL cluster (as the `postgres` OS user when run as root), fills
# one table of ROWS rows with an index, dumps it once with pg_dump -Fc, writes a runbook
# manifest for the dump by taking the backup with runbook itself, then alternates:
#   A: `runbook run rs` (verify sha256 and table of contents, clear, restore in one transaction,
#      recount rows), pre-restore backup off (it is a second pg_dump, not restore time);
#   B: `pg_restore --clean --if-exists --no-owner` with --single-transaction (1 job) or --jobs.
# Needs a release build: `cargo build --release`.
set -euo pipefail

ROWS=${1:-8000000}
PAIRS=${2:-3}
JOBS=${3:-1}
BENCH=restore
. "$(dirname "$0")/cluster.sh"
start_cluster -c fsync=on -c max_wal_size=4GB
URL="postgres://postgres@127.0.0.1:$PORT/bench"
"$BIN/psql" -X -q -d "postgres://postgres@127.0.0.1:$PORT/postgres" -c "CREATE DATABASE bench"
echo "filling $ROWS rows..."
"$BIN/psql" -X -q -d "$URL" -c "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS a, md5((g + 1)::text) AS b, now() AS t FROM generate_series(1, $ROWS) g" -c "ALTER TABLE big ADD PRIMARY KEY (id)" -c "CREATE TABLE small (id int primary key, big_id int references big(id))" -c "INSERT INTO small SELECT g, g FROM generate_series(1, 1000) g"
"$BIN/psql" -X -qAt -d "$URL" -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size('bench'))"

PROJECT=$WORK/project
mkdir -p "$PROJECT/playbooks"
printf 'name: bk\nsteps:\n  - id: backup\n    backup: { dir: %s/backups, verify: false }\n' "$WORK" > "$PROJECT/playbooks/bk.yaml"
printf 'name: rs\nparams:\n  from: { type: string, required: true }\nsteps:\n  - id: restore\n    restore: { from: "{{ params.from }}", pre_backup: false, jobs: %s }\n' "$JOBS" > "$PROJECT/playbooks/rs.yaml"
"$RUNBOOK" -C "$PROJECT" run bk --target "$URL" >/dev/null 2>&1
MANIFEST=$(ls "$WORK"/backups/*.manifest.json | head -1)
ARCHIVE=$(ls "$WORK"/backups/*.dump | head -1)
echo "archive: $(du -h "$ARCHIVE" | cut -f1)"
if [ "$JOBS" -le 1 ]; then RAWJOBS=--single-transaction; else RAWJOBS=--jobs=$JOBS; fi

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
A=(); B=(); R=()
for i in $(seq 1 "$PAIRS"); do
  a=$(seconds "$RUNBOOK" -C "$PROJECT" run rs --target "$URL" --var "from=$MANIFEST")
  b=$(seconds "$BIN/pg_restore" --clean --if-exists --no-owner --exit-on-error $RAWJOBS --dbname="$URL" "$ARCHIVE")
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
  echo "pair $i: runbook ${a}s, pg_restore ${b}s, ratio ${r}"
  A+=("$a"); B+=("$b"); R+=("$r")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "median: runbook $(median "${A[@]}")s, pg_restore $(median "${B[@]}")s, ratio $(median "${R[@]}") (jobs $JOBS)"

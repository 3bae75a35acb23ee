#!/usr/bin/env bash
# Lint benchmark (issue 20): `runbook validate --migrations` against squawk on the same files,
# in turn: the project's own migrations/postgres, and a generated folder of 150 migrations
# (tables, columns with defaults, indexes, foreign keys, backfills, renames, drops). Each time is
# the time of REPEAT invocations in a row, so milliseconds of process start show. Goal: at most
# 1.5x squawk's time.
#
#   bench/lint.sh [PAIRS] [REPEAT]               default: 7 pairs, 10 invocations per time
#   RUNBOOK=path/to/runbook bench/lint.sh         another binary (default: target/release/runbook)
#   RUNBOOK_BEFORE=path/to/old/runbook            also time an older binary, in turn
#   BENCH_PLAYBOOK=1                              one small playbook in each project too (older
#                                                 binaries refuse a project without playbooks)
#   SQUAWK=path/to/squawk                         default: squawk on PATH, else a venv made
#                                                 with `pip install squawk-cli` in $BENCH_VENV
#                                                 (default ~/.cache/runbook-bench-venv)
# Prints one row per folder: runbook's and squawk's median per invocation, spread, ratio.
set -euo pipefail

PAIRS=${1:-7}
REPEAT=${2:-10}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNBOOK=${RUNBOOK:-${CARGO_TARGET_DIR:-$ROOT/target}/release/runbook}
[ -x "$RUNBOOK" ] || { echo "build first: cargo build --release" >&2; exit 2; }
VENV=${BENCH_VENV:-$HOME/.cache/runbook-bench-venv}
if [ -z "${SQUAWK:-}" ]; then
  if command -v squawk >/dev/null; then SQUAWK=$(command -v squawk)
  else
    [ -x "$VENV/bin/squawk" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q squawk-cli; } >&2 \
      || { echo "skipped: squawk cannot be installed (pip install squawk-cli failed)" >&2; exit 3; }
    SQUAWK=$VENV/bin/squawk
  fi
fi
WORK=$(mktemp -d /tmp/runbook-bench-lint.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# Two projects with no playbooks: the repository's migrations, and 150 generated ones.
mkdir -p "$WORK/own/migrations/postgres" "$WORK/gen/migrations/postgres"
cp "$ROOT"/migrations/postgres/*.sql "$WORK/own/migrations/postgres/"
if [ -n "${BENCH_PLAYBOOK:-}" ]; then
  for d in own gen; do
    mkdir -p "$WORK/$d/playbooks"
    printf 'name: noop\nsteps:\n  - id: a\n    log: { message: hi }\n' > "$WORK/$d/playbooks/noop.yaml"
  done
fi
for i in $(seq 1 150); do
  v=$(printf '20260101%06d' "$i")
  f="$WORK/gen/migrations/postgres/${v}_change_$i.sql"
  {
    printf -- '-- change %s\nCREATE TABLE t%s (\n  id bigserial PRIMARY KEY,\n  name text NOT NULL,\n  created_at timestamptz NOT NULL DEFAULT now(),\n  amount numeric(12, 2),\n  status varchar(20) DEFAULT '"'"'new'"'"'\n);\n' "$i" "$i"
    printf 'CREATE INDEX t%s_name ON t%s (name);\n' "$i" "$i"
    if [ "$i" -gt 1 ]; then
      p=$((i - 1))
      printf 'ALTER TABLE t%s ADD COLUMN parent_id bigint;\n' "$p"
      printf 'ALTER TABLE t%s ADD CONSTRAINT t%s_parent FOREIGN KEY (parent_id) REFERENCES t%s (id);\n' "$p" "$p" "$i"
      printf 'ALTER TABLE t%s ADD COLUMN flag boolean NOT NULL DEFAULT false;\n' "$p"
      printf 'UPDATE t%s SET status = '"'"'old'"'"' WHERE created_at < now() - interval '"'"'1 day'"'"';\n' "$p"
      printf 'ALTER TABLE t%s ALTER COLUMN amount TYPE numeric(14, 2);\n' "$p"
      printf 'CREATE UNIQUE INDEX CONCURRENTLY t%s_name_u ON t%s (name);\n' "$p" "$p"
    fi
    [ $((i % 10)) = 0 ] && printf 'ALTER TABLE t%s RENAME COLUMN amount TO total;\nDROP INDEX t%s_name;\n' "$((i - 5))" "$((i - 5))"
    printf 'COMMENT ON TABLE t%s IS '"'"'generated table %s'"'"';\n' "$i" "$i"
  } > "$f"
done

ms() { # REPEAT invocations of a command -> microseconds per invocation
  local s e; s=$(date +%s%N)
  for _ in $(seq 1 "$REPEAT"); do "$@" >/dev/null 2>&1 || true; done
  e=$(date +%s%N); echo $(( (e - s) / 1000 / REPEAT ))
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
spread() { printf '%s\n' "$@" | sort -g | awk 'NR == 1 {lo=$1} {hi=$1} END {printf "%.1f-%.1f", lo / 1000, hi / 1000}'; }
lint_runbook() { (cd "$WORK/$2" && ms "$1" validate --migrations); }
lint_squawk() { # squawk over the files runbook lints (no .down.sql), as in a transaction
  (cd "$WORK/$1" && ms "$SQUAWK" --assume-in-transaction $(ls migrations/postgres/*.sql | grep -v '\.down\.sql$'))
}
for folder in own gen; do
  files=$(ls "$WORK/$folder/migrations/postgres/"*.sql | grep -vc '\.down\.sql$')
  R=(); S=(); B=()
  for _ in $(seq 1 "$PAIRS"); do
    R+=("$(lint_runbook "$RUNBOOK" "$folder")")
    S+=("$(lint_squawk "$folder")")
    [ -n "${RUNBOOK_BEFORE:-}" ] && B+=("$(lint_runbook "$RUNBOOK_BEFORE" "$folder")")
  done
  r=$(median "${R[@]}"); s=$(median "${S[@]}")
  printf 'lint %3s files  runbook %6.1f ms (%s)  squawk %6.1f ms (%s)  ratio %.2f' "$files" \
    "$(awk -v v="$r" 'BEGIN { print v / 1000 }')" "$(spread "${R[@]}")" \
    "$(awk -v v="$s" 'BEGIN { print v / 1000 }')" "$(spread "${S[@]}")" "$(awk -v a="$r" -v b="$s" 'BEGIN { print a / b }')"
  if [ -n "${RUNBOOK_BEFORE:-}" ]; then
    b=$(median "${B[@]}")
    printf '  before %6.1f ms (%s) ratio %.2f' "$(awk -v v="$b" 'BEGIN { print v / 1000 }')" "$(spread "${B[@]}")" "$(awk -v a="$b" -v b="$s" 'BEGIN { print a / b }')"
  fi
  echo
done

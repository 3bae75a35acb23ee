#!/usr/bin/env bash
# Prisma apply benchmark (issue 16): runbook applying a Prisma migrations folder of N files
# against one psql session applying the same files (`psql -f f1 -f f2 ...`), each on an empty
# database (its schema dropped and made again: a `CREATE DATABASE` per pair wrote and synced
# the whole template, and that flush slowed whichever side ran next), as a ratio, pair by pair;
# then the two schemas are compared (they must be equal).
#
#   bench/prisma_apply.sh [FILES] [PAIRS]     defaults: 150 files, 5 pairs
#
# The folder is generated with the shapes real projects have: tables with Prisma's DDL,
# indexes, foreign keys, added columns, enum changes in their own BEGIN/COMMIT, data updates.
# Needs a release build: `cargo build --release`.
set -euo pipefail

FILES=${1:-150}
PAIRS=${2:-5}
BENCH=prisma
. "$(dirname "$0")/cluster.sh"
start_cluster
ADMIN="postgres://postgres@127.0.0.1:$PORT/postgres"

# The folder: every 5th migration creates a table (with an index and a foreign key to the
# previous one), the others add a column, an index, an enum value or change data; every 25th
# changes an enum the way Prisma writes it, in its own BEGIN/COMMIT.
PROJECT=$WORK/project
MIG=$PROJECT/prisma/migrations
mkdir -p "$MIG" "$PROJECT/playbooks"
printf 'provider = "postgresql"\n' > "$MIG/migration_lock.toml"
printf 'name: apply\nsteps:\n  - id: apply\n    migrate: { action: apply, dir: prisma/migrations, lock_timeout: 5s, statement_timeout: 10m }\n' > "$PROJECT/playbooks/apply.yaml"
t=0
for i in $(seq 1 "$FILES"); do
  dir=$(printf '%s/2024%06d000000_m%d' "$MIG" "$i" "$i")
  mkdir -p "$dir"
  if [ "$i" = 1 ]; then
    printf -- '-- CreateEnum\nCREATE TYPE "Status" AS ENUM (%s);\n' "'A'" > "$dir/migration.sql"
  elif [ $((i % 5)) = 2 ]; then
    t=$((t + 1))
    { printf -- '-- CreateTable\nCREATE TABLE "T%d" (\n    "id" TEXT NOT NULL,\n    "name" TEXT NOT NULL,\n    "status" "Status" NOT NULL DEFAULT '"'A'"',\n    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n    "updatedAt" TIMESTAMP(3) NOT NULL,\n    "parentId" TEXT,\n\n    CONSTRAINT "T%d_pkey" PRIMARY KEY ("id")\n);\n\n' "$t" "$t"
      printf -- '-- CreateIndex\nCREATE UNIQUE INDEX "T%d_name_key" ON "T%d"("name");\n\n' "$t" "$t"
      [ "$t" -gt 1 ] && printf -- '-- AddForeignKey\nALTER TABLE "T%d" ADD CONSTRAINT "T%d_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "T%d"("id") ON DELETE SET NULL ON UPDATE CASCADE;\n' "$t" "$t" "$((t - 1))"
      printf 'INSERT INTO "T%d" ("id", "name", "updatedAt") SELECT g::text, '"'n'"' || g, now() FROM generate_series(1, 200) g;\n' "$t"
    } > "$dir/migration.sql"
  elif [ $((i % 25)) = 0 ]; then
    printf -- '-- AlterEnum\nALTER TYPE "Status" ADD VALUE '"'V%d'"';\n' "$i" > "$dir/migration.sql"
  elif [ $((i % 5)) = 3 ]; then
    printf -- '-- AlterTable\nALTER TABLE "T%d" ADD COLUMN     "c%d" INTEGER NOT NULL DEFAULT 0;\n' "$t" "$i" > "$dir/migration.sql"
  elif [ $((i % 5)) = 4 ]; then
    printf -- '-- CreateIndex\nCREATE INDEX "T%d_c%d_idx" ON "T%d"("createdAt", "status");\n' "$t" "$i" "$t" > "$dir/migration.sql"
  else
    printf -- '-- Data\nUPDATE "T%d" SET "updatedAt" = now() WHERE "name" LIKE '"'n1%%'"';\n' "$t" > "$dir/migration.sql"
  fi
done
# An enum change as Prisma writes it, in its own transaction, near the end.
dir=$(printf '%s/2024%06d000000_status_change' "$MIG" "$((FILES + 1))")
mkdir -p "$dir"
printf -- '-- AlterEnum\nBEGIN;\nCREATE TYPE "Status_new" AS ENUM (%s);\nALTER TABLE "T1" ALTER COLUMN "status" DROP DEFAULT;\nALTER TABLE "T1" ALTER COLUMN "status" TYPE "Status_new" USING ("status"::text::"Status_new");\nCOMMIT;\n' "'A', 'B'" > "$dir/migration.sql"
N=$(ls -d "$MIG"/*/ | wc -l)
echo "folder: $N migrations"
FLAGS=()
for d in $(ls -d "$MIG"/*/ | sort); do FLAGS+=(-f "$d/migration.sql"); done

"$BIN/psql" -X -q -d "$ADMIN" -c "CREATE DATABASE bench_a" -c "CREATE DATABASE bench_b"
fresh() { PGOPTIONS="-c client_min_messages=warning" "$BIN/psql" -X -q -d "postgres://postgres@127.0.0.1:$PORT/$1" -c "DROP SCHEMA public CASCADE" -c "CREATE SCHEMA public"; }
seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.3f", e - s }'; }
A=(); B=(); R=()
for i in $(seq 1 "$PAIRS"); do
  fresh bench_a; fresh bench_b
  # Alternate which side goes first, so neither always meets the server's warmer caches.
  if [ $((i % 2)) = 1 ]; then
    a=$(seconds "$RUNBOOK" -C "$PROJECT" run apply --target "postgres://postgres@127.0.0.1:$PORT/bench_a")
    b=$(seconds "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "postgres://postgres@127.0.0.1:$PORT/bench_b" "${FLAGS[@]}")
  else
    b=$(seconds "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -d "postgres://postgres@127.0.0.1:$PORT/bench_b" "${FLAGS[@]}")
    a=$(seconds "$RUNBOOK" -C "$PROJECT" run apply --target "postgres://postgres@127.0.0.1:$PORT/bench_a")
  fi
  r=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.3f", a / b }')
  echo "pair $i: runbook ${a}s, psql ${b}s, ratio ${r}"
  A+=("$a"); B+=("$b"); R+=("$r")
done
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
echo "median: runbook $(median "${A[@]}")s, psql $(median "${B[@]}")s, ratio $(median "${R[@]}") ($N files)"
# The schemas must be equal, runbook's own tables and Prisma's history aside.
dump() { "$BIN/pg_dump" --schema-only --no-owner -d "postgres://postgres@127.0.0.1:$PORT/$1" \
  --exclude-table='runbook_*' --exclude-table=_prisma_migrations | grep -v '^\\\(un\)\?restrict\|^-- Dumped'; }
if diff <(dump bench_a) <(dump bench_b) >/dev/null; then echo "schemas: identical"; else echo "schemas: DIFFER"; diff <(dump bench_a) <(dump bench_b) | head -20; exit 1; fi

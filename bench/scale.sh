#!/usr/bin/env bash
# Scale benchmark (issue 20): each case at 1x and at 10x its size, timed in turn (1x, 10x,
# 1x, 10x ...) and printed as the ratio 10x/1x of the medians. Linear work gives about 10;
# the goal is at most 11. Nothing here needs a database server.
#
#   bench/scale.sh [PAIRS]                 default: 5 pairs
#   RUNBOOK=path/to/runbook bench/scale.sh  another binary (default: target/release/runbook)
#
# Cases:
#   validate      `runbook validate` of one playbook of 1,000 vs 10,000 steps, each reading
#                 the step before it.
#   verify/show   `audit verify` and `audit show` of one run of 100 records in a folder of
#                 2,000 vs 20,000 chains (the goal: the run's own size decides, so about 1).
#   verify long   `audit verify` of one run of 10,000 vs 100,000 records; peak memory printed.
#   show long     `audit show` of the same two runs.
#   runs          `runbook runs --limit 100000` over a state store of 2,000 vs 20,000 runs.
#   run           `runbook run` of a playbook of 1,000 vs 10,000 `log` steps, each reading
#                 the step before it (a fresh state store each time).
#   resume        `runbook resume --confirm` of a run of that playbook with a `confirm` gate
#                 after its steps, where it waits: every step record is taken in, then the
#                 gate passes (the store and chains as they were before each time).
#   migrate       `runbook run apply` of a migrations folder of 200 vs 2,000 files (SQLite
#                 target and state store, fresh each time): a table and a row per file.
#   sqlite3       the same files applied by the sqlite3 shell in the same shape (per file
#                 `BEGIN IMMEDIATE`, the file, its history row, `COMMIT`; `synchronous=FULL`
#                 and a rollback journal, as runbook's SQLite target): the database's own
#                 growth, which the migrate case's ratio holds too (no goal of its own).
# The run, resume and migrate cases take RUN_PAIRS pairs (default 3): a 10,000-step run takes
# a while.
# Prints `case  1x  10x  ratio` rows; bench/run folds them into its table.
set -euo pipefail

PAIRS=${1:-5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNBOOK=${RUNBOOK:-$ROOT/target/release/runbook}
[ -x "$RUNBOOK" ] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "the sqlite3 shell is needed (apt-get install sqlite3)" >&2; exit 2; }
WORK=$(mktemp -d /tmp/runbook-bench-scale.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# A project per size: a playbook, an audit folder and a state store.
project() { # DIR
  mkdir -p "$1/playbooks" "$1/.runbook/audit"
  printf 'environments:\n  dev:\n    target: { sqlite: .runbook/dev.db }\n' > "$1/runbook.yaml"
}
playbook() { # FILE STEPS
  { printf 'name: long\nsteps:\n  - id: s1\n    log: { message: "first" }\n'
    awk -v n="$2" 'BEGIN { for (i = 2; i <= n; i++) printf "  - id: s%d\n    log: { message: \"after {{ steps.s%d.status }}\" }\n", i, i - 1 }'
  } > "$1"
}
# A valid chain of RECORDS records for run RUN (canonical JSON, sha256 links), written with
# python3 so that it needs no run of the engine; CHAINS-1 copies under other names fill the folder.
chains() { # DIR RUN RECORDS CHAINS
  python3 - "$@" <<'EOF'
import hashlib, json, os, sys
d, run, n, copies = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
def canon(v): return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
prev, lines = "0" * 64, []
def add(rec):
    global prev
    rec.update(seq=len(lines) + 1, prev=prev, run_id=run, ts="2026-01-01T00:00:%02d.000Z" % (len(lines) % 60))
    h = hashlib.sha256(canon(rec).encode()).hexdigest()
    rec["hash"] = h
    lines.append(canon(rec)); prev = h
add({"event": "run_started", "env": "dev", "operator": "bench", "playbook": {"name": "long", "file": "playbooks/long.yaml"}})
i = 0
while len(lines) < n - 1:
    i += 1
    add({"event": "step_started", "step": "s%d" % i, "phase": "main", "action": "log"})
    if len(lines) < n - 1:
        add({"event": "step_finished", "step": "s%d" % i, "phase": "main", "outcome": {"status": "succeeded", "change": {"changed": False, "reason": "log"}}})
add({"event": "run_finished", "outcome": {"status": "succeeded"}})
body = "\n".join(lines) + "\n"
with open(os.path.join(d, run + ".jsonl"), "w") as f: f.write(body)
with open(os.path.join(d, "index.jsonl"), "a") as idx:
    for c in range(1, copies):
        other = "20250101-000000-%06x" % c
        with open(os.path.join(d, other + ".jsonl"), "w") as f: f.write(body)
        idx.write(canon({"run_id": other}) + "\n")
    idx.write(canon({"run_id": run}) + "\n")
EOF
}
# A state store of N finished runs (the layout made by runbook itself first).
store() { # DIR N
  (cd "$1" && "$RUNBOOK" runs >/dev/null 2>&1 || true)
  python3 - "$1/.runbook/state.db" "$2" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1]); n = int(sys.argv[2])
cols = [r[1] for r in db.execute("PRAGMA table_info(runbook_runs)")]
# Each other column by its declared type: a number in a number column (a text there fails the
# listing's decoding: the case then timed an error).
numeric = {r[1] for r in db.execute("PRAGMA table_info(runbook_runs)") if "INT" in r[2].upper()}
def value(c, i):
    return {"id": "20250101-000000-%06x" % i, "status": "succeeded", "started_at": 1_700_000_000_000 + i,
            "finished_at": 1_700_000_001_000 + i, "pid": 1}.get(c, 0 if c in numeric else "x")
rows = [[value(c, i) for c in cols] for i in range(n)]
db.executemany("INSERT INTO runbook_runs (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))), rows)
db.commit()
EOF
}
RUN=20260101-000000-00abcd
RUN_PAIRS=${RUN_PAIRS:-3}
for size in 1 10; do
  P=$WORK/x$size; project "$P"
  playbook "$P/playbooks/long.yaml" $((1000 * size))
  mkdir -p "$P/folder/.runbook/audit" "$P/long/.runbook/audit"
  project "$P/folder"; chains "$P/folder/.runbook/audit" "$RUN" 100 $((2000 * size))
  project "$P/long"; chains "$P/long/.runbook/audit" "$RUN" $((10000 * size)) 1
  project "$P/runs"; store "$P/runs" $((2000 * size))
  # A run waiting at a gate after its steps, kept aside to be resumed again and again.
  project "$P/gate"; cp "$P/playbooks/long.yaml" "$P/gate/playbooks/long.yaml"
  printf '  - id: last\n    gate: { confirm: { message: go on, expect: go } }\n' >> "$P/gate/playbooks/long.yaml"
  (cd "$P/gate" && "$RUNBOOK" -q run long >/dev/null 2>&1 || true)
  mv "$P/gate/.runbook" "$P/gate/waiting"
  ls "$P/gate/waiting/audit" | grep -v '^index' | grep '\.jsonl$' | sed 's/\.jsonl$//' > "$P/gate/run_id"
  project "$P/mig"; mkdir -p "$P/mig/migrations"
  printf 'name: apply\nsteps:\n  - id: apply\n    migrate: { action: apply }\n' > "$P/mig/playbooks/apply.yaml"
  awk -v n=$((200 * size)) -v d="$P/mig/migrations" 'BEGIN { for (i = 1; i <= n; i++) {
    f = sprintf("%s/%05d_t%d.sql", d, i, i)
    printf "CREATE TABLE t%d (id INTEGER PRIMARY KEY, v TEXT);\nINSERT INTO t%d (v) VALUES (\x27x\x27);\n", i, i > f
    close(f) } }'
  # Timed runs discard their output: the apply is seen to succeed once here.
  (cd "$P/mig" && "$RUNBOOK" -q run apply >/dev/null 2>&1) || { echo "the migrate case's apply failed" >&2; exit 1; }
  rm -rf "$P/mig/.runbook"
  { echo "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
    echo "CREATE TABLE history (version TEXT PRIMARY KEY, checksum TEXT, applied_at TEXT);"
    for f in "$P/mig/migrations"/*.sql; do
      v=$(basename "$f" .sql)
      echo "BEGIN IMMEDIATE;"; cat "$f"
      printf "DELETE FROM history WHERE version = '%s';\nINSERT INTO history VALUES ('%s', '%s', datetime());\nCOMMIT;\n" "$v" "$v" "$v"
    done
  } > "$P/mig/shell.sql"
done

seconds() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.4f", e - s }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
case_() { # NAME DIR-SUFFIX ARGS...
  local name=$1 sub=$2; shift 2
  local a=() b=() size
  # Timed runs discard their output and status: each size is seen to do its work once here
  # (exit 0; `audit show` prints the hand-made chains' timeline and exits 6, their heads being
  # in no state store).
  local ok=0 rc
  [ "$1 $2" = "audit show" ] && ok=6
  for size in 1 10; do
    rc=0; (cd "$WORK/x$size$sub" && "$RUNBOOK" "$@" >"$WORK/err" 2>&1) || rc=$?
    [ "$rc" = 0 ] || [ "$rc" = "$ok" ] || { echo "case \`$name\` exited $rc at size $size:" >&2; tail -5 "$WORK/err" >&2; exit 1; }
  done
  for _ in $(seq 1 "$PAIRS"); do
    a+=("$(cd "$WORK/x1$sub" && seconds "$RUNBOOK" "$@")")
    b+=("$(cd "$WORK/x10$sub" && seconds "$RUNBOOK" "$@")")
  done
  local ma mb; ma=$(median "${a[@]}"); mb=$(median "${b[@]}")
  awk -v n="$name" -v a="$ma" -v b="$mb" 'BEGIN { printf "%-28s %9.3fs %9.3fs %7.2f\n", n, a, b, (a > 0 ? b / a : 0) }'
}
peak() { # DIR ARGS...: peak resident memory in MB
  local d=$1; shift
  (cd "$d" && /usr/bin/time -f %M "$RUNBOOK" "$@" 2>&1 >/dev/null | tail -1) | awk '{ printf "%.0f", $1 / 1024 }'
}
fresh_run() { rm -rf .runbook; "$RUNBOOK" -q run long; }
fresh_apply() { rm -rf .runbook; "$RUNBOOK" -q run apply; }
shell_apply() { rm -f shell.db shell.db-journal; sqlite3 -bail shell.db < shell.sql; }
resumed_run() { rm -rf .runbook; cp -r waiting .runbook; "$RUNBOOK" -q resume "$(cat run_id)" --confirm go; }
case_fn() { # NAME DIR-SUFFIX FUNCTION: like case_, timing the function (its copy of the store too)
  local name=$1 sub=$2 fn=$3
  local a=() b=() t
  for _ in $(seq 1 "$RUN_PAIRS"); do
    for size in 1 10; do
      t=$(cd "$WORK/x$size$sub" && { TIMEFORMAT=%R; { time "$fn" >/dev/null 2>&1 || true; } 2>&1; })
      if [ "$size" = 1 ]; then a+=("$t"); else b+=("$t"); fi
    done
  done
  local ma mb; ma=$(median "${a[@]}"); mb=$(median "${b[@]}")
  awk -v n="$name" -v a="$ma" -v b="$mb" 'BEGIN { printf "%-28s %9.3fs %9.3fs %7.2f\n", n, a, b, (a > 0 ? b / a : 0) }'
}
printf '%-28s %10s %10s %7s\n' case 1x 10x ratio
case_ "validate 1k/10k steps" "" validate playbooks/long.yaml
case_ "verify 1 run, 2k/20k chains" /folder audit verify "$RUN" --chain-only
case_ "show 1 run, 2k/20k chains" /folder audit show "$RUN"
case_ "verify 10k/100k records" /long audit verify "$RUN" --chain-only
case_ "show 10k/100k records" /long audit show "$RUN"
case_ "runs 2k/20k runs" /runs runs --limit 100000
case_fn "run 1k/10k steps" "" fresh_run
case_fn "resume 1k/10k steps" /gate resumed_run
case_fn "migrate apply 200/2k files" /mig fresh_apply
case_fn "sqlite3 alone, same files" /mig shell_apply
echo "verify peak memory: $(peak "$WORK/x1/long" audit verify "$RUN" --chain-only) MB at $(du -m "$WORK/x1/long/.runbook/audit/$RUN.jsonl" | cut -f1) MB of chain, $(peak "$WORK/x10/long" audit verify "$RUN" --chain-only) MB at $(du -m "$WORK/x10/long/.runbook/audit/$RUN.jsonl" | cut -f1) MB"

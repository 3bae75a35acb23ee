#!/usr/bin/env bash
# Engine overhead against its floor (issue 20): a playbook of STEPS `shell: {argv: [true]}`
# steps run by runbook (durable SQLite state, audit chain), against the floor: the same
# processes spawned one by one, each between two records written and fdatasync'd (what the
# write-ahead guarantee needs at the least: a started record durable before the step acts, a
# finished record before the next starts). Timed in turn (floor, runbook, floor, ...); prints
# the medians per step with their spread and the ratio runbook/floor (goal: at most 1.5). Also
# timed in each round: `floor1`, the same with one fdatasync per step (the finished record
# written without one, made durable by the next start's, as runbook's SQLite store does since
# stop 38), and runbook's ratio to it.
#
#   bench/engine.sh [PAIRS] [STEPS]         default: 5 pairs of 1,000 steps
#   RUNBOOK=path/to/runbook bench/engine.sh another binary (default: target/release/runbook)
#   BASELINE=path/to/old/runbook            also timed in each round
#
# With `COUNT=1` it also counts, for one run of 100 steps, the fsync/fdatasync calls and the
# threads started (clone/clone3) per step, with strace -f. With `CPU=N` it measures, over N
# pairs of a 201-step and a 1-step run (the difference, so the run's fixed cost drops out), the
# process's CPU time (user+sys, children included) and context switches per step with
# /usr/bin/time: medians, steadier than wall time on a loaded machine.
set -euo pipefail

PAIRS=${1:-5}
STEPS=${2:-1000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNBOOK=${RUNBOOK:-$ROOT/target/release/runbook}
[ -x "$RUNBOOK" ] || { echo "build first: cargo build --release" >&2; exit 2; }
WORK=$(mktemp -d /tmp/runbook-bench-engine.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/playbooks"
playbook() { # FILE STEPS
  { echo "name: bench"; echo "steps:"
    awk -v n="$2" 'BEGIN { for (i = 0; i < n; i++) printf "  - id: s%d\n    shell: { argv: [\"true\"] }\n", i }'
  } > "$1"
}
playbook "$WORK/playbooks/bench.yaml" "$STEPS"
TRUE=$(type -P true)

floor() { # [SYNCS]: 2 (default) fdatasyncs per step, or 1 (the finished record rides on the next start's)
  # Records overwritten in place in a file written once beforehand (as SQLite reuses its WAL):
  # each fdatasync then flushes data only, never the file's growth.
  python3 - "$TRUE" "$STEPS" "$WORK/floor.log" "${1:-2}" <<'EOF'
import os, sys
true, n, path, syncs = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"\0" * (n * 96)); os.fsync(fd)
off = 0
for i in range(n):
    for rec, spawn in ((b'{"event":"step_started","step":"s%d"}\n' % i, True), (b'{"event":"step_finished","step":"s%d"}\n' % i, False)):
        os.pwrite(fd, rec, off); off += len(rec)
        if spawn or syncs == 2:
            os.fdatasync(fd)
        if spawn:
            pid = os.posix_spawn(true, [true], {})
            os.waitpid(pid, 0)
os.close(fd)
EOF
}
engine() { # BINARY
  rm -rf "$WORK/.runbook"
  (cd "$WORK" && "$1" -q run bench --state "sqlite:$WORK/.runbook/state.db" >/dev/null)
}
seconds() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { printf "%.4f", e - s }'; }
stats() { # per-step ms: median [min-max]
  printf '%s\n' "$@" | sort -g | awk -v n="$STEPS" '{v[NR]=$1} END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.3f %.3f %.3f", m * 1000 / n, v[1] * 1000 / n, v[NR] * 1000 / n }'
}

f=() f1=() r=() b=()
for _ in $(seq 1 "$PAIRS"); do
  f+=("$(seconds floor)")
  f1+=("$(seconds floor 1)")
  r+=("$(seconds engine "$RUNBOOK")")
  if [ -n "${BASELINE:-}" ]; then b+=("$(seconds engine "$BASELINE")"); fi
done
read -r fm fl fh <<<"$(stats "${f[@]}")"
read -r f1m f1l f1h <<<"$(stats "${f1[@]}")"
read -r rm_ rl rh <<<"$(stats "${r[@]}")"
printf '%s steps, %s pairs; ms per step: median [min-max]\n' "$STEPS" "$PAIRS"
printf 'floor      %7.3f [%.3f-%.3f]\n' "$fm" "$fl" "$fh"
printf 'floor1     %7.3f [%.3f-%.3f]  one fdatasync per step; runbook / floor1 %.2f\n' "$f1m" "$f1l" "$f1h" "$(awk -v a="$rm_" -v b="$f1m" 'BEGIN { print a / b }')"
printf 'runbook    %7.3f [%.3f-%.3f]  ratio %.2f (goal <= 1.5)\n' "$rm_" "$rl" "$rh" "$(awk -v a="$rm_" -v b="$fm" 'BEGIN { print a / b }')"
if [ -n "${BASELINE:-}" ]; then
  read -r bm bl bh <<<"$(stats "${b[@]}")"
  printf 'baseline   %7.3f [%.3f-%.3f]  ratio %.2f\n' "$bm" "$bl" "$bh" "$(awk -v a="$bm" -v b="$fm" 'BEGIN { print a / b }')"
fi

if [ "${COUNT:-0}" = 1 ] && command -v strace >/dev/null; then
  count() { # BINARY NAME
    local n=100 a b name=$2
    playbook "$WORK/playbooks/bench.yaml" 1
    rm -rf "$WORK/.runbook"
    a=$(cd "$WORK" && strace -f -e trace=fsync,fdatasync,clone,clone3 -o "$WORK/st1" "$1" -q run bench --state "sqlite:$WORK/.runbook/state.db" >/dev/null; grep -cE 'fsync|fdatasync' "$WORK/st1"; grep -cE '^[0-9]+ +clone3?\(.*CLONE_THREAD' "$WORK/st1")
    playbook "$WORK/playbooks/bench.yaml" $((n + 1))
    rm -rf "$WORK/.runbook"
    b=$(cd "$WORK" && strace -f -e trace=fsync,fdatasync,clone,clone3 -o "$WORK/st2" "$1" -q run bench --state "sqlite:$WORK/.runbook/state.db" >/dev/null; grep -cE 'fsync|fdatasync' "$WORK/st2"; grep -cE '^[0-9]+ +clone3?\(.*CLONE_THREAD' "$WORK/st2")
    # The difference between a 101-step and a 1-step run, per step: the run's fixed cost drops out.
    set -- $a $b
    awk -v name="$name" -v f1="$1" -v t1="$2" -v f2="$3" -v t2="$4" -v n="$n" 'BEGIN { printf "%-10s fsyncs per step %.2f, threads started per step %.2f\n", name, (f2 - f1) / n, (t2 - t1) / n }'
  }
  count "$RUNBOOK" runbook
  if [ -n "${BASELINE:-}" ]; then count "$BASELINE" baseline; fi
fi

if [ "${CPU:-0}" -gt 0 ] && [ -x /usr/bin/time ]; then
  usage() { # BINARY STEPS -> "cpu_ms switches" of one run
    playbook "$WORK/playbooks/bench.yaml" "$2"
    rm -rf "$WORK/.runbook"
    (cd "$WORK" && /usr/bin/time -f '%U %S %w %c' -o "$WORK/usage" "$1" -q run bench --state "sqlite:$WORK/.runbook/state.db" >/dev/null)
    awk '{ printf "%.1f %d", ($1 + $2) * 1000, $3 + $4 }' "$WORK/usage"
  }
  per_step() { # BINARY -> "cpu_ms switches" per step: a 201-step run less a 1-step one
    local a b
    a=$(usage "$1" 1); b=$(usage "$1" 201)
    set -- $a $b
    awk -v c1="$1" -v s1="$2" -v c2="$3" -v s2="$4" 'BEGIN { print (c2 - c1) / 200, (s2 - s1) / 200 }'
  }
  med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.2f [%.2f-%.2f]", m, v[1], v[NR] }'; }
  rc=() rs=() bc=() bs=()
  for _ in $(seq 1 "$CPU"); do # in turn, like the rounds above
    read -r x y <<<"$(per_step "$RUNBOOK")"; rc+=("$x"); rs+=("$y")
    if [ -n "${BASELINE:-}" ]; then read -r x y <<<"$(per_step "$BASELINE")"; bc+=("$x"); bs+=("$y"); fi
  done
  printf 'runbook    CPU ms per step %s, context switches per step %s\n' "$(med "${rc[@]}")" "$(med "${rs[@]}")"
  if [ -n "${BASELINE:-}" ]; then
    printf 'baseline   CPU ms per step %s, context switches per step %s\n' "$(med "${bc[@]}")" "$(med "${bs[@]}")"
  fi
fi

#!/usr/bin/env bash
# Engine anchor (issue 20): the per-step overhead of `runbook run` (a step of
# `shell: {argv: [true]}`, its start and end durable in the SQLite state store and the audit
# chain) against ansible-playbook's per-task overhead (`command: /bin/true` on localhost,
# connection local, no facts), each as (time of a run of N+1 steps - time of a run of 1) / N
# minus one bare spawn of `true`, so neither tool's start-up counts. Pairs in turn, medians.
#
#   bench/ansible.sh [PAIRS] [RUNBOOK_STEPS] [ANSIBLE_TASKS]   default: 3 pairs, 200 steps, 20 tasks
#   RUNBOOK=path/to/runbook bench/ansible.sh     another binary (default: target/release/runbook)
#   ANSIBLE_PLAYBOOK=path/to/ansible-playbook   default: on PATH, else a venv made with
#                                               `pip install ansible-core` in $BENCH_VENV
#                                               (default ~/.cache/runbook-bench-venv)
# Prints per-step overhead in ms for each, and the ratio ansible / runbook. Without Ansible
# (pip cannot install it here) the Ansible row is skipped with a note.
set -euo pipefail

PAIRS=${1:-3}
N=${2:-200}
NA=${3:-20}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNBOOK=${RUNBOOK:-${CARGO_TARGET_DIR:-$ROOT/target}/release/runbook}
[ -x "$RUNBOOK" ] || { echo "build first: cargo build --release" >&2; exit 2; }
VENV=${BENCH_VENV:-$HOME/.cache/runbook-bench-venv}
if [ -z "${ANSIBLE_PLAYBOOK:-}" ]; then
  if command -v ansible-playbook >/dev/null; then ANSIBLE_PLAYBOOK=$(command -v ansible-playbook)
  elif [ -x "$VENV/bin/ansible-playbook" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q ansible-core; } >&2; then
    ANSIBLE_PLAYBOOK=$VENV/bin/ansible-playbook
  else
    ANSIBLE_PLAYBOOK=
  fi
fi
WORK=$(mktemp -d /tmp/runbook-bench-engine.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
TRUE=$(type -P true)

mkdir -p "$WORK/p/playbooks"
for n in 1 $((N + 1)); do
  { echo "name: s$n"; echo "steps:"; for i in $(seq "$n"); do
    printf '  - id: s%s\n    shell: { argv: ["%s"] }\n' "$i" "$TRUE"; done; } > "$WORK/p/playbooks/s$n.yaml"
done
for n in 1 $((NA + 1)); do
  { echo "- hosts: localhost"; echo "  connection: local"; echo "  gather_facts: false"; echo "  tasks:"
    for i in $(seq "$n"); do printf '    - name: t%s\n      command: %s\n' "$i" "$TRUE"; done; } > "$WORK/a$n.yml"
done

ms() { local s e; s=$(date +%s%N); "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
bare() { local s e; s=$(date +%s%N); for _ in $(seq "$1"); do "$TRUE"; done; e=$(date +%s%N); echo $(( (e - s) / 1000 / $1 )); }
runbook() { # steps -> microseconds
  (cd "$WORK/p" && ms "$RUNBOOK" -q run "s$1" --target "sqlite:$WORK/t.db" --state "sqlite:$WORK/state-$RANDOM$RANDOM.db")
}
ansible() { # tasks -> microseconds
  LC_ALL=C.UTF-8 ANSIBLE_NOCOLOR=1 ANSIBLE_RETRY_FILES_ENABLED=0 ANSIBLE_LOCALHOST_WARNING=0 \
    ANSIBLE_INVENTORY_UNPARSED_WARNING=0 ms "$ANSIBLE_PLAYBOOK" -i localhost, \
    -e "ansible_python_interpreter=$(dirname "$ANSIBLE_PLAYBOOK")/python3" "$WORK/a$1.yml"
}
R=(); A=(); B=()
for _ in $(seq 1 "$PAIRS"); do
  b=$(bare 200); B+=("$b")
  r1=$(runbook 1); rn=$(runbook $((N + 1)))
  R+=("$(( (rn - r1) / N - b ))")
  if [ -n "$ANSIBLE_PLAYBOOK" ]; then
    a1=$(ansible 1); an=$(ansible $((NA + 1)))
    A+=("$(( (an - a1) / NA - b ))")
  fi
done
r=$(median "${R[@]}")
printf 'bare spawn of true      %8.3f ms\n' "$(awk -v v="$(median "${B[@]}")" 'BEGIN { print v / 1000 }')"
printf 'runbook per-step        %8.3f ms overhead (%s steps, %s pairs: %s us)\n' "$(awk -v v="$r" 'BEGIN { print v / 1000 }')" "$N" "$PAIRS" "${R[*]}"
if [ -n "$ANSIBLE_PLAYBOOK" ]; then
  a=$(median "${A[@]}")
  printf 'ansible-playbook task   %8.3f ms overhead (%s tasks, %s pairs: %s us)\n' "$(awk -v v="$a" 'BEGIN { print v / 1000 }')" "$NA" "$PAIRS" "${A[*]}"
  printf 'ratio ansible / runbook %8.1f\n' "$(awk -v a="$a" -v r="$r" 'BEGIN { print a / r }')"
else
  echo "ansible-playbook skipped: not on PATH and \`pip install ansible-core\` failed (no registry?)"
fi

# Sourced by the bench scripts (`BENCH=name; . "$(dirname "$0")/cluster.sh"`): the runbook
# binary to time (RUNBOOK=path, else the release build in CARGO_TARGET_DIR or target/), and a
# throwaway PostgreSQL cluster in its own folder, port and socket (run as the postgres user
# when root), stopped and removed on exit. `start_cluster [-c setting=value ...]` starts it;
# its address is 127.0.0.1:$PORT.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNBOOK=${RUNBOOK:-${CARGO_TARGET_DIR:-$ROOT/target}/release/runbook}
[ -x "$RUNBOOK" ] || { echo "build first: cargo build --release" >&2; exit 2; }
BIN=${RUNBOOK_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
WORK=$(mktemp -d "/tmp/runbook-bench-$BENCH.XXXXXX")
PORT=$((20000 + RANDOM % 20000))
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$WORK"
cleanup() { as_pg "$BIN/pg_ctl -D $WORK/data -m immediate stop" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

start_cluster() {
  as_pg "$BIN/initdb -D $WORK/data -A trust -U postgres" >/dev/null
  as_pg "$BIN/pg_ctl -D $WORK/data -l $WORK/log -w -o '-p $PORT -k $WORK -c listen_addresses=127.0.0.1 $*' start" >/dev/null
}

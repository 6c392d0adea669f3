#!/usr/bin/env bash
# The demo: starts a throwaway PostgreSQL, puts pgsluice in front of it with the unchanged
# config/pgbouncer.ini + config/userlist.txt, drives 500 pgbench clients through it for ~15 s,
# and prints the result. Everything it starts is stopped by PID on exit.
#
#   scripts/demo.sh            # 500 clients, 15 s
#   DEMO_CLIENTS=100 DEMO_SECONDS=5 scripts/demo.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

clients=${DEMO_CLIENTS:-500}
seconds=${DEMO_SECONDS:-15}
ensure_rust
ensure_postgres
bindir=$PGSLUICE_PG_BINDIR

say "building pgsluice (release)"
cargo build --release --locked --quiet

work=$(mktemp -d -t pgsluice-demo.XXXXXX)
pg_pid= ; pooler_pid=
cleanup() {
  [[ -n $pooler_pid ]] && kill -INT "$pooler_pid" 2>/dev/null && wait "$pooler_pid" 2>/dev/null || true
  if [[ -n $pg_pid ]] && kill -0 "$pg_pid" 2>/dev/null; then
    kill -INT "$pg_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
[[ $(id -u) -eq 0 ]] && chown postgres "$work"

# config/pgbouncer.ini points the `app` database at 127.0.0.1:5432 and listens on 6432. When
# either port is taken on this machine, the demo runs on free ports with a copy of the file that
# differs only in those two numbers, and says so.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_port=5432 pooler_port=6432 config=config/pgbouncer.ini
port_busy $pg_port && pg_port=$(free_port)
port_busy $pooler_port && pooler_port=$(free_port)
if [[ $pg_port != 5432 || $pooler_port != 6432 ]]; then
  config=$work/pgbouncer.ini
  sed -e "s/port=5432/port=$pg_port/" -e "s/^listen_port = 6432/listen_port = $pooler_port/" config/pgbouncer.ini >"$config"
  say "ports 5432/6432 are busy here: using Postgres on $pg_port and pgsluice on $pooler_port (a copy of config/pgbouncer.ini with only those changed)"
fi

say "starting a throwaway PostgreSQL on 127.0.0.1:$pg_port"
init_throwaway_cluster "$work" "$pg_port" "$bindir"
as_pg "$bindir/postgres" -D "$work/data" >"$work/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 1 100); do "$bindir/pg_isready" -q -h 127.0.0.1 -p $pg_port && break; sleep 0.1; done
"$bindir/pg_isready" -q -h 127.0.0.1 -p $pg_port || { cat "$work/postgres.log"; die "postgres did not start"; }
psql_su() { "$bindir/psql" -X -q -h 127.0.0.1 -p $pg_port -U postgres "$@"; }
psql_su -c "create role app login password 'app_password'" -c "create database app owner app"
PGPASSWORD=app_password "$bindir/pgbench" -i -q -s 5 -h 127.0.0.1 -p $pg_port -U app app 2>&1 | tail -n 1

say "starting pgsluice with $config"
ulimit -n 4096 2>/dev/null || true
target/release/pgsluice "$config" 2>"$work/pgsluice.log" &
pooler_pid=$!
for _ in $(seq 1 100); do port_busy "$pooler_port" && break; sleep 0.1; done

say "pgbench: $clients clients, ${seconds}s, select-only, through pgsluice (pool_size 25)"
PGPASSWORD=app_password "$bindir/pgbench" -h 127.0.0.1 -p "$pooler_port" -U app -c "$clients" -j 2 -T "$seconds" -S -M simple -n app \
  | grep -E 'clients|duration|processed|failed|latency|tps'
say "server connections PostgreSQL saw from the pool (max 25):"
psql_su -At -c "select count(*) from pg_stat_activity where datname = 'app' and usename = 'app'"
say "pgsluice memory: $(grep -E 'VmHWM' /proc/$pooler_pid/status | tr -s ' ') peak, $(grep -E 'VmRSS' /proc/$pooler_pid/status | tr -s ' ') now"
say "demo finished; pgsluice log:"
tail -n 5 "$work/pgsluice.log"

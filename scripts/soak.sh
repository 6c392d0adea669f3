#!/usr/bin/env bash
# The long soak: builds pgsluice (release), starts a throwaway PostgreSQL and pgsluice on free
# loopback ports, runs mixed pgbench loads (simple / extended / prepared protocol, plus -C
# connect churn) for SECONDS (default 600) while injecting faults — a random pooler backend
# killed with pg_terminate_backend every 15 s, and `pg_ctl restart -m fast` half-way — then
# reports transactions run, errors by kind, and pgsluice's RSS and fd count before and after.
# Everything it starts is stopped by PID on exit. The 60-second version runs in the test suite
# (tests/it/soak.rs).
#
#   scripts/soak.sh          # 600 s
#   scripts/soak.sh 120
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

seconds=${1:-600}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 20 && seconds <= 86400)) || die "SECONDS must be 20..86400"
round=10
ensure_rust
ensure_postgres
bindir=$PGSLUICE_PG_BINDIR

say "building pgsluice (release)"
cargo build --release --locked --quiet

work=$(mktemp -d -t pgsluice-soak.XXXXXX)
chmod 755 "$work"
pooler_pid= ; load_pids=()
pg_ctl() { as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/postgres.log" "$@"; }
cleanup() {
  local pid
  for pid in "${load_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  [[ -n $pooler_pid ]] && kill -INT "$pooler_pid" 2>/dev/null && wait "$pooler_pid" 2>/dev/null || true
  [[ -f $work/data/postmaster.pid ]] && pg_ctl stop -m fast -w -t 30 >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
[[ $(id -u) -eq 0 ]] && chown postgres "$work"

pg_port=$(free_port)
pooler_port=$(free_port)
[[ $pg_port != "$pooler_port" ]] || die "port clash; run again"

say "starting a throwaway PostgreSQL on 127.0.0.1:$pg_port"
init_throwaway_cluster "$work" "$pg_port" "$bindir"
pg_ctl start -w -t 60 >/dev/null || { cat "$work/postgres.log"; die "postgres did not start"; }
psql_su() { "$bindir/psql" -X -q -At -h 127.0.0.1 -p "$pg_port" -U postgres "$@"; }
psql_su -c "create role soak login password 'soak_pw'" -c "create database soak owner soak"
export PGPASSWORD=soak_pw
"$bindir/pgbench" -i -q -s 5 -h 127.0.0.1 -p "$pg_port" -U soak soak >/dev/null 2>&1

echo '"soak" "soak_pw"' >"$work/userlist.txt"
cat >"$work/pgbouncer.ini" <<INI
[databases]
soak = host=127.0.0.1 port=$pg_port dbname=soak
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $pooler_port
unix_socket_dir =
auth_type = md5
auth_file = $work/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 500
max_prepared_statements = 100
server_login_retry = 1
query_wait_timeout = 30
INI
say "starting pgsluice on 127.0.0.1:$pooler_port"
target/release/pgsluice -q "$work/pgbouncer.ini" 2>"$work/pgsluice.log" &
pooler_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$pooler_port") 2>/dev/null && break; sleep 0.1; done
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pooler_pid/status"; }
fds() { find "/proc/$pooler_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
bench() {
  timeout $((round + 60)) "$bindir/pgbench" -h 127.0.0.1 -p "$pooler_port" -U soak -n "$@" soak
}
bench -c 4 -j 4 -T 3 -S -M simple >/dev/null 2>&1 || true
rss_before=$(rss) fds_before=$(fds)

deadline=$((SECONDS + seconds))
load() { # name, pgbench args…
  local name=$1; shift
  while ((SECONDS + round <= deadline)); do
    bench -T "$round" "$@" >>"$work/load-$name.out" 2>>"$work/load-$name.err" || echo "exit $?" >>"$work/load-$name.err"
  done
}
load simple -c 8 -j 8 -M simple &
load_pids+=($!)
load extended -c 4 -j 4 -M extended -S &
load_pids+=($!)
load prepared -c 4 -j 4 -M prepared &
load_pids+=($!)
load churn -c 4 -j 4 -M simple -S -C &
load_pids+=($!)

say "soaking for ${seconds}s: 4 loads, a backend killed every 15 s, one restart half-way"
kills=0 restarts=0
while ((SECONDS < deadline)); do
  sleep 15
  if ((restarts == 0 && SECONDS > deadline - seconds / 2)); then
    pg_ctl restart -m fast -w -t 60 >/dev/null
    restarts=1
  else
    psql_su -d soak -c "select count(pg_terminate_backend(pid)) from (select pid from pg_stat_activity \
      where datname = 'soak' and usename = 'soak' order by random() limit 1) victims" >/dev/null || true
    kills=$((kills + 1))
  fi
done
for pid in "${load_pids[@]}"; do wait "$pid" || true; done
load_pids=()
bench -c 4 -j 4 -T 3 -S -M prepared >"$work/final.out" 2>&1 && final=ok || final=FAILED
sleep 1
rss_after=$(rss) fds_after=$(fds)

tx=$(cat "$work"/load-*.out | awk -F': ' '/actually processed/ {split($2, a, "/"); s += a[1]} END {print s + 0}')
count() { cat "$work"/load-*.err | grep -c -- "$1" || true; }
cat <<REPORT
==> soak report (${seconds}s)
transactions run:                   $tx
backends killed / postgres restarts: $kills / $restarts
errors by kind (pgbench stderr lines):
  server conn crashed? (08P01):      $(count 'server conn crashed')
  terminated by admin (57P01):       $(count 'terminating connection')
  server down, server_login_retry:   $(count 'server_login_retry')
  query_wait_timeout:                $(count 'query_wait_timeout')
  pgbench runs that exited non-zero: $(count '^exit ')
  pgbench runs that hit the timeout: $(count '^exit 124')
final clean run after the faults:   $final
pgsluice RSS (kB) before / after:   $rss_before / $rss_after
pgsluice open fds before / after:   $fds_before / $fds_after
REPORT
[[ $final == ok ]]

#!/usr/bin/env bash
# The long soak (not in CI): builds pgsluice (release), starts a throwaway PostgreSQL and pgsluice
# on free loopback ports, and runs a mixed load for SECONDS (default 1800):
#   select   pgbench -S, simple protocol
#   tpcb     pgbench's TPC-B-like read/write script, simple protocol
#   prepared pgbench -M prepared, read/write
#   tls      pgbench -S -M extended over TLS (sslmode=require; a throwaway CA made with openssl)
#   churn    pgbench -S -C: a new login per transaction
#   admin    SHOW POOLS / STATS / CLIENTS / SERVERS / MEM / LISTS on the console, every 2 s
#   reload   RELOAD on the console every 60 s
# Every 10 s it samples pgsluice's RSS, open fds and threads (from /proc), its client and server
# connections and transactions (SHOW POOLS / SHOW STATS) into soak.csv, and at the end draws
# soak.png (python3 + matplotlib; installs python3-matplotlib with apt-get when missing and root)
# and prints start/end/max of each series and whether it ended flat (the mean of the last tenth
# within 10% of the mean of the second tenth, the first being warm-up).
# Each pgbench load is held to SOAK_RATE transactions/s (default 200, pgbench -R: the machine is
# shared, and a leak shows at any rate). SOAK_FAULTS=1 adds faults: a random pooler backend
# killed every 15 s, `pg_ctl restart -m fast` half-way. Everything it starts is stopped by PID on exit. The results stay in SOAK_OUT
# (default target/soak). The 60-second version runs in the test suite (tests/it/soak.rs).
#
#   scripts/soak.sh               # 30 minutes
#   nice scripts/soak.sh 600      # 10 minutes
#   SOAK_FAULTS=1 scripts/soak.sh 900
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

seconds=${1:-1800}
[[ $seconds =~ ^[0-9]+$ ]] && ((seconds >= 60 && seconds <= 86400)) || die "SECONDS must be 60..86400"
faults=${SOAK_FAULTS:-0}
out=${SOAK_OUT:-target/soak}
round=30
rate=${SOAK_RATE:-200}
[[ $rate =~ ^[0-9]+$ ]] && ((rate >= 1)) || die "SOAK_RATE must be a positive number"
ensure_rust
ensure_postgres
ensure_tool openssl openssl
bindir=$PGSLUICE_PG_BINDIR

say "building pgsluice (release)"
cargo build --release --locked --quiet
mkdir -p "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d -t pgsluice-soak.XXXXXX)
chmod 755 "$work"
pooler_pid= ; load_pids=()
pg_ctl() { as_pg "$bindir/pg_ctl" -D "$work/data" -l "$work/postgres.log" "$@"; }
cleanup() {
  local pid
  for pid in "${load_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${load_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  [[ -n $pooler_pid ]] && kill -INT "$pooler_pid" 2>/dev/null && wait "$pooler_pid" 2>/dev/null || true
  [[ -f $work/data/postmaster.pid ]] && pg_ctl stop -m fast -w -t 30 >/dev/null 2>&1 || true
  cp "$work/pgsluice.log" "$out/pgsluice.log" 2>/dev/null || true
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
export PGPASSWORD=soak_pw PGCONNECT_TIMEOUT=10
"$bindir/pgbench" -i -q -s 5 -h 127.0.0.1 -p "$pg_port" -U soak soak >/dev/null 2>&1

say "making a throwaway CA and server certificate"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=soak-ca \
  -keyout "$work/ca.key" -out "$work/ca.crt" >/dev/null 2>&1
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
  -keyout "$work/server.key" -out "$work/server.csr" >/dev/null 2>&1
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -CAcreateserial -days 2 -out "$work/server.crt" >/dev/null 2>&1
chmod 600 "$work/server.key"

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
admin_users = soak
pool_mode = transaction
default_pool_size = 10
max_client_conn = 500
max_prepared_statements = 100
server_login_retry = 1
query_wait_timeout = 30
client_tls_sslmode = allow
client_tls_cert_file = $work/server.crt
client_tls_key_file = $work/server.key
INI
say "starting pgsluice on 127.0.0.1:$pooler_port"
target/release/pgsluice -q "$work/pgbouncer.ini" 2>"$work/pgsluice.log" &
pooler_pid=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$pooler_port") 2>/dev/null && break; sleep 0.1; done
console() { timeout 20 "$bindir/psql" -X -q -At -F, -h 127.0.0.1 -p "$pooler_port" -U soak -d pgbouncer "$@"; }
status() { awk -v f="$1:" '$1 == f {print $2}' "/proc/$pooler_pid/status"; }
fds() { find "/proc/$pooler_pid/fd" -mindepth 1 -maxdepth 1 | wc -l; }
bench() {
  timeout $((round + 60)) "$bindir/pgbench" -h 127.0.0.1 -p "$pooler_port" -U soak -n "$@" soak
}
# SHOW POOLS: cl_active,cl_waiting,... sv_active,sv_idle,sv_used,sv_tested,sv_login (columns by name).
pools() {
  console -c "show pools" -P footer=off -P tuples_only=off | awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "soak" { cl += $col["cl_active"] + $col["cl_waiting"]
      sv += $col["sv_active"] + $col["sv_idle"] + $col["sv_used"] + $col["sv_tested"] + $col["sv_login"] }
    END { printf "%d,%d\n", cl, sv }'
}
xacts() {
  console -c "show stats" -P footer=off -P tuples_only=off | awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == "soak" { print $col["total_xact_count"] }'
}

deadline=$((SECONDS + seconds))
load() { # name, env, pgbench args…
  local name=$1 env=$2; shift 2
  local t
  while :; do
    t=$((deadline - SECONDS))
    ((t > round)) && t=$round
    ((t >= 5)) || break
    # shellcheck disable=SC2086 # $env is a list of NAME=VALUE words
    env $env "$(command -v timeout)" $((t + 60)) "$bindir/pgbench" -h 127.0.0.1 -p "$pooler_port" \
      -U soak -n -T "$t" -R "$rate" "$@" soak >>"$work/load-$name.out" 2>>"$work/load-$name.err" ||
      echo "exit $?" >>"$work/load-$name.err"
  done
}
sslreq="PGSSLMODE=require PGSSLROOTCERT=$work/ca.crt"
load select PGSSLMODE=disable -c 4 -j 4 -S -M simple &
load_pids+=($!)
load tpcb PGSSLMODE=disable -c 4 -j 4 -M simple &
load_pids+=($!)
load prepared PGSSLMODE=disable -c 3 -j 3 -M prepared &
load_pids+=($!)
load tls "$sslreq" -c 3 -j 3 -S -M extended &
load_pids+=($!)
load churn PGSSLMODE=disable -c 2 -j 2 -S -M simple -C &
load_pids+=($!)
admin_loop() {
  local n=0 cmd
  while ((SECONDS < deadline)); do
    for cmd in "show pools" "show stats" "show clients" "show servers" "show mem" "show lists"; do
      console -c "$cmd" >/dev/null 2>>"$work/admin.err" && n=$((n + 1)) || echo "failed: $cmd" >>"$work/admin.err"
    done
    echo "$n" >"$work/admin.count"
    sleep 2
  done
}
admin_loop &
load_pids+=($!)

csv=$out/soak.csv
echo "elapsed_s,rss_kb,fds,threads,clients,server_conns,xacts,tps" >"$csv"
say "soaking for ${seconds}s (faults: $faults); samples every 10 s in $csv"
start=$SECONDS reloads=0 reload_fail=0 kills=0 restarts=0 last_x= last_t=
next_reload=$((SECONDS + 60)) next_kill=$((SECONDS + 15))
while ((SECONDS < deadline)); do
  now=$SECONDS
  x=$(xacts || true) ; x=${x:-0}
  pc=$(pools || echo "0,0")
  tps=
  [[ -n $last_x ]] && ((now > last_t)) && tps=$(((x - last_x) / (now - last_t)))
  last_x=$x last_t=$now
  echo "$((now - start)),$(status VmRSS),$(fds),$(status Threads),$pc,$x,$tps" >>"$csv"
  if ((SECONDS >= next_reload)); then
    console -c reload >/dev/null 2>>"$work/admin.err" && reloads=$((reloads + 1)) || reload_fail=$((reload_fail + 1))
    next_reload=$((next_reload + 60))
  fi
  if ((faults && SECONDS >= next_kill)); then
    if ((restarts == 0 && SECONDS > deadline - seconds / 2)); then
      pg_ctl restart -m fast -w -t 60 >/dev/null
      restarts=1
    else
      psql_su -d soak -c "select count(pg_terminate_backend(pid)) from (select pid from pg_stat_activity \
        where datname = 'soak' and usename = 'soak' order by random() limit 1) victims" >/dev/null || true
      kills=$((kills + 1))
    fi
    next_kill=$((next_kill + 15))
  fi
  sleep $((10 - (SECONDS - now) > 0 ? 10 - (SECONDS - now) : 1))
done
for pid in "${load_pids[@]}"; do wait "$pid" || true; done
load_pids=()
bench -c 4 -j 4 -T 3 -S -M prepared >"$work/final.out" 2>&1 && final=ok || final=FAILED

tx=$(cat "$work"/load-*.out | awk -F': ' '/actually processed/ {split($2, a, "/"); s += a[1]} END {print s + 0}')
count() { cat "$work"/load-*.err | grep -c -- "$1" || true; }
panics=$(grep -c -i 'panicked' "$work/pgsluice.log" || true)
report=$out/report.txt
{
  echo "==> soak report (${seconds}s, faults: $faults)"
  echo "transactions run (pgbench):          $tx"
  for f in "$work"/load-*.out; do
    n=$(basename "$f" .out); n=${n#load-}
    printf '  %-9s %s\n' "$n" "$(awk -F': ' '/actually processed/ {split($2, a, "/"); s += a[1]} END {print s + 0}' "$f")"
  done
  echo "admin commands run / failed:         $(cat "$work/admin.count" 2>/dev/null || echo 0) / $(grep -c '^failed' "$work/admin.err" || true)"
  echo "RELOADs done / failed:               $reloads / $reload_fail"
  echo "backends killed / postgres restarts: $kills / $restarts"
  echo "pgbench runs that exited non-zero:   $(count '^exit ')"
  echo "pgbench runs that hit the timeout:   $(count '^exit 124')"
  echo "errors in pgbench stderr:            $(cat "$work"/load-*.err | grep -c -i 'error\|fatal' || true)"
  echo "panics in pgsluice's log:            $panics"
  echo "final clean run after the soak:      $final"
} | tee "$report"
# The plotting python: the first with matplotlib (a pyenv shim may hide the system's).
plot_python() {
  local py
  for py in python3 /usr/bin/python3; do
    command -v "$py" >/dev/null 2>&1 && "$py" -c 'import matplotlib' 2>/dev/null && { echo "$py"; return; }
  done
  return 1
}
py=$(plot_python) || {
  as_root apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null 2>&1 ||
    { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends python3-matplotlib >/dev/null 2>&1; } ||
    say "python3-matplotlib not available: no graph (the CSV is in $csv)"
  py=$(plot_python) || py=python3
}
"$py" scripts/soak_plot.py "$csv" "$out/soak.png" | tee -a "$report"
[[ $final == ok && $panics == 0 ]]

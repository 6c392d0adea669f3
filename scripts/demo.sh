#!/usr/bin/env bash
# The demo: starts a throwaway PostgreSQL, puts pgsluice in front of it with the unchanged
# config/pgbouncer.ini + config/userlist.txt (and, for metrics and alerts, the demo-only
# config/demo-pgsluice.ini given with --extra-config), drives 500 pgbench clients through it
# for 15 s, and shows what a PgBouncer user looks at and what pgsluice adds while they run:
# SHOW POOLS, /metrics histograms, and the pool-utilisation alert going pending, firing and
# resolved with a local webhook receiving it. Ends with a summary. Everything it starts is
# stopped by PID on exit.
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
ensure_tool python3 python3
ensure_tool curl curl
bindir=$PGSLUICE_PG_BINDIR

say "building pgsluice (release)"
cargo build --release --locked --quiet

work=$(mktemp -d -t pgsluice-demo.XXXXXX)
pg_pid='' pooler_pid='' hook_pid='' bench_pid='' watch_pid=''
cleanup() {
  local p
  for p in "$watch_pid" "$bench_pid" "$hook_pid"; do
    [[ -n $p ]] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
  done
  [[ -n $pooler_pid ]] && kill -INT "$pooler_pid" 2>/dev/null && wait "$pooler_pid" 2>/dev/null || true
  if [[ -n $pg_pid ]] && kill -0 "$pg_pid" 2>/dev/null; then
    kill -INT "$pg_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT
[[ $(id -u) -eq 0 ]] && chown postgres "$work"

# config/pgbouncer.ini points the `app` database at 127.0.0.1:5432 and listens on 6432; the
# demo extras use 9127 (metrics) and 9000 (webhook). When a port is taken on this machine, the
# demo runs on a free one with a copy of the file that differs only in that number, and says so.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pg_port=5432 pooler_port=6432 metrics_port=9127 hook_port=9000
config=config/pgbouncer.ini extra=config/demo-pgsluice.ini
port_busy $pg_port && pg_port=$(free_port)
port_busy $pooler_port && pooler_port=$(free_port)
port_busy $metrics_port && metrics_port=$(free_port)
port_busy $hook_port && hook_port=$(free_port)
if [[ $pg_port != 5432 || $pooler_port != 6432 ]]; then
  config=$work/pgbouncer.ini
  sed -e "s/port=5432/port=$pg_port/" -e "s/^listen_port = 6432/listen_port = $pooler_port/" config/pgbouncer.ini >"$config"
  say "5432 or 6432 is busy here: Postgres on $pg_port, pgsluice on $pooler_port"
  say "(a copy of config/pgbouncer.ini with only those numbers changed)"
fi
if [[ $metrics_port != 9127 || $hook_port != 9000 ]]; then
  extra=$work/demo-pgsluice.ini
  sed -e "s/:9127/:$metrics_port/" -e "s/:9000/:$hook_port/" config/demo-pgsluice.ini >"$extra"
  say "9127 or 9000 is busy here: metrics on $metrics_port, webhook on $hook_port (a copy of config/demo-pgsluice.ini)"
fi

say "starting a throwaway PostgreSQL on 127.0.0.1:$pg_port"
init_throwaway_cluster "$work" "$pg_port" "$bindir"
as_pg "$bindir/postgres" -D "$work/data" >"$work/postgres.log" 2>&1 &
pg_pid=$!
for _ in $(seq 1 100); do "$bindir/pg_isready" -q -h 127.0.0.1 -p $pg_port && break; sleep 0.1; done
"$bindir/pg_isready" -q -h 127.0.0.1 -p $pg_port || { cat "$work/postgres.log"; die "postgres did not start"; }
psql_su() { "$bindir/psql" -X -q -h 127.0.0.1 -p $pg_port -U postgres "$@"; }
psql_su -c "create role app login password 'app_password'" -c "create database app owner app"
PGPASSWORD=app_password "$bindir/pgbench" -i -q -s 5 -h 127.0.0.1 -p "$pg_port" -U app app >"$work/init.log" 2>&1 ||
  { cat "$work/init.log"; die "pgbench -i failed"; }
say "pgbench -i -s 5: 500000 rows in pgbench_accounts"

# The webhook receiver: one line per notification POSTed, in arrival order.
say "starting a webhook receiver on 127.0.0.1:$hook_port (alert_webhook_url)"
python3 -u - "$hook_port" >"$work/webhook.log" 2>"$work/webhook.err" <<'PY' &
import json, sys, time
from http.server import BaseHTTPRequestHandler, HTTPServer
class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        for a in json.loads(body):
            l, n = a["labels"], a["annotations"]
            print("%s POST %s  %-8s %s/%s value=%s" % (time.strftime("%H:%M:%S"), l["alertname"],
                  n["state"], l["database"], l["user"], n["value"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
hook_pid=$!

say "starting pgsluice $config --extra-config $extra"
ulimit -n 4096 2>/dev/null || true
target/release/pgsluice --extra-config "$extra" "$config" 2>"$work/pgsluice.log" &
pooler_pid=$!
for _ in $(seq 1 100); do port_busy "$pooler_port" && break; sleep 0.1; done
port_busy "$pooler_port" || { cat "$work/pgsluice.log"; die "pgsluice did not start"; }

metrics() { curl -sf "http://127.0.0.1:$metrics_port/metrics"; }
# The state of the pool_utilization alert of app/app, from pgsluice_alert_state.
alert_state() {
  metrics | awk '/^pgsluice_alert_state\{/ && /alert="pool_utilization"/ && /database="app"/ && $NF == 1 {
    sub(/.*state="/, ""); sub(/".*/, ""); print; exit }'
}
# Records each change of the alert's state with the seconds since the load started.
watch_alert() {
  local start_ns=$1 last='' now tenths
  while :; do
    now=$(alert_state || true)
    if [[ -n $now && $now != "$last" ]]; then
      tenths=$((($(date +%s%N) - start_ns) / 100000000))
      echo "$now $((tenths / 10)).$((tenths % 10))"
      last=$now
    fi
    sleep 0.2
  done
}
console() { PGPASSWORD=admin_password "$bindir/psql" -X -h 127.0.0.1 -p "$pooler_port" -U admin pgbouncer "$@"; }
# An admin console command as a table of the named columns (the full rows of SHOW POOLS are
# wider than a terminal): console_table COMMAND FIRST-COLUMN-VALUE COLUMN...
console_table() {
  local cmd=$1 key=$2; shift 2
  console -A -F '|' -c "$cmd" | awk -F'|' -v want="$*" -v key="$key" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; n = split(want, w, " ")
              for (j = 1; j <= n; j++) { cell[0, j] = w[j]; wid[j] = length(w[j]) }; next }
    $1 == key { r++; for (j = 1; j <= n; j++) { v = $(col[w[j]]); cell[r, j] = v
                                               if (length(v) > wid[j]) wid[j] = length(v) } }
    END { for (i = 0; i <= r; i++) { line = " "
            for (j = 1; j <= n; j++) line = line sprintf(" %-" wid[j] "s", cell[i, j])
            sub(/ +$/, "", line); print line } }'
}
show_pools() {
  console_table 'SHOW POOLS' app database user pool_mode cl_active cl_waiting sv_active sv_idle maxwait_us
}
show_alerts() { console_table 'SHOW ALERTS' pool_utilization name state value threshold for since; }
server_conns() { psql_su -At -c "select count(*) from pg_stat_activity where datname = 'app' and usename = 'app'"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$pooler_pid/stat"; }
wait_until() { # tenths command...: polls until the command succeeds, at most tenths/10 s
  local tenths=$1; shift
  for _ in $(seq 1 "$tenths"); do "$@" && return 0; sleep 0.1; done
  return 1
}
connected() { # all pgbench clients logged in (read from /metrics: no console connection yet)
  (( $(metrics | awk '/^pgsluice_pool_client_connections\{database="app"/ {n += $NF} END {print n + 0}') >= clients ))
}
state_is() { [[ $(alert_state) == "$1" ]]; }

say "pgbench: $clients clients, ${seconds}s, select-only, through pgsluice (pool_size 25)"
ticks0=$(cpu_ticks)
start=$(date +%s%N)
watch_alert "$start" >"$work/alert.log" &
watch_pid=$!
PGPASSWORD=app_password "$bindir/pgbench" -h 127.0.0.1 -p "$pooler_port" -U app -c "$clients" -j 2 \
  -T "$seconds" -S -M simple -n -l --sampling-rate=0.2 --log-prefix="$work/pgbench" app \
  >"$work/pgbench.out" 2>"$work/pgbench.err" &
bench_pid=$!
wait_until 300 connected || say "not every client logged in yet"
sleep 1

say "during the load: SHOW POOLS on the admin console (psql -U admin pgbouncer)"
show_pools
servers=$(server_conns)
echo "  PostgreSQL sees $servers connections from the pool (pg_stat_activity)"

say "during the load: SHOW ALERTS (pool_utilization: sv_active / pool_size over 0.9 for 3 s)"
show_alerts
wait_until 150 state_is firing || true
show_alerts
wait_until 50 grep -q firing "$work/webhook.log" || true
echo "  webhook received:"
sed 's/^/    /' "$work/webhook.log"

say "during the load: /metrics (client wait and transaction time histograms, a few buckets)"
metrics | grep -E '^pgsluice_(client_wait|transaction_duration)_seconds_(bucket\{.*le="(0.001|0.01|0.1|1)"|count|sum)' |
  sed -e 's/database="app",user="app",\{0,1\}//' -e 's/{}//' -e 's/^/  /'
metrics | grep -E '^pgsluice_pool_(utilization_ratio|client_connections)' | sed -e 's/database="app",user="app",\{0,1\}//' -e 's/{}//' -e 's/^/  /'

wait "$bench_pid" || { cat "$work/pgbench.err"; die "pgbench failed"; }
bench_pid=
ticks1=$(cpu_ticks)
say "pgbench finished"
grep -E '^(number of (transactions actually processed|failed)|latency average|tps)' "$work/pgbench.out" | sed 's/^/  /'

say "after the load: the alert resolves (at or under 95 % of the threshold for 3 s)"
wait_until 200 state_is resolved || true
wait_until 20 grep -q resolved "$work/alert.log" || true
show_alerts
wait_until 50 grep -q resolved "$work/webhook.log" || true
echo "  webhook received:"
sed 's/^/    /' "$work/webhook.log"

# The summary.
tps=$(sed -n 's/^tps = \([0-9]*\).*/\1/p' "$work/pgbench.out" | head -n 1)
p95=$(cat "$work"/pgbench.* 2>/dev/null | awk '{print $3}' | sort -n |
  awk '{v[NR] = $1} END {if (NR) printf "%.1f ms (%d sampled transactions)", v[int(NR * 0.95)] / 1000, NR}')
hz=$(getconf CLK_TCK)
cpu=$(awk -v a="$ticks0" -v b="$ticks1" -v hz="$hz" -v s="$seconds" \
  'BEGIN {printf "%.1f s of CPU in %d s (%.0f %% of one core)", (b - a) / hz, s, 100 * (b - a) / hz / s}')
mem() { awk -v k="$1:" '$1 == k {printf "%.1f MB", $2 / 1024}' "/proc/$pooler_pid/status"; }
timeline=$(awk '$1 != "ok" {printf "%s%s +%ss", (n++ ? ", " : ""), $1, $2}' "$work/alert.log")
say "summary"
printf '  %-20s %s\n' \
  "clients" "$clients pgbench clients, select-only, ${seconds} s, transaction pooling" \
  "TPS" "$tps transactions per second (pgbench, without connection time)" \
  "latency p95" "$p95, as the clients saw it" \
  "server connections" "$servers in PostgreSQL for $clients clients (default_pool_size = 25)" \
  "pooler CPU" "$cpu" \
  "pooler memory" "$(mem VmRSS) resident now, $(mem VmHWM) peak" \
  "alert" "pool_utilization: ${timeline:-no transition seen}" \
  "webhook" "$(wc -l <"$work/webhook.log") notifications received"

#!/usr/bin/env bash
# What built-in metrics cost: pgsluice with `metrics_listen` set and scraped every second vs
# pgsluice without metrics, same binary, same pgbench select-only workload.
#
#   benches/metrics_cost.sh [--reps N] [--duration S] [--clients 50,500] [--pgsluice-bin PATH]
#
# On a shared machine, run one benchmark at a time (each measures the pooler's CPU).
#
# What it does (docs/benchmarks.md, "Metrics on vs off"):
#   1. builds pgsluice (`cargo build --release --locked`) unless --pgsluice-bin is given;
#   2. starts a throwaway PostgreSQL (initdb in a temp dir, free loopback port, fsync=off, run
#      as the `postgres` user when root), one md5 user, `pgbench -i -s 10`;
#   3. starts two pgsluice processes side by side from the same config (transaction mode,
#      default_pool_size = 25), which differ only in listen_port and, for "on", a [pgsluice]
#      section with metrics_listen; a background loop GETs the "on" pooler's /metrics every
#      second for the whole run;
#   4. per client count: a 1 s warm-up on both, then N runs per pooler of
#      `pgbench -n -S -T S -c C -j 2`, alternating on/off (which goes first flips per client
#      count), recording TPS and the pooler's CPU time (/proc/PID/stat) per run;
#   5. measures the pooler CPU time of 1000 scrapes in a row (the cost of one scrape);
#   6. prints a markdown table: median TPS on and off, their ratio, and CPU per 10k transactions.
#
# Every process it starts is stopped by PID on exit; all traffic is on 127.0.0.1; every run is
# bounded by `timeout`. Default: 3 runs x 10 s at 50 and 500 clients, about 3 minutes.
# Environment: PGSLUICE_PG_BINDIR (default /usr/lib/postgresql/15/bin), CARGO_BUILD_JOBS.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

say() { printf '==> [%4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

REPS=3
DURATION=10
CLIENTS=50,500
PGSLUICE_BIN=
usage() { sed -n '2,9p' "$ROOT/benches/metrics_cost.sh" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --reps) REPS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --clients) CLIENTS=${2:?}; shift ;;
    --pgsluice-bin) PGSLUICE_BIN=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done
[[ $REPS =~ ^[1-9][0-9]?$ ]] || die "--reps must be 1..99"
[[ $DURATION =~ ^[1-9][0-9]{0,2}$ ]] || die "--duration must be 1..999 seconds"
[[ $CLIENTS =~ ^[1-9][0-9]{0,3}(,[1-9][0-9]{0,3})*$ ]] || die "--clients must be a list like 50,500 (1..9999)"
IFS=, read -r -a CLIENT_COUNTS <<<"$CLIENTS"

PG_BINDIR=${PGSLUICE_PG_BINDIR:-/usr/lib/postgresql/15/bin}
for b in initdb postgres pg_isready psql pgbench; do
  [[ -x $PG_BINDIR/$b ]] || die "$PG_BINDIR/$b not found: run scripts/test.sh once (it installs PostgreSQL 15) or set PGSLUICE_PG_BINDIR"
done
for tool in python3 curl timeout; do
  command -v "$tool" >/dev/null || die "$tool not found"
done

RUN_AS=()
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user"
  command -v setpriv >/dev/null || die "setpriv (util-linux) not found"
  RUN_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

if [[ -z $PGSLUICE_BIN ]]; then
  say "building pgsluice: cargo build --release --locked (CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-default})"
  cargo build --release --locked --bin pgsluice >&2 || die "cargo build failed"
  PGSLUICE_BIN=$ROOT/target/release/pgsluice
fi
[[ -x $PGSLUICE_BIN ]] || die "pgsluice binary $PGSLUICE_BIN not found"
ulimit -n "$(ulimit -Hn | sed 's/unlimited/65536/')" 2>/dev/null || true

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgsluice-metrics-cost.XXXXXX")
chmod 755 "$WORK"
PG_PID=
SCRAPER_PID=
declare -A PID=()

stop_pid() { # pid signal
  local pid=$1 i
  [[ -n $pid ]] || return 0
  kill -s "$2" "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -s KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$? m
  trap - EXIT INT TERM
  stop_pid "$SCRAPER_PID" TERM
  for m in "${!PID[@]}"; do stop_pid "${PID[$m]}" TERM; done
  stop_pid "$PG_PID" INT
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_tcp() { # port pid
  local i
  for ((i = 0; i < 200; i++)); do
    kill -0 "$2" 2>/dev/null || return 1
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# ----------------------------------------------------------------------------------- postgres
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGSSLMODE PGOPTIONS
export PGCONNECT_TIMEOUT=30
PG_PORT=$(free_port)
mkdir -p "$WORK/pgdata" "$WORK/bin"
[[ ${#RUN_AS[@]} -gt 0 ]] && chown postgres:postgres "$WORK/pgdata"
say "initdb + postgres on 127.0.0.1:$PG_PORT"
"${RUN_AS[@]}" "$PG_BINDIR/initdb" -D "$WORK/pgdata" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
  >"$WORK/initdb.log" 2>&1 || { tail -20 "$WORK/initdb.log" >&2; die "initdb failed"; }
cat >>"$WORK/pgdata/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 100
shared_buffers = 128MB
fsync = off
synchronous_commit = off
full_page_writes = off
autovacuum = off
EOF
cat >"$WORK/pgdata/pg_hba.conf" <<EOF
host all postgres  127.0.0.1/32 trust
host all bench_md5 127.0.0.1/32 md5
EOF
"${RUN_AS[@]}" "$PG_BINDIR/postgres" -D "$WORK/pgdata" -p "$PG_PORT" </dev/null >"$WORK/postgres.log" 2>&1 &
PG_PID=$!
for ((i = 0; i < 300; i++)); do
  "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && break
  kill -0 "$PG_PID" 2>/dev/null || break
  sleep 0.1
done
"$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 || { tail -20 "$WORK/postgres.log" >&2; die "postgres did not start"; }
psql_su() { timeout 300 "$PG_BINDIR/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }
psql_su -d postgres -c "SET password_encryption = 'md5'" \
  -c "CREATE ROLE bench_md5 LOGIN PASSWORD 'bench_md5_pw'" -c "CREATE DATABASE bench OWNER bench_md5" >/dev/null
say "pgbench -i -s 10"
PGPASSWORD=bench_md5_pw timeout 600 "$PG_BINDIR/pgbench" -i -q -s 10 -h 127.0.0.1 -p "$PG_PORT" -U bench_md5 bench \
  >"$WORK/pgbench-init.log" 2>&1 || { tail -20 "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
SECRET=$(psql_su -d postgres -c "SELECT rolpassword FROM pg_authid WHERE rolname = 'bench_md5'")

# ----------------------------------------------------------------------------------- poolers
declare -A PORT=([off]=$(free_port) [on]=$(free_port))
while [[ ${PORT[on]} == "${PORT[off]}" ]]; do PORT[on]=$(free_port); done
METRICS_PORT=$(free_port)
printf '"bench_md5" "%s"\n' "$SECRET" >"$WORK/userlist.txt"
cat >"$WORK/off.ini" <<EOF
[databases]
bench = host=127.0.0.1 port=$PG_PORT dbname=bench

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT[off]}
unix_socket_dir =
auth_type = md5
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = 25
max_client_conn = 2000
log_connections = 0
log_disconnections = 0
EOF
sed "s/^listen_port = .*/listen_port = ${PORT[on]}/" "$WORK/off.ini" >"$WORK/on.ini"
printf '\n[pgsluice]\nmetrics_listen = 127.0.0.1:%s\n' "$METRICS_PORT" >>"$WORK/on.ini"
chmod 644 "$WORK"/*.ini "$WORK/userlist.txt"
say "config diff (off -> on):"
diff "$WORK/off.ini" "$WORK/on.ini" >&2 || true
cp "$PGSLUICE_BIN" "$WORK/bin/pgsluice"
chmod 755 "$WORK/bin/pgsluice"
for m in off on; do
  (cd "$WORK" && exec "${RUN_AS[@]}" "$WORK/bin/pgsluice" "$WORK/$m.ini") </dev/null >"$WORK/$m.log" 2>&1 &
  PID[$m]=$!
  wait_tcp "${PORT[$m]}" "${PID[$m]}" || { tail -20 "$WORK/$m.log" >&2; die "pgsluice ($m) did not start"; }
done
wait_tcp "$METRICS_PORT" "${PID[on]}" || die "metrics endpoint did not start"
# A Prometheus-like scraper: one GET /metrics per second, for the whole run.
(
  while :; do
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" || true
    sleep 1
  done
) </dev/null >/dev/null 2>&1 &
SCRAPER_PID=$!
page=$(curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics") || die "/metrics did not answer"
grep -q '^pgsluice_uptime_seconds' <<<"$page" || die "/metrics has no pgsluice_uptime_seconds"
say "pgsluice off pid ${PID[off]} :${PORT[off]}, on pid ${PID[on]} :${PORT[on]} (metrics :$METRICS_PORT, scraped every 1 s by pid $SCRAPER_PID)"

# ----------------------------------------------------------------------------------- runs
cpu_ticks() { # pid -> utime + stime of the whole process
  local s
  s=$(<"/proc/$1/stat")
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $((${12} + ${13}))
}
pgbench_run() { # mode clients duration out
  local dur=$(($3 + $2 / 100))
  PGPASSWORD=bench_md5_pw timeout -k 10 $((dur + 60 + $2 / 20)) "$PG_BINDIR/pgbench" -n -S \
    -h 127.0.0.1 -p "${PORT[$1]}" -U bench_md5 -T "$dur" -c "$2" -j 2 bench >"$4" 2>&1
}
RESULTS=$WORK/results.tsv
: >"$RESULTS"
flip=0
for c in "${CLIENT_COUNTS[@]}"; do
  say "warm-up: 1 s, 30 clients, both poolers"
  pgbench_run off 30 1 "$WORK/warm-off.log" &
  w1=$!
  pgbench_run on 30 1 "$WORK/warm-on.log" &
  w2=$!
  wait "$w1" "$w2" || true
  if [[ $flip -eq 0 ]]; then order=(off on); else order=(on off); fi
  flip=$((1 - flip))
  for ((r = 1; r <= REPS; r++)); do
    for m in "${order[@]}"; do
      out=$WORK/run-$c-$m-$r.log
      before=$(cpu_ticks "${PID[$m]}")
      if pgbench_run "$m" "$c" "$DURATION" "$out"; then
        after=$(cpu_ticks "${PID[$m]}")
        tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)/\1/p' "$out")
        xacts=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$out")
        printf '%s\t%s\t%s\t%s\t%s\n' "$c" "$m" "${tps:-0}" "${xacts:-0}" $((after - before)) >>"$RESULTS"
        say "clients $c, metrics $m, run $r: ${tps:-?} tps"
      else
        say "clients $c, metrics $m, run $r: pgbench failed: $(tail -3 "$out" | tr '\n' ' ')"
      fi
    done
  done
done

# What one scrape costs the pooler: 1000 GETs in a row on the now idle "on" pooler (one pool of
# 25 servers), its CPU time before and after.
say "scrape cost: 1000 GETs of /metrics"
before=$(cpu_ticks "${PID[on]}")
SCRAPE_BYTES=$(timeout 120 python3 - "$METRICS_PORT" <<'EOF'
import http.client, sys
size = 0
for _ in range(1000):
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
    c.request("GET", "/metrics")
    size = len(c.getresponse().read())
    c.close()
print(size)
EOF
)
SCRAPE_TICKS=$(($(cpu_ticks "${PID[on]}") - before))

# ----------------------------------------------------------------------------------- report
COMMAND="benches/metrics_cost.sh --reps $REPS --duration $DURATION --clients $CLIENTS"
python3 - "$RESULTS" "$(getconf CLK_TCK)" "$COMMAND" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(nproc)" \
  "$SCRAPE_TICKS" "$SCRAPE_BYTES" <<'EOF'
import statistics, sys
path, command, date, cores = sys.argv[1], sys.argv[3], sys.argv[4], sys.argv[5]
clk, scrape_ticks, scrape_bytes = int(sys.argv[2]), int(sys.argv[6]), int(sys.argv[7])
runs = {}
for line in open(path):
    c, mode, tps, xacts, ticks = line.split("\t")
    runs.setdefault((int(c), mode), []).append((float(tps), int(xacts), int(ticks)))
print(f"`{command}`, {date}, {cores} cores\n")
print("| clients | TPS off (median, min–max) | TPS on, scraped 1/s | ratio on/off | CPU s / 10k tx off | on |")
print("|---:|---:|---:|---:|---:|---:|")
for c in sorted({c for c, _ in runs}):
    row = {}
    for mode in ("off", "on"):
        rs = runs.get((c, mode), [])
        tps = [t for t, _, _ in rs if t > 0]
        xacts = sum(x for _, x, _ in rs)
        ticks = sum(k for _, _, k in rs)
        row[mode] = (statistics.median(tps) if tps else 0, min(tps, default=0), max(tps, default=0),
                     ticks / clk / xacts * 10000 if xacts else 0)
    off, on = row["off"], row["on"]
    ratio = on[0] / off[0] if off[0] else float("nan")
    print(f"| {c} | {off[0]:,.0f} ({off[1]:,.0f}–{off[2]:,.0f}) | {on[0]:,.0f} ({on[1]:,.0f}–{on[2]:,.0f}) "
          f"| {ratio:.2f} | {off[3]:.3f} | {on[3]:.3f} |")
print(f"\nOne scrape ({scrape_bytes:,} bytes, one pool): {scrape_ticks / clk / 1000 * 1e6:,.0f} µs of pooler CPU "
      f"(1000 scrapes: {scrape_ticks} ticks of 1/{clk} s).")
EOF

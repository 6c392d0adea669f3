#!/usr/bin/env bash
# Side-by-side benchmark: pgsluice vs PgBouncer vs direct Postgres, one command.
#
#   benches/compare.sh [--quick] [--reps N] [--duration S] [--scenarios a,b,...|none]
#                      [--idle-clients N] [--pgsluice-bin PATH] [--pgbouncer-bin PATH]
#                      [--keep] [--out DIR] [--no-syscalls] [--syscall-duration S]
#
# What it does (docs/benchmarks.md explains every number):
#   1. installs pgbouncer if missing (apt-get as root; otherwise says how) and builds pgsluice in
#      release mode (`cargo build --release --locked`) unless --pgsluice-bin is given;
#   2. starts a throwaway PostgreSQL 15 cluster (initdb in a temp dir, free loopback port, run as
#      the `postgres` user when root, fsync=off), creates an md5 and a SCRAM user, `pgbench -i`;
#   3. writes ONE pgbouncer.ini + userlist.txt (transaction mode, default_pool_size = 25,
#      auth_type = md5). Both poolers run at the same time, so each reads its own copy of that
#      file that differs only in the `listen_port` line (the diff is printed);
#   4. runs the same pgbench scenarios through pgsluice and through PgBouncer, alternating the
#      poolers run by run (ABAB...; which one goes first flips from scenario to scenario), and
#      once directly against Postgres as the ceiling;
#   5. per scenario and pooler, one extra short run under `strace -c -f -p PID` (never one of the
#      timed runs: tracing slows the pooler) for syscalls per transaction by class;
#   6. measures RSS per idle client with N idle logged-in connections (benches/idle_clients.py);
#   7. writes benches/results/latest.json (raw) and latest.md (tables with pgsluice/PgBouncer
#      ratios) and prints the markdown.
#
# Every process it starts is stopped by PID on exit (trap). All traffic goes to 127.0.0.1, and
# every run is bounded in time (pgbench -T, plus `timeout`).
#
# Environment: PGSLUICE_PG_BINDIR (default /usr/lib/postgresql/15/bin), CARGO_BUILD_JOBS.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BENCHES=$ROOT/benches
COMMAND_LINE="benches/compare.sh${*:+ $*}"

say() { printf '==> [%4ds] %s\n' "$SECONDS" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

# ----------------------------------------------------------------------------------- options
QUICK=0
REPS=
DURATION=
ONLY=
IDLE_N=10000
PGSLUICE_BIN=
PGBOUNCER_BIN=
KEEP=0
OUT_DIR=$BENCHES/results
SCALE=10
SYSCALLS=1
SYSCALL_DURATION=

usage() { sed -n '2,7p' "$BENCHES/compare.sh" | sed 's/^# \{0,1\}//'; }
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --reps) REPS=${2:?}; shift ;;
    --duration) DURATION=${2:?}; shift ;;
    --scenarios) ONLY=${2:?}; shift ;;
    --idle-clients) IDLE_N=${2:?}; shift ;;
    --pgsluice-bin) PGSLUICE_BIN=${2:?}; shift ;;
    --pgbouncer-bin) PGBOUNCER_BIN=${2:?}; shift ;;
    --keep) KEEP=1 ;;
    --out) OUT_DIR=${2:?}; shift ;;
    --no-syscalls) SYSCALLS=0 ;;
    --syscall-duration) SYSCALL_DURATION=${2:?}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage; die "unknown argument: $1" ;;
  esac
  shift
done
# --quick: one short run of a representative subset (unless --scenarios names others), so a
# smoke test stays under 3 minutes; the default run measures every scenario 3 times.
QUICK_SCENARIOS=select_50,select_500,tpcb_100,connect_md5_50,prepared_100,tls_100
if [[ $QUICK -eq 1 ]]; then
  REPS=${REPS:-1}
  DURATION=${DURATION:-3}
  SYSCALL_DURATION=${SYSCALL_DURATION:-2}
  ONLY=${ONLY:-$QUICK_SCENARIOS}
else
  REPS=${REPS:-3}
  DURATION=${DURATION:-7}
  SYSCALL_DURATION=${SYSCALL_DURATION:-3}
fi
DIRECT_REPS=1
[[ $REPS =~ ^[1-9][0-9]?$ ]] || die "--reps must be 1..99"
[[ $DURATION =~ ^[1-9][0-9]{0,2}$ ]] || die "--duration must be 1..999 seconds"
[[ $SYSCALL_DURATION =~ ^[1-9][0-9]?$ ]] || die "--syscall-duration must be 1..99 seconds"
[[ $IDLE_N =~ ^[0-9]+$ && $IDLE_N -le 50000 ]] || die "--idle-clients must be 0..50000"

# Scenarios: name|clients|user|pgbench options|description. The user is md5, scram, or md5tls (the
# md5 user with sslmode=require: TLS between pgbench and the pooler; every other scenario runs
# with sslmode=disable).
SCENARIOS=(
  "select_1|1|md5|-S|select-only, simple protocol, 1 client"
  "select_50|50|md5|-S|select-only, simple protocol, 50 clients"
  "select_500|500|md5|-S|select-only, simple protocol, 500 clients"
  "select_5000|5000|md5|-S|select-only, simple protocol, 5000 clients"
  "tpcb_100|100|md5||tpcb-like (pgbench default script), 100 clients"
  "connect_md5_50|50|md5|-S -C|select-only, new connection per transaction (--connect), md5 user, 50 clients"
  "connect_scram_50|50|scram|-S -C|select-only, new connection per transaction (--connect), SCRAM user, 50 clients"
  "extended_100|100|md5|-S -M extended|select-only, extended protocol (-M extended), 100 clients"
  # Prepared statements (docs/prepared-statements.md). PgBouncer 1.18 has no
  # max_prepared_statements: in transaction mode its -M prepared runs fail, and the report says so.
  "select_100|100|md5|-S|select-only, simple protocol, 100 clients"
  "prepared_100|100|md5|-S -M prepared|select-only, prepared statements (-M prepared), 100 clients"
  "prepared_500|500|md5|-S -M prepared|select-only, prepared statements (-M prepared), 500 clients"
  "tls_100|100|md5tls|-S|select-only over TLS (client to pooler), 100 clients"
  "connect_tls_50|50|md5tls|-S -C|select-only, new TLS connection per transaction (full handshake each time), 50 clients"
)
if [[ $ONLY == none ]]; then
  SCENARIOS=() # --scenarios none: only the idle-client test
elif [[ -n $ONLY ]]; then
  kept=()
  for s in "${SCENARIOS[@]}"; do
    [[ ",$ONLY," == *",${s%%|*},"* ]] && kept+=("$s")
  done
  [[ ${#kept[@]} -gt 0 ]] || die "--scenarios matched nothing (names: $(printf '%s ' "${SCENARIOS[@]%%|*}"))"
  SCENARIOS=("${kept[@]}")
fi

# ----------------------------------------------------------------------------------- tools
PG_BINDIR=${PGSLUICE_PG_BINDIR:-/usr/lib/postgresql/15/bin}
for b in initdb postgres pg_isready psql pgbench; do
  [[ -x $PG_BINDIR/$b ]] || die "$PG_BINDIR/$b not found: run scripts/test.sh once (it installs PostgreSQL 15) or set PGSLUICE_PG_BINDIR"
done
command -v python3 >/dev/null || die "python3 not found (apt-get install python3)"
command -v timeout >/dev/null || die "timeout (coreutils) not found"
command -v openssl >/dev/null || die "openssl not found (apt-get install openssl); the TLS scenarios need a test certificate"

IS_ROOT=0
[[ $(id -u) -eq 0 ]] && IS_ROOT=1

[[ -n $PGBOUNCER_BIN ]] || PGBOUNCER_BIN=$(command -v pgbouncer || true)
[[ -z $PGBOUNCER_BIN && -x /usr/sbin/pgbouncer ]] && PGBOUNCER_BIN=/usr/sbin/pgbouncer
if [[ -z $PGBOUNCER_BIN ]]; then
  if [[ $IS_ROOT -eq 1 ]] && command -v apt-get >/dev/null; then
    say "installing pgbouncer (apt-get install -y pgbouncer; its service is not started)"
    # Keep the packaged service from starting where an init system would start it.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null; } ||
      die "apt-get install pgbouncer failed"
    PGBOUNCER_BIN=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)
  else
    die "pgbouncer not found: run 'sudo apt-get install -y pgbouncer' (or put pgbouncer on PATH) and retry"
  fi
fi
[[ -x $PGBOUNCER_BIN ]] || die "pgbouncer binary $PGBOUNCER_BIN is not executable"

# strace for the syscall runs (Debian package `strace`); without it those runs are skipped.
STRACE_NOTE=
if [[ $SYSCALLS -eq 1 ]] && ! command -v strace >/dev/null; then
  if [[ $IS_ROOT -eq 1 ]] && command -v apt-get >/dev/null; then
    say "installing strace (apt-get install -y strace) for the syscall counts"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; } || true
  fi
  if ! command -v strace >/dev/null; then
    SYSCALLS=0
    STRACE_NOTE="strace not found (sudo apt-get install -y strace): no syscall counts in this run"
  fi
fi

# Postgres (and PgBouncer, which refuses to run as root) run as `postgres` when we are root;
# pgsluice runs as the same user so that both poolers live under the same limits.
RUN_AS=()
if [[ $IS_ROOT -eq 1 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (created by the postgresql package)"
  command -v setpriv >/dev/null || die "setpriv (util-linux) not found"
  RUN_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi

if [[ -z $PGSLUICE_BIN ]]; then
  say "building pgsluice: cargo build --release --locked (CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-default})"
  cargo build --release --locked --bin pgsluice >&2 || die "cargo build failed"
  PGSLUICE_BIN=$ROOT/target/release/pgsluice
fi
[[ -x $PGSLUICE_BIN ]] || die "pgsluice binary $PGSLUICE_BIN not found"

# Enough file descriptors for the largest scenario and the idle clients (pgbench and each
# pooler are separate processes, so each needs about one per client).
HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=1048576
WANT_NOFILE=$((IDLE_N > 5000 ? IDLE_N + 1000 : 6000))
[[ $WANT_NOFILE -gt $HARD_NOFILE ]] && WANT_NOFILE=$HARD_NOFILE
ulimit -n "$WANT_NOFILE" || true
NOFILE=$(ulimit -n)

# ----------------------------------------------------------------------------------- state
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgsluice-bench.XXXXXX")
chmod 755 "$WORK"
mkdir -p "$WORK/runs" "$WORK/bin"
NOTES=$WORK/notes.txt
RUNS_JSONL=$WORK/runs.jsonl
IDLE_JSONL=$WORK/idle.jsonl
SYSCALLS_JSONL=$WORK/syscalls.jsonl
: >"$NOTES"
: >"$SYSCALLS_JSONL"
: >"$RUNS_JSONL"
: >"$IDLE_JSONL"
note() { say "NOTE: $*"; printf '%s\n' "$*" >>"$NOTES"; }
[[ -n $STRACE_NOTE ]] && note "$STRACE_NOTE"
# The last N non-blank lines of a file on one line, quotes and backslashes replaced; never fails.
oneline() {
  # shellcheck disable=SC1003 # the backslash is a character to replace, not an escape
  { grep -v '^[[:space:]]*$' "$1" 2>/dev/null || true; } | tail -n "$2" | tr '\n"\\' '  /' | cut -c1-300
}

PG_PID=
declare -A POOLER_PID=()
HELPER_PID=
WARMUP_PIDS=()

# Stops a PID with the given signals in turn, waiting up to $2 seconds after each.
stop_pid() {
  local pid=$1 grace=$2 sig i
  shift 2
  [[ -n $pid ]] || return 0
  for sig in "$@" KILL; do
    kill -0 "$pid" 2>/dev/null || break
    kill -s "$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < grace * 10; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  done
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? t
  trap - EXIT INT TERM
  [[ -n $HELPER_PID ]] && stop_pid "$HELPER_PID" 5 TERM
  # Warm-up pgbench jobs (each also bounded by `timeout`).
  for t in "${WARMUP_PIDS[@]}"; do stop_pid "$t" 5 TERM; done
  for t in "${!POOLER_PID[@]}"; do
    stop_pid "${POOLER_PID[$t]}" 10 TERM
  done
  [[ -n $PG_PID ]] && stop_pid "$PG_PID" 20 INT QUIT
  if [[ $KEEP -eq 1 ]]; then
    say "kept $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'say "ERROR: line $LINENO: \"$BASH_COMMAND\" failed"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_tcp() { # port pid seconds
  local port=$1 pid=$2 i
  for ((i = 0; i < $3 * 10; i++)); do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# Superuser SQL over TCP (trust for postgres on 127.0.0.1 only).
psql_su() { # db sql...
  local db=$1 args=() s
  shift
  for s in "$@"; do args+=(-c "$s"); done
  timeout 300 "$PG_BINDIR/psql" -X -q -A -t -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$db" "${args[@]}"
}

# ----------------------------------------------------------------------------------- postgres
# Clear libpq variables that could redirect pgbench/psql elsewhere.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGSSLMODE PGOPTIONS
export PGCONNECT_TIMEOUT=30

# Direct runs need one backend per client (500 at most; 5000 would not be a meaningful
# ceiling on this machine), plus 25 servers per pool and pooler.
MAX_CONNECTIONS=700
PG_PORT=$(free_port)
PGDATA=$WORK/pgdata
mkdir -p "$PGDATA"
[[ $IS_ROOT -eq 1 ]] && chown postgres:postgres "$PGDATA"
say "initdb + postgres on 127.0.0.1:$PG_PORT (temp dir $WORK)"
"${RUN_AS[@]}" "$PG_BINDIR/initdb" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C --no-sync \
  >"$WORK/initdb.log" 2>&1 || { tail -20 "$WORK/initdb.log" >&2; die "initdb failed"; }
cat >>"$PGDATA/postgresql.conf" <<EOF

# pgsluice benches/compare.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = $MAX_CONNECTIONS
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = 'scram-sha-256'
dynamic_shared_memory_type = mmap
logging_collector = off
log_connections = off
autovacuum = off
EOF
cat >"$PGDATA/pg_hba.conf" <<EOF
# pgsluice benches/compare.sh
host all postgres    127.0.0.1/32 trust
host all bench_md5   127.0.0.1/32 md5
host all bench_scram 127.0.0.1/32 scram-sha-256
EOF
"${RUN_AS[@]}" "$PG_BINDIR/postgres" -D "$PGDATA" -p "$PG_PORT" </dev/null >"$WORK/postgres.log" 2>&1 &
PG_PID=$!
ready=0
for ((i = 0; i < 300; i++)); do
  kill -0 "$PG_PID" 2>/dev/null || break
  if "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 1; then ready=1; break; fi
  sleep 0.1
done
[[ $ready -eq 1 ]] || { tail -20 "$WORK/postgres.log" >&2; die "postgres did not start"; }

MD5_USER=bench_md5
MD5_PW=bench_md5_pw
SCRAM_USER=bench_scram
SCRAM_PW=bench_scram_pw
DB=bench
psql_su postgres \
  "SET password_encryption = 'md5'" \
  "CREATE ROLE $MD5_USER LOGIN PASSWORD '$MD5_PW'" \
  "SET password_encryption = 'scram-sha-256'" \
  "CREATE ROLE $SCRAM_USER LOGIN PASSWORD '$SCRAM_PW'" \
  "CREATE DATABASE $DB OWNER $MD5_USER" >/dev/null
say "pgbench -i -s $SCALE"
PGPASSWORD=$MD5_PW timeout 600 "$PG_BINDIR/pgbench" -i -q -s "$SCALE" -h 127.0.0.1 -p "$PG_PORT" -U "$MD5_USER" "$DB" \
  >"$WORK/pgbench-init.log" 2>&1 || { tail -20 "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
psql_su "$DB" "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO $SCRAM_USER" \
  "VACUUM ANALYZE" "CHECKPOINT" >/dev/null

secret() { psql_su postgres "SELECT rolpassword FROM pg_authid WHERE rolname = '$1'"; }
MD5_SECRET=$(secret "$MD5_USER")
SCRAM_SECRET=$(secret "$SCRAM_USER")
[[ $MD5_SECRET == md5* && $SCRAM_SECRET == SCRAM-SHA-256* ]] || die "unexpected stored secrets"

# ----------------------------------------------------------------------------------- config
declare -A PORT=([direct]=$PG_PORT [pgsluice]=$(free_port) [pgbouncer]=$(free_port))
while [[ ${PORT[pgsluice]} == "${PORT[pgbouncer]}" ]]; do PORT[pgbouncer]=$(free_port); done
MAX_CLIENT_CONN=$((IDLE_N > 5000 ? IDLE_N + 1000 : 6000))

# A self-signed RSA 2048 certificate (the common deployment) for the client leg of the TLS scenarios.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=127.0.0.1" \
  -keyout "$WORK/server.key" -out "$WORK/server.crt" >"$WORK/openssl.log" 2>&1 ||
  { tail -5 "$WORK/openssl.log" >&2; die "openssl could not make a test certificate"; }
chmod 644 "$WORK/server.crt"
chmod 600 "$WORK/server.key"
[[ $IS_ROOT -eq 1 ]] && chown postgres "$WORK/server.key"

cat >"$WORK/userlist.txt" <<EOF
"$MD5_USER" "$MD5_SECRET"
"$SCRAM_USER" "$SCRAM_SECRET"
EOF
cat >"$WORK/pgbouncer.ini" <<EOF
;; Written by pgsluice benches/compare.sh. pgsluice and PgBouncer read this same file; each runs
;; from its own copy that differs only in listen_port (both poolers run side by side).
[databases]
$DB = host=127.0.0.1 port=$PG_PORT dbname=$DB

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${PORT[pgbouncer]}
unix_socket_dir =
auth_type = md5
auth_file = $WORK/userlist.txt
pool_mode = transaction
default_pool_size = 25
max_client_conn = $MAX_CLIENT_CONN
; One log line per login would be measured too; both poolers get the same setting.
log_connections = 0
log_disconnections = 0
; TLS towards clients that ask for it (only the tls scenarios do; the rest use sslmode=disable).
client_tls_sslmode = allow
client_tls_key_file = $WORK/server.key
client_tls_cert_file = $WORK/server.crt
EOF
sed "s/^listen_port = .*/listen_port = ${PORT[pgsluice]}/" "$WORK/pgbouncer.ini" >"$WORK/pgsluice.ini"
chmod 644 "$WORK/pgbouncer.ini" "$WORK/pgsluice.ini" "$WORK/userlist.txt"
CONFIG_NOTE="one pgbouncer.ini + userlist.txt (transaction mode, default_pool_size = 25, auth_type = md5, max_client_conn = $MAX_CLIENT_CONN, log_connections = 0); both poolers run side by side, so each reads its own copy that differs only in listen_port"
say "config: $CONFIG_NOTE; diff of the two copies:"
diff "$WORK/pgbouncer.ini" "$WORK/pgsluice.ini" >&2 || true

# Copies, so that the binaries under test cannot change during the run and `postgres` can read them.
cp "$PGSLUICE_BIN" "$WORK/bin/pgsluice"
chmod 755 "$WORK/bin/pgsluice"

# ----------------------------------------------------------------------------------- poolers
pooler_cmd() { # target -> command array in CMD
  case $1 in
    pgsluice) CMD=("${RUN_AS[@]}" "$WORK/bin/pgsluice" "$WORK/pgsluice.ini") ;;
    pgbouncer) CMD=("${RUN_AS[@]}" "$PGBOUNCER_BIN" "$WORK/pgbouncer.ini") ;;
  esac
}

start_pooler() { # target
  local t=$1 CMD
  pooler_cmd "$t"
  (cd "$WORK" && exec "${CMD[@]}") </dev/null >>"$WORK/$t.log" 2>&1 &
  POOLER_PID[$t]=$!
  if ! wait_tcp "${PORT[$t]}" "${POOLER_PID[$t]}" 20; then
    tail -20 "$WORK/$t.log" >&2
    note "$t did not start listening on 127.0.0.1:${PORT[$t]} (log tail above)"
    return 1
  fi
}

# Restarts a pooler that exited (noted in the report), so one crash does not void the rest.
ensure_pooler() { # target
  local t=$1
  if ! kill -0 "${POOLER_PID[$t]:-0}" 2>/dev/null; then
    note "$t (pid ${POOLER_PID[$t]:-none}) had exited; restarted. Log tail: $(oneline "$WORK/$t.log" 3)"
    wait "${POOLER_PID[$t]:-0}" 2>/dev/null || true
    start_pooler "$t" || true
  fi
}

cpu_ticks() { # pid -> "utime stime" of the whole process (all threads, live and exited), in clock ticks
  local s
  s=$(<"/proc/$1/stat") || return 1
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo "${12} ${13}"
}
# Context switches (voluntary + nonvoluntary) summed over the process's threads. /proc/PID/status
# alone counts only the main thread; threads that exit take their counts with them (the poolers'
# workers live for the whole run).
ctx_switches() { # pid
  cat "/proc/$1"/task/*/status 2>/dev/null |
    awk '$1 == "voluntary_ctxt_switches:" || $1 == "nonvoluntary_ctxt_switches:" { n += $2 } END { print n + 0 }'
}
status_kb() { # pid field
  awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null
}
CLK_TCK=$(getconf CLK_TCK)

for t in pgsluice pgbouncer; do
  start_pooler "$t" || die "$t failed to start"
done
say "pgsluice pid ${POOLER_PID[pgsluice]} on :${PORT[pgsluice]}, pgbouncer pid ${POOLER_PID[pgbouncer]} on :${PORT[pgbouncer]}, postgres pid $PG_PID on :$PG_PORT"

# Peak RSS per run needs VmHWM reset (clear_refs 5, Linux >= 4.0, owner or root).
HWM_RESET=0
if echo 5 2>/dev/null >"/proc/${POOLER_PID[pgbouncer]}/clear_refs"; then HWM_RESET=1; fi
[[ $HWM_RESET -eq 1 ]] || note "cannot reset VmHWM (/proc/PID/clear_refs); peak RSS is the pooler's lifetime peak up to each run"

# ----------------------------------------------------------------------------------- pgbench
user_of() { [[ $1 == scram ]] && echo "$SCRAM_USER" || echo "$MD5_USER"; }
sslmode_of() { [[ $1 == *tls ]] && echo require || echo disable; }
pw_of() { [[ $1 == scram ]] && echo "$SCRAM_PW" || echo "$MD5_PW"; }

ALLOWANCE_MULT=1
# pgbench, bounded: -T seconds of load plus time to connect every client.
pgbench_run() { # target clients user_kind duration log_prefix stdout stderr opts...
  local target=$1 clients=$2 kind=$3 dur=$4 prefix=$5 out=$6 err=$7 jobs=2
  shift 7
  [[ $clients -lt 2 ]] && jobs=1
  # pgbench's -T clock starts before its clients connect (PG 15), and connecting is slow for
  # many clients (about 13 ms per Postgres backend, about 1.2 ms per pooler login on a 2-core machine): add an
  # allowance so the measured window keeps its length. TPS excludes the connection time anyway.
  local allowance=$((clients * ALLOWANCE_MULT / 700))
  [[ $target == direct ]] && allowance=$((clients * ALLOWANCE_MULT / 70))
  dur=$((dur + allowance))
  local budget=$((dur + 60 + clients / 50))
  local log_args=()
  [[ -n $prefix ]] && log_args=(-l "--log-prefix=$prefix")
  # shellcheck disable=SC2068
  PGSSLMODE=$(sslmode_of "$kind") PGPASSWORD=$(pw_of "$kind") timeout -k 10 "$budget" "$PG_BINDIR/pgbench" -n \
    -h 127.0.0.1 -p "${PORT[$target]}" -U "$(user_of "$kind")" \
    -T "$dur" -c "$clients" -j "$jobs" "${log_args[@]}" $@ "$DB" >"$out" 2>"$err"
}

declare -A WARMUP_NOTED=()
# Both poolers, freshly started, with their pools for this user filled (1 s of select-only with
# 30 clients). A fresh process per scenario keeps one scenario's memory (allocators rarely give
# memory back) out of the next one's peak RSS.
fresh_poolers() { # user_kind
  local kind=$1 t rc
  for t in pgsluice pgbouncer; do
    stop_pid "${POOLER_PID[$t]:-}" 10 TERM
    start_pooler "$t" || true
  done
  # Both warm-ups at once: they only fill the pools, and this saves a few seconds per scenario.
  local -A wpid=()
  for t in pgsluice pgbouncer; do
    # `|| exit` keeps the ERR trap quiet in the subshell; the status is reported below.
    { pgbench_run "$t" 30 "$kind" 1 "" "$WORK/warmup-$t-$kind.out" "$WORK/warmup-$t-$kind.err" -S || exit $?; } &
    wpid[$t]=$!
    WARMUP_PIDS+=("${wpid[$t]}")
  done
  for t in pgsluice pgbouncer; do
    rc=0
    wait "${wpid[$t]}" || rc=$?
    if [[ $rc -ne 0 && -z ${WARMUP_NOTED[$t-$kind]:-} ]]; then
      WARMUP_NOTED[$t-$kind]=1
      note "warm-up through $t as the $kind user failed (rc $rc): $(oneline "$WORK/warmup-$t-$kind.err" 2)"
    fi
  done
  WARMUP_PIDS=()
}

# ----------------------------------------------------------------------------------- scenarios
# Which runs are skipped, decided up front so the progress counter is right.
direct_skip_reason() { # clients user_kind
  if [[ ${2:-} == *tls ]]; then
    echo "TLS is measured between pgbench and the pooler; this Postgres has no TLS set up"
  elif [[ $1 -ge $((MAX_CONNECTIONS - 150)) ]]; then
    echo "needs $1 Postgres backends (max_connections = $MAX_CONNECTIONS; 5000 backends are no meaningful ceiling on this machine)"
  fi
}
fd_skip_reason() { # clients
  if [[ $(($1 + 100)) -gt $NOFILE ]]; then
    echo "needs about $(($1 + 100)) file descriptors per process, ulimit -n is $NOFILE (hard $HARD_NOFILE)"
  fi
}
total=0
for s in "${SCENARIOS[@]}"; do
  IFS='|' read -r _ clients kind _ <<<"$s"
  [[ -n $(fd_skip_reason "$clients") ]] && continue
  total=$((total + 2 * REPS + 2 * SYSCALLS))
  [[ -z $(direct_skip_reason "$clients" "$kind") ]] && total=$((total + DIRECT_REPS))
done
done_runs=0

skip_record() { # scenario target reason
  printf '{"scenario": "%s", "target": "%s", "skipped": 1, "reason": "%s"}\n' "$1" "$2" "$3" >>"$RUNS_JSONL"
}

run_one() { # scenario target rep clients kind opts
  local sc=$1 t=$2 rep=$3 clients=$4 kind=$5 opts=$6
  local dir=$WORK/runs/$sc/$t-$rep pid='' c0='' c1='' x0='' x1='' hwm='' rc=0 ok=0 err_text=
  mkdir -p "$dir"
  done_runs=$((done_runs + 1))
  if [[ $t != direct ]]; then
    ensure_pooler "$t"
    pid=${POOLER_PID[$t]}
  fi
  if [[ $sc == tpcb* ]]; then
    # pgbench -n skips its own vacuum; do it here, directly, so every run starts alike.
    psql_su "$DB" "VACUUM pgbench_branches" "VACUUM pgbench_tellers" "TRUNCATE pgbench_history" >/dev/null || true
  fi
  if [[ -n $pid ]]; then
    [[ $HWM_RESET -eq 1 ]] && { echo 5 >"/proc/$pid/clear_refs" || true; }
    c0=$(cpu_ticks "$pid" || echo "")
    x0=$(ctx_switches "$pid")
  fi
  local t0=$EPOCHREALTIME
  # shellcheck disable=SC2086
  pgbench_run "$t" "$clients" "$kind" "$DURATION" "$dir/log" "$dir/stdout" "$dir/stderr" $opts || rc=$?
  if [[ $rc -eq 0 ]] && grep -q "actually processed: 0$" "$dir/stdout"; then
    # Connecting took the whole -T window (a loaded machine): once more, with 3x the allowance.
    note "$sc $t #$rep: connecting took the whole -T window; repeated with a longer allowance"
    rm -f "$dir"/log.*
    [[ -n $pid ]] && { c0=$(cpu_ticks "$pid" || echo ""); x0=$(ctx_switches "$pid"); }
    ALLOWANCE_MULT=3
    # shellcheck disable=SC2086
    pgbench_run "$t" "$clients" "$kind" "$DURATION" "$dir/log" "$dir/stdout" "$dir/stderr" $opts || rc=$?
    ALLOWANCE_MULT=1
  fi
  local wall
  wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
    c1=$(cpu_ticks "$pid" || echo "")
    x1=$(ctx_switches "$pid")
    hwm=$(status_kb "$pid" VmHWM)
  fi
  local cpu= user= sys= ctx=
  if [[ -n $c0 && -n $c1 ]]; then
    read -r user sys cpu < <(awk -v a="$c0" -v b="$c1" -v hz="$CLK_TCK" 'BEGIN {
      split(a, x, " "); split(b, y, " "); u = (y[1] - x[1]) / hz; s = (y[2] - x[2]) / hz
      printf "%.2f %.2f %.2f\n", u, s, u + s }')
  fi
  [[ -n $x0 && -n $x1 ]] && ctx=$((x1 - x0))
  if [[ $rc -eq 0 ]] && grep -q "number of transactions actually processed: [1-9]" "$dir/stdout"; then
    ok=1
  else
    err_text="pgbench rc $rc: $(oneline "$dir/stderr" 2)"
  fi
  python3 -S "$BENCHES/benchlib.py" runstats --progress "$done_runs/$total" --stdout "$dir/stdout" --log-prefix "$dir/log" --remove-logs \
    --extra "scenario=$sc" --extra "target=$t" --extra "rep=$rep" --extra "clients=$clients" \
    --extra "ok=$ok" --extra "error=$err_text" --extra "cpu_seconds=$cpu" --extra "user_seconds=$user" --extra "sys_seconds=$sys" \
    --extra "ctx_switches=$ctx" --extra "peak_rss_kb=$hwm" \
    --extra "duration_s=$DURATION" --extra "wall_s=$wall" >>"$RUNS_JSONL"
}

# One short run of a scenario with `strace -c -f` attached to the pooler (all its threads), for
# the syscalls per transaction by class. Separate from the timed runs: tracing stops the pooler
# at every syscall, so its TPS and CPU are not those of a real run, but the counts per
# transaction are right. The counts cover the whole run (logins, transactions, logouts), as the
# CPU columns do.
syscall_run() { # scenario target clients kind opts
  local sc=$1 t=$2 clients=$3 kind=$4 opts=$5
  local dir=$WORK/runs/$sc/$t-strace pid rc=0 i spid
  mkdir -p "$dir"
  done_runs=$((done_runs + 1))
  ensure_pooler "$t"
  pid=${POOLER_PID[$t]}
  if [[ $sc == tpcb* ]]; then
    psql_su "$DB" "VACUUM pgbench_branches" "VACUUM pgbench_tellers" "TRUNCATE pgbench_history" >/dev/null || true
  fi
  strace -c -f -p "$pid" -o "$dir/strace.txt" 2>"$dir/strace.err" &
  spid=$!
  HELPER_PID=$spid
  # Attached once strace says so for the process (it attaches to every thread).
  for ((i = 0; i < 100; i++)); do
    grep -q "attached" "$dir/strace.err" 2>/dev/null && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.1
  done
  sleep 0.2
  ALLOWANCE_MULT=3
  # shellcheck disable=SC2086
  pgbench_run "$t" "$clients" "$kind" "$SYSCALL_DURATION" "" "$dir/stdout" "$dir/stderr" $opts || rc=$?
  ALLOWANCE_MULT=1
  stop_pid "$spid" 10 INT
  HELPER_PID=
  python3 -S "$BENCHES/benchlib.py" strace --progress "$done_runs/$total" --strace "$dir/strace.txt" \
    --strace-err "$dir/strace.err" --stdout "$dir/stdout" --extra "scenario=$sc" --extra "target=$t" \
    --extra "clients=$clients" --extra "pgbench_rc=$rc" --extra "duration_s=$SYSCALL_DURATION" >>"$SYSCALLS_JSONL"
}

say "running ${#SCENARIOS[@]} scenario(s): $REPS run(s) x ${DURATION}s per pooler (alternating), $DIRECT_REPS direct"
index=0
for s in "${SCENARIOS[@]}"; do
  IFS='|' read -r sc clients kind opts _ <<<"$s"
  say "$sc: fresh poolers, warm-up"
  fresh_poolers "$kind"
  why=$(fd_skip_reason "$clients")
  if [[ -n $why ]]; then
    note "$sc skipped: $why"
    for t in pgsluice pgbouncer direct; do skip_record "$sc" "$t" "$why"; done
    index=$((index + 1))
    continue
  fi
  why=$(direct_skip_reason "$clients" "$kind")
  if [[ -n $why ]]; then
    skip_record "$sc" direct "$why"
  else
    for ((r = 1; r <= DIRECT_REPS; r++)); do run_one "$sc" direct "$r" "$clients" "$kind" "$opts"; done
  fi
  if ((index % 2 == 0)); then order=(pgsluice pgbouncer); else order=(pgbouncer pgsluice); fi
  for ((r = 1; r <= REPS; r++)); do
    for t in "${order[@]}"; do run_one "$sc" "$t" "$r" "$clients" "$kind" "$opts"; done
  done
  if [[ $SYSCALLS -eq 1 ]]; then
    for t in "${order[@]}"; do syscall_run "$sc" "$t" "$clients" "$kind" "$opts"; done
  fi
  index=$((index + 1))
done

# ----------------------------------------------------------------------------------- idle RSS
idle_test() {
  local idle_n=$IDLE_N t pid status rss0 rss1 i
  say "idle clients: fresh poolers, then $idle_n idle logged-in connections to each in turn"
  fresh_poolers md5
  if [[ $((idle_n + 200)) -gt $NOFILE ]]; then
    idle_n=$((NOFILE - 200))
    note "ulimit -n is $NOFILE: idle-client test reduced to $idle_n connections"
  fi
  for t in pgsluice pgbouncer; do
    ensure_pooler "$t"
    pid=${POOLER_PID[$t]}
    status=$WORK/idle-$t.json
    rss0=$(status_kb "$pid" VmRSS)
    PGPASSWORD=$MD5_PW python3 "$BENCHES/idle_clients.py" --port "${PORT[$t]}" --user "$MD5_USER" \
      --database "$DB" --count "$idle_n" --connect-timeout 90 --hold 150 --status "$status" \
      >"$WORK/idle-$t.log" 2>&1 &
    HELPER_PID=$!
    for ((i = 0; i < 1000; i++)); do
      [[ -s $status ]] && break
      kill -0 "$HELPER_PID" 2>/dev/null || break
      sleep 0.1
    done
    if [[ -s $status ]]; then
      sleep 1 # let the pooler finish its per-login work
      rss1=$(status_kb "$pid" VmRSS)
      python3 - "$status" "$t" "$rss0" "$rss1" >>"$IDLE_JSONL" <<'EOF'
import json, sys
status, target, rss0, rss1 = sys.argv[1], sys.argv[2], int(sys.argv[3] or 0), int(sys.argv[4] or 0)
row = json.load(open(status))
row.update(target=target, rss_before_kb=rss0, rss_after_kb=rss1)
n = row.get("connected") or 0
row["rss_per_client_bytes"] = round((rss1 - rss0) * 1024 / n) if n else None
if n == 0:
    row["error"] = "no connection succeeded: " + "; ".join(row.get("errors", []))[:200]
print(json.dumps(row, sort_keys=True))
EOF
      say "idle clients on $t: $(tail -1 "$IDLE_JSONL")"
    else
      note "idle-client helper for $t wrote no status: $(oneline "$WORK/idle-$t.log" 3)"
      printf '{"target": "%s", "error": "helper failed"}\n' "$t" >>"$IDLE_JSONL"
    fi
    stop_pid "$HELPER_PID" 10 TERM
    HELPER_PID=
    sleep 1 # let the pooler tear the sessions down
  done
}

if [[ $IDLE_N -gt 0 ]]; then idle_test; fi

# ----------------------------------------------------------------------------------- report
for t in pgsluice pgbouncer; do
  if ! kill -0 "${POOLER_PID[$t]}" 2>/dev/null; then note "$t had exited by the end of the run"; fi
  if grep -qiE 'panic|FATAL|ERROR' "$WORK/$t.log"; then
    note "$t log has $(grep -ciE 'panic|FATAL|ERROR' "$WORK/$t.log") error line(s), e.g.: $(grep -iE 'panic|FATAL|ERROR' "$WORK/$t.log" > "$WORK/$t.errors"; oneline "$WORK/$t.errors" 2)"
  fi
done

python3 - "$WORK/scenarios.json" "${SCENARIOS[@]}" <<'EOF'
import json, sys
out = []
for spec in sys.argv[2:]:
    name, clients, user, opts, desc = spec.split("|", 4)
    out.append({"name": name, "clients": int(clients), "user": user,
                "pgbench_options": opts, "description": desc})
json.dump(out, open(sys.argv[1], "w"), indent=1)
EOF

commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$ROOT" diff --quiet HEAD -- src Cargo.toml 2>/dev/null || commit="$commit+dirty"
pgsluice_version=$(timeout 5 "$WORK/bin/pgsluice" --version 2>/dev/null | head -1 || true)
[[ -n $pgsluice_version ]] || pgsluice_version="(--version not supported) $PGSLUICE_BIN"
[[ $PGSLUICE_BIN == "$ROOT"/* ]] && pgsluice_version=${pgsluice_version//$ROOT\//}
order_note="ABAB..., first pooler alternates by scenario"
META_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
  META_COMMAND=$COMMAND_LINE \
  META_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) \
  META_CORES=$(nproc) \
  META_KERNEL=$(uname -r) \
  META_MEM=$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2 / 1048576 }' /proc/meminfo) \
  META_PGSLUICE_VERSION=$pgsluice_version \
  META_PGSLUICE_COMMIT=$commit \
  META_PGBOUNCER_VERSION=$("$PGBOUNCER_BIN" --version 2>/dev/null | head -1) \
  META_POSTGRES_VERSION=$("$PG_BINDIR/postgres" --version) \
  META_PGBENCH_VERSION=$("$PG_BINDIR/pgbench" --version) \
  META_REPS=$REPS META_DIRECT_REPS=$DIRECT_REPS META_DURATION=$DURATION META_SCALE=$SCALE \
  META_QUICK=$QUICK META_ORDER=$order_note META_CONFIG_NOTE=$CONFIG_NOTE \
  META_SYSCALLS=$SYSCALLS META_SYSCALL_DURATION=$SYSCALL_DURATION \
  META_IDLE_N=$IDLE_N META_NOFILE=$NOFILE META_CLK_TCK=$CLK_TCK META_HWM_RESET=$HWM_RESET \
  META_CONFIG_INI=$(sed "s#$WORK#<tmpdir>#g" "$WORK/pgbouncer.ini") \
  python3 - "$WORK/meta.json" <<'EOF'
import json, os, sys
m = {k[5:].lower(): v for k, v in os.environ.items() if k.startswith("META_")}
for k in ("reps", "direct_reps", "duration", "scale", "quick", "idle_n", "syscalls", "syscall_duration", "nofile", "clk_tck", "hwm_reset"):
    m[k] = int(m[k])
m["duration_s"] = m.pop("duration")
m["cpu_model"] = m.pop("cpu")
m["mem_total"] = m.pop("mem")
json.dump(m, open(sys.argv[1], "w"), indent=1)
EOF

mkdir -p "$OUT_DIR"
python3 "$BENCHES/benchlib.py" report --meta "$WORK/meta.json" --scenarios "$WORK/scenarios.json" \
  --runs "$RUNS_JSONL" --idle "$IDLE_JSONL" --syscalls "$SYSCALLS_JSONL" --notes "$NOTES" \
  --out-json "$OUT_DIR/latest.json" --out-md "$OUT_DIR/latest.md"
say "wrote ${OUT_DIR#"$ROOT"/}/latest.json and ${OUT_DIR#"$ROOT"/}/latest.md"

#!/usr/bin/env bash
# The container image, built and run for real: builds docker/Dockerfile with podman (base image
# made locally with debootstrap, the release binary taken prebuilt), starts it next to a
# throwaway PostgreSQL on loopback and checks what docs/docker.md and docs/kubernetes.md
# promise. Each check prints PASS or FAIL; the script exits 1 on any FAIL. Every container,
# process and file it makes is removed on exit (the images are kept, for the next run).
#
#   scripts/docker-test.sh
#   DOCKER_TEST_REBUILD_BASE=1 scripts/docker-test.sh   # re-make the base image too
#
# Needs root (podman, debootstrap) and Debian's podman, runc and debootstrap packages, which it
# installs when missing. runc, because crun refuses hybrid cgroup hierarchies; cgroupfs, because
# there is no systemd; --network=host, because no registry or bridge is needed then.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

[[ $(id -u) -eq 0 ]] || die "run as root (podman and debootstrap need it)"
ensure_rust
ensure_postgres
bindir=$PGSLUICE_PG_BINDIR
ensure_tool podman podman
ensure_tool runc runc
ensure_tool debootstrap debootstrap
ensure_tool nsenter util-linux
ensure_tool curl curl
# The manifest check parses YAML with PyYAML.
python=python3
if ! "$python" -c 'import yaml' 2>/dev/null; then
  ensure_tool /usr/bin/python3 python3
  if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
    say "installing python3-yaml (the manifest check parses YAML)"
    as_root apt-get install -y -qq --no-install-recommends python3-yaml >/dev/null || die "could not install python3-yaml"
  fi
  python=/usr/bin/python3
fi

BASE=localhost/pgsluice-base/bookworm-minbase:latest
IMAGE=localhost/pgsluice:docker-test
PODMAN=(podman --runtime runc --cgroup-manager=cgroupfs)
work=$(mktemp -d -t pgsluice-docker.XXXXXX)
chmod 755 "$work"
# podman's own complaints (no systemd for health-check timers) go here, not to the screen.
pm() { "${PODMAN[@]}" "$@" 2>>"$work/podman.err"; }
# Health checks are run on demand with `podman healthcheck run` (their timers need systemd).
# The host's hard limits bound the container's (runc may not raise them).
nofile=$(ulimit -Hn); [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
RUN=(run -d --health-interval=disable --ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096)

# A free loopback port below the kernel's ephemeral range (where a client's own port could take
# it between the probe and the bind), never one handed out before in this run.
picked=" " pg_port='' p1='' m1='' p2=''
pick_port() { # VAR
  local port low
  low=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  for _ in $(seq 1 100); do
    port=$((20000 + RANDOM % (low - 20000)))
    [[ $picked == *" $port "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then picked+="$port "; printf -v "$1" %s "$port"; return; fi
  done
  die "no free port found"
}

passed=0 failed=0
pass() { printf 'PASS  %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL  %s\n' "$*"; failed=$((failed + 1)); }
# check NAME COMMAND...: PASS when the command succeeds.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
section() { printf '\n--- %s\n' "$*"; }

containers=() pg_pid='' held_pids=()
cleanup() {
  local c p
  for p in "${held_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for c in "${containers[@]}"; do pm rm -f -t 0 "$c" >/dev/null || true; done
  if [[ -n $pg_pid ]] && kill -0 "$pg_pid" 2>/dev/null; then
    kill -INT "$pg_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pg_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most $2 tenths of a second) until command "${@:3}" succeeds.
wait_for() { # what tenths command...
  local what=$1 tenths=$2; shift 2
  for _ in $(seq 1 "$tenths"); do "$@" && return 0; sleep 0.1; done
  say "timed out waiting for $what"; return 1
}
logs() { "${PODMAN[@]}" logs "$1" 2>&1; }
# (grep without -q in pipelines: with pipefail, a writer cut off by an early exit would fail)
log_has() { logs "$1" | grep -F -- "$2" >/dev/null; }
running() { [[ $(pm inspect -f '{{.State.Running}}' "$1") == true ]]; }
exit_code() { pm inspect -f '{{.State.ExitCode}}' "$1"; }
healthy() { pm healthcheck run "$1" >/dev/null; }
not() { ! "$@"; }
start() { # name args...: starts a container, remembers it for cleanup
  local name=$1; shift
  containers+=("$name")
  pm "${RUN[@]}" --name "$name" "$@" >/dev/null
}

# What makes Debian's official bookworm-slim image slim, applied to a minbase root: apt keeps
# no package caches, and no documentation, manual pages or translations are kept.
slim_rootfs() { # rootfs
  local root=$1
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT
  cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
DPKG
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/*
  find "$root/usr/share/doc" -mindepth 2 -not -name copyright -delete 2>/dev/null || true
}

# ---------------------------------------------------------------------------------------------
section "the image"
if [[ ${DOCKER_TEST_REBUILD_BASE:-0} == 1 ]] || ! pm image exists "$BASE"; then
  say "making the base image $BASE (debootstrap --variant=minbase bookworm; a few minutes)"
  rootfs=$work/rootfs
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$work/debootstrap.log" 2>&1 ||
    { tail -n 20 "$work/debootstrap.log"; die "debootstrap failed"; }
  slim_rootfs "$rootfs"
  tar -C "$rootfs" -c . | pm import - "$BASE" >/dev/null
  rm -rf "$rootfs"
fi
say "building the release binary and the image (PGSLUICE_BINARY=prebuilt)"
say "(RUNTIME_IMAGE=$BASE)"
cargo build --release --locked --quiet
mkdir -p dist
strip -o dist/pgsluice target/release/pgsluice
SECONDS=0
if pm build --network=host --format docker --ignorefile docker/Dockerfile.dockerignore \
  -f docker/Dockerfile --build-arg RUNTIME_IMAGE="$BASE" --build-arg PGSLUICE_BINARY=prebuilt \
  -t "$IMAGE" . >"$work/build.log" 2>&1; then
  pass "docker/Dockerfile builds (prebuilt binary, local bookworm base) in ${SECONDS}s"
else
  tail -n 30 "$work/build.log"; fail "docker/Dockerfile builds"; exit 1
fi
cfg() { pm image inspect "$IMAGE" --format "$1"; }
check "image user is 10001:10001 (non-root)" test "$(cfg '{{.Config.User}}')" = 10001:10001
check "image HEALTHCHECK is pgsluice --probe /etc/pgbouncer/pgbouncer.ini" \
  test "$(cfg '{{json .Config.Healthcheck.Test}}')" = '["CMD","pgsluice","--probe","/etc/pgbouncer/pgbouncer.ini"]'
check "image exposes 6432/tcp, stops with SIGTERM" \
  test "$(cfg '{{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}} {{.Config.StopSignal}}')" = "6432/tcp SIGTERM"
printf '      image size %s\n' "$(cfg '{{.Size}}' | awk '{printf "%.0f MB", $1 / 1e6}')"

# ---------------------------------------------------------------------------------------------
section "a throwaway PostgreSQL on loopback"
pick_port pg_port
mkdir "$work/pg"
chown postgres "$work/pg"
init_throwaway_cluster "$work/pg" "$pg_port" "$bindir"
as_pg "$bindir/postgres" -D "$work/pg/data" >"$work/postgres.log" 2>&1 &
pg_pid=$!
wait_for postgres 100 "$bindir/pg_isready" -q -h 127.0.0.1 -p "$pg_port" ||
  { cat "$work/postgres.log"; die "postgres did not start"; }
"$bindir/psql" -X -q -h 127.0.0.1 -p "$pg_port" -U postgres \
  -c "create role app login password 'app_pw'" -c "create database app owner app"
PGPASSWORD=app_pw "$bindir/pgbench" -i -q -s 1 -h 127.0.0.1 -p "$pg_port" -U app app >/dev/null 2>&1
say "PostgreSQL on 127.0.0.1:$pg_port, database app, user app (md5)"

# psql through a pooler port: psql_at PORT USER PASSWORD DB SQL
psql_at() { PGPASSWORD=$3 PGCONNECT_TIMEOUT=5 "$bindir/psql" -X -At -h 127.0.0.1 -p "$1" -U "$2" "$4" -c "$5"; }

# ---------------------------------------------------------------------------------------------
section "configuration from environment variables only"
pick_port p1; pick_port m1
start env --network=host \
  -e DATABASE_URL="postgres://app:app_pw@127.0.0.1:$pg_port/app" \
  -e LISTEN_ADDR=127.0.0.1 -e LISTEN_PORT="$p1" -e POOL_MODE=transaction \
  -e DEFAULT_POOL_SIZE=5 -e MAX_CLIENT_CONN=100 -e AUTH_TYPE=scram-sha-256 -e ADMIN_USERS=app \
  -e PGSLUICE_METRICS_LISTEN="127.0.0.1:$m1" "$IMAGE"
check "HEALTHCHECK passes once pgsluice listens" wait_for "health" 100 healthy env
check "the entrypoint wrote pgbouncer.ini and userlist.txt from the variables" \
  log_has env "wrote /etc/pgbouncer/userlist.txt (user app)"
ini=$(pm exec env cat /etc/pgbouncer/pgbouncer.ini) || true
check "generated ini: app = host=127.0.0.1 port=$pg_port dbname=app, pool_mode = transaction" \
  sh -c 'printf "%s\n" "$1" | grep -qx "app = host=127.0.0.1 port=$2 dbname=app" &&
         printf "%s\n" "$1" | grep -qx "pool_mode = transaction"' _ "$ini" "$pg_port"
check "psql through the container reaches the database (SCRAM login)" \
  test "$(psql_at "$p1" app app_pw app 'select current_user, current_database(), inet_server_port()')" = "app|app|$pg_port"
bench=$(PGPASSWORD=app_pw "$bindir/pgbench" -h 127.0.0.1 -p "$p1" -U app -c 20 -j 2 -T 3 -S -n app 2>&1) || true
tps=$(printf '%s\n' "$bench" | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
if printf '%s\n' "$bench" | grep -q '^number of failed transactions: 0 ' && [[ -n $tps ]]; then
  pass "pgbench through the container: 20 clients, 3 s, select-only, 0 failed, tps $tps"
else
  printf '%s\n' "$bench" | tail -n 5; fail "pgbench through the container"
fi
pools=$(psql_at "$p1" app app_pw pgbouncer 'SHOW POOLS') || true
printf '      SHOW POOLS: %s\n' "$(printf '%s\n' "$pools" | grep '^app|' | cut -d'|' -f1-4,7,10)"
check "psql ... pgbouncer -c 'SHOW POOLS' lists the app pool, at most 5 servers for 20 clients" \
  sh -c 'printf "%s\n" "$1" | awk -F"|" '\''$1=="app" && $2=="app" && $7+$10+$11 <= 5 {ok=1} END {exit !ok}'\' _ "$pools"
metrics_up() { curl -sf "http://127.0.0.1:$m1/metrics" | grep '^pgsluice_build_info' >/dev/null; }
check "GET /metrics on PGSLUICE_METRICS_LISTEN answers" metrics_up
text_log() { logs env | grep -E '^[0-9-]{10}T[0-9:.]+Z +INFO pgsluice::app: listening' >/dev/null; }
check "logs on the container's output in the default text format" text_log
check "the runtime's worker count is logged at start" log_has env "starting the runtime worker_threads="
pm kill -s STOP env >/dev/null
check "HEALTHCHECK fails while pgsluice hangs (SIGSTOP: no answer within the probe's 5 s)" \
  not healthy env
pm kill -s CONT env >/dev/null
check "HEALTHCHECK passes again after SIGCONT" wait_for health 100 healthy env
SECONDS=0
pm stop -t 30 env >/dev/null
check "podman stop with no client connected: exit code 0 in ${SECONDS}s" test "$(exit_code env)" = 0

start down --network=host -e DATABASE_URL="postgres://app:app_pw@127.0.0.1:$pg_port/app" \
  -e LISTEN_ADDR=127.0.0.1 -e LISTEN_PORT="$p1" "$IMAGE" sleep 60
wait_for "the sleeping container" 50 running down
# The container counts as running as soon as the entrypoint starts, before it has written the
# config and exec'd the command: wait for the file, bounded.
check "the 'sleep' container has its config written" \
  wait_for "the config" 50 pm exec down test -s /etc/pgbouncer/pgbouncer.ini
check "HEALTHCHECK fails when pgsluice is not running (the container runs 'sleep')" not healthy down
pm rm -f -t 0 down >/dev/null
check "another command runs with no variables at all ('podman run IMAGE sh -c ...')" \
  test "$(pm run --rm --health-interval=disable --ulimit "nofile=$nofile:$nofile" --ulimit nproc=4096:4096 \
    "$IMAGE" sh -c 'echo ran as $(id -u)')" = "ran as 10001"

# ---------------------------------------------------------------------------------------------
section "a mounted pgbouncer.ini + userlist.txt; read-only root, no capabilities, JSON logs"
pick_port p2
mkdir -p "$work/etc"
cat >"$work/etc/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$pg_port dbname=app

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $p2
; PgBouncer's default socket directory is /tmp, which a read-only root does not have.
unix_socket_dir =
auth_type = md5
auth_file = /etc/pgbouncer/userlist.txt
admin_users = admin
pool_mode = transaction
default_pool_size = 5

[pgsluice]
log_format = json
INI
printf '"app" "md5%s"\n"admin" "admin_pw"\n' "$(printf '%s' app_pwapp | md5sum | cut -d' ' -f1)" >"$work/etc/userlist.txt"
chmod 644 "$work/etc/pgbouncer.ini" "$work/etc/userlist.txt"
chmod 755 "$work/etc"
ini_opts=(--network=host --read-only --read-only-tmpfs=false --cap-drop=ALL
  --security-opt=no-new-privileges -v "$work/etc:/etc/pgbouncer:ro" "$IMAGE")
start ini "${ini_opts[@]}"
check "HEALTHCHECK passes" wait_for health 100 healthy ini
check "the entrypoint uses the mounted ini as it is" log_has ini "entrypoint: using /etc/pgbouncer/pgbouncer.ini"
check "psql through the container with the mounted userlist (md5 login)" \
  test "$(psql_at "$p2" app app_pw app 'select 41 + 1')" = 42
check "SHOW POOLS as the mounted ini's admin user" \
  sh -c 'printf "%s\n" "$1" | grep -q "^app|app|"' _ "$(psql_at "$p2" admin admin_pw pgbouncer 'SHOW POOLS')"
status=$(pm exec ini cat /proc/1/status) || true
check "pgsluice is PID 1 (exec'd), uid and gid 10001" \
  sh -c 'printf "%s\n" "$1" | grep -qP "^Name:\tpgsluice$" &&
         printf "%s\n" "$1" | grep -qP "^Uid:\t10001\t10001\t10001\t10001$" &&
         printf "%s\n" "$1" | grep -qP "^Gid:\t10001\t10001\t10001\t10001$"' _ "$status"
check "no capabilities (CapEff 0)" sh -c 'printf "%s\n" "$1" | grep -qP "^CapEff:\t0+$"' _ "$status"
# /var/run/pgsluice belongs to the pgsluice user: only the read-only mount stops the write.
ro_root() {
  local out
  out=$("${PODMAN[@]}" exec ini touch /var/run/pgsluice/x 2>&1) && return 1
  [[ $out == *"Read-only file system"* ]] || { echo "      $out"; return 1; }
}
check "the root file system is read-only" ro_root
json_check() { # every line that is not the entrypoint's is a JSON object with level and message
  logs ini | grep -v '^entrypoint: ' | "$python" -c '
import json, sys
lines = [l for l in sys.stdin if l.strip()]
for l in lines:
    o = json.loads(l)
    assert {"timestamp", "level", "message"} <= o.keys(), l
assert any(json.loads(l)["message"] == "listening" for l in lines)
print("      %d JSON log lines, e.g.\n      %s" % (len(lines), [l.strip() for l in lines if json.loads(l)["message"] == "listening"][0][:94]))'
}
check "logs in the configured JSON format" json_check

# A client that stays connected: psql reading from a FIFO the script keeps open on fd 7.
hold() { # port out-file
  rm -f "$work/fifo"; mkfifo "$work/fifo"
  PGPASSWORD=app_pw "$bindir/psql" -X -At -h 127.0.0.1 -p "$1" -U app app <"$work/fifo" >"$2" 2>&1 &
  held_pids+=($!)
  exec 7>"$work/fifo"
  echo "select 'held-1';" >&7
  wait_for "the held client" 50 grep -q held-1 "$2"
}
section "podman stop (SIGTERM): drain, then exit 0; a second SIGTERM exits at once"
hold "$p2" "$work/held.out" || fail "a client connects and stays connected"
held=${held_pids[-1]}
pooler=$(pm inspect -f '{{.State.Pid}}' ini)
SECONDS=0
# (7>&-: the held client's FIFO must have no other writer, or it never sees its end)
pm stop -t 60 ini >/dev/null 7>&- &
stopper=$!
check "SIGTERM logged: waiting for clients" \
  wait_for SIGTERM 100 log_has ini "got SIGTERM, shutting down, waiting for all clients disconnect"
check "while draining pgsluice keeps running" kill -0 "$pooler"
refused() { ! psql_at "$p2" app app_pw app 'select 1' >/dev/null 2>&1; }
check "while draining a new client is refused" refused
# The probe itself (podman does not run health checks of a container it is stopping).
check "while draining the probe fails" not pm exec ini pgsluice --probe /etc/pgbouncer/pgbouncer.ini
echo "select 'held-2', count(*) from pgbench_branches;" >&7
check "while draining the connected client keeps working" wait_for "held-2" 100 grep -q 'held-2|1' "$work/held.out"
drained=$SECONDS
exec 7>&-
wait_for "the held client to leave" 50 not kill -0 "$held" 2>/dev/null || true
wait_for "podman stop" 300 not kill -0 "$stopper" 2>/dev/null || true
check "the client left, pgsluice exited with code 0, $((SECONDS - drained))s later" test "$(exit_code ini)" = 0
check "the drain is logged to its end" log_has ini "shutdown complete"

start ini2 "${ini_opts[@]}"
wait_for health 100 healthy ini2 || true
hold "$p2" "$work/held2.out" || fail "a client connects and stays connected"
held=${held_pids[-1]}
pm kill -s TERM ini2 >/dev/null
wait_for "the first SIGTERM" 100 log_has ini2 "got SIGTERM, shutting down" || true
check "after the first SIGTERM the client is still connected" kill -0 "$held"
SECONDS=0
pm kill -s TERM ini2 >/dev/null
check "a second SIGTERM exits at once (within 5 s, the client still connected)" wait_for exit 50 not running ini2
printf '      exited %ss after the second SIGTERM, exit code %s\n' "$SECONDS" "$(exit_code ini2)"
check "the fast exit is logged" log_has ini2 "got SIGTERM while shutting down, fast exit"
exec 7>&-

# ---------------------------------------------------------------------------------------------
section "docker/kubernetes-sidecar.yaml, offline"
# The pgsluice container of the manifest, as shell words (values NUL-free, one per line).
if ! "$python" - docker/kubernetes-sidecar.yaml >"$work/k8s.env" <<'PY'
import shlex, sys, yaml
docs = list(yaml.safe_load_all(open(sys.argv[1])))
dep = docs[0]
assert dep["kind"] == "Deployment", dep["kind"]
pod = dep["spec"]["template"]["spec"]
side = [c for c in pod["initContainers"] if c["name"] == "pgsluice"][0]
app = pod["containers"][0]
out = {}
env = []
for e in side["env"]:
    v = e.get("value")
    if v is None:  # the secret: a test value stands in
        v = "__SECRET__"
    env.append("%s=%s" % (e["name"], v))
out["ENV"] = env
out["RESTART_POLICY"] = side.get("restartPolicy", "")
for p in ("startupProbe", "readinessProbe", "livenessProbe"):
    out[p.upper()] = side[p]["exec"]["command"]
out["PRESTOP"] = side["lifecycle"]["preStop"]["exec"]["command"]
out["PORTS"] = ["%s:%s" % (p["name"], p["containerPort"]) for p in side["ports"]]
mounts = side["volumeMounts"]
out["MOUNT"] = [mounts[0]["mountPath"]]
vol = [v for v in pod["volumes"] if v["name"] == mounts[0]["name"]][0]
out["VOLUME"] = [",".join(sorted(vol.keys() - {"name"}))]
sc = {**pod.get("securityContext", {}), **side.get("securityContext", {})}
out["RUN_AS"] = ["%s:%s" % (sc["runAsUser"], sc["runAsGroup"])]
out["READONLY"] = [str(sc["readOnlyRootFilesystem"]).lower()]
out["CAPS_DROP"] = sc["capabilities"]["drop"]
out["NO_NEW_PRIVS"] = [str(not sc["allowPrivilegeEscalation"]).lower()]
out["MEMORY"] = [side["resources"]["limits"]["memory"]]
out["APP_ENV"] = ["%s=%s" % (e["name"], e["value"]) for e in app["env"]]
out["ANNOT_PORT"] = [dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]]
for k, v in out.items():
    if isinstance(v, str):
        v = [v]
    print("K8S_%s=(%s)" % (k, " ".join(shlex.quote(str(x)) for x in v)))
PY
then
  fail "the manifest parses as a Deployment with the pgsluice sidecar"; exit 1
fi
pass "the manifest parses as a Deployment with a pgsluice native sidecar"
# shellcheck disable=SC1091
source "$work/k8s.env"
k8s_env() { local e; for e in "${K8S_ENV[@]}"; do
  [[ $e == *=__SECRET__ ]] && e=${e%%=*}="postgres://app:app_pw@127.0.0.1:$pg_port/app"
  printf '%s\n' "-e" "$e"; done; }
env_of() { local e; for e in "${K8S_ENV[@]}" "${K8S_APP_ENV[@]}"; do [[ $e == "$1"=* ]] && printf '%s' "${e#*=}"; done; }
check "restartPolicy: Always (a native sidecar)" test "${K8S_RESTART_POLICY[*]}" = Always
mapfile -t envargs < <(k8s_env)
empty_dir() { local d; d=$(mktemp -d "$work/emptydir.XXXXXX"); chmod 1777 "$d"; echo "$d"; }
mem=${K8S_MEMORY[0]/Mi/m}
# Its own network namespace (--network=none: only loopback), as a pod has, so the manifest's
# ports are used as they are. With a CPU limit of 1 (--cpus=1: a CFS quota of one core). The
# emptyDir is a directory of mode 1777, as Kubernetes makes an emptyDir world-writable (podman
# here gives a --tmpfs the mode of the image's directory, whatever mode= says).
start k8s --network=none --cpus=1 --memory="$mem" --user "${K8S_RUN_AS[0]}" \
  --read-only --read-only-tmpfs=false --cap-drop="${K8S_CAPS_DROP[0]}" \
  --security-opt=no-new-privileges -v "$(empty_dir)":"${K8S_MOUNT[0]}" "${envargs[@]}" "$IMAGE"
for probe in STARTUPPROBE READINESSPROBE LIVENESSPROBE; do
  declare -n argv="K8S_$probe"
  check "${probe,,} '${argv[*]}' passes in the container" wait_for "$probe" 100 pm exec k8s "${argv[@]}"
  unset -n argv
done
check "preStop '${K8S_PRESTOP[*]}' runs in the image" pm exec k8s "${K8S_PRESTOP[@]}"
check "runAsUser/runAsGroup ${K8S_RUN_AS[0]} is the image's USER" test "${K8S_RUN_AS[0]}" = "$(cfg '{{.Config.User}}')"
check "securityContext: read-only root, drop ALL, no privilege escalation" \
  test "${K8S_READONLY[0]} ${K8S_CAPS_DROP[*]} ${K8S_NO_NEW_PRIVS[0]}" = "true ALL true"
check "the ${K8S_VOLUME[0]} is mounted at ${K8S_MOUNT[0]}, where the probes and HEALTHCHECK read" \
  sh -c 'test "$1" = emptyDir && test "$2/pgbouncer.ini" = "$3" && case "$4" in *"\"$3\""*) ;; *) exit 1 ;; esac' \
  _ "${K8S_VOLUME[0]}" "${K8S_MOUNT[0]}" "${K8S_LIVENESSPROBE[2]}" "$(cfg '{{json .Config.Healthcheck.Test}}')"
check "the entrypoint wrote its files into the mounted volume" log_has k8s "wrote ${K8S_MOUNT[0]}/userlist.txt"
k8s_pid=$(pm inspect -f '{{.State.Pid}}' k8s) || true
metrics_port=${K8S_PORTS[0]#metrics:}
check "ports: containerPort metrics=$metrics_port = PGSLUICE_METRICS_LISTEN's port = the scrape annotation" \
  test "$metrics_port $(env_of PGSLUICE_METRICS_LISTEN | sed 's/.*://') ${K8S_ANNOT_PORT[0]}" = "$metrics_port $metrics_port $metrics_port"
pod_metrics() { nsenter -t "$k8s_pid" -n curl -sf "http://127.0.0.1:$metrics_port/metrics" | grep '^pgsluice_build_info' >/dev/null; }
check "GET /metrics answers on :$metrics_port in the pod's network namespace" pod_metrics
check "the app's PGHOST:PGPORT ($(env_of PGHOST):$(env_of PGPORT)) is LISTEN_ADDR:LISTEN_PORT, the image's EXPOSE" \
  test "$(env_of PGHOST):$(env_of PGPORT) $(env_of PGPORT)/tcp" = "$(env_of LISTEN_ADDR):$(env_of LISTEN_PORT) $(cfg '{{range $p, $_ := .Config.ExposedPorts}}{{$p}}{{end}}')"
# The console refuses app (not an admin user) with PgBouncer's words: that is pgsluice answering.
app_sees_pooler() {
  local out
  out=$(PGPASSWORD=app_pw nsenter -t "$k8s_pid" -n "$bindir/psql" -X -h "$(env_of PGHOST)" \
    -p "$(env_of PGPORT)" -U app pgbouncer -c 'SHOW VERSION' 2>&1) || true
  [[ $out == *"not allowed"* ]] || { echo "      $out"; return 1; }
}
check "the app's PGHOST:PGPORT answers in the pod's network namespace" app_sees_pooler
check "a CPU limit of 1 gives pgsluice one worker thread (startup log: worker_threads=1)" \
  log_has k8s "starting the runtime"
workers=$(logs k8s | "$python" -c 'import json,sys
for l in sys.stdin:
    if l.startswith("{") and json.loads(l)["message"] == "starting the runtime": print(json.loads(l)["worker_threads"])') || true
check "... and it is 1 (quota $(pm exec k8s cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || echo '?')/100000)" test "$workers" = 1
start k8s-nolimit --network=none --user "${K8S_RUN_AS[0]}" --read-only --read-only-tmpfs=false \
  -v "$(empty_dir)":"${K8S_MOUNT[0]}" "${envargs[@]}" "$IMAGE"
wait_for "the unlimited container" 100 log_has k8s-nolimit "starting the runtime" || true
check "without a CPU limit it is one per core ($(nproc))" log_has k8s-nolimit "\"worker_threads\":$(nproc)"

printf '\n%d passed, %d failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]]

# Shared by scripts/test.sh and scripts/demo.sh: finding (or installing) PostgreSQL server
# binaries and running commands as root or as the postgres system user.
# shellcheck shell=bash

say() { printf '==> %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

pg_complete() {
  local dir=$1 bin
  for bin in initdb postgres pg_isready psql pgbench; do
    [[ -x $dir/$bin ]] || return 1
  done
}

# Runs a command as root: directly, or through passwordless sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    env DEBIAN_FRONTEND=noninteractive "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo env DEBIAN_FRONTEND=noninteractive "$@"
  else
    return 1
  fi
}

install_postgres() {
  command -v apt-get >/dev/null 2>&1 ||
    die "PostgreSQL 15 server binaries not found and no apt-get; install them and set PGSLUICE_PG_BINDIR"
  as_root true ||
    die "PostgreSQL 15 server binaries not found; run as root or: sudo apt-get install postgresql-15 postgresql-client-15"
  say "installing PostgreSQL (server binaries only; no cluster is created or started)"
  as_root apt-get update -qq
  # A packaged "main" cluster would be a stray service on port 5432; we never use it.
  as_root apt-get install -y -qq --no-install-recommends postgresql-common >/dev/null
  as_root sed -i -E 's/^#?[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
  if apt-cache show postgresql-15 >/dev/null 2>&1; then
    as_root apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-client-15 >/dev/null
  else
    say "postgresql-15 is not packaged here; installing the distribution's default major"
    as_root apt-get install -y -qq --no-install-recommends postgresql postgresql-client >/dev/null
  fi
}

# Installs the Debian package `pkg` when `cmd` is missing (tools the tests run: openssl makes the
# certificates of the TLS tests). Without apt-get or root it stops with a clear message.
ensure_tool() { # cmd pkg
  command -v "$1" >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 && as_root true || die "$1 not found; install the $2 package"
  say "installing $2 (for $1)"
  as_root apt-get install -y -qq --no-install-recommends "$2" >/dev/null ||
    { as_root apt-get update -qq && as_root apt-get install -y -qq --no-install-recommends "$2" >/dev/null; } ||
    die "could not install $2"
}

# Sets and exports PGSLUICE_PG_BINDIR to usable server binaries, installing them if needed.
ensure_postgres() {
  if [[ -n ${PGSLUICE_PG_BINDIR:-} ]]; then
    pg_complete "$PGSLUICE_PG_BINDIR" || die "PGSLUICE_PG_BINDIR=$PGSLUICE_PG_BINDIR lacks initdb/postgres/pg_isready/psql/pgbench"
  else
    local default_bindir=/usr/lib/postgresql/15/bin newest
    pg_complete "$default_bindir" || install_postgres
    if pg_complete "$default_bindir"; then
      export PGSLUICE_PG_BINDIR=$default_bindir
    else
      # Fall back to the newest installed major (15 and later work).
      newest=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort -V | tail -n 1)
      [[ -n $newest ]] && pg_complete "$newest/bin" || die "no usable PostgreSQL server binaries after install"
      say "PostgreSQL 15 unavailable; using $newest/bin"
      export PGSLUICE_PG_BINDIR=$newest/bin
    fi
  fi
  if [[ $(id -u) -eq 0 ]]; then
    # Postgres refuses to run as root; it runs as this system user instead.
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (created by the postgresql package)"
  fi
}

# Runs a command as the postgres system user when we are root, else as ourselves.
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

# Rust: rustup installs the toolchain rust-toolchain.toml pins (with rustfmt and clippy) on first
# use. Without cargo, installs rustup from rustup.rs (needs curl and that host reachable).
ensure_rust() {
  [[ -x $HOME/.cargo/bin/cargo ]] && export PATH="$HOME/.cargo/bin:$PATH"
  command -v cargo >/dev/null 2>&1 && return 0
  say "cargo not found: installing rustup (the toolchain comes from rust-toolchain.toml)"
  command -v curl >/dev/null 2>&1 || { as_root apt-get install -y -qq curl ca-certificates >/dev/null 2>&1 || true; }
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --default-toolchain none --profile minimal >/dev/null ||
    die "cargo not found and rustup could not be installed; install Rust from https://rustup.rs"
  export PATH="$HOME/.cargo/bin:$PATH"
}

# A free TCP port on 127.0.0.1 (probed by connecting; bounded attempts).
free_port() {
  local port
  for _ in $(seq 1 50); do
    # Below the kernel's ephemeral range (32768+), where outgoing sockets would clash.
    port=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  die "no free port found"
}

# Creates (does not start) a throwaway cluster in WORK/data for the scripts: loopback only on
# PORT, its unix socket in WORK, no durability (fsync off), md5 passwords; `postgres` is trusted,
# every other TCP login must give its md5 password, as a production server would ask.
init_throwaway_cluster() { # work port bindir
  local work=$1 port=$2 bindir=$3
  as_pg "$bindir/initdb" -D "$work/data" -U postgres -A trust --no-sync >/dev/null
  cat >>"$work/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
max_connections = 100
fsync = off
synchronous_commit = off
full_page_writes = off
password_encryption = md5
CONF
  cat >"$work/data/pg_hba.conf" <<HBA
local all postgres trust
host  all postgres 127.0.0.1/32 trust
host  all all      127.0.0.1/32 md5
HBA
}

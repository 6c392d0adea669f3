#!/usr/bin/env bash
# The project's one test command (README and .ci/run call exactly this).
#
# Installs what the tests need when it is missing (PostgreSQL server binaries; the tests start
# their own throwaway clusters, so no service is configured or started), then runs every unit,
# integration and doc test with `cargo test --locked`, and prints a one-line summary.
# Idempotent; works as root (CI) and as a normal user. Extra arguments go to `cargo test`,
# e.g. `scripts/test.sh --test it harness_selftest`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

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
  # A packaged "main" cluster would be a stray service on port 5432; the tests never use it.
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

command -v cargo >/dev/null 2>&1 || die "cargo not found; install Rust (rustup reads rust-toolchain.toml)"

# The harness uses PGSLUICE_PG_BINDIR, else /usr/lib/postgresql/15/bin.
if [[ -n ${PGSLUICE_PG_BINDIR:-} ]]; then
  pg_complete "$PGSLUICE_PG_BINDIR" || die "PGSLUICE_PG_BINDIR=$PGSLUICE_PG_BINDIR lacks initdb/postgres/pg_isready/psql/pgbench"
else
  default_bindir=/usr/lib/postgresql/15/bin
  pg_complete "$default_bindir" || install_postgres
  if ! pg_complete "$default_bindir"; then
    # Fall back to the newest installed major (the harness works with 15 and later).
    newest=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d 2>/dev/null | sort -V | tail -n 1)
    [[ -n $newest ]] && pg_complete "$newest/bin" || die "no usable PostgreSQL server binaries after install"
    say "PostgreSQL 15 unavailable; using $newest/bin"
    export PGSLUICE_PG_BINDIR=$newest/bin
  fi
fi

if [[ $(id -u) -eq 0 ]]; then
  # Postgres refuses to run as root; the harness runs it as this system user.
  id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (created by the postgresql package)"
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

say "cargo test --locked $*"
status=0
cargo test --locked "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}

# One line per test binary: "test result: ok. 9 passed; 0 failed; 1 ignored; ..."
summary=$(awk '/^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed;?$/) p += $(i - 1)
      if ($(i) ~ /^failed;?$/) f += $(i - 1)
      if ($(i) ~ /^ignored;?$/) g += $(i - 1)
    }
    n++
  }
  END { printf "%d passed, %d failed, %d ignored in %d test binaries", p, f, g, n }' "$log")

if [[ $status -eq 0 ]]; then
  say "tests OK: $summary"
else
  say "tests FAILED (cargo exit $status): $summary"
  grep -E '^(test .* FAILED|failures:$|    [A-Za-z_:]+$)' "$log" | sed 's/^/    /' >&2 || true
fi
exit "$status"

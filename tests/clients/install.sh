#!/usr/bin/env bash
# Installs the client drivers for the driver-matrix tests (tests/it/prepared_drivers.rs), all
# under target/ so nothing global changes except Debian's pgJDBC jar:
#   target/clients-venv           Python venv with asyncpg and psycopg 3 (binary wheel)
#   target/clients-node           node_modules with node-postgres (`pg`)
#   /usr/share/java/postgresql.jar  Debian's libpostgresql-jdbc-java (apt-get, root only)
# Best effort and idempotent: each step that fails prints one line and is left out; the test of
# that driver then prints "skipped: <reason>". Quiet when everything is already there.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

say() { printf '==> %s\n' "$*" >&2; }
TARGET=${CARGO_TARGET_DIR:-target}
VENV=$TARGET/clients-venv
NODE_DIR=$TARGET/clients-node

# Python: asyncpg and psycopg 3.
if command -v python3 >/dev/null 2>&1; then
  if ! "$VENV/bin/python" -c 'import asyncpg, psycopg' >/dev/null 2>&1; then
    say "installing asyncpg and psycopg[binary] into $VENV"
    { [[ -x $VENV/bin/python ]] || python3 -m venv "$VENV"; } >/dev/null 2>&1 &&
      "$VENV/bin/python" -m pip install -q --disable-pip-version-check asyncpg 'psycopg[binary]' >/dev/null 2>&1 ||
      say "could not install asyncpg/psycopg (no venv module or PyPI unreachable); their tests will be skipped"
  fi
else
  say "python3 not found; the asyncpg and psycopg tests will be skipped"
fi

# Node: node-postgres.
if command -v npm >/dev/null 2>&1; then
  if [[ ! -f $NODE_DIR/node_modules/pg/package.json ]]; then
    say "installing node-postgres (pg) into $NODE_DIR"
    mkdir -p "$NODE_DIR" &&
      { [[ -f $NODE_DIR/package.json ]] || printf '{"private": true}\n' >"$NODE_DIR/package.json"; } &&
      (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund pg >/dev/null 2>&1) ||
      say "could not install the pg npm package (npm registry unreachable?); its test will be skipped"
  fi
else
  say "npm not found; the node-postgres test will be skipped"
fi

# Java: Debian's pgJDBC (needs root or passwordless sudo for apt-get).
if ! ls /usr/share/java/postgresql.jar >/dev/null 2>&1; then
  as_root() {
    if [[ $(id -u) -eq 0 ]]; then env DEBIAN_FRONTEND=noninteractive "$@"
    elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo env DEBIAN_FRONTEND=noninteractive "$@"
    else return 1; fi
  }
  if command -v apt-get >/dev/null 2>&1 && as_root true; then
    say "installing libpostgresql-jdbc-java"
    as_root apt-get install -y -qq --no-install-recommends libpostgresql-jdbc-java >/dev/null 2>&1 ||
      { as_root apt-get update -qq >/dev/null 2>&1 &&
        as_root apt-get install -y -qq --no-install-recommends libpostgresql-jdbc-java >/dev/null 2>&1; } ||
      say "could not install libpostgresql-jdbc-java; the pgJDBC test will be skipped"
  else
    say "libpostgresql-jdbc-java missing and not root; the pgJDBC test will be skipped"
  fi
fi
exit 0

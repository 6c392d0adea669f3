#!/usr/bin/env bash
# Installs the client drivers for the driver-matrix tests (tests/it/prepared_drivers.rs), all
# under target/ so nothing global changes except Debian's pgJDBC jar:
#   target/clients-venv           Python venv with asyncpg and psycopg 3 (binary wheel)
#   target/clients-node           node_modules with node-postgres (`pg`)
#   /usr/share/java/postgresql.jar  Debian's libpostgresql-jdbc-java (apt-get, root only)
# and, with apt-get as root, the Debian packages they need when missing: python3-venv, nodejs and
# npm, a headless JDK.
# Best effort and idempotent: each step that fails prints one line and is left out; the test of
# that driver then stays ignored (and fails with CI=true). Quiet when everything is already there.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

say() { printf '==> %s\n' "$*" >&2; }
TARGET=${CARGO_TARGET_DIR:-target}
VENV=$TARGET/clients-venv
NODE_DIR=$TARGET/clients-node

as_root() {
  if [[ $(id -u) -eq 0 ]]; then env DEBIAN_FRONTEND=noninteractive "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo env DEBIAN_FRONTEND=noninteractive "$@"
  else return 1; fi
}
# apt_install PKG...: installs Debian packages when apt-get and root are at hand (quietly).
apt_install() {
  command -v apt-get >/dev/null 2>&1 && as_root true || return 1
  say "installing $*"
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
    { as_root apt-get update -qq >/dev/null 2>&1 &&
      as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1; }
}

# Python: asyncpg and psycopg 3.
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
if command -v python3 >/dev/null 2>&1; then
  if ! "$VENV/bin/python" -c 'import asyncpg, psycopg' >/dev/null 2>&1; then
    say "installing asyncpg and psycopg[binary] into $VENV"
    if [[ ! -x $VENV/bin/python ]] && ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      rm -rf "$VENV"
      apt_install python3-venv && python3 -m venv "$VENV" >/dev/null 2>&1
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check asyncpg 'psycopg[binary]' >/dev/null 2>&1 ||
      say "could not install asyncpg/psycopg (no venv module or PyPI unreachable); their tests stay ignored"
  fi
else
  say "python3 not found; the asyncpg and psycopg tests stay ignored"
fi

# Node: node-postgres.
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
if command -v npm >/dev/null 2>&1; then
  if [[ ! -f $NODE_DIR/node_modules/pg/package.json ]]; then
    say "installing node-postgres (pg) into $NODE_DIR"
    mkdir -p "$NODE_DIR" &&
      { [[ -f $NODE_DIR/package.json ]] || printf '{"private": true}\n' >"$NODE_DIR/package.json"; } &&
      (cd "$NODE_DIR" && npm install --silent --no-audit --no-fund pg >/dev/null 2>&1) ||
      say "could not install the pg npm package (npm registry unreachable?); its test stays ignored"
  fi
else
  say "npm not found; the node-postgres test stays ignored"
fi

# Java: a JDK (javac) and Debian's pgJDBC.
command -v javac >/dev/null 2>&1 || apt_install default-jdk-headless ||
  say "could not install a JDK; the pgJDBC test stays ignored"
[[ -f /usr/share/java/postgresql.jar ]] || apt_install libpostgresql-jdbc-java ||
  say "could not install libpostgresql-jdbc-java; the pgJDBC test stays ignored"
exit 0

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

# shellcheck source=scripts/lib.sh
source scripts/lib.sh

ensure_rust
ensure_postgres
ensure_tool openssl openssl

# promtool (Debian package `prometheus`) checks the /metrics page and the alert rules file. The
# package is only unpacked under target/, never installed, so no Prometheus service is set up.
# Best effort: without it those checks are skipped with a message.
if ! command -v promtool >/dev/null 2>&1; then
  promdir=target/promtool
  if [[ ! -x $promdir/usr/bin/promtool ]] && command -v apt-get >/dev/null 2>&1; then
    mkdir -p "$promdir"
    (cd "$promdir" && apt-get download -qq prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb) ||
      say "promtool unavailable; the promtool checks will be skipped"
  fi
  if [[ -x $promdir/usr/bin/promtool ]]; then export PATH="$PWD/$promdir/usr/bin:$PATH"; fi
fi

# Optional, for the admin console tests (they skip with a message without them): the real
# PgBouncer to compare result sets with, and Debian's exporter to scrape the console. Their
# services must not start, so a temporary policy-rc.d forbids it while they install.
install_optional() {
  local pkg=$1 bin=$2 policy=/usr/sbin/policy-rc.d
  [[ -x $bin ]] && return 0
  command -v apt-get >/dev/null 2>&1 && as_root true || return 0
  say "installing $pkg (optional, for the admin console tests)"
  local made_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null && as_root chmod +x "$policy" && made_policy=1
  fi
  as_root apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1 ||
    { as_root apt-get update -qq >/dev/null 2>&1 && as_root apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null 2>&1; } ||
    say "could not install $pkg; its tests will be skipped"
  [[ $made_policy -eq 1 ]] && as_root rm -f "$policy"
  return 0
}
install_optional pgbouncer /usr/sbin/pgbouncer
install_optional prometheus-pgbouncer-exporter /usr/bin/prometheus-pgbouncer-exporter

# Client drivers for the prepared-statement driver matrix (tests/it/prepared_drivers.rs): asyncpg
# and psycopg 3 in a venv, node-postgres, Debian's pgJDBC. All but the jar go under target/.
# Best effort and quiet: a driver that cannot be installed has its test print "skipped: ...".
tests/clients/install.sh || true

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

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
# Best effort here; the tests that need it are handled below.
if ! command -v promtool >/dev/null 2>&1; then
  promdir=target/promtool
  if [[ ! -x $promdir/usr/bin/promtool ]] && command -v apt-get >/dev/null 2>&1; then
    mkdir -p "$promdir"
    (cd "$promdir" && apt-get download -qq prometheus >/dev/null 2>&1 && dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb) ||
      say "promtool unavailable; the tests that need it stay ignored (they fail with CI=true)"
  fi
  if [[ -x $promdir/usr/bin/promtool ]]; then export PATH="$PWD/$promdir/usr/bin:$PATH"; fi
fi

# For the admin console tests that need them (see the second pass below): the real
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
    say "could not install $pkg; the tests that need it stay ignored (they fail with CI=true)"
  [[ $made_policy -eq 1 ]] && as_root rm -f "$policy"
  return 0
}
install_optional pgbouncer /usr/sbin/pgbouncer
install_optional prometheus-pgbouncer-exporter /usr/bin/prometheus-pgbouncer-exporter

# Client drivers for the prepared-statement driver matrix (tests/it/prepared_drivers.rs): asyncpg
# and psycopg 3 in a venv, node-postgres, Debian's pgJDBC. All but the jar go under target/.
# Best effort and quiet: a driver that cannot be installed leaves its test ignored (see below).
tests/clients/install.sh || true

# The tests that need one of the tools above are named `*_needs_TOOL` and marked #[ignore], so a
# plain `cargo test` reports them as ignored with the reason. This script runs them in a second
# pass: each one whose tool is here, and with CI=true every one (in CI a missing tool fails its
# test; it never passes silently).
target_dir=${CARGO_TARGET_DIR:-target}
have() { # tool
  case $1 in
    pgbouncer) [[ -x /usr/sbin/pgbouncer ]] ;;
    exporter) [[ -x /usr/bin/prometheus-pgbouncer-exporter ]] ;;
    promtool) command -v promtool >/dev/null 2>&1 ;;
    root) [[ $(id -u) -eq 0 ]] ;;
    asyncpg | psycopg) "$target_dir/clients-venv/bin/python" -c "import $1" >/dev/null 2>&1 ;;
    node_pg) command -v node >/dev/null 2>&1 && [[ -f $target_dir/clients-node/node_modules/pg/package.json ]] ;;
    pgjdbc) command -v javac >/dev/null 2>&1 && [[ -f /usr/share/java/postgresql.jar ]] ;;
  esac
}
tool_filters=()
missing=()
for tool in pgbouncer exporter promtool root asyncpg psycopg node_pg pgjdbc; do
  if [[ ${CI:-} == true ]] || have "$tool"; then tool_filters+=("needs_$tool"); else missing+=("$tool"); fi
done

log=$(mktemp)
trap 'rm -f "$log"' EXIT
started=$SECONDS

say "cargo test --locked $*"
status=0
cargo test --locked "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}

if [[ $# -eq 0 ]]; then
  say "cargo test --locked --test it -- --ignored ${tool_filters[*]} (the tests that need a tool)"
  echo "second pass" >>"$log"
  cargo test --locked --test it -- --ignored "${tool_filters[@]}" 2>&1 | tee -a "$log" ||
    status=$((status == 0 ? PIPESTATUS[0] : status))
else
  say "arguments given: the *_needs_TOOL tests were not run (add: -- --ignored needs_)"
fi
[[ ${#missing[@]} -eq 0 ]] || say "left ignored, their tool is missing here: ${missing[*]/#/needs_}"

# One line per test binary: "test result: ok. 9 passed; 0 failed; 1 ignored; ...". A test run in
# the second pass was counted as ignored in the first: it counts once, as what it did.
summary=$(awk '/^second pass$/ { second = 1 }
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i) ~ /^passed;?$/) { p += $(i - 1); if (second) g -= $(i - 1) }
      if ($(i) ~ /^failed;?$/) { f += $(i - 1); if (second) g -= $(i - 1) }
      if ($(i) ~ /^ignored;?$/ && !second) g += $(i - 1)
    }
    if (!second) n++
  }
  END { printf "%d passed, %d failed, %d ignored in %d test binaries", p, f, g, n }' "$log")
wall=$((SECONDS - started))
timing="in $((wall / 60)) min $((wall % 60)) s"

if [[ $status -eq 0 ]]; then
  say "tests OK: $summary, $timing"
else
  say "tests FAILED (exit $status): $summary, $timing"
  grep -E '^(test .* FAILED|failures:$|    [A-Za-z_:]+$)' "$log" | sed 's/^/    /' >&2 || true
fi
exit "$status"

#!/usr/bin/env bash
# Runs the fuzz targets one after another, each for SECONDS (default 300), at low priority.
#   fuzz/run.sh [SECONDS] [TARGET...]        (all targets when none is named)
# Needs cargo-fuzz (`cargo install cargo-fuzz`). The toolchain is the project's stable one:
# RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's -Z flags. No sanitizer (`-s none`): the crate
# forbids `unsafe`, and coverage-guided search is what finds the logic bugs here. Logs go to
# fuzz/logs/TARGET.log, new inputs to fuzz/corpus/TARGET, crashes to fuzz/artifacts/TARGET.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
secs=${1:-300}
shift || true
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  targets=(startup scan backend rewrite scram_server scram_client console ini connstr userlist hba ident)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -s none
mkdir -p logs
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "== $t for ${secs}s"
  nice -n 10 cargo fuzz run -s none "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -max_len=8192 -timeout=10 -rss_limit_mb=1024 \
    -print_final_stats=1 >"logs/$t.log" 2>&1 || echo "   $t FAILED: see fuzz/logs/$t.log"
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb)|#[0-9]+.*DONE' "logs/$t.log" || true
done

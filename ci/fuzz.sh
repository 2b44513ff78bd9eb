#!/usr/bin/env bash
# The cargo-fuzz targets under fuzz/fuzz_targets (libFuzzer, nightly toolchain).
#
#   ci/fuzz.sh --smoke            build every target, replay its seeds and corpus, fuzz it
#                                 for FUZZ_SMOKE_SECONDS (10) seconds; ci/test.sh runs this
#   ci/fuzz.sh TARGET SECONDS     fuzz one target for a long run
#   ci/fuzz.sh --all SECONDS      every target, one after another
#   ci/fuzz.sh --list             the targets
#
# Seeds (fuzz/seeds/TARGET, in git) are read; what a run discovers goes to fuzz/corpus/TARGET
# (not in git; `cargo fuzz cmin` it into seeds when it found something worth keeping). A
# crash stops that target, prints the reproducer path (fuzz/artifacts/TARGET/crash-*) and
# how to replay it, and the script exits non-zero after the other targets ran. Each target's
# last line of libFuzzer statistics (runs, coverage, features, corpus) is printed.
#
# No sanitizer (`-s none`): the workspace has no `unsafe` code, so AddressSanitizer would
# find nothing panics and debug assertions (on in fuzz builds) do not, at half the speed.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
CARGO_FUZZ_VERSION=0.13.2

ensure_tools() {
  rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
  if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
  fi
}

fuzz() { (cd fuzz && cargo +nightly fuzz "$@"); }

# Fuzzes $1 for $2 seconds; prints its statistics; returns non-zero on a crash.
run_target() {
  local target=$1 seconds=$2 log status
  mkdir -p "fuzz/corpus/$target" "fuzz/seeds/$target"
  log=$(mktemp)
  set +e
  fuzz run -s none "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1
  status=$?
  set -e
  local stats
  stats=$(grep -E '^#[0-9]+\s+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true)
  local runs
  runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
  echo "fuzz: $target: ${seconds}s, ${runs:-?} runs; last: ${stats:-none}"
  if [ "$status" -ne 0 ]; then
    echo "fuzz: $target: FAILED (status $status); output tail:"
    grep -E 'panicked|SUMMARY|Test unit written|assert' "$log" | head -n 20 || true
    tail -n 30 "$log"
    local crash
    crash=$(ls -t "fuzz/artifacts/$target"/{crash,timeout,oom,leak}-* 2>/dev/null | head -n 1 || true)
    if [ -n "$crash" ]; then
      echo "fuzz: $target: reproducer $crash"
      echo "fuzz: replay with: (cd fuzz && cargo +nightly fuzz run -s none $target ${crash#fuzz/})"
    fi
  fi
  rm -f "$log"
  return "$status"
}

run_all() {
  local seconds=$1 failed=0 count=0
  for target in $(fuzz list); do
    count=$((count + 1))
    run_target "$target" "$seconds" || failed=$((failed + 1))
  done
  echo "fuzz: $count targets, $failed failed"
  # Every file under fuzz/fuzz_targets is a target: a listing that lost some fails too.
  local expected
  expected=$(ls fuzz/fuzz_targets/*.rs | wc -l)
  if [ "$count" -ne "$expected" ]; then
    echo "fuzz: ran $count targets, but fuzz/fuzz_targets holds $expected"
    return 1
  fi
  [ "$failed" -eq 0 ]
}

case "${1:-}" in
  --list)
    fuzz list
    ;;
  --smoke)
    ensure_tools
    fuzz build -s none
    run_all "${FUZZ_SMOKE_SECONDS:-10}"
    ;;
  --all)
    ensure_tools
    fuzz build -s none
    run_all "${2:?seconds per target}"
    ;;
  "" | -h | --help)
    sed -n '2,18p' "$0"
    ;;
  *)
    ensure_tools
    fuzz build -s none "$1"
    run_target "$1" "${2:?seconds}"
    ;;
esac

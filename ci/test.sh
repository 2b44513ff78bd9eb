#!/usr/bin/env bash
# The one test command. Runs on a fresh clone with only Rust (plus the machine's gcc and
# python3) installed, installing what it needs itself:
#   formatting, clippy (-D warnings), unit + integration tests, the dependency rule for the
#   sans-IO core, the kvproto compatibility check, the madsim build + simulation tests
#   (in target/sim, because --cfg madsim rebuilds everything), a PR-sized VOPR run, the
#   determinism check and a short run of every fuzz target. Longer simulation runs:
#   ci/sim.sh; longer fuzzing: ci/fuzz.sh TARGET SECONDS.
# Exits non-zero on the first failing step; prints each runner's summary lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL=0

started=$(date +%s)
step() {
  local name=$1
  shift
  local t0=$(date +%s)
  echo
  echo "=== ci/test.sh: $name"
  if "$@"; then
    echo "=== ci/test.sh: $name: ok ($(( $(date +%s) - t0 ))s)"
  else
    echo "=== ci/test.sh: $name: FAILED ($(( $(date +%s) - t0 ))s)"
    exit 1
  fi
}

# Runs cargo test and echoes only what a reader needs: per-binary summaries and failures.
run_tests() {
  local log
  log=$(mktemp)
  if "$@" 2>&1 | tee "$log" | grep -E '^(test result:|     Running|   Doc-tests|failures:|---- |thread .* panicked|compat: |error(\[|:))'; then :; fi
  local status=${PIPESTATUS[0]}
  if [ "$status" -ne 0 ]; then
    echo "--- last 80 lines of output:"
    tail -n 80 "$log"
  fi
  rm -f "$log"
  return "$status"
}

. ci/libclang.sh

step "rustfmt" cargo fmt --all -- --check
step "clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
# The real-process tests start ferrokv-server, ferrokv-pd and ferrokv binaries; cargo test
# does not build another package's binaries, so build them first and say where they are.
step "build ferrokv-server, ferrokv-pd, ferrokv" cargo build --locked -p ferrokv-server \
  --bin ferrokv-server -p ferrokv-pd --bin ferrokv-pd -p ferrokv-cli --bin ferrokv
export FERROKV_SERVER_BIN="$PWD/target/debug/ferrokv-server"
export FERROKV_BIN_DIR="$PWD/target/debug"
step "tests" run_tests cargo test --workspace --locked
step "sans-IO dependency rule" ci/deps.sh
step "fetch tikv-client (kvproto reference)" \
  cargo fetch --manifest-path compat/Cargo.toml --locked
step "kvproto wire compatibility" python3 ci/proto_compat.py
# The official tikv-client 0.4 RawClient and TransactionClient, unmodified, each against
# 1 PD + 3 stores (processes on loopback, temp dir, torn down at the end): raw: >= 20
# regions from size splits, a model check, a store killed and restarted mid-run; txn:
# regions split at transactional keys, optimistic and pessimistic transactions, a write
# conflict, a snapshot read, an abandoned lock resolved, a store killed mid-workload.
# Its own workspace and target dir (compat/target).
step "compatibility: official tikv-client RawClient and TransactionClient" \
  run_tests cargo test --locked --manifest-path compat/Cargo.toml -- --nocapture
export RUSTFLAGS="--cfg madsim" RUSTDOCFLAGS="--cfg madsim"
step "madsim build" cargo build --workspace --all-targets --locked --target-dir target/sim
step "clippy (madsim)" cargo clippy --workspace --all-targets --locked --target-dir target/sim -- -D warnings
# Fixed seeds keep CI reproducible; widen with MADSIM_TEST_SEED / MADSIM_TEST_NUM.
export MADSIM_TEST_SEED=${MADSIM_TEST_SEED:-1} MADSIM_TEST_NUM=${MADSIM_TEST_NUM:-4}
step "madsim tests" run_tests cargo test --workspace --locked --target-dir target/sim
unset RUSTFLAGS RUSTDOCFLAGS
# The VOPR steps run an optimized build (profile `sim`, Cargo.toml): one extra build of
# the simulator (about 4 min cold), and then a simulated minute runs ten times faster than
# in the dev profile.
export VOPR_PROFILE=sim
step "simulation: 16 seeds x 1 simulated minute" ci/sim.sh --seeds 16 --sim-minutes 1
regressions() {
  local line seed minutes flags
  while IFS= read -r line; do
    line=${line%%#*}
    read -r seed minutes flags <<< "$line" || true
    [ -z "${seed:-}" ] && continue
    case " $flags " in *" --planted-bug "*|*" --expect"*)
      echo "sim/regressions.txt: seed $seed names a planted bug; regression seeds run on correct code" >&2
      return 1 ;;
    esac
    # shellcheck disable=SC2086  # flags are words by design
    ci/sim.sh --seed "$seed" --sim-minutes "$minutes" $flags || return 1
  done < sim/regressions.txt
}
step "simulation: regression seeds (sim/regressions.txt)" regressions
step "simulation: planted bugs must be caught (sim/planted.txt)" ci/planted.sh
step "determinism: 4 seeds twice + madsim check" ci/determinism.sh 4
# Every cargo-fuzz target (nightly; cargo-fuzz installed by the script): built, its seeds
# and corpus replayed, then fuzzed ~10 s each. Its own workspace and target dir (fuzz/target).
step "fuzz smoke: every target" ci/fuzz.sh --smoke

echo
echo "=== ci/test.sh: all steps passed in $(( $(date +%s) - started ))s"

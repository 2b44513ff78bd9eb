#!/usr/bin/env bash
# Determinism check: `ci/determinism.sh [seeds]` (default 4).
#  1. Each seed runs twice in the VOPR; the trace hashes (every message delivered, tick,
#     random draw and applied entry on every store, plus the client history's timing) must
#     be equal. Different seeds must give different traces.
#  2. madsim's own check (MADSIM_TEST_CHECK_DETERMINISM) on the 3-node replication test:
#     the simulator's random stream and virtual time must match draw for draw.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-4}
export VOPR_PROFILE=${VOPR_PROFILE:-dev}
out=$(ci/sim.sh --seeds "$seeds" --sim-minutes 0.5 --twice)
echo "$out"
distinct=$(echo "$out" | grep -o 'trace 0x[0-9a-f]*' | sort -u | wc -l)
if [ "$distinct" -ne "$seeds" ]; then
  echo "determinism: expected $seeds distinct traces for $seeds seeds, got $distinct"
  exit 1
fi
RUSTFLAGS="--cfg madsim" RUSTDOCFLAGS="--cfg madsim" MADSIM_TEST_CHECK_DETERMINISM=1 \
  cargo test --locked -p ferrokv-tests --test madsim_replication --target-dir target/sim 2>&1 \
  | grep -E '^(test |test result:)|panicked|non-determinism'
echo "determinism: ok ($seeds seeds twice, plus madsim's draw-by-draw check)"

#!/usr/bin/env bash
# The simulator's seed runner (VOPR). Examples:
#   ci/sim.sh --seeds 64 --sim-minutes 5          # 64 seeds, 5 simulated minutes of faults each
#   ci/sim.sh --seed 17 --sim-minutes 5           # replay seed 17 bit for bit
#   ci/sim.sh --seeds 64 --planted-bug stale-reads   # show the simulator catches a planted bug
# Every fault kind is enabled by default; --swarm lets each seed pick a random subset.
# Half the seeds (each seed picks) run with a Placement Driver: 3 real PD members, stores
# joining through them, PD faults and the TSO checker; --pd forces it, --no-pd forbids it.
# Other flags: --first-seed S, --jobs J (default: CPU count), --swarm, --twice,
# --verbose, --no-buggify, --out DIR. VOPR_PROFILE picks the cargo profile: release (the
# default), sim (opt-level 2, quicker to build; ci/test.sh uses it) or dev.
# Builds with RUSTFLAGS="--cfg madsim" into target/sim (separate from normal builds).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${VOPR_PROFILE:-release}
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
RUSTFLAGS="--cfg madsim" cargo build --locked --profile "$profile" -p ferrokv-sim --bin vopr \
  --target-dir target/sim
jobs=$(nproc 2>/dev/null || echo 2)
case " $* " in *" --jobs "*) jobs_flag=() ;; *) jobs_flag=(--jobs "$jobs") ;; esac
exec "target/sim/$dir/vopr" "${jobs_flag[@]}" "$@"

#!/usr/bin/env bash
# Shows the simulator still catches every planted bug in sim/planted.txt: for each line, at
# least one of its seeds must fail with the named kind. ci/test.sh runs it; run it yourself
# (seconds in release) after any change to core/, server/ or sim/, since a change moves the
# scenario each seed produces. When a line stops catching, re-sweep it:
#   ci/planted.sh --sweep BUG [vopr flags]   # 64 seeds x 1 min, prints the seeds that catch it
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --sweep ]; then
  bug=$2
  shift 2
  ci/sim.sh --seeds 64 --sim-minutes 1 --planted-bug "$bug" "$@" 2>/dev/null \
    | sed -nE 's/^seed ([0-9]+): FAILED: ([a-z]+).*/\1 \2/p' | sort -n | tr '\n' ' '
  echo
  exit 0
fi
# Expected panics print long backtraces: keep stderr in a log, shown only when a line fails.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while IFS= read -r line; do
  line=${line%%#*}
  read -r bug kind seeds flags <<< "$line" || true
  [ -z "${bug:-}" ] && continue
  # shellcheck disable=SC2086  # flags are words by design
  if ! ci/sim.sh --seed-list "$seeds" --sim-minutes 1 --planted-bug "$bug" --expect "$kind" \
    $flags 2>"$log" | grep -E '^(seed |vopr: (planted|FAILED))'; then
    tail -n 40 "$log"
    exit 1
  fi
done < sim/planted.txt

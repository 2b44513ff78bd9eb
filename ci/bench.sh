#!/usr/bin/env bash
# Benchmarks (never part of ci/test.sh): `ci/bench.sh raw|txn [seconds-per-phase]`.
# raw: put and get; txn: 2-key transfer transactions beside raw put, as ratios to it.
# Builds release binaries, then runs the load tool against a 3-replica loopback cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/libclang.sh
workload=${1:-raw}
seconds=${2:-10}
cargo build --release --locked -p ferrokv-server --bin ferrokv-server -p ferrokv-tests --bin ferrokv-bench
FERROKV_SERVER_BIN="$PWD/target/release/ferrokv-server" target/release/ferrokv-bench "$workload" "$seconds"

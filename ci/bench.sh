#!/usr/bin/env bash
# Benchmarks (never part of ci/test.sh):
#   ci/bench.sh [compare] [--seconds N] [--clients 1,16,64,256] [--json FILE]
#       FerroKV's 3-replica cluster beside a 3-member etcd cluster (Debian's etcd-server)
#       and the storage ceiling (RocksDB's db_bench from rocksdb-tools, the disk's fsync
#       rate), in one run: put, linearizable get, 50/50 mix; one table with ratios.
#   ci/bench.sh txn [--seconds N]
#       2-key transfer transactions beside raw put, as ratios to it.
# Installs etcd-server and rocksdb-tools when missing (root, Debian), builds release
# binaries, runs everything on loopback in a temp dir, and stops every process it starts.
set -euo pipefail
cd "$(dirname "$0")/.."
. ci/libclang.sh
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v db_bench >/dev/null || missing+=(rocksdb-tools)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (the bench's peers)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; } \
    || echo "could not install ${missing[*]}: the table will lack those rows" >&2
fi
cargo build --release --locked -p ferrokv-server --bin ferrokv-server -p ferrokv-tests --bin ferrokv-bench
FERROKV_SERVER_BIN="$PWD/target/release/ferrokv-server" target/release/ferrokv-bench "$@"

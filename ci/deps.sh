#!/usr/bin/env bash
# The sans-IO crates must not link an IO runtime, RPC stack or RocksDB.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
for crate in ferrokv-core ferrokv-pd-core; do
  cargo metadata --format-version 1 --no-deps 2>/dev/null | grep -q "\"name\":\"$crate\"" || continue
  hits=$(cargo tree -p "$crate" -e normal,build --prefix none 2>/dev/null | grep -E 'tokio|tonic|rocksdb|madsim' || true)
  if [ -n "$hits" ]; then
    echo "deps check FAILED: $crate depends on an IO crate:"
    echo "$hits" | sort -u
    status=1
  else
    echo "deps check ok: $crate links no tokio, tonic, rocksdb or madsim"
  fi
done
exit $status

#!/usr/bin/env bash
# The newcomer's launcher: prepares what the build needs, then runs the `ferrokv` binary.
#   ./run.sh playground            # 1 PD + 3 stores on loopback, data under ./data
#   ./run.sh ctl put hello world   # from a second shell
#   ./run.sh ctl get hello
# RocksDB's bindings need libclang; `ci/libclang.sh` finds a system one or installs the PyPI
# wheel into target/tools once (no root needed). The first build compiles RocksDB's C++.
set -euo pipefail
cd "$(dirname "$0")"
. ci/libclang.sh
exec cargo run --quiet --release --bin ferrokv -- "$@"

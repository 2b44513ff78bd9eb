#!/usr/bin/env bash
# Makes libclang available to RocksDB's build (its -sys crate runs bindgen, which loads
# libclang at build time). Source it: `. ci/libclang.sh`.
#
# If a system libclang is found, nothing changes. Otherwise the `libclang` wheel from PyPI
# is installed once into target/tools/libclang (no root needed) and LIBCLANG_PATH points there.

_ferrokv_find_system_libclang() {
  local dir
  for dir in /usr/lib/llvm-*/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/lib; do
    compgen -G "$dir/libclang.so*" >/dev/null 2>&1 && return 0
    compgen -G "$dir/libclang-[0-9]*.so*" >/dev/null 2>&1 && return 0
  done
  return 1
}

_ferrokv_libclang() {
  local root tools
  root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
  tools="$root/target/tools/libclang"
  if [ -n "${LIBCLANG_PATH:-}" ] || _ferrokv_find_system_libclang; then
    return 0
  fi
  if [ ! -f "$tools/clang/native/libclang.so" ]; then
    echo "ci/libclang.sh: no system libclang; installing the PyPI libclang wheel into $tools" >&2
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
      --target "$tools" 'libclang==18.1.1' >&2 || {
      echo "ci/libclang.sh: could not install libclang; install libclang-dev and retry" >&2
      return 1
    }
  fi
  export LIBCLANG_PATH="$tools/clang/native"
  # The wheel carries libclang but not clang's builtin headers (stdbool.h, stddef.h...);
  # gcc's builtin headers serve bindgen's parse of RocksDB's C API.
  if [ -z "${BINDGEN_EXTRA_CLANG_ARGS:-}" ] && command -v gcc >/dev/null 2>&1; then
    export BINDGEN_EXTRA_CLANG_ARGS="-isystem $(gcc -print-file-name=include)"
  fi
}

_ferrokv_libclang

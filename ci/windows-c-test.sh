#!/usr/bin/env bash
# The C programs of examples/c/ on Windows, under Wine: builds memlink.dll
# (ci/windows-test.sh build), compiles the programs with MinGW against it,
# then runs crates/memlink-ffi/tests/c_programs.rs for the Windows target
# under Wine, which starts them as processes (against each other and
# against the Rust test process).
#
# Usage: ci/windows-c-test.sh [extra cargo test args]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET_DIR="${MEMLINK_WIN_TARGET_DIR:-$ROOT/target/windows}"
LIB_DIR="$TARGET_DIR/x86_64-pc-windows-gnu/debug"
OUT="$TARGET_DIR/c-examples"

ci/windows-test.sh build -p memlink-ffi
mkdir -p "$OUT"
for src in examples/c/*.c; do
    exe="$OUT/$(basename "$src" .c).exe"
    echo "[windows-c-test] $src -> $exe" >&2
    x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror -O1 \
        -I crates/memlink-ffi/include "$src" -L "$LIB_DIR" -lmemlink -o "$exe"
done
# The programs find memlink.dll beside them (the ProcessPrng shim comes
# from WINEPATH, set by ci/windows-test.sh).
cp -f "$LIB_DIR/memlink.dll" "$OUT/"

MEMLINK_C_EXAMPLES="$(winepath_dir="$OUT"; echo "Z:${winepath_dir//\//\\}")" \
    ci/windows-test.sh -p memlink-ffi --test c_programs "$@"

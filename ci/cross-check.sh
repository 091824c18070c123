#!/usr/bin/env bash
# Type-check the whole workspace (all targets: lib, bins, tests, examples,
# benches) for platforms we cannot run here, so code that would not compile on
# macOS or FreeBSD is caught. Nothing is linked.
#
# Usage: ci/cross-check.sh [extra cargo-check args...]
#   CROSS_TARGETS="t1 t2" overrides the target list.
#   MEMLINK_DENY_WARNINGS=1 makes compiler warnings in our crates errors.
#
# Uses the Debian Rust toolchain (/usr/bin/cargo, /usr/bin/rustc; packages
# rustc-web cargo-web rust-web-src) with -Zbuild-std, since no prebuilt
# standard library for these targets can be downloaded.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

read -r -a TARGETS <<<"${CROSS_TARGETS:-aarch64-apple-darwin x86_64-unknown-freebsd}"
TARGET_DIR="${MEMLINK_CROSS_TARGET_DIR:-$ROOT/target/cross}"

for f in /usr/bin/cargo /usr/bin/rustc; do
    [[ -x $f ]] || { echo "cross-check: missing $f; apt-get install rustc-web cargo-web rust-web-src" >&2; exit 1; }
done
[[ -d /usr/lib/rustlib/src/rust/library ]] || { echo "cross-check: missing rust-web-src" >&2; exit 1; }

export RUSTC_BOOTSTRAP=1
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTC_WRAPPER
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# MEMLINK_DENY_WARNINGS=1: fail on compiler warnings in our crates (those
# only seen on this target; clippy -D warnings covers Linux). Dependencies
# and the -Zbuild-std crates get --cap-lints, so only our code is affected.
if [[ ${MEMLINK_DENY_WARNINGS:-0} == 1 ]]; then
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-D warnings"
fi

failed=()
for t in "${TARGETS[@]}"; do
    echo "==> cargo check --target $t --workspace --all-targets"
    start=$SECONDS
    if /usr/bin/cargo check -Zbuild-std --target "$t" --target-dir "$TARGET_DIR" \
        --workspace --all-targets "$@" </dev/null; then
        echo "==> $t: ok ($((SECONDS - start)) s)"
    else
        echo "==> $t: FAILED ($((SECONDS - start)) s)"
        failed+=("$t")
    fi
done

if ((${#failed[@]})); then
    echo "cross-check failed for: ${failed[*]}" >&2
    exit 1
fi
echo "cross-check passed for: ${TARGETS[*]}"

#!/usr/bin/env bash
# Clippy on the whole workspace (all targets: lib, bins, tests, examples,
# benches) for the other platforms: macOS and FreeBSD, which we cannot run
# here, and Windows, whose tests run under Wine (ci/windows-test.sh) but
# whose lints are only seen here. Code that would not compile there, and
# what clippy finds in it, is caught. Nothing is linked.
#
# Usage: ci/cross-check.sh [extra cargo-check args...]
#   CROSS_TARGETS="t1 t2" overrides the target list.
#   MEMLINK_DENY_WARNINGS=1 makes compiler and clippy warnings in our crates
#   errors (as `cargo clippy -- -D warnings` does on Linux).
#
# Uses the Debian Rust toolchain (/usr/bin/cargo, /usr/bin/rustc,
# /usr/bin/clippy-driver; packages rustc-web cargo-web rust-web-src
# rust-web-clippy) with -Zbuild-std, since no prebuilt standard library for
# these targets can be downloaded. `cargo clippy` itself cannot pass
# -Zbuild-std through, so clippy-driver is cargo's wrapper for the workspace
# crates (the standard library and dependencies are checked plainly).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

read -r -a TARGETS <<<"${CROSS_TARGETS:-aarch64-apple-darwin x86_64-unknown-freebsd x86_64-pc-windows-gnu}"
TARGET_DIR="${MEMLINK_CROSS_TARGET_DIR:-$ROOT/target/cross}"

for f in /usr/bin/cargo /usr/bin/rustc /usr/bin/clippy-driver; do
    [[ -x $f ]] || { echo "cross-check: missing $f; apt-get install rustc-web cargo-web rust-web-src rust-web-clippy" >&2; exit 1; }
done
[[ -d /usr/lib/rustlib/src/rust/library ]] || { echo "cross-check: missing rust-web-src" >&2; exit 1; }

export RUSTC_BOOTSTRAP=1
export RUSTC=/usr/bin/rustc
export RUSTDOC=/usr/bin/rustdoc
unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTC_WRAPPER
export RUSTC_WORKSPACE_WRAPPER=/usr/bin/clippy-driver
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# MEMLINK_DENY_WARNINGS=1: fail on compiler and clippy warnings in our
# crates (those only seen on these targets; `cargo clippy -- -D warnings`
# covers Linux). Dependencies and the -Zbuild-std crates get --cap-lints, so
# only our code is affected.
if [[ ${MEMLINK_DENY_WARNINGS:-0} == 1 ]]; then
    export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-D warnings"
fi

failed=()
for t in "${TARGETS[@]}"; do
    echo "==> clippy: cargo check --target $t --workspace --all-targets (excluding the bridge outside Windows)"
    start=$SECONDS
    flags=${RUSTFLAGS:-}
    # The Zenoh bridge is built for Linux and Windows only; on the others
    # its Zenoh dependency tree would only add minutes to every run.
    exclude=()
    [[ $t == *-windows-gnu ]] || exclude=(--exclude memlink-bridge)
    if [[ $t == *-windows-gnu ]]; then
        # A known false positive on targets without native thread-locals: it
        # fires on `thread_local!` initializers that are already `const`
        # (rust-lang/rust-clippy#17566). Linux, which has them, still checks.
        flags="${flags:+$flags }-A clippy::missing_const_for_thread_local"
    fi
    if RUSTFLAGS=$flags /usr/bin/cargo check -Zbuild-std --target "$t" --target-dir "$TARGET_DIR" \
        --workspace "${exclude[@]}" --all-targets "$@" </dev/null; then
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

#!/usr/bin/env bash
# Build and test the Windows (x86_64-pc-windows-gnu) code on Linux, under Wine.
#
# Usage:
#   ci/windows-test.sh [test] [cargo-test-args...] [-- test-binary-args...]
#       Runs `cargo test -p memlink` for the Windows target under Wine (all of
#       the library's unit, integration and doc tests). Extra arguments are
#       passed through to `cargo test`; if they name a package themselves
#       (-p/--package/--workspace), `-p memlink` is not added.
#   ci/windows-test.sh run [cargo-run-args...] [-- program-args...]
#       `cargo run` for the Windows target under Wine; defaults to the CLI
#       (`-p memlink-cli`). Example: ci/windows-test.sh run -- demo
#   ci/windows-test.sh build [cargo-build-args...]
#       Just build (default: the whole workspace).
#   ci/windows-test.sh env
#       Print the environment to use for running things by hand.
#
# Needs (Debian 12): rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64
# (installed by .ci/run). Uses the Debian Rust toolchain (/usr/bin/cargo,
# /usr/bin/rustc, 1.96), because the standard library for the Windows target
# has to be built from source with -Zbuild-std (nothing can be downloaded by
# rustup here). The linker and the Wine runner come from .cargo/config.toml.
#
# Environment knobs:
#   MEMLINK_WIN_TARGET_DIR  cargo target dir   (default: <repo>/target/windows)
#   WINEPREFIX              Wine prefix        (default: <target dir>/wineprefix)
#   MEMLINK_WIN_TIMEOUT     seconds for the cargo command (default: 2700)
#   MEMLINK_WIN_KEEP_WINESERVER=1  leave the wineserver running at the end
#   MEMLINK_WINESERVER_PERSIST     seconds the server outlives its last process (60)
#   MEMLINK_DENY_WARNINGS=1 compiler warnings in our crates are errors
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

TARGET=x86_64-pc-windows-gnu
TARGET_DIR="${MEMLINK_WIN_TARGET_DIR:-$ROOT/target/windows}"
SHIM_SRC="$ROOT/ci/windows"
SHIM_DIR="$TARGET_DIR/shim"
SHIM_DLL="$SHIM_DIR/bcryptprimitives.dll"

DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
DEB_RUSTDOC=/usr/bin/rustdoc
MINGW_CC=x86_64-w64-mingw32-gcc
WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver

log() { printf '[windows-test] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

check_tools() {
    local missing=()
    [[ -x $DEB_CARGO ]] || missing+=("$DEB_CARGO (cargo-web)")
    [[ -x $DEB_RUSTC ]] || missing+=("$DEB_RUSTC (rustc-web)")
    [[ -d /usr/lib/rustlib/src/rust/library ]] || missing+=("/usr/lib/rustlib/src/rust (rust-web-src)")
    command -v "$MINGW_CC" >/dev/null || missing+=("$MINGW_CC (gcc-mingw-w64-x86-64)")
    [[ -x $WINE ]] || missing+=("$WINE (wine64)")
    [[ -x $WINESERVER ]] || WINESERVER="$(command -v wineserver || true)"
    [[ -n $WINESERVER && -x $WINESERVER ]] || missing+=("wineserver (libwine)")
    if ((${#missing[@]})); then
        die "missing: ${missing[*]}; install with: apt-get install rustc-web cargo-web rust-web-src gcc-mingw-w64-x86-64 wine64"
    fi
}

# ---------------------------------------------------------------- environment
setup_env() {
    mkdir -p "$TARGET_DIR" "$SHIM_DIR"
    TARGET_DIR="$(cd "$TARGET_DIR" && pwd)"
    SHIM_DIR="$TARGET_DIR/shim"
    SHIM_DLL="$SHIM_DIR/bcryptprimitives.dll"

    # Debian toolchain, with nightly features (-Zbuild-std) unlocked.
    export RUSTC_BOOTSTRAP=1
    export RUSTC="$DEB_RUSTC"
    export RUSTDOC="$DEB_RUSTDOC"
    # Rustup's wrappers must not redirect anything to the rustup toolchain.
    unset RUSTUP_TOOLCHAIN RUSTC_WRAPPER RUSTC_WORKSPACE_WRAPPER CARGO_BUILD_RUSTC_WRAPPER
    export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
    # MEMLINK_DENY_WARNINGS=1: fail on compiler warnings in our crates (those
    # only seen on this target; clippy -D warnings covers Linux). Dependencies
    # and the -Zbuild-std crates get --cap-lints, so only our code is affected.
    if [[ ${MEMLINK_DENY_WARNINGS:-0} == 1 ]]; then
        export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-D warnings"
    fi

    # Wine: own prefix (so a stale or interactive ~/.wine can't interfere),
    # quiet, no Mono/Gecko install dialogs, and our ProcessPrng shim preferred.
    export WINEPREFIX="${WINEPREFIX:-$TARGET_DIR/wineprefix}"
    export WINEDEBUG="${WINEDEBUG:--all}"
    # winedbg.exe=d: no crash debugger. With winedbg, a process that dies of
    # an unhandled exception (e.g. an access violation a test provokes on
    # purpose) exits with 0xC0000354 (STATUS_DEBUGGER_INACTIVE) after a long
    # crash dump, instead of the exception code (0xC0000005) as on Windows.
    export WINEDLLOVERRIDES="mscoree,mshtml=;bcryptprimitives=n,b;winedbg.exe=d${WINEDLLOVERRIDES:+;$WINEDLLOVERRIDES}"
    export WINEARCH=win64
    # WINEPATH is prepended to the Windows PATH of every Wine process and is
    # inherited by the processes they spawn, so the shim DLL is found by test
    # binaries in deps/, binaries in debug/, doctest binaries in /tmp, and
    # anything they start (current_exe(), CARGO_BIN_EXE_*).
    local shim_win
    shim_win="Z:${SHIM_DIR//\//\\}"
    export WINEPATH="$shim_win${WINEPATH:+;$WINEPATH}"
    # No X display needed (and none wanted: no dialogs).
    unset DISPLAY WAYLAND_DISPLAY
}

# ------------------------------------------------------------------ shim DLL
build_shim() {
    if [[ -f $SHIM_DLL && $SHIM_DLL -nt $SHIM_SRC/bcryptprimitives.c && $SHIM_DLL -nt $SHIM_SRC/bcryptprimitives.def ]]; then
        return
    fi
    log "building $SHIM_DLL"
    "$MINGW_CC" -O2 -Wall -Wextra -shared -static-libgcc \
        -o "$SHIM_DLL.tmp" \
        "$SHIM_SRC/bcryptprimitives.c" "$SHIM_SRC/bcryptprimitives.def" -ladvapi32
    mv -f "$SHIM_DLL.tmp" "$SHIM_DLL"
}

# The seeds' two programs as a UNICODE build makes them (ci/windows/seedmap.c),
# for the CLI's tests/seeds.rs, which finds it through MEMLINK_SEEDMAP.
SEEDMAP_SRC="$ROOT/ci/windows/seedmap.c"
build_seedmap() {
    local exe="$SHIM_DIR/seedmap.exe"
    export MEMLINK_SEEDMAP="Z:${exe//\//\\}"
    if [[ -f $exe && $exe -nt $SEEDMAP_SRC ]]; then
        return
    fi
    log "building $exe"
    "$MINGW_CC" -O2 -Wall -Wextra -Werror -DUNICODE -D_UNICODE -o "$exe.tmp" "$SEEDMAP_SRC"
    mv -f "$exe.tmp" "$exe"
}

# Belt and braces: also put the shim next to the built .exe files (some code
# copies/loads DLLs relative to the exe dir, and `wine foo.exe` run by hand
# without WINEPATH then still works).
place_shim() {
    local d
    for d in debug debug/deps debug/examples release release/deps release/examples; do
        if [[ -d $TARGET_DIR/$TARGET/$d ]]; then
            cp -f "$SHIM_DLL" "$TARGET_DIR/$TARGET/$d/" 2>/dev/null || true
        fi
    done
}

# --------------------------------------------------------------------- Wine
# How long our wineserver outlives its last Windows process. It is stopped
# explicitly (stop_wine) at the end; this only bounds how long a server from a
# run that was SIGKILLed lingers. (A plain `wineserver -p` lives forever, and
# `wineserver -w` on it waits forever.)
WINESERVER_PERSIST="${MEMLINK_WINESERVER_PERSIST:-60}"
WINESERVER_STARTED=0

start_wine() {
    # Start the wineserver ourselves, detached from our stdout/stderr, then a
    # first Windows process with stdio on /dev/null: that one starts the
    # prefix's services (services.exe, winedevice.exe, ...), which otherwise
    # would inherit the first test's stdout and could hold a caller's pipe
    # open until the server exits.
    mkdir -p "$WINEPREFIX"
    WINESERVER_STARTED=1
    "$WINESERVER" -p"$WINESERVER_PERSIST" </dev/null >/dev/null 2>&1 || true
    # Bump PREFIX_CONFIG when changing what is configured below, so existing
    # prefixes are reconfigured.
    local PREFIX_CONFIG="memlink-ci-1 win10"
    if [[ ! -f $WINEPREFIX/system.reg || "$(cat "$WINEPREFIX/.memlink-ci" 2>/dev/null)" != "$PREFIX_CONFIG" ]]; then
        log "initialising Wine prefix $WINEPREFIX"
        local t0=$SECONDS
        if ! {
            timeout 300 "$WINE" wineboot --init &&
                # Report Windows 10 (Wine 8 defaults to Windows 7; Rust's
                # x86_64-pc-windows-gnu target requires Windows 10).
                timeout 120 "$WINE" reg add 'HKCU\Software\Wine' /v Version /d win10 /f
        } </dev/null >"$TARGET_DIR/wineboot.log" 2>&1; then
            cat "$TARGET_DIR/wineboot.log" >&2 || true
            die "initialising the Wine prefix (wineboot --init) failed"
        fi
        # Restart the server so the registry is on disk (it is flushed when
        # the server stops) before the prefix is stamped as configured.
        timeout 30 "$WINESERVER" -k </dev/null >/dev/null 2>&1 || true
        timeout 30 "$WINESERVER" -w </dev/null >/dev/null 2>&1 || true
        "$WINESERVER" -p"$WINESERVER_PERSIST" </dev/null >/dev/null 2>&1 || true
        printf '%s\n' "$PREFIX_CONFIG" >"$WINEPREFIX/.memlink-ci"
        log "Wine prefix ready after $((SECONDS - t0)) s"
    fi
    timeout 120 "$WINE" cmd /c exit 0 </dev/null >/dev/null 2>&1 ||
        log "warning: warm-up process under Wine failed"
}

stop_wine() {
    if ((WINESERVER_STARTED)) && [[ ${MEMLINK_WIN_KEEP_WINESERVER:-0} != 1 ]]; then
        WINESERVER_STARTED=0
        # -k kills every process of this prefix and the server (flushing the
        # registry); -w then waits for it to be gone. Both bounded.
        timeout 30 "$WINESERVER" -k </dev/null >/dev/null 2>&1 || true
        timeout 30 "$WINESERVER" -w </dev/null >/dev/null 2>&1 || true
    fi
}

# ------------------------------------------------------------------- cargo
has_pkg_arg() {
    local a
    for a in "$@"; do
        case "$a" in
            --) return 1 ;;
            -p | -p* | --package | --package=* | --workspace | --all) return 0 ;;
        esac
    done
    return 1
}
has_target_sel() {
    local a
    for a in "$@"; do
        case "$a" in
            --) return 1 ;;
            -p | -p* | --package | --package=* | --bin | --bin=* | --example | --example=*) return 0 ;;
        esac
    done
    return 1
}

cargo_win() {
    local sub="$1"
    shift
    local timeout_s="${MEMLINK_WIN_TIMEOUT:-2700}"
    local rc=0
    # --foreground: stay in the caller's process group so Ctrl-C / a group
    # kill reaches cargo; Windows processes left over are killed by stop_wine.
    timeout --foreground --kill-after=30 "$timeout_s" \
        "$DEB_CARGO" "$sub" -Zbuild-std --target "$TARGET" --target-dir "$TARGET_DIR" "$@" </dev/null || rc=$?
    if ((rc == 124)); then
        log "error: cargo $sub timed out after ${timeout_s}s"
    fi
    return "$rc"
}

main() {
    local mode=test
    case "${1:-}" in
        test | run | build | env) mode="$1"; shift ;;
    esac

    check_tools
    setup_env

    if [[ $mode == env ]]; then
        for v in RUSTC_BOOTSTRAP RUSTC RUSTDOC WINEPREFIX WINEDEBUG WINEDLLOVERRIDES WINEARCH WINEPATH; do
            printf 'export %s=%q\n' "$v" "${!v}"
        done
        printf '# cargo: %s <cmd> -Zbuild-std --target %s --target-dir %q\n' "$DEB_CARGO" "$TARGET" "$TARGET_DIR"
        return 0
    fi

    build_shim
    build_seedmap

    if [[ $mode == build ]]; then
        local args=("$@")
        has_pkg_arg "$@" || args=(--workspace "${args[@]}")
        cargo_win build "${args[@]}"
        place_shim
        return 0
    fi

    trap stop_wine EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    trap 'exit 129' HUP

    local rc=0
    if [[ $mode == test ]]; then
        local args=("$@")
        has_pkg_arg "$@" || args=(-p memlink "${args[@]}")
        local no_run=0 a
        for a in "${args[@]}"; do
            [[ $a == -- ]] && break
            [[ $a == --no-run ]] && no_run=1
        done
        # Build first (no Wine needed), then start Wine and run the tests.
        if ((no_run)); then
            cargo_win test "${args[@]}" || rc=$?
            place_shim
            return "$rc"
        fi
        cargo_win test --no-run "${args[@]}" || rc=$?
        if ((rc == 0)); then
            place_shim
            start_wine
            log "running tests under Wine ($("$WINE" --version 2>/dev/null || echo wine))"
            cargo_win test "${args[@]}" || rc=$?
        fi
    else
        local args=("$@")
        has_target_sel "$@" || args=(-p memlink-cli "${args[@]}")
        # Split at `--`: build with the cargo args, then run.
        local cargo_args=() a
        for a in "${args[@]}"; do
            [[ $a == -- ]] && break
            cargo_args+=("$a")
        done
        cargo_win build "${cargo_args[@]}" || rc=$?
        if ((rc == 0)); then
            place_shim
            start_wine
            cargo_win run "${args[@]}" || rc=$?
        fi
    fi
    return "$rc"
}

main "$@"

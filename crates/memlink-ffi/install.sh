#!/usr/bin/env bash
# Installs the C library: lib/libmemlink.so, lib/libmemlink.a,
# include/memlink.h and lib/pkgconfig/memlink.pc under a prefix.
#
#   crates/memlink-ffi/install.sh [--prefix DIR] [--from DIR]
#
# --prefix  where to install (default /usr/local)
# --from    where the built libraries are (default: build them with
#           `cargo build --release -p memlink-ffi` and use target/release)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prefix=/usr/local
from=
while (($#)); do
    case "$1" in
        --prefix) prefix="$2"; shift 2 ;;
        --from) from="$2"; shift 2 ;;
        *) echo "usage: $0 [--prefix DIR] [--from DIR]" >&2; exit 2 ;;
    esac
done
if [[ -z $from ]]; then
    (cd "$here/../.." && cargo build --release -p memlink-ffi)
    from="$here/../../target/release"
fi
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/../../Cargo.toml" | head -1)"

install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 0755 "$from/libmemlink.so" "$prefix/lib/"
install -m 0644 "$from/libmemlink.a" "$prefix/lib/"
install -m 0644 "$here/include/memlink.h" "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/memlink.pc.in" >"$prefix/lib/pkgconfig/memlink.pc"
echo "installed memlink $version under $prefix"

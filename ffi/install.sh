#!/bin/sh
# Build libmcp_oauth (release) and install it with its headers and a
# pkg-config file:
#   ffi/install.sh [--prefix DIR] [--libdir DIR] [--no-build]
# Default prefix /usr/local. Installs:
#   LIBDIR/libmcp_oauth.so, LIBDIR/libmcp_oauth.a, LIBDIR/pkgconfig/mcp_oauth.pc,
#   PREFIX/include/mcp_oauth.h, PREFIX/include/mcp_oauth.hpp
# Then: cc app.c $(pkg-config --cflags --libs mcp_oauth)          (shared)
#       cc app.c $(pkg-config --cflags --libs --static mcp_oauth) (with libmcp_oauth.a;
#       pass -l:libmcp_oauth.a or remove the .so to force it)
# Before 1.0 there is no ABI stability: rebuild programs against each release.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
prefix=/usr/local
libdir=
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --libdir) libdir=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$libdir" ] || libdir="$prefix/lib"
if [ "$build" = 1 ]; then
    (cd "$root" && cargo build --release -p mcp-oauth-client-ffi)
fi
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
# The system libraries the static library needs (rustc --print native-static-libs).
libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
install -d "$libdir/pkgconfig" "$prefix/include"
install -m 0755 "$root/target/release/libmcp_oauth.so" "$libdir/"
install -m 0644 "$root/target/release/libmcp_oauth.a" "$libdir/"
install -m 0644 "$root/include/mcp_oauth.h" "$root/include/mcp_oauth.hpp" "$prefix/include/"
sed -e "s|@PREFIX@|$prefix|" -e "s|@LIBDIR@|$libdir|" -e "s|@VERSION@|$version|" \
    -e "s|@LIBS_PRIVATE@|$libs_private|" "$here/mcp_oauth.pc.in" >"$libdir/pkgconfig/mcp_oauth.pc"
echo "installed libmcp_oauth $version in $libdir, headers in $prefix/include"
echo "  PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs mcp_oauth"

#!/bin/sh
# Build libmcp_oauth and install it with its headers, a pkg-config file and a
# CMake package:
#   ffi/install.sh [--prefix DIR] [--libdir DIR] [--profile release|debug] [--no-build]
# Default prefix /usr/local, profile release. Installs:
#   LIBDIR/libmcp_oauth.so.X.Y.Z, with the links libmcp_oauth.so.X.Y (the
#     soname: before 1.0 every minor release may break the ABI) and libmcp_oauth.so;
#   LIBDIR/libmcp_oauth.a;
#   LIBDIR/pkgconfig/mcp_oauth.pc;
#   LIBDIR/cmake/mcp_oauth/mcp_oauth-config.cmake (and -config-version.cmake);
#   PREFIX/include/mcp_oauth.h, PREFIX/include/mcp_oauth.hpp.
# Then:  cc app.c $(pkg-config --cflags --libs mcp_oauth)          (shared)
#        cc app.c $(pkg-config --cflags --libs --static mcp_oauth) (with libmcp_oauth.a;
#        pass -l:libmcp_oauth.a or remove the .so to force it)
#   or, in CMake: find_package(mcp_oauth 0.1 REQUIRED)
#                 target_link_libraries(app PRIVATE mcp_oauth::mcp_oauth)   (or mcp_oauth::mcp_oauth_static)
# The library is taken from cargo's target directory ($CARGO_TARGET_DIR when set).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
prefix=/usr/local
libdir=
profile=release
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) prefix=$2; shift 2 ;;
        --libdir) libdir=$2; shift 2 ;;
        --profile) profile=$2; shift 2 ;;
        --no-build) build=0; shift ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case "$profile" in
    release) cargo_profile=--release ;;
    debug) cargo_profile= ;;
    *) echo "install.sh: --profile is release or debug" >&2; exit 2 ;;
esac
[ -n "$libdir" ] || libdir="$prefix/lib"
if [ "$build" = 1 ]; then
    # shellcheck disable=SC2086
    (cd "$root" && cargo build $cargo_profile -p mcp-oauth-client-ffi)
fi
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
built="$target_dir/$profile"
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -1)
soversion=$(echo "$version" | cut -d. -f1,2)
# The system libraries the static library needs (rustc --print native-static-libs).
libs_private="-lgcc_s -lutil -lrt -lpthread -lm -ldl -lc"
install -d "$libdir/pkgconfig" "$libdir/cmake/mcp_oauth" "$prefix/include"
install -m 0755 "$built/libmcp_oauth.so" "$libdir/libmcp_oauth.so.$version"
ln -sf "libmcp_oauth.so.$version" "$libdir/libmcp_oauth.so.$soversion"
ln -sf "libmcp_oauth.so.$soversion" "$libdir/libmcp_oauth.so"
install -m 0644 "$built/libmcp_oauth.a" "$libdir/"
install -m 0644 "$root/include/mcp_oauth.h" "$root/include/mcp_oauth.hpp" "$prefix/include/"
subst() {
    sed -e "s|@PREFIX@|$prefix|g" -e "s|@LIBDIR@|$libdir|g" -e "s|@VERSION@|$version|g" \
        -e "s|@SOVERSION@|$soversion|g" -e "s|@LIBS_PRIVATE@|$libs_private|g" "$1" >"$2"
}
subst "$here/mcp_oauth.pc.in" "$libdir/pkgconfig/mcp_oauth.pc"
subst "$here/mcp_oauth-config.cmake.in" "$libdir/cmake/mcp_oauth/mcp_oauth-config.cmake"
subst "$here/mcp_oauth-config-version.cmake.in" "$libdir/cmake/mcp_oauth/mcp_oauth-config-version.cmake"
echo "installed libmcp_oauth $version ($profile) in $libdir, headers in $prefix/include"
echo "  PKG_CONFIG_PATH=$libdir/pkgconfig pkg-config --cflags --libs mcp_oauth"
echo "  cmake -DCMAKE_PREFIX_PATH=$prefix ...   (find_package(mcp_oauth))"

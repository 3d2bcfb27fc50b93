#!/usr/bin/env bash
# Checks, without a Swift toolchain, that clang imports the module map
# (Sources/CMcpOAuth/module.modulemap) as the module CMcpOAuth, in C11 and C23
# modes, with what the Swift wrapper uses visible through it. Needs clang.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
command -v clang >/dev/null || { echo "check.sh: clang is not installed" >&2; exit 1; }
cache="$(mktemp -d)"
trap 'rm -rf "$cache"' EXIT
for std in gnu11 gnu2x; do
    clang -x objective-c -std="$std" -fmodules -fmodules-cache-path="$cache" -fsyntax-only -Werror \
        -fmodule-map-file="$here/Sources/CMcpOAuth/module.modulemap" "$here/check/import.m"
    echo "ok - clang imports the module map as CMcpOAuth (-std=$std)"
done

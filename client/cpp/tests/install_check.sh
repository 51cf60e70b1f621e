#!/usr/bin/env bash
# Installs the C++ client package (cmake --install BUILD --component client) into a
# temporary prefix and builds and runs a consumer project that finds it with
# find_package(mailpool CONFIG REQUIRED).
# Usage: install_check.sh BUILD_DIR CONSUMER_SOURCE_DIR CONSUMER_BUILD_DIR
set -euo pipefail
build=$1
consumer=$2
consumer_build=$3
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --component client --prefix "$prefix" >/dev/null
test -f "$prefix/include/mailpool/client.h"
test -f "$prefix/include/mailpool/v1/session.pb.h"
test -f "$prefix/lib/cmake/mailpool/mailpoolConfig.cmake" ||
  test -f "$prefix"/lib/*/cmake/mailpool/mailpoolConfig.cmake
rm -rf "$consumer_build"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$consumer" -B "$consumer_build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" "${launcher[@]}" >/dev/null
nice cmake --build "$consumer_build" >/dev/null
"$consumer_build/consumer"
echo "installed package used by a consumer project: ok"

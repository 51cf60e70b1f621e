#!/usr/bin/env bash
# Configures and builds mailpool with CMake + Ninja (+ ccache) into build/ (or $BUILD_DIR).
# Usage: scripts/build.sh [extra cmake -D options...]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
jobs=${MAILPOOL_JOBS:-2}
cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=${BUILD_TYPE:-RelWithDebInfo} "$@" >/dev/null
ninja -C "$build_dir" -j"$jobs"

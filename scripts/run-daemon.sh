#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is needed, build, run mailpoold.
# The daemon needs no configuration: it listens on 127.0.0.1:50551 with built-in defaults.
# Any arguments are passed to mailpoold (see `build/daemon/mailpoold --help`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh" --build-only
MAILPOOL_BUILD_TESTS=OFF "$root/scripts/build.sh" -DMAILPOOL_BUILD_TESTS=OFF
exec "${BUILD_DIR:-$root/build}/daemon/mailpoold" "$@"

#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is needed, build, run mailpoold.
# The daemon needs no configuration: it listens on 127.0.0.1:50551 with built-in defaults.
# Any arguments are passed to mailpoold (see `build/daemon/mailpoold --help`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/install-deps.sh" --build-only
MAILPOOL_BUILD_TESTS=OFF "$root/scripts/build.sh" -DMAILPOOL_BUILD_TESTS=OFF
# Without a --listen of the caller's own: loopback TCP and a Unix socket (mode 0600, callers
# identified by their Unix user) in $XDG_RUNTIME_DIR/mailpool/, or /run/mailpool/ as root.
listen=()
if ! printf '%s\n' "$@" | grep -q -- '^--listen='; then
  if [ "$(id -u)" = 0 ]; then sockdir=/run/mailpool; else sockdir=${XDG_RUNTIME_DIR:-/tmp/mailpool-$(id -u)}/mailpool; fi
  mkdir -p "$sockdir" && chmod 0755 "$sockdir"
  listen=("--listen=127.0.0.1:50551,unix:$sockdir/mailpoold.sock")
  echo "mailpoold: listening on 127.0.0.1:50551 and unix:$sockdir/mailpoold.sock" >&2
fi
exec "${BUILD_DIR:-$root/build}/daemon/mailpoold" "${listen[@]}" "$@"

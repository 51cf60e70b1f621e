#!/usr/bin/env bash
# Runs the benchmarks against freshly started test mail servers.
# Usage: scripts/bench.sh [SESSIONS] [STARTS_PER_MODE]
#   SEND_MESSAGES=N (default 300): messages per measurement of send_bench
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
scripts/install-deps.sh
scripts/build.sh -DMAILPOOL_BUILD_TESTS=ON >/dev/null
servers=$(mktemp -d /tmp/mailpool-bench.XXXXXX)
trap 'scripts/testservers.sh stop "$servers" >/dev/null 2>&1 || true' EXIT
scripts/testservers.sh start "$servers" >/dev/null
set -a
. "$servers/env"
set +a
"${BUILD_DIR:-build}/tests/bench/session_bench" "$@" 2> >(grep -v 'event=' >&2)
# IMAP mailbox: small read, 2,000 headers, 20 MB stream, each beside raw IMAP.
"${BUILD_DIR:-build}/tests/bench/imap_mailbox_bench" 2> >(grep -v 'event=' >&2)
"${BUILD_DIR:-build}/tests/bench/send_bench" "${SEND_MESSAGES:-300}" 2> >(grep -v 'event=' >&2)
"${BUILD_DIR:-build}/tests/bench/callers_bench" 2> >(grep -v 'event=' >&2)

#!/usr/bin/env bash
# One command on a fresh Debian 12 machine: install what is needed, build, start the real
# test mail servers (Dovecot + Postfix on loopback), and run every test. Prints a final
# "N passed, N failed" line; exits non-zero when anything failed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build_dir=${BUILD_DIR:-$root/build}
export BUILD_DIR=$build_dir

step() { printf '\n== %s\n' "$*"; }

step "installing dependencies"
scripts/install-deps.sh || { echo "dependency install failed"; echo "0 passed, 1 failed"; exit 1; }

step "proto lint (buf, STANDARD rules)"
lint_failed=0
scripts/lint-proto.sh || lint_failed=1

step "building"
scripts/build.sh -DMAILPOOL_BUILD_TESTS=ON || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

step "starting test mail servers"
servers=$(mktemp -d /tmp/mailpool-servers.XXXXXX)
cleanup() { scripts/testservers.sh stop "$servers" >/dev/null 2>&1 || true; }
trap cleanup EXIT
scripts/testservers.sh start "$servers" >/dev/null || {
  echo "test servers failed to start"; echo "0 passed, 1 failed"; exit 1; }
set -a
. "$servers/env"
set +a
# Daemons the tests start without --outbox_path keep their outbox here, not in $HOME.
export XDG_STATE_HOME="$servers/state"

step "running tests"
ctest_log=$build_dir/ctest.log
(cd "$build_dir" && ctest --output-on-failure -j"${MAILPOOL_JOBS:-2}" --timeout 300) 2>&1 |
  tee "$ctest_log"
summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$ctest_log" | tail -1)
total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
failed=$(sed -E 's/.* ([0-9]+) tests failed.*/\1/' <<<"$summary")
if [ -z "$summary" ]; then total=0; failed=1; fi
failed=$((failed + lint_failed))
passed=$((total - (failed - lint_failed) + (1 - lint_failed)))
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

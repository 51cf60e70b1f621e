#!/usr/bin/env bash
# CI entry point: installs the locked dependencies when missing or stale (npm ci), checks
# the TypeScript declarations, then runs the tests against a private mailpoold.
# Usage: test/run.sh MAILPOOLD
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v node >/dev/null || { echo "node not found (scripts/install-deps.sh)"; exit 1; }
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/tsc --noEmit -p test/tsconfig.json
echo "TypeScript declarations: ok"
MAILPOOLD=$1 node --test test/fake-server.test.js test/connect.test.js test/client.test.js test/auth.test.js

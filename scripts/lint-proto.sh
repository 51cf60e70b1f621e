#!/usr/bin/env bash
# Lints the mailpool.v1 API contract (proto/) with buf, STANDARD rules (proto/buf.yaml).
# Usage: scripts/lint-proto.sh [extra `buf lint` arguments, e.g. --error-format=json]
# Installs the pinned buf into tools/buf/node_modules (npm ci) when it is missing.
# Exits non-zero on any finding.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
buf="$root/tools/buf/node_modules/.bin/buf"

if [ ! -x "$buf" ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "lint-proto: npm is needed to install buf (scripts/install-deps.sh installs it)" >&2
    exit 2
  fi
  echo "lint-proto: installing buf (npm ci in tools/buf)" >&2
  (cd "$root/tools/buf" && npm ci --no-audit --no-fund --loglevel=error)
fi

cd "$root/proto"
"$buf" lint "$@"
echo "lint-proto: clean" >&2

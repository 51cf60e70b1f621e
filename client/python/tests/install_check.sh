#!/usr/bin/env bash
# pip-installs client/python (a copy, so the source tree stays clean) into a throwaway
# venv that sees Debian's python3-grpcio/python3-protobuf, offline, and imports it.
# Usage: install_check.sh PYTHON3 REPO_ROOT
set -euo pipefail
python=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/client/python" "$work/src"
rm -rf "$work/src/mailpool/v1" "$work/src/mailpool/_rpc" "$work/src/build" "$work/src"/*.egg-info
"$python" -m venv --system-site-packages "$work/venv"
MAILPOOL_PROTO_DIR=$root/proto "$work/venv/bin/pip" install --quiet --no-index \
  --no-build-isolation "$work/src"
cd "$work"
"$work/venv/bin/python" - <<'PY'
import mailpool, mailpool.types as t
from mailpool.v1 import session_pb2_grpc
assert "site-packages" in mailpool.__file__, mailpool.__file__
assert t.SessionInfo.DESCRIPTOR.full_name == "mailpool.v1.Session"
print("installed", mailpool.__version__, "from", mailpool.__file__)
PY

#!/usr/bin/env bash
# The Python package builds where Debian's grpc_python_plugin is absent: an sdist made from
# the source tree (stubs generated with the plugin) ships the stubs, and a wheel built from
# that sdist with neither protoc, grpc_python_plugin nor grpcio-tools reachable installs and
# imports (blocking client, mailpool.aio, the stubs). Offline: Debian's grpcio/protobuf.
# Usage: wheel_check.sh PYTHON3 REPO_ROOT
set -euo pipefail
python=$1
root=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$root/client/python" "$work/src"
rm -rf "$work/src/mailpool/v1" "$work/src/mailpool/_rpc" "$work/src/build" "$work/src"/*.egg-info
(cd "$work/src" && MAILPOOL_PROTO_DIR=$root/proto "$python" setup.py -q sdist -d "$work/dist") \
  >"$work/sdist.log" 2>&1 || { cat "$work/sdist.log"; exit 1; }
sdist=$(ls "$work"/dist/mailpool-*.tar.gz)
tar tzf "$sdist" >"$work/sdist.list"
grep -q '/mailpool/v1/session_pb2_grpc.py$' "$work/sdist.list" || { echo "sdist lacks the stubs"; exit 1; }
if grep -q '/proto/' "$work/sdist.list"; then echo "sdist ships proto/ (it would regenerate)"; exit 1; fi
"$python" -m venv --system-site-packages "$work/venv"
# From here on: no protoc, no grpc_python_plugin on PATH (only the venv and a few tools),
# and no grpcio-tools.
mkdir "$work/bin"
for t in cat grep gzip ls mkdir rm tar; do ln -s "$(command -v "$t")" "$work/bin/$t"; done
export PATH=$work/venv/bin:$work/bin
unset PROTOC MAILPOOL_GRPC_PYTHON_PLUGIN MAILPOOL_PROTO_DIR
if python -c 'import grpc_tools' 2>/dev/null; then echo "grpcio-tools is importable here"; exit 1; fi
if (cd "$work/src" && python generate_stubs.py "$work/gen") >"$work/gen.log" 2>&1; then
  echo "the stubs could still be generated: the check would prove nothing"; exit 1
fi
grep -q 'needs protoc and grpc_python_plugin' "$work/gen.log" || { cat "$work/gen.log"; exit 1; }
mkdir "$work/unpacked"
tar xzf "$sdist" -C "$work/unpacked"
cd "$work/unpacked"/mailpool-*
pip wheel --quiet --no-index --no-deps --no-build-isolation -w "$work/wheels" . \
  >"$work/wheel.log" 2>&1 || { cat "$work/wheel.log"; exit 1; }
wheel=$(ls "$work"/wheels/mailpool-*.whl)
pip install --quiet --no-index --no-deps "$wheel"
cd "$work"
python - <<'PY'
import mailpool, mailpool.aio
from mailpool.v1 import session_pb2_grpc, mailbox_pb2
assert "site-packages" in mailpool.__file__, mailpool.__file__
assert mailbox_pb2.DESCRIPTOR.package == "mailpool.v1"
assert hasattr(session_pb2_grpc, "SessionServiceStub")
print("wheel without the protoc plugin:", mailpool.__version__, "from", mailpool.__file__)
PY

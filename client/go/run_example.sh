#!/usr/bin/env bash
# Generates the Go stubs of proto/mailpool/v1 (protoc-gen-go + protoc-gen-go-grpc), builds
# example/main.go against Debian's Go packages in GOPATH mode (no module proxy needed:
# golang-google-grpc-dev, golang-google-protobuf-dev, golang-google-genproto-dev under
# /usr/share/gocode) and runs it with the caller's environment (MAILPOOL_ADDR, MAIL_* or
# MAILPOOL_TEST_*). Usage: client/go/run_example.sh [WORK_DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
for tool in go protoc protoc-gen-go protoc-gen-go-grpc; do
  command -v "$tool" >/dev/null || { echo "run_example: $tool not found (scripts/install-deps.sh)" >&2; exit 2; }
done
work=${1:-}
if [ -z "$work" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
gopath=$work/gopath
mkdir -p "$gopath/src/mailpool.dev/example" "$work/cache"
protoc -I"$root/proto" --go_out="$gopath/src" --go-grpc_out="$gopath/src" \
  "$root"/proto/mailpool/v1/*.proto
cp "$here/example/main.go" "$gopath/src/mailpool.dev/example/"
(cd "$gopath/src/mailpool.dev/example" &&
  GO111MODULE=off GOPATH=$gopath:/usr/share/gocode GOCACHE=$work/cache GOFLAGS= \
    go build -o "$work/mailpool-go-example" .)
"$work/mailpool-go-example"

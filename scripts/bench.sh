#!/usr/bin/env bash
# Runs the benchmarks against freshly started test mail servers and writes BENCHMARKS.md
# (or $BENCH_OUT): the machine, versions, load average, then each benchmark's figures
# (medians and ranges over the rounds, ratios against baselines measured in the same run).
# Usage: scripts/bench.sh [SESSIONS] [STARTS_PER_MODE]
#   SEND_MESSAGES=N (default 300): messages per measurement of send_bench
#   ROUNDS=N (default 5): rounds of outbox_bench, floor_bench and rpc_bench
#   SKIP_BUILD=1: use the binaries already in ${BUILD_DIR:-build}
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build}
out=${BENCH_OUT:-$root/BENCHMARKS.md}
rounds=${ROUNDS:-5}
if [[ -z "${SKIP_BUILD:-}" ]]; then
  scripts/install-deps.sh
  scripts/build.sh -DMAILPOOL_BUILD_TESTS=ON >/dev/null
fi
servers=$(mktemp -d /tmp/mailpool-bench.XXXXXX)
body=$(mktemp /tmp/mailpool-bench-body.XXXXXX)
trap 'scripts/testservers.sh stop "$servers" >/dev/null 2>&1 || true; rm -f "$body"' EXIT
scripts/testservers.sh start "$servers" >/dev/null
set -a
. "$servers/env"
set +a

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
# One benchmark: its output to the terminal and, in a fenced block, to the report.
run() {
  local title=$1
  shift
  echo "== $title: $*"
  {
    echo
    echo "### $title"
    echo
    echo "\`$* \` (load before: $(cut -d' ' -f1-3 /proc/loadavg))"
    echo
    echo '```'
  } >>"$body"
  "$@" 2> >(grep -v 'event=' >&2) | tee -a "$body"
  echo '```' >>"$body"
}
b="$build/tests/bench"
run "Outbox group commit (asynchronous sends accepted, 1 and 32 callers)" \
  "$b/outbox_bench" 1000 "$rounds"
run "Wire floor: warm reads over IMAP and POP3, the gRPC floor, SMTP against smtp-source" \
  "$b/floor_bench" 200 "$rounds" 2000
run "Trivial RPCs (GetSession, 32 callers)" "$b/rpc_bench" 20000 "$rounds"
run "IMAP mailbox (small read, 2,000 headers, 20 MB stream) beside raw IMAP" \
  "$b/imap_mailbox_bench"
run "Sending (synchronous and asynchronous, one warm session)" \
  "$b/send_bench" "${SEND_MESSAGES:-300}"
run "Session starts and memory per idle session" "$b/session_bench" "$@"
run "Callers (token authentication per call, message budget)" "$b/callers_bench"

cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
{
  echo "# mailpool benchmarks"
  echo
  echo "Written by \`scripts/bench.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'), commit" \
    "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')."
  echo "Rerun: \`scripts/bench.sh\` (ROUNDS=$rounds). Each figure is measured beside its baseline"
  echo "in the same run against the same freshly started Dovecot/Postfix on loopback; rounds"
  echo "alternate between the two sides. Medians over the rounds, ranges min..max of the rounds."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $cpu, $(nproc) cores; memory $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
  echo "- Kernel: $(uname -sr); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- Load average (1, 5, 15 min): $load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after"
  echo "- Build: ${BUILD_TYPE:-RelWithDebInfo}, $(c++ --version | head -1)"
  echo "- Versions: Dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1)," \
    "Postfix $(postconf -d -h mail_version 2>/dev/null || echo "?"), $(openssl version | cut -d' ' -f1-2)," \
    "gRPC $(pkg-config --modversion grpc++ 2>/dev/null || echo '?')," \
    "protobuf $(pkg-config --modversion protobuf 2>/dev/null || echo '?')," \
    "SQLite $(pkg-config --modversion sqlite3 2>/dev/null || echo '?')"
  echo
  echo "## Results"
  cat "$body"
} >"$out"
echo "wrote $out"

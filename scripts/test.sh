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
cleanup() {
  scripts/second-servers.sh stop "$servers/second" >/dev/null 2>&1 || true
  scripts/testservers.sh stop "$servers" >/dev/null 2>&1 || true
}
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

# Counts "passed failed" from a ctest log; a log without a summary is one failure.
count() {
  local summary total failed
  summary=$(grep -E '^[0-9]+% tests passed, [0-9]+ tests failed out of [0-9]+' "$1" | tail -1)
  [ -n "$summary" ] || { echo "0 1"; return; }
  total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
  failed=$(sed -E 's/.* ([0-9]+) tests failed.*/\1/' <<<"$summary")
  echo "$((total - failed)) $failed"
}
read -r passed failed < <(count "$ctest_log")

# Each client README's example block is its example file's, and each example runs against a
# real daemon and the test servers (~15 s, most of it building the Go example).
step "README examples (CLI, Python, Node, C++, Go)"
rx_log=$build_dir/readme-examples.log
/usr/bin/python3 client/readme_examples.py "$build_dir" 2>&1 | tee "$rx_log"
rx_summary=$(grep -E '^readme examples: [0-9]+ passed, [0-9]+ failed$' "$rx_log" | tail -1)
if [ -n "$rx_summary" ]; then
  read -r rx_passed rx_failed < <(sed -E 's/^readme examples: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$rx_summary")
else
  rx_passed=0 rx_failed=1
fi

# The IMAP mailbox and send tests again against second implementations (GNU Mailutils
# imap4d, aiosmtpd; scripts/second-servers.sh). Left out, with the reason (each is in the
# README's "Not done yet" or a filed issue): on imap4d, Folders... (imap4d creates no Sent,
# Trash, Drafts, Junk, and shows a message appended to the selected folder only to a new
# SELECT, so without UIDPLUS AppendMessage there answers no ID), Searches... (imap4d takes "{3+}" inside a quoted string as a
# literal and waits), Flags... (no \* in PERMANENTFLAGS: new keywords refused), and
# three tests where another client changes the mailbox (imap4d reports new messages only on NOOP, so the
# daemon's selected folder looks unchanged).
step "IMAP mailbox and send tests against imap4d and aiosmtpd"
second=$servers/second
second_passed=0 second_failed=0
imap4d_skip="*FoldersWithAwkwardNames*:*SearchesWithNonAsciiTerms*:*FlagsCopyMoveAppend*"
imap4d_skip+=":*PagesStayStable*:*OldIdsFailClearly*:*WatchSeesAnotherClients*"
if scripts/second-servers.sh start "$second" "$servers" >/dev/null; then
  for t in "imap_mailbox_itest -$imap4d_skip" "send_itest *"; do
    read -r bin filter <<<"$t"
    log=$build_dir/second-$bin.log
    (set -a; . "$second/env"; set +a
      "$build_dir/tests/integration/$bin" --gtest_filter="$filter") >"$log" 2>&1
    p=$(sed -nE 's/^\[  PASSED  \] ([0-9]+) tests?\./\1/p' "$log" | tail -1)
    f=$(sed -nE 's/^ *([0-9]+) FAILED TESTS?$/\1/p' "$log" | tail -1)
    if [ -z "$p" ] && [ -z "$f" ]; then f=1; fi  # crashed before its summary
    echo "second servers, $bin: ${p:-0} passed, ${f:-0} failed (log $log)"
    grep -E '^\[  FAILED  \] [A-Za-z0-9_]+\.[A-Za-z0-9_]+$' "$log" || true
    second_passed=$((second_passed + ${p:-0}))
    second_failed=$((second_failed + ${f:-0}))
  done
  scripts/second-servers.sh stop "$second"
else
  echo "second servers failed to start"
  second_failed=1
fi
echo "second servers: $second_passed passed, $second_failed failed"

# The benchmarks with tiny counts, so that they cannot rot (scripts/bench.sh runs them in
# full); each counts as one check: it must run to its end. Figures here mean nothing.
step "benchmark smoke (tiny counts)"
bench_passed=0 bench_failed=0
for b in "rpc_bench 300 1" "session_bench 4 2" "outbox_bench 8 1" "floor_bench 3 1 8"; do
  read -r bin args <<<"$b"
  # shellcheck disable=SC2086
  if (set -a; . "$servers/env"; set +a; "$build_dir/tests/bench/$bin" $args) \
      >"$build_dir/bench-smoke-$bin.log" 2>&1; then
    bench_passed=$((bench_passed + 1)); echo "bench smoke $bin: ok"
  else
    bench_failed=$((bench_failed + 1)); echo "bench smoke $bin: FAILED (log $build_dir/bench-smoke-$bin.log)"
  fi
done

# The daemon-side tests marked SANITIZE (sessions, pool, faults, load, metrics) again,
# built with AddressSanitizer + UndefinedBehaviorSanitizer, with leak detection: any
# report fails the test. Own build directory; only those targets are built.
step "sanitizer build (ASan, UBSan, LSan) and its tests"
san_dir=${SANITIZE_BUILD_DIR:-$build_dir-sanitize}
san_log=$san_dir/ctest.log
san_start=$SECONDS
# -O0 -g1: with ASan + UBSan, -O2 -g compiles ~4x slower than this (measured on
# imap_backend.cc: 183 s vs 46 s) and line tables are all a report needs.
if cmake -S "$root" -B "$san_dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug \
    -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
    -DMAILPOOL_BUILD_TESTS=ON -DMAILPOOL_SANITIZE=ON >/dev/null &&
  ninja -C "$san_dir" -j"${MAILPOOL_JOBS:-2}" sanitize_tests; then
  (cd "$san_dir" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    LSAN_OPTIONS=suppressions=$root/scripts/lsan.supp:print_suppressions=0 \
    ctest --output-on-failure -j"${MAILPOOL_JOBS:-2}" --timeout 600 -L sanitize) 2>&1 |
    tee "$san_log"
  read -r san_passed san_failed < <(count "$san_log")
else
  echo "sanitizer build failed"
  san_passed=0 san_failed=1
fi
echo "sanitizer run: $san_passed passed, $san_failed failed in $((SECONDS - san_start)) s"

# libFuzzer targets (clang, ASan + UBSan), briefly: a crash, sanitizer report, timeout or
# out-of-memory on any input fails its target. Own build directory (build-fuzz).
step "fuzzing (each target ${MAILPOOL_FUZZ_SECONDS:-15} s)"
fuzz_log=$build_dir-fuzz.log
FUZZ_BUILD_DIR=$build_dir-fuzz FUZZ_JOBS=2 scripts/fuzz.sh "${MAILPOOL_FUZZ_SECONDS:-15}" 2>&1 |
  tee "$fuzz_log"
fuzz_summary=$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed$' "$fuzz_log" | tail -1)
if [ -n "$fuzz_summary" ]; then
  read -r fuzz_passed fuzz_failed < <(sed -E 's/^fuzz: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$fuzz_summary")
else
  fuzz_passed=0 fuzz_failed=1
fi

# Container images (Podman, from the binaries built above) and the integration test against
# them; a skip (no container engine can run) adds nothing to either count.
step "container images and container integration test"
ct_log=$build_dir-container-test.log
scripts/container-test.sh 2>&1 | tee "$ct_log"
ct_summary=$(grep -E '^container-test: ([0-9]+ passed, [0-9]+ failed|SKIPPED)' "$ct_log" | tail -1)
case $ct_summary in
  *SKIPPED*) ct_passed=0 ct_failed=0 ;;
  *passed*) read -r ct_passed ct_failed < <(sed -E 's/^container-test: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$ct_summary") ;;
  *) ct_passed=0 ct_failed=1 ;;
esac

# Scale-out: 3 daemons behind nginx (deploy/nginx), 300 sessions, one instance killed
# (~10 s); again as containers (the images just built) unless the container test skipped.
step "scale-out behind nginx"
so_passed=0 so_failed=0
so_modes=(native)
case $ct_summary in *SKIPPED*) ;; *) so_modes+=(--containers) ;; esac
for so_mode in "${so_modes[@]}"; do
  so_log=$build_dir-scaleout-test${so_mode#--}.log
  if [ "$so_mode" = native ]; then scripts/scaleout-test.sh; else scripts/scaleout-test.sh "$so_mode"; fi 2>&1 |
    tee "$so_log"
  so_summary=$(grep -E '^scaleout-test: [0-9]+ passed, [0-9]+ failed$' "$so_log" | tail -1)
  if [ -n "$so_summary" ]; then
    read -r p f < <(sed -E 's/^scaleout-test: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$so_summary")
    so_passed=$((so_passed + p)) so_failed=$((so_failed + f))
  else
    so_failed=$((so_failed + 1))
  fi
done

# Deployment files: systemd exposure <= 3.0, Kubernetes hardening, nginx -t (~1 s).
step "deployment checks"
dc_log=$build_dir-deploy-check.log
scripts/deploy-check.sh 2>&1 | tee "$dc_log"
dc_summary=$(grep -E '^deploy-check: [0-9]+ passed, [0-9]+ failed$' "$dc_log" | tail -1)
if [ -n "$dc_summary" ]; then
  read -r dc_passed dc_failed < <(sed -E 's/^deploy-check: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/' <<<"$dc_summary")
else
  dc_passed=0 dc_failed=1
fi

passed=$((passed + rx_passed + second_passed + bench_passed + san_passed + fuzz_passed + ct_passed + so_passed + dc_passed + (1 - lint_failed)))
failed=$((failed + rx_failed + second_failed + bench_failed + san_failed + fuzz_failed + ct_failed + so_failed + dc_failed + lint_failed))
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]

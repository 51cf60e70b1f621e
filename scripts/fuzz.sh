#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz, clang, ASan + UBSan, -O1) in their own build
# directory and runs each for SECONDS (default 60) on a copy of its committed corpus.
# Usage: scripts/fuzz.sh [SECONDS]
#   FUZZ_TARGETS="imap_client mime"  only these targets (default: all)
#   FUZZ_BUILD_DIR=DIR               build directory (default: build-fuzz)
#   FUZZ_JOBS=N                      targets run at once (default 1)
# A crash, sanitizer report, leak, timeout (25 s per input) or out-of-memory is a finding:
# the input is kept under $FUZZ_BUILD_DIR/artifacts/ and the script fails. Prints one line
# per target (executions, corpus size, result) and "fuzz: N passed, N failed".
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
seconds=${1:-60}
build_dir=${FUZZ_BUILD_DIR:-$root/build-fuzz}
targets=${FUZZ_TARGETS:-"imap_client pop3_client smtp_client line_reader mime imap_ids validation"}
jobs=${FUZZ_JOBS:-1}
cxx=${FUZZ_CXX:-$(command -v clang++-14 || command -v clang++)}
[ -n "$cxx" ] || { echo "fuzz: no clang++ (scripts/install-deps.sh installs clang-14)"; exit 1; }

build_start=$SECONDS
if ! cmake -S "$root" -B "$build_dir" -G Ninja -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
    -DMAILPOOL_BUILD_TESTS=OFF -DMAILPOOL_FUZZ=ON >"$build_dir.cmake.log" 2>&1; then
  cat "$build_dir.cmake.log"; echo "fuzz: configure failed"; exit 1
fi
targets_exe=()
for t in $targets; do targets_exe+=("${t}_fuzzer"); done
if ! nice ninja -C "$build_dir" -j"${MAILPOOL_JOBS:-2}" "${targets_exe[@]}" >"$build_dir/build.log" 2>&1; then
  tail -50 "$build_dir/build.log"; echo "fuzz: build failed"; exit 1
fi
echo "fuzz: built ${#targets_exe[@]} targets in $((SECONDS - build_start)) s"

mkdir -p "$build_dir/artifacts" "$build_dir/logs"
run_one() {
  local t=$1 exe=$build_dir/tests/fuzz/${1}_fuzzer work=$build_dir/corpus/$1
  local log=$build_dir/logs/$t.log
  mkdir -p "$work"
  # -close_fd_mask=3: the targets print nothing useful; keep libFuzzer's own report.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:strict_string_checks=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    nice "$exe" -max_total_time="$seconds" -timeout=25 -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 -artifact_prefix="$build_dir/artifacts/$t-" \
      "$work" "$root/tests/fuzz/corpus/$t" >"$log" 2>&1
  local rc=$?
  local execs corpus
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  corpus=$(ls "$work" | wc -l)
  if [ $rc -eq 0 ]; then
    echo "fuzz $t: ok, ${execs:-?} executions in ${seconds} s, corpus $corpus"
  else
    echo "fuzz $t: FINDING (exit $rc), ${execs:-?} executions; log $log:"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==' "$log" | head -20
  fi
  echo $rc >"$build_dir/logs/$t.rc"
}

passed=0 failed=0
for t in $targets; do
  rm -f "$build_dir/logs/$t.rc"
  run_one "$t" >"$build_dir/logs/$t.summary" &
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do sleep 1; done
done
wait
for t in $targets; do
  if [ "$(cat "$build_dir/logs/$t.rc" 2>/dev/null)" = 0 ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
  fi
  cat "$build_dir/logs/$t.summary"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]

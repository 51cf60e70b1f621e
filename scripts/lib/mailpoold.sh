# shellcheck shell=bash
# Starts a private mailpoold on an ephemeral loopback port, for shell tests and the tour.
# Source it, then:
#   start_mailpoold /path/to/mailpoold "$workdir" INSTANCE [FLAG...]   # sets MAILPOOLD_PID,
#                                                            # MAILPOOLD_LOG; FLAGs go to mailpoold
#   export MAILPOOL_ADDR                                     # set to 127.0.0.1:PORT
#   stop_mailpoold                                           # SIGTERM, wait; returns its exit code
# The caller owns cleanup on failure (e.g. trap 'kill -9 $MAILPOOLD_PID' EXIT).

start_mailpoold() {
  local bin=$1 dir=$2 instance=$3 port=""
  shift 3
  MAILPOOLD_LOG=$dir/mailpoold.log
  # Ephemeral ports for gRPC and metrics: several daemons run side by side under ctest -j2.
  # The outbox database (default under $XDG_STATE_HOME) stays private to this run.
  XDG_STATE_HOME=$dir/state "$bin" --listen 127.0.0.1:0 --metrics_listen 127.0.0.1:0 \
    --instance "$instance" "$@" >"$MAILPOOLD_LOG" 2>&1 &
  MAILPOOLD_PID=$!
  for _ in $(seq 1 300); do
    port=$(sed -nE 's/.*event="mailpoold listening".* port=([0-9]+).*/\1/p' "$MAILPOOLD_LOG" \
      2>/dev/null | head -1 || true)  # the log may not exist yet
    [ -n "$port" ] && break
    kill -0 "$MAILPOOLD_PID" 2>/dev/null || break
    sleep 0.05
  done
  if [ -z "$port" ]; then
    echo "mailpoold did not start:" >&2
    cat "$MAILPOOLD_LOG" >&2
    return 1
  fi
  MAILPOOL_ADDR=127.0.0.1:$port
}

stop_mailpoold() {
  [ -n "${MAILPOOLD_PID:-}" ] || return 0
  kill -TERM "$MAILPOOLD_PID" 2>/dev/null || true
  local code=0
  wait "$MAILPOOLD_PID" || code=$?
  MAILPOOLD_PID=""
  return $code
}

#!/usr/bin/env bash
# End-to-end smoke test of the real binaries: mailpoold with no configuration but a port,
# the `mailpool` CLI against it and the real test mail servers, and a clean SIGTERM.
# Usage: daemon_smoke.sh MAILPOOLD MAILPOOL   (needs the MAILPOOL_TEST_* environment)
set -euo pipefail
daemon=$1
cli=$2
: "${MAILPOOL_TEST_IMAPS_PORT:?start the test servers first (scripts/test.sh)}"
work=$(mktemp -d)
log=$work/daemon.log
# Its own help lists its flags, and --version names the release.
{ "$daemon" --help 2>&1 || true; } | grep -q -- '--caller_tokens_file' || { echo "FAIL: --help lists no flags"; exit 1; }
"$daemon" --version | grep -qE '^mailpoold [0-9]+\.[0-9]+\.[0-9]+' || { echo "FAIL: --version"; exit 1; }
"$daemon" --listen 127.0.0.1:0 --instance smoke --metrics_listen 127.0.0.1:0 --log_level debug \
  >"$log" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$work"' EXIT

fail() { echo "FAIL: $*"; echo "--- daemon log"; cat "$log"; exit 1; }

port=""
for _ in $(seq 1 200); do
  port=$(sed -nE 's/.*event="mailpoold listening".* port=([0-9]+).*/\1/p' "$log" 2>/dev/null |
    head -1 || true)  # the log may not exist yet
  [ -n "$port" ] && break
  kill -0 $pid 2>/dev/null || fail "mailpoold exited early"
  sleep 0.05
done
[ -n "$port" ] || fail "mailpoold did not report its port"
export MAILPOOL_ADDR=127.0.0.1:$port
metrics_port=$(sed -nE 's/.*event="metrics listening".* port=([0-9]+).*/\1/p' "$log" | head -1)
[ -n "$metrics_port" ] || fail "mailpoold did not report its metrics port"
scrape() {
  /usr/bin/python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode())' \
    "$metrics_port"
}

[ "$("$cli" health)" = SERVING ] || fail "health is not SERVING"

"$cli" start imap --host 127.0.0.1 --port "$MAILPOOL_TEST_IMAPS_PORT" --security tls \
  --ca "$MAILPOOL_TEST_CA" --user "$MAILPOOL_TEST_USER" --password-env MAILPOOL_TEST_PASSWORD \
  --name smoke >"$work/start.txt" || fail "start imap failed: $(cat "$work/start.txt")"
grep -q '^state: *ready' "$work/start.txt" || fail "session not ready: $(cat "$work/start.txt")"
grep -q '^id: *mssmoke_' "$work/start.txt" || fail "session ID lacks the instance tag"

"$cli" sessions | grep -q ' smoke ' || fail "sessions does not list the session"
smoke_id=$(sed -nE 's/^id: *(mssmoke_[0-9a-f]+).*/\1/p' "$work/start.txt")

# A second session with an OAuth2 token, so the token too is checked against the log.
"$cli" start imap --host 127.0.0.1 --port "$MAILPOOL_TEST_IMAPS_PORT" --security tls \
  --ca "$MAILPOOL_TEST_CA" --user "$MAILPOOL_TEST_USER" --token-env MAILPOOL_TEST_TOKEN \
  --name smoke-token >"$work/start-token.txt" ||
  fail "start imap with a token failed: $(cat "$work/start-token.txt")"
scrape >"$work/metrics.txt" || fail "GET /metrics failed"
grep -q '^mailpool_sessions{protocol="imap",state="ready"} 2$' "$work/metrics.txt" ||
  fail "metrics: want 2 ready IMAP sessions: $(grep mailpool_sessions "$work/metrics.txt")"
grep -qE '^mailpool_grpc_calls_total\{service="mailpool.v1.SessionService",method="StartSession",code="OK"\} 2$' \
  "$work/metrics.txt" || fail "metrics: want 2 StartSession OK calls"
grep -qE '^mailpool_bytes_read_total\{protocol="imap"\} [1-9]' "$work/metrics.txt" ||
  fail "metrics: no IMAP bytes read"
# The build and the process (the daemon's own pid, whose fds and RSS /proc shows).
grep -qE '^mailpool_build_info\{version="[0-9]+\.[0-9]+\.[0-9]+",grpc="[0-9.]+"\} 1$' \
  "$work/metrics.txt" || fail "metrics: no mailpool_build_info"
grep -qE '^process_open_fds [1-9][0-9]*$' "$work/metrics.txt" || fail "metrics: no process_open_fds"
grep -qE '^process_resident_memory_bytes [1-9]' "$work/metrics.txt" || fail "metrics: no RSS"
grep -qE '^process_cpu_seconds_total [0-9.e+-]+$' "$work/metrics.txt" || fail "metrics: no CPU seconds"
grep -qE '^process_start_time_seconds [1-9]' "$work/metrics.txt" || fail "metrics: no start time"
"$cli" close smoke-token >/dev/null || fail "close smoke-token"
# The per-call debug line: method, caller, session, code, duration.
grep -qE "event=call method=StartSession caller=local session=$smoke_id code=OK ms=[0-9]+" "$log" ||
  fail "no per-call log line for StartSession"
grep -qE "event=call method=CloseSession caller=local session=smoke-token code=OK" "$log" ||
  fail "no per-call log line for CloseSession"
"$cli" --json show smoke | grep -q '"SESSION_STATE_READY"' || fail "show --json"

set +e
MAILPOOL_BAD=wrong "$cli" start pop3 --host 127.0.0.1 --port "$MAILPOOL_TEST_POP3S_PORT" \
  --security tls --ca "$MAILPOOL_TEST_CA" --user "$MAILPOOL_TEST_USER" \
  --password-env MAILPOOL_BAD 2>"$work/err.txt"
code=$?
set -e
[ "$code" -eq 26 ] || fail "wrong password: exit $code, want 26 (UNAUTHENTICATED)"

"$cli" close smoke | grep -q '^closed smoke' || fail "close failed"
set +e
"$cli" show smoke 2>/dev/null
code=$?
set -e
[ "$code" -eq 15 ] || fail "show after close: exit $code, want 15 (NOT_FOUND)"

# Mailbox over POP3 with the CLI: seed one message for bob through Postfix, find it, read
# it, delete it. Other tests use bob's mailbox too, so only our marked message is touched.
marker="smoke-$$-$RANDOM"
/usr/bin/python3 - "$MAILPOOL_TEST_SMTP_INJECT_PORT" "$MAILPOOL_TEST_USER2" "$marker" <<'PY' ||
import smtplib, sys
port, rcpt, marker = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = (f"From: smoke@example.test\r\nTo: {rcpt}\r\nSubject: {marker}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        "hello from the smoke test\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        "YXR0YWNoZWQgYnl0ZXM=\r\n--b--\r\n")
with smtplib.SMTP("127.0.0.1", port) as s:
    s.sendmail("smoke@example.test", [rcpt], body)
PY
  fail "could not inject a message"
"$cli" start pop3 --host 127.0.0.1 --port "$MAILPOOL_TEST_POP3S_PORT" --security tls \
  --ca "$MAILPOOL_TEST_CA" --user "$MAILPOOL_TEST_USER2" --password-env MAILPOOL_TEST_PASSWORD2 \
  --name bob >/dev/null || fail "start pop3"
id=""
for _ in $(seq 1 200); do
  id=$("$cli" search bob --subject "$marker" | awk -v m="$marker" '$0 ~ m {print $1}' | head -1)
  [ -n "$id" ] && break
  "$cli" refresh bob >/dev/null || fail "refresh"
done
[ -n "$id" ] || fail "the injected message never showed up over POP3"
"$cli" ls bob --limit 1000 | grep -q -- "$marker" || fail "ls does not list the message"
"$cli" cat bob "$id" | grep -q 'hello from the smoke test' || fail "cat"
"$cli" cat bob "$id" --raw | grep -q "^Subject: $marker" || fail "cat --raw"
"$cli" mailbox bob | grep -q '^messages:' || fail "mailbox status"
[ "$("$cli" attachment bob "$id" 2)" = "attached bytes" ] || fail "attachment"
"$cli" rm bob "$id" | grep -q 'deleted 1' || fail "rm"
"$cli" refresh bob | grep -q 'deletions committed' || fail "refresh after rm"
if "$cli" search bob --subject "$marker" | grep -q -- "$marker"; then fail "deleted message still there"; fi
"$cli" close bob >/dev/null || fail "close bob"

# MessageService with the CLI: build a message, parse it back.
"$cli" build --from a@example.test --to b@example.test --subject "Grüße $marker" \
  --text "body" >"$work/built.eml" || fail "build"
"$cli" parse "$work/built.eml" | grep -q "^Subject: Grüße $marker" || fail "parse"

kill -TERM $pid
for _ in $(seq 1 200); do
  kill -0 $pid 2>/dev/null || break
  [ "$(ps -o stat= -p $pid 2>/dev/null | tr -d ' ')" = Z ] && break
  sleep 0.05
done
code=0
wait $pid || code=$?
[ "$code" -eq 0 ] || fail "mailpoold exit code $code after SIGTERM"
grep -q 'mailpoold stopped' "$log" || fail "no orderly shutdown in the log"
# No secret in the log (at debug level) nor in the metrics.
for secret in "$MAILPOOL_TEST_PASSWORD" "$MAILPOOL_TEST_PASSWORD2" "$MAILPOOL_TEST_TOKEN"; do
  if grep -qF -- "$secret" "$log"; then fail "a secret reached the log"; fi
  if grep -qF -- "$secret" "$work/metrics.txt"; then fail "a secret reached the metrics"; fi
done
# Every line about a session names it.
if grep -E 'event="session (started|closed)"' "$log" | grep -vq ' session=ms'; then
  fail "a session log line without session=<id>"
fi
echo "daemon smoke test passed"

#!/usr/bin/env bash
# The `mailpool` CLI against a mailpoold that authenticates its callers: caller tokens
# (--daemon-token-file, $MAILPOOL_TOKEN) over TLS (--daemon-ca), a Unix socket
# (--addr unix:PATH) and mutual TLS (--daemon-cert/--daemon-key), with a test CA made with
# openssl here and real IMAP sessions on the test mail servers.
# Usage: cli_auth_test.sh MAILPOOLD MAILPOOL   (needs the MAILPOOL_TEST_* environment)
set -euo pipefail
daemon=$1
cli=$2
: "${MAILPOOL_TEST_USER:?start the test servers first (scripts/testservers.sh)}"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- stdout"; head -c 3000 "$work/out" 2>/dev/null || true
  echo "--- stderr"; head -c 3000 "$work/err" 2>/dev/null || true
  exit 1
}
step() { echo "== $*"; }
expect() {
  local want=$1 rc=0
  shift
  "$cli" "$@" >"$work/out" 2>"$work/err" </dev/null || rc=$?
  [ "$rc" -eq "$want" ] || fail "mailpool $*: exit $rc, want $want"
}
has() { grep -qE -- "$2" "$work/$1" || fail "$1 lacks /$2/"; }
json() {
  python3 - "$work/$1" "$2" <<'PY' || fail "JSON check on $1 failed: $2"
import json, sys
path, expr = sys.argv[1:]
text = open(path, encoding="utf-8").read()
d = json.loads(text)
if not eval(expr, {"d": d}):
    sys.exit(f"false: {expr}\n{text[:2000]}")
PY
}
# start NAME LISTEN ARGS...: a daemon on LISTEN; sets PORT_<NAME>.
start() {
  local name=$1 listen=$2 port=""
  shift 2
  XDG_STATE_HOME=$work/state-$name "$daemon" --listen "$listen" --metrics_listen 127.0.0.1:0 \
    --instance "$name" "$@" >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 300); do
    # The log may not exist yet (the background shell has not opened it): not an error.
    port=$(sed -nE 's/.*event="mailpoold listening".* port=([0-9]+).*/\1/p' "$work/$name.log" \
      2>/dev/null | head -1 || true)
    [ -n "$port" ] && break
    sleep 0.05
  done
  [ -n "$port" ] || { cat "$work/$name.log"; fail "mailpoold $name did not start"; }
  printf -v "PORT_$name" %s "$port"
}

step "test CA, certificates and caller tokens"
(
  cd "$work"
  exec >openssl.log 2>&1
  ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  openssl req -x509 $ec -keyout ca.key -out ca.pem -days 2 -subj /CN=mailpool-test-ca
  openssl req $ec -keyout server.key -out server.csr -subj /CN=localhost
  echo subjectAltName=DNS:localhost,IP:127.0.0.1 > server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
    -days 2 -extfile server.ext
  openssl req $ec -keyout client.key -out client.csr -subj /CN=alice-app
  openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
) || { cat "$work/openssl.log"; fail "openssl"; }
alice_token=alice-token-$RANDOM$RANDOM
bob_token=bob-token-$RANDOM$RANDOM
{
  echo "# callers of the CLI auth test"
  echo "alice $(printf %s "$alice_token" | sha256sum | cut -d' ' -f1)"
  echo "bob $(printf %s "$bob_token" | sha256sum | cut -d' ' -f1) admin"
} > "$work/tokens"
printf '%s\n' "$alice_token" > "$work/alice.token"
printf '%s' "$bob_token" > "$work/bob.token"
tls=(--tls_cert "$work/server.pem" --tls_key "$work/server.key")
start tok "127.0.0.1:0,unix:$work/d.sock" "${tls[@]}" --caller_tokens_file "$work/tokens"
start mtls 127.0.0.1:0 "${tls[@]}" --tls_client_ca "$work/ca.pem"
unset MAILPOOL_TOKEN MAILPOOL_TOKEN_FILE
tok=(--addr "localhost:$PORT_tok" --daemon-ca "$work/ca.pem")
imap=(--host "$MAILPOOL_TEST_HOST" --port "$MAILPOOL_TEST_IMAPS_PORT" --security tls
  --ca "$MAILPOOL_TEST_CA" --user "$MAILPOOL_TEST_USER" --password-env MAILPOOL_TEST_PASSWORD)

step "no token, a wrong token: UNAUTHENTICATED (26), the token never printed"
expect 26 "${tok[@]}" sessions
has err '^mailpool: UNAUTHENTICATED'
printf 'not-a-known-token-77\n' > "$work/wrong.token"
expect 26 --json "${tok[@]}" --daemon-token-file "$work/wrong.token" sessions
json err 'd["error"]["code"] == "UNAUTHENTICATED"'
if grep -qF not-a-known-token-77 "$work/err" "$work/tok.log"; then fail "a token was printed"; fi

step "tokens: each caller sees its own sessions; the admin lists everyone's"
expect 0 --json "${tok[@]}" --daemon-token-file "$work/alice.token" start imap "${imap[@]}" --name a-inbox
json out 'd["owner"] == "alice"'
expect 0 --json "${tok[@]}" --daemon-token-file "$work/alice.token" sessions
json out '[s["name"] for s in d["sessions"]] == ["a-inbox"]'
MAILPOOL_TOKEN=$bob_token expect 0 --json "${tok[@]}" sessions
json out 'not d.get("sessions")'
MAILPOOL_TOKEN_FILE=$work/bob.token expect 15 "${tok[@]}" show a-inbox
MAILPOOL_TOKEN=$bob_token expect 0 --json "${tok[@]}" sessions --all-callers
json out '[(s["name"], s["owner"]) for s in d["sessions"]] == [("a-inbox", "alice")]'
expect 17 "${tok[@]}" --daemon-token-file "$work/alice.token" sessions --all-callers
has err '^mailpool: PERMISSION_DENIED'
expect 0 "${tok[@]}" --daemon-token-file "$work/alice.token" close a-inbox
for f in "$work/out" "$work/err" "$work/tok.log"; do
  if grep -qF -e "$alice_token" -e "$bob_token" "$f"; then fail "a token in $f"; fi
done

step "the Unix socket: the caller is the Unix user"
expect 0 --json --addr "unix:$work/d.sock" start imap "${imap[@]}" --name u-inbox
json out "d['owner'] == 'uid:$(id -u)'"
expect 0 --addr "unix:$work/d.sock" close u-inbox

step "mutual TLS: the client certificate is the caller"
mtls=(--addr "localhost:$PORT_mtls" --daemon-ca "$work/ca.pem")
expect 0 --json "${mtls[@]}" --daemon-cert "$work/client.pem" --daemon-key "$work/client.key" \
  start imap "${imap[@]}" --name m-inbox
json out 'd["owner"] == "cert:alice-app"'
expect 0 "${mtls[@]}" --daemon-cert "$work/client.pem" --daemon-key "$work/client.key" close m-inbox
expect 4 "${mtls[@]}" sessions
expect 4 --addr "localhost:$PORT_tok" --daemon-ca "$work/client.pem" sessions

step "config file contexts: --context, \$MAILPOOL_CONTEXT, current-context, precedence"
mkdir -p "$work/conf"
cp "$work/alice.token" "$work/conf/alice.token"
cat > "$work/conf/config" <<CONF
# contexts of the CLI auth test
current-context = tok

[context tok]
addr = localhost:$PORT_tok
ca = $work/ca.pem
token-file = alice.token   # beside this file

[context mtls]
addr = 127.0.0.1:$PORT_mtls
ca = $work/ca.pem
cert = $work/client.pem
key = $work/client.key
server-name = localhost

[context nowhere]
addr = 127.0.0.1:1
CONF
export MAILPOOL_CONFIG=$work/conf/config
expect 0 --json start imap "${imap[@]}" --name c-inbox  # current-context tok: alice
json out 'd["owner"] == "alice"'
expect 0 --json --context mtls sessions
json out 'not d.get("sessions")'
MAILPOOL_CONTEXT=mtls expect 0 --json start imap "${imap[@]}" --name c-mtls
json out 'd["owner"] == "cert:alice-app"'
expect 4 --context nowhere sessions
# An option beats the context; a chosen context beats the environment; the environment
# beats the file's current-context.
expect 26 --daemon-token-file "$work/wrong.token" sessions
MAILPOOL_ADDR=127.0.0.1:1 expect 0 --context tok show c-inbox
MAILPOOL_ADDR=127.0.0.1:1 expect 4 sessions
MAILPOOL_TOKEN=$bob_token expect 0 --json sessions --all-callers
json out 'sorted(s["owner"] for s in d["sessions"]) == ["alice"]'
MAILPOOL_TOKEN=$bob_token expect 17 --context tok sessions --all-callers
expect 0 --json contexts
json out 'd["current_context"] == "tok" and [(c["name"], c["current"]) for c in d["contexts"]] == [("tok", True), ("mtls", False), ("nowhere", False)] and d["contexts"][0]["token-file"] == "'"$work"'/conf/alice.token"'
expect 0 contexts use mtls
expect 0 contexts
has out '^\* +mtls +127\.0\.0\.1:[0-9]+ +yes$'
has out '^ +nowhere +127\.0\.0\.1:1 +no$'
grep -q '^# contexts of the CLI auth test$' "$work/conf/config" || fail "contexts use lost a comment"
expect 0 close c-mtls  # now through mtls
expect 0 contexts use tok
expect 0 close c-inbox
expect 2 --context missing sessions
has err 'no context missing in'
expect 2 contexts use missing
printf '[context a]\naddr = x\nport = 1\n' > "$work/conf/bad"
expect 2 --config "$work/conf/bad" sessions
has err "bad:3: unknown key port"
MAILPOOL_CONFIG=$work/conf/absent expect 2 sessions
has err 'cannot read the config file'
unset MAILPOOL_CONFIG

for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p" || fail "mailpoold exit code $? after SIGTERM"; done
pids=()
echo "cli auth test passed"

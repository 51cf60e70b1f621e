#!/usr/bin/env bash
# Container integration test: builds the daemon and mail server images
# (scripts/build-images.sh, from the binaries in $BUILD_DIR), starts them in one network
# namespace with the daemon's gRPC and metrics ports published on loopback, and drives the daemon
# from the host with the CLI (build/client/cli/mailpool): health and the image's health
# check, start/close sessions, send over SMTP and read it back over IMAP and POP3, and an
# asynchronous send whose outbox entry survives a daemon container restart on its volume.
# Prints "container-test: N passed, N failed" (or "container-test: SKIPPED: why" when no
# container engine can run here; a skip is not a pass). Exit 0 only when nothing failed.
# With a daemon that has caller authentication: a second daemon container with TLS and
# caller tokens from a mounted secret directory.
# Env: BUILD_DIR, MAILPOOL_CONTAINER_PORT_BASE (default 32100: base+51 gRPC, base+52
# metrics, base+53 the secured daemon).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
cli=$build_dir/client/cli/mailpool
base=${MAILPOOL_CONTAINER_PORT_BASE:-32100}
grpc_port=$((base + 51)) metrics_port=$((base + 52))
name=mailpool-ct-$base
passed=0 failed=0
log() { echo "container-test: $*"; }
skip() { log "SKIPPED: $*"; exit 0; }
ok() { passed=$((passed + 1)); log "ok   $*"; }
bad() { failed=$((failed + 1)); log "FAIL $*"; }
check() { local what=$1; shift; if "$@" >"$tmp/out" 2>&1; then ok "$what"; else bad "$what: $(tail -3 "$tmp/out" | tr '\n' ' ')"; fi; }
summary() { log "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; }

command -v podman >/dev/null 2>&1 || skip "podman is not installed (no container engine)"
podman info >/dev/null 2>&1 || skip "podman cannot run here: $(podman info 2>&1 | tail -1)"
[ -x "$cli" ] || { bad "no $cli (build first)"; summary; exit; }

tmp=$(mktemp -d /tmp/mailpool-ct.XXXXXX)
cleanup() {
  podman rm -f -v -t 0 "$name-daemon" >/dev/null 2>&1 || true
  podman rm -f -v -t 0 "$name-mail" >/dev/null 2>&1 || true
  podman rm -f -v -t 0 "$name-auth" >/dev/null 2>&1 || true
  podman volume rm -f "$name-outbox" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cleanup; mkdir -p "$tmp"

t0=$SECONDS
if ! "$root/scripts/build-images.sh" >"$tmp/build.log" 2>&1; then
  if grep -qiE 'cgroup|runtime|OCI' "$tmp/build.log" && ! podman run --rm --pull=never localhost/debian:bookworm true >/dev/null 2>&1; then
    skip "the container engine cannot run containers here: $(tail -1 "$tmp/build.log")"
  fi
  bad "building the images: $(tail -5 "$tmp/build.log" | tr '\n' ' ')"; summary; exit
fi
grep -E '^(images|times):' "$tmp/build.log" | sed 's/^/container-test: /'
tag=$(sed -n 's/^tag: //p' "$tmp/build.log")
log "images built in $((SECONDS - t0)) s"

# One network namespace (the mail server's, like a pod without an infra container): the
# daemon reaches the mail server on 127.0.0.1, which its certificate names.
podman run -d --name "$name-mail" -p 127.0.0.1:$grpc_port:50551 -p 127.0.0.1:$metrics_port:9551 \
  localhost/mailpool-mailserver:"$tag" >/dev/null 2>>"$tmp/podman.log" ||
  { bad "starting the mail server container"; summary; exit; }
podman volume create "$name-outbox" >/dev/null
start_daemon() {
  podman run -d --network container:"$name-mail" --name "$name-daemon" -v "$name-outbox:/var/lib/mailpool" \
    localhost/mailpoold:"$tag" --shutdown_grace=2s >/dev/null 2>>"$tmp/podman.log"
}
start_daemon || { bad "starting the daemon container"; summary; exit; }

wait_for() { # what seconds command...
  local what=$1 limit=$2 i; shift 2
  for ((i = 0; i < limit * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  log "$what: not within $limit s"; return 1
}
mail_up() { podman exec "$name-mail" test -s /srv/mail/env; }
wait_for "mail server" 60 mail_up || { podman logs "$name-mail" 2>&1 | tail -20; bad "mail server came up"; summary; exit; }
podman cp "$name-mail:/srv/mail/tls/ca.crt" "$tmp/ca.crt"
podman cp "$name-mail:/srv/mail/env" "$tmp/mail.env"
set -a; . "$tmp/mail.env"; set +a
mp() { "$cli" --addr 127.0.0.1:$grpc_port --call-timeout 60s "$@"; }
serving() { mp health | grep -q SERVING; }
wait_for "daemon" 30 serving || podman logs "$name-daemon" 2>&1 | tail -20
check "health through the published port answers SERVING" serving
check "the image's health check passes (podman healthcheck run)" podman healthcheck run "$name-daemon"
check "the mail server image's health check passes" podman healthcheck run "$name-mail"
check "the gateway image's nginx configuration is valid, as uid 10002" podman run --rm --read-only --tmpfs /tmp --entrypoint /usr/sbin/nginx localhost/mailpool-gateway:"$tag" -t -p /tmp/ -c /etc/mailpool-gateway/nginx.conf
check "the daemon runs as uid 10001, not root" bash -c "[ \"\$(podman exec $name-daemon id -u)\" = 10001 ]"
check "metrics on the published metrics port" bash -c "exec 3<>/dev/tcp/127.0.0.1/$metrics_port && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && grep -q mailpool_ <&3"

start() { # name protocol port user password [extra]
  local n=$1 proto=$2 port=$3 user=$4 pass=$5; shift 5
  CT_PASSWORD=$pass mp start "$proto" --name "$n" --host 127.0.0.1 --port "$port" --ca "$tmp/ca.crt" \
    --user "$user" --password-env CT_PASSWORD "$@"
}
subject="container test $(date +%s)-$$"
check "start an SMTP session (STARTTLS, AUTH)" start ct-smtp smtp "$MAILPOOL_TEST_SMTP_PORT" "$MAILPOOL_TEST_USER" "$MAILPOOL_TEST_PASSWORD"
check "send a message" mp send ct-smtp --from "$MAILPOOL_TEST_USER" --to "$MAILPOOL_TEST_USER2" --subject "$subject" --text "sent from the container test"
check "start an IMAP session (STARTTLS)" start ct-imap imap "$MAILPOOL_TEST_IMAP_PORT" "$MAILPOOL_TEST_USER2" "$MAILPOOL_TEST_PASSWORD2"
in_imap() { mp refresh ct-imap >/dev/null 2>&1; mp ls ct-imap --limit 20 | grep -qF "$1"; }
check "IMAP reads the sent message back" wait_for "IMAP" 30 in_imap "$subject"
imap_text() {
  local id
  id=$(mp --json ls ct-imap --limit 20 | python3 -c 'import json, sys
for m in json.load(sys.stdin).get("messages", []):
    if m.get("subject") == sys.argv[1]: print(m["id"])' "$subject" | head -1)
  [ -n "$id" ] && mp cat ct-imap "$id" | grep -q 'sent from the container test'
}
check "IMAP shows the message's text" imap_text
check "start a POP3 session (STLS)" start ct-pop3 pop3 "$MAILPOOL_TEST_POP3_PORT" "$MAILPOOL_TEST_USER2" "$MAILPOOL_TEST_PASSWORD2"
check "POP3 lists the sent message" bash -c "'$cli' --addr 127.0.0.1:$grpc_port ls ct-pop3 --limit 50 | grep -qF '$subject'"
check "sessions lists the three sessions" bash -c "out=\$('$cli' --addr 127.0.0.1:$grpc_port sessions); for n in ct-smtp ct-imap ct-pop3; do grep -q \$n <<<\"\$out\" || exit 1; done"
for s in ct-smtp ct-pop3; do check "close $s" mp close "$s"; done
check "a closed session is NOT_FOUND (exit 15)" bash -c "'$cli' --addr 127.0.0.1:$grpc_port show ct-pop3; [ \$? = 15 ]"

# Outbox across a restart: the mail server is frozen, so the queued send cannot leave;
# the daemon container is restarted (same volume); the send is still there and goes out
# once an asynchronous session of the same user exists again.
osubject="container outbox $(date +%s)-$$"
check "start an asynchronous SMTP session" start ct-async smtp "$MAILPOOL_TEST_SMTP_PORT" "$MAILPOOL_TEST_USER4" "$MAILPOOL_TEST_PASSWORD4" --async
check "freeze the mail server (podman pause)" podman pause "$name-mail"
mp --json send ct-async --from "$MAILPOOL_TEST_USER4" --to "$MAILPOOL_TEST_USER2" --subject "$osubject" --text "queued before a restart" >"$tmp/send.json" 2>&1
send_id=$(grep -oE 'sd[0-9]+_[0-9a-f]{32}' "$tmp/send.json" | head -1)
if [ -n "$send_id" ]; then ok "asynchronous send queued ($send_id)"; else bad "asynchronous send: $(cat "$tmp/send.json")"; fi
check "stop the daemon container" podman stop -t 3 "$name-daemon"
check "unfreeze the mail server" podman unpause "$name-mail"
check "start the daemon container again (same volume)" podman start "$name-daemon"
check "daemon back after the restart" wait_for "daemon" 30 serving
check "sessions are gone after the restart (NOT_FOUND)" bash -c "'$cli' --addr 127.0.0.1:$grpc_port show ct-imap; [ \$? = 15 ]"
check "the queued send survived the restart" bash -c "'$cli' --addr 127.0.0.1:$grpc_port outbox | grep -qF '$send_id'"
check "a new asynchronous session of the same user" start ct-async2 smtp "$MAILPOOL_TEST_SMTP_PORT" "$MAILPOOL_TEST_USER4" "$MAILPOOL_TEST_PASSWORD4" --async
check "the send from before the restart is delivered (SENT)" mp status --watch "$send_id" --for 60s
check "start an IMAP session after the restart" start ct-imap2 imap "$MAILPOOL_TEST_IMAP_PORT" "$MAILPOOL_TEST_USER2" "$MAILPOOL_TEST_PASSWORD2"
in_imap2() { mp refresh ct-imap2 >/dev/null 2>&1; mp ls ct-imap2 --limit 20 | grep -qF "$1"; }
check "IMAP reads the outbox message back" wait_for "IMAP" 30 in_imap2 "$osubject"
check "close the IMAP session" mp close ct-imap2
# Caller authentication from a mounted secret directory (what the Kubernetes Secret
# becomes): TLS with a private CA and caller tokens, when the daemon has the flags.
daemon_help=$(podman run --rm --entrypoint /usr/local/bin/mailpoold localhost/mailpoold:"$tag" --helpfull 2>&1 || true)
if grep -q caller_tokens_file <<<"$daemon_help"; then
  sec=$tmp/secrets
  mkdir -p "$sec"
  (cd "$sec" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -keyout ca.key \
      -out ca.crt -subj "/CN=mailpool test CA" &&
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout tls.key -out tls.csr \
      -subj /CN=mailpoold &&
    printf 'subjectAltName=DNS:mailpoold,DNS:localhost,IP:127.0.0.1\n' >san.ext &&
    openssl x509 -req -in tls.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out tls.crt &&
    for n in app health; do
      openssl rand -hex 32 >"$n-token"
      printf '%s %s\n' "$n" "$(tr -d '\n' <"$n-token" | sha256sum | cut -d' ' -f1)" >>caller-tokens
    done && mkdir mount && cp tls.crt tls.key ca.crt caller-tokens health-token mount/ && chmod 644 mount/*) \
    >"$tmp/openssl.log" 2>&1
  auth_port=$((base + 53))
  podman run -d --name "$name-auth" -p 127.0.0.1:$auth_port:50551 -v "$sec/mount:/run/secrets/mailpool:ro" \
    localhost/mailpoold:"$tag" >/dev/null 2>>"$tmp/podman.log"
  mpa() { "$cli" --addr 127.0.0.1:$auth_port --call-timeout 30s --daemon-ca "$sec/ca.crt" "$@"; }
  auth_serving() { mpa --daemon-token-file "$sec/app-token" health | grep -q SERVING; }
  check "secured daemon (TLS + caller tokens from the mounted secret) answers over TLS" wait_for "secured daemon" 30 auth_serving
  check "it refuses a call without a caller token (UNAUTHENTICATED, exit 26)" bash -c "'$cli' --addr 127.0.0.1:$auth_port --daemon-ca '$sec/ca.crt' sessions; [ \$? = 26 ]"
  check "it serves the call with the caller's token" mpa --daemon-token-file "$sec/app-token" sessions
  check "it refuses plaintext gRPC" bash -c "! '$cli' --addr 127.0.0.1:$auth_port --call-timeout 10s health"
  check "its health check passes with TLS and the health token" podman healthcheck run "$name-auth"
  podman rm -f -v -t 0 "$name-auth" >/dev/null 2>&1
else
  log "caller authentication checks not run: this daemon has no --caller_tokens_file (not counted)"
fi
log "total $((SECONDS - t0)) s"
summary

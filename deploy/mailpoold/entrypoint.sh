#!/bin/sh
# Container entrypoint of mailpoold. In a container the daemon must listen beyond loopback;
# the port is published deliberately. Extra arguments go to mailpoold.
#   MAILPOOL_INSTANCE   instance tag in session IDs (default: the ordinal of a StatefulSet
#                       pod name such as mailpoold-2, else 0)
#   MAILPOOL_SECRETS    directory with tls.crt, tls.key (and client-ca.crt) and/or
#                       caller-tokens (default /run/secrets/mailpool); used when present
# `mailpoold-entrypoint health` is the health check (grpc.health over loopback).
set -eu
secrets=${MAILPOOL_SECRETS:-/run/secrets/mailpool}
if [ "${1:-}" = health ]; then
  set -- /usr/local/bin/mailpool --addr 127.0.0.1:50551
  [ -r "$secrets/tls.crt" ] && set -- "$@" --daemon-tls
  [ -n "${MAILPOOL_TLS_NAME:-}" ] && set -- "$@" --daemon-server-name "$MAILPOOL_TLS_NAME"
  [ -r "$secrets/ca.crt" ] && set -- "$@" --daemon-ca "$secrets/ca.crt"
  [ -r "$secrets/health-token" ] && set -- "$@" --daemon-token-file "$secrets/health-token"
  exec "$@" health
fi
instance=${MAILPOOL_INSTANCE:-}
if [ -z "$instance" ]; then
  case ${HOSTNAME:-} in
    *-[0-9]*) instance=${HOSTNAME##*-} ;;
  esac
  case $instance in ''|*[!0-9]*) instance=0 ;; esac
fi
set -- --listen=0.0.0.0:50551 --metrics_listen=0.0.0.0:9551 --instance="$instance" "$@"
help=$(/usr/local/bin/mailpoold --helpfull 2>&1 || true)
has_flag() { case $help in *"-$1"*) return 0 ;; esac; return 1; }
any=0
if [ -r "$secrets/tls.crt" ] && [ -r "$secrets/tls.key" ] && has_flag tls_cert; then
  set -- "$@" --tls_cert="$secrets/tls.crt" --tls_key="$secrets/tls.key"
  [ -r "$secrets/client-ca.crt" ] && set -- "$@" --tls_client_ca="$secrets/client-ca.crt"
  any=1
fi
if [ -r "$secrets/caller-tokens" ] && has_flag caller_tokens_file; then
  set -- "$@" --caller_tokens_file="$secrets/caller-tokens"
  any=1
fi
# No secret at all: a private network (a pod, a compose project with loopback-published
# ports) needs the explicit opt-in of a daemon that refuses unauthenticated network
# listeners. With a certificate but neither tokens nor a client CA, the daemon refuses.
if [ "$any" = 0 ] && has_flag allow_unauthenticated_network; then
  set -- "$@" --allow_unauthenticated_network
fi
exec /usr/local/bin/mailpoold "$@"

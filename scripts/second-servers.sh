#!/usr/bin/env bash
# Second implementations of IMAP and SMTP for the integration tests, beside the Dovecot +
# Postfix of scripts/testservers.sh: GNU Mailutils imap4d (IMAP, STARTTLS and implicit TLS,
# Maildir) and aiosmtpd (SMTP, STARTTLS with AUTH and implicit TLS, delivering over LMTP
# into the first set's Dovecot, so mail sent through it is read back over POP3/IMAP).
# Both run as the current user on 127.0.0.1 with the first set's users and test CA.
#
# Usage: scripts/second-servers.sh start DIR FIRST_DIR   start; write DIR/env (FIRST_DIR/env
#                                  with the IMAP/IMAPS/SMTP/SMTPS ports of these servers and
#                                  MAILPOOL_TEST_IMAP_SERVER / MAILPOOL_TEST_SMTP_SERVER)
#        scripts/second-servers.sh stop DIR                 stop (idempotent)
# Environment: MAILPOOL_TEST_SECOND_PORT_BASE first of 4 ports (default: FIRST_DIR's IMAP
# port + 20).
# Tests run against them with: set -a; . DIR/env; set +a; build/tests/integration/...
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
templates=${MAILPOOL_TEST_TEMPLATES:-$script_dir/../deploy/testservers}

die() { echo "second-servers: $*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
env_value() { sed -n "s/^$2=//p" "$1"; }

# Live (non-zombie) processes of session $1.
members() { ps -e -o pid=,sid=,stat= | awk -v s="$1" '$2 == s && $3 !~ /^Z/ {print $1}'; }

stop() {
  local dir=$1 f pid deadline
  for f in "$dir"/run/*.pid; do
    [[ -r $f ]] || continue
    pid=$(head -n1 "$f" | tr -dc 0-9)
    rm -f "$f"
    [[ -n $pid ]] || continue
    # Each server runs in its own session (setsid): end that session, children included.
    kill -TERM -- "-$pid" 2>/dev/null || true
    deadline=$((SECONDS + 5))
    while [[ -n $(members "$pid") ]] && ((SECONDS < deadline)); do sleep 0.05; done
    [[ -z $(members "$pid") ]] || kill -KILL -- "-$pid" 2>/dev/null || true
  done
}

start() {
  local dir=$1 first=$2
  [[ -r $first/env ]] || die "no $first/env: start scripts/testservers.sh first"
  command -v imap4d >/dev/null || die "imap4d not found (scripts/install-deps.sh)"
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || die "python3-aiosmtpd not installed"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  first=$(cd "$first" && pwd)
  stop "$dir"
  local base=${MAILPOOL_TEST_SECOND_PORT_BASE:-$(($(env_value "$first/env" MAILPOOL_TEST_IMAP_PORT) + 20))}
  local imap=$base imaps=$((base + 1)) smtp=$((base + 2)) smtps=$((base + 3)) p
  for p in $imap $imaps $smtp $smtps; do
    port_open "$p" && die "port $p is in use (set MAILPOOL_TEST_SECOND_PORT_BASE)"
  done
  local tls=$first/tls users=$first/dovecot/users
  local lmtp; lmtp=$(env_value "$first/env" MAILPOOL_TEST_LMTP_PORT)
  rm -rf "$dir/imap4d" "$dir/run"
  mkdir -p "$dir/imap4d/passwd" "$dir/imap4d/mail" "$dir/run"

  # virtdomain: one passwd(5) file per domain, crypt(3) hashes, the local part as name.
  local name secret uid gid
  uid=$(id -u) gid=$(id -g)
  grep -v -e '^#' -e '^[[:space:]]*$' "$users" | while IFS=: read -r name secret _; do
    secret=${secret#\{*\}}
    printf '%s:%s:%s:%s::%s:/bin/false\n' "${name%@*}" "$(openssl passwd -6 "$secret")" \
      "$uid" "$gid" "$dir/imap4d/mail/${name%@*}" >>"$dir/imap4d/passwd/${name#*@}"
  done
  grep -v -e '^#' -e '^[[:space:]]*$' "$users" | while IFS=: read -r name secret _; do
    printf '%s\t%s\n' "$name" "${secret#\{*\}}"
  done >"$dir/imap4d/cram-passwd"
  chmod 600 "$dir/imap4d/cram-passwd"
  sed -e "s|@DIR@|$dir|g" -e "s|@TLS@|$tls|g" -e "s|@IMAP_PORT@|$imap|g" \
    -e "s|@IMAPS_PORT@|$imaps|g" "$templates/imap4d.conf" >"$dir/imap4d/imap4d.conf"

  setsid imap4d --config-file="$dir/imap4d/imap4d.conf" </dev/null >"$dir/run/imap4d.out" 2>&1 &
  echo $! >"$dir/run/imap4d.pid"
  setsid /usr/bin/python3 "$templates/second_smtp.py" "$users" "$lmtp" "$smtp" "$smtps" \
    "$tls/server.crt" "$tls/server.key" </dev/null >"$dir/run/smtp.out" 2>&1 &
  echo $! >"$dir/run/smtp.pid"

  local deadline=$((SECONDS + 20))
  for p in $imap $imaps $smtp $smtps; do
    until port_open "$p"; do
      if ((SECONDS >= deadline)); then
        cat "$dir"/run/*.out >&2
        stop "$dir"
        die "port $p did not open"
      fi
      sleep 0.05
    done
  done
  {
    grep -v -e '^MAILPOOL_TEST_IMAP_PORT=' -e '^MAILPOOL_TEST_IMAPS_PORT=' \
      -e '^MAILPOOL_TEST_SMTP_PORT=' -e '^MAILPOOL_TEST_SMTPS_PORT=' "$first/env"
    echo "# second implementations (scripts/second-servers.sh)"
    echo "MAILPOOL_TEST_IMAP_PORT=$imap"
    echo "MAILPOOL_TEST_IMAPS_PORT=$imaps"
    echo "MAILPOOL_TEST_SMTP_PORT=$smtp"
    echo "MAILPOOL_TEST_SMTPS_PORT=$smtps"
    echo "MAILPOOL_TEST_IMAP_SERVER=imap4d"
    echo "MAILPOOL_TEST_SMTP_SERVER=aiosmtpd"
  } >"$dir/env"
  cat "$dir/env"
}

case ${1:-} in
  start) [[ $# -eq 3 ]] || die "usage: start DIR FIRST_DIR"; start "$2" "$3" ;;
  stop) [[ $# -eq 2 ]] || die "usage: stop DIR"; stop "$2" ;;
  *) die "usage: $0 start DIR FIRST_DIR | stop DIR" ;;
esac

#!/usr/bin/env bash
# Starts and stops private Dovecot + Postfix instances on loopback high ports for
# mailpool's integration tests (real IMAP, POP3, SMTP servers; no systemd, no Docker).
#
# Usage: scripts/testservers.sh start DIR   start everything, write DIR/env, print it
#        scripts/testservers.sh stop DIR    stop everything started from DIR (idempotent)
#        scripts/testservers.sh env DIR     print DIR/env
#        scripts/testservers.sh run DIR     start, then stay in the foreground until
#                                           SIGTERM/SIGINT, then stop (container entrypoint)
#        scripts/testservers.sh restart-dovecot DIR   stop the IMAP/POP3 Dovecot of DIR (its
#                                           clients see their connections close) and start
#                                           it again; returns once it accepts connections
#        scripts/testservers.sh restart-postfix DIR   the same for Postfix
#
# Environment:
#   MAILPOOL_TEST_PORT_BASE  first port (default 31000); ports base+0 .. base+15 are used
#                            (base+15: the OAuth2 test server, where Node.js is installed)
#   MAILPOOL_TEST_LISTEN     address the mail listeners bind (default 127.0.0.1; 0.0.0.0 in
#                            a container). LMTP and the SASL listener stay on 127.0.0.1.
#   MAILPOOL_TEST_TLS_SAN    extra subjectAltName entries, e.g. "DNS:mail,IP:10.0.0.5"
#   MAILPOOL_TEST_TEMPLATES  configuration templates (default: deploy/testservers beside
#                            this script's directory)
#
# Needs root (Postfix's master and Dovecot's master run as root and drop privileges).
# Tests use it as:  scripts/testservers.sh start "$dir" && set -a && . "$dir/env" && set +a
# See deploy/testservers/README.md for ports, users and tokens.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly script_dir
readonly templates=${MAILPOOL_TEST_TEMPLATES:-$script_dir/../deploy/testservers}
readonly port_base=${MAILPOOL_TEST_PORT_BASE:-31000}
readonly listen_addr=${MAILPOOL_TEST_LISTEN:-127.0.0.1}
readonly wait_limit_s=20

die() {
  echo "testservers: $*" >&2
  exit 1
}
log() { echo "testservers: $*" >&2; }

usage() {
  sed -n '4,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# --- ports --------------------------------------------------------------------------------
if ! [[ $port_base =~ ^[0-9]+$ ]] || ((port_base < 1024 || port_base > 65522)); then
  die "MAILPOOL_TEST_PORT_BASE must be a number in 1024..65522 (got '$port_base')"
fi
readonly imap_port=$((port_base + 0))
readonly imaps_port=$((port_base + 1))
readonly pop3_port=$((port_base + 2))
readonly pop3s_port=$((port_base + 3))
readonly smtp_port=$((port_base + 4))
readonly smtps_port=$((port_base + 5))
readonly inject_port=$((port_base + 6))
readonly lmtp_port=$((port_base + 7))
readonly auth_port=$((port_base + 8))
readonly closed_port=$((port_base + 9))
readonly notls_smtp_port=$((port_base + 10))
readonly notls_imap_port=$((port_base + 11))
readonly notls_pop3_port=$((port_base + 12))
readonly sink_port=$((port_base + 13))
readonly ascii_smtp_port=$((port_base + 14))
readonly oauth2_port=$((port_base + 15))
readonly all_ports=("$imap_port" "$imaps_port" "$pop3_port" "$pop3s_port" "$smtp_port"
  "$smtps_port" "$inject_port" "$lmtp_port" "$auth_port" "$notls_smtp_port"
  "$notls_imap_port" "$notls_pop3_port" "$sink_port" "$ascii_smtp_port")

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --- processes ----------------------------------------------------------------------------
# Alive = exists and is not a zombie (PID 1 here reaps orphans late; kill -0 succeeds on
# zombies).
alive() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $stat && $stat != Z* ]]
}

# Prints the PID stored in file $1 if that process is alive and its command name is $2
# (guards against a reused PID).
pid_from() {
  local file=$1 comm=$2 pid
  [[ -r $file ]] || return 1
  pid=$(head -n1 "$file" | tr -dc 0-9)
  [[ -n $pid ]] && alive "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$comm" ]] || return 1
  echo "$pid"
}

# The daemons of DIR: "pidfile comm" pairs (run/*.pid hold the PIDs this script started;
# Dovecot's own master.pid files are listed too in case run/ was lost).
daemon_pidfiles() {
  local dir=$1
  echo "$dir/run/dovecot.pid dovecot"
  echo "$dir/run/dovecot-notls.pid dovecot"
  echo "$dir/dovecot/run/master.pid dovecot"
  echo "$dir/dovecot/run-notls/master.pid dovecot"
  echo "$dir/postfix/spool/pid/master.pid master"
  echo "$dir/run/smtp-sink.pid smtp-sink"
  echo "$dir/run/oauth2.pid node"
}

# --- stop ---------------------------------------------------------------------------------
# Prints the live (non-zombie) processes whose session ID is one of $@. Every daemon runs in
# its own session (setsid here; Postfix's master calls setsid itself), so its children are
# found even after the master has exited.
session_members() {
  local sids=" $* "
  ps -e -o pid=,sid=,stat= | while read -r pid sid stat; do
    [[ $sids == *" $sid "* && $stat != Z* ]] && echo "$pid"
  done
  return 0
}

# Waits until no live process is in sessions $2... or $1 seconds have passed; returns 1 if
# some are left.
wait_sessions_gone() {
  local deadline=$((SECONDS + $1))
  shift
  while [[ -n $(session_members "$@") ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

stop_servers() {
  local dir=$1 file comm pid sids=() left=()
  [[ -d $dir ]] || return 0
  while read -r file comm; do
    if pid=$(pid_from "$file" "$comm"); then sids+=("$pid"); fi
  done < <(daemon_pidfiles "$dir")

  if ((${#sids[@]})); then
    # SIGTERM to each master and all its children at once: ~0.1 s. Signalling only the
    # masters takes ~1.3 s (Dovecot's master waits for its children, and some of them
    # outlive it by seconds). The test data is disposable, so no orderly shutdown is needed.
    mapfile -t left < <(session_members "${sids[@]}")
    ((${#left[@]} == 0)) || kill -TERM "${left[@]}" 2>/dev/null || true
    if ! wait_sessions_gone 10 "${sids[@]}"; then
      mapfile -t left < <(session_members "${sids[@]}")
      log "sending SIGKILL to processes that ignored SIGTERM: ${left[*]}"
      kill -KILL "${left[@]}" 2>/dev/null || true
      if ! wait_sessions_gone 2 "${sids[@]}"; then
        mapfile -t left < <(session_members "${sids[@]}")
        log "processes left: ${left[*]}"
      fi
    fi
  fi

  # Wait until the listeners are really gone, so that an immediate restart on the same
  # ports works.
  local ports=() port
  if ((${#sids[@]})) && [[ -r $dir/run/ports ]]; then read -r -a ports <"$dir/run/ports"; fi
  local deadline=$((SECONDS + 5))
  for port in "${ports[@]+"${ports[@]}"}"; do
    while port_open "$port" && ((SECONDS < deadline)); do sleep 0.05; done
    if port_open "$port"; then log "port $port still accepts connections after stop"; fi
  done
  rm -f "$dir/env"
  return 0
}

# --- start --------------------------------------------------------------------------------
# Renders template $1 into $2.
render() {
  sed -e "s|@DIR@|$dir|g" \
    -e "s|@LISTEN@|$listen_addr|g" \
    -e "s|@INET_INTERFACES@|$inet_interfaces|g" \
    -e "s|@IMAP_PORT@|$imap_port|g" \
    -e "s|@IMAPS_PORT@|$imaps_port|g" \
    -e "s|@POP3_PORT@|$pop3_port|g" \
    -e "s|@POP3S_PORT@|$pop3s_port|g" \
    -e "s|@SMTP_PORT@|$smtp_port|g" \
    -e "s|@SMTPS_PORT@|$smtps_port|g" \
    -e "s|@INJECT_PORT@|$inject_port|g" \
    -e "s|@LMTP_PORT@|$lmtp_port|g" \
    -e "s|@AUTH_PORT@|$auth_port|g" \
    -e "s|@NOTLS_SMTP_PORT@|$notls_smtp_port|g" \
    -e "s|@ASCII_SMTP_PORT@|$ascii_smtp_port|g" \
    -e "s|@NOTLS_IMAP_PORT@|$notls_imap_port|g" \
    -e "s|@NOTLS_POP3_PORT@|$notls_pop3_port|g" \
    -e "s|@OAUTH2_PORT@|$oauth2_port|g" \
    "$1" >"$2"
  if grep -q '@[A-Z0-9_]*@' "$2"; then die "unreplaced placeholder in $2"; fi
}

ensure_vmail_user() {
  getent group vmail >/dev/null || groupadd --system vmail
  getent passwd vmail >/dev/null ||
    useradd --system --gid vmail --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin vmail
}

# Creates Postfix's queue and data directories with the owners and modes of
# /etc/postfix/postfix-files (what "postfix check" would create).
make_postfix_queue() {
  local q=$1 d
  install -d -o root -m 755 "$q" "$q/pid"
  for d in active bounce corrupt defer deferred flush hold incoming private saved trace; do
    install -d -o postfix -m 700 "$q/$d"
  done
  install -d -o postfix -g postdrop -m 730 "$q/maildrop"
  install -d -o postfix -g postdrop -m 710 "$q/public"
  install -d -o postfix -m 700 "$2"
}

# Test CA + server certificate for localhost / 127.0.0.1 signed by it (ECDSA P-256: fast).
make_certs() {
  local tls=$1 san="DNS:localhost,IP:127.0.0.1"
  [[ -n ${MAILPOOL_TEST_TLS_SAN:-} ]] && san+=",$MAILPOOL_TEST_TLS_SAN"
  mkdir -p "$tls"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 30 -subj "/CN=mailpool test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$tls/server.key" -out "$tls/server.csr" -subj "/CN=localhost" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=serverAuth" \
    "subjectAltName=$san" "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" \
    >"$tls/server.ext"
  openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$tls/server.ext" \
    -out "$tls/server.crt" 2>/dev/null
  rm -f "$tls/server.csr" "$tls/server.ext"
  chmod 600 "$tls"/*.key
  chmod 644 "$tls"/*.crt
}

# Prints field $2 (1 = user, 2 = secret without its {SCHEME}) of entry $3 of passwd-file $1.
entry() {
  grep -v -e '^#' -e '^[[:space:]]*$' "$1" | sed -n "${3}p" | cut -d: -f"$2" |
    sed 's/^{[A-Z0-9.-]*}//'
}

write_env() {
  local out=$1 users=$dir/dovecot/users tokens=$dir/dovecot/tokens
  {
    echo "# mailpool test servers (scripts/testservers.sh); source with: set -a; . FILE; set +a"
    printf 'MAILPOOL_TEST_DIR=%q\n' "$dir"
    printf 'MAILPOOL_TEST_HOST=%q\n' "127.0.0.1"
    echo "MAILPOOL_TEST_IMAP_PORT=$imap_port"
    echo "MAILPOOL_TEST_IMAPS_PORT=$imaps_port"
    echo "MAILPOOL_TEST_POP3_PORT=$pop3_port"
    echo "MAILPOOL_TEST_POP3S_PORT=$pop3s_port"
    echo "MAILPOOL_TEST_SMTP_PORT=$smtp_port"
    echo "MAILPOOL_TEST_SMTPS_PORT=$smtps_port"
    echo "MAILPOOL_TEST_SMTP_INJECT_PORT=$inject_port"
    echo "MAILPOOL_TEST_LMTP_PORT=$lmtp_port"
    echo "MAILPOOL_TEST_CLOSED_PORT=$closed_port"
    echo "MAILPOOL_TEST_NOTLS_SMTP_PORT=$notls_smtp_port"
    echo "MAILPOOL_TEST_NOTLS_IMAP_PORT=$notls_imap_port"
    echo "MAILPOOL_TEST_NOTLS_POP3_PORT=$notls_pop3_port"
    echo "MAILPOOL_TEST_SMTP_SINK_PORT=$sink_port"
    echo "MAILPOOL_TEST_ASCII_SMTP_PORT=$ascii_smtp_port"
    printf 'MAILPOOL_TEST_CA=%q\n' "$dir/tls/ca.crt"
    echo "MAILPOOL_TEST_DOMAIN=example.test"
    printf 'MAILPOOL_TEST_USER=%q\n' "$(entry "$users" 1 1)"
    printf 'MAILPOOL_TEST_PASSWORD=%q\n' "$(entry "$users" 2 1)"
    printf 'MAILPOOL_TEST_TOKEN=%q\n' "$(entry "$tokens" 2 1)"
    echo "MAILPOOL_TEST_SCRAM_USER=scram@example.test"
    echo "MAILPOOL_TEST_SCRAM_PASSWORD=scram-secret-7"
    local n
    if [[ -s $dir/oauth2/config.json ]]; then
      echo "MAILPOOL_TEST_OAUTH2_PORT=$oauth2_port"
      echo "MAILPOOL_TEST_OAUTH2_TOKEN_ENDPOINT=https://127.0.0.1:$oauth2_port/token"
      echo "MAILPOOL_TEST_OAUTH2_CLIENT_ID=$oauth2_client_id"
      echo "MAILPOOL_TEST_OAUTH2_CLIENT_SECRET=$oauth2_client_secret"
      echo "MAILPOOL_TEST_OAUTH2_TTL_SECONDS=$oauth2_ttl"
      echo "MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN=alice-refresh-1"
      echo "MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN2=bob-refresh-2"
      echo "MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN3=carol-refresh-3"
      echo "MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN6=frank-refresh-6"
    fi
    for n in 2 3 4 5 6; do
      printf 'MAILPOOL_TEST_USER%d=%q\n' "$n" "$(entry "$users" 1 "$n")"
      printf 'MAILPOOL_TEST_PASSWORD%d=%q\n' "$n" "$(entry "$users" 2 "$n")"
      printf 'MAILPOOL_TEST_TOKEN%d=%q\n' "$n" "$(entry "$tokens" 2 "$n")"
    done
  } >"$out.tmp"
  mv "$out.tmp" "$out"
}

# Prints the last lines of every log in DIR (after a failed start).
dump_logs() {
  local f
  for f in "$dir"/dovecot/*.log "$dir"/postfix/*.log "$dir"/run/*.out; do
    [[ -s $f ]] || continue
    echo "----- $f" >&2
    tail -n 20 "$f" >&2
  done
}

# The OAuth2 authorization server of the refresh tests (tools/oauth2-mock: the npm package
# oauth2-mock-server over HTTPS with the test CA's certificate), and Dovecot's oauth2
# passdb that asks it (RFC 7662 introspection) about the access tokens it issued. Only
# where Node.js is installed (not in the test mail server image): without it Dovecot has
# no oauth2 passdb and the env names no MAILPOOL_TEST_OAUTH2_*.
readonly oauth2_client_id=mailpool-test oauth2_client_secret=mailpool-client-secret-1
readonly oauth2_ttl=${MAILPOOL_TEST_OAUTH2_TTL:-5}
start_oauth2() {
  local tool=$script_dir/../tools/oauth2-mock
  if ! command -v node >/dev/null || [[ ! -r $tool/server.mjs ]]; then
    log "no Node.js (or no tools/oauth2-mock): the OAuth2 test server is not started"
    return 0
  fi
  if [[ ! -d $tool/node_modules/oauth2-mock-server ]]; then
    (cd "$tool" && npm ci --no-audit --no-fund --loglevel=error) >&2 ||
      die "npm ci in $tool failed"
  fi
  port_open "$oauth2_port" && die "port $oauth2_port is in use (set MAILPOOL_TEST_PORT_BASE)"
  mkdir -p "$dir/oauth2"
  cat >"$dir/oauth2/config.json" <<JSON
{"host": "127.0.0.1", "port": $oauth2_port, "cert": "$dir/tls/server.crt",
 "key": "$dir/tls/server.key", "client_id": "$oauth2_client_id",
 "client_secret": "$oauth2_client_secret", "ttl_seconds": $oauth2_ttl,
 "refresh_tokens": {"alice-refresh-1": "alice@example.test", "bob-refresh-2": "bob@example.test",
                    "carol-refresh-3": "carol@example.test",
                    "frank-refresh-6": "frank@example.test"}}
JSON
  setsid node "$tool/server.mjs" "$dir/oauth2/config.json" </dev/null >"$dir/run/oauth2.out" 2>&1 &
  echo $! >"$dir/run/oauth2.pid"
  render "$templates/dovecot-oauth2.conf" "$dir/dovecot/oauth2-passdb.conf"
  render "$templates/dovecot-oauth2.conf.ext" "$dir/dovecot/dovecot-oauth2.conf.ext"
  chgrp dovecot "$dir/dovecot/dovecot-oauth2.conf.ext"
  chmod 640 "$dir/dovecot/dovecot-oauth2.conf.ext"
  wait_ports open "$oauth2_port"
}

start_servers() {
  [[ $(id -u) == 0 ]] || die "start needs root (Dovecot and Postfix masters run as root)"
  local cmd
  for cmd in dovecot postfix smtp-sink openssl setsid runuser; do
    command -v "$cmd" >/dev/null || die "$cmd not found (run scripts/install-deps.sh)"
  done
  [[ -d $templates ]] || die "templates not found: $templates"

  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  [[ $dir != *[[:space:]\|\&\\]* ]] || die "DIR must not contain spaces, '|', '&' or '\\': $dir"
  chmod 755 "$dir"
  # mktemp -d makes 0700 directories: the postfix/dovecot users must reach DIR.
  runuser -u postfix -- test -x "$dir" ||
    die "user postfix cannot enter $dir (a parent directory is not world-searchable)"

  stop_servers "$dir" # restart semantics if something still runs from DIR

  local port
  for port in "${all_ports[@]}" "$closed_port"; do
    port_open "$port" && die "port $port is in use (another instance? set MAILPOOL_TEST_PORT_BASE)"
  done

  inet_interfaces=$listen_addr
  [[ $listen_addr == 0.0.0.0 ]] && inet_interfaces=all

  # Fresh state every start: mailboxes, queues, certificates, runtime dirs.
  rm -rf "$dir/dovecot" "$dir/postfix" "$dir/mail" "$dir/tls" "$dir/run" "$dir/env"
  mkdir -p "$dir/dovecot" "$dir/postfix/etc" \
    "$dir/mail" "$dir/run"
  echo "${all_ports[*]}" >"$dir/run/ports"

  ensure_vmail_user
  chown vmail:vmail "$dir/mail"
  chmod 700 "$dir/mail"
  make_postfix_queue "$dir/postfix/spool" "$dir/postfix/data"
  make_certs "$dir/tls"

  local f
  for f in dovecot.conf dovecot-notls.conf dovecot-common.conf users tokens; do
    render "$templates/$f" "$dir/dovecot/$f"
  done
  # One user whose password is stored only as SCRAM-SHA-256 (salted, 4096 rounds): it can
  # log in with SCRAM (or PLAIN, which Dovecot checks against the stored keys), not CRAM-MD5.
  printf 'scram@example.test:%s::::::\n' "$(doveadm pw -s SCRAM-SHA-256 -p scram-secret-7)" \
    >>"$dir/dovecot/users"
  # Read by the auth process, which runs as the dovecot user.
  chgrp dovecot "$dir/dovecot/users" "$dir/dovecot/tokens"
  chmod 640 "$dir/dovecot/users" "$dir/dovecot/tokens"
  start_oauth2
  render "$templates/main.cf" "$dir/postfix/etc/main.cf"
  render "$templates/master.cf" "$dir/postfix/etc/master.cf"
  grep -v -e '^#' -e '^[[:space:]]*$' "$dir/dovecot/users" | cut -d: -f1 |
    sed 's/$/ ok/' >"$dir/postfix/etc/virtual_mailboxes"
  # Postfix stalls ~2 s if main.cf/master.cf changed in the last seconds.
  touch -d '-1 min' "$dir/postfix/etc/main.cf" "$dir/postfix/etc/master.cf" \
    "$dir/postfix/etc/virtual_mailboxes"

  # Daemons get their own session and never hold the caller's stdout/stderr (CI capture
  # would hang); their output goes to DIR/run/*.out.
  setsid dovecot -c "$dir/dovecot/dovecot.conf" -F </dev/null >"$dir/run/dovecot.out" 2>&1 &
  echo $! >"$dir/run/dovecot.pid"
  setsid dovecot -c "$dir/dovecot/dovecot-notls.conf" -F </dev/null \
    >"$dir/run/dovecot-notls.out" 2>&1 &
  echo $! >"$dir/run/dovecot-notls.pid"
  # A discard SMTP server (no STARTTLS, no AUTH) for load tests and failure injection.
  setsid smtp-sink -u postfix -a "$listen_addr:$sink_port" 256 </dev/null \
    >"$dir/run/smtp-sink.out" 2>&1 &
  echo $! >"$dir/run/smtp-sink.pid"
  # "postfix start" daemonizes the master (PID in DIR/postfix/spool/pid/master.pid). The
  # queue was created above as /etc/postfix/postfix-files says, and quick-start skips
  # postfix-script's integrity checks (~0.45 s); on failure "postfix check" tells why.
  touch "$dir/postfix/spool/quick-start"
  if ! setsid postfix -c "$dir/postfix/etc" start </dev/null >"$dir/run/postfix.out" 2>&1; then
    log "postfix failed to start:"
    script -qc "postfix -c $dir/postfix/etc check" /dev/null >&2 || true
    dump_logs
    stop_servers "$dir"
    exit 1
  fi

  # Wait (bounded) until every listener accepts connections.
  local deadline=$((SECONDS + wait_limit_s)) pending=("${all_ports[@]}") left
  while ((${#pending[@]})); do
    left=()
    for port in "${pending[@]}"; do port_open "$port" || left+=("$port"); done
    pending=("${left[@]+"${left[@]}"}")
    ((${#pending[@]})) || break
    if ((SECONDS >= deadline)); then
      log "ports not accepting connections after ${wait_limit_s}s: ${pending[*]}"
      dump_logs
      stop_servers "$dir"
      exit 1
    fi
    local name
    for name in dovecot dovecot-notls smtp-sink; do
      if ! alive "$(cat "$dir/run/$name.pid")"; then
        log "$name exited during start"
        dump_logs
        stop_servers "$dir"
        exit 1
      fi
    done
    sleep 0.02
  done
  port_open "$closed_port" && die "MAILPOOL_TEST_CLOSED_PORT $closed_port unexpectedly open"

  write_env "$dir/env"
  cat "$dir/env"
}

# --- restart (reconnect tests) ---------------------------------------------------------------
# Waits (bounded) until every port in $2... is open ($1 = open) or closed ($1 = closed).
wait_ports() {
  local want=$1 deadline=$((SECONDS + wait_limit_s)) port
  shift
  for port in "$@"; do
    while true; do
      if port_open "$port"; then [[ $want == open ]] && break; else [[ $want == closed ]] && break; fi
      ((SECONDS < deadline)) || die "port $port not $want after ${wait_limit_s}s"
      sleep 0.02
    done
  done
}

# The ports of DIR's servers, from DIR/env (whatever MAILPOOL_TEST_PORT_BASE says now).
env_value() { sed -n "s/^$2=//p" "$1/env"; }

restart_dovecot() {
  local dir=$1 pid sid base left=()
  [[ -r $dir/env ]] || die "no $dir/env (not started?)"
  pid=$(pid_from "$dir/run/dovecot.pid" dovecot) || die "the Dovecot of $dir is not running"
  sid=$(ps -o sid= -p "$pid" | tr -dc 0-9)
  base=$(env_value "$dir" MAILPOOL_TEST_IMAP_PORT)
  # IMAP, IMAPS, POP3, POP3S, LMTP, SASL for Postfix: base+0..3, +7, +8.
  local ports=("$base" $((base + 1)) $((base + 2)) $((base + 3)) $((base + 7)) $((base + 8)))
  mapfile -t left < <(session_members "$sid")
  ((${#left[@]} == 0)) || kill -TERM "${left[@]}" 2>/dev/null || true
  wait_sessions_gone 10 "$sid" || die "Dovecot did not stop"
  wait_ports closed "${ports[@]}"
  setsid dovecot -c "$dir/dovecot/dovecot.conf" -F </dev/null >>"$dir/run/dovecot.out" 2>&1 &
  echo $! >"$dir/run/dovecot.pid"
  wait_ports open "${ports[@]}"
  # Postfix's idle smtpd processes still hold connections to the old SASL listener (their
  # next AUTH would fail once with 454): have the master replace them.
  postfix -c "$dir/postfix/etc" reload >>"$dir/run/postfix.out" 2>&1 || true
}

restart_postfix() {
  local dir=$1 base
  [[ -r $dir/env ]] || die "no $dir/env (not started?)"
  base=$(env_value "$dir" MAILPOOL_TEST_IMAP_PORT)
  # submission, smtps, injection: base+4..6; without SMTPUTF8: base+14.
  local ports=($((base + 4)) $((base + 5)) $((base + 6)) $((base + 14)))
  postfix -c "$dir/postfix/etc" stop >>"$dir/run/postfix.out" 2>&1 || die "postfix stop failed"
  wait_ports closed "${ports[@]}"
  touch "$dir/postfix/spool/quick-start"
  setsid postfix -c "$dir/postfix/etc" start </dev/null >>"$dir/run/postfix.out" 2>&1 ||
    die "postfix start failed"
  wait_ports open "${ports[@]}"
}

# --- main ---------------------------------------------------------------------------------
(($# == 2)) || usage
dir=$2
inet_interfaces=
case $1 in
  start) start_servers ;;
  stop) stop_servers "$dir" ;;
  restart-dovecot) restart_dovecot "$dir" ;;
  restart-postfix) restart_postfix "$dir" ;;
  env)
    [[ -r $dir/env ]] || die "no $dir/env (not started?)"
    cat "$dir/env"
    ;;
  run)
    start_servers
    trap 'stop_servers "$dir"; exit 0' TERM INT
    # Stay up while the daemons are up (a container exits if one of them dies).
    while :; do
      sleep 2 &
      wait $! || true
      for file in "$dir/run/dovecot.pid" "$dir/run/dovecot-notls.pid" \
        "$dir/run/smtp-sink.pid" "$dir/postfix/spool/pid/master.pid"; do
        alive "$(tr -dc 0-9 <"$file")" || {
          log "the daemon of $file is gone"
          dump_logs
          stop_servers "$dir"
          exit 1
        }
      done
    done
    ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# A guided tour of mailpool for newcomers: starts the local test mail servers (unless they
# already run) and a private mailpoold, then walks through the seed's story with the
# `mailpool` CLI, printing each command before running it:
#   open an SMTP session and send a message; open IMAP and POP3 sessions and find, read,
#   flag and delete it; queue an asynchronous send and watch its status.
# Steps the daemon does not implement yet are skipped with the daemon's own UNIMPLEMENTED
# answer (detected by running them, not assumed). Everything it started is stopped on exit.
#
# Usage: scripts/tour.sh [--build DIR] [--pause|--no-pause]
#   --build DIR   where mailpoold and mailpool were built (default: build/ in the repository;
#                 or set MAILPOOLD and MAILPOOL to the binaries)
#   --pause       wait for Enter between chapters (default when stdin is a terminal)
# Needs root to start the test servers (scripts/testservers.sh); when MAILPOOL_TEST_* is
# already in the environment (servers running, e.g. in CI), those servers are used.
# The tour reads and writes the mailbox of the test user frank (MAILPOOL_TEST_USER6).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$repo/build
pause=auto
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --pause) pause=yes; shift ;;
    --no-pause) pause=no; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "tour: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$pause" = auto ] && { [ -t 0 ] && pause=yes || pause=no; }
mailpoold=${MAILPOOLD:-$build/daemon/mailpoold}
mailpool=${MAILPOOL:-$build/client/cli/mailpool}
for bin in "$mailpoold" "$mailpool"; do
  [ -x "$bin" ] || { echo "tour: $bin not found: build first (ninja -C build mailpoold mailpool)" >&2; exit 1; }
done

# shellcheck source=lib/mailpoold.sh
. "$repo/scripts/lib/mailpoold.sh"
work=$(mktemp -d)
servers_dir=""
cleanup() {
  set +e
  if [ -n "${MAILPOOLD_PID:-}" ]; then stop_mailpoold >/dev/null 2>&1; fi
  [ -n "$servers_dir" ] && "$repo/scripts/testservers.sh" stop "$servers_dir" >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

bold=$'\e[1m' dim=$'\e[2m' off=$'\e[0m'
[ -t 1 ] || { bold="" dim="" off=""; }
chapter() {
  if [ "$pause" = yes ]; then read -rp "${dim}(Enter to continue)${off}" _ </dev/tty || true; fi
  echo
  echo "${bold}## $*${off}"
}
say() { echo "${dim}# $*${off}"; }

# mp ARGS...: prints the command, runs it; output on the terminal and in $work/out. Exits
# the tour on any failure except 22 (UNIMPLEMENTED), which it reports and returns.
# show ARGS...: the command line as one would type it (arguments quoted where needed).
show() {
  local line="\$ mailpool" a
  for a in "$@"; do
    if [[ $a =~ ^[A-Za-z0-9@%+=:,./_-]+$ ]]; then
      line+=" $a"
    else
      line+=" '${a//\'/\'\\\'\'}'"
    fi
  done
  echo "${bold}${line}${off}"
}
mp() {
  show "$@"
  local rc=0
  "$mailpool" "$@" >"$work/out" 2>"$work/err" || rc=$?
  cat "$work/out"
  if [ "$rc" -eq 22 ] && grep -q '^mailpool: UNIMPLEMENTED' "$work/err"; then
    say "skipped: the daemon answers $(head -1 "$work/err" | sed 's/^mailpool: //')"
    return 22
  fi
  if [ "$rc" -ne 0 ]; then
    cat "$work/err" >&2
    echo "tour: mailpool $1 failed (exit $rc)" >&2
    exit 1
  fi
  cat "$work/err" >&2
}
# Quietly (for polling): the same without printing.
mp_quiet() { "$mailpool" "$@" >"$work/out" 2>"$work/err"; }
first_id() {
  python3 -c 'import json,sys; m=json.load(open(sys.argv[1])).get("messages",[]); print(m[0]["id"] if m else "")' \
    "$work/out"
}

chapter "Setting up: test mail servers and the daemon"
if [ -z "${MAILPOOL_TEST_IMAPS_PORT:-}" ]; then
  servers_dir=$work/servers
  say "starting Dovecot and Postfix on loopback (scripts/testservers.sh start)"
  "$repo/scripts/testservers.sh" start "$servers_dir" >/dev/null
  set -a
  # shellcheck disable=SC1091
  . "$servers_dir/env"
  set +a
else
  say "using the test servers already running (MAILPOOL_TEST_* is set)"
fi
user=${MAILPOOL_TEST_USER6:?the test servers environment lacks MAILPOOL_TEST_USER6}
export TOUR_PASSWORD=${MAILPOOL_TEST_PASSWORD6:?}
start_mailpoold "$mailpoold" "$work" tour
export MAILPOOL_ADDR
say "mailpoold listens on $MAILPOOL_ADDR (MAILPOOL_ADDR tells the CLI where)"
mp health
tls=(--host 127.0.0.1 --ca "$MAILPOOL_TEST_CA" --user "$user" --password-env TOUR_PASSWORD)
marker="tour-$$-$RANDOM"

chapter "1. Send a message over SMTP"
say "A session is opened once and reused: the daemon keeps it logged in."
mp start smtp "${tls[@]}" --port "$MAILPOOL_TEST_SMTP_PORT" --name tour-smtp
printf 'Minutes of the tour.\n' >"$work/minutes.txt"
mp send tour-smtp --from "Frank <$user>" --to "$user" --subject "Welcome $marker" \
  --text "Hello Frank, this message was sent by the mailpool tour." --attach "$work/minutes.txt"

chapter "2. Find it over IMAP and POP3"
mp start imap "${tls[@]}" --port "$MAILPOOL_TEST_IMAPS_PORT" --security tls --name tour-imap
mp start pop3 "${tls[@]}" --port "$MAILPOOL_TEST_POP3S_PORT" --security tls --name tour-pop3
say "POP3 sees a snapshot of the maildrop: refresh until the message is delivered"
show search tour-pop3 --subject "$marker"
pop3_id=""
for _ in $(seq 1 100); do
  mp_quiet --json search tour-pop3 --subject "$marker" || { cat "$work/err" >&2; exit 1; }
  pop3_id=$(first_id)
  [ -n "$pop3_id" ] && break
  mp_quiet refresh tour-pop3 || { cat "$work/err" >&2; exit 1; }
done
[ -n "$pop3_id" ] || { echo "tour: the message never arrived over POP3" >&2; exit 1; }
"$mailpool" search tour-pop3 --subject "$marker"
imap_id=""
if mp search tour-imap --subject "$marker"; then
  mp_quiet --json search tour-imap --subject "$marker" && imap_id=$(first_id)
fi

chapter "3. Read it"
mp cat tour-pop3 "$pop3_id"
mp attachment tour-pop3 "$pop3_id" 2
if [ -n "$imap_id" ]; then mp cat tour-imap "$imap_id" --headers; fi

chapter "4. Flag it (IMAP)"
if [ -n "$imap_id" ]; then
  mp flag tour-imap "$imap_id" --add flagged --read || true
else
  mp flag tour-imap "$pop3_id" --add flagged --read || true
fi

chapter "5. Delete it"
if [ -n "$imap_id" ]; then
  mp rm tour-imap "$imap_id"
  say "POP3 sees the change after a refresh"
else
  say "IMAP mailbox calls are not available: deleting over POP3 instead (committed at QUIT)"
  mp rm tour-pop3 "$pop3_id"
fi
mp refresh tour-pop3
mp search tour-pop3 --subject "$marker"

chapter "6. Queue an asynchronous send and watch it"
mp start smtp "${tls[@]}" --port "$MAILPOOL_TEST_SMTP_PORT" --async --name tour-async
if mp send tour-async --from "$user" --to "$user" --subject "Queued $marker" \
  --text "Sent in the background by the daemon's outbox."; then
  send_id=$(sed -nE 's/^QUEUED (.+)$/\1/p' "$work/out")
  mp status --watch "$send_id" --for 60s
  mp outbox
fi

chapter "7. Clean up"
mp sessions
for s in tour-smtp tour-imap tour-pop3 tour-async; do mp close "$s"; done
say "That was the tour. Every command has --help; --json gives scripts JSON."

#!/usr/bin/env bash
# The mailpool CLI in one page: open IMAP, POP3 and SMTP sessions, list and read messages,
# export a mailbox, send, check an address, build and parse a message, close everything.
# The top README shows the part between the README markers verbatim; CI runs this file
# (client/readme_examples.py) against a real daemon and the test mail servers.
# Configuration: MAILPOOL_ADDR (the daemon), MAIL_HOST, MAIL_USER, MAIL_PASSWORD, MAIL_CA,
# MAIL_IMAPS_PORT, MAIL_POP3S_PORT, MAIL_SMTP_PORT; each falls back to the local test
# servers' MAILPOOL_TEST_* variables. MAILPOOL: the CLI to run (default: mailpool on PATH).
set -euo pipefail
mailpool() { "${MAILPOOL:-mailpool}" "$@"; }
HOST=${MAIL_HOST:-${MAILPOOL_TEST_HOST:-127.0.0.1}}
USER_NAME=${MAIL_USER:-${MAILPOOL_TEST_USER:?MAIL_USER}}
export MAIL_PASSWORD=${MAIL_PASSWORD:-${MAILPOOL_TEST_PASSWORD:?MAIL_PASSWORD}}
CA=${MAIL_CA:-${MAILPOOL_TEST_CA:-}}
CA_OPT=(${CA:+--ca "$CA"})
IMAPS_PORT=${MAIL_IMAPS_PORT:-${MAILPOOL_TEST_IMAPS_PORT:-993}}
POP3S_PORT=${MAIL_POP3S_PORT:-${MAILPOOL_TEST_POP3S_PORT:-995}}
SMTP_PORT=${MAIL_SMTP_PORT:-${MAILPOOL_TEST_SMTP_PORT:-587}}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cd "$out"

# README example begins
# an IMAP session over implicit TLS; the password comes from the environment
mailpool start imap --host "$HOST" --port "$IMAPS_PORT" --security tls "${CA_OPT[@]}" \
    --user "$USER_NAME" --password-env MAIL_PASSWORD --name ex-imap
mailpool sessions                      # your sessions as a table
mailpool show ex-imap                  # by name or by ID; --json for scripts
mailpool ls ex-imap --limit 5          # newest first: ID, date, from, size, subject
mailpool export ex-imap --mbox inbox.mbox   # or --maildir DIR; a progress bar on a terminal

# sending over SMTP (STARTTLS on the submission port), then reading it back over POP3
mailpool start smtp --host "$HOST" --port "$SMTP_PORT" "${CA_OPT[@]}" \
    --user "$USER_NAME" --password-env MAIL_PASSWORD --name ex-smtp
mailpool send ex-smtp --from "$USER_NAME" --to "$USER_NAME" --subject "Hi from the CLI" \
    --text "Hello" --attach inbox.mbox     # prints the result per recipient
mailpool check-address "$USER_NAME" --session ex-smtp
mailpool start pop3 --host "$HOST" --port "$POP3S_PORT" --security tls "${CA_OPT[@]}" \
    --user "$USER_NAME" --password-env MAIL_PASSWORD --name ex-pop3
mailpool search ex-pop3 --subject "Hi from the CLI"
id=$(mailpool --json search ex-pop3 --subject "Hi from the CLI" --limit 1 |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["messages"][0]["id"])')
mailpool cat ex-pop3 "$id"             # parsed; --raw streams the source, --headers
mailpool attachment ex-pop3 "$id" 2 > attached.mbox   # part IDs are shown by cat

# messages without a session
mailpool build --from "$USER_NAME" --to bob@example.org --subject Hi --text Hello > hi.eml
mailpool parse hi.eml

# wrong credentials: exit 26 (10 + UNAUTHENTICATED), the server's reply on stderr
MAIL_PASSWORD=wrong mailpool start imap --host "$HOST" --port "$IMAPS_PORT" --security tls \
    "${CA_OPT[@]}" --user "$USER_NAME" --password-env MAIL_PASSWORD || echo "exit $?"
mailpool close ex-imap && mailpool close ex-smtp && mailpool close ex-pop3
# README example ends
echo "example finished"

#!/usr/bin/env bash
# The WLangage email functions, one by one, with the mailpool CLI (see docs/wlangage.md,
# which shows each region below). Runs against a daemon ($MAILPOOL_ADDR) and a mail
# account: MAIL_HOST, MAIL_USER, MAIL_PASSWORD, MAIL_CA, MAIL_IMAPS_PORT, MAIL_POP3S_PORT,
# MAIL_SMTP_PORT (falling back to the test servers' MAILPOOL_TEST_*). MAILPOOL: the CLI.
set -euo pipefail
mailpool() { "${MAILPOOL:-mailpool}" "$@"; }
HOST=${MAIL_HOST:-${MAILPOOL_TEST_HOST:-127.0.0.1}}
ME=${MAIL_USER:-${MAILPOOL_TEST_USER:?MAIL_USER}}
export MAIL_PASSWORD=${MAIL_PASSWORD:-${MAILPOOL_TEST_PASSWORD:?MAIL_PASSWORD}}
CA=${MAIL_CA:-${MAILPOOL_TEST_CA:-}}
CA_OPT=(${CA:+--ca "$CA"})
IMAPS=${MAIL_IMAPS_PORT:-${MAILPOOL_TEST_IMAPS_PORT:-993}}
POP3S=${MAIL_POP3S_PORT:-${MAILPOOL_TEST_POP3S_PORT:-995}}
SMTP=${MAIL_SMTP_PORT:-${MAILPOOL_TEST_SMTP_PORT:-587}}
SUBJECT="guide cli $RANDOM$RANDOM"
json() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# README example begins EmailGetTimeOut
mailpool timeout                       # the daemon-wide server-silence timeout
mailpool timeout 10m                   # EmailSetTimeOut
# README example ends EmailGetTimeOut

# README example begins EmailStartSMTPSession
mailpool start smtp --host "$HOST" --port "$SMTP" --security starttls "${CA_OPT[@]}" \
    --user "$ME" --password-env MAIL_PASSWORD --name g-smtp
# README example ends EmailStartSMTPSession

# README example begins EmailCheckAddress
mailpool check-address "$ME" --session g-smtp    # exit 3 when not VALID
# README example ends EmailCheckAddress

# README example begins EmailSendMessage
mailpool send g-smtp --from "$ME" --to "$ME" --subject "$SUBJECT" --text "Hello from the guide"
# README example ends EmailSendMessage

# README example begins EmailStatus
mailpool start smtp --host "$HOST" --port "$SMTP" "${CA_OPT[@]}" --user "$ME" \
    --password-env MAIL_PASSWORD --async --name g-async
send_id=$(mailpool --json send g-async --from "$ME" --to "$ME" --subject "$SUBJECT async" \
    --text queued | json 'd["send_id"]')
mailpool status "$send_id" --watch --for 60s     # QUEUED ... SENT (or ERROR)
# README example ends EmailStatus
mailpool status "$send_id" | grep -q sent

# README example begins EmailStartIMAPSession
mailpool start imap --host "$HOST" --port "$IMAPS" --security tls "${CA_OPT[@]}" \
    --user "$ME" --password-env MAIL_PASSWORD --name g-imap
# README example ends EmailStartIMAPSession

# README example begins EmailNbMessage
mailpool mailbox g-imap                # count, unread, size, UIDVALIDITY
# README example ends EmailNbMessage

# README example begins EmailReadFirst
mailpool ls g-imap --limit 5 --view headers      # newest first; --oldest-first, --unread
# README example ends EmailReadFirst

for _ in $(seq 100); do
  [ "$(mailpool --json search g-imap --subject "$SUBJECT" | json 'len(d.get("messages", []))')" = 2 ] && break
  sleep 0.1
done

# README example begins EmailSeekFirst
id=$(mailpool --json search g-imap --subject "$SUBJECT" --unread --limit 1 |
    json 'd["messages"][0]["id"]')
# README example ends EmailSeekFirst

# README example begins EmailReadMessage
mailpool cat g-imap "$id"              # --headers: EmailReadMessageHeader; --raw: the source
# README example ends EmailReadMessage

# README example begins EmailChangeStatus
mailpool flag g-imap "$id" --read      # --unread
# README example ends EmailChangeStatus

# README example begins EmailListFolder
mailpool folders g-imap
mailpool folders g-imap select INBOX   # EmailChangeFolder
# README example ends EmailListFolder

# README example begins EmailDeleteMessage
mailpool --json search g-imap --subject "$SUBJECT" |
    json '" ".join(m["id"] for m in d["messages"])' | xargs "${MAILPOOL:-mailpool}" rm g-imap
# README example ends EmailDeleteMessage

# README example begins EmailStartSession
mailpool start pop3-smtp --host "$HOST" --port "$POP3S" --security tls --smtp-port "$SMTP" \
    --smtp-security starttls "${CA_OPT[@]}" --user "$ME" --password-env MAIL_PASSWORD --name g-legacy
mailpool mailbox g-legacy              # reads over POP3, sends over SMTP
# README example ends EmailStartSession

# README example begins EmailBuildSource
mailpool build --from "$ME" --to bob@example.org --subject Hi --text Hello > "$tmp/hi.eml"
mailpool parse "$tmp/hi.eml"           # EmailImportSource
# README example ends EmailBuildSource

# README example begins ErrorInfo
MAIL_PASSWORD=wrong mailpool start imap --host "$HOST" --port "$IMAPS" --security tls \
    "${CA_OPT[@]}" --user "$ME" --password-env MAIL_PASSWORD || echo "exit $?"   # 26
# README example ends ErrorInfo

# README example begins EmailCloseSession
for s in g-smtp g-async g-imap g-legacy; do mailpool close "$s"; done
# README example ends EmailCloseSession
echo "guide finished"

#!/usr/bin/env bash
# The `mailpool` CLI end to end: its own argument checks and --json output, then its
# subcommands against a private mailpoold and the real test mail servers (user frank:
# MAILPOOL_TEST_USER6). Calls whose daemon side has not landed yet must answer UNIMPLEMENTED
# (exit 22) with the daemon's message; when they land, this test fails on purpose and the
# UNIMPLEMENTED section is replaced by a real test.
# Usage: cli_test.sh MAILPOOLD MAILPOOL   (needs the MAILPOOL_TEST_* environment)
set -euo pipefail
daemon=$1
cli=$2
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib/mailpoold.sh
. "$here/../../scripts/lib/mailpoold.sh"
: "${MAILPOOL_TEST_USER6:?start the test servers first (scripts/testservers.sh)}"
user=$MAILPOOL_TEST_USER6
work=$(mktemp -d)
cleanup() {
  [ -n "${MAILPOOLD_PID:-}" ] && kill -9 "$MAILPOOLD_PID" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*"
  echo "--- stdout"; head -c 4000 "$work/out" 2>/dev/null || true
  echo "--- stderr"; head -c 4000 "$work/err" 2>/dev/null || true
  exit 1
}
step() { echo "== $*"; }

# expect CODE ARGS...: runs `mailpool ARGS...`; stdout in $work/out, stderr in $work/err.
expect() {
  local want=$1 rc=0
  shift
  "$cli" "$@" >"$work/out" 2>"$work/err" </dev/null || rc=$?
  [ "$rc" -eq "$want" ] || fail "mailpool $*: exit $rc, want $want"
}
# has FILE REGEX: FILE (out or err) has a line matching REGEX.
has() { grep -qE -- "$2" "$work/$1" || fail "$1 lacks /$2/"; }
# json FILE EXPR: the JSON document in FILE (out or err), bound to d, satisfies EXPR.
# jsonl FILE EXPR: the same for JSON Lines, d being the list of objects.
json_check() {
  python3 - "$1" "$work/$2" "$3" <<'PY' || fail "JSON check on $2 failed: $3"
import base64, json, sys
mode, path, expr = sys.argv[1:]
text = open(path, encoding="utf-8").read()
d = [json.loads(l) for l in text.splitlines() if l.strip()] if mode == "lines" else json.loads(text)
if not eval(expr, {"d": d, "base64": base64}):
    sys.exit(f"false: {expr}\n{json.dumps(d, indent=1)[:3000]}")
PY
}
json() { json_check doc "$@"; }
jsonl() { json_check lines "$@"; }

# The IMAP subcommands end to end (folders, append from a Maildir with a progress bar, flag,
# cp, mv, rm --mode flag, expunge, watch, export). Passed against the IMAP mailbox backend
# (branch imapb at d7a9495) before it landed; until it lands, the daemon answers
# UNIMPLEMENTED and the block "not implemented by the daemon yet: IMAP" below asserts that.
# When it lands, replace that block by a call to this function. Needs $count and $work/md
# (the Maildir export), $marker, $id1 and the f-imap session.
imap_mailbox_tests() {
  step "IMAP mailbox: folders, append (Maildir, progress), flags, cp, mv, rm, expunge, watch, export"
  folder="cli-$marker"
  expect 0 --json folders f-imap
  json out '"INBOX" in [f["name"] for f in d["folders"]]'
  expect 0 folders f-imap create "$folder" --subscribe
  has out "^created $folder$"
  expect 0 folders f-imap create "$folder-2"
  expect 16 folders f-imap create "$folder"
  has err '^mailpool: ALREADY_EXISTS'
  expect 0 folders f-imap --pattern "$folder*" --status
  has out "^$folder +- +yes +0 +0"
  has out "^$folder-2 +- +no +0 +0"
  expect 0 --json --progress append f-imap "$folder" --maildir "$work/md" --flags Work
  json out 'len(d["appended"]) == '"$count"' and all(a["id"] for a in d["appended"])'
  has err 'append \[#+\] [0-9]+/[0-9]+'
  expect 0 append f-imap "$folder" "$work/two.eml" --flags seen,flagged
  has out "two.eml +.+ +[0-9]+$"
  expect 0 --json mailbox f-imap --folder "$folder"
  json out 'd["message_count"] == '"$((count + 1))"
  expect 0 --json search f-imap --folder "$folder" --subject "$marker one"
  json out 'len(d["messages"]) == 1 and "Work" in d["messages"][0]["flags"].get("keywords", [])'
  id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"][0]["id"])' "$work/out")
  expect 0 --json flag f-imap "$id" --add flagged --read --remove Work
  json out 'd["messages"][0]["flags"].get("flagged") and d["messages"][0]["flags"].get("seen") and not d["messages"][0]["flags"].get("keywords")'
  expect 0 flag f-imap "$id" --unread
  has out "^$id +flagged(,recent)?$"  # \\Recent is the server's to report
  expect 0 flag f-imap "$id" --set ""
  has out "^$id +(-|recent)$"
  expect 0 --json cp f-imap "$id" "$folder-2"
  json out 'len(d["copies"]) == 1 and d["copies"][0]["source_id"] == "'"$id"'" and d["copies"][0]["new_id"]'
  expect 0 mv f-imap "$id" "$folder-2"
  has out "^$id +"
  expect 15 cat f-imap "$id"
  expect 0 --json ls f-imap --folder "$folder-2"
  json out 'len(d["messages"]) == 2'
  ids2=$(python3 -c 'import json,sys; print(" ".join(m["id"] for m in json.load(open(sys.argv[1]))["messages"]))' "$work/out")
  expect 0 folders f-imap select "$folder-2"
  has out "^folder: +$folder-2$"
  read -ra two <<<"$ids2"
  expect 0 --json rm f-imap "${two[0]}" --mode flag
  json out 'd["deleted_count"] == 1'
  expect 0 --json expunge f-imap
  json out 'd["expunged_ids"] == ["'"${two[0]}"'"]'
  # watch: READY, then NEW for a message appended meanwhile (JSON Lines).
  "$cli" --json watch f-imap --count 2 --for 60s >"$work/watch.out" 2>"$work/watch.err" &
  watch_pid=$!
  for _ in $(seq 1 600); do
    grep -q MAILBOX_EVENT_TYPE_READY "$work/watch.out" 2>/dev/null && break
    kill -0 $watch_pid 2>/dev/null || break
    sleep 0.05
  done
  grep -q MAILBOX_EVENT_TYPE_READY "$work/watch.out" || fail "watch: no READY event ($(cat "$work/watch.err"))"
  # Another client delivers (a second session: a call on the watching session itself is not
  # what this checks).
  expect 0 start imap "${common[@]}" --port "$MAILPOOL_TEST_IMAPS_PORT" --security tls \
    --name f-imap2
  expect 0 append f-imap2 "$folder-2" "$work/two.eml"
  expect 0 close f-imap2
  rc=0
  wait $watch_pid || rc=$?
  [ "$rc" -eq 0 ] || fail "watch exit $rc: $(cat "$work/watch.err")"
  cp "$work/watch.out" "$work/out"
  jsonl out '[e["type"] for e in d] == ["MAILBOX_EVENT_TYPE_READY", "MAILBOX_EVENT_TYPE_NEW"]'
  # Ctrl-C ends a watch cleanly (exit 0).
  "$cli" watch f-imap >"$work/watch.out" 2>"$work/watch.err" &
  watch_pid=$!
  for _ in $(seq 1 600); do
    grep -q ' ready ' "$work/watch.out" 2>/dev/null && break
    kill -0 $watch_pid 2>/dev/null || break
    sleep 0.05
  done
  kill -INT $watch_pid
  rc=0
  wait $watch_pid || rc=$?
  [ "$rc" -eq 0 ] || fail "watch after SIGINT: exit $rc: $(cat "$work/watch.err")"
  expect 0 --json export f-imap --folder "$folder" --mbox "$work/imap.mbox"
  json out 'd["messages"] == '"$count"
  expect 0 folders f-imap rename "$folder" "$folder-renamed"
  has out "^renamed $folder to $folder-renamed$"
  expect 0 folders f-imap select INBOX
  expect 0 folders f-imap delete "$folder-renamed"
  expect 0 folders f-imap delete "$folder-2"
  expect 0 --json folders f-imap --pattern "$folder*"
  json out 'not d.get("folders")'
}

commands=(start sessions show close timeout health mailbox ls cat attachment search rm refresh
  folders flag mv cp append expunge watch export send outbox status check-address build parse
  completion manpage contexts)

step "usage and --help"
expect 2
has err '^Usage: mailpool'
expect 0 --help
for c in "${commands[@]}"; do has out "^  $c "; done
for c in "${commands[@]}"; do
  expect 0 "$c" --help
  has out "^Usage: mailpool $c"
done
expect 0 send -h
has out '^Usage: mailpool send'

step "completion scripts and the man page, made from the command table"
expect 0 completion bash
cp "$work/out" "$work/mailpool.bash"
# In a bash that loaded the script: a subcommand, an option of it, a fixed word, and a
# global option's value skipped when finding the command.
bash --norc --noprofile -c '
  set -e
  source "$1"
  complete -p mailpool | grep -q _mailpool
  c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _mailpool; echo "${COMPREPLY[*]}"; }
  [ "$(c mailpool sessi)" = sessions ]
  [ "$(c mailpool --addr unix:/x star)" = start ]
  [ "$(c mailpool start --allow-i)" = --allow-insecure-auth ]
  [ "$(c mailpool --json start --folde)" = --folder ]
  [ "$(c mailpool completion "")" = "bash zsh fish" ]
  [ "$(c mailpool start po)" = "pop3 pop3-smtp" ]
' _ "$work/mailpool.bash" || fail "bash completion"
for shell in zsh fish; do
  expect 0 completion "$shell"
  for c in "${commands[@]}"; do has out "(^| |')$c[ :)]"; done
  if command -v "$shell" >/dev/null; then "$shell" -n "$work/out" || fail "$shell syntax"; fi
done
has out "__fish_seen_subcommand_from start' -l host -r"
# zsh: the completion function with the completion system's builtins stubbed to print
# what they are given.
if command -v zsh >/dev/null; then
  expect 0 completion zsh
  cp "$work/out" "$work/_mailpool"
  zsh -f -c '
    compdef() { :; }
    compadd() { [[ $1 == -- ]] && shift; print -l -- "$@"; }
    _describe() { print -l -- "${(@P)2}"; }
    _files() { print FILES; }
    source "$1"
    words=(mailpool sess); CURRENT=2; _mailpool
    words=(mailpool --addr x start --ho); CURRENT=5; _mailpool
    words=(mailpool completion ""); CURRENT=3; _mailpool' _ "$work/_mailpool" \
    >"$work/out" 2>"$work/err" || fail "zsh completion"
  has out '^sessions:list your sessions$'
  has out '^--host$'
  has out '^fish$'
fi
# fish completes from the loaded script.
expect 0 completion fish
if command -v fish >/dev/null; then
  cp "$work/out" "$work/mailpool.fish"
  fish -c "source $work/mailpool.fish; complete -C 'mailpool sess'; complete -C 'mailpool start --ho'" \
    >"$work/out" 2>"$work/err" || fail "fish completion"
  has out $'^sessions\tlist your sessions$'
  has out '^--host$'
fi
expect 2 completion tcsh
expect 0 manpage
cp "$work/out" "$work/mailpool.1"
# groff -ww: every warning; -z: no output, only the checks. A warning is a failure.
groff -man -Tutf8 -ww -z "$work/mailpool.1" 2>"$work/err" || fail "groff failed"
[ ! -s "$work/err" ] || fail "groff warnings"
MANWIDTH=100 man -l "$work/mailpool.1" 2>"$work/err" >"$work/out" </dev/null || fail "man -l"
has out '^NAME'
has out '^ +mailpool - command-line client for mailpoold'
for c in "${commands[@]}"; do has out "^ +Usage: mailpool $c"; done
has out 'Exit codes: 0 ok'

step "argument validation (exit 2 before any call)"
printf 'From: a@example.test\r\nTo: b@example.test\r\nSubject: x\r\n\r\nbody\r\n' >"$work/x.eml"
while IFS='|' read -r message args; do
  read -ra argv <<<"$args"
  expect 2 "${argv[@]}"
  has err "$message"
done <<EOF
unknown command: frobnicate|frobnicate
unknown option --bogus for ls|ls s --bogus
--limit needs a value|ls s --limit
--unread takes no value|ls s --unread=yes
--limit: not a number|ls s --limit 0
--view: basic, headers|ls s --view weird
missing session|ls
missing message ID|cat s
flag needs --add|flag s id1
--set replaces every flag|flag s id1 --set seen --add flagged
not a settable system flag|flag s id1 --add \\Recent
--read and --unread together|flag s id1 --read --unread
missing message IDs and a destination folder|mv s Archive
unknown folders action: frob|folders s frob X
missing folder name|folders s create
--mode: expunge, flag or trash|rm s id1 --mode shred
missing message IDs|rm s
export needs --mbox FILE or --maildir DIR|export s
export needs --mbox FILE or --maildir DIR|export s --mbox a --maildir b
append needs message files|append s INBOX
append needs message files|append s INBOX $work/x.eml --mbox $work/x.eml
cannot read|append s INBOX $work/missing.eml
send needs a recipient|send s --from a@example.test
needs --from|send s --to a@example.test
--to builds a message: not with a message file|send s $work/x.eml --to b@example.test
--priority: high, normal or low|send s --from a@example.test --to b@example.test --priority urgent
--header: "Name: value"|send s --from a@example.test --to b@example.test --header NoColon
--mode server needs --session|check-address a@example.test --mode server
status needs one send ID|status
--state: queued, pending|outbox --state lost
unknown outbox action: frob|outbox frob
--count: not a number|watch s --count 0
--for: not a duration|status --watch --for forever
unknown protocol: ftp|start ftp --host h
start needs --host|start imap
--port: not a number|start imap --host h --port 70000
give one of a password, a token or a refresh token|start imap --host h --password p --token t
needs --oauth2-provider NAME or --token-endpoint|start imap --host h --user u --refresh-token-env HOME
go with --refresh-token-env|start imap --host h --user u --password p --oauth2-provider g
unknown option --json5|--json5 health
EOF
expect 2 flag s id1 --add "bad word"
has err 'a keyword has no spaces'

step "daemon"
# The OAuth2 test server as the daemon's provider "test" (refresh tokens, issue 18).
printf '%s\n' "$MAILPOOL_TEST_OAUTH2_CLIENT_SECRET" >"$work/oauth2-client-secret"
printf '[test]\ntoken_endpoint = %s\nclient_id = %s\nclient_secret_file = %s\n' \
  "$MAILPOOL_TEST_OAUTH2_TOKEN_ENDPOINT" "$MAILPOOL_TEST_OAUTH2_CLIENT_ID" \
  "$work/oauth2-client-secret" >"$work/oauth2-providers"
start_mailpoold "$daemon" "$work" clitest --oauth2_providers_file "$work/oauth2-providers" \
  --oauth2_ca_file "$MAILPOOL_TEST_CA" || fail "mailpoold did not start"
export MAILPOOL_ADDR
expect 0 health
[ "$(cat "$work/out")" = SERVING ] || fail "health is not SERVING"
expect 0 health --json
json out 'd["status"] == "SERVING"'
# A daemon that cannot be reached: exit 4, not 24 (which means a mail server unreachable).
expect 4 --addr 127.0.0.1:1 health
has err '^mailpool: UNAVAILABLE'
has err 'daemon could not be reached'
expect 4 --json --addr 127.0.0.1:1 sessions
json err 'd["error"]["exit_code"] == 4 and d["error"]["code"] == "UNAVAILABLE"'
expect 0 --version
has out '^mailpool [0-9]+\.[0-9]+\.[0-9]+$'
expect 2 --call-timeout soon sessions
expect 0 --call-timeout 20s sessions
# --timeout: the alias, before the command or after one without its own --timeout.
expect 2 --timeout soon sessions
has err 'not a duration'
expect 0 --timeout 20s sessions
expect 0 sessions --timeout 20s
expect 2 sessions --timeout soon

step "sessions"
common=(--host 127.0.0.1 --ca "$MAILPOOL_TEST_CA" --user "$user"
  --password-env MAILPOOL_TEST_PASSWORD6)
# A global --timeout before `start` is the call's deadline, not the session's timeout.
expect 0 --json --timeout 60s start smtp "${common[@]}" --port "$MAILPOOL_TEST_SMTP_PORT" --name f-smtp
json out 'd["state"] == "SESSION_STATE_READY" and d["protocol"] == "PROTOCOL_SMTP" and not d.get("timeout_overridden")'
expect 0 start pop3 "${common[@]}" --port "$MAILPOOL_TEST_POP3S_PORT" --security tls \
  --name f-pop3
has out '^state: +ready'
expect 0 start imap "${common[@]}" --port "$MAILPOOL_TEST_IMAPS_PORT" --security tls \
  --name f-imap
expect 0 start smtp "${common[@]}" --port "$MAILPOOL_TEST_SMTP_PORT" --async --name f-async
expect 0 --json sessions
json out 'sorted(s["name"] for s in d["sessions"]) == ["f-async", "f-imap", "f-pop3", "f-smtp"]'
expect 0 sessions
has out '^ID +NAME +PROTOCOL +STATE +USER +SERVER$'
has out ' f-pop3 +pop3 +ready '
expect 0 --json timeout --session f-pop3 90s
json out 'd["timeout"] == "90s" and d["timeout_overridden"]'
expect 0 timeout --session f-pop3 0
has out 'daemon default'
# OAuth2 with a refresh token: the daemon gets the access token from the provider itself.
expect 0 --json start imap --host 127.0.0.1 --ca "$MAILPOOL_TEST_CA" --user "$user" \
  --port "$MAILPOOL_TEST_IMAP_PORT" --refresh-token-env MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN6 \
  --oauth2-provider test --name f-oauth2
json out 'd["state"] == "SESSION_STATE_READY" and d["connections"][0]["mechanism"] in ("AUTH_MECHANISM_OAUTHBEARER", "AUTH_MECHANISM_XOAUTH2")'
if grep -qF -- "$MAILPOOL_TEST_OAUTH2_REFRESH_TOKEN6" "$work/out" "$work/err"; then
  fail "start echoed the refresh token"
fi
expect 0 close f-oauth2
# New credentials for a healthy session: no login, no reconnect; the secret never echoed.
expect 0 --json update f-pop3 --password-env MAILPOOL_TEST_PASSWORD6 --timeout 75s
json out 'd["state"] == "SESSION_STATE_READY" and d.get("reconnect_count", 0) == 0 and d["timeout"] == "75s"'
if grep -qF -- "$MAILPOOL_TEST_PASSWORD6" "$work/out" "$work/err"; then fail "update echoed the password"; fi
# No password source and a terminal on stdin: the password is asked for, without echo.
python3 - "$cli" "$MAILPOOL_TEST_POP3S_PORT" "$MAILPOOL_TEST_CA" "$user" <<'PY' || fail "password prompt"
import os, pty, select, sys, termios, time
cli, port, ca, user = sys.argv[1:]
password = os.environ["MAILPOOL_TEST_PASSWORD6"]
pid, fd = pty.fork()
if pid == 0:
    os.execv(cli, [cli, "start", "pop3", "--host", "127.0.0.1", "--port", port, "--security",
                   "tls", "--ca", ca, "--user", user, "--name", "f-prompt"])
def read_until(want, seconds=30):
    out = b""
    end = time.monotonic() + seconds
    while want not in out and time.monotonic() < end:
        if select.select([fd], [], [], 1)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out
seen = read_until(b"Password for " + user.encode() + b": ")
assert seen.endswith(b": "), seen
# The prompt is out: echo must be off now, before anything is typed.
assert not termios.tcgetattr(fd)[3] & termios.ECHO, "echo is on at the prompt"
os.write(fd, password.encode() + b"\n")
rest = read_until(b"state:")
rest += read_until(b"\n", 10)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, (status, rest)
assert password.encode() not in seen + rest, "the password was echoed"
assert b"state:     ready" in rest, rest
PY
expect 0 close f-prompt
# Without a terminal there is no prompt: the request goes without a password (refused).
expect 13 start pop3 --host 127.0.0.1 --port "$MAILPOOL_TEST_POP3S_PORT" --security tls \
  --ca "$MAILPOOL_TEST_CA" --user "$user"
has err 'a password, an OAuth2 token or an OAuth2 refresh token is required'
if grep -q 'Password for' "$work/err"; then fail "prompted without a terminal"; fi
expect 13 update f-pop3 --user someone-else --password-env MAILPOOL_TEST_PASSWORD6
has err '^mailpool: INVALID_ARGUMENT'
expect 2 update f-pop3
expect 2 update f-pop3 --mechanism plain --timeout 0
expect 0 update f-pop3 --timeout 0
expect 0 --json timeout
json out 'd.endswith("s")'
expect 15 show no-such-session
has err '^mailpool: NOT_FOUND'
# Standard error details (grpc-status-details-bin): a refused login carries ErrorInfo with
# the server's reply; a bad field a BadRequest violation; an unreachable server RetryInfo.
printf 'wrong-password' > "$work/wrong"
expect 26 --json start imap --host 127.0.0.1 --port "$MAILPOOL_TEST_IMAPS_PORT" \
  --security tls --ca "$MAILPOOL_TEST_CA" --user "$user" --password-file "$work/wrong"
json err 'd["error"]["error_info"]["reason"] == "AUTH_FAILED" and d["error"]["error_info"]["domain"] == "mailpool.dev" and "NO" in d["error"]["error_info"]["metadata"]["server_reply"] and "retry_delay_seconds" not in d["error"]'
if grep -qF -- "wrong-password" "$work/err"; then fail "the refused password was echoed"; fi
expect 26 start imap --host 127.0.0.1 --port "$MAILPOOL_TEST_IMAPS_PORT" \
  --security tls --ca "$MAILPOOL_TEST_CA" --user "$user" --password-file "$work/wrong"
has err '^  reason: AUTH_FAILED$'
expect 13 --json start imap --host "" --user "$user" --password-file "$work/wrong"
json err 'd["error"]["field_violations"][0]["field"] == "server.host" and d["error"]["error_info"]["reason"] == "INVALID_FIELD"'
expect 13 start imap --host "" --user "$user" --password-file "$work/wrong"
has err '^  field server.host: '
expect 24 --json start imap --host 127.0.0.1 --port 1 --security tls --user "$user" \
  --password-file "$work/wrong"
json err 'd["error"]["retry_delay_seconds"] == 1 and d["error"]["error_info"]["reason"]'
# The daemon connection's own options fail before any call, naming the file, never a token.
printf 'tok en-secret\n' > "$work/bad-token"
expect 1 --daemon-token-file "$work/bad-token" sessions
has err 'bad-token: not a bearer token'
if grep -qF -- "en-secret" "$work/err"; then fail "a malformed token was echoed"; fi
expect 1 --daemon-token-file "$work/no-such-file" sessions
has err 'no-such-file: cannot read'
expect 1 --daemon-cert "$MAILPOOL_TEST_CA" sessions
has err 'needs both'
expect 15 --json show no-such-session
json err 'd["error"]["code"] == "NOT_FOUND" and d["error"]["exit_code"] == 15'

step "check-address"
expect 0 check-address "$user"
has out '^VALID'
expect 3 --json check-address 'not an address'
json out 'd["result"] == "CHECK_RESULT_INVALID" and d["reason"]'
expect 3 check-address "Frank <$user>" --mode strict
has out '^INVALID'
expect 0 --json check-address "$user" --session f-smtp
json out 'd["result"] == "CHECK_RESULT_VALID" and d["reply_code"] == 250'

step "send (synchronous)"
marker="cli-$$-$RANDOM"
printf 'attached bytes\n' >"$work/a.txt"
expect 0 --json send f-smtp --from "Frank <$user>" --to "$user" --subject "$marker one" \
  --text "hello from the cli test" --attach "$work/a.txt" --header "X-Cli-Test: $marker"
json out 'd["state"] == "SEND_STATE_SENT" and [r["accepted"] for r in d["recipients"]] == [True] and d["message_id"]'
expect 0 --json build --from "$user" --to "$user" --subject "$marker two" --text "second"
json out 'd["message_id"] and b"Subject: '"$marker"' two" in base64.b64decode(d["source"])'
expect 0 build --from "$user" --to "$user" --subject "$marker two" --text "second"
cp "$work/out" "$work/two.eml"
expect 0 send f-smtp "$work/two.eml"
has out '^SENT '
has out "^$user +accepted +250 "
expect 3 send f-smtp --from "$user" --to "$user" --to "nobody-$marker@example.test" \
  --subject "$marker partial" --text "one refused"
has out "^nobody-$marker@example.test +REFUSED +5[0-9][0-9] "
has out "^$user +accepted"
expect 22 send f-smtp --from "$user" --to "$user" --subject x --text x --idempotency-key k1
has err 'UNIMPLEMENTED: idempotency_key is not implemented yet'

step "read back over POP3"
found=0
for _ in $(seq 1 100); do
  expect 0 --json search f-pop3 --subject "$marker" --limit 100
  found=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("messages", [])))' "$work/out")
  [ "$found" -ge 3 ] && break
  expect 0 refresh f-pop3
done
[ "$found" -eq 3 ] || fail "want the 3 sent messages over POP3, found $found"
expect 0 --json search f-pop3 --subject "$marker" --since 2000-01-01
json out 'len(d["messages"]) == 3'
expect 0 --json search f-pop3 --subject "$marker" --before 2000-01-01
json out 'not d.get("messages")'
expect 0 --json search f-pop3 --subject "$marker one"
json out 'len(d["messages"]) == 1'
id1=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"][0]["id"])' "$work/out")
expect 0 search f-pop3 --subject "$marker"
has out '^ID +DATE +FROM +SIZE +SUBJECT$'
has out "$marker two"
expect 0 ls f-pop3 --limit 1000
has out "$marker one"
expect 0 --json ls f-pop3 --limit 1 --view basic
json out 'len(d["messages"]) == 1 and d["total_count"] >= 3'
expect 0 --json mailbox f-pop3
json out 'd["message_count"] >= 3'
expect 0 cat f-pop3 "$id1"
has out 'hello from the cli test'
has out '^Attach: +2 a.txt'
expect 0 cat f-pop3 "$id1" --raw
has out "^X-Cli-Test: $marker"
expect 0 --json cat f-pop3 "$id1" --headers
json out 'd["subject"].endswith(" one") and "text_body" not in d'
expect 0 attachment f-pop3 "$id1" 2
[ "$(cat "$work/out")" = "attached bytes" ] || fail "attachment bytes"
expect 0 --json attachment f-pop3 "$id1" 2
json out 'd["file_name"] == "a.txt" and base64.b64decode(d["content"]) == b"attached bytes\n"'
expect 15 cat f-pop3 "${id1}x"

step "export (mbox and Maildir, progress bar)"
expect 0 --json --progress export f-pop3 --mbox "$work/f.mbox"
json out 'd["format"] == "mbox" and d["messages"] >= 3 and d["bytes"] > 0'
has err '^.*export \[#+\] [0-9]+/[0-9]+'
# Rate and time: "ETA m:ss" (or "ETA --" before the first message) while running, the
# average rate and "in m:ss" on the final line.
has err 'export \[[#-]+\] [0-9]+/[0-9]+  [0-9.]+ (B|KiB|MiB)  [0-9.]+ (B|KiB|MiB)/s [0-9.]+/s  ETA (--|[0-9]+:[0-9]{2})'
has err 'export \[#+\] ([0-9]+)/\1  [0-9.]+ (B|KiB|MiB)  [0-9.]+ (B|KiB|MiB)/s [0-9.]+/s  in [0-9]+:[0-9]{2} *$'
count=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["messages"]))' "$work/out")
python3 - "$work/f.mbox" "$marker" "$count" <<'PY' || fail "mbox content"
import mailbox, sys
path, marker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
msgs = list(mailbox.mbox(path))
assert len(msgs) == count, (len(msgs), count)
subjects = sorted(m["Subject"] for m in msgs if marker in (m["Subject"] or ""))
assert subjects == [f"{marker} one", f"{marker} partial", f"{marker} two"], subjects
one = next(m for m in msgs if m["Subject"] == f"{marker} one")
assert one.is_multipart() and one.get_payload(1).get_payload(decode=True) == b"attached bytes\n"
PY
expect 0 export f-pop3 --maildir "$work/md"
[ ! -s "$work/err" ] || fail "a progress bar on a stderr that is not a terminal"
has out "^exported $count messages .* to Maildir $work/md"
python3 - "$work/md" "$marker" "$count" <<'PY' || fail "Maildir content"
import mailbox, sys
path, marker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
md = mailbox.Maildir(path, create=False)
assert len(md) == count, (len(md), count)
assert sum(marker in (m["Subject"] or "") for m in md) == 3
PY

step "IMAP-only calls on a POP3 session: FAILED_PRECONDITION"
while read -r args; do
  read -ra argv <<<"$args"
  expect 19 "${argv[@]}"
  has err '^mailpool: FAILED_PRECONDITION: .*IMAP'
done <<EOF
folders f-pop3
folders f-pop3 create Archive
flag f-pop3 $id1 --read
mv f-pop3 $id1 Archive
cp f-pop3 $id1 Archive
expunge f-pop3
append f-pop3 INBOX $work/two.eml
EOF

step "delete over POP3"
expect 0 --json search f-pop3 --subject "$marker"
ids=$(python3 -c 'import json,sys; print(" ".join(m["id"] for m in json.load(open(sys.argv[1]))["messages"]))' "$work/out")
read -ra del <<<"$ids"
[ "${#del[@]}" -eq 3 ] || fail "want 3 IDs to delete, got ${#del[@]}"
expect 0 --json rm f-pop3 "${del[@]}"
json out 'd["deleted_count"] == 3 and d["pending_until_quit"]'
expect 0 refresh f-pop3
has out '3 deletions committed'
expect 0 --json search f-pop3 --subject "$marker"
json out 'not d.get("messages")'

step "IMAP mailbox calls against the real Dovecot"
imap_mailbox_tests

step "asynchronous sending: send queues, status and outbox follow it"
expect 0 send f-async --from $user --to $user --subject "async $marker" --text queued
has out '^QUEUED sd[0-9a-z-]+_[0-9a-f]{32}$'
send_id=$(sed -nE 's/^QUEUED (.+)$/\1/p' "$work/out")
expect 0 status --watch "$send_id" --for 60s
has out "sent +$send_id"
expect 0 status "$send_id"
has out '^state: +sent$'
has out '^reply: +250'
expect 0 outbox
has out "$send_id"
expect 0 --json outbox --session f-async --state sent
json out '[s["send_id"] for s in d["sends"]] == ["'"$send_id"'"]'
expect 0 --json outbox --session f-async --state queued,pending
json out 'not d.get("sends")'
expect 19 outbox cancel "$send_id"
has err '^mailpool: FAILED_PRECONDITION'
for args in "status sd-none" "status --watch sd-none" "outbox cancel sd-none"; do
  read -ra argv <<<"$args"
  expect 15 "${argv[@]}"
  has err '^mailpool: NOT_FOUND'
done

step "close"
for s in f-smtp f-pop3 f-imap f-async; do
  expect 0 close "$s"
  has out "^closed $s"
done
expect 0 --json sessions
json out 'not d.get("sessions")'

step "daemon shutdown"
code=0
stop_mailpoold || code=$?
[ "$code" -eq 0 ] || fail "mailpoold exit code $code after SIGTERM"
if grep -q -- "$MAILPOOL_TEST_PASSWORD6" "$MAILPOOLD_LOG"; then fail "the password reached the log"; fi
echo "cli test passed"

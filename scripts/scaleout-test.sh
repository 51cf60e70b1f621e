#!/usr/bin/env bash
# Scale-out test: 3 mailpoold instances (--instance 0, 1, 2) behind nginx
# (deploy/nginx/mailpool-gateway.conf with its ports replaced), all native on loopback,
# against the real test mail servers. Through the gateway only: 300 sessions (IMAP, POP3,
# SMTP) are started and each is used; then instance 1 is killed (SIGKILL): every call for
# its sessions must fail with UNAVAILABLE (or NOT_FOUND) and a message that says to start
# again, every other session must keep working, and new sessions must still start.
# Uses the Python client (it sends x-mailpool-session), stubs from $BUILD_DIR.
# Prints the spread and "scaleout-test: N passed, N failed"; exit 0 only if nothing failed.
# --containers: the same with the images of scripts/build-images.sh (tag $MAILPOOL_IMAGE_TAG,
# default dev): 3 daemon containers + the gateway image + the mail server image in one
# network namespace, gateway and daemons published on loopback; the kill is podman kill.
# Env: BUILD_DIR; MAILPOOL_TEST_* of running test servers (else it starts its own at
# MAILPOOL_SCALEOUT_PORT_BASE, default 32200: servers base..base+14, daemons base+60..62,
# metrics base+70..72, gateway base+80).
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build}
base=${MAILPOOL_SCALEOUT_PORT_BASE:-32200}
gateway=$((base + 80))
mode=native
[ "${1:-}" = --containers ] && mode=containers
tag=${MAILPOOL_IMAGE_TAG:-dev}
name=mailpool-so-$base
log() { echo "scaleout-test: $*"; }
fail() { log "FAIL $*"; log "0 passed, 1 failed"; exit 1; }

command -v nginx >/dev/null || fail "nginx is not installed (scripts/install-deps.sh)"
[ -x "$build_dir/daemon/mailpoold" ] || fail "no $build_dir/daemon/mailpoold (build first)"
[ -r "$build_dir/client/python/gen/mailpool/v1/__init__.py" ] || fail "no Python stubs in $build_dir (build with tests)"
python=/usr/bin/python3; [ -x "$python" ] || python=python3
tmp=$(mktemp -d /tmp/mailpool-scaleout.XXXXXX) && chmod 755 "$tmp"
pids=()
own_servers=
cleanup() {
  # Only real PIDs: "kill 0" would signal this script's whole process group (CI's too).
  for p in "${pids[@]}"; do [ "${p:-0}" -gt 1 ] 2>/dev/null && kill "$p" 2>/dev/null; done
  [ -s "$tmp/nginx.pid" ] && kill "$(cat "$tmp/nginx.pid")" 2>/dev/null
  [ -n "$own_servers" ] && "$root/scripts/testservers.sh" stop "$tmp/servers" >/dev/null 2>&1
  if [ $mode = containers ]; then
    for c in gw d0 d1 d2 mail; do podman rm -f -v -t 0 "$name-$c" >/dev/null 2>&1; done
  fi
  { wait; } 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

victim_kill=
# The test is about routing: no per-caller StartSession rate limit (where the daemon has one).
extra=()
if [ $mode = containers ]; then
  help=$(podman run --rm --entrypoint /usr/local/bin/mailpoold localhost/mailpoold:"$tag" --helpfull 2>&1 || true)
else
  help=$("$build_dir/daemon/mailpoold" --helpfull 2>&1 || true)
fi
grep -q start_rate_per_caller <<<"$help" && extra+=(--start_rate_per_caller=0)
if [ $mode = containers ]; then
  podman image exists localhost/mailpoold:"$tag" || fail "no image localhost/mailpoold:$tag (scripts/build-images.sh)"
  for c in gw d0 d1 d2 mail; do podman rm -f -v -t 0 "$name-$c" >/dev/null 2>&1; done
  podman run -d --name "$name-mail" -p 127.0.0.1:$gateway:50551 -p 127.0.0.1:$((base + 60)):50561 \
    -p 127.0.0.1:$((base + 61)):50562 -p 127.0.0.1:$((base + 62)):50563 \
    localhost/mailpool-mailserver:"$tag" >/dev/null 2>>"$tmp/podman.log" || fail "mail server container"
  for ((i = 0; i < 120; i++)); do podman exec "$name-mail" test -s /srv/mail/env 2>/dev/null && break; sleep 0.25; done
  podman cp "$name-mail:/srv/mail/env" "$tmp/mail.env" || fail "mail server did not come up"
  set -a; . "$tmp/mail.env"; set +a
  for i in 0 1 2; do
    podman run -d --name "$name-d$i" --network container:"$name-mail" -e MAILPOOL_INSTANCE=$i \
      --read-only localhost/mailpoold:"$tag" --listen=0.0.0.0:$((50561 + i)) \
      --metrics_listen=127.0.0.1:$((9571 + i)) "${extra[@]}" >/dev/null 2>>"$tmp/podman.log" || fail "daemon container $i"
  done
  sed -e "s/listen 127\.0\.0\.1:50551/listen 0.0.0.0:50551/" "$root/deploy/nginx/mailpool-gateway.conf" >"$tmp/nginx.conf"
  chmod 644 "$tmp/nginx.conf"
  podman run -d --name "$name-gw" --network container:"$name-mail" --read-only --tmpfs /tmp \
    -v "$tmp/nginx.conf:/etc/mailpool-gateway/nginx.conf:ro" localhost/mailpool-gateway:"$tag" \
    >/dev/null 2>>"$tmp/podman.log" || fail "gateway container"
  pids=()
  for i in 0 1 2; do
    pid=$(podman inspect --format '{{.State.Pid}}' "$name-d$i")
    # A daemon container that exited (a missing library, a bad flag) has PID 0.
    [ "${pid:-0}" -gt 1 ] 2>/dev/null ||
      fail "daemon container $i is not running: $(podman logs --tail 5 "$name-d$i" 2>&1 | tr '\n' ' ')"
    pids+=("$pid")
  done
  victim_kill="podman kill $name-d1"
elif [ -z "${MAILPOOL_TEST_IMAP_PORT:-}" ]; then
  own_servers=1
  MAILPOOL_TEST_PORT_BASE=$base "$root/scripts/testservers.sh" start "$tmp/servers" >/dev/null ||
    fail "test mail servers did not start"
  set -a; . "$tmp/servers/env"; set +a
fi

for i in 0 1 2; do
  [ $mode = native ] || break
  "$build_dir/daemon/mailpoold" --listen=127.0.0.1:$((base + 60 + i)) --instance=$i \
    --metrics_listen=127.0.0.1:$((base + 70 + i)) --outbox_path="$tmp/outbox-$i.db" \
    "${extra[@]}" >"$tmp/daemon-$i.log" 2>&1 &
  pids+=($!)
  disown $!   # no "Killed" job notice when the test kills instance 1
done

[ $mode = native ] && {
sed -e "s/127\.0\.0\.1:50551/127.0.0.1:$gateway/" -e "s/127\.0\.0\.1:50561/127.0.0.1:$((base + 60))/g" \
  -e "s/127\.0\.0\.1:50562/127.0.0.1:$((base + 61))/g" -e "s/127\.0\.0\.1:50563/127.0.0.1:$((base + 62))/g" \
  "$root/deploy/nginx/mailpool-gateway.conf" >"$tmp/nginx.conf"
nginx -p "$tmp/" -c "$tmp/nginx.conf" -t >"$tmp/nginx-t.log" 2>&1 || fail "nginx -t: $(cat "$tmp/nginx-t.log")"
nginx -p "$tmp/" -c "$tmp/nginx.conf" || fail "nginx did not start: $(tail -3 "$tmp/error.log")"
}
log "mode: $mode"

PYTHONPATH="$root/client/python:$build_dir/client/python/gen" PYTHONDONTWRITEBYTECODE=1 \
  SCALEOUT_GATEWAY=127.0.0.1:$gateway SCALEOUT_DIRECT="127.0.0.1:$((base + 60)),127.0.0.1:$((base + 61)),127.0.0.1:$((base + 62))" \
  SCALEOUT_VICTIM_PID=${pids[1]} SCALEOUT_VICTIM_KILL="$victim_kill" SCALEOUT_PIDS="${pids[*]}" "$python" - <<'PY'
import collections, concurrent.futures as cf, os, signal, sys, time
import grpc, mailpool

env = os.environ
host, gateway = env["MAILPOOL_TEST_HOST"], env["SCALEOUT_GATEWAY"]
users = [(env["MAILPOOL_TEST_USER"], env["MAILPOOL_TEST_PASSWORD"])] + [
    (env[f"MAILPOOL_TEST_USER{n}"], env[f"MAILPOOL_TEST_PASSWORD{n}"]) for n in range(2, 7)]
ports = {"imap": int(env["MAILPOOL_TEST_IMAP_PORT"]), "pop3": int(env["MAILPOOL_TEST_POP3_PORT"]),
         "smtp": int(env["MAILPOOL_TEST_SMTP_PORT"])}
passed = failed = 0
def check(ok, what):
    global passed, failed
    if ok: passed += 1; print(f"scaleout-test: ok   {what}")
    else: failed += 1; print(f"scaleout-test: FAIL {what}")

def wait_ready(addr):
    for _ in range(120):
        try:
            with mailpool.Client(addr, timeout=2) as c:
                c.get_default_timeout(); return True
        except Exception:
            time.sleep(0.25)
    return False
direct = env["SCALEOUT_DIRECT"].split(",")
check(all(wait_ready(a) for a in direct) and wait_ready(gateway), "3 daemons and the gateway answer")

client = mailpool.Client(gateway, timeout=60, start_timeout=120)
def start(i):
    proto = ("imap", "pop3", "smtp")[i % 3]
    user, password = users[i % len(users)]
    fn = {"imap": client.start_imap, "pop3": client.start_pop3, "smtp": client.start_smtp}[proto]
    s = fn(host, port=ports[proto], user=user, password=password, security="plain",
           allow_insecure_auth=True)
    return proto, s

def use(item):
    proto, s = item
    info = s.info()                           # GetSession
    if info.id != s.id: raise AssertionError("GetSession answered another session")
    if proto != "smtp": s.status()            # GetMailboxStatus (IMAP, POP3)
    return True

N = 300
t0 = time.time()
def _try(fn, arg):
    try: return fn(arg), None
    except Exception as e: return None, e
with cf.ThreadPoolExecutor(16) as ex:
    started = list(ex.map(lambda i: _try(start, i), range(N)))
sessions = [r for r, e in started if r]
errors = [e for r, e in started if e]
for e in errors[:3]: print("scaleout-test:   start error:", e)
check(len(sessions) == N, f"{len(sessions)}/{N} sessions started through the gateway ({time.time() - t0:.1f} s)")
def tag(s): return s.id.split("_", 1)[0][2:]
spread = collections.Counter(tag(s) for _, s in sessions)
print("scaleout-test: spread of new sessions over instances:",
      ", ".join(f"instance {k}: {spread[k]}" for k in sorted(spread)))
check(set(spread) == {"0", "1", "2"} and min(spread.values()) >= N // 10,
      "every instance got a share of the new sessions")
with cf.ThreadPoolExecutor(16) as ex:
    used = list(ex.map(lambda it: _try(use, it), sessions))
bad = [e for r, e in used if e]
for e in bad[:3]: print("scaleout-test:   use error:", e)
check(not bad, f"every session used through the gateway ({len(sessions) - len(bad)}/{len(sessions)} OK, {len(sessions) * 2 - len(sessions) // 3} calls)")

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"): return int(line.split()[1]) / 1024
print("scaleout-test: daemon memory with their sessions open:",
      ", ".join(f"instance {i}: {rss_mib(p):.0f} MiB RSS" for i, p in enumerate(env["SCALEOUT_PIDS"].split())))

# The session lives only on its owner: asked directly, another instance does not know it.
proto, s = sessions[0]
other = direct[(int(tag(s)) + 1) % 3]
try:
    with mailpool.Client(other, timeout=10) as c: c.get_session(s.id)
    check(False, "a session is unknown to the other instances (NOT_FOUND)")
except mailpool.MailpoolError as e:
    check(e.code == grpc.StatusCode.NOT_FOUND, f"a session is unknown to the other instances ({e.code.name})")

if env.get("SCALEOUT_VICTIM_KILL"):
    import subprocess
    subprocess.run(env["SCALEOUT_VICTIM_KILL"].split(), check=True, stdout=subprocess.DEVNULL)
else:
    os.kill(int(env["SCALEOUT_VICTIM_PID"]), signal.SIGKILL)
time.sleep(0.5)
print("scaleout-test: killed instance 1")
codes = collections.Counter()
lost_ok = kept_ok = 0
victims = [it for it in sessions if tag(it[1]) == "1"]
survivors = [it for it in sessions if tag(it[1]) != "1"]
def after(item):
    try:
        use(item); return "OK", ""
    except mailpool.MailpoolError as e:
        return e.code.name, e.message
with cf.ThreadPoolExecutor(16) as ex:
    victim_results = list(ex.map(after, victims))
    survivor_results = list(ex.map(after, survivors))
vcodes = collections.Counter(c for c, _ in victim_results)
scodes = collections.Counter(c for c, _ in survivor_results)
print(f"scaleout-test: after the kill: instance 1's {len(victims)} sessions: {dict(vcodes)}; "
      f"the other {len(survivors)}: {dict(scodes)}")
check(victims and all(c in ("UNAVAILABLE", "NOT_FOUND") for c, _ in victim_results),
      "every session of the killed instance fails with UNAVAILABLE/NOT_FOUND")
check(victims and all("start a new session" in m for c, m in victim_results if c == "UNAVAILABLE"),
      "their error says to start a new session")
check(scodes == collections.Counter({"OK": len(survivors)}), "every session of the other instances keeps working")
with cf.ThreadPoolExecutor(8) as ex:
    again = list(ex.map(lambda i: _try(start, i), range(30)))
new = [r for r, e in again if r]
for r, e in again:
    if e: print("scaleout-test:   start error after the kill:", e)
nspread = collections.Counter(tag(s) for _, s in new)
check(len(new) == 30 and "1" not in nspread, f"30 new sessions start after the kill ({dict(nspread)})")
with cf.ThreadPoolExecutor(16) as ex:
    closed = list(ex.map(lambda it: _try(lambda x: x[1].close(), it), survivors + new))
check(all(e is None for _, e in closed), f"{len(closed)} sessions closed through the gateway")
print(f"scaleout-test: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
PY
rc=$?
[ $rc -eq 0 ] || { for i in 0 1 2; do tail -3 "$tmp/daemon-$i.log" 2>/dev/null | sed "s/^/daemon $i: /"; done; tail -5 "$tmp/error.log" 2>/dev/null; [ $mode = containers ] && podman logs "$name-gw" 2>&1 | tail -5; }
exit $rc

#!/usr/bin/env python3
"""Keeps the clients' README examples honest: each README code block marked

    <!-- README example: client/python/examples/example.py -->
    <!-- README example: client/cpp/examples/example.cc#imap -->

must be, line for line (after removing common indentation), the region of that file between
its "README example begins[ NAME]" and "README example ends[ NAME]" comment lines; then every
example file is run against a private mailpoold and the real test mail servers (the
MAILPOOL_TEST_* environment) and must exit 0 printing "example finished". Also: the top
README's "mailpoold flags" section is one table (no other line between its rows) naming
every flag `mailpoold --help` lists for main.cc.

Usage: readme_examples.py BUILD_DIR            check and run; prints one PASS/FAIL line per
                                               check and "readme examples: N passed, M failed"
       readme_examples.py --write              rewrite the README blocks from the examples
"""
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
READMES = ["README.md", "client/python/README.md", "client/node/README.md",
           "client/cpp/README.md", "client/go/README.md", "docs/wlangage.md"]
MARKER = re.compile(r"^<!-- README example: (\S+?)(?:#(\w+))? -->$")


def region(path: str, name: str) -> str:
    lines = open(os.path.join(ROOT, path), encoding="utf-8").read().split("\n")
    suffix = f" {name}" if name else ""
    begin = [i for i, l in enumerate(lines) if l.strip().endswith(f"README example begins{suffix}")]
    end = [i for i, l in enumerate(lines) if l.strip().endswith(f"README example ends{suffix}")]
    if len(begin) != 1 or len(end) != 1 or end[0] < begin[0]:
        raise ValueError(f"{path}: no single region 'README example begins{suffix}'")
    return textwrap.dedent("\n".join(lines[begin[0] + 1:end[0]])).strip("\n")


def blocks(readme: str):
    """(marker line index, file, region name, block start, block end) per marker."""
    lines = open(os.path.join(ROOT, readme), encoding="utf-8").read().split("\n")
    for i, line in enumerate(lines):
        m = MARKER.match(line.strip())
        if not m:
            continue
        if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
            raise ValueError(f"{readme}:{i + 1}: the marker is not followed by a code block")
        end = next((k for k in range(i + 2, len(lines)) if lines[k].startswith("```")), None)
        if end is None:
            raise ValueError(f"{readme}:{i + 1}: unterminated code block")
        yield i, m.group(1), m.group(2) or "", i + 2, end


def write() -> None:
    for readme in READMES:
        path = os.path.join(ROOT, readme)
        lines = open(path, encoding="utf-8").read().split("\n")
        for _, file, name, start, end in reversed(list(blocks(readme))):
            lines[start:end] = region(file, name).split("\n")
        open(path, "w", encoding="utf-8").write("\n".join(lines))


def flag_table(build: str):
    """(ok, detail) for the top README's mailpoold flag table."""
    help_text = subprocess.run([os.path.join(build, "daemon", "mailpoold"), "--help"],
                               capture_output=True, text=True, timeout=30)
    text = help_text.stdout + help_text.stderr
    # The section of daemon/main.cc, wherever it sorts (its path is as the build saw it:
    # "../daemon/main.cc" in a build directory, "tmp/clone/daemon/main.cc" elsewhere).
    at = re.search(r"^  Flags from \S*daemon/main\.cc:$", text, re.M)
    main = text[at.start():] if at else ""
    end = main.find("\n\n  Flags from")
    main = main[:end] if end >= 0 else main
    flags = set(re.findall(r"^    --(\w+)", main, re.M))
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    start = readme.index("## mailpoold flags")
    section = readme[start:readme.index("\n## ", start + 1)].split("\n")
    rows = [i for i, l in enumerate(section) if l.startswith("| `--")]
    if not rows:
        return False, "no flag rows"
    gaps = [section[i] for i in range(rows[0], rows[-1] + 1) if not section[i].startswith("| ")]
    names = set()
    for i in rows:
        base = None
        for token in re.findall(r"`(--\w+|_\w+)`", section[i].split("|")[1]):
            if token.startswith("--"):
                base = token[2:]
                names.add(base)
            elif base:  # `--reconnect_backoff_initial` / `_max`
                names.add(base.rsplit("_", 1)[0] + token)
    missing = sorted(flags - names)
    unknown = sorted(names - flags)
    ok = not gaps and not missing and not unknown and len(flags) > 10
    return ok, f"lines inside the table: {gaps}\nmissing: {missing}\nnot flags: {unknown}"


def start_daemon(build: str, work: str):
    log = os.path.join(work, "mailpoold.log")
    env = dict(os.environ, XDG_STATE_HOME=os.path.join(work, "state"))
    proc = subprocess.Popen([os.path.join(build, "daemon", "mailpoold"), "--listen",
                             "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0", "--instance",
                             "readme"], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, env=env)
    for _ in range(300):
        text = open(log, encoding="utf-8", errors="replace").read()
        m = re.search(r'event="mailpoold listening".* port=(\d+)', text)
        if m:
            return proc, f"127.0.0.1:{m.group(1)}"
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mailpoold did not start:\n" + open(log).read())


def main() -> int:
    if sys.argv[1:] == ["--write"]:
        write()
        return 0
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build = os.path.abspath(sys.argv[1])
    passed = failed = 0

    def report(ok: bool, what: str, detail: str = "") -> None:
        nonlocal passed, failed
        print(f"{'PASS' if ok else 'FAIL'} {what}")
        if not ok and detail:
            print(textwrap.indent(detail.strip()[-3000:], "    "))
        passed, failed = passed + ok, failed + (not ok)

    files = set()
    for readme in READMES:
        found = list(blocks(readme))
        if not found:
            report(False, f"{readme}: no README example block")
        for line, file, name, start, end in found:
            files.add(file)
            text = open(os.path.join(ROOT, readme), encoding="utf-8").read().split("\n")
            shown = textwrap.dedent("\n".join(text[start:end])).strip("\n")
            want = region(file, name)
            report(shown == want, f"{readme}:{line + 1} shows {file}{'#' + name if name else ''}",
                   "\n".join(l for l in __import__("difflib").unified_diff(
                       want.split("\n"), shown.split("\n"), file, readme, lineterm="")))

    ok, detail = flag_table(build)
    report(ok, "README.md: one mailpoold flag table naming every flag of mailpoold --help",
           detail)

    runs = {
        "client/cli/examples/example.sh": ["bash", "client/cli/examples/example.sh"],
        "client/python/examples/example.py": ["/usr/bin/python3",
                                              "client/python/examples/example.py"],
        "client/node/examples/example.js": ["node", "client/node/examples/example.js"],
        "client/cpp/examples/example.cc": [os.path.join(build, "client", "cpp",
                                                        "mailpool_client_example")],
        # protoc-gen-go stubs + grpc-go from Debian's packages, built in GOPATH mode
        "client/go/example/main.go": ["bash", "client/go/run_example.sh"],
        # docs/wlangage.md: each WLangage function in four languages
        "docs/guide/guide.sh": ["bash", "docs/guide/guide.sh"],
        "docs/guide/guide.py": ["/usr/bin/python3", "docs/guide/guide.py"],
        "docs/guide/guide.js": ["node", "docs/guide/guide.js"],
        "docs/guide/guide.cc": [os.path.join(build, "client", "cpp", "mailpool_wlangage_guide")],
    }
    for file in sorted(files - runs.keys()):
        report(False, f"{file}: shown in a README but not run")
    with tempfile.TemporaryDirectory() as work:
        daemon, address = start_daemon(build, work)
        try:
            env = dict(os.environ, MAILPOOL_ADDR=address,
                       MAILPOOL=os.path.join(build, "client", "cli", "mailpool"),
                       PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "client", "python"),
                                                   os.path.join(build, "client", "python",
                                                                "gen")]),
                       PYTHONDONTWRITEBYTECODE="1")
            env.pop("MAILPOOL_TOKEN", None)
            env.pop("MAILPOOL_TOKEN_FILE", None)
            for file, argv in sorted(runs.items()):
                try:
                    out = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True,
                                         text=True, timeout=300, stdin=subprocess.DEVNULL)
                    ok = out.returncode == 0 and ("example finished" in out.stdout or
                                                  "guide finished" in out.stdout)
                    report(ok, f"{file} runs against mailpoold",
                           f"exit {out.returncode}\n{out.stdout}\n{out.stderr}")
                except (OSError, subprocess.TimeoutExpired) as e:
                    report(False, f"{file} runs against mailpoold", str(e))
        finally:
            daemon.terminate()
            daemon.wait(timeout=30)
    print(f"readme examples: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

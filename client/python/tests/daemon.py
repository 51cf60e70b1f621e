"""Test helpers: a private mailpoold on an ephemeral port, and the test server environment."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from typing import Dict

REQUIRED_ENV = ["MAILPOOL_TEST_HOST", "MAILPOOL_TEST_IMAP_PORT", "MAILPOOL_TEST_IMAPS_PORT",
                "MAILPOOL_TEST_POP3_PORT", "MAILPOOL_TEST_POP3S_PORT",
                "MAILPOOL_TEST_SMTP_PORT", "MAILPOOL_TEST_SMTPS_PORT", "MAILPOOL_TEST_USER",
                "MAILPOOL_TEST_PASSWORD", "MAILPOOL_TEST_CA"]


def test_env() -> Dict[str, str]:
    """The MAILPOOL_TEST_* environment; raises (the test fails, never skips) when absent."""
    missing = [k for k in REQUIRED_ENV + ["MAILPOOLD"] if not os.environ.get(k)]
    if missing:
        raise RuntimeError("missing environment " + ", ".join(missing) +
                           ": start the test servers (scripts/testservers.sh) and set MAILPOOLD")
    return dict(os.environ)


class Daemon:
    """mailpoold --listen 127.0.0.1:0 --instance test; stop() sends SIGTERM."""

    def __init__(self, path: str, instance: str = "test") -> None:
        self.log = tempfile.NamedTemporaryFile(prefix="mailpoold-", suffix=".log", delete=False)
        args = [path, "--listen", "127.0.0.1:0", "--metrics_listen", "127.0.0.1:0",
                "--instance", instance]
        self.proc = subprocess.Popen(args,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        self.port = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            m = re.search(r'event="mailpoold listening".* port=(\d+)', self.read_log())
            if m:
                self.port = int(m.group(1))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("mailpoold exited early:\n" + self.read_log())
            time.sleep(0.05)
        if not self.port:
            self.proc.kill()
            raise RuntimeError("mailpoold did not report its port:\n" + self.read_log())
        self.address = f"127.0.0.1:{self.port}"

    def read_log(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> int:
        """SIGTERM, wait; returns the exit code (kills after 20 s)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        os.unlink(self.log.name)
        return code

'use strict';
// Test helpers: the MAILPOOL_TEST_* environment (missing -> throw, so tests fail) and a
// private mailpoold on an ephemeral port, stopped with SIGTERM.
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const REQUIRED = ['MAILPOOLD', 'MAILPOOL_TEST_HOST', 'MAILPOOL_TEST_IMAP_PORT',
  'MAILPOOL_TEST_IMAPS_PORT', 'MAILPOOL_TEST_POP3S_PORT', 'MAILPOOL_TEST_SMTP_PORT',
  'MAILPOOL_TEST_SMTPS_PORT', 'MAILPOOL_TEST_USER', 'MAILPOOL_TEST_PASSWORD', 'MAILPOOL_TEST_CA'];

function testEnv() {
  const missing = REQUIRED.filter((k) => !process.env[k]);
  if (missing.length) {
    throw new Error(`missing environment ${missing.join(', ')}: start the test servers ` +
      '(scripts/testservers.sh) and set MAILPOOLD');
  }
  return process.env;
}

async function startDaemon(binary, instance = 'test') {
  const logPath = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mailpoold-')), 'daemon.log');
  const fd = fs.openSync(logPath, 'w');
  const args = ['--listen', '127.0.0.1:0', '--metrics_listen', '127.0.0.1:0', '--instance', instance];
  const proc = spawn(binary, args,
    { stdio: ['ignore', fd, fd] });
  fs.closeSync(fd);
  let exited = null;
  proc.on('exit', (code, signal) => { exited = { code, signal }; });
  const log = () => fs.readFileSync(logPath, 'utf8');
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const m = /event="mailpoold listening".* port=(\d+)/.exec(log());
    if (m) {
      return {
        address: `127.0.0.1:${m[1]}`, log,
        stop: () => new Promise((resolve) => {
          if (exited) { resolve(exited.code); return; }
          const timer = setTimeout(() => proc.kill('SIGKILL'), 20000);
          proc.on('exit', (code) => { clearTimeout(timer); fs.rmSync(path.dirname(logPath), { recursive: true, force: true }); resolve(code); });
          proc.kill('SIGTERM');
        }),
      };
    }
    if (exited) throw new Error(`mailpoold exited early:\n${log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  proc.kill('SIGKILL');
  throw new Error(`mailpoold did not report its port:\n${log()}`);
}

module.exports = { testEnv, startDaemon };

'use strict';
// mailpool Node client against a live mailpoold and the real test mail servers.
// Run: MAILPOOLD=.../mailpoold node --test test/   (with MAILPOOL_TEST_* exported)
const { test, before, after, describe } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const path = require('node:path');
const crypto = require('node:crypto');
const grpc = require('@grpc/grpc-js');
const mailpool = require('..');
const { testEnv, startDaemon } = require('./support/daemon');

let env;
let daemon;
let client;
const unique = (p) => `${p}-${crypto.randomBytes(4).toString('hex')}`;

before(async () => {
  env = testEnv();
  daemon = await startDaemon(env.MAILPOOLD);
  client = new mailpool.Client(daemon.address, { timeout: 30 });
});
after(async () => {
  if (client) client.close();
  if (daemon) assert.equal(await daemon.stop(), 0, 'mailpoold exit code after SIGTERM');
});

const creds = () => ({ host: env.MAILPOOL_TEST_HOST, user: env.MAILPOOL_TEST_USER,
  password: env.MAILPOOL_TEST_PASSWORD, caFile: env.MAILPOOL_TEST_CA });
const port = (n) => Number(env[`MAILPOOL_TEST_${n}_PORT`]);

async function rejectsWith(promise, codeName) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof mailpool.MailpoolError, `not a MailpoolError: ${e}`);
    assert.equal(e.codeName, codeName, e.message);
    assert.equal(e.code, grpc.status[codeName]);
    return e;
  }
  assert.fail(`expected ${codeName}`);
}

describe('sessions', () => {
  test('IMAP over implicit TLS: start, info, get by name, close', async () => {
    const s = await client.startImap({ ...creds(), port: port('IMAPS'),
      security: mailpool.Security.IMPLICIT_TLS, name: unique('node-imap') });
    assert.match(s.id, /^mstest_/);
    assert.equal(s.protocol, 'PROTOCOL_IMAP');
    const info = await s.info();
    assert.equal(info.state, 'SESSION_STATE_READY');
    assert.equal(info.user, env.MAILPOOL_TEST_USER);
    assert.equal(info.currentFolder, 'INBOX');
    assert.match(info.connections[0].tlsVersion, /^TLS/);
    assert.ok(info.connections[0].tlsVerified);
    assert.ok(info.connections[0].capabilities.includes('IMAP4rev1'));
    assert.ok(mailpool.toDate(info.createTime) instanceof Date);
    assert.equal((await client.getSession(s.name)).id, s.id);
    const reply = await s.close();
    assert.match(reply, /^\* BYE|^[A-Za-z0-9]+ OK|OK/);
    assert.equal(await s.close(), '');
    await rejectsWith(client.getSession(s.id), 'NOT_FOUND');
  });

  test('IMAP STARTTLS', async () => {
    await client.withSession(client.startImap({ ...creds(), port: port('IMAP'), security: 'starttls' }),
      async (s) => assert.equal((await s.info()).connections[0].security, 'SECURITY_STARTTLS'));
  });

  test('POP3', async () => {
    const s = await client.startPop3({ ...creds(), port: port('POP3S'), security: 'tls' });
    assert.equal(s.protocol, 'PROTOCOL_POP3');
    assert.match(await s.close(), /^\+OK/);
  });

  test('SMTP', async () => {
    const s = await client.startSmtp({ ...creds(), port: port('SMTP'), security: 'starttls',
      ehloName: 'client.test' });
    assert.match((await s.info()).connections[0].greeting, /^220/);
    await s.close();
  });

  test('POP3 + SMTP combined', async () => {
    const s = await client.startPop3Smtp({ ...creds(), port: port('POP3S'), security: 'tls',
      smtpPort: port('SMTPS') });
    const info = await s.info();
    assert.equal(info.protocol, 'PROTOCOL_POP3_SMTP');
    assert.deepEqual(info.connections.map((c) => c.protocol), ['PROTOCOL_POP3', 'PROTOCOL_SMTP']);
    await s.close();
  });

  test('withSession closes even when the callback throws', async () => {
    let id;
    await assert.rejects(client.withSession(
      client.startImap({ ...creds(), port: port('IMAPS'), security: 'tls' }),
      async (s) => { id = s.id; throw new Error('boom'); }), /boom/);
    await rejectsWith(client.getSession(id), 'NOT_FOUND');
  });

  test('release keeps the session; attach by ID', async () => {
    const s = await client.startPop3({ ...creds(), port: port('POP3S'), security: 'tls' });
    const id = s.release();
    const again = await client.session(id);
    assert.equal((await again.info()).state, 'SESSION_STATE_READY');
    assert.match(await client.closeSession(id), /^\+OK/);
  });

  test('list sessions page by page', async () => {
    const names = [unique('node-list'), unique('node-list'), unique('node-list')];
    const started = await Promise.all(names.map((name) =>
      client.startPop3({ ...creds(), port: port('POP3S'), security: 'tls', name })));
    try {
      const listed = new Map();
      for await (const s of client.sessions({ pageSize: 1 })) listed.set(s.name, s.id);
      started.forEach((s, i) => assert.equal(listed.get(names[i]), s.id));
      let n = 0;
      for await (const _ of client.sessions({ limit: 2 })) n += 1; // eslint-disable-line no-unused-vars
      assert.equal(n, 2);
    } finally {
      await Promise.all(started.map((s) => s.close()));
    }
    for await (const s of client.sessions()) assert.ok(!names.includes(s.name));
  });

  test('timeouts', async () => {
    const before = await client.getDefaultTimeout();
    try {
      assert.equal(await client.setDefaultTimeout(300), 300);
      assert.equal(await client.getDefaultTimeout(), 300);
    } finally {
      await client.setDefaultTimeout(before);
    }
    const s = await client.startImap({ ...creds(), port: port('IMAPS'), security: 'tls',
      sessionTimeout: 90 });
    try {
      assert.equal(Number(s.lastInfo.timeout.seconds), 90);
      assert.ok(s.lastInfo.timeoutOverridden);
      assert.equal(Number((await s.setTimeout(120)).timeout.seconds), 120);
      assert.equal((await s.setTimeout(null)).timeoutOverridden, false);
    } finally {
      await s.close();
    }
  });

  test('update credentials', async () => {
    const s = await client.startImap({ ...creds(), port: port('IMAPS'), security: 'tls' });
    try {
      // A healthy session keeps its connection: no login, no reconnect.
      const info = await s.updateCredentials({ password: creds().password });
      assert.equal(info.state, 'SESSION_STATE_READY');
      assert.equal(info.reconnectCount, 0);
      await assert.rejects(s.updateCredentials({ user: 'someone-else', password: 'x' }),
        (e) => e.code === grpc.status.INVALID_ARGUMENT);
      await assert.rejects(s.updateCredentials({ password: 'hunter2\r\nxyz' }),
        (e) => e.code === grpc.status.INVALID_ARGUMENT && !e.message.includes('hunter2'));
      await s.status();
    } finally {
      await s.close();
    }
  });
});

describe('errors', () => {
  test('wrong password: UNAUTHENTICATED with the server reply', async () => {
    const e = await rejectsWith(client.startImap({ ...creds(), port: port('IMAPS'), security: 'tls',
      password: 'wrong' }), 'UNAUTHENTICATED');
    assert.ok(e.detail, 'ErrorDetail trailer decoded');
    assert.ok(e.reason);
    assert.ok(e.serverReply);
    assert.ok(e.details.includes(e.serverReply));
    assert.ok(!e.command.includes('wrong'), 'password redacted');
    // The same in the standard place (grpc-status-details-bin).
    assert.ok(e.errorInfo, 'google.rpc.ErrorInfo decoded');
    assert.equal(e.errorInfo.reason, e.detail.reason);
    assert.equal(e.domain, 'mailpool.dev');
    assert.equal(e.errorInfo.metadata.server_reply, e.detail.serverReply);
    assert.equal(e.retryDelay, null, 'a refused login is not worth retrying');
    assert.deepEqual(e.fieldViolations, []);
  });

  test('standard error details of real refusals', async () => {
    const bad = await rejectsWith(client.startImap({ ...creds(), host: '', port: port('IMAPS'),
      security: 'tls' }), 'INVALID_ARGUMENT');
    assert.deepEqual(bad.fieldViolations.map((v) => v.field), ['server.host']);
    assert.ok(bad.fieldViolations[0].description);
    assert.equal(bad.reason, 'INVALID_FIELD');
    const closed = Number(process.env.MAILPOOL_TEST_CLOSED_PORT || 9);
    const down = await rejectsWith(client.startImap({ ...creds(), port: closed, security: 'tls' }),
      'UNAVAILABLE');
    assert.ok(down.retryDelay > 0, `retryDelay ${down.retryDelay}`);
    assert.equal(down.domain, 'mailpool.dev');
    const missing = await rejectsWith(client.getSession('no-such-session'), 'NOT_FOUND');
    assert.ok(missing.errorInfo);
    assert.equal(missing.retryDelay, null);
  });

  test('wrong password over POP3: -ERR reply', async () => {
    const e = await rejectsWith(client.startPop3({ ...creds(), port: port('POP3S'), security: 'tls',
      password: 'wrong' }), 'UNAUTHENTICATED');
    assert.match(e.serverReply, /^-ERR/);
  });

  test('CRLF in the user name: INVALID_ARGUMENT', async () => {
    await rejectsWith(client.startImap({ ...creds(), port: port('IMAPS'), security: 'tls',
      user: 'alice\r\nA1 LOGOUT' }), 'INVALID_ARGUMENT');
  });

  test('unknown session: NOT_FOUND', async () => {
    await rejectsWith(client.closeSession(`mstest_${'0'.repeat(32)}`), 'NOT_FOUND');
  });

  test('untrusted certificate: UNAVAILABLE', async () => {
    await rejectsWith(client.startImap({ ...creds(), caFile: undefined, port: port('IMAPS'),
      security: 'tls' }), 'UNAVAILABLE');
  });

  test('a method the daemon does not know: UNIMPLEMENTED', async () => {
    const raw = new grpc.Client(daemon.address, grpc.credentials.createInsecure());
    const stub = { noSuchCall: (req, md, opts, cb) => raw.makeUnaryRequest(
      '/mailpool.v1.SessionService/NoSuchCall', (x) => x, (x) => x, req, md, opts, cb) };
    try {
      const e = await rejectsWith(client.unary(stub, 'noSuchCall', Buffer.alloc(0)), 'UNIMPLEMENTED');
      assert.ok(e.details);
      assert.equal(e.detail, null);
    } finally {
      raw.close();
    }
  });

  test('daemon unreachable: UNAVAILABLE', async () => {
    const c = new mailpool.Client(`127.0.0.1:${env.MAILPOOL_TEST_CLOSED_PORT || 9}`, { timeout: 5 });
    try {
      await rejectsWith(c.getDefaultTimeout(), 'UNAVAILABLE');
    } finally {
      c.close();
    }
  });

  test('bad security name throws TypeError', async () => {
    await assert.rejects(async () => client.startImap({ ...creds(), security: 'bogus' }), TypeError);
  });
});

// Calls the daemon may still answer UNIMPLEMENTED: each works or rejects with exactly that.
async function worksOrUnimplemented(fn) {
  try {
    return await fn();
  } catch (e) {
    assert.ok(e instanceof mailpool.MailpoolError, String(e));
    assert.equal(e.codeName, 'UNIMPLEMENTED', e.message);
    return null;
  }
}
const collect = async (it) => { const out = []; for await (const x of it) out.push(x); return out; };

describe('calls not implemented by every daemon yet', () => {
  test('mailbox', async () => {
    await client.withSession(client.startImap({ ...creds(), port: port('IMAPS'), security: 'tls' }),
      async (s) => {
        const st = await worksOrUnimplemented(() => s.status());
        if (st) assert.equal(st.folder, 'INBOX');
        const msgs = await worksOrUnimplemented(() => collect(s.messages({ limit: 5, view: 'HEADERS' })));
        if (msgs && msgs.length) assert.equal((await s.getMessage(msgs[0].id)).id, msgs[0].id);
        const folders = await worksOrUnimplemented(() => s.folders());
        if (folders) assert.ok(folders.some((f) => f.name === 'INBOX'));
        await worksOrUnimplemented(() => collect(s.search({ subject: 'no such subject' })));
      });
    await client.withSession(client.startPop3({ ...creds(), port: port('POP3S'), security: 'tls' }),
      async (s) => {
        await worksOrUnimplemented(() => s.status());
        await worksOrUnimplemented(() => collect(s.messages({ limit: 5 })));
      });
  });

  test('send and message', async () => {
    const msg = mailpool.message({ from: env.MAILPOOL_TEST_USER, to: [env.MAILPOOL_TEST_USER],
      subject: `node client test ${unique('s')}`, text: 'hello\n' });
    const built = await worksOrUnimplemented(() => client.buildSource(msg));
    if (built) {
      assert.ok(built.source.toString().includes('Subject: node client test'));
      assert.equal((await client.parseSource(built.source)).message.subject, msg.subject);
    }
    await client.withSession(client.startSmtp({ ...creds(), port: port('SMTP'), security: 'starttls' }),
      async (s) => {
        const sent = await worksOrUnimplemented(() => s.send(msg));
        if (sent) assert.match(sent.serverReply, /^250/);
      });
    await worksOrUnimplemented(() => client.checkAddress('a@example.test'));
  });
});

test('a 70 kB attachment sent over SMTP, streamed back over POP3 in 8 KiB chunks', async () => {
  const user = env.MAILPOOL_TEST_USER;
  const subject = unique('node attachment stream');
  const content = crypto.randomBytes(70000);
  await client.withSession(client.startSmtp({ ...creds(), port: port('SMTP'), security: 'starttls' }),
    (smtp) => smtp.send(mailpool.message({ from: user, to: [user], subject, text: 'see attached',
      attachments: [{ fileName: 'blob.bin', content }] })));
  await client.withSession(client.startPop3({ ...creds(), port: port('POP3S'), security: 'tls' }),
    async (pop) => {
      let found = [];
      for (let i = 0; i < 100 && found.length === 0; i++) { // POP3 sees a snapshot
        found = await collect(pop.search({ subject }));
        if (found.length === 0) await pop.refresh();
      }
      assert.equal(found.length, 1);
      const full = await pop.getMessage(found[0].id, { view: 'FULL', maxAttachmentBytes: 1 });
      const part = full.attachments.find((a) => a.fileName === 'blob.bin');
      assert.ok(part.contentOmitted);
      const stream = pop.streamAttachment(found[0].id, { partId: part.partId, chunkSize: 8192 });
      assert.equal((await stream.attachment()).fileName, 'blob.bin');
      const chunks = await collect(stream);
      assert.ok(chunks.length > 1);
      assert.ok(chunks.every((c) => c.length > 0 && c.length <= 8192));
      assert.ok(Buffer.concat(chunks).equals(content));
      const { data } = await pop.getAttachment(found[0].id, { partId: part.partId });
      assert.ok(data.equals(content));
      await rejectsWith(collect(pop.streamAttachment(found[0].id, { partId: '9' })), 'NOT_FOUND');
      await pop.delete([found[0].id]);
    });
});

describe('helpers', () => {
  test('address forms', () => {
    assert.deepEqual(mailpool.address('a@x.test'), { name: '', address: 'a@x.test' });
    assert.deepEqual(mailpool.address('Alice Martin <alice@x.test>'),
      { name: 'Alice Martin', address: 'alice@x.test' });
    assert.deepEqual(mailpool.address(['Bob', 'bob@x.test']), { name: 'Bob', address: 'bob@x.test' });
  });
  test('message builder', () => {
    const m = mailpool.message({ from: 'Alice <a@x.test>', to: 'b@x.test', cc: ['c@x.test', 'd@x.test'],
      subject: 's', text: 't', headers: [['X-Test', '1']] });
    assert.equal(m.from.name, 'Alice');
    assert.deepEqual(m.to.map((a) => a.address), ['b@x.test']);
    assert.equal(m.cc.length, 2);
    assert.equal(m.textBody, 't');
    assert.deepEqual(m.headers, [{ name: 'X-Test', value: '1' }]);
  });
});

test('README example runs', async () => {
  const out = await new Promise((resolve, reject) => {
    execFile(process.execPath, [path.join(__dirname, '..', 'examples', 'example.js')],
      { env: { ...process.env, MAILPOOL_ADDR: daemon.address }, timeout: 120000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err}\n${stdout}\n${stderr}`)) : resolve(stdout)));
  });
  assert.match(out, /example finished/);
});

'use strict';
// The client's calls that the daemon does not implement yet, against an in-process fake
// gRPC server: requests carry the session (body and x-mailpool-session header), pages are
// followed, streams are joined, errors keep their detail. No mail servers needed.
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const mailpool = require('..');

const SID = `msfake_${'a'.repeat(32)}`;
const protoDir = path.join(__dirname, '..', '..', '..', 'proto');
let server;
let client;
const seen = [];

function checked(handler) {
  return (call, cb) => {
    seen.push(call.request);
    if (call.request.session !== SID || call.metadata.get('x-mailpool-session')[0] !== SID) {
      cb({ code: grpc.status.INVALID_ARGUMENT, details: 'session missing' });
      return;
    }
    handler(call, cb);
  };
}
function checkedStream(handler) {
  return (call) => {
    if (call.request.session !== SID || call.metadata.get('x-mailpool-session')[0] !== SID) {
      call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'session missing' });
      return;
    }
    handler(call);
  };
}

before(async () => {
  const def = protoLoader.loadSync(['mailpool/v1/session.proto', 'mailpool/v1/mailbox.proto',
    'mailpool/v1/send.proto', 'mailpool/v1/message.proto'],
  { keepCase: false, longs: Number, enums: String, defaults: true, oneofs: true, includeDirs: [protoDir] });
  const v1 = grpc.loadPackageDefinition(def).mailpool.v1;
  const root = new protobuf.Root();
  root.resolvePath = (o, t) => (t.startsWith('google/protobuf/') ? t : path.join(protoDir, t));
  root.loadSync('mailpool/v1/errors.proto');
  const ErrorDetail = root.lookupType('mailpool.v1.ErrorDetail');

  server = new grpc.Server();
  server.addService(v1.SessionService.service, {
    startSession: (call, cb) => {
      if (call.request.imap && call.request.imap.credentials.password === 'wrong') {
        const md = new grpc.Metadata();
        md.set('mailpool-error-bin', Buffer.from(ErrorDetail.encode(ErrorDetail.create({
          reason: 'AUTH_FAILED', command: 'LOGIN alice ***', serverReply: 'a1 NO nope' })).finish()));
        cb({ code: grpc.status.UNAUTHENTICATED, details: 'IMAP: a1 NO nope', metadata: md });
        return;
      }
      cb(null, { session: { id: SID, name: call.request.name, protocol: 'PROTOCOL_IMAP',
        state: 'SESSION_STATE_READY' } });
    },
    closeSession: (call, cb) => cb(null, { serverReply: '* BYE' }),
  });
  server.addService(v1.MailboxService.service, {
    listMessages: checked((call, cb) => {
      const start = Number(call.request.pageToken || 0);
      const size = call.request.pageSize || 50;
      const ids = [0, 1, 2, 3, 4, 5, 6].slice(start, start + size);
      cb(null, { messages: ids.map((i) => ({ id: `m${i}`, subject: `s${i}` })),
        nextPageToken: start + size < 7 ? String(start + size) : '', totalCount: 7 });
    }),
    searchMessages: checked((call, cb) => cb(null, {
      messages: [{ id: 'found', subject: call.request.criteria.subject }] })),
    getMessage: checked((call, cb) => {
      if (call.request.id === 'gone') cb({ code: grpc.status.NOT_FOUND, details: 'message gone' });
      else cb(null, { message: { id: call.request.id, textBody: call.request.view } });
    }),
    streamMessage: checkedStream((call) => {
      ['a', 'b', 'c'].forEach((d, i) => call.write({ data: Buffer.from(d), offset: i, totalSize: 3 }));
      call.end();
    }),
    getAttachment: checkedStream((call) => {
      call.write({ attachment: { fileName: 'a.txt', partId: call.request.partId } });
      call.write({ data: Buffer.from('hello ') });
      call.write({ data: Buffer.from('world'), offset: 6 });
      call.end();
    }),
    updateFlags: checked((call, cb) => cb(null, {
      messages: call.request.ids.map((id) => ({ id, flags: call.request.flags })) })),
    deleteMessages: checked((call, cb) => cb(null, { deletedCount: call.request.ids.length })),
    watchMailbox: checkedStream((call) => {
      call.write({ type: 'MAILBOX_EVENT_TYPE_READY' });
      call.write({ type: 'MAILBOX_EVENT_TYPE_NEW', id: 'm9' });
      call.end();
    }),
  });
  server.addService(v1.SendService.service, {
    sendMessage: checked((call, cb) => cb(null, { state: 'SEND_STATE_SENT',
      serverReply: `250 ok ${call.request.content}`,
      messageId: call.request.message ? call.request.message.subject : 'raw',
      recipients: ((call.request.envelope || {}).rcptTo || []).map((a) => ({ address: a, accepted: true })) })),
    listOutbox: (call, cb) => {
      const start = Number(call.request.pageToken || 0);
      cb(null, { sends: [{ sendId: `s${start}` }], nextPageToken: start ? '' : '1' });
    },
  });
  server.addService(v1.MessageService.service, {
    buildSource: (call, cb) => cb(null, {
      source: Buffer.from(`From: ${call.request.message.from.address}\r\nSubject: ${call.request.message.subject}\r\n`),
      messageId: 'x@y' }),
  });
  const port = await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0',
    grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  client = new mailpool.Client(`127.0.0.1:${port}`, { timeout: 10 });
});

after(() => {
  client.close();
  server.forceShutdown();
});

const collect = async (it) => { const out = []; for await (const x of it) out.push(x); return out; };
const start = () => client.startImap({ host: 'h', user: 'u', password: 'p' });

test('messages follow pages and stop at the limit', async () => {
  await client.withSession(start(), async (s) => {
    assert.deepEqual((await collect(s.messages({ pageSize: 3 }))).map((m) => m.id),
      ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    assert.deepEqual((await collect(s.messages({ limit: 4 }))).map((m) => m.id), ['m0', 'm1', 'm2', 'm3']);
    const page = await s.listMessages({ pageSize: 2, pageToken: '2', view: 'BASIC' });
    assert.deepEqual([page.messages.map((m) => m.id), page.nextPageToken], [['m2', 'm3'], '4']);
    const req = seen[seen.length - 1];
    assert.equal(req.view, 'MESSAGE_VIEW_BASIC');
    assert.equal(req.order, 'MESSAGE_ORDER_NEWEST_FIRST');
  });
});

test('getMessage, search, streamMessage, getAttachment', async () => {
  await client.withSession(start(), async (s) => {
    assert.equal((await s.getMessage('m1')).textBody, 'MESSAGE_VIEW_FULL');
    await assert.rejects(s.getMessage('gone'), (e) => e.codeName === 'NOT_FOUND');
    const found = await collect(s.search({ subject: 'invoice' }, { limit: 5 }));
    assert.deepEqual(found.map((m) => [m.id, m.subject]), [['found', 'invoice']]);
    assert.equal(Buffer.concat(await collect(s.streamMessage('m1'))).toString(), 'abc');
    const { attachment, data } = await s.getAttachment('m1', { partId: '2' });
    assert.deepEqual([attachment.fileName, attachment.partId, data.toString()], ['a.txt', '2', 'hello world']);
    // Streamed: metadata before the first chunk, then the chunks as the server sent them.
    const stream = s.streamAttachment('m1', { partId: '3' });
    assert.equal((await stream.attachment()).partId, '3');
    assert.deepEqual((await collect(stream)).map((b) => b.toString()), ['hello ', 'world']);
    // Leaving the loop early ends the call (no hang, no unhandled rejection).
    for await (const chunk of s.streamAttachment('m1', { partId: '2' })) {
      assert.equal(chunk.toString(), 'hello ');
      break;
    }
  });
});

test('flags, delete, watch', async () => {
  await client.withSession(start(), async (s) => {
    const out = await s.updateFlags(['m1', 'm2'], 'ADD', { flagged: true });
    assert.deepEqual(out.map((m) => [m.id, m.flags.flagged]), [['m1', true], ['m2', true]]);
    assert.equal((await s.markRead('m3'))[0].flags.seen, true);
    assert.equal((await s.delete(['m1', 'm2'], { mode: 'FLAG_ONLY' })).deletedCount, 2);
    assert.equal(seen[seen.length - 1].mode, 'DELETE_MODE_FLAG_ONLY');
    assert.deepEqual((await collect(s.watch())).map((e) => e.type),
      ['MAILBOX_EVENT_TYPE_READY', 'MAILBOX_EVENT_TYPE_NEW']);
  });
});

test('send, outbox, buildSource', async () => {
  const msg = mailpool.message({ from: 'a@x.test', to: 'b@x.test', subject: 'hi', text: 't' });
  await client.withSession(start(), async (s) => {
    const r = await s.send(msg, { envelope: { rcptTo: ['c@x.test'] } });
    assert.deepEqual([r.serverReply, r.messageId], ['250 ok message', 'hi']);
    assert.deepEqual(r.recipients.map((x) => x.address), ['c@x.test']);
    assert.equal((await s.send(null, { source: 'raw' })).serverReply, '250 ok source');
    assert.throws(() => s.send(msg, { source: 'both' }), TypeError);
  });
  assert.deepEqual((await collect(client.outbox())).map((x) => x.sendId), ['s0', 's1']);
  assert.ok((await client.buildSource(msg)).source.toString().includes('Subject: hi'));
});

test('error detail from the trailer', async () => {
  await assert.rejects(client.startImap({ host: 'h', user: 'u', password: 'wrong' }), (e) => {
    assert.equal(e.codeName, 'UNAUTHENTICATED');
    assert.deepEqual([e.reason, e.command, e.serverReply], ['AUTH_FAILED', 'LOGIN alice ***', 'a1 NO nope']);
    return true;
  });
});

test('a call the server does not implement: UNIMPLEMENTED', async () => {
  await assert.rejects(client.parseSource('Subject: x\r\n\r\n'), (e) => e.codeName === 'UNIMPLEMENTED');
});

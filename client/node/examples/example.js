'use strict';
// The mailpool Node client in one page: open an IMAP session, list the newest messages,
// read one, send one over SMTP, look at the sessions, handle errors, close everything.
// Configuration: MAILPOOL_ADDR (the daemon), MAIL_HOST, MAIL_USER, MAIL_PASSWORD, MAIL_CA,
// MAIL_IMAPS_PORT, MAIL_POP3S_PORT, MAIL_SMTP_PORT; each falls back to the local test
// servers' MAILPOOL_TEST_* variables. A daemon that authenticates its callers takes the
// token from $MAILPOOL_TOKEN (or the file $MAILPOOL_TOKEN_FILE).
const mailpool = require('..'); // require('mailpool') once installed

const env = (name, testName, dflt = '') => process.env[name] || process.env[testName] || dflt;
const host = env('MAIL_HOST', 'MAILPOOL_TEST_HOST', '127.0.0.1');
const user = env('MAIL_USER', 'MAILPOOL_TEST_USER');
const password = env('MAIL_PASSWORD', 'MAILPOOL_TEST_PASSWORD');
const caFile = env('MAIL_CA', 'MAILPOOL_TEST_CA') || undefined;
const imapsPort = Number(env('MAIL_IMAPS_PORT', 'MAILPOOL_TEST_IMAPS_PORT', '993'));
const pop3sPort = Number(env('MAIL_POP3S_PORT', 'MAILPOOL_TEST_POP3S_PORT', '995'));
const smtpPort = Number(env('MAIL_SMTP_PORT', 'MAILPOOL_TEST_SMTP_PORT', '587'));

async function main() {
  // README example begins
  const client = new mailpool.Client(); // $MAILPOOL_ADDR or 127.0.0.1:50551
  try {
    // 1. An IMAP session over implicit TLS.
    const imap = await client.startImap({ host, port: imapsPort, security: 'tls', user, password,
      caFile, name: 'example-imap' });
    try {
      const info = await imap.info();
      console.log(`IMAP session ${imap.id} (${info.connections[0].tlsVersion}), folder ${info.currentFolder}`);

      // 2. The 10 newest messages (pages are fetched as the loop goes), then read one.
      let first = null;
      for await (const m of imap.messages({ limit: 10, view: 'HEADERS' })) {
        first = first || m;
        console.log(`  ${mailpool.toDate(m.receiveTime)?.toISOString()}  ${m.from?.address}  ${m.subject}`);
      }
      if (first) {
        const full = await imap.getMessage(first.id, { view: 'FULL' });
        console.log(`  first message body: ${JSON.stringify(full.textBody.slice(0, 60))}`);
      }
    } finally {
      await imap.close(); // LOGOUT
    }

    // 3. Send a message over an SMTP session (STARTTLS on the submission port).
    await client.withSession(client.startSmtp({ host, port: smtpPort, security: 'starttls', user,
      password, caFile }), async (smtp) => {
      const msg = mailpool.message({ from: user, to: [user], subject: 'Hello from mailpool',
        text: 'Sent through a pooled SMTP session.\n' });
      const result = await smtp.send(msg);
      console.log(`sent ${result.messageId}: ${result.serverReply}`);
    });

    // 4. A POP3 session too, then every session this caller holds.
    await client.withSession(client.startPop3({ host, port: pop3sPort, security: 'tls', user,
      password, caFile }), async (pop3) => {
      for await (const s of client.sessions()) {
        console.log(`  session ${s.id} ${s.name || '-'} ${s.protocol} user=${s.user}`);
      }
      console.log(`POP3 closed: ${await pop3.close()}`);
    });

    // 5. Errors carry the gRPC code, the message and the mail server's own reply.
    try {
      await client.startImap({ host, port: imapsPort, security: 'tls', user,
        password: 'not the password', caFile });
    } catch (e) {
      if (!(e instanceof mailpool.MailpoolError) || e.code !== mailpool.status.UNAUTHENTICATED) throw e;
      console.log(`wrong password -> ${e.codeName}; server said: ${JSON.stringify(e.serverReply)}`);
    }
  } finally {
    client.close();
  }
  // README example ends
  console.log('example finished');
}

main().catch((e) => { console.error(e); process.exit(1); });

'use strict';
// The WLangage email functions, one by one, with the mailpool Node client (see
// docs/wlangage.md, which shows each region below). Runs against a daemon ($MAILPOOL_ADDR)
// and a mail account: MAIL_HOST, MAIL_USER, MAIL_PASSWORD, MAIL_CA, MAIL_IMAPS_PORT,
// MAIL_POP3S_PORT, MAIL_SMTP_PORT (falling back to the test servers' MAILPOOL_TEST_*).
const mailpool = require('../../client/node'); // require('mailpool') once installed

const env = (name, testName, dflt = '') => process.env[name] || process.env[testName] || dflt;
const host = env('MAIL_HOST', 'MAILPOOL_TEST_HOST', '127.0.0.1');
const user = env('MAIL_USER', 'MAILPOOL_TEST_USER');
const password = env('MAIL_PASSWORD', 'MAILPOOL_TEST_PASSWORD');
const caFile = env('MAIL_CA', 'MAILPOOL_TEST_CA') || undefined;
const imaps = Number(env('MAIL_IMAPS_PORT', 'MAILPOOL_TEST_IMAPS_PORT', '993'));
const pop3s = Number(env('MAIL_POP3S_PORT', 'MAILPOOL_TEST_POP3S_PORT', '995'));
const smtpPort = Number(env('MAIL_SMTP_PORT', 'MAILPOOL_TEST_SMTP_PORT', '587'));
const subject = `guide node ${Math.random().toString(36).slice(2, 10)}`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const client = new mailpool.Client();
  // README example begins EmailGetTimeOut
  const timeout = await client.getDefaultTimeout(); // seconds
  await client.setDefaultTimeout(timeout); // EmailSetTimeOut
  // README example ends EmailGetTimeOut

  // README example begins EmailStartSMTPSession
  const smtp = await client.startSmtp({ host, port: smtpPort, security: 'starttls', user,
    password, caFile });
  // README example ends EmailStartSMTPSession

  // README example begins EmailCheckAddress
  const check = await smtp.checkAddress(user); // asks the SMTP server (RCPT TO)
  console.log(check.result, check.serverReply);
  // README example ends EmailCheckAddress

  // README example begins EmailSendMessage
  const result = await smtp.send(mailpool.message({ from: user, to: [user], subject,
    text: 'Hello from the guide\n' }));
  console.log(result.messageId, result.serverReply); // per recipient: result.recipients
  // README example ends EmailSendMessage

  // README example begins EmailStatus
  const queued = await client.startSmtp({ host, port: smtpPort, security: 'starttls', user,
    password, caFile, asynchronous: true });
  const sent = await queued.send(mailpool.message({ from: user, to: [user],
    subject: `${subject} async`, text: 'queued\n' }));
  let status = await queued.sendStatus(sent.sendId); // QUEUED, PENDING, SENT or ERROR
  while (status.state === 'SEND_STATE_QUEUED' || status.state === 'SEND_STATE_PENDING') {
    await sleep(100);
    status = await queued.sendStatus(sent.sendId);
  }
  console.log(status.state, status.serverReply);
  // README example ends EmailStatus
  if (status.state !== 'SEND_STATE_SENT') throw new Error(`send ended ${status.state}`);

  // README example begins EmailStartIMAPSession
  const imap = await client.startImap({ host, port: imaps, security: 'tls', user, password,
    caFile });
  // README example ends EmailStartIMAPSession

  // README example begins EmailNbMessage
  const box = await imap.status();
  console.log(`${box.messageCount} messages, ${box.unreadCount} unread`);
  // README example ends EmailNbMessage

  // README example begins EmailReadFirst
  for await (const m of imap.messages({ view: 'HEADERS', limit: 5 })) { // newest first
    console.log(m.id, m.from?.address, m.subject);
  }
  // README example ends EmailReadFirst

  let found = [];
  for (let i = 0; i < 100 && found.length !== 2; i++) {
    found = [];
    for await (const m of imap.search({ subject })) found.push(m);
    if (found.length !== 2) await sleep(100);
  }
  if (found.length !== 2) throw new Error(`found ${found.length}`);

  // README example begins EmailSeekFirst
  let first = null;
  for await (const m of imap.search({ subject, unread: true }, { limit: 1 })) first = m;
  // README example ends EmailSeekFirst

  // README example begins EmailReadMessage
  const message = await imap.getMessage(first.id, { view: 'FULL' }); // 'HEADERS': ...Header
  console.log(message.subject, message.textBody);
  // README example ends EmailReadMessage

  // README example begins EmailChangeStatus
  await imap.markRead(first.id); // and imap.markRead(first.id, false)
  // README example ends EmailChangeStatus

  // README example begins EmailListFolder
  for (const folder of await imap.folders()) console.log(folder.name, folder.role);
  await imap.selectFolder('INBOX'); // EmailChangeFolder
  // README example ends EmailListFolder

  // README example begins EmailDeleteMessage
  const ids = [];
  for await (const m of imap.search({ subject })) ids.push(m.id);
  await imap.delete(ids);
  // README example ends EmailDeleteMessage

  // README example begins EmailStartSession
  const legacy = await client.startPop3Smtp({ host, port: pop3s, security: 'tls', smtpPort,
    smtpSecurity: 'starttls', user, password, caFile });
  console.log((await legacy.status()).messageCount); // reads over POP3, sends over SMTP
  // README example ends EmailStartSession

  // README example begins EmailBuildSource
  const { source } = await client.buildSource(mailpool.message({ from: user,
    to: 'bob@example.org', subject: 'Hi', text: 'Hello\n' }));
  const parsed = (await client.parseSource(source)).message; // EmailImportSource
  // README example ends EmailBuildSource
  if (parsed.subject !== 'Hi') throw new Error('parse');

  // README example begins ErrorInfo
  try {
    await client.startImap({ host, port: imaps, security: 'tls', user, password: 'wrong',
      caFile });
  } catch (e) { // a mailpool.MailpoolError
    console.log(e.codeName, e.errorInfo?.reason, e.serverReply); // the server's own reply
  }
  // README example ends ErrorInfo

  // README example begins EmailCloseSession
  for (const session of [smtp, queued, imap, legacy]) {
    console.log(await session.close()); // LOGOUT / QUIT
  }
  // README example ends EmailCloseSession
  client.close();
  console.log('guide finished');
}

main().catch((e) => { console.error(e); process.exit(1); });

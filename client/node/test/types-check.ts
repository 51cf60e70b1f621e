// Compiled (never run) by `npm run typecheck`: the README example's shape type-checks.
import * as mailpool from '..';

async function example(): Promise<void> {
  const client = new mailpool.Client(undefined, { timeout: 10 });
  const imap = await client.startImap({ host: '127.0.0.1', port: 993, security: 'tls',
    user: 'alice', password: 'secret', caFile: '/tmp/ca.pem', name: 'inbox' });
  const info: mailpool.SessionInfo = await imap.info();
  const state: mailpool.SessionStateName = info.state;
  for await (const m of imap.messages({ limit: 10, view: 'HEADERS' })) {
    const subject: string = m.subject;
    const when: Date | null = mailpool.toDate(m.receiveTime);
    void subject; void when;
    const full = await imap.getMessage(m.id, { view: mailpool.View.FULL });
    void full.textBody;
  }
  await client.withSession(client.startSmtp({ host: 'h', security: mailpool.Security.STARTTLS }),
    async (smtp) => {
      const r = await smtp.send(mailpool.message({ from: 'a@x', to: ['b@x'], subject: 's', text: 't' }));
      const reply: string = r.serverReply;
      void reply;
    });
  try {
    await imap.close();
  } catch (e) {
    if (e instanceof mailpool.MailpoolError && e.code === mailpool.status.UNAUTHENTICATED) {
      const reply: string = e.serverReply;
      void reply;
    }
  }
  for await (const s of client.sessions({ pageSize: 10 })) void s.id;
  {
    // TS `await using` (TS2851 before the declaration had [Symbol.asyncDispose]).
    await using pop = await client.startPop3({ host: 'h', user: 'u', password: 'p' });
    void pop.id;
  }
  const secure = new mailpool.Client('unix:/run/mailpool/mailpoold.sock', {
    tokenFile: '/run/secrets/token', ca: 'ca.pem', cert: 'me.pem', key: 'me.key', tlsServerName: 'x' });
  try {
    await secure.getDefaultTimeout();
  } catch (e) {
    if (e instanceof mailpool.MailpoolError) {
      const why: string | undefined = e.errorInfo?.reason;
      const wait: number | null = e.retryDelay;
      const fields: string[] = e.fieldViolations.map((v) => v.field);
      void why; void wait; void fields; void e.domain;
    }
  }
  const tok: string | null = mailpool.resolveToken({ token: 't' });
  void tok;
  void state;
  client.close();
}
void example;

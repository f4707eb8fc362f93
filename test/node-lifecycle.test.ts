/**
 * A node across restarts: readiness follows the worker, and webhook notifications that could not
 * be delivered before a restart are sent after it (their durability is the audit log).
 */
import { createServer, type Server } from 'node:http';
import { afterAll, describe, expect, it } from 'vitest';
import { Cluster, coSign, freePort, pinEachOther, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

describe('node lifecycle', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('is not ready without its outbox worker', async () => {
    const prepared = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    const dir = prepared.config.dataDir;
    await cluster.stop(prepared);
    const idle = await cluster.startDir(dir, { worker: false });
    expect((await fetch(`${idle.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${idle.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { code: string }).code).toBe('STORE_UNAVAILABLE');
  });

  it('sends after a restart the webhook notifications it could not send before', async () => {
    const hookPort = await freePort();
    const agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    let partner = await cluster.start({
      name: 'Partenaire Exemple',
      country: 'SN',
      config: { webhooks: [{ url: `http://127.0.0.1:${hookPort}/hook`, secret: 'webhook-secret-for-tests-only' }] },
    });
    await pinEachOther(agency, partner);
    const agreementId = await coSign(agency, partner);
    const consent = await recordConsent(agency, [partner.id]);
    const sent = await agency.send(referralInput(partner.id, agreementId, consent.id));
    await waitFor(async () => ((await agency.getOutbox(sent.id))?.state === 'delivered' ? true : undefined));

    // The receiving software is down: the partner retries, then is restarted before it gives up.
    const dir = partner.config.dataDir;
    await cluster.stop(partner);
    const received: string[] = [];
    const hook: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push((JSON.parse(body) as { messageId: string }).messageId);
        res.statusCode = 204;
        res.end();
      });
    });
    await new Promise<void>((r) => hook.listen(hookPort, '127.0.0.1', () => r()));
    try {
      partner = await cluster.startDir(dir);
      await waitFor(() => (received.includes(sent.id) ? true : undefined));
      const audit = await partner.readAudit(0, await partner.store.auditSize());
      expect(audit.some((e) => e.kind === 'webhook.notified' && e.fields.messageId === sent.id)).toBe(true);
      // Once recorded, a further restart does not notify again.
      await cluster.stop(partner);
      partner = await cluster.startDir(dir);
      await new Promise((r) => setTimeout(r, 300));
      expect(received.filter((id) => id === sent.id)).toHaveLength(1);
    } finally {
      hook.close();
    }
  });
});

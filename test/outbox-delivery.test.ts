/**
 * Outbox robustness: a peer that is down and comes back, a peer that answers 500 and then
 * garbage, a budget that runs out, an expired message. Every message ends in exactly one state.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

async function stateOf(node: RunningNode, id: string) {
  return (await node.getOutbox(id))?.state;
}

/** Stands in for a peer on its port: answers with whatever `respond` says. */
async function impostor(port: number, respond: (n: number, res: import('node:http').ServerResponse) => void): Promise<{ server: Server; hits: () => number }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => respond(++n, res));
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  return { server, hits: () => n };
}

describe('outbox delivery', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;
  let consentId: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
    consentId = (await recordConsent(agency, [partner.id])).id;
  });
  afterAll(() => cluster.close());

  it('retries while the peer is down and delivers once it is back', async () => {
    const dir = partner.config.dataDir;
    await cluster.stop(partner);
    const retries: number[] = [];
    agency.events.on('outbox.retry', (e) => retries.push(e.attempt));
    const sent = await agency.send(referralInput(partner.id, agreementId, consentId));
    await waitFor(() => (retries.length >= 3 ? true : undefined));
    expect(await stateOf(agency, sent.id)).toBe('queued');
    partner = await cluster.startDir(dir);
    await waitFor(async () => ((await stateOf(agency, sent.id)) === 'delivered' ? true : undefined), 20_000);
    expect((await partner.listInbox()).filter((m) => m.id === sent.id)).toHaveLength(1);
  });

  it('retries after 500 and garbage answers, then delivers to the real peer', async () => {
    const dir = partner.config.dataDir;
    const port = Number(new URL(partner.id).port);
    await cluster.stop(partner);
    const fake = await impostor(port, (n, res) => {
      if (n <= 2) {
        res.statusCode = 500;
        res.end('boom');
      } else {
        res.statusCode = 202;
        res.setHeader('content-type', 'application/json');
        res.end(n === 3 ? 'not json' : JSON.stringify({ receipt: 'eyJhbGciOiJFZERTQSJ9.e30.AAAA' }));
      }
    });
    const sent = await agency.send(referralInput(partner.id, agreementId, consentId));
    await waitFor(() => (fake.hits() >= 4 ? true : undefined));
    // An unverifiable receipt is not a delivery.
    expect(await stateOf(agency, sent.id)).toBe('queued');
    await new Promise<void>((r) => fake.server.close(() => r()));
    partner = await cluster.startDir(dir);
    await waitFor(async () => ((await stateOf(agency, sent.id)) === 'delivered' ? true : undefined), 20_000);
    const entry = (await agency.store.getOutbox(sent.id))!;
    expect(entry.attempts).toBeGreaterThanOrEqual(5);
    expect((await partner.listInbox()).filter((m) => m.id === sent.id)).toHaveLength(1);
  });

  it('ends a message as rejected on a 4xx protocol problem, without retrying', async () => {
    const port = Number(new URL(partner.id).port);
    const dir = partner.config.dataDir;
    await cluster.stop(partner);
    const fake = await impostor(port, (_n, res) => {
      res.statusCode = 403;
      res.setHeader('content-type', 'application/problem+json');
      res.end(JSON.stringify({ type: 'urn:passerelle:error:CONSENT_WITHDRAWN', title: 'x', status: 403, code: 'CONSENT_WITHDRAWN' }));
    });
    try {
      const sent = await agency.send(referralInput(partner.id, agreementId, consentId));
      await waitFor(async () => ((await stateOf(agency, sent.id)) === 'rejected' ? true : undefined));
      const entry = (await agency.getOutbox(sent.id))!;
      expect(entry.problem).toMatchObject({ code: 'CONSENT_WITHDRAWN' });
      await new Promise((r) => setTimeout(r, 200));
      expect(fake.hits()).toBe(1);
    } finally {
      await new Promise<void>((r) => fake.server.close(() => r()));
      partner = await cluster.startDir(dir);
    }
  });

  it('fails a message whose expiry passes while the peer is unreachable', async () => {
    const dir = partner.config.dataDir;
    await cluster.stop(partner);
    const failed: string[] = [];
    agency.events.on('outbox.failed', (e) => failed.push(`${e.messageId}:${e.code}`));
    // Created 59m58s ago with a one-hour lifetime: it expires two seconds from now. Its consent
    // was collected (on paper) before that and entered now.
    const { toTimestamp } = await import('@passerelle/protocol');
    const older = await recordConsent(agency, [partner.id], { collectedAt: toTimestamp(Date.now() - 2 * 3600_000) });
    const sent = await agency.send(referralInput(partner.id, agreementId, older.id, { created: new Date(Date.now() - 3_598_000), ttlSeconds: 3600 }));
    await waitFor(async () => ((await stateOf(agency, sent.id)) === 'failed' ? true : undefined), 10_000);
    expect(failed).toContain(`${sent.id}:EXPIRED`);
    expect((await agency.getOutbox(sent.id))!.lastError).toMatch(/^EXPIRED/);
    partner = await cluster.startDir(dir);
    expect(await partner.store.getInbox(sent.id)).toBeUndefined();
  });
});

describe('outbox attempt budget', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('fails a message when the attempt budget runs out', async () => {
    const agency = await cluster.start({ name: 'Agence Exemple', country: 'BE', config: { outbox: { maxAttempts: 3, backoffBaseMs: 20, backoffCapMs: 50, breakerThreshold: 100 } } });
    let partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    const agreementId = await coSign(agency, partner);
    const consentId = (await recordConsent(agency, [partner.id])).id;
    const port = Number(new URL(partner.id).port);
    await cluster.stop(partner);
    const fake = await impostor(port, (_n, res) => {
      res.statusCode = 200;
      res.end('garbage');
    });
    try {
      const sent = await agency.send(referralInput(partner.id, agreementId, consentId));
      await waitFor(async () => ((await stateOf(agency, sent.id)) === 'failed' ? true : undefined));
      const entry = (await agency.store.getOutbox(sent.id))!;
      expect(entry.attempts).toBe(3);
      expect(entry.lastError).toMatch(/^RECEIPT_INVALID/);
      expect(fake.hits()).toBe(3);
    } finally {
      await new Promise<void>((r) => fake.server.close(() => r()));
    }
    void partner;
  });
});

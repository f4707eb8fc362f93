/**
 * A flood of well-formed but bogus requests against a node's inbox, from another thread, while a
 * legitimate peer keeps delivering (docs/attacks.md, Load). What is asserted is the ordering of
 * the checks, not timing: cheap checks (media type, signature headers, pinned key, rate limit)
 * refuse the flood before any cryptography, only requests naming a pinned peer's key reach
 * signature verification, none reaches decryption, and the legitimate peer's deliveries all
 * succeed at their first attempt. `pnpm bench:hardening` measures the latency side.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { generateSigningKey } from '@passerelle/protocol';
import { Cluster, referralInput, waitFor } from '../../packages/node/test/harness/cluster.js';
import { flood, outcomeCount, sealReferral, signedHeaders, startPair, type FloodTemplate, type Pair } from './helpers.js';

const calls = vi.hoisted(() => ({ open: 0, verifyRequest: 0 }));
vi.mock('@passerelle/protocol', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@passerelle/protocol')>();
  return {
    ...actual,
    open: (...args: Parameters<typeof actual.open>) => {
      calls.open += 1;
      return actual.open(...args);
    },
  };
});
vi.mock('../../packages/node/src/http/message-signatures.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../../packages/node/src/http/message-signatures.js')>();
  return {
    ...actual,
    verifyRequest: (...args: Parameters<typeof actual.verifyRequest>) => {
      calls.verifyRequest += 1;
      return actual.verifyRequest(...args);
    },
  };
});

/** The flood: every kind of bogus request, with the answer each must get and whether it may reach signature verification. */
async function floodTemplates(p: Pair): Promise<{ templates: FloodTemplate[]; expected: Record<string, [number, boolean]> }> {
  const inbox = `${p.partner.id}/inbox`;
  const sealed = await sealReferral(p.agency, p.partner, p.agreementId, p.consentId);
  const stranger = await generateSigningKey();
  const agencyKey = p.agency.identity.signingKey();
  const templates: FloodTemplate[] = [
    { kind: 'unknown-key', headers: await signedHeaders({ url: inbox, body: sealed.jwe, key: stranger }), body: sealed.jwe },
    { kind: 'unknown-sender', headers: await signedHeaders({ url: inbox, body: sealed.jwe, key: stranger, sender: 'https://intrus.example.org' }), body: sealed.jwe },
    { kind: 'unsigned', headers: { 'content-type': 'application/jose', 'content-digest': 'sha-256=:AAAA:' }, body: sealed.jwe },
    { kind: 'wrong-type', headers: { ...(await signedHeaders({ url: inbox, body: sealed.jwe, key: agencyKey })), 'content-type': 'text/plain' }, body: sealed.jwe },
    { kind: 'forged-agency-kid', headers: await signedHeaders({ url: inbox, body: sealed.jwe, key: { ...stranger, kid: agencyKey.kid }, sender: p.agency.id }), body: sealed.jwe },
    {
      kind: 'stale-capture',
      headers: await signedHeaders({ url: inbox, body: sealed.jwe, key: agencyKey, sender: p.agency.id, created: Math.floor(Date.now() / 1000) - 3600 }),
      body: sealed.jwe,
    },
  ];
  return {
    templates,
    expected: {
      'unknown-key': [401, false],
      'unknown-sender': [401, false],
      unsigned: [401, false],
      'wrong-type': [415, false],
      'forged-agency-kid': [401, true],
      'stale-capture': [422, true],
    },
  };
}

describe('a flood of bogus requests against the inbox', () => {
  const cluster = new Cluster();
  let p: Pair;

  beforeAll(async () => {
    p = await startPair(cluster);
  });
  afterAll(() => cluster.close());

  it('is refused by cheap checks before any decryption, while the legitimate peer keeps delivering at the first attempt', async () => {
    const { templates, expected } = await floodTemplates(p);
    const opened = calls.open;
    const verified = calls.verifyRequest;

    // Bounded both ways: 8 000 requests or 2.5 seconds, whichever comes first.
    const flooding = flood({ port: Number(new URL(p.partner.id).port), templates, maxRequests: 8_000, maxMs: 2_500, concurrency: 16 });
    const legitimate: string[] = [];
    let done = false;
    void flooding.then(() => (done = true));
    while (!done && legitimate.length < 40) {
      const sent = await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId));
      await waitFor(async () => ((await p.agency.store.getOutbox(sent.id))?.state === 'delivered' ? true : undefined), 10_000, 5);
      legitimate.push(sent.id);
    }
    const result = await flooding;

    expect(result.sent).toBeGreaterThan(500);
    expect(legitimate.length).toBeGreaterThan(0);
    for (const [kind, [status]] of Object.entries(expected)) {
      const sent = outcomeCount(result, kind);
      expect(sent, kind).toBeGreaterThan(0);
      expect(outcomeCount(result, kind, status), kind).toBe(sent);
    }
    // Ordering: only requests naming a pinned peer's key reached signature verification...
    const reachingSignature = Object.entries(expected)
      .filter(([, [, reaches]]) => reaches)
      .reduce((n, [kind]) => n + outcomeCount(result, kind), 0);
    expect(calls.verifyRequest - verified).toBe(reachingSignature + legitimate.length);
    // ...and nothing but the legitimate deliveries was decrypted.
    expect(calls.open - opened).toBe(legitimate.length);
    for (const id of legitimate) expect((await p.agency.store.getOutbox(id))!.attempts).toBe(1);
    expect((await p.partner.listInbox()).map((m) => m.id).sort()).toEqual([...legitimate].sort());
  }, 30_000);
});

/**
 * POST /inbox under attack and accident: duplicates, conflicting ids, unknown senders, tampered
 * bodies, bad signatures. Nothing is stored unless the message is accepted.
 */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReferral, generateSigningKey, resolveSigningKey, seal, currentEncryptionKey, verifyReceipt, peekCompactPayload } from '@passerelle/protocol';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, postSignedRaw, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

describe('inbox acceptance', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;
  let consentId: string;
  let inboxUrl: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
    consentId = (await recordConsent(agency, [partner.id])).id;
    inboxUrl = `${partner.id}/inbox`;
  });
  afterAll(() => cluster.close());

  async function deliveredOne() {
    const sent = await agency.send(referralInput(partner.id, agreementId, consentId));
    return waitFor(async () => {
      const e = await agency.store.getOutbox(sent.id);
      return e?.state === 'delivered' ? e : undefined;
    });
  }

  it('answers a duplicate with the original receipt and stores nothing new', async () => {
    const entry = await deliveredOne();
    const before = (await partner.listInbox()).length;
    const again = await postSignedRaw({ url: inboxUrl, body: entry.jwe, key: agency.identity.signingKey(), sender: agency.id });
    expect(again.status).toBe(202);
    expect(again.json?.receipt).toBe(entry.receipt);
    expect((await partner.listInbox()).length).toBe(before);
  });

  it('refuses the same id with other content (409) with a signed rejection receipt', async () => {
    const entry = await deliveredOne();
    const input = referralInput(partner.id, agreementId, consentId);
    const consentJws = (await agency.store.getConsent(consentId))!.jws;
    const impostor = buildReferral({
      ...input,
      id: entry.id,
      from: agency.id,
      consentRecord: consentJws,
      body: { ...input.body, urgency: 'urgent' } as never,
      data: input.data as never,
    });
    const enc = currentEncryptionKey(partner.identity.document);
    const sealed = await seal(impostor, { signingKey: agency.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } });
    const res = await postSignedRaw({ url: inboxUrl, body: sealed.jwe, key: agency.identity.signingKey(), sender: agency.id });
    expect(res.status).toBe(409);
    expect(res.json).toMatchObject({ code: 'DUPLICATE_CONFLICT', type: 'urn:passerelle:error:DUPLICATE_CONFLICT', status: 409 });
    const receipt = await verifyReceipt(res.json!.receipt as string, {
      receiver: partner.id,
      sender: agency.id,
      messageId: entry.id,
      digest: sealed.digest,
      resolveKey: (kid) => resolveSigningKey(partner.identity.document, kid, new Date()),
    });
    expect(receipt).toMatchObject({ status: 'rejected', code: 'DUPLICATE_CONFLICT' });
    expect((await partner.store.getInbox(entry.id))!.digest).toBe(entry.digest);
  });

  it('refuses an unknown sender without any outbound request', async () => {
    let hits = 0;
    const stranger: Server = createServer((_req, res) => {
      hits += 1;
      res.end('{}');
    });
    await new Promise<void>((r) => stranger.listen(0, '127.0.0.1', () => r()));
    const port = (stranger.address() as { port: number }).port;
    try {
      const key = await generateSigningKey();
      const res = await postSignedRaw({ url: inboxUrl, body: 'eyJhbGciOiJFQ0RILUVTIn0.a.b.c.d', key, sender: `http://127.0.0.1:${port}` });
      expect(res.status).toBe(401);
      expect(res.json?.code).toBe('PEER_UNKNOWN');
      const anonymous = await postSignedRaw({ url: inboxUrl, body: 'x.y.z.a.b', key });
      expect(anonymous.status).toBe(401);
      expect(anonymous.json?.code).toBe('REQUEST_UNAUTHENTICATED');
      expect(hits).toBe(0);
    } finally {
      stranger.close();
    }
  });

  async function sealedReferral() {
    const input = referralInput(partner.id, agreementId, consentId);
    const message = buildReferral({
      ...input,
      from: agency.id,
      consentRecord: (await agency.store.getConsent(consentId))!.jws,
      body: input.body as never,
      data: input.data as never,
    });
    const enc = currentEncryptionKey(partner.identity.document);
    return { id: message.header.id, ...(await seal(message, { signingKey: agency.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } })) };
  }

  it('refuses a tampered body and a bad signature, storing nothing', async () => {
    const sealed = await sealedReferral();
    const before = (await partner.listInbox()).length;
    const tampered = `${sealed.jwe.slice(0, -2)}${sealed.jwe.at(-2) === 'A' ? 'B' : 'A'}${sealed.jwe.slice(-1)}`;
    const t = await postSignedRaw({ url: inboxUrl, body: sealed.jwe, key: agency.identity.signingKey(), sender: agency.id, tamperedBody: tampered });
    expect(t.status).toBe(400);
    expect(t.json?.code).toBe('CONTENT_DIGEST_MISMATCH');

    const otherKey = await generateSigningKey();
    const forged = await postSignedRaw({
      url: inboxUrl,
      body: sealed.jwe,
      key: { ...otherKey, kid: agency.identity.signingKey().kid },
      sender: agency.id,
    });
    expect(forged.status).toBe(401);
    expect(forged.json?.code).toBe('REQUEST_UNAUTHENTICATED');

    // Content-Digest and signature right, but the JWE itself altered (its tag no longer matches).
    const flipped = await postSignedRaw({ url: inboxUrl, body: tampered, key: agency.identity.signingKey(), sender: agency.id });
    expect(flipped.status).toBe(422);
    expect(flipped.json?.code).toBe('DECRYPTION_FAILED');
    expect(flipped.json?.receipt).toBeUndefined();
    expect(await partner.store.getInbox(sealed.id)).toBeUndefined();
    expect((await partner.listInbox()).length).toBe(before);

    // The untouched original is then accepted: the refusals left no trace that blocks it.
    const good = await postSignedRaw({ url: inboxUrl, body: sealed.jwe, key: agency.identity.signingKey(), sender: agency.id });
    expect(good.status).toBe(202);
    expect((await partner.listInbox()).length).toBe(before + 1);
  });

  it('refuses a message another pinned peer signed inside (sender mismatch) with a rejection', async () => {
    // The agency authenticates the request but the inner JWT claims to be from the partner itself.
    const input = referralInput(agency.id, agreementId, consentId);
    const message = buildReferral({ ...input, to: partner.id, from: partner.id, body: input.body as never, data: input.data as never });
    const enc = currentEncryptionKey(partner.identity.document);
    const sealed = await seal(message, { signingKey: partner.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } });
    const res = await postSignedRaw({ url: inboxUrl, body: sealed.jwe, key: agency.identity.signingKey(), sender: agency.id });
    expect(res.status).toBe(422);
    expect(res.json?.code).toBe('SENDER_MISMATCH');
    expect(await partner.store.getInbox(message.header.id)).toBeUndefined();
  });

  it('refuses a wrong content type and an unsigned request', async () => {
    const res = await fetch(inboxUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(res.status).toBe(415);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const unsigned = await fetch(inboxUrl, { method: 'POST', headers: { 'content-type': 'application/jose' }, body: 'a.b.c.d.e' });
    expect(unsigned.status).toBe(401);
    expect(((await unsigned.json()) as { code: string }).code).toBe('REQUEST_UNAUTHENTICATED');
  });

  it('serves its signed node document', async () => {
    const res = await fetch(`${partner.id}/.well-known/passerelle/node`);
    expect(res.status).toBe(200);
    const jws = (await res.json()) as { payload: string };
    expect(JSON.parse(Buffer.from(jws.payload, 'base64url').toString()).id).toBe(partner.id);
    expect(peekCompactPayload).toBeTypeOf('function');
  });
});

describe('inbox limits and independent enforcement', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN', config: { limits: { peerRateLimit: { burst: 2, perSecond: 0.2 }, inboxBodyLimit: 64 * 1024 } } });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
  });
  afterAll(() => cluster.close());

  it('refuses a message the sender should not have sent, whatever the sender checked', async () => {
    // Consent without health: the receiver re-checks and refuses, with a signed rejection.
    const consent = await recordConsent(agency, [partner.id], { categories: ['identity', 'contact', 'return-travel'], explicitConsent: [] });
    const input = referralInput(partner.id, agreementId, consent.id);
    const message = buildReferral({ ...input, from: agency.id, consentRecord: consent.jws, body: input.body as never, data: input.data as never });
    const enc = currentEncryptionKey(partner.identity.document);
    const sealed = await seal(message, { signingKey: agency.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } });
    const res = await postSignedRaw({ url: `${partner.id}/inbox`, body: sealed.jwe, key: agency.identity.signingKey(), sender: agency.id });
    expect(res.status).toBe(403);
    expect(res.json).toMatchObject({ code: 'CONSENT_CATEGORY_NOT_COVERED', categories: ['health'] });
    const receipt = peekCompactPayload(res.json!.receipt as string);
    expect(receipt).toMatchObject({ status: 'rejected', code: 'CONSENT_CATEGORY_NOT_COVERED', message: message.header.id, digest: sealed.digest });
    expect(await partner.store.getInbox(message.header.id)).toBeUndefined();
    // The sender's own check refuses the same message before anything is queued.
    await expect(agency.send(input)).rejects.toMatchObject({ code: 'CONSENT_CATEGORY_NOT_COVERED' });
  });

  it('refuses an oversized body and rate-limits a peer with Retry-After', async () => {
    const big = await postSignedRaw({ url: `${partner.id}/inbox`, body: 'a'.repeat(70 * 1024), key: agency.identity.signingKey(), sender: agency.id });
    expect(big.status).toBe(413);
    expect(big.json?.code).toBe('TOO_LARGE');
    let limited: Awaited<ReturnType<typeof postSignedRaw>> | undefined;
    for (let i = 0; i < 4 && !limited; i++) {
      const r = await postSignedRaw({ url: `${partner.id}/inbox`, body: 'a.b.c.d.e', key: agency.identity.signingKey(), sender: agency.id });
      if (r.status === 429) limited = r;
    }
    expect(limited?.json?.code).toBe('RATE_LIMITED');
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});

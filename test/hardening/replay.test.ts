/**
 * Protocol attacks at the node's edge (docs/attacks.md, Transport): replays across a restart,
 * conflicting ids, receipts that must not count as delivery, a rolled-back node document bringing
 * a revoked key back, clock skew, and a consent withdrawn while a message is on its way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildReferral,
  currentEncryptionKey,
  generateSigningKey,
  MessageTypes,
  seal,
  sha256b64u,
  signReceipt,
  type GeneralJws,
  type SigningKeyPair,
} from '@passerelle/protocol';
import { startNode, type RunningNode } from '@passerelle/node';
import {
  Cluster,
  coSign,
  freePort,
  pinEachOther,
  postSignedRaw,
  prepareNode,
  recordConsent,
  referralInput,
  waitFor,
} from '../../packages/node/test/harness/cluster.js';
import { gateProxy, postRaw, uuid7, readAll, readWholeAudit, sealReferral, serveLoopback, signedHeaders, sleep, startPair, type Pair } from './helpers.js';

async function delivered(node: RunningNode, id: string, timeoutMs = 15_000) {
  return waitFor(async () => {
    const e = await node.store.getOutbox(id);
    return e?.state === 'delivered' ? e : undefined;
  }, timeoutMs);
}

function acceptedEvents(audit: { kind: string; fields: Record<string, unknown> }[], id: string) {
  return audit.filter((e) => e.kind === 'message.received' && e.fields.messageId === id);
}

describe('replays and conflicting ids', () => {
  const cluster = new Cluster();
  let p: Pair;

  beforeAll(async () => {
    p = await startPair(cluster);
  });
  afterAll(() => cluster.close());

  it('answers a replay after a restart with the original receipt, not a second acceptance', async () => {
    const sent = await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId));
    const entry = await delivered(p.agency, sent.id);
    const inbox = `${p.partner.id}/inbox`;
    // The request as an eavesdropper would have captured it, replayed byte for byte.
    const captured = await signedHeaders({ url: inbox, body: entry.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id });

    const dir = p.partner.config.dataDir;
    await cluster.stop(p.partner);
    p.partner = await cluster.startDir(dir);
    const sizeBefore = await p.partner.store.auditSize();
    const stored = (await p.partner.store.getInbox(sent.id))!;

    const replayed = await postRaw(inbox, captured, entry.jwe);
    expect(replayed.status).toBe(202);
    expect(replayed.json?.receipt).toBe(entry.receipt);
    const resent = await postSignedRaw({ url: inbox, body: entry.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id });
    expect(resent.status).toBe(202);
    expect(resent.json?.receipt).toBe(entry.receipt);

    expect(await p.partner.store.auditSize()).toBe(sizeBefore);
    expect(acceptedEvents(await readWholeAudit(p.partner.store), sent.id)).toHaveLength(1);
    expect(await p.partner.store.getInbox(sent.id)).toEqual(stored);
    expect((await p.partner.listInbox()).filter((m) => m.id === sent.id)).toHaveLength(1);
  });

  it('refuses the same id with other content, or from another peer, with 409 DUPLICATE_CONFLICT across a restart, changing nothing', async () => {
    const sent = await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId));
    const entry = await delivered(p.agency, sent.id);
    const dir = p.partner.config.dataDir;
    await cluster.stop(p.partner);
    p.partner = await cluster.startDir(dir);

    // A third organisation, also pinned by the partner, under its own agreement and consent.
    const other = await cluster.start({ name: 'Agence transfrontalière Exemple', country: 'FR' });
    await pinEachOther(other, p.partner);
    const otherAgreement = await coSign(other, p.partner);
    const otherConsent = await recordConsent(other, [p.partner.id], { subject: 'case-fr-2026-0107' });

    const stored = (await p.partner.store.getInbox(sent.id))!;
    const sizeBefore = await p.partner.store.auditSize();
    const enc = currentEncryptionKey(p.partner.identity.document);
    const recipientKey = { ...enc.jwk, kid: enc.kid };
    const input = referralInput(p.partner.id, p.agreementId, p.consentId);
    const sameIdOtherContent = await seal(
      buildReferral({ ...input, id: sent.id, from: p.agency.id, consentRecord: (await p.agency.store.getConsent(p.consentId))!.jws, body: { ...input.body, urgency: 'urgent' } as never, data: input.data as never }),
      { signingKey: p.agency.identity.signingKey(), recipientKey },
    );
    const otherInput = referralInput(p.partner.id, otherAgreement, otherConsent.id, { body: { subject: 'case-fr-2026-0107', services: ['legal'], urgency: 'routine', reasonCode: 'orientation' } });
    const sameIdOtherPeer = await seal(
      buildReferral({ ...otherInput, id: sent.id, from: other.id, consentRecord: otherConsent.jws, body: otherInput.body as never, data: otherInput.data as never }),
      { signingKey: other.identity.signingKey(), recipientKey },
    );
    const inbox = `${p.partner.id}/inbox`;
    const a = await postSignedRaw({ url: inbox, body: sameIdOtherContent.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id });
    const b = await postSignedRaw({ url: inbox, body: sameIdOtherPeer.jwe, key: other.identity.signingKey(), sender: other.id });
    for (const r of [a, b]) {
      expect(r.status).toBe(409);
      expect(r.json).toMatchObject({ code: 'DUPLICATE_CONFLICT' });
      expect(typeof r.json?.receipt).toBe('string');
    }
    expect(await p.partner.store.getInbox(sent.id)).toEqual(stored);
    expect(await p.partner.store.auditSize()).toBe(sizeBefore);
    // The original sender still gets its original receipt.
    const again = await postSignedRaw({ url: inbox, body: entry.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id });
    expect(again.json?.receipt).toBe(entry.receipt);
  });
});

describe('receipts that are not a delivery', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('keeps a message queued on receipts signed by the wrong key, for another message or other bytes, or missing; ends it delivered once on the genuine one', async () => {
    const agency = await cluster.start({ name: 'Centre d’accueil Exemple', country: 'BE' });
    // The partner's keys and document exist, but its HTTP side is a stand-in the test scripts.
    const prepared = await prepareNode({ name: 'Partenaire de réintégration Exemple', country: 'SN' });
    cluster.dirs.push(prepared.dir);
    const partner = await startNode({ dir: prepared.dir, listen: false, worker: false });
    cluster.nodes.push(partner);
    const stranger = await generateSigningKey();
    const key = partner.identity.signingKey();
    let messageId = '';
    const forged: ((digest: string) => Promise<string | undefined | number>)[] = [
      (digest) => signReceipt({ receiver: partner.id, sender: agency.id, messageId, digest, status: 'accepted', log: { index: 0 } }, { ...stranger, kid: key.kid }),
      (digest) => signReceipt({ receiver: partner.id, sender: agency.id, messageId, digest, status: 'accepted', log: { index: 0 } }, stranger),
      (digest) => signReceipt({ receiver: partner.id, sender: agency.id, messageId: uuid7(), digest, status: 'accepted', log: { index: 0 } }, key),
      () => signReceipt({ receiver: partner.id, sender: agency.id, messageId, digest: 'n4bQgYhMfWWaL-qgxVrQFaO_TxsrC4Is0V1sFbDwCgg', status: 'accepted', log: { index: 0 } }, key),
      (digest) => signReceipt({ receiver: partner.id, sender: 'https://intrus.example.org', messageId, digest, status: 'accepted', log: { index: 0 } }, key),
      (digest) => signReceipt({ receiver: partner.id, sender: agency.id, messageId, digest, status: 'rejected', code: 'CONSENT_WITHDRAWN' }, key),
      async () => undefined,
      async () => '',
      async () => 42,
    ];
    let genuine = '';
    let posts = 0;
    const standIn = await serveLoopback((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(partner.nodeDocument()));
        return;
      }
      const n = ++posts;
      void readAll(req).then(async (body) => {
        const digest = await sha256b64u(body);
        const receipt =
          n <= forged.length
            ? await forged[n - 1]!(digest)
            : (genuine = await signReceipt({ receiver: partner.id, sender: agency.id, messageId, digest, status: 'accepted', log: { index: 7 } }, key));
        res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify(receipt === undefined ? {} : { receipt }));
      });
    }, Number(new URL(partner.id).port));
    try {
      await pinEachOther(agency, partner);
      const agreementId = await coSign(agency, partner);
      const consent = await recordConsent(agency, [partner.id]);
      const retries: string[] = [];
      agency.events.on('outbox.retry', (e) => {
        if (e.messageId === messageId) retries.push(e.code);
      });
      const sent = await agency.send(referralInput(partner.id, agreementId, consent.id));
      messageId = sent.id;
      const entry = await delivered(agency, sent.id);
      expect(retries.slice(0, forged.length)).toEqual(forged.map(() => 'RECEIPT_INVALID'));
      expect(entry.receipt).toBe(genuine);
      expect(entry.attempts).toBe(forged.length + 1);
      const audit = await readWholeAudit(agency.store);
      expect(audit.filter((e) => e.kind === 'message.delivered' && e.fields.messageId === sent.id)).toHaveLength(1);
      expect(audit.filter((e) => e.kind !== 'message.sent' && e.fields.messageId === sent.id).map((e) => e.kind)).toEqual(['message.delivered']);
    } finally {
      await standIn.close();
    }
  });
});

describe('a rolled-back node document and a revoked key', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('refuses an older document that lists a key revoked since (NODE_DOCUMENT_STALE), and requests and messages signed with that key', async () => {
    const p = await startPair(cluster);
    const v1: GeneralJws = p.partner.nodeDocument();
    const compromised: SigningKeyPair = p.partner.identity.signingKey();
    // The partner rotates with the shortest overlap: a second later its first key is revoked.
    const rotated = await p.partner.rotateKeys({ overlapSeconds: 1 });
    expect(rotated.version).toBe(2);
    expect((await p.agency.refreshPeer(p.partner.id)).document?.version).toBe(2);
    const current = p.partner.identity.signingKey();
    expect(current.kid).not.toBe(compromised.kid);
    await sleep(1_100);

    // Whoever holds the old key now also serves the old document at the partner's address.
    const port = Number(new URL(p.partner.id).port);
    const partnerDir = p.partner.config.dataDir;
    const partnerId = p.partner.id;
    const partnerIdentity = p.partner.identity;
    await cluster.stop(p.partner);
    const impostor = await serveLoopback((req, res) => {
      void readAll(req).then(() => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(v1)));
    }, port);
    try {
      await expect(p.agency.refreshPeer(partnerId)).rejects.toMatchObject({ code: 'NODE_DOCUMENT_STALE' });
      expect(p.agency.listPeers().find((v) => v.nodeId === partnerId)!.document?.version).toBe(2);

      // A response in the partner's name: the HTTP request and the message both signed with the revoked key.
      const inbox = `${p.agency.id}/inbox`;
      const thread = uuid7();
      const enc = currentEncryptionKey(p.agency.identity.document);
      const response = (await import('@passerelle/protocol')).buildReferralResponse({
        from: partnerId,
        to: p.agency.id,
        agreementId: p.agreementId,
        threadId: thread,
        body: { inReplyTo: uuid7(), subject: 'case-be-2026-0042', decision: 'accepted' } as never,
        data: {} as never,
      });
      const forgedByOldKey = await seal(response, { signingKey: compromised, recipientKey: { ...enc.jwk, kid: enc.kid } });
      const gets = impostor.hits();
      for (let i = 0; i < 5; i++) {
        const r = await postSignedRaw({ url: inbox, body: forgedByOldKey.jwe, key: compromised, sender: partnerId });
        expect(r.status).toBe(401);
        expect(r.json?.code).toBe('REQUEST_UNAUTHENTICATED');
      }
      // The revoked kid is known: no refetch of the (rolled-back) document was triggered.
      expect(impostor.hits()).toBe(gets);
      // Transport signed with the current key, message signed with the revoked one: refused on opening.
      const inner = await postSignedRaw({ url: inbox, body: forgedByOldKey.jwe, key: current, sender: partnerId });
      expect(inner.status).toBe(401);
      expect(inner.json?.code).toBe('KEY_UNKNOWN');
      expect(await p.agency.store.getInbox(response.header.id)).toBeUndefined();

      // After a restart the agency still holds version 2 and still refuses version 1.
      const agencyDir = p.agency.config.dataDir;
      await cluster.stop(p.agency);
      p.agency = await cluster.startDir(agencyDir);
      expect(p.agency.listPeers().find((v) => v.nodeId === partnerId)!.document?.version).toBe(2);
      await expect(p.agency.refreshPeer(partnerId)).rejects.toMatchObject({ code: 'NODE_DOCUMENT_STALE' });
    } finally {
      await impostor.close();
    }
    p.partner = await cluster.startDir(partnerDir);
    expect(p.partner.identity).not.toBe(partnerIdentity);
    const sent = await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId));
    await delivered(p.agency, sent.id);
  });
});

describe('clock skew', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('refuses a request dated beyond the skew bound with CLOCK_SKEW and the server time; the sender retries until the clocks agree', async () => {
    let partnerOffsetMs = 0;
    const a = await cluster.start({ name: 'Centre d’accueil Exemple', country: 'BE' });
    const prepared = await prepareNode({ name: 'Partenaire de réintégration Exemple', country: 'SN' });
    cluster.dirs.push(prepared.dir);
    const b = await startNode({ dir: prepared.dir, now: () => new Date(Date.now() + partnerOffsetMs) });
    cluster.nodes.push(b);
    await pinEachOther(a, b);
    const agreementId = await coSign(a, b);
    const consent = await recordConsent(a, [b.id]);
    const inbox = `${b.id}/inbox`;
    const sealed = await sealReferral(a, b, agreementId, consent.id);

    for (const offsetSeconds of [-3600, -301, 301, 86_400]) {
      const headers = await signedHeaders({ url: inbox, body: sealed.jwe, key: a.identity.signingKey(), sender: a.id, created: Math.floor(Date.now() / 1000) + offsetSeconds });
      const r = await postRaw(inbox, headers, sealed.jwe);
      expect(r.status).toBe(422);
      expect(r.json?.code).toBe('CLOCK_SKEW');
      expect(Math.abs(Date.parse(String(r.json?.serverTime)) - Date.now())).toBeLessThan(5_000);
    }
    expect(await b.store.getInbox(sealed.id)).toBeUndefined();

    // The partner's clock runs ten minutes ahead: the agency's deliveries are refused, not lost.
    partnerOffsetMs = 600_000;
    const problems: string[] = [];
    a.events.on('outbox.retry', (e) => problems.push(e.code));
    const sent = await a.send(referralInput(b.id, agreementId, consent.id));
    await waitFor(() => (problems.length >= 2 ? true : undefined));
    expect(problems.every((c) => c === 'CLOCK_SKEW')).toBe(true);
    expect((await a.store.getOutbox(sent.id))!.state).toBe('queued');
    expect(await b.store.getInbox(sent.id)).toBeUndefined();
    partnerOffsetMs = 0;
    const entry = await delivered(a, sent.id);
    expect((await b.listInbox()).filter((m) => m.id === sent.id)).toHaveLength(1);
    expect(entry.state).toBe('delivered');
  });
});

describe('consent withdrawn while a message is in flight', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let gate: Awaited<ReturnType<typeof gateProxy>>;
  let agreementId: string;

  beforeAll(async () => {
    // A long outbound timeout: a held attempt stays in flight until the test lets it go.
    agency = await cluster.start({ name: 'Centre d’accueil Exemple', country: 'BE', config: { limits: { outboundTimeoutMs: 4000 } } });
    // The partner's published address is a gate in front of where it really listens.
    const listenPort = await freePort();
    partner = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN', config: { listen: { host: '127.0.0.1', port: listenPort } } });
    gate = await gateProxy(Number(new URL(partner.id).port), listenPort);
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
  });
  afterAll(async () => {
    await gate.close();
    await cluster.close();
  });

  async function finalStates(id: string): Promise<string[]> {
    const audit = await readWholeAudit(agency.store);
    return audit.filter((e) => e.fields.messageId === id && e.kind !== 'message.sent').map((e) => e.kind);
  }

  it('when the message arrives first: it ends cancelled at the sender, and the withdrawal still reaches the partner, which erases it', async () => {
    const consent = await recordConsent(agency, [partner.id]);
    gate.holdNext(1);
    const sent = await agency.send(referralInput(partner.id, agreementId, consent.id));
    await waitFor(() => (gate.held.length === 1 ? true : undefined));
    // The attempt is on its way: the partner has not seen it yet, the agency cannot call it back.
    const result = await agency.withdrawConsent(consent.id, { erasureRequested: true });
    expect(result.cancelled).toEqual([sent.id]);
    expect(result.notified).toEqual([partner.id]);
    const answer = await gate.release(gate.held.shift()!);
    expect(answer.status).toBe(202);
    await delivered(agency, result.withdrawalMessages[0]!);

    expect((await agency.store.getOutbox(sent.id))!.state).toBe('cancelled');
    expect(await finalStates(sent.id)).toEqual([]);
    const held = (await partner.store.getInbox(sent.id))!;
    expect(held.erasedAt).toBeDefined();
    expect(held.sdJwt).toBeUndefined();
    expect((await partner.store.getConsent(consent.id))!.withdrawnAt).toBeDefined();
    await waitFor(async () => ((await agency.listInbox({ sender: partner.id })).some((m) => m.type === MessageTypes.ERASURE_CONFIRMATION) ? true : undefined));
  });

  it('when the withdrawal arrives first: the partner refuses the late message (CONSENT_WITHDRAWN) and stores nothing', async () => {
    const consent = await recordConsent(agency, [partner.id], { subject: 'case-be-2026-0077' });
    gate.holdNext(1);
    const sent = await agency.send(referralInput(partner.id, agreementId, consent.id, { body: { subject: 'case-be-2026-0077', services: ['legal'], urgency: 'routine', reasonCode: 'orientation' } }));
    await waitFor(() => (gate.held.length === 1 ? true : undefined));
    const result = await agency.withdrawConsent(consent.id, { erasureRequested: true });
    expect(result.notified).toEqual([partner.id]);
    // The agency's attempt fails (its connection drops); its withdrawal then goes through first.
    const held = gate.held.shift()!;
    gate.abort(held);
    await delivered(agency, result.withdrawalMessages[0]!);
    const late = await gate.release(held);
    expect(late.status).toBe(403);
    expect(JSON.parse(late.body)).toMatchObject({ code: 'CONSENT_WITHDRAWN' });
    expect(await partner.store.getInbox(sent.id)).toBeUndefined();
    expect((await readWholeAudit(partner.store)).filter((e) => JSON.stringify(e.fields).includes(sent.id))).toEqual([]);
    await sleep(200);
    expect((await agency.store.getOutbox(sent.id))!.state).toBe('cancelled');
    expect(await finalStates(sent.id)).toEqual([]);
  });
});

/**
 * One suite, two setups: the main cross-node scenarios, written once and run against nodes whose
 * stores are SQLite files and against nodes whose stores are PostgreSQL schemas (one per node, in a
 * fresh database per run). The scale-out store must behave exactly as the embedded one (spec/node.md
 * §8); these are the same test bodies, not a port of them.
 */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { AuditEvents, MessageTypes, peekCompactPayload, resolveSigningKey, verifyReceipt } from '@passerelle/protocol';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, postSignedRaw, recordConsent, referralInput, waitFor, type NodeSpec } from '../packages/node/test/harness/cluster.js';
import { describePostgres, useTestDatabase } from '../packages/node/test/pg-test-db.js';

interface StoreSetup {
  name: string;
  describe: (name: string, body: () => void) => void;
  /** Called inside the suite, so that a setup can register its own hooks (a fresh database). */
  cluster: () => Cluster;
}

async function stateOf(node: RunningNode, id: string) {
  return (await node.getOutbox(id))?.state;
}

async function delivered(node: RunningNode, id: string, timeoutMs = 20_000) {
  return waitFor(async () => {
    const entry = await node.getOutbox(id);
    return entry?.state === 'delivered' ? entry : undefined;
  }, timeoutMs);
}

function crossNodeScenarios(setup: StoreSetup): void {
  setup.describe(`cross-node scenarios, stores on ${setup.name}`, () => {
    const cluster = setup.cluster();
    let agency: RunningNode;
    let partner: RunningNode;
    let agreementId: string;

    beforeAll(async () => {
      agency = await cluster.start({ name: 'Agence d\'accueil Exemple', country: 'BE', roles: ['reception-agency'] });
      partner = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN', roles: ['reintegration-partner'] });
      expect(agency.store.kind).toBe(setup.name === 'PostgreSQL' ? 'postgres' : 'sqlite');
      await pinEachOther(agency, partner);
      agreementId = await coSign(agency, partner);
    });
    afterAll(() => cluster.close());

    /** Stops the partner and returns a function that starts it again on the same directory and store. */
    async function partnerDown(): Promise<() => Promise<RunningNode>> {
      const dir = partner.config.dataDir;
      await cluster.stop(partner);
      return async () => {
        partner = await cluster.startDir(dir);
        return partner;
      };
    }

    it('delivers a referral and its response, each with a receipt that verifies', async () => {
      const consent = await recordConsent(agency, [partner.id]);
      const queued = await agency.send(referralInput(partner.id, agreementId, consent.id));
      expect(queued.state).toBe('queued');
      const sent = await delivered(agency, queued.id);
      const receipt = await verifyReceipt(sent.receipt!, {
        receiver: partner.id,
        sender: agency.id,
        messageId: queued.id,
        digest: queued.digest,
        resolveKey: (kid) => resolveSigningKey(partner.identity.document, kid, new Date()),
      });
      expect(receipt.status).toBe('accepted');
      // The receipt names the acceptance event in the partner's audit log.
      const [event] = await partner.readAudit(receipt.log!.index, receipt.log!.index + 1);
      expect(event).toMatchObject({ kind: AuditEvents.MESSAGE_RECEIVED, fields: { messageId: queued.id, digest: queued.digest } });

      const stored = (await partner.store.getInbox(queued.id))!;
      expect(stored.receipt).toBe(sent.receipt);
      expect(stored.digest).toBe(queued.digest);
      const read = await partner.readInbox(queued.id, 'test');
      expect(read.data).toMatchObject({ identity: { givenName: 'Awa' }, health: { followUpRequired: true } });

      const response = await partner.send({
        type: MessageTypes.REFERRAL_RESPONSE,
        to: agency.id,
        agreementId,
        threadId: read.threadId,
        body: { inReplyTo: queued.id, subject: 'case-be-2026-0042', decision: 'accepted', receiverCaseRef: 'sn-dkr-2026-0107' },
      });
      const back = await delivered(partner, response.id);
      const backReceipt = await verifyReceipt(back.receipt!, {
        receiver: agency.id,
        sender: partner.id,
        messageId: response.id,
        digest: response.digest,
        resolveKey: (kid) => resolveSigningKey(agency.identity.document, kid, new Date()),
      });
      expect(backReceipt.status).toBe('accepted');
      expect(peekCompactPayload(back.receipt!).iss).toBe(agency.id);
      expect((await agency.store.getInbox(response.id))!.receipt).toBe(back.receipt);
      const thread = await agency.readThread(read.threadId, 'test');
      expect(thread.map((m) => [m.direction, m.type])).toEqual([
        ['outbound', 'referral'],
        ['inbound', 'referral-response'],
      ]);
    });

    it('answers a repeated delivery with the original receipt and stores nothing more', async () => {
      const consent = await recordConsent(agency, [partner.id]);
      const queued = await agency.send(referralInput(partner.id, agreementId, consent.id));
      const sent = await delivered(agency, queued.id);
      const auditSize = await partner.store.auditSize();
      const duplicates: string[] = [];
      const onAccepted = (e: { messageId: string; duplicate: boolean }) => {
        if (e.duplicate) duplicates.push(e.messageId);
      };
      partner.events.on('inbox.accepted', onAccepted);
      try {
        // The same bytes again, as a sender that never saw the first answer would send them.
        const jwe = (await agency.store.getOutbox(queued.id))!.jwe;
        for (let i = 0; i < 2; i++) {
          const res = await postSignedRaw({ url: `${partner.id}/inbox`, body: jwe, key: agency.identity.signingKey(), sender: agency.id });
          expect(res.status).toBe(202);
          expect(res.json?.receipt).toBe(sent.receipt);
        }
      } finally {
        partner.events.off('inbox.accepted', onAccepted);
      }
      expect(duplicates).toEqual([queued.id, queued.id]);
      expect((await partner.listInbox({ sender: agency.id })).filter((m) => m.id === queued.id)).toHaveLength(1);
      expect(await partner.store.auditSize()).toBe(auditSize);
    });

    it('cancels a message waiting in the outbox when its consent is withdrawn', async () => {
      const consent = await recordConsent(agency, [partner.id]);
      const first = await agency.send(referralInput(partner.id, agreementId, consent.id));
      await delivered(agency, first.id);

      const restart = await partnerDown();
      const waiting = await agency.send(referralInput(partner.id, agreementId, consent.id));
      expect(await stateOf(agency, waiting.id)).toBe('queued');
      const result = await agency.withdrawConsent(consent.id, { erasureRequested: true });
      expect(result.cancelled).toEqual([waiting.id]);
      expect(result.notified).toEqual([partner.id]);
      const cancelled = (await agency.getOutbox(waiting.id))!;
      expect(cancelled.state).toBe('cancelled');
      const withdrawalId = result.withdrawalMessages[0]!;
      await expect(agency.send(referralInput(partner.id, agreementId, consent.id))).rejects.toMatchObject({ code: 'CONSENT_WITHDRAWN' });

      await restart();
      await delivered(agency, withdrawalId);
      // The cancelled message never reached the partner; what it held is erased, and it says so.
      expect(await partner.store.getInbox(waiting.id)).toBeUndefined();
      expect(await stateOf(agency, waiting.id)).toBe('cancelled');
      const held = (await partner.store.getInbox(first.id))!;
      expect(held.erasedAt).toBeDefined();
      expect(held.sdJwt).toBeUndefined();
      expect((await partner.store.getConsent(consent.id))!.withdrawnAt).toBeDefined();
      const confirmation = await waitFor(async () =>
        (await agency.listInbox({ sender: partner.id })).find((m) => m.type === MessageTypes.ERASURE_CONFIRMATION && m.consentId === consent.id),
      20_000);
      const read = await agency.readInbox(confirmation.id, 'test');
      expect(read.body).toMatchObject({ consentId: consent.id, inReplyTo: withdrawalId, erased: [{ messageId: first.id }] });
    });

    it('retries while the peer is down and delivers once, when it is back', async () => {
      const consent = await recordConsent(agency, [partner.id]);
      const restart = await partnerDown();
      const retries: string[] = [];
      const onRetry = (e: { messageId: string }) => retries.push(e.messageId);
      agency.events.on('outbox.retry', onRetry);
      try {
        const sent = await agency.send(referralInput(partner.id, agreementId, consent.id));
        await waitFor(() => (retries.filter((id) => id === sent.id).length >= 3 ? true : undefined));
        expect(await stateOf(agency, sent.id)).toBe('queued');
        await restart();
        const entry = await delivered(agency, sent.id);
        expect(entry.attempts).toBeGreaterThanOrEqual(4);
        expect((await partner.listInbox({ sender: agency.id })).filter((m) => m.id === sent.id)).toHaveLength(1);
        expect((await partner.store.getInbox(sent.id))!.receipt).toBe(entry.receipt);
      } finally {
        agency.events.off('outbox.retry', onRetry);
      }
    });
  });
}

crossNodeScenarios({ name: 'SQLite', describe, cluster: () => new Cluster() });

crossNodeScenarios({
  name: 'PostgreSQL',
  describe: describePostgres,
  cluster: () => {
    const db = useTestDatabase();
    return new Cluster({
      // One schema per node in the run's fresh database, as several organisations' nodes sharing a
      // database server would have.
      store: (spec: NodeSpec) => {
        const url = new URL(db.current().url);
        url.searchParams.set('schema', db.current().freshSchema(spec.country.toLowerCase()));
        return url.toString();
      },
    });
  },
});

/**
 * The happy path across two real nodes: pin, co-sign an agreement, record consent, send a
 * referral, receive it with its disclosures, answer with a referral response; receipts verified
 * on both sides.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageTypes, peekCompactPayload, verifyReceipt, resolveSigningKey } from '@passerelle/protocol';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

describe('referral and response between two nodes', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence d\'accueil Exemple', country: 'BE', roles: ['reception-agency'] });
    partner = await cluster.start({ name: 'Partenaire de réintégration Exemple', country: 'SN', roles: ['reintegration-partner'] });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
  });
  afterAll(() => cluster.close());

  it('delivers a referral with a verified receipt and the partner reads its disclosures', async () => {
    const consent = await recordConsent(agency, [partner.id]);
    const queued = await agency.send(referralInput(partner.id, agreementId, consent.id));
    expect(queued.state).toBe('queued');

    const delivered = await waitFor(async () => {
      const e = await agency.getOutbox(queued.id);
      return e?.state === 'delivered' ? e : undefined;
    });
    // The receipt is the partner's signature over this id and these exact bytes.
    const receipt = await verifyReceipt(delivered.receipt!, {
      receiver: partner.id,
      sender: agency.id,
      messageId: queued.id,
      digest: queued.digest,
      resolveKey: (kid) => resolveSigningKey(partner.identity.document, kid, new Date()),
    });
    expect(receipt.status).toBe('accepted');
    expect(typeof receipt.log?.index).toBe('number');

    const inbox = await partner.listInbox({ sender: agency.id });
    expect(inbox.map((m) => m.id)).toEqual([queued.id]);
    expect(inbox[0]!.digest).toBe(queued.digest);
    const read = await partner.readInbox(queued.id, 'test');
    expect(read.data).toMatchObject({ identity: { givenName: 'Awa', familyName: 'Exemple' }, health: { followUpRequired: true } });
    expect((await partner.store.getInbox(queued.id))!.receipt).toBe(delivered.receipt);

    // The read was audited, with ids only.
    const size = await partner.store.auditSize();
    const audit = await partner.readAudit(0, size);
    const read1 = audit.find((e) => e.kind === 'personal-data.read' && e.fields.messageId === queued.id);
    expect(read1).toBeDefined();
    expect(JSON.stringify(audit)).not.toContain('Awa');

    const response = await partner.send({
      type: MessageTypes.REFERRAL_RESPONSE,
      to: agency.id,
      agreementId,
      threadId: read.threadId,
      body: { inReplyTo: queued.id, subject: 'case-be-2026-0042', decision: 'accepted', receiverCaseRef: 'sn-dkr-2026-0107' },
    });
    const back = await waitFor(async () => {
      const e = await partner.getOutbox(response.id);
      return e?.state === 'delivered' ? e : undefined;
    });
    expect(peekCompactPayload(back.receipt!).iss).toBe(agency.id);
    const thread = await agency.readThread(read.threadId, 'test');
    expect(thread.map((m) => [m.direction, m.type])).toEqual([
      ['outbound', 'referral'],
      ['inbound', 'referral-response'],
    ]);
  });
});

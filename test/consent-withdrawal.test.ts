/**
 * Consent withdrawal end to end (DESIGN flow 5): queued messages under the consent are cancelled,
 * the withdrawal reaches every node that received data under it ahead of other traffic, the
 * recipient erases and answers with a signed erasure confirmation, and refuses anything later
 * under that consent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageTypes } from '@passerelle/protocol';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

describe('consent withdrawal', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
  });
  afterAll(() => cluster.close());

  it('cancels what waits, delivers the withdrawal first, and gets the erasure confirmed', async () => {
    const consent = await recordConsent(agency, [partner.id]);
    const other = await recordConsent(agency, [partner.id], { subject: 'case-be-2026-0077' });
    const first = await agency.send(referralInput(partner.id, agreementId, consent.id));
    await waitFor(async () => ((await agency.getOutbox(first.id))?.state === 'delivered' ? true : undefined));
    expect((await partner.readInbox(first.id, 'test')).data).toBeDefined();

    const dir = partner.config.dataDir;
    await cluster.stop(partner);
    const waiting = await agency.send(referralInput(partner.id, agreementId, consent.id));
    const unrelated = await agency.send(referralInput(partner.id, agreementId, other.id, { body: { subject: 'case-be-2026-0077', services: ['legal'], urgency: 'routine', reasonCode: 'orientation' } }));

    const result = await agency.withdrawConsent(consent.id, { erasureRequested: true });
    expect(result.cancelled).toEqual([waiting.id]);
    expect(result.notified).toEqual([partner.id]);
    expect((await agency.getOutbox(waiting.id))!.state).toBe('cancelled');
    const withdrawalId = result.withdrawalMessages[0]!;
    expect((await agency.store.getOutbox(withdrawalId))!.priority).toBe(0);

    // Nothing new can be queued under a withdrawn consent.
    await expect(agency.send(referralInput(partner.id, agreementId, consent.id))).rejects.toMatchObject({ code: 'CONSENT_WITHDRAWN' });

    partner = await cluster.startDir(dir);
    await waitFor(async () => ((await agency.getOutbox(unrelated.id))?.state === 'delivered' ? true : undefined), 20_000);
    expect((await agency.getOutbox(withdrawalId))!.state).toBe('delivered');

    // The withdrawal was accepted before the unrelated referral (audit order on the partner).
    const audit = await partner.readAudit(0, await partner.store.auditSize());
    const accepted = audit.filter((e) => e.kind === 'message.received').map((e) => e.fields.messageId);
    expect(accepted.indexOf(withdrawalId)).toBeGreaterThan(-1);
    expect(accepted.indexOf(withdrawalId)).toBeLessThan(accepted.indexOf(unrelated.id));
    expect(accepted).not.toContain(waiting.id);

    // The partner erased what it held and says so, signed.
    const held = (await partner.store.getInbox(first.id))!;
    expect(held.erasedAt).toBeDefined();
    expect(held.sdJwt).toBeUndefined();
    const confirmation = await waitFor(async () => (await agency.listInbox({ sender: partner.id })).find((m) => m.type === MessageTypes.ERASURE_CONFIRMATION));
    const read = await agency.readInbox(confirmation.id, 'test');
    expect(read.body).toMatchObject({ consentId: consent.id, inReplyTo: withdrawalId, erased: [{ messageId: first.id }] });
    expect((await partner.store.getConsent(consent.id))!.withdrawnAt).toBeDefined();
  });

  it('makes the recipient refuse a later message under the withdrawn consent', async () => {
    const consent = await recordConsent(agency, [partner.id]);
    const first = await agency.send(referralInput(partner.id, agreementId, consent.id));
    await waitFor(async () => ((await agency.getOutbox(first.id))?.state === 'delivered' ? true : undefined));
    const result = await agency.withdrawConsent(consent.id, { erasureRequested: false });
    await waitFor(async () => ((await agency.getOutbox(result.withdrawalMessages[0]!))?.state === 'delivered' ? true : undefined));
    // Erasure was not requested: the data stays, the consent is withdrawn on both sides.
    expect((await partner.store.getInbox(first.id))!.erasedAt).toBeUndefined();
    expect((await partner.store.getConsent(consent.id))!.withdrawnAt).toBeDefined();
    const size = await partner.store.auditSize();
    const { postSignedRaw } = await import('../packages/node/test/harness/cluster.js');
    const { buildReferral, currentEncryptionKey, seal } = await import('@passerelle/protocol');
    const input = referralInput(partner.id, agreementId, consent.id);
    const message = buildReferral({ ...input, from: agency.id, consentRecord: consent.jws, body: input.body as never, data: input.data as never });
    const enc = currentEncryptionKey(partner.identity.document);
    const sealed = await seal(message, { signingKey: agency.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } });
    const res = await postSignedRaw({ url: `${partner.id}/inbox`, body: sealed.jwe, key: agency.identity.signingKey(), sender: agency.id });
    expect(res.status).toBe(403);
    expect(res.json?.code).toBe('CONSENT_WITHDRAWN');
    expect(typeof res.json?.receipt).toBe('string');
    expect(await partner.store.auditSize()).toBe(size);
  });
});

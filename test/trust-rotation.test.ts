/**
 * The trust store (spec/node.md §3): no trust on first use (a wrong pin is refused), a peer's key
 * rotation is followed when it signs with a key we do not know yet, and an older document version
 * is refused once a newer one is known.
 */
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageTypes, generateSigningKey } from '@passerelle/protocol';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

describe('trust store', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN' });
  });
  afterAll(() => cluster.close());

  it('refuses a document not signed by the pinned fingerprint', async () => {
    const wrong = (await generateSigningKey()).kid;
    const view = await agency.addPeer(partner.id, [wrong]);
    expect(view.documentError).toBe('FINGERPRINT_MISMATCH');
    expect(view.document).toBeUndefined();
    await pinEachOther(agency, partner);
    expect(agency.listPeers().find((p) => p.nodeId === partner.id)!.document?.name).toBe('Partenaire Exemple');
    agreementId = await coSign(agency, partner);
  });

  it('follows a rotation when the peer signs with its new key, and refuses the old document after', async () => {
    const before = partner.identity.verified.jws;
    const rotated = await partner.rotateKeys({ overlapSeconds: 3600 });
    expect(rotated.version).toBe(2);
    const consent = await recordConsent(agency, [partner.id]);
    const referral = await agency.send(referralInput(partner.id, agreementId, consent.id));
    await waitFor(async () => ((await agency.getOutbox(referral.id))?.state === 'delivered' ? true : undefined));

    // The partner's receipt and its response are signed with the new key: the agency learns it
    // from the partner's document, chained from the pinned version.
    const response = await partner.send({
      type: MessageTypes.REFERRAL_RESPONSE,
      to: agency.id,
      agreementId,
      threadId: (await partner.store.getInbox(referral.id))!.threadId,
      body: { inReplyTo: referral.id, subject: 'case-be-2026-0042', decision: 'needs-information', requestedCategories: ['education-skills'] },
    });
    await waitFor(async () => ((await partner.getOutbox(response.id))?.state === 'delivered' ? true : undefined));
    expect(agency.listPeers().find((p) => p.nodeId === partner.id)!.document?.version).toBe(2);

    // An impostor serving the partner's first document: older than the known one, refused.
    const port = Number(new URL(partner.id).port);
    const dir = partner.config.dataDir;
    await cluster.stop(partner);
    const stale = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(before));
    });
    await new Promise<void>((r) => stale.listen(port, '127.0.0.1', () => r()));
    try {
      await expect(agency.refreshPeer(partner.id)).rejects.toMatchObject({ code: 'NODE_DOCUMENT_STALE' });
      expect(agency.listPeers().find((p) => p.nodeId === partner.id)!.document?.version).toBe(2);
    } finally {
      await new Promise<void>((r) => stale.close(() => r()));
    }
    partner = await cluster.startDir(dir);
    expect(partner.identity.document.version).toBe(2);
  });
});

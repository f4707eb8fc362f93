/**
 * Offline transfer (DESIGN flow 7): queued sealed messages travel as a signed file, go through
 * the same acceptance path on the other side, and the receipts travel back to end them.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput, tempDir } from '../packages/node/test/harness/cluster.js';

describe('offline transfer', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;
  let consentId: string;
  let files: string;

  beforeAll(async () => {
    files = await tempDir('passerelle-transfer-');
    cluster.dirs.push(files);
    agency = await cluster.start({ name: 'Agence Exemple', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple', country: 'SN' });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
    consentId = (await recordConsent(agency, [partner.id])).id;
    // From now on the partner has no network: it runs without listening.
    const dir = partner.config.dataDir;
    await cluster.stop(partner);
    partner = await cluster.startDir(dir, { listen: false });
  });
  afterAll(() => cluster.close());

  it('carries messages and receipts as files and ends each message once', async () => {
    const one = await agency.send(referralInput(partner.id, agreementId, consentId));
    const two = await agency.send(referralInput(partner.id, agreementId, consentId));
    const exported = await agency.exportForPeer(partner.id, join(files, 'to-partner.json'));
    expect(exported.messages.sort()).toEqual([one.id, two.id].sort());

    const imported = await partner.importTransfer(exported.file, join(files, 'answer.json'));
    expect(imported.accepted.sort()).toEqual([one.id, two.id].sort());
    expect((await partner.readInbox(one.id, 'test')).data).toMatchObject({ identity: { givenName: 'Awa' } });

    const again = await partner.importTransfer(exported.file, join(files, 'answer-2.json'));
    expect(again.duplicates.sort()).toEqual([one.id, two.id].sort());
    expect(await partner.listInbox()).toHaveLength(2);

    const answered = await agency.importTransferAnswer(imported.answerFile);
    expect(answered.delivered.sort()).toEqual([one.id, two.id].sort());
    for (const id of [one.id, two.id]) {
      const e = (await agency.getOutbox(id))!;
      expect(e.state).toBe('delivered');
      expect(e.receipt).toBe((await partner.store.getInbox(id))!.receipt);
    }
    // A second import of the same answers changes nothing.
    expect((await agency.importTransferAnswer(imported.answerFile)).alreadyFinal.sort()).toEqual([one.id, two.id].sort());
  });

  it('refuses messages the manifest does not sign, and files for another node', async () => {
    const sent = await agency.send(referralInput(partner.id, agreementId, consentId));
    const exported = await agency.exportForPeer(partner.id, join(files, 'tampered.json'));
    const content = JSON.parse(await readFile(exported.file, 'utf8')) as { messages: { id: string; jwe: string }[] };
    const target = content.messages.find((m) => m.id === sent.id)!;
    target.jwe = `${target.jwe.slice(0, -3)}AAA`;
    await writeFile(exported.file, JSON.stringify(content));
    const imported = await partner.importTransfer(exported.file, join(files, 'tampered-answer.json'));
    expect(imported.rejected).toEqual([{ id: sent.id, code: 'SIGNATURE_INVALID' }]);
    expect(await partner.store.getInbox(sent.id)).toBeUndefined();

    // The agency cannot import a file addressed to the partner.
    await expect(agency.importTransfer(join(files, 'to-partner.json'), join(files, 'x.json'))).rejects.toMatchObject({ code: 'PEER_UNKNOWN' });
  });
});

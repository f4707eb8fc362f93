/**
 * Audit bundles end to end (spec/audit.md, spec/node.md §9): two real nodes exchange a referral, a
 * response, a reintegration profile, an update, a consent withdrawal and the erasure confirmation;
 * each exports a bundle and the protocol's offline verifier accepts both — and names the check
 * that fails once a byte, a log entry or a receipt is changed. Fictional organisations only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AuditEvents,
  b64u,
  checkpointDigest,
  decodeProof,
  fromB64u,
  MessageTypes,
  peekCompactPayload,
  verifyBundle,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
  type AuditBundle,
  type AuditReport,
} from '@passerelle/protocol';
import { exportAuditBundle, type RunningNode } from '@passerelle/node';
import { Cluster, coSign, pinEachOther, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

const AUDIT_FAST = { audit: { checkpointIntervalMs: 250 } };

async function delivered(node: RunningNode, id: string): Promise<void> {
  await waitFor(async () => ((await node.getOutbox(id))?.state === 'delivered' ? true : undefined), 20_000);
}

function clone(bundle: AuditBundle): AuditBundle {
  return structuredClone(bundle);
}

function checks(report: AuditReport): string[] {
  return report.failures.map((f) => `${f.check}:${f.code}`);
}

describe('audit bundles across two nodes', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;
  const ids: Record<string, string> = {};
  let threadId: string;
  let consentId: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence Exemple Bruxelles', country: 'BE', roles: ['reception-agency'], config: AUDIT_FAST });
    partner = await cluster.start({ name: 'Partenaire Exemple Dakar', country: 'SN', roles: ['reintegration-partner'], config: AUDIT_FAST });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);

    const consent = await recordConsent(agency, [partner.id], {
      purposes: ['referral', 'reintegration-planning', 'monitoring'],
      categories: ['identity', 'contact', 'health', 'return-travel', 'monitoring'],
    });
    consentId = consent.id;
    const referral = await agency.send(referralInput(partner.id, agreementId, consent.id));
    ids.referral = referral.id;
    await delivered(agency, referral.id);
    threadId = (await partner.readInbox(referral.id, 'caseworker-sn-3')).threadId;

    const response = await partner.send({
      type: MessageTypes.REFERRAL_RESPONSE,
      to: agency.id,
      agreementId,
      threadId,
      body: { inReplyTo: referral.id, subject: 'case-be-2026-0042', decision: 'accepted', receiverCaseRef: 'sn-ths-2026-0107' },
    });
    ids.response = response.id;
    await delivered(partner, response.id);

    const profile = await agency.send({
      type: MessageTypes.REINTEGRATION_PROFILE,
      to: partner.id,
      agreementId,
      consentId: consent.id,
      threadId,
      body: { subject: 'case-be-2026-0042', dimensions: ['economic', 'social'], assistancePackage: 'standard' },
      data: { 'return-travel': { destinationCountry: 'SN', destinationLocality: 'Thiès' } },
    });
    ids.profile = profile.id;
    await delivered(agency, profile.id);

    const now = Date.now();
    const update = await partner.send({
      type: MessageTypes.REINTEGRATION_UPDATE,
      to: agency.id,
      agreementId,
      consentId: consent.id,
      threadId,
      body: { subject: 'case-be-2026-0042', period: { from: new Date(now - 86_400_000).toISOString().replace(/\.\d+Z$/, 'Z'), to: new Date(now).toISOString().replace(/\.\d+Z$/, 'Z') }, visit: 'in-person' },
      data: { monitoring: { status: 'on-track' } },
    });
    ids.update = update.id;
    await delivered(partner, update.id);

    // In the same second as the update: the withdrawal is dated after every message created before it.
    const withdrawal = await agency.withdrawConsent(consent.id, { erasureRequested: true });
    ids.withdrawal = withdrawal.withdrawalMessages[0]!;
    await delivered(agency, ids.withdrawal);
    const confirmation = await waitFor(async () => (await agency.listInbox({ sender: partner.id })).find((m) => m.type === MessageTypes.ERASURE_CONFIRMATION), 20_000);
    ids.erasure = confirmation.id;
    await delivered(partner, ids.erasure);
  }, 90_000);
  afterAll(() => cluster.close());

  let agencyBundle: AuditBundle;
  let partnerBundle: AuditBundle;

  it('exports from both sides bundles that the offline verifier accepts', async () => {
    agencyBundle = await agency.exportAuditBundle();
    partnerBundle = await exportAuditBundle(partner, { scope: 'all' });

    const a = await verifyBundle(JSON.parse(JSON.stringify(agencyBundle)));
    expect(a.failures).toEqual([]);
    expect(a.ok).toBe(true);
    expect(a.outcomes).toMatchObject({ sent: 3, received: 3, accepted: 6, unacknowledged: 0 });
    expect(a.checked.peerCheckpoints).toBeGreaterThan(0);
    expect(a.checked.withdrawals).toBe(1);

    const p = await verifyBundle(JSON.parse(JSON.stringify(partnerBundle)));
    expect(p.failures).toEqual([]);
    expect(p.outcomes).toMatchObject({ sent: 3, received: 3, accepted: 6 });

    // Each side holds the other's signed statement of its log, inside the receipts it keeps.
    for (const [bundle, peer] of [[agencyBundle, partner], [partnerBundle, agency]] as const) {
      expect(bundle.peerCheckpoints.length).toBeGreaterThan(0);
      for (const jws of bundle.peerCheckpoints) {
        const cp = await verifyCheckpoint(jws, (node, kid, at) => (node === peer.id ? peer.identity.ownSigningKey(kid, at) : undefined), { origin: peer.id });
        expect(cp.origin).toBe(peer.id);
      }
    }
    for (const m of agencyBundle.messages.filter((x) => x.direction === 'sent')) {
      expect(typeof (peekCompactPayload(m.receipt!) as { log: { checkpoint?: string } }).log.checkpoint).toBe('string');
    }
    // The erasure confirmation is listed apart; the export recorded itself.
    expect(agencyBundle.erasures.map((e) => e.direction)).toEqual(['received']);
    expect(partnerBundle.erasures.map((e) => e.direction)).toEqual(['sent']);
    expect(agencyBundle.log.leaves.some((l) => l.kind === 'audit.exported')).toBe(true);
    expect(agencyBundle.log.leaves.filter((l) => l.kind === AuditEvents.MESSAGE_SENT)).toHaveLength(3);
    expect(partnerBundle.log.leaves.some((l) => l.kind === 'erasure.confirmed')).toBe(true);
  });

  it('carries no personal data by default, and the disclosures still held for a lawful full audit', async () => {
    // Every signed payload decoded, and the bundle's own JSON: the personal values of the exchange
    // appear nowhere (salted digests stand in for them).
    const json = JSON.stringify(agencyBundle);
    const tokens = json.match(/[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{40,}/g) ?? [];
    const decoded = tokens.map((t) => Buffer.from(t.split('.')[1]!, 'base64url').toString('utf8')).join('\n');
    const plain = json.replace(/[A-Za-z0-9_-]{20,}/g, '');
    for (const value of ['Awa', 'Thiès', '+32 470', 'on-track', 'chronic', '1994-03-12']) {
      expect(decoded).not.toContain(value);
      expect(plain).not.toContain(value);
    }
    expect(decoded).toContain('case-be-2026-0042');
    expect([...agencyBundle.messages, ...agencyBundle.erasures].every((m) => m.disclosures === undefined)).toBe(true);

    const full = await agency.exportAuditBundle({ withDisclosures: true });
    expect(full.personalData).toBe('lawful-full-audit');
    const update = full.messages.find((m) => peekCompactPayload(m.jwt).jti === ids.update)!;
    expect(update.disclosures!.length).toBeGreaterThan(0);
    const report = await verifyBundle(full);
    expect(report.failures).toEqual([]);
    // Reading personal data in bulk is itself recorded.
    const audit = await agency.readAudit(0, await agency.store.auditSize());
    expect(audit.filter((e) => e.kind === 'audit.exported').map((e) => e.fields.personalData)).toContain('lawful-full-audit');
  });

  it('exports scoped bundles (thread, consent, peer, range) that verify with inclusion proofs', async () => {
    const created = peekCompactPayload((await agency.store.getOutbox(ids.referral!))!.jwt).iat as number;
    const scopes = [
      { scope: 'thread' as const, threadId },
      { scope: 'consent' as const, consentId },
      { scope: 'peer' as const, peer: partner.id },
      { scope: 'range' as const, from: new Date((created - 1) * 1000).toISOString(), to: new Date((created + 1) * 1000).toISOString() },
    ];
    for (const options of scopes) {
      const bundle = await agency.exportAuditBundle(options);
      const report = await verifyBundle(bundle);
      expect({ scope: options.scope, failures: report.failures }).toEqual({ scope: options.scope, failures: [] });
      expect(bundle.log.inclusionProofs.length).toBe(bundle.log.leaves.length);
    }
    const range = await agency.exportAuditBundle(scopes[3]!);
    expect(range.messages.map((m) => peekCompactPayload(m.jwt).jti)).toContain(ids.referral);
    for (const m of range.messages) expect(Math.abs((peekCompactPayload(m.jwt).iat as number) - created)).toBeLessThanOrEqual(1);
    // The case's thread; the withdrawal and its confirmation open a thread of their own.
    const thread = await partner.exportAuditBundle({ scope: { kind: 'thread', threadId } });
    expect(thread.messages.map((m) => peekCompactPayload(m.jwt).jti).sort()).toEqual([ids.referral, ids.response, ids.profile, ids.update].sort());
    await expect(agency.exportAuditBundle({ scope: 'range', from: 'yesterday' })).rejects.toMatchObject({ code: 'SCHEMA_INVALID' });
  });

  it('names the check that fails when a byte, a log entry or a receipt is changed', async () => {
    const base = agencyBundle;

    // A flipped byte in a message signature.
    const flipped = clone(base);
    const m0 = flipped.messages[0]!;
    const sig = m0.jwt.slice(m0.jwt.lastIndexOf('.') + 1);
    const bytes = fromB64u(sig);
    bytes[5] = bytes[5]! ^ 0x01;
    m0.jwt = `${m0.jwt.slice(0, m0.jwt.lastIndexOf('.') + 1)}${b64u(bytes)}`;
    let report = await verifyBundle(flipped);
    expect(report.ok).toBe(false);
    expect(checks(report)).toContain('signature:SIGNATURE_INVALID');

    // An altered log entry no longer produces the signed root.
    const altered = clone(base);
    const sent = altered.log.leaves.find((l) => l.kind === AuditEvents.MESSAGE_SENT)!;
    sent.fields = { ...sent.fields, peer: 'https://elsewhere.example' };
    report = await verifyBundle(altered);
    expect(checks(report)).toContain('inclusion:AUDIT_PROOF_INVALID');
    expect(checks(report)).toContain('cross-record:AUDIT_BUNDLE_INCONSISTENT');

    // A removed entry: the attested counts and the whole-log completeness no longer hold.
    const removed = clone(base);
    const at = removed.log.leaves.findIndex((l) => l.kind === AuditEvents.MESSAGE_RECEIVED);
    removed.log.leaves.splice(at, 1);
    report = await verifyBundle(removed);
    expect(report.failures.some((f) => f.object === 'bundle attestation' && f.code === 'AUDIT_BUNDLE_INCONSISTENT')).toBe(true);
    expect(report.failures.some((f) => f.check === 'cross-record' && f.message.includes('log entry'))).toBe(true);

    // Receipts swapped between two sent messages.
    const swapped = clone(base);
    const [x, y] = swapped.messages.filter((m) => m.direction === 'sent');
    [x!.receipt, y!.receipt] = [y!.receipt, x!.receipt];
    report = await verifyBundle(swapped);
    expect(checks(report)).toContain('receipt:RECEIPT_INVALID');

    // The export time, covered by the attestation.
    const redated = clone(base);
    redated.exportedAt = '2030-01-01T00:00:00Z';
    report = await verifyBundle(redated, { now: new Date('2030-01-02T00:00:00Z') });
    expect(report.failures.some((f) => f.object === 'bundle attestation' && f.check === 'cross-record')).toBe(true);
  });

  it('serves checkpoints, inclusion and consistency proofs that verify against its signed checkpoints', async () => {
    const checkpoints = await agency.audit.checkpoints();
    expect(checkpoints.length).toBeGreaterThan(1);
    const sizes = checkpoints.map((c) => c.size);
    expect([...sizes].sort((p, q) => p - q)).toEqual(sizes);

    const older = checkpoints[0]!;
    const newer = checkpoints[checkpoints.length - 1]!;
    const consistency = await agency.audit.consistencyProof(older.size, newer.size);
    expect(verifyConsistency(older.size, newer.size, fromB64u(older.root), fromB64u(newer.root), decodeProof(consistency.path))).toBe(true);

    const [record] = await agency.readAudit(2, 3);
    const inclusion = await agency.audit.inclusionProof(2);
    expect(inclusion.leafHash).toBe(record!.leafHash);
    const cp = await verifyCheckpoint(inclusion.checkpoint!, (node, kid, at2) => (node === agency.id ? agency.identity.ownSigningKey(kid, at2) : undefined), { origin: agency.id });
    expect(cp.size).toBe(inclusion.treeSize);
    expect(verifyInclusion(fromB64u(record!.leafHash), 2, inclusion.treeSize, decodeProof(inclusion.path), fromB64u(cp.root))).toBe(true);
    await expect(agency.audit.inclusionProof(10_000_000)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(checkpointDigest(newer.jws)).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('serves the bundle, checkpoints and proofs on the local API to auditors only, never with disclosures', async () => {
    const auditor = await agency.createToken('auditor', 'autorité de protection des données');
    const caseworker = await agency.createToken('caseworker', 'poste 12');
    const get = async (token: string, path: string) => {
      const res = await fetch(`${agency.url}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
      return { status: res.status, json: (await res.json()) as Record<string, any> };
    };
    const bundle = await get(auditor.secret, `/audit/bundle?scope=thread&threadId=${threadId}`);
    expect(bundle.status).toBe(200);
    expect(bundle.json.scope).toEqual({ kind: 'thread', threadId });
    expect((await verifyBundle(bundle.json)).failures).toEqual([]);
    expect((await get(caseworker.secret, '/audit/bundle')).status).toBe(403);
    const withData = await get(auditor.secret, '/audit/bundle?withDisclosures=true');
    expect(withData.status).toBe(403);
    expect(withData.json.code).toBe('FORBIDDEN');
    expect((await get(auditor.secret, '/audit/bundle?scope=thread')).json.code).toBe('SCHEMA_INVALID');

    const checkpoints = await get(auditor.secret, '/audit/checkpoints?limit=2');
    expect(checkpoints.json.checkpoints).toHaveLength(2);
    const inclusion = await get(auditor.secret, '/audit/proofs/inclusion?index=0');
    expect(inclusion.json).toMatchObject({ leafIndex: 0 });
    const consistency = await get(auditor.secret, `/audit/proofs/consistency?from=1&to=${inclusion.json.treeSize}`);
    expect(consistency.json).toMatchObject({ from: 1, to: inclusion.json.treeSize });
    // Who exported what is on record, by token.
    const audit = await agency.readAudit(0, await agency.store.auditSize());
    expect(audit.some((e) => e.kind === 'audit.exported' && e.fields.reader === `token:${auditor.id}` && e.fields.threadId === threadId)).toBe(true);
  });

  it('carries a key rotation in the exported key histories of both sides', async () => {
    const rotated = await agency.rotateKeys();
    const consent = await recordConsent(agency, [partner.id], { subject: 'case-be-2026-0077' });
    const referral = await agency.send(
      referralInput(partner.id, agreementId, consent.id, { body: { subject: 'case-be-2026-0077', services: ['legal'], urgency: 'routine', reasonCode: 'orientation' } }),
    );
    await delivered(agency, referral.id);
    const a = await agency.exportAuditBundle();
    const p = await partner.exportAuditBundle({ scope: 'peer', peer: agency.id });
    expect(a.nodes.find((n) => n.id === agency.id)!.documents).toHaveLength(2);
    expect(p.nodes.find((n) => n.id === agency.id)!.documents).toHaveLength(2);
    expect((await verifyBundle(a)).failures).toEqual([]);
    expect((await verifyBundle(p)).failures).toEqual([]);
    expect(a.log.leaves.find((l) => l.kind === 'key.rotated')?.fields).toMatchObject({ version: rotated.version, signingKid: rotated.signingKid });
  });
});

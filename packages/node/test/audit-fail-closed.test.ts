/**
 * Fail closed (spec/node.md §9.3): when the audit log cannot be written, the node stops accepting
 * and sending — the inbox answers 503 STORE_UNAVAILABLE, nothing is queued or claimed, /readyz
 * says so — and resumes, with an `audit.resumed` entry, once the log can be written again.
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReferral, currentEncryptionKey, MessageTypes, ProtocolError, seal } from '@passerelle/protocol';
import type { RunningNode } from '../src/running-node.js';
import { AuditGate, failClosedStore } from '../src/audit/fail-closed-store.js';
import { createLogger } from '../src/observability/logger.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { NewOutboxEntry, Store } from '../src/store/types.js';
import { Cluster, coSign, pinEachOther, postSignedRaw, recordConsent, referralInput, waitFor } from './harness/cluster.js';

const AT = '2026-05-01T10:00:00Z';

function outboxEntry(id: string): NewOutboxEntry {
  return { id, peer: 'https://partenaire.example', type: 'referral', threadId: 't-1', priority: 10, jwe: `a.b.c.${id}.e`, digest: 'd'.repeat(43), jwt: `h.${id}.s`, expiresAt: '2026-06-01T10:00:00Z' };
}

describe('the fail-closed view of the store', () => {
  let store: Store;
  let failing: Set<string>;
  let gate: AuditGate;
  let guarded: Store;

  beforeAll(async () => {
    store = await openSqliteStore(':memory:');
    failing = new Set();
    // The real store, except for the methods a test makes fail as a full disk would.
    const faulty = new Proxy(store, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property);
        if (typeof value !== 'function') return value;
        if (failing.has(String(property))) return async () => Promise.reject(new ProtocolError('STORE_UNAVAILABLE', 'disk full'));
        return (value as (...a: unknown[]) => unknown).bind(target);
      },
    });
    gate = new AuditGate(createLogger({ level: 'silent' }), () => new Date(AT));
    guarded = failClosedStore(faulty, gate);
  });
  afterAll(() => store.close());

  it('keeps going when a write that records no audit entry fails', async () => {
    failing.add('claimDue');
    await expect(guarded.claimDue({ now: AT, limit: 5, owner: 'w', leaseMs: 1000 })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    failing.clear();
    expect(gate.halted).toBeUndefined();
  });

  it('stops every write, and claims nothing, once an audited write fails; reads go on', async () => {
    await guarded.enqueue(outboxEntry('m-1'), { kind: 'message.sent', fields: { messageId: 'm-1' }, at: AT });
    failing.add('enqueue');
    await expect(guarded.enqueue(outboxEntry('m-2'), { kind: 'message.sent', fields: { messageId: 'm-2' }, at: AT })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    failing.clear();
    expect(gate.halted).toMatchObject({ code: 'STORE_UNAVAILABLE', since: new Date(AT).toISOString() });

    // The store works again, but the node stays stopped until the log itself is written again.
    await expect(guarded.enqueue(outboxEntry('m-3'), { kind: 'message.sent', fields: {}, at: AT })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(guarded.appendAudit({ kind: 'token.created', fields: {}, at: AT })).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(guarded.remember('readyz', '2030-01-01T00:00:00Z')).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(await guarded.claimDue({ now: AT, limit: 5, owner: 'w', leaseMs: 1000 })).toEqual([]);
    expect((await guarded.listOutbox()).map((e) => e.id)).toEqual(['m-1']);
    expect(await guarded.auditSize()).toBe(1);

    expect(gate.resume()).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect((await guarded.claimDue({ now: AT, limit: 5, owner: 'w', leaseMs: 1000 })).map((e) => e.id)).toEqual(['m-1']);
  });

  it('never resumes from an inconsistent log', () => {
    gate.halt('AUDIT_LOG_INCONSISTENT', 'the log shrank');
    gate.halt('STORE_UNAVAILABLE', 'later failure');
    expect(gate.resume()).toBeUndefined();
    expect(gate.halted).toMatchObject({ code: 'AUDIT_LOG_INCONSISTENT', reason: 'the log shrank' });
  });
});

describe('a node whose audit log cannot be written', () => {
  const cluster = new Cluster();
  let agency: RunningNode;
  let partner: RunningNode;
  let agreementId: string;

  beforeAll(async () => {
    agency = await cluster.start({ name: 'Agence Exemple Namur', country: 'BE' });
    partner = await cluster.start({ name: 'Partenaire Exemple Kayes', country: 'ML' });
    await pinEachOther(agency, partner);
    agreementId = await coSign(agency, partner);
  });
  afterAll(() => cluster.close());

  it('answers 503 and sends nothing while the log is locked, then resumes and records it', async () => {
    const consent = await recordConsent(agency, [partner.id]);
    const input = referralInput(partner.id, agreementId, consent.id);
    const message = buildReferral({ ...input, from: agency.id, consentRecord: consent.jws, body: input.body as never, data: input.data as never });
    const enc = currentEncryptionKey(partner.identity.document);
    const sealed = await seal(message, { signingKey: agency.identity.signingKey(), recipientKey: { ...enc.jwk, kid: enc.kid } });
    const post = () => postSignedRaw({ url: `${partner.id}/inbox`, body: sealed.jwe, key: agency.identity.signingKey(), sender: agency.id });

    // Another process holds the database's write lock beyond the store's busy timeout.
    const locker = new DatabaseSync(join(partner.config.dataDir, 'node.db'));
    locker.exec('BEGIN EXCLUSIVE');
    try {
      const refused = await post();
      expect(refused.status).toBe(503);
      expect(refused.json).toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(refused.json?.['receipt']).toBeUndefined();
      expect(partner.audit.halted()).toMatchObject({ code: 'STORE_UNAVAILABLE' });

      const ready = await fetch(`${partner.url}/readyz`);
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { code: string }).code).toBe('STORE_UNAVAILABLE');
      // Refused at once now, without waiting on the lock.
      const started = Date.now();
      expect((await post()).status).toBe(503);
      await expect(
        partner.send({ type: MessageTypes.PROBLEM_REPORT, to: agency.id, agreementId, body: { code: 'INTERNAL', description: 'Dossier incomplet', retryable: true } }),
      ).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
      expect(Date.now() - started).toBeLessThan(1_500);
    } finally {
      locker.exec('ROLLBACK');
      locker.close();
    }

    await waitFor(() => (partner.audit.halted() === undefined ? true : undefined), 15_000);
    const accepted = await post();
    expect(accepted.status).toBe(202);
    expect((await fetch(`${partner.url}/readyz`)).status).toBe(200);
    const audit = await partner.readAudit(0, await partner.store.auditSize());
    const resumed = audit.find((e) => e.kind === 'audit.resumed');
    expect(resumed?.fields).toMatchObject({ code: 'STORE_UNAVAILABLE' });
    expect(audit.filter((e) => e.kind === 'message.received').map((e) => e.fields.messageId)).toEqual([message.header.id]);
    expect(audit.findIndex((e) => e.kind === 'audit.resumed')).toBeLessThan(audit.findIndex((e) => e.kind === 'message.received'));
  }, 40_000);
});

/**
 * The store failing under a running node (docs/attacks.md, Faults): a store that cannot be
 * written fails closed (503 STORE_UNAVAILABLE, no receipt, nothing acknowledged) and recovers
 * without losing or doubling anything, on SQLite and on PostgreSQL; a store restored from an old
 * backup still refuses old replays, and what it forgot (a withdrawal) is learned again the way
 * the node documents: the controller withdraws again.
 */
import { copyFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, describe, expect, it } from 'vitest';
import { MessageTypes, peekCompactPayload } from '@passerelle/protocol';
import type { RunningNode } from '@passerelle/node';
import { Cluster, postSignedRaw, recordConsent, referralInput, waitFor } from '../../packages/node/test/harness/cluster.js';
import { describePostgres, useTestDatabase } from '../../packages/node/test/pg-test-db.js';
import { checkExactlyOnce, postRaw, readWholeAudit, signedHeaders, sleep, startPair } from './helpers.js';

async function delivered(node: RunningNode, id: string, timeoutMs = 20_000) {
  return waitFor(async () => {
    const e = await node.store.getOutbox(id);
    return e?.state === 'delivered' ? e : undefined;
  }, timeoutMs);
}

async function readyz(node: RunningNode): Promise<{ status: number; code: unknown }> {
  const res = await fetch(`${node.id}/readyz`);
  return { status: res.status, code: ((await res.json()) as { code?: unknown }).code };
}

/** A store that stops accepting writes fails closed, and the same message is delivered once it recovers. */
async function failsClosedThenRecovers(agency: RunningNode, partner: RunningNode, agreementId: string, consentId: string, breakWrites: () => Promise<void> | void, restoreWrites: () => Promise<void> | void): Promise<void> {
  const token = (await partner.createToken('caseworker', 'Logiciel de suivi des dossiers')).secret;
  const own = await recordConsent(partner, [agency.id], { subject: 'case-sn-2026-0311' });
  expect((await readyz(partner)).status).toBe(200);
  const codes: string[] = [];
  agency.events.on('outbox.retry', (e) => codes.push(e.code));
  const auditBefore = await partner.store.auditSize();
  await breakWrites();
  const sent = await agency.send(referralInput(partner.id, agreementId, consentId));
  await waitFor(() => (codes.includes('STORE_UNAVAILABLE') ? true : undefined), 20_000);
  expect(await partner.store.getInbox(sent.id)).toBeUndefined();
  expect((await agency.store.getOutbox(sent.id))!.state).toBe('queued');
  expect((await agency.store.getOutbox(sent.id))!.receipt).toBeUndefined();
  expect(await readyz(partner)).toEqual({ status: 503, code: 'STORE_UNAVAILABLE' });
  // The local API fails closed too: a withdrawal that cannot be recorded is not reported as done.
  const withdraw = await fetch(`${partner.id}/api/v1/consents/${own.id}/withdraw`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' });
  expect(withdraw.status).toBe(503);
  expect(((await withdraw.json()) as { code: string }).code).toBe('STORE_UNAVAILABLE');
  expect(await partner.store.auditSize()).toBe(auditBefore);
  expect((await partner.store.getConsent(own.id))!.withdrawnAt).toBeUndefined();

  await restoreWrites();
  await delivered(agency, sent.id);
  expect((await readyz(partner)).status).toBe(200);
  await checkExactlyOnce(agency.store, partner.store, [sent.id]);
}

describe('an unwritable store (SQLite)', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('another process holding the write lock: 503 STORE_UNAVAILABLE, no receipt, readiness fails, then the message is delivered once', async () => {
    const p = await startPair(
      cluster,
      // The receiver's answer takes the store's busy timeout (2 s); the sender waits for it.
      { config: { limits: { outboundTimeoutMs: 6000 }, outbox: { leaseMs: 15_000 } } },
      // Its own worker stays idle, so that only the writes under test wait on the lock.
      { config: { outbox: { pollIntervalMs: 60_000 } } },
    );
    // A backup tool or a command-line session left inside a write transaction on the node's file.
    const locker = new DatabaseSync(join(p.partner.config.dataDir, 'node.db'));
    try {
      await failsClosedThenRecovers(
        p.agency,
        p.partner,
        p.agreementId,
        p.consentId,
        () => locker.exec('BEGIN IMMEDIATE'),
        () => locker.exec('ROLLBACK'),
      );
    } finally {
      locker.close();
    }
  }, 60_000);
});

describePostgres('an unwritable store (PostgreSQL)', () => {
  const db = useTestDatabase();
  const cluster = new Cluster();
  const role = `passerelle_node_${randomBytes(4).toString('hex')}`;
  afterAll(async () => {
    await cluster.close();
    await db.current().sql(`DROP OWNED BY ${role}`).catch(() => undefined);
    await db.current().sql(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
  });

  it('the node’s database role losing its write privileges: 503 STORE_UNAVAILABLE, no receipt, then the message is delivered once', async () => {
    const { current } = db;
    await current().sql(`CREATE ROLE ${role} LOGIN`);
    await current().sql(`GRANT CREATE ON DATABASE ${current().name} TO ${role}`);
    const schema = current().freshSchema('rx');
    const url = new URL(current().url);
    url.username = role;
    url.searchParams.set('schema', schema);
    const p = await startPair(cluster, {}, { config: { store: url.toString() } });
    expect(p.partner.store.kind).toBe('postgres');
    await failsClosedThenRecovers(
      p.agency,
      p.partner,
      p.agreementId,
      p.consentId,
      () => current().sql(`REVOKE INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} FROM ${role}`).then(() => undefined),
      () => current().sql(`GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${schema} TO ${role}`).then(() => undefined),
    );
  }, 60_000);
});

describe('a store restored from an old backup (SQLite)', () => {
  const cluster = new Cluster();
  afterAll(() => cluster.close());

  it('still refuses old replays, and re-learns a forgotten withdrawal when the controller withdraws again', async () => {
    // A one-second freshness window for signed requests (the smallest), so that captured ones go stale quickly.
    const p = await startPair(cluster, {}, { config: { limits: { maxClockSkewSeconds: 1 } } });
    const inbox = `${p.partner.id}/inbox`;
    const capture = async (jwe: string) => ({ jwe, headers: await signedHeaders({ url: inbox, body: jwe, key: p.agency.identity.signingKey(), sender: p.agency.id }) });

    // Before the backup: m1 delivered.
    const m1 = await delivered(p.agency, (await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId))).id);
    const dir = p.partner.config.dataDir;
    const files = ['node.db', 'node.db-wal', 'node.db-shm'];
    await cluster.stop(p.partner);
    for (const f of files) if (existsSync(join(dir, f))) await copyFile(join(dir, f), join(dir, `${f}.backup`));
    p.partner = await cluster.startDir(dir);

    // After the backup: m2 delivered (and captured on the wire), then the consent withdrawn and
    // m1 and m2 erased by the partner.
    const m2 = await delivered(p.agency, (await p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId))).id);
    const m2Captured = await capture(m2.jwe);
    const withdrawal = await p.agency.withdrawConsent(p.consentId, { erasureRequested: true });
    const w = await delivered(p.agency, withdrawal.withdrawalMessages[0]!);
    const wCaptured = await capture(w.jwe);
    expect((await p.partner.store.getInbox(m1.id))!.erasedAt).toBeDefined();
    expect((await p.partner.store.getConsent(p.consentId))!.withdrawnAt).toBeDefined();

    // The partner's store is restored from the backup: it forgets m2, the withdrawal and the erasure.
    await cluster.stop(p.partner);
    for (const f of files) {
      await rm(join(dir, f), { force: true });
      if (existsSync(join(dir, `${f}.backup`))) await copyFile(join(dir, `${f}.backup`), join(dir, f));
    }
    p.partner = await cluster.startDir(dir);
    expect(await p.partner.store.getInbox(m2.id)).toBeUndefined();
    expect((await p.partner.store.getInbox(m1.id))!.sdJwt).toBeDefined();
    expect((await p.partner.store.getConsent(p.consentId))!.withdrawnAt).toBeUndefined();
    // Request times are whole seconds: two seconds later, a capture is more than one second old.
    await sleep(2_100);
    const sizeBefore = await p.partner.store.auditSize();

    // 1. What the backup remembers is answered with its original receipt, never accepted twice.
    const again = await postSignedRaw({ url: inbox, body: m1.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id });
    expect(again.status).toBe(202);
    expect(again.json?.receipt).toBe(m1.receipt);
    // 2. What it forgot cannot be replayed from the wire: the captured requests are stale.
    for (const c of [m2Captured, wCaptured]) {
      const replayed = await postRaw(inbox, c.headers, c.jwe);
      expect(replayed.status).toBe(422);
      expect(replayed.json?.code).toBe('CLOCK_SKEW');
    }
    expect(await p.partner.store.getInbox(m2.id)).toBeUndefined();
    expect(await p.partner.store.auditSize()).toBe(sizeBefore);
    // 3. The controller will not send under the withdrawn consent again.
    await expect(p.agency.send(referralInput(p.partner.id, p.agreementId, p.consentId))).rejects.toMatchObject({ code: 'CONSENT_WITHDRAWN' });

    // 4. Told of the restore, the controller withdraws again: every peer that received data under
    //    the consent is notified anew, and the partner records the withdrawal and erases again.
    const again2 = await p.agency.withdrawConsent(p.consentId, { erasureRequested: true });
    expect(again2.notified).toEqual([p.partner.id]);
    await delivered(p.agency, again2.withdrawalMessages[0]!);
    expect((await p.partner.store.getConsent(p.consentId))!.withdrawnAt).toBeDefined();
    const m1Held = (await p.partner.store.getInbox(m1.id))!;
    expect(m1Held.erasedAt).toBeDefined();
    expect(m1Held.sdJwt).toBeUndefined();
    await waitFor(async () => ((await p.agency.listInbox({ sender: p.partner.id })).filter((m) => m.type === MessageTypes.ERASURE_CONFIRMATION).length >= 2 ? true : undefined));
    // Under the withdrawn consent, a message the restored partner never saw is now refused.
    const { sealReferral } = await import('./helpers.js');
    const late = await sealReferral(p.agency, p.partner, p.agreementId, p.consentId);
    const refused = await postSignedRaw({ url: inbox, body: late.jwe, key: p.agency.identity.signingKey(), sender: p.agency.id });
    expect(refused.status).toBe(403);
    expect(refused.json?.code).toBe('CONSENT_WITHDRAWN');

    // 5. The restore shows: a receipt issued before it names a log position the partner reused.
    const m2Index = (peekCompactPayload(m2.receipt!) as { log: { index: number } }).log.index;
    const reused = (await readWholeAudit(p.partner.store)).find((e) => e.index === m2Index);
    expect(reused === undefined || reused.fields.messageId !== m2.id).toBe(true);
  }, 60_000);
});

/**
 * Signed checkpoints of the node's log (spec/audit.md §3.3, spec/node.md §9.1): signed on an
 * interval while the log grows, on demand and at shutdown; never two that contradict each other,
 * even when several instances share one database; and the one inside a receipt must verify with
 * the receiver's key before the sender keeps the receipt.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  b64u,
  buildCheckpoint,
  fromB64u,
  generateSigningKey,
  MerkleTree,
  signCheckpoint,
  signReceipt,
  verifyCheckpoint,
  type NodeKeyResolver,
} from '@passerelle/protocol';
import { AuditLog } from '../src/audit/audit-log.js';
import { AuditGate } from '../src/audit/fail-closed-store.js';
import { verifyReceiptCheckpoint } from '../src/audit/receipt-checkpoint.js';
import { loadNode } from '../src/init.js';
import { startNode } from '../src/node.js';
import { createLogger } from '../src/observability/logger.js';
import { openSqliteStore } from '../src/store/sqlite.js';
import type { CheckpointRecord, Store } from '../src/store/types.js';
import { prepareNode, waitFor } from './harness/cluster.js';

const silent = createLogger({ level: 'silent' });
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function allCheckpoints(store: Store): Promise<CheckpointRecord[]> {
  return store.listCheckpoints(-1, 1000);
}

describe('audit checkpoints', () => {
  it('are signed on their interval while the log grows, not while it stands still', async () => {
    const { dir } = await prepareNode({ name: 'Agence Exemple Mons', country: 'BE', config: { audit: { checkpointIntervalMs: 100 } } });
    dirs.push(dir);
    const node = await startNode({ dir, listen: false, worker: false });
    try {
      await node.createToken('caseworker', 'poste 1');
      await node.createToken('caseworker', 'poste 2');
      const size = await node.store.auditSize();
      await waitFor(async () => ((await node.store.latestCheckpoint())?.size === size ? true : undefined), 5_000);
      const count = (await allCheckpoints(node.store)).length;
      await new Promise((r) => setTimeout(r, 350));
      expect(await allCheckpoints(node.store)).toHaveLength(count);
      const cp = await verifyCheckpoint(node.audit.latestCheckpoint()!, (id, kid, at) => (id === node.id ? node.identity.ownSigningKey(kid, at) : undefined), { origin: node.id });
      expect(cp.size).toBe(size);
    } finally {
      await node.close();
    }
  });

  it('never contradict each other when two instances sign for one shared log, whatever their clocks', async () => {
    const { dir } = await prepareNode({ name: 'Agence Exemple Mons', country: 'BE' });
    dirs.push(dir);
    const { identity } = await loadNode(dir);
    const path = join(dir, 'shared.db');
    const storeA = await openSqliteStore(path);
    const storeB = await openSqliteStore(path);
    // B's clock runs a minute ahead of A's.
    const base = Date.now();
    const open = (store: Store, skewMs: number) =>
      AuditLog.open({ store, identity, gate: new AuditGate(silent, () => new Date()), logger: silent, now: () => new Date(Date.now() + skewMs), checkpointIntervalMs: 60_000 });
    try {
      const a = await open(storeA, 0);
      const b = await open(storeB, 60_000);
      const append = (store: Store, n: number) => store.appendAudit({ kind: 'tick', fields: { n }, at: new Date(base).toISOString() });
      await append(storeA, 0);
      await a.checkpoint();
      await append(storeB, 1);
      await append(storeB, 2);
      await b.checkpoint();
      await append(storeA, 3);
      // A's checkpoint would be dated before B's: refused, B's adopted, then A signs one after it.
      const adopted = await a.checkpoint();
      expect(adopted.size).toBe(3);
      expect((await a.checkpoint()).size).toBe(4);
      await Promise.all([a.checkpoint(), b.checkpoint(), append(storeA, 4), append(storeB, 5)]);
      await Promise.all([a.checkpoint(), b.checkpoint()]);

      const stored = await allCheckpoints(storeA);
      const tree = new MerkleTree((await storeA.readAudit(0, 100)).map((r) => fromB64u(r.leafHash)));
      for (let i = 1; i < stored.length; i++) {
        expect(stored[i]!.size).toBeGreaterThan(stored[i - 1]!.size);
        expect(Date.parse(stored[i]!.at)).toBeGreaterThanOrEqual(Date.parse(stored[i - 1]!.at));
      }
      for (const cp of stored) expect(b64u(tree.root(cp.size))).toBe(cp.root);
      expect(stored.at(-1)!.size).toBe(6);
    } finally {
      await storeA.close();
      await storeB.close();
    }
  });

  it('inside a receipt must verify with the receiver’s key, or the receipt is not kept', async () => {
    const receiverKey = await generateSigningKey();
    const other = await generateSigningKey();
    const receiver = 'https://partenaire.example';
    const resolve: NodeKeyResolver = (id, kid) => (id === receiver && kid === receiverKey.kid ? receiverKey.publicJwk : undefined);
    const payload = buildCheckpoint({ origin: receiver, size: 3, root: new Uint8Array(32).fill(9) });
    const receipt = async (checkpoint?: string) =>
      signReceipt(
        { receiver, sender: 'https://agence.example', messageId: '0196a000-0000-7000-8000-000000000001', digest: 'x'.repeat(43), status: 'accepted', log: { index: 4, ...(checkpoint ? { checkpoint } : {}) } },
        receiverKey,
      );
    expect(await verifyReceiptCheckpoint(await receipt(), receiver, resolve)).toBeUndefined();
    expect(await verifyReceiptCheckpoint(await receipt(await signCheckpoint(payload, receiverKey)), receiver, resolve)).toMatchObject({ size: 3 });
    await expect(verifyReceiptCheckpoint(await receipt(await signCheckpoint(payload, other)), receiver, resolve)).rejects.toMatchObject({
      code: 'RECEIPT_INVALID',
      details: { reason: 'AUDIT_CHECKPOINT_INVALID' },
    });
    const elsewhere = await signCheckpoint(buildCheckpoint({ origin: 'https://ailleurs.example', size: 1, root: new Uint8Array(32) }), receiverKey);
    await expect(verifyReceiptCheckpoint(await receipt(elsewhere), receiver, resolve)).rejects.toMatchObject({ code: 'RECEIPT_INVALID' });
  });
});

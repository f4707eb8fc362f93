/**
 * Crash safety (spec/node.md §4.4): sender and receiver run as separate processes and are killed
 * with SIGKILL in the middle of deliveries, then restarted. Every message still ends delivered,
 * exactly once: one inbox row per message, and the sender holds the receipt the receiver stored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { startNode } from '@passerelle/node';
import { openSqliteStore } from '../packages/node/src/store/sqlite.js';
import { coSign, pinEachOther, prepareNode, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY = join(ROOT, 'packages/node/src/bin/node-process.ts');
const MESSAGES = 16;

function spawnNode(dir: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--conditions=@passerelle/source', '--import', 'tsx', ENTRY, dir], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`node did not start: ${stderr}`)), 20_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      if (line.includes('"ready":true')) {
        clearTimeout(timer);
        resolvePromise(child);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node exited with ${code}: ${stderr}`));
    });
  });
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function kill9(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (!running(child)) return r();
    child.once('exit', () => r());
    child.kill('SIGKILL');
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (!running(child)) return r();
    child.once('exit', () => r());
    child.kill('SIGTERM');
  });
}

async function count<T>(dbPath: string, read: (store: Awaited<ReturnType<typeof openSqliteStore>>) => Promise<T>): Promise<T> {
  const store = await openSqliteStore(dbPath, { readOnly: true });
  try {
    return await read(store);
  } finally {
    await store.close();
  }
}

describe('crash recovery across processes', () => {
  const children: ChildProcess[] = [];
  afterAll(async () => {
    await Promise.all(children.map((c) => kill9(c)));
  });

  it('delivers every message exactly once when sender and receiver are killed mid-delivery', async () => {
    const tuning = { outbox: { batchSize: 4, perPeerConcurrency: 2, leaseMs: 2500 }, limits: { outboundTimeoutMs: 1000, outboundConnectTimeoutMs: 500 } };
    const a = await prepareNode({ name: 'Agence Exemple', country: 'BE', config: tuning });
    const b = await prepareNode({ name: 'Partenaire Exemple', country: 'SN', config: { faults: { delayAfterCommitMs: 120 } } });

    // Set-up in this process; the sender's worker stays off so that everything is still queued.
    const sender = await startNode({ dir: a.dir, worker: false });
    const receiver = await startNode({ dir: b.dir });
    await pinEachOther(sender, receiver);
    const agreementId = await coSign(sender, receiver);
    const consent = await recordConsent(sender, [receiver.id]);
    const ids: string[] = [];
    for (let i = 0; i < MESSAGES; i++) ids.push((await sender.send(referralInput(receiver.id, agreementId, consent.id))).id);
    await sender.close();
    await receiver.close();

    const senderDb = join(a.dir, 'node.db');
    const receiverDb = join(b.dir, 'node.db');
    const inboxCount = () => count(receiverDb, async (s) => (await s.listInbox()).length);

    let rx = await spawnNode(b.dir);
    children.push(rx);
    let tx = await spawnNode(a.dir);
    children.push(tx);

    await waitFor(async () => ((await inboxCount()) >= 3 ? true : undefined), 20_000, 5);
    await kill9(tx);
    const afterSenderCrash = await inboxCount();
    expect(afterSenderCrash).toBeLessThan(MESSAGES);
    tx = await spawnNode(a.dir);
    children.push(tx);

    await waitFor(async () => ((await inboxCount()) >= afterSenderCrash + 3 ? true : undefined), 20_000, 5);
    await kill9(rx);
    expect(await inboxCount()).toBeLessThan(MESSAGES);
    rx = await spawnNode(b.dir);
    children.push(rx);

    await waitFor(
      async () => ((await count(senderDb, async (s) => (await s.countOutboxByState()).delivered)) === MESSAGES ? true : undefined),
      40_000,
      50,
    );
    await stop(tx);
    await stop(rx);

    const outbox = await count(senderDb, (s) => s.listOutbox());
    const inbox = await count(receiverDb, (s) => s.listInbox());
    expect(outbox.map((e) => e.state)).toEqual(ids.map(() => 'delivered'));
    expect(inbox.map((e) => e.id).sort()).toEqual([...ids].sort());
    const acceptances = await count(receiverDb, async (s) => (await s.readAudit(0, await s.auditSize())).filter((e) => e.kind === 'message.received'));
    expect(acceptances).toHaveLength(MESSAGES);
    // The crashes did interrupt deliveries: some messages needed more than one attempt.
    expect(outbox.reduce((n, e) => n + e.attempts, 0)).toBeGreaterThan(MESSAGES);
    for (const e of outbox) {
      const stored = inbox.find((m) => m.id === e.id)!;
      expect(e.receipt).toBe(stored.receipt);
      expect(stored.digest).toBe(e.digest);
    }
  }, 90_000);
});

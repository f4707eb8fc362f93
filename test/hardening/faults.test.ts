/**
 * Crashes at the four narrow windows of a delivery (spec/node.md §4.5; docs/attacks.md, Faults),
 * hit deterministically with the test-only crash points (PASSERELLE_FAULT=<point>:<n> makes the
 * node SIGKILL itself the n-th time it reaches <point>): the sender after committing a message to
 * its outbox and after the peer answered but before recording it; the receiver after signing the
 * receipt inside its transaction and after committing but before answering. Thirty messages per
 * point, several kills each, on SQLite and on PostgreSQL: every message ends delivered, stored
 * once, accepted once in the audit log at the index its receipt names, and both logs verify.
 */
import { afterAll, describe, it, type ExpectStatic } from 'vitest';
import { startNode, type RunningNode } from '@passerelle/node';
import type { FaultPoint } from '../../packages/node/src/fault-injection.js';
import { coSign, pinEachOther, prepareNode, recordConsent, referralInput } from '../../packages/node/test/harness/cluster.js';
import { describePostgres, useTestDatabase } from '../../packages/node/test/pg-test-db.js';
import { checkExactlyOnce, scrapeMetric, spawnNode, stopProcess, type NodeProcess } from './helpers.js';
import { rm } from 'node:fs/promises';

const MESSAGES = 30;
/**
 * The n of each armed life of the crashing node: it dies the n-th time it reaches the point. The
 * life after the last one runs unarmed, in the test process, and finishes the work.
 */
const KILLS = [5, 9];

// Short leases and timeouts, so that a message leased by a killed sender is retried within a
// second and a half. A lease must outlast one attempt by a second (worker.ts), and with a batch no
// larger than the per-peer concurrency no claimed message waits for a slot.
const TUNING = {
  outbox: { batchSize: 2, perPeerConcurrency: 2, leaseMs: 1450, backoffBaseMs: 30, backoffCapMs: 250 },
  limits: { outboundTimeoutMs: 400, outboundConnectTimeoutMs: 200 },
};

type StoreFor = (role: 'sender' | 'receiver') => string | undefined;

interface Prepared {
  senderDir: string;
  receiverDir: string;
  agreementId: string;
  consentId: string;
  ids: string[];
  token: string;
}

async function prepare(storeFor: StoreFor, queue: number): Promise<Prepared> {
  const withStore = (role: 'sender' | 'receiver') => ({ ...TUNING, ...(storeFor(role) ? { store: storeFor(role)! } : {}) });
  const a = await prepareNode({ name: 'Centre d’accueil Exemple', country: 'BE', config: withStore('sender') });
  const b = await prepareNode({ name: 'Partenaire de réintégration Exemple', country: 'SN', config: withStore('receiver') });
  const sender = await startNode({ dir: a.dir, worker: false });
  const receiver = await startNode({ dir: b.dir, worker: false });
  try {
    await pinEachOther(sender, receiver);
    const agreementId = await coSign(sender, receiver);
    const consentId = (await recordConsent(sender, [receiver.id])).id;
    const ids: string[] = [];
    for (let i = 0; i < queue; i++) ids.push((await sender.send(referralInput(receiver.id, agreementId, consentId))).id);
    const token = (await sender.createToken('caseworker', 'Logiciel de suivi des dossiers')).secret;
    return { senderDir: a.dir, receiverDir: b.dir, agreementId, consentId, ids, token };
  } finally {
    await sender.close();
    await receiver.close();
  }
}

/** Runs the node at `dir` in child processes armed at `point`, restarting it after each crash. */
class CrashingNode {
  readonly signals: (string | null)[] = [];
  #current: NodeProcess | undefined;
  #lives = 0;
  constructor(
    readonly dir: string,
    readonly point: FaultPoint,
  ) {}

  get url(): string {
    return this.#current!.url;
  }

  async start(): Promise<void> {
    const n = KILLS[this.#lives];
    this.#lives += 1;
    this.#current = await spawnNode(this.dir, n === undefined ? {} : { PASSERELLE_FAULT: `${this.point}:${n}` });
  }

  /** Waits for the armed life to crash, then starts the next armed one; false after the last. */
  async crashThenRestart(timeoutMs = 20_000): Promise<boolean> {
    const exit = await Promise.race([this.#current!.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), timeoutMs))]);
    if (!exit) throw new Error(`no crash at ${this.point} within ${timeoutMs} ms: ${this.#current!.stderr()}`);
    this.signals.push(exit.signal);
    if (KILLS[this.#lives] === undefined) return false;
    await this.start();
    return true;
  }

  async stop(): Promise<void> {
    if (this.#current) await stopProcess(this.#current);
  }
}

/** The four points of one store, run side by side: most of their time is waiting for processes and leases. */
function crashSuite(storeFor: () => StoreFor): void {
  const dirs: string[] = [];
  const open: RunningNode[] = [];
  afterAll(async () => {
    await Promise.allSettled(open.map((n) => n.close()));
    await Promise.allSettled(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  /** The unarmed life: delivers what is left, checks the invariant; returns the duplicates the receiver answered. */
  async function finish(expect: ExpectStatic, senderDir: string, receiverDir: string, ids: string[]): Promise<number> {
    const sender = await startNode({ dir: senderDir });
    open.push(sender);
    const receiver = open.find((n) => n.config.dataDir === receiverDir) ?? (await startNode({ dir: receiverDir }));
    if (!open.includes(receiver)) open.push(receiver);
    await sender.waitForOutbox(30_000);
    const outbox = await sender.store.listOutbox();
    expect(outbox.map((e) => e.id).sort()).toEqual([...ids].sort());
    await checkExactlyOnce(sender.store, receiver.store, ids);
    const duplicates = await scrapeMetric(receiver, 'passerelle_inbox_total', { result: 'duplicate' });
    await sender.close();
    await receiver.close();
    return duplicates;
  }

  for (const point of ['inbox.receipt-signed', 'inbox.stored'] as const) it.concurrent(`receiver killed at ${point}, over thirty messages: each delivered and stored exactly once`, async ({ expect }) => {
    const prepared = await prepare(storeFor(), MESSAGES);
    dirs.push(prepared.senderDir, prepared.receiverDir);
    const receiver = new CrashingNode(prepared.receiverDir, point);
    await receiver.start();
    const sender = await startNode({ dir: prepared.senderDir });
    open.push(sender);
    try {
      while (await receiver.crashThenRestart());
      expect(receiver.signals).toEqual(KILLS.map(() => 'SIGKILL'));
    } finally {
      await receiver.stop();
      await sender.close();
    }
    await finish(expect, prepared.senderDir, prepared.receiverDir, prepared.ids);
  }, 60_000);

  it.concurrent('sender killed at outbox.sent (answered, not yet recorded), over thirty messages: each delivered and stored exactly once', async ({ expect }) => {
    const prepared = await prepare(storeFor(), MESSAGES);
    dirs.push(prepared.senderDir, prepared.receiverDir);
    const receiver = await startNode({ dir: prepared.receiverDir });
    open.push(receiver);
    const sender = new CrashingNode(prepared.senderDir, 'outbox.sent');
    await sender.start();
    try {
      while (await sender.crashThenRestart());
      expect(sender.signals).toEqual(KILLS.map(() => 'SIGKILL'));
    } finally {
      await sender.stop();
    }
    // Each delivery cut short had been accepted: it came back, and got its original receipt.
    expect(await finish(expect, prepared.senderDir, prepared.receiverDir, prepared.ids)).toBeGreaterThanOrEqual(KILLS.length);
  }, 60_000);

  it.concurrent('sender killed at outbox.committed (queued, not yet answered), over thirty messages sent through the local API: none lost, none doubled', async ({ expect }) => {
    const prepared = await prepare(storeFor(), 0);
    dirs.push(prepared.senderDir, prepared.receiverDir);
    const receiver = await startNode({ dir: prepared.receiverDir });
    open.push(receiver);
    const sender = new CrashingNode(prepared.senderDir, 'outbox.committed');
    await sender.start();
    const answered: string[] = [];
    let unanswered = 0;
    const post = (url: string) =>
      fetch(`${url}/api/v1/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${prepared.token}` },
        body: JSON.stringify(referralInput(receiver.id, prepared.agreementId, prepared.consentId)),
      }).catch(() => undefined);
    let i = 0;
    try {
      for (; i < MESSAGES; i++) {
        const res = await post(sender.url);
        if (res) {
          expect(res.status).toBe(202);
          answered.push(((await res.json()) as { id: string }).id);
        } else {
          // The node died between its commit and its answer: the caller never learns the id.
          unanswered += 1;
          if (!(await sender.crashThenRestart())) {
            i += 1;
            break;
          }
        }
      }
      expect(sender.signals).toEqual(KILLS.map(() => 'SIGKILL'));
      expect(unanswered).toBe(KILLS.length);
    } finally {
      await sender.stop();
    }
    const unarmed = await startNode({ dir: prepared.senderDir });
    for (; i < MESSAGES; i++) {
      const res = await post(unarmed.url!);
      expect(res?.status).toBe(202);
      answered.push(((await res!.json()) as { id: string }).id);
    }
    await unarmed.close();
    const probe = await startNode({ dir: prepared.senderDir, worker: false, listen: false });
    const all = (await probe.store.listOutbox()).map((e) => e.id);
    await probe.close();
    // Every request was committed before the crash: thirty messages, the unanswered ones included.
    expect(all).toHaveLength(MESSAGES);
    expect(all).toEqual(expect.arrayContaining(answered));
    await finish(expect, prepared.senderDir, prepared.receiverDir, all);
  }, 60_000);
}

describe('kill -9 at each crash point (SQLite)', () => {
  crashSuite(() => () => undefined);
});

describePostgres('kill -9 at each crash point (PostgreSQL)', () => {
  const db = useTestDatabase();
  crashSuite(() => (role) => `${db.current().url}?schema=${db.current().freshSchema(role === 'sender' ? 'tx' : 'rx')}`);
});

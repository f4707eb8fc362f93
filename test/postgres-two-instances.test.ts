/**
 * Scale-out on PostgreSQL (spec/node.md §4.5, §8): two instances of ONE node — same directory,
 * same configuration, same schema, each in its own process on its own port, both running outbox
 * workers — deliver 200 referrals to a peer. One instance is killed with SIGKILL in the middle of
 * its deliveries. Every message still ends delivered exactly once: one inbox row per message at
 * the peer, one acceptance in its audit log, every outbox row delivered with the receipt the peer
 * stored, redeliveries answered only as duplicates with the original receipt, and the audit log
 * the two instances share is one contiguous sequence.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, expect, it } from 'vitest';
import { AuditEvents, auditLeafHash, resolveSigningKey, verifyReceipt } from '@passerelle/protocol';
import { createLogger, startNode, type RunningNode } from '@passerelle/node';
import { openPostgresStore, type PostgresStore } from '../packages/node/src/store/postgres.js';
import { coSign, freePort, pinEachOther, prepareNode, recordConsent, referralInput, waitFor } from '../packages/node/test/harness/cluster.js';
import { describePostgres, useTestDatabase } from '../packages/node/test/pg-test-db.js';

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY = join(ROOT, 'packages/node/src/bin/node-process.ts');
const MESSAGES = 200;

interface Instance {
  child: ChildProcess;
  pid: number;
  /** Message ids this instance logged as delivered (it recorded the outcome). */
  delivered: Set<string>;
  /** Leased entries it left for a later claim because their lease was about to lapse. */
  leftToLapse: () => number;
}

function spawnInstance(dir: string, port?: number): Promise<Instance> {
  const args = ['--conditions=@passerelle/source', '--import', 'tsx', ENTRY, dir, ...(port !== undefined ? ['--port', String(port)] : [])];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const delivered = new Set<string>();
  let leftToLapse = 0;
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new Error(`instance did not start: ${stderr}`)), 30_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let record: { ready?: boolean; msg?: string; messageId?: string };
      try {
        record = JSON.parse(line) as typeof record;
      } catch {
        return;
      }
      if (record.msg === 'message delivered' && record.messageId) delivered.add(record.messageId);
      if (record.msg?.startsWith('lease too old')) leftToLapse += 1;
      if (record.ready === true) {
        clearTimeout(timer);
        resolvePromise({ child, pid: child.pid!, delivered, leftToLapse: () => leftToLapse });
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`instance exited with ${code}: ${stderr}`));
    });
  });
}

function running(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

function signal(child: ChildProcess, name: NodeJS.Signals): Promise<void> {
  return new Promise((r) => {
    if (!running(child)) return r();
    child.once('exit', () => r());
    child.kill(name);
  });
}

function schemaUrl(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('schema', schema);
  return u.toString();
}

describePostgres('two instances of one node on one PostgreSQL schema', () => {
  const db = useTestDatabase();
  const children: ChildProcess[] = [];
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    await Promise.all(children.map((c) => signal(c, 'SIGKILL')));
    for (const close of closers.reverse()) await close().catch(() => undefined);
  });

  it('delivers every message exactly once when one instance is killed mid-delivery', async () => {
    const senderSchema = db.current().freshSchema('agency');
    const sender = await prepareNode({
      name: 'Agence d\'accueil Exemple',
      country: 'BE',
      store: schemaUrl(db.current().url, senderSchema),
      config: {
        // Info logs carry 'message delivered' lines: which instance recorded which outcome.
        logLevel: 'info',
        outbox: { batchSize: 4, perPeerConcurrency: 2, leaseMs: 6_000 },
        limits: { outboundTimeoutMs: 1_500, outboundConnectTimeoutMs: 500 },
      },
    });
    const peerDir = await prepareNode({
      name: 'Partenaire de réintégration Exemple',
      country: 'SN',
      store: schemaUrl(db.current().url, db.current().freshSchema('partner')),
      // Answers a little after committing, so that a kill catches deliveries the peer has stored
      // but the sender has not yet recorded: those must come back as duplicates, never as second copies.
      config: { faults: { delayAfterCommitMs: 150 }, limits: { peerRateLimit: { burst: 1_000, perSecond: 1_000 } } },
    });

    // Set-up in this process, with the sender's worker off so that all 200 wait in the outbox.
    const setup = await startNode({ dir: sender.dir, worker: false, logger: createLogger({ level: 'silent' }) });
    closers.push(() => setup.close());
    const peer: RunningNode = await startNode({ dir: peerDir.dir });
    closers.push(() => peer.close());
    await pinEachOther(setup, peer);
    const agreementId = await coSign(setup, peer);
    const consent = await recordConsent(setup, [peer.id]);
    const ids: string[] = [];
    for (let i = 0; i < MESSAGES; i++) ids.push((await setup.send(referralInput(peer.id, agreementId, consent.id))).id);
    await setup.close();

    let accepted = 0;
    const duplicates: string[] = [];
    peer.events.on('inbox.accepted', (e) => {
      if (e.duplicate) duplicates.push(e.messageId);
      else accepted += 1;
    });

    const inspect: PostgresStore = await openPostgresStore(schemaUrl(db.current().url, senderSchema));
    closers.push(() => inspect.close());

    // Two instances of the one node: the first on the port of its id, the second on another.
    const first = await spawnInstance(sender.dir);
    children.push(first.child);
    const second = await spawnInstance(sender.dir, await freePort());
    children.push(second.child);

    await waitFor(() => (first.delivered.size >= 5 && second.delivered.size >= 5 && accepted >= 40 ? true : undefined), 60_000, 10);
    await signal(first.child, 'SIGKILL');
    // What the killed instance held at that moment: leases only its expiry hands back.
    const leasedAtKill = (
      await db.current().sql<{ id: string }>(`SELECT id FROM ${senderSchema}.outbox WHERE state = 'queued' AND lease_owner LIKE $1`, [`%:${first.pid}:%`])
    ).rows.map((r) => r.id);
    expect(accepted).toBeLessThan(MESSAGES);
    expect(leasedAtKill.length).toBeGreaterThan(0);

    await waitFor(async () => ((await inspect.countOutboxByState()).delivered === MESSAGES ? true : undefined), 90_000, 100);
    await signal(second.child, 'SIGTERM');

    // The sender's side: every entry delivered, holding the receipt the peer stored, which verifies.
    const outbox = await inspect.listOutbox();
    expect(outbox.map((e) => e.id).sort()).toEqual([...ids].sort());
    expect(new Set(outbox.map((e) => e.state))).toEqual(new Set(['delivered']));
    const inbox = await peer.listInbox({ sender: sender.url });
    expect(inbox).toHaveLength(MESSAGES);
    expect(inbox.map((m) => m.id).sort()).toEqual([...ids].sort());
    for (const entry of outbox) {
      const stored = (await peer.store.getInbox(entry.id))!;
      expect(stored.digest).toBe(entry.digest);
      expect(entry.receipt).toBe(stored.receipt);
      const receipt = await verifyReceipt(entry.receipt!, {
        receiver: peer.id,
        sender: sender.url,
        messageId: entry.id,
        digest: entry.digest,
        resolveKey: (kid) => resolveSigningKey(peer.identity.document, kid, new Date()),
      });
      expect(receipt.status).toBe('accepted');
    }
    for (const id of leasedAtKill) expect(outbox.find((e) => e.id === id)?.state).toBe('delivered');

    // The peer accepted each message once; anything sent again was answered as a duplicate.
    const peerAudit = await peer.readAudit(0, await peer.store.auditSize());
    const acceptances = peerAudit.filter((e) => e.kind === AuditEvents.MESSAGE_RECEIVED).map((e) => e.fields.messageId);
    expect(acceptances).toHaveLength(MESSAGES);
    expect(new Set(acceptances).size).toBe(MESSAGES);
    expect(accepted).toBe(MESSAGES);
    for (const id of duplicates) expect(ids).toContain(id);

    // Both instances recorded outcomes, never the same one twice.
    expect(first.delivered.size).toBeGreaterThan(0);
    expect(second.delivered.size).toBeGreaterThan(0);
    for (const id of first.delivered) expect(second.delivered.has(id)).toBe(false);

    // One audit log for the two instances: indices 0…n-1 without a gap, every leaf hash right,
    // one queued and one delivered event per message.
    const size = await inspect.auditSize();
    const audit = await inspect.readAudit(0, size);
    expect(audit.map((r) => r.index)).toEqual(Array.from({ length: size }, (_, i) => i));
    for (const record of audit) expect(auditLeafHash(record)).toBe(record.leafHash);
    const deliveredEvents = audit.filter((r) => r.kind === AuditEvents.MESSAGE_DELIVERED).map((r) => r.fields.messageId);
    expect(deliveredEvents.sort()).toEqual([...ids].sort());
    expect(audit.filter((r) => r.kind === AuditEvents.MESSAGE_SENT)).toHaveLength(MESSAGES);

    process.stdout.write(
      `two instances: ${first.delivered.size} delivered by the killed instance, ${second.delivered.size} by the survivor, ` +
        `${leasedAtKill.length} leases taken over, ${duplicates.length} duplicates answered with the original receipt ` +
        `(leases left to lapse: ${first.leftToLapse()} + ${second.leftToLapse()})\n`,
    );
  }, 180_000);
});

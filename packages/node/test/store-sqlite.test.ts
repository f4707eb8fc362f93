import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ProtocolError, isProtocolError, sha256b64u } from '@passerelle/protocol';
import { auditLeafData, auditLeafHash, canonicalJson } from '../src/store/audit-leaf.js';
import { SQLITE_MIGRATIONS, SQLITE_SCHEMA_VERSION, applySqliteMigrations, currentSchemaVersion } from '../src/store/sqlite-migrations.js';
import type { SqliteMigration } from '../src/store/sqlite-migrations.js';
import { SqliteStore, openSqliteStore } from '../src/store/sqlite.js';
import { COMMITS_PER_CHECKPOINT, TARGET_FRAMES_PER_CHECKPOINT, WalCheckpointer } from '../src/store/sqlite-checkpointer.js';
import { describeStoreConformance } from './store-conformance.js';

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'passerelle-store-'));
}

describeStoreConformance('SQLite', async () => {
  const dir = await tempDir();
  const path = join(dir, 'node.db');
  const opened: SqliteStore[] = [await openSqliteStore(path)];
  return {
    store: opened[0]!,
    reopen: async () => {
      const store = await openSqliteStore(path);
      opened.push(store);
      return store;
    },
    cleanup: async () => {
      for (const store of opened) await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

const AT = '2026-05-01T10:00:00Z';
const event = (kind: string) => ({ kind, fields: {}, at: AT });

describe('SqliteStore on disk', () => {
  let dir: string;
  let path: string;
  const open: (SqliteStore | DatabaseSync)[] = [];

  beforeEach(async () => {
    dir = await tempDir();
    path = join(dir, 'node.db');
  });

  afterEach(async () => {
    for (const handle of open.splice(0)) {
      if (handle instanceof SqliteStore) await handle.close();
      else if (handle.isOpen) handle.close();
    }
    await rm(dir, { recursive: true, force: true });
  });

  async function openStore(options?: Parameters<typeof openSqliteStore>[1]): Promise<SqliteStore> {
    const store = await openSqliteStore(path, options);
    open.push(store);
    return store;
  }

  function raw(readOnly = false): DatabaseSync {
    const db = new DatabaseSync(path, { readOnly });
    open.push(db);
    return db;
  }

  it('runs in WAL mode with the schema of the latest migration', async () => {
    const store = await openStore();
    expect(store.kind).toBe('sqlite');
    const db = raw(true);
    expect(db.prepare('PRAGMA journal_mode').get()?.['journal_mode']).toBe('wal');
    const tables = db
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
      .all()
      .map((r) => r['name']);
    expect(tables).toEqual(
      expect.arrayContaining(['peers', 'agreements', 'agreement_terminations', 'consents', 'outbox', 'inbox', 'audit_log', 'tokens', 'remembered_keys']),
    );
    const indexes = db
      .prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('outbox', 'inbox')`)
      .all()
      .map((r) => r['name']);
    expect(indexes).toEqual(expect.arrayContaining(['outbox_claim', 'inbox_thread', 'inbox_consent', 'inbox_sender']));
  });

  it('checkpoints the log on a thread of its own, not inside its commits, about every 1000 pages', async () => {
    const store = await openStore();
    const before = statSync(path).size;
    const write = (i: number, pad: number) => store.appendAudit({ kind: 'test.write', fields: { i, pad: 'x'.repeat(pad) }, at: AT });
    const settle = async (completed: number) => {
      const deadline = Date.now() + 10_000;
      while (store.walCheckpoints.completed < completed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    };
    let i = 0;
    for (; i < COMMITS_PER_CHECKPOINT; i++) await write(i, 4000);
    await settle(1);
    expect(store.walCheckpoints).toMatchObject({ completed: 1, failed: false });
    // The pages reached the database file itself (in WAL mode it only grows through checkpoints).
    expect(statSync(path).size).toBeGreaterThan(before + 40_000);
    // Small commits (about two pages each): the interval grows so that a checkpoint finds ~1000 pages.
    const interval = store.walCheckpoints.commitsPerCheckpoint;
    expect(interval).toBeGreaterThan(COMMITS_PER_CHECKPOINT * 4);
    expect(interval).toBeLessThanOrEqual(TARGET_FRAMES_PER_CHECKPOINT);
    for (let j = 0; j < interval - 1; j++, i++) await write(i, 10);
    await new Promise((r) => setTimeout(r, 100));
    expect(store.walCheckpoints.completed).toBe(1);
    await write(i++, 10);
    await settle(2);
    expect(store.walCheckpoints.completed).toBe(2);
    await store.close();
    const again = await openStore();
    expect(await again.auditSize()).toBe(i);
    expect((await again.readAudit(5, 6))[0]?.fields).toMatchObject({ i: 5 });
  });

  it('closes with a checkpoint under way in a process that has nothing else to do, and exits normally', async () => {
    // The checkpoint thread does not keep a running node alive; closing must, until the thread is
    // done. Large commits make the checkpoint the close waits for long enough to be under way.
    const script = [
      `import { openSqliteStore } from ${JSON.stringify(new URL('../src/store/sqlite.ts', import.meta.url).pathname)};`,
      `const store = await openSqliteStore(${JSON.stringify(path)});`,
      `for (let i = 0; i < ${COMMITS_PER_CHECKPOINT}; i++) await store.appendAudit({ kind: 'test.write', fields: { i, pad: 'x'.repeat(20000) }, at: '${AT}' });`,
      `await store.close();`,
      `process.stdout.write('closed after ' + store.walCheckpoints.completed + ' checkpoints');`,
    ].join('\n');
    const child = spawnSync(process.execPath, ['--conditions=@passerelle/source', '--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(child.stderr).not.toMatch(/unsettled/);
    expect(child.status).toBe(0);
    expect(child.stdout).toMatch(/^closed after [01] checkpoints$/);
    const reopened = await openStore();
    expect(await reopened.auditSize()).toBe(COMMITS_PER_CHECKPOINT);
  });

  it('falls back to automatic checkpoints when the checkpoint thread cannot run', async () => {
    const failures: unknown[] = [];
    const checkpointer = new WalCheckpointer(join(dir, 'missing', 'node.db'), (error) => failures.push(error));
    checkpointer.request();
    const deadline = Date.now() + 10_000;
    while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(failures).toHaveLength(1);
    expect(checkpointer.failed).toBe(true);
    checkpointer.request();
    for (let i = 0; i < COMMITS_PER_CHECKPOINT; i++) checkpointer.committed();
    expect(failures).toHaveLength(1);
    await checkpointer.close();
  });

  it('records migrations once and reopens without reapplying them', async () => {
    const first = await openStore();
    await first.close();
    const rows = () => raw(true).prepare('SELECT version, name, applied_at FROM schema_migrations ORDER BY version').all();
    const recorded = rows();
    expect(recorded.map((r) => r['version'])).toEqual(SQLITE_MIGRATIONS.map((m) => m.version));
    expect(recorded.map((r) => r['name'])).toEqual(SQLITE_MIGRATIONS.map((m) => m.name));

    const second = await openStore();
    await second.migrate();
    expect(rows()).toEqual(recorded);
    expect(currentSchemaVersion(raw(true))).toBe(SQLITE_SCHEMA_VERSION);
  });

  it('applies pending migrations together and rolls all of them back on failure', async () => {
    const db = raw();
    const v1: SqliteMigration = { version: 1, name: 'one', sql: 'CREATE TABLE one (a TEXT) STRICT;' };
    const v2: SqliteMigration = { version: 2, name: 'two', sql: 'CREATE TABLE two (a TEXT) STRICT;' };
    const broken: SqliteMigration = { version: 3, name: 'broken', sql: 'CREATE TABLE three (a TEXT) STRICT; INSERT INTO missing VALUES (1);' };
    expect(applySqliteMigrations(db, [v1])).toEqual([1]);
    expect(applySqliteMigrations(db, [v1])).toEqual([]);

    expect(() => applySqliteMigrations(db, [broken, v1, v2])).toThrow(/missing/);
    expect(currentSchemaVersion(db)).toBe(1);
    expect(db.prepare(`SELECT name FROM sqlite_master WHERE name IN ('two', 'three')`).all()).toEqual([]);
    expect(db.isTransaction).toBe(false);

    expect(applySqliteMigrations(db, [v2, v1])).toEqual([2]);
    expect(currentSchemaVersion(db)).toBe(2);
  });

  it('refuses a database written by a newer schema version', async () => {
    await (await openStore()).close();
    const db = raw();
    db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(SQLITE_SCHEMA_VERSION + 1, 'from-the-future', AT);
    db.close();

    const error = await rejection(openSqliteStore(path));
    expect(isProtocolError(error, 'STORE_UNAVAILABLE')).toBe(true);
    expect((error as ProtocolError).message).toMatch(/newer than this node supports/);
    expect((error as ProtocolError).details).toEqual({ schemaVersion: SQLITE_SCHEMA_VERSION + 1, supportedVersion: SQLITE_SCHEMA_VERSION });
    // Refused before touching anything.
    expect(currentSchemaVersion(raw(true))).toBe(SQLITE_SCHEMA_VERSION + 1);
  });

  it('enforces the append-only audit log in the database itself', async () => {
    const store = await openStore();
    const record = await store.appendAudit({ kind: 'node.started', fields: { n: 1 }, at: AT });
    await store.appendAudit(event('second'));
    const db = raw();
    expect(() => db.prepare(`UPDATE audit_log SET kind = 'forged' WHERE idx = 0`).run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit_log WHERE idx = 1').run()).toThrow(/append-only/);
    expect(() => db.prepare('DELETE FROM audit_log').run()).toThrow(/append-only/);
    expect(await store.readAudit(0, 1)).toEqual([record]);
    expect(await store.auditSize()).toBe(2);
  });

  it('opened read-only, reads work and every write fails with STORE_UNAVAILABLE, changing nothing', async () => {
    const writer = await openStore();
    await writer.putPeer({ nodeId: 'https://b.example', fingerprints: ['fp'], addedAt: AT, updatedAt: AT });
    await writer.appendAudit(event('node.started'));
    await writer.close();

    const store = await openStore({ readOnly: true });
    expect(store.readOnly).toBe(true);
    expect((await store.getPeer('https://b.example'))?.fingerprints).toEqual(['fp']);

    const jwe = 'eyJlbmMiOiJBMjU2R0NNIn0.k.iv.ct.tag';
    const digest = await sha256b64u(jwe);
    let receiptCalls = 0;
    const writes: Promise<unknown>[] = [
      store.putPeer({ nodeId: 'https://c.example', fingerprints: [], addedAt: AT, updatedAt: AT }),
      store.appendAudit(event('x')),
      store.enqueue(
        { id: 'm-1', peer: 'https://b.example', type: 'referral', threadId: 't', priority: 10, jwe, digest, jwt: 'j', expiresAt: AT },
        event('outbox.enqueued'),
      ),
      store.acceptInbound(
        { id: 'm-2', sender: 'https://b.example', type: 'referral', threadId: 't', digest, jwe, jwt: 'j', categories: [], receivedAt: AT },
        event('inbox.accepted'),
        async (index) => {
          receiptCalls += 1;
          return `receipt-${index}`;
        },
      ),
      store.remember('nonce', new Date(Date.now() + 60_000).toISOString()),
      store.putToken({ id: 't', hash: 'h', role: 'auditor', label: 'l', createdAt: AT }),
    ];
    for (const outcome of await Promise.allSettled(writes)) {
      expect(outcome.status).toBe('rejected');
      expect(isProtocolError((outcome as PromiseRejectedResult).reason, 'STORE_UNAVAILABLE')).toBe(true);
    }
    expect(receiptCalls).toBe(0);
    expect(await store.listPeers()).toHaveLength(1);
    expect(await store.auditSize()).toBe(1);
    expect(await store.getInbox('m-2')).toBeUndefined();
  });

  it('cannot open read-only a database that still needs migrating, nor a file in a missing directory', async () => {
    new DatabaseSync(path).close();
    expect(isProtocolError(await rejection(openSqliteStore(path, { readOnly: true })), 'STORE_UNAVAILABLE')).toBe(true);
    expect(isProtocolError(await rejection(openSqliteStore(join(dir, 'missing', 'node.db'))), 'STORE_UNAVAILABLE')).toBe(true);
    await writeFile(join(dir, 'garbage.db'), 'this is not a database file, just text that is long enough to have a header');
    expect(isProtocolError(await rejection(openSqliteStore(join(dir, 'garbage.db'))), 'STORE_UNAVAILABLE')).toBe(true);
  });

  it('leaves no trace of erased personal data in the database files', async () => {
    const marker = 'AMINA-PERSONAL-MARKER';
    const jwe = `eyJlbmMiOiJBMjU2R0NNIn0.${'k'.repeat(50)}.iv.${marker}-${'x'.repeat(6000)}.tag`;
    const onDisk = () =>
      [path, `${path}-wal`].some((file) => existsSync(file) && readFileSync(file).includes(marker));

    let store = await openStore();
    await store.acceptInbound(
      {
        id: 'm-erase',
        sender: 'https://a.example',
        type: 'referral',
        threadId: 't',
        consentId: 'c-1',
        digest: await sha256b64u(jwe),
        jwe,
        sdJwt: `jwt~${Buffer.from(`["salt","given_name","${marker}"]`).toString('base64url')}~${marker}~`,
        jwt: 'issuer.signed.jwt',
        categories: ['identification'],
        receivedAt: AT,
      },
      event('inbox.accepted'),
      async (index) => `receipt-${index}`,
    );
    await store.close();
    expect(onDisk()).toBe(true);

    store = await openStore();
    expect(await store.eraseInboundByConsent('c-1', AT, event('inbox.erased'))).toEqual(['m-erase']);
    expect(onDisk()).toBe(false);
    await store.close();
    expect(onDisk()).toBe(false);
    store = await openStore();
    expect((await store.getInbox('m-erase'))?.receipt).toBe('receipt-0');
  });

  it('shares leases between store instances on one file', async () => {
    const one = await openStore();
    const two = await openStore();
    const jwe = 'eyJlbmMiOiJBMjU2R0NNIn0.k.iv.ct.tag';
    for (const id of ['m-1', 'm-2', 'm-3']) {
      await one.enqueue(
        { id, peer: 'https://b.example', type: 'referral', threadId: 't', priority: 10, jwe, digest: await sha256b64u(jwe), jwt: 'j', expiresAt: AT },
        event('outbox.enqueued'),
      );
    }
    const [a, b] = await Promise.all([
      one.claimDue({ now: AT, limit: 2, owner: 'instance-1', leaseMs: 60_000 }),
      two.claimDue({ now: AT, limit: 2, owner: 'instance-2', leaseMs: 60_000 }),
    ]);
    const ids = [...a, ...b].map((e) => e.id);
    expect(ids.sort()).toEqual(['m-1', 'm-2', 'm-3']);
    expect((await two.appendAudit(event('from-two'))).index).toBe(3);
    expect((await one.appendAudit(event('from-one'))).index).toBe(4);
  });

  describe('receipts of acceptances in one group commit', () => {
    const jwe = 'eyJlbmMiOiJBMjU2R0NNIn0.k.iv.ct.tag';
    const inbound = async (id: string) => ({
      id,
      sender: 'https://a.example',
      type: 'referral' as const,
      threadId: 't',
      digest: await sha256b64u(`${jwe}-${id}`),
      jwe: `${jwe}-${id}`,
      jwt: 'issuer.signed.jwt',
      categories: [],
      receivedAt: AT,
    });
    /** A makeReceipt per message whose signature is held until released. */
    function heldSigner() {
      const calls: { id: string; index: number }[] = [];
      const held = new Map<string, { resolve: (receipt: string) => void; reject: (e: unknown) => void }>();
      return {
        calls,
        sign: (id: string) => (index: number) => {
          calls.push({ id, index });
          return new Promise<string>((resolve, reject) => held.set(`${id}@${index}`, { resolve, reject }));
        },
        release: (id: string, index: number, error?: unknown) => {
          const h = held.get(`${id}@${index}`);
          if (!h) throw new Error(`no signature held for ${id}@${index}`);
          held.delete(`${id}@${index}`);
          if (error === undefined) h.resolve(`receipt-${id}-${index}`);
          else h.reject(error);
        },
      };
    }
    const turns = async (n = 10) => {
      for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
    };

    it('are signed side by side, each naming the leaf its message gets, whatever order they finish in', async () => {
      const store = await openStore();
      await store.appendAudit(event('node.started'));
      const signer = heldSigner();
      const ids = ['m-1', 'm-2', 'm-3'];
      const accepting = await Promise.all(ids.map(inbound)).then((entries) =>
        entries.map((e) => store.acceptInbound(e, { kind: 'inbox.accepted', fields: { id: e.id }, at: AT }, signer.sign(e.id))),
      );
      await turns();
      // All three signatures are under way before any of them is done.
      expect(signer.calls).toEqual([
        { id: 'm-1', index: 1 },
        { id: 'm-2', index: 2 },
        { id: 'm-3', index: 3 },
      ]);
      for (const { id, index } of [...signer.calls].reverse()) signer.release(id, index);
      const results = await Promise.all(accepting);
      expect(results.map((r) => r.status)).toEqual(['stored', 'stored', 'stored']);
      const audit = await store.readAudit(0, 10);
      for (const [i, id] of ids.entries()) {
        expect((await store.getInbox(id))?.receipt).toBe(`receipt-${id}-${i + 1}`);
        expect(audit[i + 1]?.fields).toEqual({ id });
      }
    });

    it('when one signature fails, stores the others with receipts signed again for the leaves they get', async () => {
      const store = await openStore();
      const signer = heldSigner();
      const entries = await Promise.all(['m-1', 'm-2', 'm-3'].map(inbound));
      const accepting = entries.map((e) => store.acceptInbound(e, { kind: 'inbox.accepted', fields: { id: e.id }, at: AT }, signer.sign(e.id)));
      await turns();
      const failure = new Error('signing key unavailable');
      signer.release('m-1', 0);
      signer.release('m-2', 1, failure);
      signer.release('m-3', 2);
      await turns();
      // m-3's first receipt named leaf 2, which m-3 no longer gets: it is signed again for leaf 1.
      expect(signer.calls.at(-1)).toEqual({ id: 'm-3', index: 1 });
      signer.release('m-3', 1);
      const [one, two, three] = await Promise.allSettled(accepting);
      expect(one).toMatchObject({ status: 'fulfilled', value: { status: 'stored' } });
      expect(two).toEqual({ status: 'rejected', reason: failure });
      expect(three).toMatchObject({ status: 'fulfilled', value: { status: 'stored' } });
      expect(await store.getInbox('m-2')).toBeUndefined();
      expect((await store.getInbox('m-3'))?.receipt).toBe('receipt-m-3-1');
      expect((await store.readAudit(0, 10)).map((r) => r.fields)).toEqual([{ id: 'm-1' }, { id: 'm-3' }]);
    });

    it('lets a write queued between acceptances wait for the earlier ones, so leaves keep the order of the queue', async () => {
      const store = await openStore();
      const signer = heldSigner();
      const [a, b] = await Promise.all(['m-1', 'm-2'].map(inbound));
      const first = store.acceptInbound(a!, { kind: 'inbox.accepted', fields: { id: 'm-1' }, at: AT }, signer.sign('m-1'));
      const between = store.appendAudit({ kind: 'between', fields: {}, at: AT });
      const second = store.acceptInbound(b!, { kind: 'inbox.accepted', fields: { id: 'm-2' }, at: AT }, signer.sign('m-2'));
      await turns();
      expect(signer.calls).toEqual([{ id: 'm-1', index: 0 }]);
      signer.release('m-1', 0);
      await turns();
      expect(signer.calls.at(-1)).toEqual({ id: 'm-2', index: 2 });
      signer.release('m-2', 2);
      expect((await first).status).toBe('stored');
      expect((await between).index).toBe(1);
      expect((await second).status).toBe('stored');
      expect((await store.readAudit(0, 10)).map((r) => r.kind)).toEqual(['inbox.accepted', 'between', 'inbox.accepted']);
    });
  });

  it('works in memory for tests of other components', async () => {
    const store = await openSqliteStore(':memory:');
    open.push(store);
    await store.appendAudit(event('a'));
    expect(await store.auditSize()).toBe(1);
  });
});

describe('auditLeafHash', () => {
  it('hashes 0x00 || RFC 8785 canonical JSON of {kind, fields, at, index} (RFC 9162 §2.1.1)', () => {
    const record = { kind: 'inbox.accepted', fields: { id: 'm-1', categories: ['needs', 'identification'], n: 2, ok: true, none: null }, at: AT, index: 7 };
    const expected =
      '{"at":"2026-05-01T10:00:00Z","fields":{"categories":["needs","identification"],"id":"m-1","n":2,"none":null,"ok":true},"index":7,"kind":"inbox.accepted"}';
    expect(auditLeafData(record)).toBe(expected);
    const digest = createHash('sha256').update(Buffer.concat([Buffer.from([0]), Buffer.from(expected, 'utf8')])).digest('base64url');
    expect(auditLeafHash(record)).toBe(digest);
    expect(auditLeafHash({ ...record, index: 8 })).not.toBe(digest);
  });

  it('serialises like RFC 8785: sorted members, shortest numbers, minimal escapes', () => {
    expect(canonicalJson({ b: [1e21, 0.1, -0, 5e-7], a: 'é\u2028"\n', '\u00e9': 1, A: undefined })).toBe(
      '{"a":"é\u2028\\"\\n","b":[1e+21,0.1,0,5e-7],"é":1}',
    );
    expect(() => canonicalJson({ n: Number.NaN })).toThrow(ProtocolError);
    expect(() => canonicalJson({ d: new Date(0) })).toThrow(ProtocolError);
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageTypes, ProtocolError, isProtocolError, sha256b64u } from '@passerelle/protocol';
import { auditLeafHash } from '../src/store/audit-leaf.js';
import { openStore, parseStoreSpec, redactStoreSpec, resolveStoreSpec } from '../src/store/open-store.js';
import { POSTGRES_MIGRATIONS, POSTGRES_SCHEMA_VERSION, applyPostgresMigrations } from '../src/store/postgres-migrations.js';
import type { PostgresMigration } from '../src/store/postgres-migrations.js';
import { PostgresStore, openPostgresStore, splitStoreUrl } from '../src/store/postgres.js';
import type { PostgresStoreOptions } from '../src/store/postgres.js';
import { SqliteStore } from '../src/store/sqlite.js';
import type { AuditEvent, InboxEntry, NewOutboxEntry, OutboxEntry } from '../src/store/types.js';
import { describePostgres, useTestDatabase } from './pg-test-db.js';
import { describeStoreConformance } from './store-conformance.js';

const BASE_MS = Date.parse('2026-05-01T10:00:00Z');
const ts = (s: number): string => new Date(BASE_MS + s * 1000).toISOString().replace('.000Z', 'Z');
const event = (kind: string, at: string = ts(0), fields: AuditEvent['fields'] = {}): AuditEvent => ({ kind, fields, at });
const PEER = 'https://b.example';
const CONSENT = '0196a000-0000-7000-8000-0000000000c1';

let sequence = 0;
function messageId(): string {
  sequence += 1;
  return `0196b000-0000-7000-8000-${String(sequence).padStart(12, '0')}`;
}

async function outboxEntry(overrides: Partial<NewOutboxEntry> = {}): Promise<NewOutboxEntry> {
  const id = overrides.id ?? messageId();
  const jwe = `eyJlbmMiOiJBMjU2R0NNIn0.key.iv.${id}.tag`;
  return {
    id,
    peer: PEER,
    type: MessageTypes.REFERRAL,
    threadId: 'thread-1',
    priority: 10,
    jwe,
    digest: await sha256b64u(jwe),
    jwt: `eyJ0eXAiOiJwYXNzZXJlbGxlIn0.${id}.sig`,
    expiresAt: ts(86_400),
    ...overrides,
  };
}

async function inboundEntry(overrides: Partial<Omit<InboxEntry, 'receipt'>> = {}): Promise<Omit<InboxEntry, 'receipt'>> {
  const id = overrides.id ?? messageId();
  const jwe = overrides.jwe ?? `eyJlbmMiOiJBMjU2R0NNIn0.key.iv.${id}.tag`;
  return {
    id,
    sender: 'https://a.example',
    type: MessageTypes.REFERRAL,
    threadId: 'thread-1',
    consentId: CONSENT,
    digest: await sha256b64u(jwe),
    jwe,
    sdJwt: `issuer.${id}.sig~disclosure~`,
    jwt: `issuer.${id}.sig`,
    categories: ['identification'],
    receivedAt: ts(0),
    ...overrides,
  };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: unknown) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function expectContiguousAudit(store: PostgresStore, size: number): Promise<void> {
  expect(await store.auditSize()).toBe(size);
  const records = await store.readAudit(0, size + 10);
  expect(records.map((r) => r.index)).toEqual(Array.from({ length: size }, (_, i) => i));
  for (const record of records) expect(record.leafHash).toBe(auditLeafHash(record));
}

describe('openStore configuration', () => {
  it('reads sqlite:, bare paths and postgres URLs, and refuses other schemes', () => {
    expect(parseStoreSpec('/var/lib/passerelle/node.db')).toEqual({ kind: 'sqlite', path: '/var/lib/passerelle/node.db' });
    expect(parseStoreSpec('data/node.db')).toEqual({ kind: 'sqlite', path: 'data/node.db' });
    expect(parseStoreSpec('sqlite:data/node.db')).toEqual({ kind: 'sqlite', path: 'data/node.db' });
    expect(parseStoreSpec('sqlite:///var/node.db')).toEqual({ kind: 'sqlite', path: '/var/node.db' });
    expect(parseStoreSpec('sqlite::memory:')).toEqual({ kind: 'sqlite', path: ':memory:' });
    expect(parseStoreSpec('C:\\passerelle\\node.db')).toEqual({ kind: 'sqlite', path: 'C:\\passerelle\\node.db' });
    expect(parseStoreSpec('postgres://u:p@db:5432/passerelle?schema=node_a')).toEqual({
      kind: 'postgres',
      url: 'postgres://u:p@db:5432/passerelle?schema=node_a',
    });
    expect(parseStoreSpec('postgresql://db/passerelle').kind).toBe('postgres');
    for (const bad of ['mysql://db/x', 'https://example.org/db', 'sqlite:']) {
      expect(() => parseStoreSpec(bad)).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }));
    }
  });

  it('lets PASSERELLE_STORE in the given environment override the configured store', () => {
    expect(resolveStoreSpec('node.db', {})).toBe('node.db');
    expect(resolveStoreSpec('node.db', { PASSERELLE_STORE: 'postgres://db/x' })).toBe('postgres://db/x');
    expect(resolveStoreSpec('node.db', { PASSERELLE_STORE: '  ' })).toBe('node.db');
    expect(resolveStoreSpec(undefined, { PASSERELLE_STORE: 'sqlite:x.db' })).toBe('sqlite:x.db');
    expect(() => resolveStoreSpec(undefined, {})).toThrow(ProtocolError);
    expect(() => resolveStoreSpec('', undefined)).toThrow(ProtocolError);
  });

  it('redacts passwords for logs', () => {
    expect(redactStoreSpec('postgres://node:s3cret@db:5432/p?schema=a')).toBe('postgres://node:***@db:5432/p?schema=a');
    expect(redactStoreSpec('postgres://db/p?user=n&password=s3cret&schema=a')).toBe('postgres://db/p?user=n&password=***&schema=a');
    expect(redactStoreSpec('/var/lib/node.db')).toBe('/var/lib/node.db');
  });

  it('takes schema and options off the URL', () => {
    expect(splitStoreUrl('postgres://db/p')).toEqual({ connectionString: 'postgres://db/p' });
    expect(splitStoreUrl('postgres://db/p?schema=node_a')).toEqual({ connectionString: 'postgres://db/p', schema: 'node_a' });
    expect(splitStoreUrl('postgres://db/p?sslmode=require&schema=node_a&options=-c%20work_mem%3D8MB')).toEqual({
      connectionString: 'postgres://db/p?sslmode=require',
      schema: 'node_a',
      options: '-c work_mem=8MB',
    });
  });

  it('opens SQLite from a path or the environment', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'passerelle-open-store-'));
    try {
      const store = await openStore(join(dir, 'node.db'));
      expect(store).toBeInstanceOf(SqliteStore);
      await store.appendAudit(event('node.started'));
      await store.close();
      const fromEnv = await openStore('ignored.db', { env: { PASSERELLE_STORE: `sqlite:${join(dir, 'node.db')}` } });
      expect(await fromEnv.auditSize()).toBe(1);
      await fromEnv.close();
      const relative = await openStore('sqlite:node.db', { baseDir: dir });
      expect(await relative.auditSize()).toBe(1);
      await relative.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describePostgres('PostgreSQL store', () => {
  const db = useTestDatabase();
  const opened: PostgresStore[] = [];

  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });

  async function open(schema: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const store = await openPostgresStore(db.current().url, { schema, ...options });
    opened.push(store);
    return store;
  }

  describeStoreConformance('PostgreSQL', async () => {
    const database = db.current();
    const schema = database.freshSchema('conf');
    const stores: PostgresStore[] = [await openPostgresStore(database.url, { schema })];
    return {
      store: stores[0]!,
      reopen: async () => {
        const store = await openPostgresStore(database.url, { schema });
        stores.push(store);
        return store;
      },
      cleanup: async () => {
        for (const store of stores) await store.close();
        await database.sql(`DROP SCHEMA ${schema} CASCADE`);
      },
    };
  });

  describe('schema and migrations', () => {
    it('creates its tables, indexes and migration record in the chosen schema', async () => {
      const schema = db.current().freshSchema();
      const store = await open(schema);
      expect(store.kind).toBe('postgres');
      expect(store.schema).toBe(schema);
      const tables = await db.current().sql<{ table_name: string }>(
        'SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY table_name',
        [schema],
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(
        expect.arrayContaining(['peers', 'agreements', 'agreement_terminations', 'consents', 'outbox', 'inbox', 'audit_log', 'audit_head', 'tokens', 'remembered_keys', 'schema_migrations']),
      );
      const indexes = await db.current().sql<{ indexname: string }>('SELECT indexname FROM pg_indexes WHERE schemaname = $1', [schema]);
      expect(indexes.rows.map((r) => r.indexname)).toEqual(expect.arrayContaining(['outbox_claim', 'inbox_thread', 'inbox_consent', 'inbox_sender']));
      const migrations = await db.current().sql(`SELECT version, name FROM ${schema}.schema_migrations ORDER BY version`);
      expect(migrations.rows).toEqual(POSTGRES_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      // Nothing leaks into the default schema.
      const inPublic = await db.current().sql(`SELECT 1 FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'outbox'`);
      expect(inPublic.rowCount).toBe(0);
    });

    it('migrates idempotently: reopening and migrating again change nothing', async () => {
      const schema = db.current().freshSchema();
      const first = await open(schema);
      await first.appendAudit(event('node.started'));
      const recorded = (await db.current().sql(`SELECT * FROM ${schema}.schema_migrations ORDER BY version`)).rows;
      const second = await open(schema);
      await second.migrate();
      await first.migrate();
      expect((await db.current().sql(`SELECT * FROM ${schema}.schema_migrations ORDER BY version`)).rows).toEqual(recorded);
      expect(await second.auditSize()).toBe(1);
    });

    it('lets many instances start at once on a fresh schema: one migrates, the others find it done', async () => {
      const schema = db.current().freshSchema();
      const stores = Array.from({ length: 6 }, () => new PostgresStore(db.current().url, { schema }));
      opened.push(...stores);
      await Promise.all(stores.map((s) => s.migrate()));
      const rows = await db.current().sql(`SELECT version FROM ${schema}.schema_migrations`);
      expect(rows.rowCount).toBe(POSTGRES_MIGRATIONS.length);
      const records = await Promise.all(stores.map((s, i) => s.appendAudit(event('node.started', ts(0), { instance: i }))));
      expect(records.map((r) => r.index).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5]);
    });

    it('reports which of several concurrent migrators applied the migrations', async () => {
      const schema = db.current().freshSchema();
      const { Pool } = await import('pg');
      const pools = Array.from({ length: 4 }, () => new Pool({ connectionString: db.current().url, options: `-c search_path=${schema}`, max: 1 }));
      try {
        const applied = await Promise.all(
          pools.map(async (pool) => {
            const client = await pool.connect();
            try {
              return await applyPostgresMigrations(client, schema);
            } finally {
              client.release();
            }
          }),
        );
        expect(applied.filter((a) => a.length > 0)).toEqual([POSTGRES_MIGRATIONS.map((m) => m.version)]);
      } finally {
        await Promise.all(pools.map((p) => p.end()));
      }
    });

    it('applies pending migrations together and rolls all of them back on failure', async () => {
      const schema = db.current().freshSchema();
      const v1: PostgresMigration = { version: 1, name: 'one', sql: 'CREATE TABLE one (a TEXT);' };
      const v2: PostgresMigration = { version: 2, name: 'two', sql: 'CREATE TABLE two (a TEXT);' };
      const broken: PostgresMigration = { version: 3, name: 'broken', sql: 'CREATE TABLE three (a TEXT); INSERT INTO missing VALUES (1);' };
      await open(schema, { migrations: [v1] });
      const error = await rejection(openPostgresStore(db.current().url, { schema, migrations: [broken, v1, v2] }));
      expect(error).toBeInstanceOf(ProtocolError);
      const versions = async () => (await db.current().sql(`SELECT version FROM ${schema}.schema_migrations ORDER BY version`)).rows.map((r) => r['version']);
      expect(await versions()).toEqual([1]);
      const tables = await db.current().sql(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name IN ('two', 'three')`, [schema]);
      expect(tables.rowCount).toBe(0);
      await open(schema, { migrations: [v2, v1] });
      expect(await versions()).toEqual([1, 2]);
    });

    it('refuses a schema written by a newer version, touching nothing', async () => {
      const schema = db.current().freshSchema();
      await (await open(schema)).close();
      await db.current().sql(`INSERT INTO ${schema}.schema_migrations (version, name, applied_at) VALUES ($1, 'from-the-future', $2)`, [
        POSTGRES_SCHEMA_VERSION + 1,
        ts(0),
      ]);
      const error = await rejection(openPostgresStore(db.current().url, { schema }));
      expect(isProtocolError(error, 'STORE_UNAVAILABLE')).toBe(true);
      expect((error as ProtocolError).message).toMatch(/newer than this node supports/);
      expect((error as ProtocolError).details).toEqual({ schemaVersion: POSTGRES_SCHEMA_VERSION + 1, supportedVersion: POSTGRES_SCHEMA_VERSION });
      expect((await db.current().sql(`SELECT max(version) AS v FROM ${schema}.schema_migrations`)).rows[0]?.['v']).toBe(POSTGRES_SCHEMA_VERSION + 1);
    });

    it('takes the schema from the URL, and refuses names it would have to quote', async () => {
      const schema = db.current().freshSchema('url');
      const store = await openPostgresStore(`${db.current().url}?schema=${schema}`);
      opened.push(store);
      expect(store.schema).toBe(schema);
      await store.appendAudit(event('node.started'));
      expect((await db.current().sql(`SELECT count(*)::int AS n FROM ${schema}.audit_log`)).rows[0]?.['n']).toBe(1);
      for (const bad of ['Node', 'node-a', 'a;drop', '1node', 'pg_catalog', '']) {
        expect(isProtocolError(await rejection(openPostgresStore(db.current().url, { schema: bad })), 'SCHEMA_INVALID')).toBe(true);
      }
    });

    it('keeps nodes in different schemas of one database apart', async () => {
      const a = await open(db.current().freshSchema('node_a'));
      const b = await open(db.current().freshSchema('node_b'));
      await a.putPeer({ nodeId: PEER, fingerprints: ['fp'], addedAt: ts(0), updatedAt: ts(0) });
      expect((await a.appendAudit(event('a'))).index).toBe(0);
      expect((await b.appendAudit(event('b'))).index).toBe(0);
      expect(await b.listPeers()).toEqual([]);
      expect(await a.listPeers()).toHaveLength(1);
    });

    it('enforces the append-only audit log in the database itself', async () => {
      const schema = db.current().freshSchema();
      const store = await open(schema);
      const record = await store.appendAudit({ kind: 'node.started', fields: { n: 1 }, at: ts(0) });
      await store.appendAudit(event('second'));
      const sql = db.current().sql;
      await expect(sql(`UPDATE ${schema}.audit_log SET kind = 'forged' WHERE idx = 0`)).rejects.toThrow(/append-only/);
      await expect(sql(`DELETE FROM ${schema}.audit_log WHERE idx = 1`)).rejects.toThrow(/append-only/);
      await expect(sql(`TRUNCATE ${schema}.audit_log`)).rejects.toThrow(/append-only/);
      await expect(sql(`UPDATE ${schema}.audit_head SET size = 1`)).rejects.toThrow(/audit_head/);
      await expect(sql(`UPDATE ${schema}.audit_head SET size = size + 5`)).rejects.toThrow(/audit_head/);
      await expect(sql(`DELETE FROM ${schema}.audit_head`)).rejects.toThrow(/audit_head/);
      expect(await store.readAudit(0, 1)).toEqual([record]);
      await expectContiguousAudit(store, 2);
    });

    it('computes in the database the same leaf hash as audit-leaf.ts, for any event', async () => {
      const store = await open(db.current().freshSchema());
      const value = fc.oneof(
        fc.string({ unit: 'binary' }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(fc.string({ unit: 'binary' }), { maxLength: 4 }),
      );
      const events = fc.sample(
        fc.record({
          kind: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((k) => !k.includes('\u0000')),
          fields: fc.dictionary(fc.string({ unit: 'binary', maxLength: 12 }), value, { maxKeys: 6 }),
          at: fc.date({ min: new Date(0), max: new Date('2100-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
        }),
        { numRuns: 100, seed: 42 },
      );
      const appended = [];
      for (const e of events) {
        const record = await store.appendAudit(e);
        expect(record.leafHash).toBe(auditLeafHash(record));
        appended.push(record);
      }
      expect(await store.readAudit(0, appended.length)).toEqual(appended);
    });

    it('keeps serving, with statements it had already prepared, while a newer instance adds columns', async () => {
      const schema = db.current().freshSchema('rolling');
      // One connection, so every statement below is prepared on the connection used afterwards.
      const running = await open(schema, { poolSize: 1 });
      const queued = await outboxEntry();
      await running.enqueue(queued, event('outbox.enqueued'));
      const inbound = await inboundEntry();
      await running.acceptInbound(inbound, event('inbox.accepted'), async (index) => `r-${index}`);
      expect(await running.listOutbox()).toHaveLength(1);
      expect(await running.getOutbox(queued.id)).toBeDefined();
      expect(await running.getInbox(inbound.id)).toBeDefined();
      expect(await running.claimDue({ now: ts(-60), limit: 5, owner: 'old', leaseMs: 1_000 })).toEqual([]);
      expect(await running.listPeers()).toEqual([]);

      const additive: PostgresMigration = {
        version: POSTGRES_SCHEMA_VERSION + 1,
        name: 'additive',
        sql: 'ALTER TABLE outbox ADD COLUMN note TEXT; ALTER TABLE inbox ADD COLUMN note TEXT; ALTER TABLE peers ADD COLUMN note TEXT;',
      };
      await open(schema, { migrations: [...POSTGRES_MIGRATIONS, additive] });

      expect((await running.getOutbox(queued.id))?.id).toBe(queued.id);
      expect(await running.listOutbox()).toHaveLength(1);
      expect((await running.claimDue({ now: ts(0), limit: 5, owner: 'old', leaseMs: 1_000 })).map((e) => e.id)).toEqual([queued.id]);
      expect((await running.enqueue(await outboxEntry(), event('outbox.enqueued'))).state).toBe('queued');
      expect((await running.acceptInbound(inbound, event('inbox.accepted'), async () => 'x')).status).toBe('duplicate');
      expect(await running.listPeers()).toEqual([]);
      // A restart of the older software, however, is refused: it does not know version 2.
      expect(isProtocolError(await rejection(openPostgresStore(db.current().url, { schema })), 'STORE_UNAVAILABLE')).toBe(true);
    });

    it('refuses, changing nothing, text PostgreSQL cannot hold (a NUL character)', async () => {
      const store = await open(db.current().freshSchema());
      const error = await rejection(store.putPeer({ nodeId: PEER, fingerprints: ['fp'], document: 'a\u0000b', addedAt: ts(0), updatedAt: ts(0) }));
      expect(isProtocolError(error, 'MALFORMED')).toBe(true);
      expect(await store.listPeers()).toEqual([]);
    });

    it('fails with STORE_UNAVAILABLE when the database cannot be reached or the store is closed', async () => {
      const unreachable = await rejection(openPostgresStore('postgres://postgres@127.0.0.1:1/test', { connectionTimeoutMs: 2_000 }));
      expect(isProtocolError(unreachable, 'STORE_UNAVAILABLE')).toBe(true);
      expect((unreachable as ProtocolError).message).not.toMatch(/127\.0\.0\.1/);
      const missing = await rejection(openPostgresStore(db.current().url.replace(db.current().name, 'passerelle_no_such_db')));
      expect(isProtocolError(missing, 'STORE_UNAVAILABLE')).toBe(true);

      const store = await open(db.current().freshSchema());
      await store.close();
      await store.close();
      expect(isProtocolError(await rejection(store.appendAudit(event('late'))), 'STORE_UNAVAILABLE')).toBe(true);
      expect(isProtocolError(await rejection(store.listPeers()), 'STORE_UNAVAILABLE')).toBe(true);
    });
  });

  describe('several instances on one schema', () => {
    async function pair(options: PostgresStoreOptions = {}): Promise<[PostgresStore, PostgresStore, string]> {
      const schema = db.current().freshSchema('pair');
      const [a, b] = await Promise.all([open(schema, options), open(schema, options)]);
      return [a, b, schema];
    }

    it('never hands one outbox entry to both instances claiming concurrently, over many rounds', async () => {
      const [a, b] = await pair();
      const total = 240;
      for (let i = 0; i < total; i += 1) {
        await (i % 2 === 0 ? a : b).enqueue(await outboxEntry({ priority: i % 3 === 0 ? 0 : 10 }), event('outbox.enqueued', ts(0)));
      }
      const owners: [PostgresStore, string][] = [
        [a, 'a-1'],
        [a, 'a-2'],
        [a, 'a-3'],
        [b, 'b-1'],
        [b, 'b-2'],
        [b, 'b-3'],
      ];
      const seen = new Map<string, string>();
      let rounds = 0;
      while (seen.size < total) {
        rounds += 1;
        expect(rounds).toBeLessThan(100);
        const batches = await Promise.all(owners.map(([store, owner]) => store.claimDue({ now: ts(1), limit: 7, owner, leaseMs: 600_000 })));
        for (const [i, batch] of batches.entries()) {
          const owner = owners[i]![1];
          for (const entry of batch) {
            expect(seen.has(entry.id), `${entry.id} claimed by ${seen.get(entry.id)} and ${owner}`).toBe(false);
            seen.set(entry.id, owner);
          }
        }
        // Complete this round's claims from the instance that holds them, interleaved across instances.
        await Promise.all(
          batches.map((batch, i) => {
            const [store, owner] = owners[i]!;
            return Promise.all(batch.map(async (entry) => expect(await store.complete(entry.id, owner, { state: 'delivered', receipt: 'r', at: ts(2) })).toBe(true)));
          }),
        );
      }
      expect(seen.size).toBe(total);
      expect(await a.countOutboxByState()).toEqual({ queued: 0, delivered: total, rejected: 0, cancelled: 0, failed: 0 });
      expect((await b.listOutbox()).every((e) => e.attempts === 1)).toBe(true);
      await expectContiguousAudit(a, total);
    });

    it('takes over the leases of a crashed instance once they expire; the crashed owner has lost them', async () => {
      const [a, b] = await pair();
      const entries = await Promise.all(Array.from({ length: 5 }, () => outboxEntry()));
      for (const e of entries) await a.enqueue(e, event('outbox.enqueued', ts(0)));
      const claimed = await a.claimDue({ now: ts(0), limit: 10, owner: 'instance-a', leaseMs: 30_000 });
      expect(claimed).toHaveLength(5);
      // Instance A dies without completing anything.
      await a.close();

      expect(await b.claimDue({ now: ts(10), limit: 10, owner: 'instance-b', leaseMs: 30_000 })).toEqual([]);
      expect(await b.claimDue({ now: ts(30), limit: 10, owner: 'instance-b', leaseMs: 30_000 })).toEqual([]);
      const taken = await b.claimDue({ now: ts(31), limit: 10, owner: 'instance-b', leaseMs: 30_000 });
      expect(new Set(taken.map((e) => e.id))).toEqual(new Set(entries.map((e) => e.id)));

      // A restarted A (same owner name) finds its attempt superseded.
      const restarted = await open(b.schema!);
      expect(await restarted.complete(entries[0]!.id, 'instance-a', { state: 'delivered', receipt: 'late', at: ts(32) })).toBe(false);
      for (const e of taken) expect(await b.complete(e.id, 'instance-b', { state: 'delivered', receipt: 'r', at: ts(33) })).toBe(true);
      expect((await restarted.getOutbox(entries[0]!.id))?.receipt).toBe('r');
    });

    it('accepts a message delivered concurrently to both instances exactly once, with one receipt for all', async () => {
      const [a, b] = await pair();
      const messages = await Promise.all(Array.from({ length: 30 }, () => inboundEntry()));
      const calls = new Map<string, number[]>();
      const maker = (id: string) => async (index: number): Promise<string> => {
        calls.set(id, [...(calls.get(id) ?? []), index]);
        await sleep(Math.random() * 3);
        return `receipt-${id}-${index}`;
      };
      const results = await Promise.all(
        messages.flatMap((m) => [a, b, a, b].map((store) => store.acceptInbound(m, event('inbox.accepted', ts(0), { id: m.id }), maker(m.id)))),
      );
      for (const [i, m] of messages.entries()) {
        const mine = results.slice(i * 4, i * 4 + 4);
        expect(mine.filter((r) => r.status === 'stored')).toHaveLength(1);
        expect(mine.filter((r) => r.status === 'duplicate')).toHaveLength(3);
        expect(calls.get(m.id)).toHaveLength(1);
        expect(new Set(mine.map((r) => r.entry.receipt))).toEqual(new Set([`receipt-${m.id}-${calls.get(m.id)![0]}`]));
        expect(await b.getInbox(m.id)).toEqual(mine.find((r) => r.status === 'stored')!.entry);
      }
      await expectContiguousAudit(b, messages.length);
    });

    it('makes a copy arriving at the other instance wait for the first acceptance, then answer with its receipt', async () => {
      const [a, b] = await pair();
      const message = await inboundEntry();
      const signing = deferred<number>();
      const release = deferred<string>();
      const first = a.acceptInbound(message, event('inbox.accepted'), (index) => {
        signing.resolve(index);
        return release.promise;
      });
      expect(await signing.promise).toBe(0);
      let settled = false;
      let bCalls = 0;
      const second = b
        .acceptInbound(message, event('inbox.accepted'), async (index) => {
          bCalls += 1;
          return `receipt-b-${index}`;
        })
        .finally(() => {
          settled = true;
        });
      await sleep(150);
      expect(settled).toBe(false);
      release.resolve('receipt-a-0');
      expect((await first).status).toBe('stored');
      const answer = await second;
      expect(answer.status).toBe('duplicate');
      expect(answer.entry.receipt).toBe('receipt-a-0');
      expect(bCalls).toBe(0);
      await expectContiguousAudit(a, 1);
    });

    it('lets the waiting instance store the message itself when the first acceptance rolls back', async () => {
      const [a, b] = await pair();
      const message = await inboundEntry();
      const signing = deferred<number>();
      const failSigning = deferred<string>();
      const first = a.acceptInbound(message, event('inbox.accepted'), (index) => {
        signing.resolve(index);
        return failSigning.promise;
      });
      await signing.promise;
      const bIndices: number[] = [];
      const second = b.acceptInbound(message, event('inbox.accepted'), async (index) => {
        bIndices.push(index);
        return `receipt-b-${index}`;
      });
      await sleep(100);
      const failure = new Error('signing key unavailable');
      failSigning.reject(failure);
      await expect(first).rejects.toBe(failure);
      const answer = await second;
      expect(answer.status).toBe('stored');
      expect(bIndices).toEqual([0]);
      expect((await a.getInbox(message.id))?.receipt).toBe('receipt-b-0');
      await expectContiguousAudit(a, 1);
    });

    it('rolls back an acceptance whose connection dies mid-transaction and frees the log for the others', async () => {
      const schema = db.current().freshSchema('crash');
      const victimName = `passerelle-victim-${schema}`;
      const victim = await open(schema, { pool: { application_name: victimName } });
      const survivor = await open(schema);
      await survivor.appendAudit(event('node.started'));
      const message = await inboundEntry();
      const outcome = await rejection(
        victim.acceptInbound(message, event('inbox.accepted'), async (index) => {
          // The instance's database session is killed while it holds the audit log's lock.
          await db.current().sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [victimName]);
          await sleep(50);
          return `receipt-victim-${index}`;
        }),
      );
      expect(isProtocolError(outcome, 'STORE_UNAVAILABLE')).toBe(true);
      expect(await survivor.getInbox(message.id)).toBeUndefined();
      await expectContiguousAudit(survivor, 1);

      const stored = await survivor.acceptInbound(message, event('inbox.accepted'), async (index) => `receipt-survivor-${index}`);
      expect(stored).toMatchObject({ status: 'stored', entry: { receipt: 'receipt-survivor-1' } });
      // The victim's pool replaces the dead connection and carries on.
      expect((await victim.acceptInbound(message, event('inbox.accepted'), async () => 'never')).status).toBe('duplicate');
      await expectContiguousAudit(victim, 2);
    });

    it('keeps one gap-free audit sequence under concurrent appends and audited writes from both instances', async () => {
      const [a, b] = await pair();
      const work: Promise<unknown>[] = [];
      for (let i = 0; i < 60; i += 1) {
        const store = i % 2 === 0 ? a : b;
        work.push(store.appendAudit(event('tick', ts(i), { i })));
        if (i % 3 === 0) work.push(outboxEntry().then((e) => store.enqueue(e, event('outbox.enqueued', ts(i), { id: e.id }))));
        if (i % 5 === 0) work.push(inboundEntry().then((m) => store.acceptInbound(m, event('inbox.accepted', ts(i)), async (index) => `r-${index}`)));
      }
      await Promise.all(work);
      await expectContiguousAudit(a, work.length);
      const ticks = (await b.readAudit(0, work.length)).filter((r) => r.kind === 'tick').map((r) => r.fields['i']);
      expect(new Set(ticks).size).toBe(60);
    });

    it('leaves nothing queued under a consent withdrawn on one instance while the other enqueues under it', async () => {
      const [a, b] = await pair();
      for (let round = 0; round < 8; round += 1) {
        const consentId = `0196c000-0000-7000-8000-${String(round).padStart(12, '0')}`;
        await a.putConsent({
          id: consentId,
          controller: 'https://self.example',
          subject: `subj-${round}`,
          jws: 'consent.jws.sig',
          expiresAt: ts(86_400),
          recordedAt: ts(0),
          withdrawnPurposes: [],
        });
        const enqueues = Array.from({ length: 12 }, (_, i) =>
          outboxEntry({ consentId }).then(async (e) => {
            if (i > 3) await sleep(Math.random() * 10);
            return a.enqueue(e, event('outbox.enqueued', ts(1)));
          }),
        );
        // Settled at once: an enqueue refused while the withdrawal is awaited is then never an unhandled rejection.
        const settled = Promise.allSettled(enqueues);
        await sleep(Math.random() * 8);
        const cancelled = await b.withdrawConsent(consentId, undefined, ts(2), event('consent.withdrawn', ts(2)));
        const outcomes = await settled;
        const accepted = outcomes.filter((o): o is PromiseFulfilledResult<OutboxEntry> => o.status === 'fulfilled').map((o) => o.value.id);
        for (const o of outcomes) {
          if (o.status === 'rejected') expect(isProtocolError(o.reason, 'CONSENT_WITHDRAWN')).toBe(true);
        }
        expect(new Set(cancelled)).toEqual(new Set(accepted));
        const entries = await a.listOutbox({ consentId });
        expect(entries.map((e) => e.id).sort()).toEqual([...accepted].sort());
        expect(entries.every((e) => e.state === 'cancelled')).toBe(true);
      }
    });

    it('remembers a replay key for exactly one of the instances seeing it at once', async () => {
      const [a, b] = await pair();
      const expires = new Date(Date.now() + 60_000).toISOString();
      for (let i = 0; i < 20; i += 1) {
        const results = await Promise.all([a, b, a, b].map((s) => s.remember(`nonce-${i}`, expires)));
        expect(results.filter(Boolean)).toHaveLength(1);
      }
    });

    it('erases personal data from the row itself, leaving the evidence', async () => {
      const [a, b, schema] = await pair();
      const message = await inboundEntry();
      await a.acceptInbound(message, event('inbox.accepted'), async (index) => `r-${index}`);
      expect(await b.eraseInboundByConsent(CONSENT, ts(5), event('inbox.erased', ts(5)))).toEqual([message.id]);
      const row = (await db.current().sql(`SELECT jwe, sd_jwt, jwt, digest, receipt FROM ${schema}.inbox WHERE id = $1`, [message.id])).rows[0];
      expect(row).toEqual({ jwe: null, sd_jwt: null, jwt: message.jwt, digest: message.digest, receipt: 'r-0' });
    });
  });

  describe('openStore', () => {
    it('opens PostgreSQL from a postgres:// URL with its schema', async () => {
      const schema = db.current().freshSchema('open');
      const store = await openStore(`${db.current().url}?schema=${schema}`);
      expect(store).toBeInstanceOf(PostgresStore);
      opened.push(store as PostgresStore);
      expect((store as PostgresStore).schema).toBe(schema);
      expect(await store.auditSize()).toBe(0);
    });
  });
});

/**
 * The start-up check of the audit log (spec/node.md §9.2): a node recomputes every leaf from the
 * stored fields, rebuilds the tree and compares it with the last checkpoint it signed. A log
 * altered or truncated behind its back — here with the database's own append-only triggers
 * dropped, as someone with the database file could — makes it refuse to start with
 * AUDIT_LOG_INCONSISTENT; an intact copy starts and goes on from where it stopped.
 */
import { cp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditLeafHash, generateSigningKey, ProtocolError, signCheckpoint } from '@passerelle/protocol';
import { readConfigFile } from '../src/init.js';
import { startNode, type RunningNode } from '../src/node.js';
import { prepareNode, tempDir } from './harness/cluster.js';
import { describePostgres, useTestDatabase } from './pg-test-db.js';

async function refusal(dir: string): Promise<ProtocolError> {
  const error = await startNode({ dir, listen: false, worker: false }).then(
    async (node) => {
      await node.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ProtocolError);
  return error as ProtocolError;
}

/** Writes some history: tokens created and revoked, checkpoints signed along the way, then a clean stop. */
async function writeHistory(node: RunningNode): Promise<void> {
  for (let i = 0; i < 3; i++) await node.createToken('caseworker', `poste-${i}`);
  await node.audit.checkpoint();
  const extra = await node.createToken('auditor', 'autorité de contrôle');
  await node.revokeToken(extra.id);
  await node.audit.checkpoint();
  await node.createToken('administrator', 'exploitation');
}

describe('start-up check of the audit log (SQLite)', () => {
  let original: string;
  let size: number;
  const copies: string[] = [];

  beforeAll(async () => {
    original = (await prepareNode({ name: 'Agence Exemple Liège', country: 'BE' })).dir;
    const node = await startNode({ dir: original, listen: false, worker: false });
    await writeHistory(node);
    size = await node.store.auditSize();
    await node.close();
  });
  afterAll(async () => {
    await Promise.all([original, ...copies].map((d) => rm(d, { recursive: true, force: true })));
  });

  /** A copy of the node's directory whose database `tamper` changes directly. */
  async function tampered(tamper: (db: DatabaseSync) => void | Promise<void>): Promise<string> {
    const dir = await tempDir('passerelle-tampered-');
    copies.push(dir);
    await cp(original, dir, { recursive: true });
    const db = new DatabaseSync(join(dir, 'node.db'));
    try {
      await tamper(db);
    } finally {
      db.close();
    }
    return dir;
  }

  it('starts from an intact log, signed at shutdown, and goes on from where it stopped', async () => {
    const dir = await tampered(() => undefined);
    const node = await startNode({ dir, listen: false, worker: false });
    try {
      expect(node.audit.size).toBe(size);
      const latest = (await node.audit.checkpoints()).at(-1)!;
      // The last checkpoint was signed when the node stopped: it covers the whole log.
      expect(latest.size).toBe(size);
      expect(node.audit.latestCheckpoint()).toBe(latest.jws);
      await node.createToken('caseworker', 'poste-4');
      expect((await node.audit.checkpoint()).size).toBe(size + 1);
    } finally {
      await node.close();
    }
  });

  it('refuses a log whose entry was changed in place', async () => {
    const dir = await tampered((db) => {
      db.exec('DROP TRIGGER audit_log_no_update');
      db.prepare('UPDATE audit_log SET fields = ? WHERE idx = 1').run('{"role":"administrator","tokenId":"forged"}');
    });
    const error = await refusal(dir);
    expect(error.code).toBe('AUDIT_LOG_INCONSISTENT');
    expect(error.message).toMatch(/entry 1 .*fields were changed/);
  });

  it('refuses a log rewritten with matching leaf hashes: the signed root no longer matches', async () => {
    const dir = await tampered((db) => {
      db.exec('DROP TRIGGER audit_log_no_update');
      const row = db.prepare('SELECT kind, at FROM audit_log WHERE idx = 1').get()!;
      const fields = { role: 'administrator', tokenId: 'forged' };
      const leaf = auditLeafHash({ index: 1, kind: String(row['kind']), fields, at: String(row['at']) });
      db.prepare('UPDATE audit_log SET fields = ?, leaf_hash = ? WHERE idx = 1').run(JSON.stringify(fields), leaf);
    });
    const error = await refusal(dir);
    expect(error.code).toBe('AUDIT_LOG_INCONSISTENT');
    expect(error.message).toMatch(/no longer produce the root .* altered/);
  });

  it('refuses a truncated log, shorter than its last checkpoint', async () => {
    const dir = await tampered((db) => {
      db.exec('DROP TRIGGER audit_log_no_delete');
      db.prepare('DELETE FROM audit_log WHERE idx >= ?').run(size - 2);
    });
    const error = await refusal(dir);
    expect(error.code).toBe('AUDIT_LOG_INCONSISTENT');
    expect(error.message).toMatch(/truncated/);
    // The first checkpoint the shortened log cannot reach already gives it away.
    expect(error.details).toMatchObject({ size: size - 2 });
    expect(error.details!['checkpointSize']).toBeGreaterThan(size - 2);
  });

  it('refuses a log with an entry removed from the middle', async () => {
    const dir = await tampered((db) => {
      db.exec('DROP TRIGGER audit_log_no_delete');
      db.prepare('DELETE FROM audit_log WHERE idx = 2').run();
    });
    const error = await refusal(dir);
    expect(error.code).toBe('AUDIT_LOG_INCONSISTENT');
    expect(error.message).toMatch(/entry 2 is missing/);
  });

  it('refuses a last checkpoint this node did not sign', async () => {
    const forger = await generateSigningKey();
    const { id } = await readConfigFile(original);
    const dir = await tampered(async (db) => {
      const row = db.prepare('SELECT size, root, at FROM audit_checkpoints ORDER BY size DESC LIMIT 1').get()!;
      // Same statement, other signer: only a key the node's document lists may sign its checkpoints.
      const forged = await signCheckpoint({ origin: id, size: Number(row['size']), root: String(row['root']), at: String(row['at']) }, forger);
      db.exec('DROP TRIGGER audit_checkpoints_no_update');
      db.prepare('UPDATE audit_checkpoints SET jws = ? WHERE size = ?').run(forged, Number(row['size']));
    });
    const error = await refusal(dir);
    expect(error.code).toBe('AUDIT_LOG_INCONSISTENT');
    expect(error.details).toMatchObject({ reason: 'AUDIT_CHECKPOINT_INVALID' });
  });

  it('keeps the database itself append-only', async () => {
    const db = new DatabaseSync(join(original, 'node.db'));
    try {
      expect(() => db.prepare('DELETE FROM audit_log WHERE idx = 0').run()).toThrow(/append-only/);
      expect(() => db.prepare('UPDATE audit_checkpoints SET root = root').run()).toThrow(/append-only/);
      expect(() => db.prepare('DELETE FROM audit_checkpoints').run()).toThrow(/append-only/);
    } finally {
      db.close();
    }
  });
});

describePostgres('start-up check of the audit log (PostgreSQL)', () => {
  const db = useTestDatabase();
  const dirs: string[] = [];
  afterAll(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });

  it('refuses a shared log changed in the database, and one shorter than its checkpoint', async () => {
    const schema = db.current().freshSchema('liege');
    const url = new URL(db.current().url);
    url.searchParams.set('schema', schema);
    const { dir } = await prepareNode({ name: 'Agence Exemple Liège', country: 'BE', store: url.toString() });
    dirs.push(dir);
    const node = await startNode({ dir, listen: false, worker: false });
    await writeHistory(node);
    const size = await node.store.auditSize();
    await node.close();

    await db.current().sql(`ALTER TABLE ${schema}.audit_log DISABLE TRIGGER audit_log_no_update_delete`);
    await db.current().sql(`UPDATE ${schema}.audit_log SET fields = $1 WHERE idx = 1`, ['{"role":"administrator","tokenId":"forged"}']);
    let error = await refusal(dir);
    expect(error.code).toBe('AUDIT_LOG_INCONSISTENT');
    expect(error.message).toMatch(/fields were changed/);

    await db.current().sql(`DELETE FROM ${schema}.audit_log WHERE idx = 1 OR idx >= $1`, [size - 1]);
    await db.current().sql(`ALTER TABLE ${schema}.audit_head DISABLE TRIGGER audit_head_grow_only`);
    await db.current().sql(`UPDATE ${schema}.audit_head SET size = $1`, [size - 1]);
    error = await refusal(dir);
    expect(error.code).toBe('AUDIT_LOG_INCONSISTENT');
    expect(error.message).toMatch(/entry 1 is missing/);
  });
});

/**
 * Versioned schema for the PostgreSQL store (spec/node.md §Store). Same rules as the SQLite
 * migrations: append-only (a released migration is never edited, a change is a new version), and
 * all pending migrations apply in one transaction — PostgreSQL DDL is transactional, so a failed
 * upgrade leaves the previous schema intact.
 *
 * Several node instances may start at once against one database. The migration transaction first
 * takes a transaction-scoped advisory lock, so exactly one of them migrates and the others, once
 * it commits, find nothing left to do.
 *
 * Timestamps are kept as the caller's RFC 3339 strings (returned verbatim) and, where the store
 * compares or orders by time, as epoch milliseconds (see sqlite-migrations.ts for why strings do
 * not compare). Text keys use the "C" collation so that ordering by id is by code point, as in
 * SQLite, whatever the database's default collation is.
 */
import { createHash } from 'node:crypto';
import type { PoolClient } from 'pg';
import { ProtocolError } from '@passerelle/protocol';

export interface PostgresMigration {
  version: number;
  name: string;
  sql: string;
}

export const POSTGRES_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE peers (
  node_id TEXT COLLATE "C" PRIMARY KEY,
  fingerprints TEXT[] NOT NULL,
  document TEXT,
  document_version BIGINT,
  added_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE agreements (
  id TEXT COLLATE "C" PRIMARY KEY,
  version BIGINT NOT NULL,
  jws TEXT NOT NULL,
  registered_at TEXT NOT NULL
);

-- Uniqueness is on a digest of the termination: a btree entry cannot hold an arbitrarily long JWS.
CREATE TABLE agreement_terminations (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agreement_id TEXT COLLATE "C" NOT NULL REFERENCES agreements (id) ON DELETE RESTRICT,
  jws TEXT NOT NULL,
  jws_sha256 BYTEA NOT NULL,
  UNIQUE (agreement_id, jws_sha256)
);

CREATE TABLE consents (
  id TEXT COLLATE "C" PRIMARY KEY,
  controller TEXT NOT NULL,
  subject TEXT NOT NULL,
  jws TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  recorded_ms BIGINT NOT NULL,
  withdrawn_at TEXT,
  withdrawn_purposes TEXT[] NOT NULL DEFAULT '{}'
);
CREATE INDEX consents_recorded ON consents (recorded_ms, id);

-- Leases change on every claim and completion; free space in each page lets those updates stay on
-- the page (HOT) instead of touching every index.
CREATE TABLE outbox (
  id TEXT COLLATE "C" PRIMARY KEY,
  peer TEXT COLLATE "C" NOT NULL,
  type TEXT COLLATE "C" NOT NULL,
  thread_id TEXT COLLATE "C" NOT NULL,
  consent_id TEXT COLLATE "C",
  priority BIGINT NOT NULL,
  jwe TEXT NOT NULL,
  digest TEXT NOT NULL,
  jwt TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'rejected', 'cancelled', 'failed')),
  attempts BIGINT NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  next_attempt_ms BIGINT NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  updated_at TEXT NOT NULL,
  last_error TEXT,
  receipt TEXT,
  problem TEXT,
  delivered_at TEXT,
  lease_owner TEXT,
  lease_until_ms BIGINT
) WITH (fillfactor = 85);

-- Claiming walks queued rows in delivery order; delivered history never enters this index.
CREATE INDEX outbox_claim ON outbox (priority, next_attempt_ms, created_ms, id) WHERE state = 'queued';
CREATE INDEX outbox_consent ON outbox (consent_id, created_ms, id);
CREATE INDEX outbox_peer ON outbox (peer, created_ms, id);
CREATE INDEX outbox_thread ON outbox (thread_id, created_ms, id);
CREATE INDEX outbox_created ON outbox (created_ms, id);

CREATE TABLE inbox (
  id TEXT COLLATE "C" PRIMARY KEY,
  sender TEXT COLLATE "C" NOT NULL,
  type TEXT COLLATE "C" NOT NULL,
  thread_id TEXT COLLATE "C" NOT NULL,
  consent_id TEXT COLLATE "C",
  digest TEXT NOT NULL,
  -- Personal data: set to NULL on erasure (jwt, digest and receipt stay as evidence).
  jwe TEXT,
  sd_jwt TEXT,
  jwt TEXT NOT NULL,
  categories TEXT[] NOT NULL,
  receipt TEXT NOT NULL,
  received_at TEXT NOT NULL,
  received_ms BIGINT NOT NULL,
  erased_at TEXT
);

CREATE INDEX inbox_thread ON inbox (thread_id, received_ms, id);
CREATE INDEX inbox_consent ON inbox (consent_id, received_ms, id);
CREATE INDEX inbox_sender ON inbox (sender, received_ms, id);
CREATE INDEX inbox_received ON inbox (received_ms, id);

-- Leaves of the node's transparency log (RFC 9162 §2.1.1); idx is the 0-based leaf index.
CREATE TABLE audit_log (
  idx BIGINT PRIMARY KEY CHECK (idx >= 0),
  kind TEXT NOT NULL,
  fields TEXT NOT NULL,
  at TEXT NOT NULL,
  leaf_hash TEXT NOT NULL
);

-- The log's size as one row. Every append increments it in the transaction that records the event:
-- the row lock serialises appenders across all instances sharing the database, a rollback gives
-- the index back, and so indices are contiguous from 0 with no gaps.
CREATE TABLE audit_head (
  singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
  size BIGINT NOT NULL CHECK (size >= 0)
);
INSERT INTO audit_head (singleton, size) VALUES (TRUE, 0);

-- Append-only is enforced by the database itself, not only by the absence of code paths: a
-- rewritten leaf would silently invalidate every checkpoint and receipt issued after it.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$fn$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The head only ever grows by one per appended leaf (a rollback undoes both together).
CREATE FUNCTION audit_head_grow_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP <> 'UPDATE' OR NEW.size <> OLD.size + 1 THEN
    RAISE EXCEPTION 'audit_head only grows one leaf at a time' USING ERRCODE = 'insufficient_privilege';
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER audit_head_grow_only BEFORE UPDATE OR DELETE ON audit_head
  FOR EACH ROW EXECUTE FUNCTION audit_head_grow_only();
CREATE TRIGGER audit_head_no_truncate BEFORE TRUNCATE ON audit_head
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

CREATE TABLE tokens (
  id TEXT COLLATE "C" PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('caseworker', 'administrator', 'auditor')),
  label TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  revoked_at TEXT
);
CREATE INDEX tokens_created ON tokens (created_ms, id);

-- Keys are stored as digests: they come from peers (signature nonces), and a btree entry has a
-- size limit that a peer must not be able to trip.
CREATE TABLE remembered_keys (
  key_sha256 BYTEA PRIMARY KEY,
  expires_ms BIGINT NOT NULL
);
CREATE INDEX remembered_keys_expiry ON remembered_keys (expires_ms);
`,
  },
  {
    version: 2,
    name: 'audit checkpoints and node document history',
    sql: `
-- Signed checkpoints of this node's log (spec/audit.md §3.3); size and time never decrease
-- (putCheckpoint decides under a table lock, as several instances sign), and rows are never
-- changed: a rewritten checkpoint would hide a rewritten log from the start-up check.
CREATE TABLE audit_checkpoints (
  size BIGINT PRIMARY KEY CHECK (size >= 0),
  root TEXT NOT NULL,
  at TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  jws TEXT NOT NULL
);
CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Every version of a node document this node published or accepted from a peer: the key history
-- an audit bundle carries (spec/audit.md §4.1).
CREATE TABLE node_documents (
  node_id TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  jws TEXT NOT NULL,
  PRIMARY KEY (node_id, version)
);
`,
  },
];

export const POSTGRES_SCHEMA_VERSION = Math.max(...POSTGRES_MIGRATIONS.map((m) => m.version));

/** A schema name usable unquoted in SQL and in a `-c search_path=` startup option. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema) || schema.startsWith('pg_')) {
    throw new ProtocolError('SCHEMA_INVALID', 'A PostgreSQL schema name must be lower-case letters, digits and underscores, not starting with a digit or pg_');
  }
  return schema;
}

// Advisory lock keys: ('Pass', hash of the schema). Two-key advisory locks do not collide with the
// single bigint keys other applications on the same database tend to use.
const LOCK_CLASS = 0x50617373;

function migrationLockKey(schema: string | undefined): number {
  return createHash('sha256').update(`passerelle-migrate:${schema ?? ''}`).digest().readInt32BE(0);
}

function refuseNewer(found: number, known: number): never {
  throw new ProtocolError(
    'STORE_UNAVAILABLE',
    `Database schema version ${found} is newer than this node supports (${known}); upgrade the node software before opening this database`,
    { schemaVersion: found, supportedVersion: known },
  );
}

function validated(migrations: readonly PostgresMigration[]): PostgresMigration[] {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    if (!Number.isInteger(m.version) || m.version < 1 || (i > 0 && sorted[i - 1]!.version === m.version)) {
      throw new ProtocolError('INTERNAL', `Invalid migration list at version ${m.version}`);
    }
  });
  return sorted;
}

/** Highest applied version in the connection's schema, or 0 when nothing was ever applied there. */
export async function currentPostgresSchemaVersion(client: PoolClient): Promise<number> {
  const present = await client.query<{ present: boolean }>(`SELECT to_regclass('schema_migrations') IS NOT NULL AS present`);
  if (!present.rows[0]?.present) return 0;
  const row = await client.query<{ version: number | null }>('SELECT MAX(version) AS version FROM schema_migrations');
  return row.rows[0]?.version ?? 0;
}

/**
 * Applies pending migrations in one transaction under an advisory lock and returns the versions
 * applied (none if another instance got there first). The client must be outside a transaction and
 * its search_path must name `schema` (the store sets it per connection). Refuses
 * (STORE_UNAVAILABLE) a schema written by newer code: an older node would misread or corrupt
 * tables it does not know.
 */
export async function applyPostgresMigrations(
  client: PoolClient,
  schema: string | undefined,
  migrations: readonly PostgresMigration[] = POSTGRES_MIGRATIONS,
  now: () => string = () => new Date().toISOString(),
): Promise<number[]> {
  const sorted = validated(migrations);
  const known = sorted.at(-1)?.version ?? 0;
  if (schema !== undefined) checkSchemaName(schema);

  const encoding = await client.query<{ encoding: string }>(`SELECT current_setting('server_encoding') AS encoding`);
  if (encoding.rows[0]?.encoding !== 'UTF8') {
    throw new ProtocolError('STORE_UNAVAILABLE', 'The PostgreSQL database must use the UTF8 encoding');
  }
  // Checked before locking, so that instances restarting against a current schema never queue.
  const before = await currentPostgresSchemaVersion(client);
  if (before > known) refuseNewer(before, known);
  if (!sorted.some((m) => m.version > before)) return [];

  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_CLASS, migrationLockKey(schema)]);
    if (schema !== undefined) {
      // Only when missing: IF NOT EXISTS still needs CREATE on the database, which a role confined
      // to a schema an administrator made for it does not have.
      const exists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
      if (exists.rowCount === 0) await client.query(`CREATE SCHEMA ${schema}`);
    }
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INTEGER PRIMARY KEY,
      name TEXT NOT NULL,
      applied_at TEXT NOT NULL
    )`);
    // Another instance may have migrated between the check above and the lock.
    const current = await currentPostgresSchemaVersion(client);
    if (current > known) refuseNewer(current, known);
    const applied: number[] = [];
    for (const m of sorted) {
      if (m.version <= current) continue;
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, now()]);
      applied.push(m.version);
    }
    await client.query('COMMIT');
    return applied;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

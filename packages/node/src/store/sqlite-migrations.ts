/**
 * Versioned schema for the SQLite store (spec/node.md §Store). Migrations are append-only: a
 * released migration is never edited, a change is a new version. Pending migrations are applied
 * together in one transaction, so a crash mid-upgrade leaves the previous schema intact.
 *
 * Timestamps are kept twice: the caller's RFC 3339 string (returned verbatim) and, where the store
 * compares or orders by time, integer epoch milliseconds. RFC 3339 strings with and without
 * fractional seconds do not sort lexically ('…00Z' > '…00.500Z'), so comparing the strings would
 * let an entry be claimed early or a lease look expired while it is held.
 */
import type { DatabaseSync } from 'node:sqlite';
import { ProtocolError } from '@passerelle/protocol';

export interface SqliteMigration {
  version: number;
  name: string;
  sql: string;
}

export const SQLITE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    name: 'initial',
    sql: `
CREATE TABLE peers (
  node_id TEXT PRIMARY KEY,
  fingerprints TEXT NOT NULL,
  document TEXT,
  document_version INTEGER,
  added_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
) STRICT;

CREATE TABLE agreements (
  id TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  jws TEXT NOT NULL,
  registered_at TEXT NOT NULL
) STRICT;

CREATE TABLE agreement_terminations (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  agreement_id TEXT NOT NULL REFERENCES agreements(id) ON DELETE RESTRICT,
  jws TEXT NOT NULL,
  UNIQUE (agreement_id, jws)
) STRICT;

CREATE TABLE consents (
  id TEXT PRIMARY KEY,
  controller TEXT NOT NULL,
  subject TEXT NOT NULL,
  jws TEXT NOT NULL,
  expires_at TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  recorded_ms INTEGER NOT NULL,
  withdrawn_at TEXT,
  withdrawn_purposes TEXT NOT NULL DEFAULT '[]'
) STRICT;

CREATE TABLE outbox (
  id TEXT PRIMARY KEY,
  peer TEXT NOT NULL,
  type TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  consent_id TEXT,
  priority INTEGER NOT NULL,
  jwe TEXT NOT NULL,
  digest TEXT NOT NULL,
  jwt TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'rejected', 'cancelled', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  next_attempt_ms INTEGER NOT NULL,
  expires_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  updated_at TEXT NOT NULL,
  last_error TEXT,
  receipt TEXT,
  problem TEXT,
  delivered_at TEXT,
  lease_owner TEXT,
  lease_until_ms INTEGER
) STRICT;

-- Claiming reads queued rows in delivery order (priority, then due time).
CREATE INDEX outbox_claim ON outbox (state, priority, next_attempt_ms);
CREATE INDEX outbox_consent ON outbox (consent_id, state);
CREATE INDEX outbox_peer ON outbox (peer, created_ms);
CREATE INDEX outbox_thread ON outbox (thread_id, created_ms);
CREATE INDEX outbox_created ON outbox (created_ms, id);

CREATE TABLE inbox (
  id TEXT PRIMARY KEY,
  sender TEXT NOT NULL,
  type TEXT NOT NULL,
  thread_id TEXT NOT NULL,
  consent_id TEXT,
  digest TEXT NOT NULL,
  -- Personal data: set to NULL on erasure (jwt, digest and receipt stay as evidence).
  jwe TEXT,
  sd_jwt TEXT,
  jwt TEXT NOT NULL,
  categories TEXT NOT NULL,
  receipt TEXT NOT NULL,
  received_at TEXT NOT NULL,
  received_ms INTEGER NOT NULL,
  erased_at TEXT
) STRICT;

CREATE INDEX inbox_thread ON inbox (thread_id, received_ms);
CREATE INDEX inbox_consent ON inbox (consent_id, received_ms);
CREATE INDEX inbox_sender ON inbox (sender, received_ms);
CREATE INDEX inbox_received ON inbox (received_ms, id);

-- Leaves of the node's transparency log (RFC 9162 §2.1.1); idx is the 0-based leaf index.
CREATE TABLE audit_log (
  idx INTEGER PRIMARY KEY CHECK (idx >= 0),
  kind TEXT NOT NULL,
  fields TEXT NOT NULL,
  at TEXT NOT NULL,
  leaf_hash TEXT NOT NULL
) STRICT;

-- Append-only is enforced by the database itself, not only by the absence of code paths: a
-- rewritten leaf would silently invalidate every checkpoint and receipt issued after it.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE tokens (
  id TEXT PRIMARY KEY,
  hash TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('caseworker', 'administrator', 'auditor')),
  label TEXT NOT NULL,
  created_at TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  revoked_at TEXT
) STRICT;

CREATE TABLE remembered_keys (
  key TEXT PRIMARY KEY,
  expires_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX remembered_keys_expiry ON remembered_keys (expires_ms);
`,
  },
  {
    version: 2,
    name: 'audit checkpoints and node document history',
    sql: `
-- Signed checkpoints of this node's log (spec/audit.md §3.3), in signing order; size and time
-- never decrease (putCheckpoint), and rows are never changed: a rewritten checkpoint would hide
-- a rewritten log from the start-up check.
CREATE TABLE audit_checkpoints (
  size INTEGER PRIMARY KEY CHECK (size >= 0),
  root TEXT NOT NULL,
  at TEXT NOT NULL,
  at_ms INTEGER NOT NULL,
  jws TEXT NOT NULL
) STRICT;
CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;

-- Every version of a node document this node published or accepted from a peer: the key history
-- an audit bundle carries (spec/audit.md §4.1).
CREATE TABLE node_documents (
  node_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  jws TEXT NOT NULL,
  PRIMARY KEY (node_id, version)
) STRICT;
`,
  },
];

export const SQLITE_SCHEMA_VERSION = Math.max(...SQLITE_MIGRATIONS.map((m) => m.version));

const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at TEXT NOT NULL
) STRICT`;

/** Highest applied version, or 0 for a fresh database. */
export function currentSchemaVersion(db: DatabaseSync): number {
  const table = db.prepare(`SELECT 1 AS present FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'`).get();
  if (!table) return 0;
  const row = db.prepare('SELECT MAX(version) AS version FROM schema_migrations').get();
  return typeof row?.['version'] === 'number' ? row['version'] : 0;
}

function refuseNewer(found: number, known: number): never {
  throw new ProtocolError(
    'STORE_UNAVAILABLE',
    `Database schema version ${found} is newer than this node supports (${known}); upgrade the node software before opening this database`,
    { schemaVersion: found, supportedVersion: known },
  );
}

/**
 * Applies pending migrations in one `BEGIN IMMEDIATE` transaction and returns the versions applied.
 * The caller must not hold a transaction. Refuses (STORE_UNAVAILABLE) a database written by newer
 * code: an older node would misread or corrupt tables it does not know.
 */
export function applySqliteMigrations(
  db: DatabaseSync,
  migrations: readonly SqliteMigration[] = SQLITE_MIGRATIONS,
  now: () => string = () => new Date().toISOString(),
): number[] {
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  sorted.forEach((m, i) => {
    if (!Number.isInteger(m.version) || m.version < 1 || (i > 0 && sorted[i - 1]!.version === m.version)) {
      throw new ProtocolError('INTERNAL', `Invalid migration list at version ${m.version}`);
    }
  });
  const known = sorted.at(-1)?.version ?? 0;

  // Checked before taking the write lock so that a read-only open of an up-to-date database works.
  const before = currentSchemaVersion(db);
  if (before > known) refuseNewer(before, known);
  if (!sorted.some((m) => m.version > before)) return [];

  db.exec('BEGIN IMMEDIATE');
  try {
    db.exec(CREATE_MIGRATIONS_TABLE);
    // Another process may have migrated between the check above and the lock.
    const current = currentSchemaVersion(db);
    if (current > known) refuseNewer(current, known);
    const applied: number[] = [];
    const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
    for (const m of sorted) {
      if (m.version <= current) continue;
      db.exec(m.sql);
      record.run(m.version, m.name, now());
      applied.push(m.version);
    }
    db.exec('COMMIT');
    return applied;
  } catch (error) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw error;
  }
}

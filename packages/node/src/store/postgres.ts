/**
 * The scale-out store (spec/node.md §Store): several node instances behind a load balancer share
 * one PostgreSQL database and behave as one node — same contract and same conformance suite as the
 * SQLite store.
 *
 * Concurrency model. Every connection runs at READ COMMITTED. Whatever must be decided across
 * instances is decided by a row lock inside one transaction:
 * - the outbox is claimed with `FOR UPDATE SKIP LOCKED` and a lease (owner, expiry), so two
 *   instances never hold one entry, and a crashed instance's entries come back when its lease ends;
 * - the audit log's size lives in one row (`audit_head`); each append increments it in the
 *   transaction that records the event, so appenders from every instance queue on that row and
 *   indices stay contiguous from 0. Each transaction takes that lock last, just before it commits,
 *   so it is held for as short a time as possible;
 * - an inbound message is inserted first (its id is the primary key): a concurrent copy arriving at
 *   another instance waits on that row until the first commits, then reads the original receipt;
 * - an enqueue holds a share lock on its consent row while a withdrawal updates it, so a message is
 *   either refused or visible to the withdrawal that cancels it.
 *
 * Performance. Most operations are one statement (data-modifying CTEs run the change and its audit
 * append together, and a single statement is its own transaction), sent as named prepared
 * statements. The leaf hash is computed by the server from a template produced by audit-leaf.ts, so
 * the append needs no extra round trip to learn its index first.
 */
import { createHash } from 'node:crypto';
import { DatabaseError, Pool, types as pgTypes } from 'pg';
import type { CustomTypesConfig, PoolClient, PoolConfig, QueryResult, QueryResultRow } from 'pg';
import { MessageTypes, ProtocolError } from '@passerelle/protocol';
import { auditLeafData, canonicalJson } from './audit-leaf.js';
import { auditFromRow, checkCount, checkpointFromRow, compact, consentFromRow, inboxFromRow, int, outboxFromRow, peerFromRow, stringArray, text, toMs, tokenFromRow, type Row } from './rows.js';
import { applyPostgresMigrations, checkSchemaName } from './postgres-migrations.js';
import type { PostgresMigration } from './postgres-migrations.js';
import type {
  AcceptResult,
  AgreementRecord,
  AuditEvent,
  AuditRecord,
  CheckpointRecord,
  ClaimOptions,
  ConsentRecordRow,
  InboxEntry,
  NewOutboxEntry,
  NodeDocumentRecord,
  OutboxEntry,
  OutboxState,
  PeerRecord,
  Store,
  TokenRecord,
} from './types.js';

export interface PostgresStoreOptions {
  /**
   * Schema holding this node's tables, created by the first migration if missing; several nodes can
   * then share one database. Lower-case letters, digits and underscores. Overrides a `schema`
   * query parameter of the connection URL. Default: the server's search_path (usually `public`).
   */
  schema?: string;
  /** Connections this instance keeps open. Default 10. */
  poolSize?: number;
  /**
   * How long an operation waits for a connection (a new one, or a free one from the pool) before
   * STORE_UNAVAILABLE. Default 30 s.
   */
  connectionTimeoutMs?: number;
  /** How long a statement waits for a lock held by another transaction before STORE_UNAVAILABLE. Default 10 s; 0 waits forever. */
  lockTimeoutMs?: number;
  /**
   * A transaction left idle this long (an instance stuck mid-acceptance) is ended by the server, so
   * it cannot hold the audit log's lock against every other instance. Default 60 s; 0 never.
   */
  idleInTransactionTimeoutMs?: number;
  /** Further `pg` pool settings (TLS, credentials callback, …). */
  pool?: Omit<PoolConfig, 'connectionString' | 'types' | 'options' | 'max'>;
  /** Replaces the built-in migration list (tests of the migration machinery only). */
  migrations?: readonly PostgresMigration[];
}

const DEFAULT_POOL_SIZE = 10;
const DEFAULT_CONNECTION_TIMEOUT_MS = 30_000;
const DEFAULT_LOCK_TIMEOUT_MS = 10_000;
const DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS = 60_000;

/** Messages that exist because of a withdrawal: never cancelled or refused by one (spec/protocol.md §6). */
const WITHDRAWAL_EXEMPT_TYPES: readonly string[] = [MessageTypes.CONSENT_WITHDRAWAL, MessageTypes.ERASURE_CONFIRMATION];

const OUTBOX_STATES: readonly OutboxState[] = ['queued', 'delivered', 'rejected', 'cancelled', 'failed'];

/** Rows of expired replay keys deleted per `remember` call, so one call never does unbounded work. */
const REMEMBER_PURGE_BATCH = 256;

// BIGINT columns hold epoch milliseconds, counters and leaf indices, all far below 2^53: read them
// as numbers rather than pg's default strings.
const INT8_OID = 20;
const parseInt8 = (value: string): number => Number(value);
const TYPES: CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pgTypes.getTypeParser(oid, format)) as CustomTypesConfig['getTypeParser'],
};

// SQLSTATE classes and codes meaning "cannot be written now" (PostgreSQL manual, Appendix A):
// connection exceptions, insufficient resources (disk full, too many connections), operator
// intervention (shutdown, statement cancelled), system I/O errors, authentication, missing
// database, read-only standby, lock timeout, serialisation failure and deadlock (both retryable).
const UNAVAILABLE_CLASSES = new Set(['08', '28', '3D', '40', '53', '57', '58']);
const UNAVAILABLE_CODES = new Set(['25006', '25P03', '42501', '55P03', 'XX001', 'XX002']);

/**
 * Errors raised by the driver become ProtocolErrors. Anything that is not a server error (refused
 * or dropped connection, pool timeout, pool closed) means the database cannot be reached. Server
 * messages stay in `cause`: problem details may reach a peer, and host names and SQL are none of
 * its business.
 */
function driverError(error: unknown): ProtocolError {
  if (error instanceof ProtocolError) return error;
  if (error instanceof DatabaseError) {
    const code = error.code ?? '';
    if (UNAVAILABLE_CLASSES.has(code.slice(0, 2)) || UNAVAILABLE_CODES.has(code)) {
      return new ProtocolError('STORE_UNAVAILABLE', undefined, undefined, { cause: error });
    }
    // Data exceptions: input the database cannot hold (a NUL character in text, for instance).
    if (code.startsWith('22')) return new ProtocolError('MALFORMED', 'The store cannot hold this value', undefined, { cause: error });
    return new ProtocolError('INTERNAL', 'The store refused the operation', undefined, { cause: error });
  }
  return new ProtocolError('STORE_UNAVAILABLE', undefined, undefined, { cause: error });
}

function closedError(): ProtocolError {
  return new ProtocolError('STORE_UNAVAILABLE', 'The store is closed');
}

interface Statement {
  name: string;
  text: string;
}

const statements = new Map<string, Statement>();

/**
 * A named prepared statement: parsed and planned once per connection, then only bound and run.
 * The name derives from the text, so one text never gets two names and two texts never share one.
 */
function sql(text: string): Statement {
  let statement = statements.get(text);
  if (!statement) {
    statement = { name: `passerelle_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
    statements.set(text, statement);
  }
  return statement;
}


/** The purposes in first-seen order, each once (what SQLite's union keeps, so both stores agree). */
function distinct(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/** Code-unit order, as SQLite's BINARY collation and PostgreSQL's "C" collation give for ids. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function agreementFromRow(row: Row): AgreementRecord {
  return {
    id: text(row, 'id'),
    version: int(row, 'version'),
    jws: text(row, 'jws'),
    terminations: stringArray(row, 'terminations'),
    registeredAt: text(row, 'registered_at'),
  };
}

// Audit appends

/** Two indices of equal length whose digits all differ, to find where the index sits in a leaf. */
const PROBE_A = 1_111_111_111_111_111;
const PROBE_B = 2_222_222_222_222_222;
const LEAF_PREFIX = Buffer.from([0x00]);

interface PreparedAudit {
  kind: string;
  fields: AuditEvent['fields'];
  fieldsJson: string;
  at: string;
  /** 0x00 || the leaf bytes before the decimal index (RFC 9162 §2.1.1 leaf prefix included). */
  head: Buffer;
  /** The leaf bytes after the index. */
  tail: Buffer;
}

/**
 * Splits the record's canonical leaf data (audit-leaf.ts, the single definition every store and the
 * offline auditor share) around its index, so the server can hash `head || index || tail` once the
 * index is known inside the appending statement. Derived by probing auditLeafData with two indices
 * and checked against both: if the leaf encoding ever stops holding the index exactly once as a
 * plain decimal, this throws instead of producing a different hash.
 */
function prepareAudit(event: AuditEvent): PreparedAudit {
  toMs(event.at, 'audit.at');
  if (typeof event.kind !== 'string' || event.kind.length === 0) throw new ProtocolError('INTERNAL', 'Audit event without kind');
  const fieldsJson = canonicalJson(event.fields);
  const fields = JSON.parse(fieldsJson) as AuditEvent['fields'];
  const record = { kind: event.kind, fields, at: event.at };
  const a = auditLeafData({ ...record, index: PROBE_A });
  const b = auditLeafData({ ...record, index: PROBE_B });
  let start = 0;
  while (start < a.length && a[start] === b[start]) start += 1;
  const digits = String(PROBE_A).length;
  const before = a.slice(0, start);
  const after = a.slice(start + digits);
  if (a !== `${before}${PROBE_A}${after}` || b !== `${before}${PROBE_B}${after}`) {
    throw new ProtocolError('INTERNAL', 'Audit leaf data does not hold the index as one decimal number');
  }
  return {
    ...record,
    fieldsJson,
    head: Buffer.concat([LEAF_PREFIX, Buffer.from(before, 'utf8')]),
    tail: Buffer.from(after, 'utf8'),
  };
}

function auditValues(audit: PreparedAudit): unknown[] {
  return [audit.kind, audit.fieldsJson, audit.at, audit.head, audit.tail];
}

/**
 * CTEs `h` (next index, taken under audit_head's row lock) and `a` (the appended leaf, hashed by the
 * server as base64url(SHA-256(head || index || tail))), with parameters $p … $p+4 from auditValues.
 * `gate`, if given, must hold for the append to happen; it also makes the server run the CTE it
 * names before locking audit_head, so the log's lock is always the last one a statement takes.
 */
function auditCtes(p: number, gate?: string): string {
  return `h AS (
    UPDATE audit_head SET size = size + 1 ${gate === undefined ? '' : `WHERE ${gate}`} RETURNING size - 1 AS idx),
  a AS (
    INSERT INTO audit_log (idx, kind, fields, at, leaf_hash)
    SELECT idx, $${p}, $${p + 1}, $${p + 2},
      translate(encode(sha256($${p + 3}::bytea || convert_to(idx::text, 'UTF8') || $${p + 4}::bytea), 'base64'), '+/=', '-_')
    FROM h
    RETURNING idx, leaf_hash)`;
}

function auditRecord(audit: PreparedAudit, row: Row | undefined): AuditRecord {
  if (!row) throw new ProtocolError('INTERNAL', 'Audit append returned no leaf');
  return { kind: audit.kind, fields: audit.fields, at: audit.at, index: int(row, 'idx'), leafHash: text(row, 'leaf_hash') };
}

// Columns are listed, never `*`: a prepared `SELECT *` fails ("cached plan must not change result
// type") on every instance still running when a newer instance adds a column in a migration.
const PEER_COLUMNS = 'node_id, fingerprints, document, document_version, added_at, updated_at';
const CONSENT_COLUMNS = 'id, controller, subject, jws, expires_at, recorded_at, withdrawn_at, withdrawn_purposes';
const OUTBOX_COLUMNS =
  'id, peer, type, thread_id, consent_id, priority, jwe, digest, jwt, state, attempts, next_attempt_at, expires_at, created_at, updated_at, last_error, receipt, problem, delivered_at';
const INBOX_COLUMNS = 'id, sender, type, thread_id, consent_id, digest, jwe, sd_jwt, jwt, categories, receipt, received_at, erased_at';
const TOKEN_COLUMNS = 'id, hash, role, label, created_at, revoked_at';
const AGREEMENT_SELECT = `SELECT a.id, a.version, a.jws, a.registered_at,
    ARRAY(SELECT t.jws FROM agreement_terminations t WHERE t.agreement_id = a.id ORDER BY t.seq) AS terminations
  FROM agreements a`;

// Statements

const S = {
  putPeer: sql(`INSERT INTO peers (node_id, fingerprints, document, document_version, added_at, updated_at)
    VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (node_id) DO UPDATE SET fingerprints = excluded.fingerprints, document = excluded.document,
      document_version = excluded.document_version, added_at = excluded.added_at, updated_at = excluded.updated_at`),
  getPeer: sql(`SELECT ${PEER_COLUMNS} FROM peers WHERE node_id = $1`),
  listPeers: sql(`SELECT ${PEER_COLUMNS} FROM peers ORDER BY node_id`),

  putAgreement: sql(`INSERT INTO agreements (id, version, jws, registered_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (id) DO UPDATE SET version = excluded.version, jws = excluded.jws, registered_at = excluded.registered_at`),
  addTerminations: sql(`INSERT INTO agreement_terminations (agreement_id, jws, jws_sha256)
    SELECT $1, t.jws, sha256(convert_to(t.jws, 'UTF8')) FROM unnest($2::text[]) WITH ORDINALITY AS t (jws, n) ORDER BY t.n
    ON CONFLICT DO NOTHING`),
  getAgreement: sql(`${AGREEMENT_SELECT} WHERE a.id = $1`),
  listAgreements: sql(`${AGREEMENT_SELECT} ORDER BY a.id`),

  // A withdrawal already recorded survives: earliest withdrawn_at, union of purposes in first-seen order.
  putConsent: sql(`INSERT INTO consents (id, controller, subject, jws, expires_at, recorded_at, recorded_ms, withdrawn_at, withdrawn_purposes)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
    ON CONFLICT (id) DO UPDATE SET controller = excluded.controller, subject = excluded.subject, jws = excluded.jws,
      expires_at = excluded.expires_at, recorded_at = excluded.recorded_at, recorded_ms = excluded.recorded_ms,
      withdrawn_at = COALESCE(consents.withdrawn_at, excluded.withdrawn_at),
      withdrawn_purposes = consents.withdrawn_purposes || ARRAY(
        SELECT p FROM unnest(excluded.withdrawn_purposes) WITH ORDINALITY AS u (p, n)
        WHERE p <> ALL (consents.withdrawn_purposes) ORDER BY u.n)`),
  getConsent: sql(`SELECT ${CONSENT_COLUMNS} FROM consents WHERE id = $1`),
  listConsents: sql(`SELECT ${CONSENT_COLUMNS} FROM consents ORDER BY recorded_ms, id`),
  withdrawWhole: sql('UPDATE consents SET withdrawn_at = COALESCE(withdrawn_at, $2) WHERE id = $1 RETURNING id'),
  withdrawPurposes: sql(`UPDATE consents SET withdrawn_purposes = withdrawn_purposes || ARRAY(
      SELECT p FROM unnest($2::text[]) WITH ORDINALITY AS u (p, n) WHERE p <> ALL (withdrawn_purposes) ORDER BY u.n)
    WHERE id = $1 RETURNING id`),
  // A separate statement from the consent update, so that its snapshot is taken after that update
  // acquired the consent row: every enqueue that passed the consent check before is visible here.
  cancelUnderConsent: sql(`WITH c AS (
      UPDATE outbox SET state = 'cancelled', last_error = 'consent withdrawn', updated_at = $2, lease_owner = NULL, lease_until_ms = NULL
      WHERE consent_id = $1 AND state = 'queued' AND type <> ALL ($3::text[])
      RETURNING id, created_ms),
    ${auditCtes(4, '(SELECT count(*) FROM c) >= 0')}
    SELECT c.id, c.created_ms, (SELECT idx FROM a) AS audit_idx FROM (SELECT 1) AS one LEFT JOIN c ON TRUE`),

  // The share lock on the consent row waits for a withdrawal in progress and then sees its result.
  enqueue: sql(`WITH c AS (SELECT withdrawn_at FROM consents WHERE $19::boolean AND id = $5 FOR SHARE),
    ins AS (
      INSERT INTO outbox (id, peer, type, thread_id, consent_id, priority, jwe, digest, jwt, state, attempts,
        next_attempt_at, next_attempt_ms, expires_at, created_at, created_ms, updated_at, last_error, receipt, problem, delivered_at)
      SELECT $1, $2, $3, $4, $5, $6::bigint, $7, $8, $9, 'queued', 0, $10, $11::bigint, $12, $13, $14::bigint, $13, $15, $16, $17, $18
      WHERE NOT EXISTS (SELECT 1 FROM c WHERE withdrawn_at IS NOT NULL)
      ON CONFLICT (id) DO NOTHING
      RETURNING ${OUTBOX_COLUMNS}),
    ${auditCtes(20, 'EXISTS (SELECT 1 FROM ins)')}
    SELECT ins.*, (SELECT count(*) FROM c WHERE withdrawn_at IS NOT NULL) AS withdrawn,
      EXISTS (SELECT 1 FROM outbox WHERE id = $1) AS existed
    FROM (SELECT 1) AS one LEFT JOIN ins ON TRUE`),
  claimDue: sql(`UPDATE outbox SET lease_owner = $1, lease_until_ms = $2
    WHERE id IN (
      SELECT id FROM outbox
      WHERE state = 'queued' AND next_attempt_ms <= $3 AND (lease_until_ms IS NULL OR lease_until_ms < $3)
      ORDER BY priority, next_attempt_ms, created_ms, id
      LIMIT $4
      FOR UPDATE SKIP LOCKED)
    RETURNING ${OUTBOX_COLUMNS}, next_attempt_ms, created_ms`),
  getOutbox: sql(`SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE id = $1`),
  countOutbox: sql('SELECT state, count(*) AS n FROM outbox GROUP BY state'),
  nextQueuedBelow: sql(`SELECT next_attempt_at FROM outbox WHERE state = 'queued' AND priority < $2 AND peer = $1
    ORDER BY next_attempt_ms, created_ms, id LIMIT 1`),

  acceptInbound: sql(`WITH ins AS (
      INSERT INTO inbox (id, sender, type, thread_id, consent_id, digest, jwe, sd_jwt, jwt, categories, receipt, received_at, received_ms, erased_at)
      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, '', $11, $12, $13)
      ON CONFLICT (id) DO NOTHING
      RETURNING id),
    ${auditCtes(14, 'EXISTS (SELECT 1 FROM ins)')}
    SELECT idx, leaf_hash FROM a`),
  setReceipt: sql(`UPDATE inbox SET receipt = $2 WHERE id = $1 RETURNING ${INBOX_COLUMNS}`),
  getInbox: sql(`SELECT ${INBOX_COLUMNS} FROM inbox WHERE id = $1`),
  eraseInbound: sql(`WITH e AS (
      UPDATE inbox SET jwe = NULL, sd_jwt = NULL, erased_at = $2 WHERE consent_id = $1 AND erased_at IS NULL
      RETURNING id, received_ms),
    ${auditCtes(3, '(SELECT count(*) FROM e) >= 0')}
    SELECT e.id, e.received_ms, (SELECT idx FROM a) AS audit_idx FROM (SELECT 1) AS one LEFT JOIN e ON TRUE`),

  appendAudit: sql(`WITH ${auditCtes(1)} SELECT idx, leaf_hash FROM a`),
  readAudit: sql('SELECT idx, kind, fields, at, leaf_hash FROM audit_log WHERE idx >= $1 AND idx < $2 ORDER BY idx'),
  auditSize: sql('SELECT size FROM audit_head'),

  // Run after LOCK TABLE audit_checkpoints (putCheckpoint): checkpoints signed by several instances
  // are stored one at a time, each only if it extends the latest.
  putCheckpoint: sql(`INSERT INTO audit_checkpoints (size, root, at, at_ms, jws)
    SELECT $1::bigint, $2::text, $3::text, $4::bigint, $5::text
    WHERE NOT EXISTS (SELECT 1 FROM audit_checkpoints WHERE size >= $1::bigint OR at_ms > $4::bigint)`),
  listCheckpoints: sql('SELECT size, root, at, jws FROM audit_checkpoints WHERE size > $1 ORDER BY size LIMIT $2'),
  latestCheckpoint: sql('SELECT size, root, at, jws FROM audit_checkpoints ORDER BY size DESC LIMIT 1'),
  putNodeDocument: sql('INSERT INTO node_documents (node_id, version, jws) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING'),
  listNodeDocuments: sql('SELECT node_id, version, jws FROM node_documents WHERE node_id = $1 ORDER BY version'),

  putToken: sql(`INSERT INTO tokens (id, hash, role, label, created_at, created_ms, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
    ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, role = excluded.role, label = excluded.label,
      created_at = excluded.created_at, created_ms = excluded.created_ms, revoked_at = excluded.revoked_at`),
  findToken: sql(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = $1`),
  listTokens: sql(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created_ms, id`),

  // Expired rows of other keys are purged a batch at a time (skipping rows another instance is
  // purging); an expired row of this key counts as absent and is overwritten.
  remember: sql(`WITH purge AS (
      DELETE FROM remembered_keys WHERE key_sha256 IN (
        SELECT key_sha256 FROM remembered_keys WHERE expires_ms <= $3 AND key_sha256 <> $1
        ORDER BY expires_ms LIMIT ${REMEMBER_PURGE_BATCH} FOR UPDATE SKIP LOCKED))
    INSERT INTO remembered_keys (key_sha256, expires_ms) VALUES ($1, $2)
    ON CONFLICT (key_sha256) DO UPDATE SET expires_ms = excluded.expires_ms WHERE remembered_keys.expires_ms <= $3
    RETURNING 1`),
} as const;

type CompleteOutcome = Parameters<Store['complete']>[2];

/** The SET clause of each outcome (after $1 id, $2 owner, $3 at) and its extra parameters. */
function outcomeUpdate(outcome: CompleteOutcome, nextAttemptMs: number | undefined): { set: string; values: unknown[] } {
  switch (outcome.state) {
    case 'delivered':
      return { set: `state = 'delivered', attempts = attempts + 1, receipt = $4, delivered_at = $3`, values: [outcome.receipt] };
    case 'rejected':
      return { set: `state = 'rejected', attempts = attempts + 1, problem = $4, receipt = $5`, values: [outcome.problem, outcome.receipt ?? null] };
    case 'failed':
      return { set: `state = 'failed', attempts = attempts + 1, last_error = $4`, values: [outcome.error] };
    case 'cancelled':
      return { set: `state = 'cancelled', last_error = $4`, values: [outcome.error] };
    case 'queued':
      return {
        set: 'attempts = attempts + 1, last_error = $4, next_attempt_at = $5, next_attempt_ms = $6',
        values: [outcome.error, outcome.nextAttemptAt, nextAttemptMs],
      };
    default:
      throw new ProtocolError('INTERNAL', 'Unknown outbox outcome');
  }
}

/**
 * Terminal states are final, and a lease taken over by another owner means its attempt wins. With
 * an audit event, the update and the append are one statement (so one transaction).
 */
function completeStatement(set: string, extra: number, audited: boolean): Statement {
  const update = `UPDATE outbox SET ${set}, lease_owner = NULL, lease_until_ms = NULL, updated_at = $3
    WHERE id = $1 AND state = 'queued' AND lease_owner = $2`;
  if (!audited) return sql(update);
  return sql(`WITH u AS (${update} RETURNING id),
    ${auditCtes(4 + extra, 'EXISTS (SELECT 1 FROM u)')}
    SELECT idx FROM a`);
}

/** Column names come from the code, never from callers; values are bound. */
function filteredQuery(
  table: string,
  columns: string,
  where: readonly [string, unknown][],
  orderBy: string,
  limit: number | undefined,
): { statement: Statement; values: unknown[] } {
  const values = where.map(([, value]) => value);
  let text = `SELECT ${columns} FROM ${table}`;
  if (where.length > 0) text += ` WHERE ${where.map(([column], i) => `${column} = $${i + 1}`).join(' AND ')}`;
  text += ` ORDER BY ${orderBy}`;
  if (limit !== undefined) {
    checkCount(limit, 'limit', 0);
    values.push(limit);
    text += ` LIMIT $${values.length}`;
  }
  return { statement: sql(text), values };
}

/**
 * Takes the store's own parameters off a connection URL: `schema` (pg has no use for it) and
 * `options` (pg would let the URL's value replace the session settings the store relies on, so the
 * two are merged instead).
 */
export function splitStoreUrl(url: string): { connectionString: string; schema?: string; options?: string } {
  const at = url.indexOf('?');
  if (at < 0) return { connectionString: url };
  const params = new URLSearchParams(url.slice(at + 1));
  const schema = params.get('schema') ?? undefined;
  const options = params.get('options') ?? undefined;
  params.delete('schema');
  params.delete('options');
  const rest = params.toString();
  return compact({ connectionString: rest === '' ? url.slice(0, at) : `${url.slice(0, at)}?${rest}`, schema, options });
}

export class PostgresStore implements Store {
  readonly kind = 'postgres' as const;
  /** The schema holding this node's tables, if one was chosen. */
  readonly schema: string | undefined;
  readonly #pool: Pool;
  readonly #migrations: readonly PostgresMigration[] | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;
  #ended: Promise<void> | undefined;

  /** Creates the pool without connecting or migrating; use {@link openPostgresStore}. */
  constructor(url: string, options: PostgresStoreOptions = {}) {
    const { connectionString, schema: fromUrl, options: urlOptions } = splitStoreUrl(url);
    const schema = options.schema ?? fromUrl;
    this.schema = schema === undefined ? undefined : checkSchemaName(schema);
    const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE;
    checkCount(poolSize, 'pool size', 1);
    const connectionTimeout = options.connectionTimeoutMs ?? DEFAULT_CONNECTION_TIMEOUT_MS;
    const lockTimeout = options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
    const idleTimeout = options.idleInTransactionTimeoutMs ?? DEFAULT_IDLE_IN_TRANSACTION_TIMEOUT_MS;
    checkCount(connectionTimeout, 'connection timeout', 1);
    checkCount(lockTimeout, 'lock timeout', 0);
    checkCount(idleTimeout, 'idle-in-transaction timeout', 0);
    this.#migrations = options.migrations;

    // Session settings travel in the startup packet, so they hold before the first statement on
    // every connection (no racing a SET issued from a 'connect' handler, no extra round trip).
    // The store's reasoning assumes READ COMMITTED: each statement sees what committed before it.
    const settings = urlOptions === undefined ? [] : [urlOptions];
    settings.push('-c default_transaction_isolation=read\\ committed');
    if (this.schema !== undefined) settings.push(`-c search_path=${this.schema}`);
    this.#pool = new Pool({
      application_name: 'passerelle-node',
      // Notices a silently dropped database connection instead of waiting on it for hours.
      keepAlive: true,
      ...options.pool,
      connectionString,
      max: poolSize,
      connectionTimeoutMillis: connectionTimeout,
      lock_timeout: lockTimeout,
      idle_in_transaction_session_timeout: idleTimeout,
      options: settings.join(' '),
      types: TYPES,
    });
    // An idle connection dropped by the server is discarded by the pool; the next operation opens a
    // new one or reports STORE_UNAVAILABLE. Without a listener the event would end the process.
    this.#pool.on('error', () => undefined);
  }

  async migrate(): Promise<void> {
    await this.#op(async () => {
      const client = await this.#connect();
      let broken: Error | undefined;
      const onError = (error: Error): void => {
        broken = error;
      };
      client.on('error', onError);
      try {
        await applyPostgresMigrations(client, this.schema, this.#migrations);
      } catch (error) {
        throw driverError(error);
      } finally {
        client.removeListener('error', onError);
        client.release(broken);
      }
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Operations already started run to completion; calls made after close() reject (#op).
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
    this.#ended ??= this.#pool.end().catch(() => undefined);
    await this.#ended;
  }

  // Trust store

  async putPeer(peer: PeerRecord): Promise<void> {
    await this.#query(S.putPeer, [peer.nodeId, peer.fingerprints, peer.document ?? null, peer.documentVersion ?? null, peer.addedAt, peer.updatedAt]);
  }

  async getPeer(nodeId: string): Promise<PeerRecord | undefined> {
    const row = (await this.#query(S.getPeer, [nodeId])).rows[0];
    return row ? peerFromRow(row) : undefined;
  }

  async listPeers(): Promise<PeerRecord[]> {
    return (await this.#query(S.listPeers, [])).rows.map(peerFromRow);
  }

  // Agreements and consents

  async putAgreement(record: AgreementRecord): Promise<void> {
    if (record.terminations.length === 0) {
      await this.#query(S.putAgreement, [record.id, record.version, record.jws, record.registeredAt]);
      return;
    }
    await this.#transaction(async (client) => {
      await this.#query(S.putAgreement, [record.id, record.version, record.jws, record.registeredAt], client);
      await this.#query(S.addTerminations, [record.id, record.terminations], client);
    });
  }

  async getAgreement(id: string): Promise<AgreementRecord | undefined> {
    const row = (await this.#query(S.getAgreement, [id])).rows[0];
    return row ? agreementFromRow(row) : undefined;
  }

  async listAgreements(): Promise<AgreementRecord[]> {
    return (await this.#query(S.listAgreements, [])).rows.map(agreementFromRow);
  }

  async addTermination(agreementId: string, termination: string): Promise<void> {
    try {
      await this.#query(S.addTerminations, [agreementId, [termination]]);
    } catch (error) {
      // The foreign key is the existence check, in the same statement as the insert.
      if (error instanceof ProtocolError && error.cause instanceof DatabaseError && error.cause.code === '23503') {
        throw new ProtocolError('NOT_FOUND', 'No agreement with this id');
      }
      throw error;
    }
  }

  async putConsent(record: ConsentRecordRow): Promise<void> {
    const recordedMs = toMs(record.recordedAt, 'recordedAt');
    if (record.withdrawnAt !== undefined) toMs(record.withdrawnAt, 'withdrawnAt');
    await this.#query(S.putConsent, [
      record.id,
      record.controller,
      record.subject,
      record.jws,
      record.expiresAt,
      record.recordedAt,
      recordedMs,
      record.withdrawnAt ?? null,
      distinct(record.withdrawnPurposes),
    ]);
  }

  async getConsent(id: string): Promise<ConsentRecordRow | undefined> {
    const row = (await this.#query(S.getConsent, [id])).rows[0];
    return row ? consentFromRow(row) : undefined;
  }

  async listConsents(): Promise<ConsentRecordRow[]> {
    return (await this.#query(S.listConsents, [])).rows.map(consentFromRow);
  }

  async withdrawConsent(id: string, purposes: string[] | undefined, at: string, audit: AuditEvent): Promise<string[]> {
    toMs(at, 'withdrawal time');
    const prepared = prepareAudit(audit);
    return this.#transaction(async (client) => {
      const updated =
        purposes === undefined
          ? await this.#query(S.withdrawWhole, [id, at], client)
          : await this.#query(S.withdrawPurposes, [id, distinct(purposes)], client);
      if (updated.rowCount === 0) throw new ProtocolError('NOT_FOUND', 'No consent with this id');
      const result = await this.#query(S.cancelUnderConsent, [id, at, WITHDRAWAL_EXEMPT_TYPES, ...auditValues(prepared)], client);
      if (result.rows[0]?.['audit_idx'] === null) throw new ProtocolError('INTERNAL', 'Audit append returned no leaf');
      return result.rows
        .filter((row) => row['id'] !== null)
        .sort((x, y) => int(x, 'created_ms') - int(y, 'created_ms') || compareIds(text(x, 'id'), text(y, 'id')))
        .map((row) => text(row, 'id'));
    });
  }

  // Outbox

  async enqueue(entry: NewOutboxEntry, audit: AuditEvent): Promise<OutboxEntry> {
    const createdMs = toMs(audit.at, 'audit.at');
    const nextAttemptAt = entry.nextAttemptAt ?? audit.at;
    const nextAttemptMs = toMs(nextAttemptAt, 'nextAttemptAt');
    toMs(entry.expiresAt, 'expiresAt');
    checkCount(entry.priority, 'priority', 0);
    const prepared = prepareAudit(audit);
    const checkConsent = entry.consentId !== undefined && !WITHDRAWAL_EXEMPT_TYPES.includes(entry.type);
    const result = await this.#query(S.enqueue, [
      entry.id,
      entry.peer,
      entry.type,
      entry.threadId,
      entry.consentId ?? null,
      entry.priority,
      entry.jwe,
      entry.digest,
      entry.jwt,
      nextAttemptAt,
      nextAttemptMs,
      entry.expiresAt,
      audit.at,
      createdMs,
      entry.lastError ?? null,
      entry.receipt ?? null,
      entry.problem ?? null,
      entry.deliveredAt ?? null,
      checkConsent,
      ...auditValues(prepared),
    ]);
    const row = result.rows[0];
    if (!row) throw new ProtocolError('INTERNAL', 'Enqueue returned no row');
    if (row['id'] === null) {
      if (row['existed'] === true) throw new ProtocolError('INTERNAL', 'An outbox entry with this id already exists');
      if (int(row, 'withdrawn') > 0) throw new ProtocolError('CONSENT_WITHDRAWN');
      throw new ProtocolError('INTERNAL', 'An outbox entry with this id already exists');
    }
    return outboxFromRow(row);
  }

  async claimDue(options: ClaimOptions): Promise<OutboxEntry[]> {
    const now = toMs(options.now, 'now');
    checkCount(options.limit, 'limit', 0);
    checkCount(options.leaseMs, 'lease duration', 1);
    if (options.limit === 0) return [];
    // One statement, so one transaction: the rows are locked (skipping any another instance is
    // claiming right now), their lease written and the lock released at commit.
    const result = await this.#query(S.claimDue, [options.owner, now + options.leaseMs, now, options.limit]);
    return result.rows
      .sort(
        (x, y) =>
          int(x, 'priority') - int(y, 'priority') ||
          int(x, 'next_attempt_ms') - int(y, 'next_attempt_ms') ||
          int(x, 'created_ms') - int(y, 'created_ms') ||
          compareIds(text(x, 'id'), text(y, 'id')),
      )
      .map(outboxFromRow);
  }

  async complete(id: string, owner: string, outcome: CompleteOutcome, audit?: AuditEvent): Promise<boolean> {
    toMs(outcome.at, 'outcome.at');
    const nextAttemptMs = outcome.state === 'queued' ? toMs(outcome.nextAttemptAt, 'nextAttemptAt') : undefined;
    const { set, values } = outcomeUpdate(outcome, nextAttemptMs);
    const prepared = audit === undefined ? undefined : prepareAudit(audit);
    const statement = completeStatement(set, values.length, prepared !== undefined);
    const result = await this.#query(statement, [id, owner, outcome.at, ...values, ...(prepared ? auditValues(prepared) : [])]);
    return result.rowCount === 1;
  }

  async getOutbox(id: string): Promise<OutboxEntry | undefined> {
    const row = (await this.#query(S.getOutbox, [id])).rows[0];
    return row ? outboxFromRow(row) : undefined;
  }

  async listOutbox(
    filter: { state?: OutboxState; peer?: string; consentId?: string; threadId?: string; limit?: number } = {},
  ): Promise<OutboxEntry[]> {
    const where: [string, unknown][] = [];
    if (filter.state !== undefined) where.push(['state', filter.state]);
    if (filter.peer !== undefined) where.push(['peer', filter.peer]);
    if (filter.consentId !== undefined) where.push(['consent_id', filter.consentId]);
    if (filter.threadId !== undefined) where.push(['thread_id', filter.threadId]);
    const { statement, values } = filteredQuery('outbox', OUTBOX_COLUMNS, where, 'created_ms, id', filter.limit);
    return (await this.#query(statement, values)).rows.map(outboxFromRow);
  }

  async countOutboxByState(): Promise<Record<OutboxState, number>> {
    const counts = Object.fromEntries(OUTBOX_STATES.map((s) => [s, 0])) as Record<OutboxState, number>;
    for (const row of (await this.#query(S.countOutbox, [])).rows) counts[text(row, 'state') as OutboxState] = int(row, 'n');
    return counts;
  }

  async nextQueuedBelow(peer: string, priorityBelow: number): Promise<string | undefined> {
    const row = (await this.#query(S.nextQueuedBelow, [peer, priorityBelow])).rows[0];
    return row ? text(row, 'next_attempt_at') : undefined;
  }

  // Inbox

  async acceptInbound(
    entry: Omit<InboxEntry, 'receipt'>,
    audit: AuditEvent,
    makeReceipt: (auditIndex: number) => Promise<string>,
  ): Promise<AcceptResult> {
    const receivedMs = toMs(entry.receivedAt, 'receivedAt');
    const prepared = prepareAudit(audit);
    return this.#transaction(async (client): Promise<AcceptResult> => {
      // The row goes in first with an empty receipt that never commits (the receipt is set below,
      // or everything rolls back). Its primary key is the exactly-once guard: a copy arriving
      // concurrently, on this instance or another, waits on the uncommitted row, and once it
      // commits finds it and takes the path below with the original receipt.
      const inserted = await this.#query(
        S.acceptInbound,
        [
          entry.id,
          entry.sender,
          entry.type,
          entry.threadId,
          entry.consentId ?? null,
          entry.digest,
          entry.jwe ?? null,
          entry.sdJwt ?? null,
          entry.jwt,
          entry.categories,
          entry.receivedAt,
          receivedMs,
          entry.erasedAt ?? null,
          ...auditValues(prepared),
        ],
        client,
      );
      const leaf = inserted.rows[0];
      if (!leaf) {
        // A new statement, so a new snapshot: the committed original is visible.
        const existing = (await this.#query(S.getInbox, [entry.id], client)).rows[0];
        if (!existing) throw new ProtocolError('INTERNAL', 'Inbound message neither stored nor found');
        const stored = inboxFromRow(existing);
        return { status: stored.digest === entry.digest ? 'duplicate' : 'conflict', entry: stored };
      }
      // Awaited inside the transaction: if signing fails, the audit leaf and the row roll back with
      // everything else and no receipt for an unstored message can exist.
      const receipt = await makeReceipt(int(leaf, 'idx'));
      if (typeof receipt !== 'string' || receipt.length === 0) throw new ProtocolError('INTERNAL', 'makeReceipt returned no receipt');
      const stored = (await this.#query(S.setReceipt, [entry.id, receipt], client)).rows[0];
      if (!stored) throw new ProtocolError('INTERNAL', 'Inbound message vanished after insert');
      return { status: 'stored', entry: inboxFromRow(stored) };
    });
  }

  async getInbox(id: string): Promise<InboxEntry | undefined> {
    const row = (await this.#query(S.getInbox, [id])).rows[0];
    return row ? inboxFromRow(row) : undefined;
  }

  async listInbox(filter: { sender?: string; threadId?: string; consentId?: string; limit?: number } = {}): Promise<InboxEntry[]> {
    const where: [string, unknown][] = [];
    if (filter.sender !== undefined) where.push(['sender', filter.sender]);
    if (filter.threadId !== undefined) where.push(['thread_id', filter.threadId]);
    if (filter.consentId !== undefined) where.push(['consent_id', filter.consentId]);
    const { statement, values } = filteredQuery('inbox', INBOX_COLUMNS, where, 'received_ms, id', filter.limit);
    return (await this.#query(statement, values)).rows.map(inboxFromRow);
  }

  /**
   * The old row versions holding the erased values are dead tuples until autovacuum reclaims them;
   * like any PostgreSQL data, they are protected by the operator's disk encryption and backups
   * policy, not by this store.
   */
  async eraseInboundByConsent(consentId: string, at: string, audit: AuditEvent): Promise<string[]> {
    toMs(at, 'erasure time');
    const prepared = prepareAudit(audit);
    const result = await this.#query(S.eraseInbound, [consentId, at, ...auditValues(prepared)]);
    if (result.rows[0]?.['audit_idx'] === null) throw new ProtocolError('INTERNAL', 'Audit append returned no leaf');
    return result.rows
      .filter((row) => row['id'] !== null)
      .sort((x, y) => int(x, 'received_ms') - int(y, 'received_ms') || compareIds(text(x, 'id'), text(y, 'id')))
      .map((row) => text(row, 'id'));
  }

  // Audit log

  async appendAudit(event: AuditEvent): Promise<AuditRecord> {
    const prepared = prepareAudit(event);
    return auditRecord(prepared, (await this.#query(S.appendAudit, auditValues(prepared))).rows[0]);
  }

  async readAudit(from: number, to: number): Promise<AuditRecord[]> {
    checkCount(from, 'audit range start', 0);
    checkCount(to, 'audit range end', 0);
    return (await this.#query(S.readAudit, [from, to])).rows.map(auditFromRow);
  }

  async auditSize(): Promise<number> {
    const row = (await this.#query(S.auditSize, [])).rows[0];
    if (!row) throw new ProtocolError('INTERNAL', 'The audit head is missing');
    return int(row, 'size');
  }

  async putCheckpoint(checkpoint: CheckpointRecord): Promise<boolean> {
    checkCount(checkpoint.size, 'checkpoint size', 0);
    const atMs = toMs(checkpoint.at, 'checkpoint.at');
    return this.#transaction(async (client) => {
      // EXCLUSIVE lets readers through but queues other writers, so the check and the insert are
      // one decision across instances.
      await this.#send(client, 'LOCK TABLE audit_checkpoints IN EXCLUSIVE MODE');
      const result = await this.#query(S.putCheckpoint, [checkpoint.size, checkpoint.root, checkpoint.at, atMs, checkpoint.jws], client);
      return result.rowCount === 1;
    });
  }

  async listCheckpoints(afterSize = -1, limit = 1000): Promise<CheckpointRecord[]> {
    checkCount(afterSize + 1, 'checkpoint size', 0);
    checkCount(limit, 'checkpoint limit', 1);
    return (await this.#query(S.listCheckpoints, [afterSize, limit])).rows.map(checkpointFromRow);
  }

  async latestCheckpoint(): Promise<CheckpointRecord | undefined> {
    const row = (await this.#query(S.latestCheckpoint, [])).rows[0];
    return row ? checkpointFromRow(row) : undefined;
  }

  async putNodeDocument(record: NodeDocumentRecord): Promise<void> {
    checkCount(record.version, 'document version', 1);
    await this.#query(S.putNodeDocument, [record.nodeId, record.version, record.jws]);
  }

  async listNodeDocuments(nodeId: string): Promise<NodeDocumentRecord[]> {
    return (await this.#query(S.listNodeDocuments, [nodeId])).rows.map((row) => ({ nodeId: text(row, 'node_id'), version: int(row, 'version'), jws: text(row, 'jws') }));
  }

  // Local API tokens

  async putToken(token: TokenRecord): Promise<void> {
    const createdMs = toMs(token.createdAt, 'createdAt');
    await this.#query(S.putToken, [token.id, token.hash, token.role, token.label, token.createdAt, createdMs, token.revokedAt ?? null]);
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | undefined> {
    const row = (await this.#query(S.findToken, [hash])).rows[0];
    return row ? tokenFromRow(row) : undefined;
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (await this.#query(S.listTokens, [])).rows.map(tokenFromRow);
  }

  // Replay protection

  async remember(key: string, expiresAt: string): Promise<boolean> {
    const expiresMs = toMs(expiresAt, 'expiresAt');
    const digest = createHash('sha256').update(key, 'utf8').digest();
    const result = await this.#query(S.remember, [digest, expiresMs, Date.now()]);
    return result.rowCount === 1;
  }

  // Internals

  /** Counts the operation in flight for close(), and refuses it once the store is closed. */
  async #op<T>(fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw closedError();
    const running = fn();
    this.#inFlight.add(running);
    try {
      return await running;
    } finally {
      this.#inFlight.delete(running);
    }
  }

  async #connect(): Promise<PoolClient> {
    try {
      return await this.#pool.connect();
    } catch (error) {
      throw driverError(error);
    }
  }

  /** One statement on a pooled connection (its own transaction), or on `client` inside one. */
  async #query<R extends QueryResultRow = Row>(statement: Statement, values: unknown[], client?: PoolClient): Promise<QueryResult<R>> {
    if (client) return this.#send<R>(client, statement, values);
    return this.#op(() => this.#send<R>(this.#pool, statement, values));
  }

  async #send<R extends QueryResultRow = Row>(db: Pool | PoolClient, statement: Statement | string, values: unknown[] = []): Promise<QueryResult<R>> {
    try {
      if (typeof statement === 'string') return await db.query<R>(statement);
      return await db.query<R>({ name: statement.name, text: statement.text, values });
    } catch (error) {
      throw driverError(error);
    }
  }

  /**
   * Runs `fn` in one transaction on one connection. Any throw rolls everything back; errors of the
   * caller's own (a failing makeReceipt) pass through unchanged. A connection that failed is
   * destroyed rather than returned to the pool.
   */
  async #transaction<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    return this.#op(async () => {
      const client = await this.#connect();
      let broken: Error | undefined;
      // A connection lost while no query is running (during makeReceipt) is reported as an event;
      // unheard, it would end the process. The next query on it then fails and rolls back.
      const onError = (error: Error): void => {
        broken = error;
      };
      client.on('error', onError);
      try {
        await this.#send(client, 'BEGIN');
        const result = await fn(client);
        await this.#send(client, 'COMMIT');
        return result;
      } catch (error) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackError) {
          broken ??= rollbackError instanceof Error ? rollbackError : new Error('ROLLBACK failed');
        }
        throw error;
      } finally {
        client.removeListener('error', onError);
        client.release(broken);
      }
    });
  }
}

/** Opens a pool on `url` (`postgres://…`, optionally `?schema=name`) and applies pending migrations. */
export async function openPostgresStore(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
  const store = new PostgresStore(url, options);
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

/**
 * The embedded store (spec/node.md §Store): one SQLite file per node through Node's built-in
 * `node:sqlite`, so there is no native addon to compile on modest hardware.
 *
 * Concurrency model. `DatabaseSync` is synchronous, but `acceptInbound` must await the receipt
 * signature before it stores the message and its audit leaf (the receipt names the leaf index, and
 * both commit together). Every write transaction therefore runs under an async mutex that spans
 * BEGIN IMMEDIATE … COMMIT/ROLLBACK, so no other write can interleave with the awaited work on the
 * same connection. Writes requested together share one commit, each in its own savepoint (group
 * commit, see #write); the receipts of consecutive acceptances in a group are signed side by side
 * (#commitQueued), and the store syncs the log itself, off the event loop, before answering
 * (#durableUpTo): durability costs one fdatasync per group instead of one blocking fsync per
 * write. Reads use a second, read-only connection: in WAL mode it sees only committed data, never
 * the half-done transaction of an `acceptInbound` that is waiting for its signature. Other
 * processes on the same file are serialised by SQLite's own lock (BEGIN IMMEDIATE plus
 * busy_timeout), which is what makes outbox leases safe across processes.
 */
import { DatabaseSync } from 'node:sqlite';
import { open as openFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setImmediate as scheduleImmediate } from 'node:timers';
import type { SQLInputValue, StatementSync } from 'node:sqlite';
import { MessageTypes, ProtocolError } from '@passerelle/protocol';
import { auditLeafHash, canonicalJson } from './audit-leaf.js';
import { auditFromRow, checkCount, checkpointFromRow, consentFromRow, inboxFromRow, int, newOutboxRecord, optText, outboxFromRow, peerFromRow, storedInboxRecord, stringArray, text, toMs, tokenFromRow } from './rows.js';
import { TARGET_FRAMES_PER_CHECKPOINT, WalCheckpointer } from './sqlite-checkpointer.js';
import { applySqliteMigrations } from './sqlite-migrations.js';
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

export interface SqliteStoreOptions {
  /**
   * Opens both connections read-only (inspection, audit export next to a running node). Reads
   * work; every write rejects with STORE_UNAVAILABLE. The schema must already be current.
   */
  readOnly?: boolean;
  /**
   * How long a write waits for another process's lock (a CLI command on the same file) before
   * STORE_UNAVAILABLE. `DatabaseSync` waits synchronously, stalling the event loop meanwhile, so
   * this stays short; several node instances belong on PostgreSQL, not on one SQLite file.
   */
  busyTimeoutMs?: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 2_000;

/** Messages that exist because of a withdrawal: never cancelled or refused by one (spec/protocol.md §6). */
const WITHDRAWAL_EXEMPT_TYPES: readonly string[] = [MessageTypes.CONSENT_WITHDRAWAL, MessageTypes.ERASURE_CONFIRMATION];

const OUTBOX_STATES: readonly OutboxState[] = ['queued', 'delivered', 'rejected', 'cancelled', 'failed'];

/** Rows of expired replay keys deleted per `remember` call, so one call never does unbounded work. */
const REMEMBER_PURGE_BATCH = 256;

// SQLite primary result codes (https://sqlite.org/rescode.html) meaning "cannot be written now".
const SQLITE_PERM = 3;
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;
const SQLITE_READONLY = 8;
const SQLITE_IOERR = 10;
const SQLITE_CORRUPT = 11;
const SQLITE_FULL = 13;
const SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26;
const UNAVAILABLE_CODES = new Set([
  SQLITE_PERM,
  SQLITE_BUSY,
  SQLITE_LOCKED,
  SQLITE_READONLY,
  SQLITE_IOERR,
  SQLITE_CORRUPT,
  SQLITE_FULL,
  SQLITE_CANTOPEN,
  SQLITE_NOTADB,
]);

interface SqliteError extends Error {
  code: 'ERR_SQLITE_ERROR';
  errcode: number;
  errstr: string;
}

function isSqliteError(error: unknown): error is SqliteError {
  return error instanceof Error && (error as Partial<SqliteError>).code === 'ERR_SQLITE_ERROR';
}

/**
 * Storage failures become ProtocolErrors; anything else (a ProtocolError raised on purpose, or an
 * error thrown by a caller's `makeReceipt`) passes through unchanged. SQLite's message stays in
 * `cause` only: problem details may reach a peer, and file paths are none of its business.
 */
function toStoreError(error: unknown): unknown {
  if (error instanceof ProtocolError) return error;
  if (isSqliteError(error)) {
    const primary = error.errcode & 0xff;
    if (UNAVAILABLE_CODES.has(primary)) return new ProtocolError('STORE_UNAVAILABLE', undefined, undefined, { cause: error });
    return new ProtocolError('INTERNAL', 'The store refused the operation', undefined, { cause: error });
  }
  if (error instanceof Error && (error as { code?: unknown }).code === 'ERR_INVALID_STATE') {
    return new ProtocolError('STORE_UNAVAILABLE', 'The store is closed', undefined, { cause: error });
  }
  return error;
}

/** Most writes one group commit joins, so that a long queue still reports progress in steps. */
const MAX_GROUP_COMMIT = 64;

interface QueuedWrite {
  fn: (db: DatabaseSync) => unknown;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
  /** The write may answer with a SignedWrite (acceptInbound), whose signature can overlap other such writes'. */
  signs: boolean;
}

const SIGNED = Symbol('signed write');

/**
 * What a signing write (acceptInbound) returns when there is something to store: the signature of
 * a document that names the audit leaf the write is about to append (the receipt), and the rest of
 * the write, run in the same transaction once the signature is made. The write's first part only
 * reads, so the group commit can start the signatures of consecutive signing writes together,
 * each told the leaf index it will get, and finish them in queue order: a busy inbox signs its
 * receipts side by side on the thread pool instead of one after another inside the transaction.
 */
interface SignedWrite<T> {
  readonly [SIGNED]: true;
  /** Two writes with one key (two copies of one message) are never signed in the same batch. */
  readonly key: string;
  sign(auditIndex: number): Promise<string>;
  /** Appends the audit leaf, which must get `auditIndex`, and writes the rest. */
  finish(db: DatabaseSync, auditIndex: number, signature: string): T;
}

function isSignedWrite(value: unknown): value is SignedWrite<unknown> {
  return typeof value === 'object' && value !== null && SIGNED in value;
}

type Settlement<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** Attaches the handlers at once: a signature that fails before the batch awaits it is no unhandled rejection. */
function settle<T>(start: () => Promise<T>): Promise<Settlement<T>> {
  try {
    return start().then(
      (value) => ({ ok: true, value }),
      (error: unknown) => ({ ok: false, error }),
    );
  } catch (error) {
    return Promise.resolve({ ok: false, error });
  }
}

interface Signing {
  write: QueuedWrite;
  signed: SignedWrite<unknown>;
  auditIndex: number;
  signature: Promise<Settlement<string>>;
}

/** FIFO async mutex: each holder runs to completion (including its awaits) before the next starts. */
class AsyncMutex {
  #tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => T | Promise<T>): Promise<T> {
    const previous = this.#tail;
    let release!: () => void;
    this.#tail = new Promise<void>((resolve) => {
      release = resolve;
    });
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}


function unionPurposes(existing: readonly string[], added: readonly string[]): string[] {
  const out = [...existing];
  for (const p of added) if (!out.includes(p)) out.push(p);
  return out;
}

/** Column names come from the code, never from callers; values are bound. */
function filteredQuery(
  table: string,
  where: readonly [string, SQLInputValue][],
  orderBy: string,
  limit: number | undefined,
): { sql: string; params: SQLInputValue[] } {
  const params = where.map(([, value]) => value);
  let sql = `SELECT * FROM ${table}`;
  if (where.length > 0) sql += ` WHERE ${where.map(([condition]) => condition).join(' AND ')}`;
  sql += ` ORDER BY ${orderBy}`;
  if (limit !== undefined) {
    checkCount(limit, 'limit', 0);
    sql += ' LIMIT ?';
    params.push(limit);
  }
  return { sql, params };
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  readonly readOnly: boolean;
  readonly #writer: DatabaseSync;
  readonly #reader: DatabaseSync;
  readonly #statements = new Map<DatabaseSync, Map<string, StatementSync>>();
  readonly #mutex = new AsyncMutex();
  readonly #busyTimeoutMs: number;
  /** Write transactions waiting for the next group commit (#write). */
  readonly #queued: QueuedWrite[] = [];
  #group: Promise<void> = Promise.resolve();
  #groupScheduled = false;
  /** Whether commits must be followed by our own sync of the log (file databases, see the constructor). */
  readonly #syncsItself: boolean = false;
  #wal: FileHandle | undefined;
  /** Commits of this store that changed something, counted; and how many of them are known to be on disk. */
  #committed = 0;
  #durable = 0;
  /** The sync in progress or last finished; the next one starts after it. */
  #syncTail: Promise<void> = Promise.resolve();
  /** The sync in progress and the count of commits it covers. */
  #syncing: { covers: number; done: Promise<void> } | undefined;
  /** A sync requested but not yet started: later callers share it. */
  #syncNext: Promise<void> | undefined;
  /** Set when a sync of the log failed: what was committed may not be on disk, so nothing more is accepted. */
  #syncFailure: unknown;
  #closed = false;
  /** Checkpoints of the log on a thread of their own (sqlite-checkpointer.ts); file databases only. */
  readonly #checkpointer: WalCheckpointer | undefined;

  /** Opens the connections without migrating; use {@link openSqliteStore}. */
  constructor(path: string, options: SqliteStoreOptions = {}) {
    this.path = path;
    this.readOnly = options.readOnly ?? false;
    const timeout = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    checkCount(timeout, 'busy timeout', 0);
    this.#busyTimeoutMs = timeout;
    const inMemory = path === ':memory:';
    let writer: DatabaseSync | undefined;
    let reader: DatabaseSync | undefined;
    try {
      writer = new DatabaseSync(path, { readOnly: this.readOnly, timeout, enableForeignKeyConstraints: true });
      writer.exec(`PRAGMA busy_timeout = ${timeout}`);
      writer.exec('PRAGMA foreign_keys = ON');
      // Erased personal data (eraseInboundByConsent) is overwritten with zeros in the file instead of
      // lingering in free space where a copy of the database would still hold it.
      writer.exec('PRAGMA secure_delete = ON');
      if (!inMemory && !this.readOnly) {
        const mode = writer.prepare('PRAGMA journal_mode = WAL').get();
        if (mode?.['journal_mode'] !== 'wal') {
          throw new ProtocolError('STORE_UNAVAILABLE', 'The database cannot use write-ahead logging on this file system');
        }
      }
      // In WAL mode with NORMAL, SQLite syncs the log only at checkpoints (and the log header when
      // it is reused), so a power cut can roll back transactions that already committed. FULL would
      // sync on every commit, inside the synchronous COMMIT call, with the event loop stalled for
      // the whole disk flush. Instead the store syncs the log itself, asynchronously, after each
      // group commit, and answers writes and reads only once what they wrote or read is on disk
      // (#durableUpTo): once a method has resolved (and a receipt or a 202 has gone out), the
      // record survives power loss, and the flush of one group overlaps the work of the next. In
      // memory there is nothing to sync.
      writer.exec(inMemory || this.readOnly ? 'PRAGMA synchronous = FULL' : 'PRAGMA synchronous = NORMAL');
      this.#syncsItself = !inMemory && !this.readOnly;
      if (this.#syncsItself) {
        // Checkpoints run on the checkpointer's thread, not inside this connection's COMMITs; if
        // that thread cannot run, SQLite's automatic checkpoints come back (at its default of 1000 pages).
        writer.exec('PRAGMA wal_autocheckpoint = 0');
        this.#checkpointer = new WalCheckpointer(path, () => {
          if (this.#writer.isOpen) this.#writer.exec(`PRAGMA wal_autocheckpoint = ${TARGET_FRAMES_PER_CHECKPOINT}`);
        });
      }
      if (inMemory) {
        // A second connection to ':memory:' would be another, empty database.
        reader = writer;
      } else {
        reader = new DatabaseSync(path, { readOnly: true, timeout });
        reader.exec(`PRAGMA busy_timeout = ${timeout}`);
      }
    } catch (error) {
      if (reader?.isOpen && reader !== writer) reader.close();
      if (writer?.isOpen) writer.close();
      throw toStoreError(error);
    }
    this.#writer = writer;
    this.#reader = reader;
  }

  async migrate(): Promise<void> {
    this.#ensureOpen();
    await this.#mutex.run(() => {
      try {
        applySqliteMigrations(this.#writer);
      } catch (error) {
        throw toStoreError(error);
      }
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Writes already queued run to completion; calls made after close() reject (#ensureOpen).
    do await this.#group;
    while (this.#groupScheduled || this.#queued.length > 0);
    await this.#syncTail;
    await this.#checkpointer?.close();
    await this.#wal?.close().catch(() => undefined);
    this.#wal = undefined;
    await this.#mutex.run(() => {
      this.#statements.clear();
      if (this.#reader !== this.#writer && this.#reader.isOpen) this.#reader.close();
      if (this.#writer.isOpen) this.#writer.close();
    });
  }

  /** The checkpoint thread's work so far, its present interval and whether it has given up (diagnostics, tests). */
  get walCheckpoints(): { completed: number; commitsPerCheckpoint: number; failed: boolean } {
    const c = this.#checkpointer;
    return { completed: c?.completed ?? 0, commitsPerCheckpoint: c?.commitsPerCheckpoint ?? 0, failed: c?.failed ?? false };
  }

  // Trust store

  async putPeer(peer: PeerRecord): Promise<void> {
    await this.#write((db) => {
      this.#stmt(
        db,
        `INSERT INTO peers (node_id, fingerprints, document, document_version, added_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (node_id) DO UPDATE SET fingerprints = excluded.fingerprints, document = excluded.document,
           document_version = excluded.document_version, added_at = excluded.added_at, updated_at = excluded.updated_at`,
      ).run(
        peer.nodeId,
        JSON.stringify(peer.fingerprints),
        peer.document ?? null,
        peer.documentVersion ?? null,
        peer.addedAt,
        peer.updatedAt,
      );
    });
  }

  async getPeer(nodeId: string): Promise<PeerRecord | undefined> {
    return this.#read((db) => {
      const row = this.#stmt(db, 'SELECT * FROM peers WHERE node_id = ?').get(nodeId);
      return row ? peerFromRow(row) : undefined;
    });
  }

  async listPeers(): Promise<PeerRecord[]> {
    return this.#read((db) => this.#stmt(db, 'SELECT * FROM peers ORDER BY node_id').all().map(peerFromRow));
  }

  // Agreements and consents

  async putAgreement(record: AgreementRecord): Promise<void> {
    await this.#write((db) => {
      this.#stmt(
        db,
        `INSERT INTO agreements (id, version, jws, registered_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, jws = excluded.jws, registered_at = excluded.registered_at`,
      ).run(record.id, record.version, record.jws, record.registeredAt);
      for (const termination of record.terminations) this.#insertTermination(db, record.id, termination);
    });
  }

  async getAgreement(id: string): Promise<AgreementRecord | undefined> {
    return this.#snapshot((db) => {
      const row = this.#stmt(db, 'SELECT * FROM agreements WHERE id = ?').get(id);
      if (!row) return undefined;
      const terminations = this.#stmt(db, 'SELECT jws FROM agreement_terminations WHERE agreement_id = ? ORDER BY seq')
        .all(id)
        .map((t) => text(t, 'jws'));
      return { id: text(row, 'id'), version: int(row, 'version'), jws: text(row, 'jws'), terminations, registeredAt: text(row, 'registered_at') };
    });
  }

  async listAgreements(): Promise<AgreementRecord[]> {
    return this.#snapshot((db) => {
      const terminations = new Map<string, string[]>();
      for (const t of this.#stmt(db, 'SELECT agreement_id, jws FROM agreement_terminations ORDER BY seq').all()) {
        const id = text(t, 'agreement_id');
        terminations.set(id, [...(terminations.get(id) ?? []), text(t, 'jws')]);
      }
      return this.#stmt(db, 'SELECT * FROM agreements ORDER BY id')
        .all()
        .map((row) => ({
          id: text(row, 'id'),
          version: int(row, 'version'),
          jws: text(row, 'jws'),
          terminations: terminations.get(text(row, 'id')) ?? [],
          registeredAt: text(row, 'registered_at'),
        }));
    });
  }

  async addTermination(agreementId: string, termination: string): Promise<void> {
    await this.#write((db) => {
      if (!this.#stmt(db, 'SELECT 1 AS present FROM agreements WHERE id = ?').get(agreementId)) {
        throw new ProtocolError('NOT_FOUND', 'No agreement with this id');
      }
      this.#insertTermination(db, agreementId, termination);
    });
  }

  async putConsent(record: ConsentRecordRow): Promise<void> {
    const recordedMs = toMs(record.recordedAt, 'recordedAt');
    if (record.withdrawnAt !== undefined) toMs(record.withdrawnAt, 'withdrawnAt');
    await this.#write((db) => {
      const existing = this.#stmt(db, 'SELECT withdrawn_at, withdrawn_purposes FROM consents WHERE id = ?').get(record.id);
      const withdrawnAt = (existing && optText(existing, 'withdrawn_at')) ?? record.withdrawnAt;
      const purposes = unionPurposes(existing ? stringArray(existing, 'withdrawn_purposes') : [], record.withdrawnPurposes);
      this.#stmt(
        db,
        `INSERT INTO consents (id, controller, subject, jws, expires_at, recorded_at, recorded_ms, withdrawn_at, withdrawn_purposes)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET controller = excluded.controller, subject = excluded.subject, jws = excluded.jws,
           expires_at = excluded.expires_at, recorded_at = excluded.recorded_at, recorded_ms = excluded.recorded_ms,
           withdrawn_at = excluded.withdrawn_at, withdrawn_purposes = excluded.withdrawn_purposes`,
      ).run(
        record.id,
        record.controller,
        record.subject,
        record.jws,
        record.expiresAt,
        record.recordedAt,
        recordedMs,
        withdrawnAt ?? null,
        JSON.stringify(purposes),
      );
    });
  }

  async getConsent(id: string): Promise<ConsentRecordRow | undefined> {
    return this.#read((db) => {
      const row = this.#stmt(db, 'SELECT * FROM consents WHERE id = ?').get(id);
      return row ? consentFromRow(row) : undefined;
    });
  }

  async listConsents(): Promise<ConsentRecordRow[]> {
    return this.#read((db) => this.#stmt(db, 'SELECT * FROM consents ORDER BY recorded_ms, id').all().map(consentFromRow));
  }

  async withdrawConsent(id: string, purposes: string[] | undefined, at: string, audit: AuditEvent): Promise<string[]> {
    toMs(at, 'withdrawal time');
    return this.#write((db) => {
      const existing = this.#stmt(db, 'SELECT withdrawn_at, withdrawn_purposes FROM consents WHERE id = ?').get(id);
      if (!existing) throw new ProtocolError('NOT_FOUND', 'No consent with this id');
      if (purposes === undefined) {
        this.#stmt(db, 'UPDATE consents SET withdrawn_at = COALESCE(withdrawn_at, ?) WHERE id = ?').run(at, id);
      } else {
        const merged = unionPurposes(stringArray(existing, 'withdrawn_purposes'), purposes);
        this.#stmt(db, 'UPDATE consents SET withdrawn_purposes = ? WHERE id = ?').run(JSON.stringify(merged), id);
      }
      const exempt = WITHDRAWAL_EXEMPT_TYPES.map(() => '?').join(', ');
      const cancelled = this.#stmt(
        db,
        `SELECT id FROM outbox WHERE consent_id = ? AND state = 'queued' AND type NOT IN (${exempt}) ORDER BY created_ms, id`,
      )
        .all(id, ...WITHDRAWAL_EXEMPT_TYPES)
        .map((row) => text(row, 'id'));
      const cancel = this.#stmt(
        db,
        `UPDATE outbox SET state = 'cancelled', last_error = 'consent withdrawn', updated_at = ?, lease_owner = NULL, lease_until_ms = NULL
         WHERE id = ? AND state = 'queued'`,
      );
      for (const entryId of cancelled) cancel.run(at, entryId);
      this.#appendAuditIn(db, audit);
      return cancelled;
    });
  }

  // Outbox

  async enqueue(entry: NewOutboxEntry, audit: AuditEvent): Promise<OutboxEntry> {
    const createdMs = toMs(audit.at, 'audit.at');
    const nextAttemptAt = entry.nextAttemptAt ?? audit.at;
    const nextAttemptMs = toMs(nextAttemptAt, 'nextAttemptAt');
    toMs(entry.expiresAt, 'expiresAt');
    checkCount(entry.priority, 'priority', 0);
    return this.#write((db) => {
      if (this.#stmt(db, 'SELECT 1 AS present FROM outbox WHERE id = ?').get(entry.id)) {
        throw new ProtocolError('INTERNAL', 'An outbox entry with this id already exists');
      }
      if (entry.consentId !== undefined && !WITHDRAWAL_EXEMPT_TYPES.includes(entry.type)) {
        const consent = this.#stmt(db, 'SELECT withdrawn_at FROM consents WHERE id = ?').get(entry.consentId);
        if (consent && optText(consent, 'withdrawn_at') !== undefined) throw new ProtocolError('CONSENT_WITHDRAWN');
      }
      this.#stmt(
        db,
        `INSERT INTO outbox (id, peer, type, thread_id, consent_id, priority, jwe, digest, jwt, state, attempts,
           next_attempt_at, next_attempt_ms, expires_at, created_at, created_ms, updated_at, last_error, receipt, problem, delivered_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
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
        audit.at,
        entry.lastError ?? null,
        entry.receipt ?? null,
        entry.problem ?? null,
        entry.deliveredAt ?? null,
      );
      this.#appendAuditIn(db, audit);
      return newOutboxRecord(entry, audit.at, nextAttemptAt);
    });
  }

  async claimDue(options: ClaimOptions): Promise<OutboxEntry[]> {
    const now = toMs(options.now, 'now');
    checkCount(options.limit, 'limit', 0);
    checkCount(options.leaseMs, 'lease duration', 1);
    if (options.limit === 0) return [];
    return this.#write((db) => {
      const rows = this.#stmt(
        db,
        `SELECT * FROM outbox
         WHERE state = 'queued' AND next_attempt_ms <= ? AND (lease_until_ms IS NULL OR lease_until_ms < ?)
         ORDER BY priority, next_attempt_ms, created_ms, id LIMIT ?`,
      ).all(now, now, options.limit);
      const lease = this.#stmt(db, 'UPDATE outbox SET lease_owner = ?, lease_until_ms = ? WHERE id = ?');
      for (const row of rows) lease.run(options.owner, now + options.leaseMs, text(row, 'id'));
      return rows.map(outboxFromRow);
    });
  }

  async complete(
    id: string,
    owner: string,
    outcome: Parameters<Store['complete']>[2],
    audit?: AuditEvent,
  ): Promise<boolean> {
    toMs(outcome.at, 'outcome.at');
    const nextAttemptMs = outcome.state === 'queued' ? toMs(outcome.nextAttemptAt, 'nextAttemptAt') : undefined;
    return this.#write((db) => {
      const row = this.#stmt(db, 'SELECT state, lease_owner FROM outbox WHERE id = ?').get(id);
      // Terminal states are final, and a lease taken over by another owner means its attempt wins.
      if (!row || text(row, 'state') !== 'queued' || optText(row, 'lease_owner') !== owner) return false;
      const release = 'lease_owner = NULL, lease_until_ms = NULL, updated_at = ?';
      switch (outcome.state) {
        case 'delivered':
          this.#stmt(db, `UPDATE outbox SET state = 'delivered', attempts = attempts + 1, receipt = ?, delivered_at = ?, ${release} WHERE id = ?`).run(
            outcome.receipt,
            outcome.at,
            outcome.at,
            id,
          );
          break;
        case 'rejected':
          this.#stmt(db, `UPDATE outbox SET state = 'rejected', attempts = attempts + 1, problem = ?, receipt = ?, ${release} WHERE id = ?`).run(
            outcome.problem,
            outcome.receipt ?? null,
            outcome.at,
            id,
          );
          break;
        case 'failed':
          this.#stmt(db, `UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?, ${release} WHERE id = ?`).run(
            outcome.error,
            outcome.at,
            id,
          );
          break;
        case 'cancelled':
          this.#stmt(db, `UPDATE outbox SET state = 'cancelled', last_error = ?, ${release} WHERE id = ?`).run(outcome.error, outcome.at, id);
          break;
        case 'queued':
          this.#stmt(
            db,
            `UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, next_attempt_ms = ?, ${release} WHERE id = ?`,
          ).run(outcome.error, outcome.nextAttemptAt, nextAttemptMs ?? null, outcome.at, id);
          break;
        default:
          throw new ProtocolError('INTERNAL', 'Unknown outbox outcome');
      }
      if (audit) this.#appendAuditIn(db, audit);
      return true;
    });
  }

  async getOutbox(id: string): Promise<OutboxEntry | undefined> {
    return this.#read((db) => {
      const row = this.#stmt(db, 'SELECT * FROM outbox WHERE id = ?').get(id);
      return row ? outboxFromRow(row) : undefined;
    });
  }

  async listOutbox(
    filter: { state?: OutboxState; peer?: string; consentId?: string; threadId?: string; limit?: number } = {},
  ): Promise<OutboxEntry[]> {
    const where: [string, SQLInputValue][] = [];
    if (filter.state !== undefined) where.push(['state = ?', filter.state]);
    if (filter.peer !== undefined) where.push(['peer = ?', filter.peer]);
    if (filter.consentId !== undefined) where.push(['consent_id = ?', filter.consentId]);
    if (filter.threadId !== undefined) where.push(['thread_id = ?', filter.threadId]);
    const { sql, params } = filteredQuery('outbox', where, 'created_ms, id', filter.limit);
    return this.#read((db) => this.#stmt(db, sql).all(...params).map(outboxFromRow));
  }

  async countOutboxByState(): Promise<Record<OutboxState, number>> {
    return this.#read((db) => {
      const counts = Object.fromEntries(OUTBOX_STATES.map((s) => [s, 0])) as Record<OutboxState, number>;
      for (const row of this.#stmt(db, 'SELECT state, COUNT(*) AS n FROM outbox GROUP BY state').all()) {
        counts[text(row, 'state') as OutboxState] = int(row, 'n');
      }
      return counts;
    });
  }

  async nextQueuedBelow(peer: string, priorityBelow: number): Promise<string | undefined> {
    return this.#read((db) => {
      const row = this.#stmt(
        db,
        `SELECT next_attempt_at FROM outbox WHERE state = 'queued' AND priority < ? AND peer = ? ORDER BY next_attempt_ms, created_ms, id LIMIT 1`,
      ).get(priorityBelow, peer);
      return row ? text(row, 'next_attempt_at') : undefined;
    });
  }

  // Inbox

  async acceptInbound(
    entry: Omit<InboxEntry, 'receipt'>,
    audit: AuditEvent,
    makeReceipt: (auditIndex: number) => Promise<string>,
  ): Promise<AcceptResult> {
    const receivedMs = toMs(entry.receivedAt, 'receivedAt');
    return this.#write((db): AcceptResult | SignedWrite<AcceptResult> => {
      const existing = this.#stmt(db, 'SELECT * FROM inbox WHERE id = ?').get(entry.id);
      if (existing) {
        const stored = inboxFromRow(existing);
        return { status: stored.digest === entry.digest ? 'duplicate' : 'conflict', entry: stored };
      }
      return {
        [SIGNED]: true,
        key: entry.id,
        // Signed before the leaf is written, inside the group's transaction: if signing fails, the
        // write stores nothing, and no receipt for an unstored message can exist.
        sign: makeReceipt,
        finish: (db, auditIndex, receipt) => {
          if (typeof receipt !== 'string' || receipt.length === 0) throw new ProtocolError('INTERNAL', 'makeReceipt returned no receipt');
          const record = this.#appendAuditIn(db, audit);
          if (record.index !== auditIndex) throw new ProtocolError('INTERNAL', 'The audit leaf did not get the index its receipt names');
          this.#stmt(
            db,
            `INSERT INTO inbox (id, sender, type, thread_id, consent_id, digest, jwe, sd_jwt, jwt, categories, receipt, received_at, received_ms, erased_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
          ).run(
            entry.id,
            entry.sender,
            entry.type,
            entry.threadId,
            entry.consentId ?? null,
            entry.digest,
            entry.jwe ?? null,
            entry.sdJwt ?? null,
            entry.jwt,
            JSON.stringify(entry.categories),
            receipt,
            entry.receivedAt,
            receivedMs,
            entry.erasedAt ?? null,
          );
          return { status: 'stored', entry: storedInboxRecord(entry, receipt) };
        },
      };
    }, true);
  }

  async getInbox(id: string): Promise<InboxEntry | undefined> {
    return this.#read((db) => {
      const row = this.#stmt(db, 'SELECT * FROM inbox WHERE id = ?').get(id);
      return row ? inboxFromRow(row) : undefined;
    });
  }

  async listInbox(filter: { sender?: string; threadId?: string; consentId?: string; limit?: number } = {}): Promise<InboxEntry[]> {
    const where: [string, SQLInputValue][] = [];
    if (filter.sender !== undefined) where.push(['sender = ?', filter.sender]);
    if (filter.threadId !== undefined) where.push(['thread_id = ?', filter.threadId]);
    if (filter.consentId !== undefined) where.push(['consent_id = ?', filter.consentId]);
    const { sql, params } = filteredQuery('inbox', where, 'received_ms, id', filter.limit);
    return this.#read((db) => this.#stmt(db, sql).all(...params).map(inboxFromRow));
  }

  async eraseInboundByConsent(consentId: string, at: string, audit: AuditEvent): Promise<string[]> {
    toMs(at, 'erasure time');
    const erased = await this.#write((db) => {
      const ids = this.#stmt(db, 'SELECT id FROM inbox WHERE consent_id = ? AND erased_at IS NULL ORDER BY received_ms, id')
        .all(consentId)
        .map((row) => text(row, 'id'));
      const erase = this.#stmt(db, 'UPDATE inbox SET jwe = NULL, sd_jwt = NULL, erased_at = ? WHERE id = ?');
      for (const id of ids) erase.run(at, id);
      this.#appendAuditIn(db, audit);
      return ids;
    });
    if (erased.length > 0) await this.#purgeWal();
    return erased;
  }

  // Audit log

  async appendAudit(event: AuditEvent): Promise<AuditRecord> {
    return this.#write((db) => this.#appendAuditIn(db, event));
  }

  async readAudit(from: number, to: number): Promise<AuditRecord[]> {
    checkCount(from, 'audit range start', 0);
    checkCount(to, 'audit range end', 0);
    return this.#read((db) => this.#stmt(db, 'SELECT * FROM audit_log WHERE idx >= ? AND idx < ? ORDER BY idx').all(from, to).map(auditFromRow));
  }

  async auditSize(): Promise<number> {
    return this.#read((db) => this.#auditSizeIn(db));
  }

  async putCheckpoint(checkpoint: CheckpointRecord): Promise<boolean> {
    checkCount(checkpoint.size, 'checkpoint size', 0);
    const atMs = toMs(checkpoint.at, 'checkpoint.at');
    return this.#write((db) => {
      const latest = this.#stmt(db, 'SELECT size, at_ms FROM audit_checkpoints ORDER BY size DESC LIMIT 1').get();
      if (latest && (int(latest, 'size') >= checkpoint.size || int(latest, 'at_ms') > atMs)) return false;
      this.#stmt(db, 'INSERT INTO audit_checkpoints (size, root, at, at_ms, jws) VALUES (?, ?, ?, ?, ?)').run(
        checkpoint.size,
        checkpoint.root,
        checkpoint.at,
        atMs,
        checkpoint.jws,
      );
      return true;
    });
  }

  async listCheckpoints(afterSize = -1, limit = 1000): Promise<CheckpointRecord[]> {
    checkCount(afterSize + 1, 'checkpoint size', 0);
    checkCount(limit, 'checkpoint limit', 1);
    return this.#read((db) =>
      this.#stmt(db, 'SELECT size, root, at, jws FROM audit_checkpoints WHERE size > ? ORDER BY size LIMIT ?').all(afterSize, limit).map(checkpointFromRow),
    );
  }

  async latestCheckpoint(): Promise<CheckpointRecord | undefined> {
    return this.#read((db) => {
      const row = this.#stmt(db, 'SELECT size, root, at, jws FROM audit_checkpoints ORDER BY size DESC LIMIT 1').get();
      return row ? checkpointFromRow(row) : undefined;
    });
  }

  async putNodeDocument(record: NodeDocumentRecord): Promise<void> {
    checkCount(record.version, 'document version', 1);
    await this.#write((db) => {
      this.#stmt(db, 'INSERT INTO node_documents (node_id, version, jws) VALUES (?, ?, ?) ON CONFLICT DO NOTHING').run(record.nodeId, record.version, record.jws);
    });
  }

  async listNodeDocuments(nodeId: string): Promise<NodeDocumentRecord[]> {
    return this.#read((db) =>
      this.#stmt(db, 'SELECT node_id, version, jws FROM node_documents WHERE node_id = ? ORDER BY version')
        .all(nodeId)
        .map((row) => ({ nodeId: text(row, 'node_id'), version: int(row, 'version'), jws: text(row, 'jws') })),
    );
  }

  // Local API tokens

  async putToken(token: TokenRecord): Promise<void> {
    const createdMs = toMs(token.createdAt, 'createdAt');
    await this.#write((db) => {
      this.#stmt(
        db,
        `INSERT INTO tokens (id, hash, role, label, created_at, created_ms, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET hash = excluded.hash, role = excluded.role, label = excluded.label,
           created_at = excluded.created_at, created_ms = excluded.created_ms, revoked_at = excluded.revoked_at`,
      ).run(token.id, token.hash, token.role, token.label, token.createdAt, createdMs, token.revokedAt ?? null);
    });
  }

  async findTokenByHash(hash: string): Promise<TokenRecord | undefined> {
    return this.#read((db) => {
      const row = this.#stmt(db, 'SELECT * FROM tokens WHERE hash = ?').get(hash);
      return row ? tokenFromRow(row) : undefined;
    });
  }

  async listTokens(): Promise<TokenRecord[]> {
    return this.#read((db) => this.#stmt(db, 'SELECT * FROM tokens ORDER BY created_ms, id').all().map(tokenFromRow));
  }

  // Replay protection

  async remember(key: string, expiresAt: string): Promise<boolean> {
    const expiresMs = toMs(expiresAt, 'expiresAt');
    return this.#write((db) => {
      const now = Date.now();
      this.#stmt(
        db,
        'DELETE FROM remembered_keys WHERE key IN (SELECT key FROM remembered_keys WHERE expires_ms <= ? ORDER BY expires_ms LIMIT ?)',
      ).run(now, REMEMBER_PURGE_BATCH);
      // An expired row left over by the bounded purge counts as absent.
      const result = this.#stmt(
        db,
        `INSERT INTO remembered_keys (key, expires_ms) VALUES (?, ?)
         ON CONFLICT (key) DO UPDATE SET expires_ms = excluded.expires_ms WHERE remembered_keys.expires_ms <= ?`,
      ).run(key, expiresMs, now);
      return Number(result.changes) === 1;
    });
  }

  // Internals

  #ensureOpen(): void {
    if (this.#closed) throw new ProtocolError('STORE_UNAVAILABLE', 'The store is closed');
    if (this.#syncFailure !== undefined) {
      throw new ProtocolError('STORE_UNAVAILABLE', 'The database could not be synced to disk', undefined, { cause: this.#syncFailure });
    }
  }

  #stmt(db: DatabaseSync, sql: string): StatementSync {
    let cache = this.#statements.get(db);
    if (!cache) this.#statements.set(db, (cache = new Map()));
    let statement = cache.get(sql);
    if (!statement) cache.set(sql, (statement = db.prepare(sql)));
    return statement;
  }

  /** Reads see committed data only (separate WAL reader) and never wait for the write mutex. */
  async #read<T>(fn: (db: DatabaseSync) => T): Promise<T> {
    this.#ensureOpen();
    let result: T;
    try {
      result = fn(this.#reader);
    } catch (error) {
      throw toStoreError(error);
    }
    // What was read may come from a commit whose sync is still running (see #durableUpTo): it is
    // handed out only once on disk, so nothing read here can be acknowledged and then lost.
    await this.#durableUpTo(this.#committed);
    return result;
  }

  /** A read of several statements that must agree with each other (another process may commit between them). */
  async #snapshot<T>(fn: (db: DatabaseSync) => T): Promise<T> {
    return this.#read((db) => {
      // With ':memory:' the reader is the writer, possibly inside an acceptInbound transaction.
      if (db.isTransaction) return fn(db);
      db.exec('BEGIN');
      try {
        return fn(db);
      } finally {
        db.exec('COMMIT');
      }
    });
  }

  /**
   * Runs `fn` as one atomic write and resolves once it is durably committed; any throw undoes all
   * of `fn`'s changes. Writes requested in the same turn of the event loop share one BEGIN
   * IMMEDIATE … COMMIT (group commit) and one sync of the log: a node busy with many messages
   * would otherwise spend most of its time waiting for the disk, once per write. Each write runs
   * inside its own SAVEPOINT, so a write that fails is rolled back alone and the others still
   * commit; nothing is reported (resolved) before the COMMIT and its sync. IMMEDIATE takes
   * SQLite's write lock up front, so a second process fails fast (after busy_timeout) instead of
   * deadlocking on a read-to-write upgrade.
   */
  async #write<T>(fn: (db: DatabaseSync) => T | Promise<T>): Promise<T>;
  async #write<T>(fn: (db: DatabaseSync) => T | SignedWrite<T>, signs: true): Promise<T>;
  async #write<T>(fn: (db: DatabaseSync) => unknown, signs = false): Promise<T> {
    this.#ensureOpen();
    // Refused before `fn` runs: a signing write would otherwise sign a receipt only to throw it away.
    if (this.readOnly) throw new ProtocolError('STORE_UNAVAILABLE', 'The store is open read-only');
    return new Promise<T>((resolve, reject) => {
      this.#queued.push({ fn, resolve: resolve as (value: unknown) => void, reject, signs });
      if (this.#groupScheduled) return;
      this.#groupScheduled = true;
      // setImmediate runs after the I/O callbacks of this turn, so the writes they request join.
      this.#group = new Promise<void>((ready) => scheduleImmediate(ready)).then(() =>
        this.#mutex.run(async () => {
          this.#groupScheduled = false;
          await this.#commitQueued();
        }),
      );
    });
  }

  async #commitQueued(): Promise<void> {
    const db = this.#writer;
    while (this.#queued.length > 0) {
      if (this.#syncFailure !== undefined) {
        const failure = new ProtocolError('STORE_UNAVAILABLE', 'The database could not be synced to disk', undefined, { cause: this.#syncFailure });
        for (const write of this.#queued.splice(0)) write.reject(failure);
        return;
      }
      try {
        db.exec('BEGIN IMMEDIATE');
      } catch (error) {
        const failure = toStoreError(error);
        for (const write of this.#queued.splice(0)) write.reject(failure);
        return;
      }
      const settled: { write: QueuedWrite; ok: boolean; value: unknown }[] = [];
      const changesBefore = this.#syncsItself ? this.#totalChanges(db) : 0;
      let aborted: unknown;
      // Signing writes whose signatures are under way, in queue order.
      const signing: Signing[] = [];

      /** Opens the write's savepoint; a failure to do so loses the group (the write is settled as failed). */
      const openSavepoint = (write: QueuedWrite): boolean => {
        try {
          db.exec('SAVEPOINT write');
          return true;
        } catch (error) {
          settled.push({ write, ok: false, value: toStoreError(error) });
          aborted = error;
          return false;
        }
      };

      const rollbackWrite = (error: unknown): void => {
        if (db.isOpen && db.isTransaction) {
          try {
            db.exec('ROLLBACK TO write');
            db.exec('RELEASE write');
          } catch (rollbackError) {
            aborted = rollbackError;
            return;
          }
        }
        // FULL, IOERR, BUSY... may have rolled back the whole transaction: the group is lost.
        if (!db.isOpen || !db.isTransaction) aborted = error;
      };

      /** Stores the signing writes once their signatures are made; returns how many must be signed again. */
      const finishSigning = async (): Promise<number> => {
        const batch = signing.splice(0);
        const signatures = await Promise.all(batch.map((s) => s.signature));
        // After a failure the later signatures name leaf indices one too high: those writes run again.
        const again: QueuedWrite[] = [];
        for (let i = 0; i < batch.length; i++) {
          const { write, signed, auditIndex } = batch[i]!;
          if (aborted !== undefined) {
            settled.push({ write, ok: false, value: new ProtocolError('STORE_UNAVAILABLE', undefined, undefined, { cause: aborted }) });
            continue;
          }
          if (again.length > 0) {
            again.push(write);
            continue;
          }
          const signature = signatures[i]!;
          if (!openSavepoint(write)) continue;
          try {
            if (!signature.ok) throw signature.error;
            const value = signed.finish(db, auditIndex, signature.value);
            db.exec('RELEASE write');
            settled.push({ write, ok: true, value });
          } catch (error) {
            settled.push({ write, ok: false, value: toStoreError(error) });
            rollbackWrite(error);
            again.push(...batch.slice(i + 1).map((s) => s.write));
            break;
          }
        }
        this.#queued.unshift(...again);
        return again.length;
      };

      // One round of signatures per group: writes queued while it is under way form the next
      // group, whose signatures start as soon as this one commits (the mutex is held meanwhile).
      for (;;) {
        while (aborted === undefined && this.#queued.length > 0 && settled.length + signing.length < MAX_GROUP_COMMIT) {
          const write = this.#queued[0]!;
          // Any other write sees the signing writes' effects first, as it would have in queue order.
          if (signing.length > 0 && !write.signs) break;
          this.#queued.shift();
          if (!openSavepoint(write)) break;
          try {
            const pending = write.fn(db);
            const value = pending instanceof Promise ? await pending : pending;
            db.exec('RELEASE write');
            if (!isSignedWrite(value)) {
              settled.push({ write, ok: true, value });
              continue;
            }
            if (signing.some((s) => s.signed.key === value.key)) {
              // A copy of a message whose signature is under way: it runs again once that one is stored.
              this.#queued.unshift(write);
              break;
            }
            // Consecutive leaves: the batch's first index is read once, the others follow it.
            const last = signing.at(-1);
            const auditIndex = last ? last.auditIndex + 1 : this.#auditSizeIn(db);
            signing.push({ write, signed: value, auditIndex, signature: settle(() => value.sign(auditIndex)) });
          } catch (error) {
            settled.push({ write, ok: false, value: toStoreError(error) });
            rollbackWrite(error);
            if (aborted !== undefined) break;
          }
        }
        if (signing.length === 0) break;
        // After a failed signature the writes put back are signed again in this group (with those
        // queued behind them); otherwise the group commits now.
        if ((await finishSigning()) === 0 || aborted !== undefined) break;
      }
      if (aborted === undefined) {
        try {
          db.exec('COMMIT');
        } catch (error) {
          aborted = error;
        }
      }
      if (aborted !== undefined) {
        // A failed COMMIT can leave the transaction open (SQLITE_BUSY) or already rolled back (FULL, IOERR).
        if (db.isOpen && db.isTransaction) {
          try {
            db.exec('ROLLBACK');
          } catch {
            // The original error is the one worth reporting.
          }
        }
        const lost = new ProtocolError('STORE_UNAVAILABLE', undefined, undefined, { cause: aborted });
        for (const { write, ok, value } of settled) write.reject(ok ? lost : value);
      } else {
        if (this.#syncsItself && this.#totalChanges(db) !== changesBefore) {
          this.#committed += 1;
          this.#checkpointer?.committed();
        }
        const report = () => {
          for (const { write, ok, value } of settled) {
            if (ok) write.resolve(value);
            else write.reject(value);
          }
        };
        // Not awaited: the next group may commit while this one's sync runs. A group that changed
        // nothing still waits for earlier commits it may have read from.
        this.#durableUpTo(this.#committed).then(report, (error: unknown) => {
          const lost = new ProtocolError('STORE_UNAVAILABLE', 'The database could not be synced to disk', undefined, { cause: error });
          for (const { write, ok, value } of settled) write.reject(ok ? lost : value);
        });
      }
    }
  }

  /**
   * Resolves once the first `count` changing commits of this store are on disk. In WAL mode a
   * commit is visible to readers as soon as it is written, before any sync: so writes and reads
   * alike are answered only through here, and a reader never hands out data that a power cut could
   * still take back (the guarantee FULL gave by syncing inside COMMIT). One fdatasync of the log
   * covers every commit made before it starts, so callers arriving while one runs share the next.
   * A failed sync is final (as in PostgreSQL after a failed fsync): the kernel may have dropped the
   * dirty pages, so retrying could report data durable that is not; the store refuses further work.
   * Commits of other processes on the same file are synced by those processes.
   */
  #durableUpTo(count: number): Promise<void> {
    if (this.#durable >= count) return Promise.resolve();
    if (this.#syncFailure !== undefined) return Promise.reject(this.#syncFailure);
    if (this.#syncing && this.#syncing.covers >= count) return this.#syncing.done;
    if (this.#syncNext) return this.#syncNext;
    const next = this.#syncTail.then(() => {
      this.#syncNext = undefined;
      if (this.#syncFailure !== undefined) throw this.#syncFailure;
      const covers = this.#committed;
      const done = this.#syncWal().then(
        () => {
          this.#durable = Math.max(this.#durable, covers);
        },
        (error: unknown) => {
          this.#syncFailure ??= error;
          throw error;
        },
      );
      this.#syncing = { covers, done };
      return done;
    });
    this.#syncNext = next;
    this.#syncTail = next.catch(() => undefined);
    return next;
  }

  /** Rows changed on this connection so far (a group that changed nothing needs no sync). */
  #totalChanges(db: DatabaseSync): number {
    const row = this.#stmt(db, 'SELECT total_changes() AS n').get();
    return Number(row?.['n'] ?? 0);
  }

  async #syncWal(): Promise<void> {
    if (!this.#wal) {
      // The log's directory entry must be durable too (SQLite syncs the directory when it creates
      // the log with synchronous = FULL); the log is created once and kept while the store is open.
      this.#wal = await openFile(`${this.path}-wal`, 'r+');
      const directory = await openFile(dirname(this.path), 'r');
      try {
        await directory.sync();
      } finally {
        await directory.close();
      }
    }
    await this.#wal.datasync();
  }

  #appendAuditIn(db: DatabaseSync, event: AuditEvent): AuditRecord {
    toMs(event.at, 'audit.at');
    if (typeof event.kind !== 'string' || event.kind.length === 0) throw new ProtocolError('INTERNAL', 'Audit event without kind');
    const index = this.#auditSizeIn(db);
    const fieldsJson = canonicalJson(event.fields);
    const fields = JSON.parse(fieldsJson) as AuditEvent['fields'];
    const leafHash = auditLeafHash({ kind: event.kind, fields, at: event.at, index });
    this.#stmt(db, 'INSERT INTO audit_log (idx, kind, fields, at, leaf_hash) VALUES (?, ?, ?, ?, ?)').run(
      index,
      event.kind,
      fieldsJson,
      event.at,
      leafHash,
    );
    return { kind: event.kind, fields, at: event.at, index, leafHash };
  }

  #auditSizeIn(db: DatabaseSync): number {
    const row = this.#stmt(db, 'SELECT COALESCE(MAX(idx) + 1, 0) AS size FROM audit_log').get();
    return row ? int(row, 'size') : 0;
  }

  #insertTermination(db: DatabaseSync, agreementId: string, termination: string): void {
    this.#stmt(db, 'INSERT INTO agreement_terminations (agreement_id, jws) VALUES (?, ?) ON CONFLICT DO NOTHING').run(agreementId, termination);
  }

  /**
   * After an erasure, moves the log into the database file and truncates it, so the pre-erasure
   * page images do not survive in the -wal file. Best effort: with a reader mid-snapshot the
   * checkpoint is partial, and the frames are overwritten when the log next restarts.
   */
  async #purgeWal(): Promise<void> {
    if (this.path === ':memory:' || this.#closed) return;
    await this.#mutex.run(() => {
      // A TRUNCATE checkpoint waits for other processes' readers; never stall the event loop for it.
      try {
        this.#writer.exec('PRAGMA busy_timeout = 0');
        this.#writer.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get();
      } catch {
        // The erasure itself is committed; SQLite's automatic checkpoints overwrite the frames later.
      } finally {
        if (this.#writer.isOpen) this.#writer.exec(`PRAGMA busy_timeout = ${this.#busyTimeoutMs}`);
      }
    });
  }
}

/** Opens (creating if needed) the node's database file and applies pending migrations. */
export async function openSqliteStore(path: string, options: SqliteStoreOptions = {}): Promise<SqliteStore> {
  const store = new SqliteStore(path, options);
  try {
    await store.migrate();
  } catch (error) {
    await store.close();
    throw error;
  }
  return store;
}

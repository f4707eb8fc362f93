/**
 * Row readers and record mappers shared by the SQLite and PostgreSQL stores: both keep the same
 * columns, so one mapping keeps the two implementations returning identical records.
 */
import { ProtocolError } from '@passerelle/protocol';
import type { AuditEvent, AuditRecord, CheckpointRecord, ConsentRecordRow, InboxEntry, NewOutboxEntry, OutboxEntry, OutboxState, PeerRecord, TokenRecord } from './types.js';

export type Row = Record<string, unknown>;

export function text(row: Row, column: string): string {
  const value = row[column];
  if (typeof value !== 'string') throw new ProtocolError('INTERNAL', `Column ${column} is not text`);
  return value;
}

export function optText(row: Row, column: string): string | undefined {
  const value = row[column];
  return value === null || value === undefined ? undefined : text(row, column);
}

export function int(row: Row, column: string): number {
  const value = row[column];
  if (typeof value !== 'number') throw new ProtocolError('INTERNAL', `Column ${column} is not a number`);
  return value;
}

export function optInt(row: Row, column: string): number | undefined {
  const value = row[column];
  return value === null || value === undefined ? undefined : int(row, column);
}

/** A list column: a native array (PostgreSQL) or JSON text (SQLite). */
export function stringArray(row: Row, column: string): string[] {
  const raw = row[column];
  const value: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new ProtocolError('INTERNAL', `Column ${column} is not a list of strings`);
  }
  return value as string[];
}

/** Optional record fields are absent, never `undefined`-valued, so records compare cleanly. */
export function compact<T extends object>(record: T): T {
  // A copy rather than `delete`: deleting a property turns an object into a slow dictionary,
  // and these records are read on every message.
  const out = {} as T;
  for (const key of Object.keys(record) as (keyof T)[]) {
    if (record[key] !== undefined) out[key] = record[key];
  }
  return out;
}

/** Epoch milliseconds of an RFC 3339 timestamp, for comparisons and ordering (see the migrations of each store). */
export function toMs(timestamp: string, what: string): number {
  const ms = typeof timestamp === 'string' ? Date.parse(timestamp) : Number.NaN;
  if (!Number.isFinite(ms)) throw new ProtocolError('MALFORMED', `Invalid timestamp for ${what}`);
  return ms;
}

export function checkCount(value: number, what: string, min: number): void {
  if (!Number.isSafeInteger(value) || value < min) throw new ProtocolError('MALFORMED', `Invalid ${what}`);
}

export function peerFromRow(row: Row): PeerRecord {
  return compact({
    nodeId: text(row, 'node_id'),
    fingerprints: stringArray(row, 'fingerprints'),
    document: optText(row, 'document'),
    documentVersion: optInt(row, 'document_version'),
    addedAt: text(row, 'added_at'),
    updatedAt: text(row, 'updated_at'),
  });
}

export function consentFromRow(row: Row): ConsentRecordRow {
  return compact({
    id: text(row, 'id'),
    controller: text(row, 'controller'),
    subject: text(row, 'subject'),
    jws: text(row, 'jws'),
    expiresAt: text(row, 'expires_at'),
    recordedAt: text(row, 'recorded_at'),
    withdrawnAt: optText(row, 'withdrawn_at'),
    withdrawnPurposes: stringArray(row, 'withdrawn_purposes'),
  });
}

export function outboxFromRow(row: Row): OutboxEntry {
  return compact({
    id: text(row, 'id'),
    peer: text(row, 'peer'),
    type: text(row, 'type'),
    threadId: text(row, 'thread_id'),
    consentId: optText(row, 'consent_id'),
    priority: int(row, 'priority'),
    jwe: text(row, 'jwe'),
    digest: text(row, 'digest'),
    jwt: text(row, 'jwt'),
    state: text(row, 'state') as OutboxState,
    attempts: int(row, 'attempts'),
    nextAttemptAt: text(row, 'next_attempt_at'),
    expiresAt: text(row, 'expires_at'),
    createdAt: text(row, 'created_at'),
    updatedAt: text(row, 'updated_at'),
    lastError: optText(row, 'last_error'),
    receipt: optText(row, 'receipt'),
    problem: optText(row, 'problem'),
    deliveredAt: optText(row, 'delivered_at'),
  });
}

/**
 * The record an enqueue has just written, built from what it wrote instead of read back: the
 * same fields, in the same order, as outboxFromRow gives for the new row.
 */
export function newOutboxRecord(entry: NewOutboxEntry, at: string, nextAttemptAt: string): OutboxEntry {
  return compact({
    id: entry.id,
    peer: entry.peer,
    type: entry.type,
    threadId: entry.threadId,
    consentId: entry.consentId,
    priority: entry.priority,
    jwe: entry.jwe,
    digest: entry.digest,
    jwt: entry.jwt,
    state: 'queued' as const,
    attempts: 0,
    nextAttemptAt,
    expiresAt: entry.expiresAt,
    createdAt: at,
    updatedAt: at,
    lastError: entry.lastError,
    receipt: entry.receipt,
    problem: entry.problem,
    deliveredAt: entry.deliveredAt,
  });
}

/** The record acceptInbound has just stored, likewise built from what it wrote (see inboxFromRow). */
export function storedInboxRecord(entry: Omit<InboxEntry, 'receipt'>, receipt: string): InboxEntry {
  return compact({
    id: entry.id,
    sender: entry.sender,
    type: entry.type,
    threadId: entry.threadId,
    consentId: entry.consentId,
    digest: entry.digest,
    jwe: entry.jwe,
    sdJwt: entry.sdJwt,
    jwt: entry.jwt,
    categories: [...entry.categories],
    receipt,
    receivedAt: entry.receivedAt,
    erasedAt: entry.erasedAt,
  });
}

export function inboxFromRow(row: Row): InboxEntry {
  return compact({
    id: text(row, 'id'),
    sender: text(row, 'sender'),
    type: text(row, 'type'),
    threadId: text(row, 'thread_id'),
    consentId: optText(row, 'consent_id'),
    digest: text(row, 'digest'),
    jwe: optText(row, 'jwe'),
    sdJwt: optText(row, 'sd_jwt'),
    jwt: text(row, 'jwt'),
    categories: stringArray(row, 'categories'),
    receipt: text(row, 'receipt'),
    receivedAt: text(row, 'received_at'),
    erasedAt: optText(row, 'erased_at'),
  });
}

export function auditFromRow(row: Row): AuditRecord {
  return {
    kind: text(row, 'kind'),
    fields: JSON.parse(text(row, 'fields')) as AuditEvent['fields'],
    at: text(row, 'at'),
    index: int(row, 'idx'),
    leafHash: text(row, 'leaf_hash'),
  };
}

export function checkpointFromRow(row: Row): CheckpointRecord {
  return { size: int(row, 'size'), root: text(row, 'root'), at: text(row, 'at'), jws: text(row, 'jws') };
}

export function tokenFromRow(row: Row): TokenRecord {
  return compact({
    id: text(row, 'id'),
    hash: text(row, 'hash'),
    role: text(row, 'role') as TokenRecord['role'],
    label: text(row, 'label'),
    createdAt: text(row, 'created_at'),
    revokedAt: optText(row, 'revoked_at'),
  });
}

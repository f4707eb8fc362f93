/**
 * Audit-log leaves (spec/audit.md §3): the bytes a node's log commits to for each event, so that a
 * node and an offline auditor derive the same Merkle leaf from the same record.
 *
 * leaf hash = SHA-256(0x00 || UTF-8(JCS({at, fields, index, kind}))): the 0x00 prefix is the
 * RFC 9162 §2.1.1 domain separation between leaves and interior nodes, and the record is serialised
 * with the RFC 8785 JSON Canonicalization Scheme so that any implementation, in any language,
 * hashes the same bytes for the same record.
 */
import { z } from 'zod';
import { b64u, utf8 } from '../encoding.js';
import { ProtocolError } from '../errors.js';
import { isUtcTimestamp, Timestamp } from '../vocabulary.js';
import { leafHash } from './merkle.js';

/** Longest event kind accepted; kinds are short dotted identifiers such as `message.sent`. */
export const MAX_AUDIT_KIND_LENGTH = 64;
/** Bounds on one record's fields: identifiers and digests only, never personal data. */
export const MAX_AUDIT_FIELDS = 32;
export const MAX_AUDIT_FIELD_LENGTH = 2048;

const KIND = /^[a-z][a-z0-9-]*(\.[a-z][a-z0-9-]*)*$/;

export const AuditFieldValue = z
  .union([z.string().max(MAX_AUDIT_FIELD_LENGTH), z.number(), z.boolean(), z.null(), z.array(z.string().max(MAX_AUDIT_FIELD_LENGTH)).max(64)])
  .meta({ id: 'AuditFieldValue', description: 'A value of an audit record field: a string, a finite number, a boolean, null or a list of strings.' });

export const AuditLeaf = z
  .object({
    index: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
    kind: z.string().max(MAX_AUDIT_KIND_LENGTH).regex(KIND, 'must be a dotted lower-case event kind'),
    fields: z
      .record(z.string().max(64), AuditFieldValue)
      .refine((f) => Object.keys(f).length <= MAX_AUDIT_FIELDS, { message: `at most ${MAX_AUDIT_FIELDS} fields` }),
    at: Timestamp,
  })
  .strict()
  .meta({
    id: 'AuditLeaf',
    description:
      'One audit-log record as exported: its position, event kind, fields (identifiers and digests only) and time. The leaf hash is SHA-256(0x00 || JCS(record)) (spec/audit.md §3).',
  });
export type AuditLeaf = z.infer<typeof AuditLeaf>;
export type AuditFields = AuditLeaf['fields'];

/**
 * RFC 8785 canonical JSON for the values an audit record can hold (strings, finite numbers,
 * booleans, null, arrays, plain objects). ECMAScript number and string serialisation is what
 * RFC 8785 §3.2.2 prescribes, and default string ordering compares UTF-16 code units as §3.2.3
 * requires. Members whose value is `undefined` are omitted, as JSON.stringify does, so a record read
 * back from storage hashes the same as the one appended.
 */
export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new ProtocolError('INTERNAL', 'Audit values must be finite numbers');
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v ?? null)).join(',')}]`;
      const proto = Object.getPrototypeOf(value) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new ProtocolError('INTERNAL', 'Audit values must be plain JSON objects');
      const members = Object.keys(value)
        .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
        .sort()
        .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
      return `{${members.join(',')}}`;
    }
    default:
      throw new ProtocolError('INTERNAL', `Audit values cannot hold a ${typeof value}`);
  }
}

export interface AuditLeafRecord {
  index: number;
  kind: string;
  fields: Readonly<Record<string, unknown>>;
  at: string;
}

/**
 * canonicalJson of a record whose fields hold only strings, finite numbers, booleans, null and
 * lists of strings — every record an auditor reads — without the general recursion: a whole-log
 * export holds hundreds of thousands of them. Undefined when another value is met, so that the
 * general path decides (and throws where it must).
 */
function flatRecordText(record: AuditLeafRecord): string | undefined {
  if (typeof record.kind !== 'string' || typeof record.at !== 'string') return undefined;
  const fields = record.fields as Record<string, unknown>;
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields) || Object.getPrototypeOf(fields) !== Object.prototype) return undefined;
  let text = '';
  for (const key of Object.keys(fields).sort()) {
    const v = fields[key];
    let value: string;
    if (v === undefined) continue;
    if (v === null || typeof v === 'string' || typeof v === 'boolean') value = JSON.stringify(v);
    else if (typeof v === 'number' && Number.isFinite(v)) value = JSON.stringify(v);
    else if (Array.isArray(v) && v.every((x) => typeof x === 'string')) value = `[${v.map((x) => JSON.stringify(x)).join(',')}]`;
    else return undefined;
    text += `${text ? ',' : ''}${JSON.stringify(key)}:${value}`;
  }
  // Members in RFC 8785 order: at, fields, index, kind.
  return `{"at":${JSON.stringify(record.at)},"fields":{${text}},"index":${record.index},"kind":${JSON.stringify(record.kind)}}`;
}

/** The canonical text a leaf commits to, before the RFC 9162 leaf prefix. */
export function auditLeafData(record: AuditLeafRecord): string {
  if (!Number.isSafeInteger(record.index) || record.index < 0) throw new ProtocolError('INTERNAL', 'Audit index must be a non-negative integer');
  return flatRecordText(record) ?? canonicalJson({ kind: record.kind, fields: record.fields, at: record.at, index: record.index });
}

/** RFC 9162 §2.1.1 leaf hash of an audit record, as bytes. */
export function auditLeafHashBytes(record: AuditLeafRecord): Uint8Array {
  return leafHash(utf8(auditLeafData(record)));
}

/** RFC 9162 §2.1.1 leaf hash of an audit record, base64url without padding (what a node stores). */
export function auditLeafHash(record: AuditLeafRecord): string {
  return b64u(auditLeafHashBytes(record));
}

function isFieldValue(v: unknown): boolean {
  if (v === null || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isFinite(v);
  if (typeof v === 'string') return v.length <= MAX_AUDIT_FIELD_LENGTH;
  return Array.isArray(v) && v.length <= 64 && v.every((s) => typeof s === 'string' && s.length <= MAX_AUDIT_FIELD_LENGTH);
}

/**
 * The AuditLeaf schema as a hand-written predicate: a full export holds one record per log entry,
 * and zod's per-object cost would then dominate the time spent on the log. A test keeps the two in
 * agreement.
 */
export function isAuditLeaf(value: unknown): value is AuditLeaf {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  let n = 0;
  for (const key in v) {
    if (key !== 'index' && key !== 'kind' && key !== 'fields' && key !== 'at') return false;
    n++;
  }
  if (n !== 4) return false;
  if (!Number.isSafeInteger(v.index) || (v.index as number) < 0) return false;
  if (typeof v.kind !== 'string' || v.kind.length > MAX_AUDIT_KIND_LENGTH || !KIND.test(v.kind)) return false;
  if (typeof v.at !== 'string' || !isUtcTimestamp(v.at)) return false;
  const fields = v.fields;
  if (fields === null || typeof fields !== 'object' || Array.isArray(fields)) return false;
  let count = 0;
  for (const key of Object.keys(fields)) {
    if (key.length > 64 || !isFieldValue((fields as Record<string, unknown>)[key])) return false;
    if (++count > MAX_AUDIT_FIELDS) return false;
  }
  return true;
}

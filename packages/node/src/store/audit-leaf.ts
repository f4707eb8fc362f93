/**
 * Leaf hashing for the node's audit log, shared by every store and by the offline auditor so that
 * all of them derive the same Merkle leaves (spec/node.md §Audit log).
 *
 * leaf = base64url(SHA-256(0x00 || JCS({kind, fields, at, index}))) — the 0x00 prefix is the
 * RFC 9162 §2.1.1 domain separation between leaves and interior nodes (0x01), and the record is
 * serialised with the RFC 8785 JSON Canonicalization Scheme so that any implementation, in any
 * language, hashes the same bytes for the same record.
 */
import { createHash } from 'node:crypto';
import { ProtocolError } from '@passerelle/protocol';
import type { AuditEvent } from './types.js';

const LEAF_PREFIX = Buffer.from([0x00]);

/**
 * RFC 8785 canonical JSON for the values an audit record can hold (strings, finite numbers,
 * booleans, null, arrays, plain objects). ECMAScript number and string serialisation is what
 * RFC 8785 §3.2.2 prescribes, and default string ordering compares UTF-16 code units as §3.2.3
 * requires. Object members whose value is `undefined` are omitted, as JSON.stringify does, so a
 * record read back from storage hashes the same as the one appended.
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
      if (proto !== Object.prototype && proto !== null) {
        throw new ProtocolError('INTERNAL', 'Audit values must be plain JSON objects');
      }
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

/** The bytes a leaf commits to, before the RFC 9162 leaf prefix. */
export function auditLeafData(record: AuditEvent & { index: number }): string {
  if (!Number.isSafeInteger(record.index) || record.index < 0) {
    throw new ProtocolError('INTERNAL', 'Audit index must be a non-negative integer');
  }
  return canonicalJson({ kind: record.kind, fields: record.fields, at: record.at, index: record.index });
}

/** RFC 9162 §2.1.1 leaf hash of an audit record, base64url without padding. */
export function auditLeafHash(record: AuditEvent & { index: number }): string {
  return createHash('sha256').update(LEAF_PREFIX).update(auditLeafData(record), 'utf8').digest('base64url');
}

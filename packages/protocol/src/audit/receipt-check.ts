/**
 * The Receipt schema (receipt.ts) as a hand-written predicate, for the auditor's hot path: a bundle
 * holds one receipt per message, and zod's per-object cost (two URL parses for the node ids among
 * it) then shows in the time an audit takes. A test keeps the predicate and the schema in
 * agreement; on a refusal, the schema gives the error message.
 */
import { isErrorCode } from '../errors.js';
import type { Receipt } from '../receipt.js';
import { isNodeId, UUID_V7 } from '../vocabulary.js';

const MEMBERS = new Set(['iss', 'aud', 'iat', 'message', 'digest', 'status', 'code', 'log']);
const DIGEST = /^[A-Za-z0-9_-]{43}$/;

// A bundle names a handful of nodes many times over; the verdict for one string never changes.
const nodeIds = new Map<string, boolean>();

function isKnownNodeId(value: unknown): boolean {
  if (typeof value !== 'string' || value.length > 256) return false;
  let ok = nodeIds.get(value);
  if (ok === undefined) {
    ok = isNodeId(value);
    if (nodeIds.size >= 1024) nodeIds.clear();
    nodeIds.set(value, ok);
  }
  return ok;
}

function isAuditPosition(value: unknown): boolean {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  for (const key in v) if (key !== 'index' && key !== 'checkpoint') return false;
  if (!Number.isSafeInteger(v.index) || (v.index as number) < 0) return false;
  return v.checkpoint === undefined || (typeof v.checkpoint === 'string' && v.checkpoint.length <= 8192);
}

export function isReceiptPayload(value: unknown): value is Receipt {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  for (const key in v) if (!MEMBERS.has(key)) return false;
  if (!isKnownNodeId(v.iss) || !isKnownNodeId(v.aud)) return false;
  if (!Number.isSafeInteger(v.iat) || (v.iat as number) < 0) return false;
  if (typeof v.message !== 'string' || !UUID_V7.test(v.message)) return false;
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest)) return false;
  if (v.status !== 'accepted' && v.status !== 'rejected') return false;
  if (v.code !== undefined && !isErrorCode(v.code)) return false;
  // A rejection names its code; an acceptance has none.
  if ((v.status === 'rejected') !== (v.code !== undefined)) return false;
  return v.log === undefined || isAuditPosition(v.log);
}

/**
 * The auditor's check of a message's issuer-signed JWT with no disclosures in hand (spec/audit.md
 * §5.3): signature by the sender's key valid at `iat`, the same claim rules as envelope.ts's
 * verifier, and the data categories derived from the signed structure alone.
 *
 * Messages that carry disclosures (a lawful full audit) or provenance (onward referrals) go
 * through envelope.ts's verifySdJwtMessage instead; a test runs both on the same inputs and
 * requires the same verdict and error code.
 */
import { ProtocolError } from '../errors.js';
import { MESSAGE_TYPS, messageTypeFromTyp, type MessageType } from '../messages/message-types.js';
import { definitionOf } from '../messages/registry.js';
import { sameCategories, validateMessage, type MessageHeader } from '../messages/define.js';
import { SD_ALG } from '../sd-jwt.js';
import { DEFAULT_MAX_SKEW_SECONDS } from '../envelope.js';
import { DataCategory, toTimestamp } from '../vocabulary.js';
import { checkCompactJws } from './jws-check.js';
import type { KeyHistory } from './key-history.js';

// The claims of a message JWT (spec/protocol.md §6.2), as envelope.ts allows them.
const ALLOWED_CLAIMS = new Set(['iss', 'aud', 'jti', 'iat', 'exp', 'type', 'thread', 'agreement', 'consent', 'purpose', 'categories', 'body', 'data', 'consent_record', 'provenance', '_sd_alg']);
const CATEGORY_SET: ReadonlySet<string> = new Set(DataCategory.options);

export interface CheckedMessage {
  type: MessageType;
  header: MessageHeader;
  body: unknown;
  /** The payload exactly as signed. */
  payload: Record<string, unknown>;
  kid: string;
  consentRecord?: string;
}

// ECMAScript dates end at ±8.64e15 ms (ECMA-262 §21.4.1.1); later values stay numbers and fail the schema.
const MAX_EPOCH_SECONDS = 8.64e12;

function epochToTimestamp(v: unknown): unknown {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_EPOCH_SECONDS ? toTimestamp(v * 1000) : v;
}

/**
 * Verifies a message's issuer-signed JWT with no disclosures. Throws the ProtocolError envelope.ts
 * would throw for the same token (signature, key, claims, categories, schema). Answers undefined,
 * after checking the signature, for an onward referral: its original must be verified as well, and
 * verifySdJwtMessage does both.
 */
export async function checkMessageJwt(jwt: string, keys: KeyHistory, now: Date): Promise<CheckedMessage | undefined> {
  let type: MessageType | undefined;
  const checked = await checkCompactJws(jwt, MESSAGE_TYPS, (header, claimed) => {
    type = messageTypeFromTyp(header.typ);
    if (typeof claimed.iss !== 'string' || typeof claimed.iat !== 'number') throw new ProtocolError('SCHEMA_INVALID', 'iss and iat are required');
    return keys.signingKey(claimed.iss, header.kid, new Date(claimed.iat * 1000));
  });
  const p = checked.payload;
  for (const name of Object.keys(p)) {
    if (!ALLOWED_CLAIMS.has(name)) throw new ProtocolError('SCHEMA_INVALID', `Unknown claim ${name.slice(0, 32)}`);
  }
  if (p.type !== type || type === undefined) throw new ProtocolError('WRONG_TYPE', 'typ and type disagree');
  if (p._sd_alg !== SD_ALG) throw new ProtocolError('UNSUPPORTED_ALGORITHM', 'Only sha-256 disclosures');
  // The auditor's clock bounds `iat` as a recipient's does; expiry is history, not liveness.
  if (typeof p.iat === 'number' && p.iat > Math.floor(now.getTime() / 1000) + DEFAULT_MAX_SKEW_SECONDS) {
    throw new ProtocolError('CLOCK_SKEW', 'Message created in the future', { serverTime: toTimestamp(now) });
  }
  if (p.provenance !== undefined) return undefined;

  const concealed = p.data;
  if (!concealed || typeof concealed !== 'object' || Array.isArray(concealed)) throw new ProtocolError('SCHEMA_INVALID', 'data must be an object');
  // Each section holds only a non-empty list of distinct digests (RFC 9901 §4.2.4.1); with no
  // disclosure, revealing a section leaves it empty.
  const data: Record<string, Record<string, never>> = {};
  const structural: string[] = [];
  for (const [category, section] of Object.entries(concealed as Record<string, unknown>)) {
    const s = section as { _sd?: unknown } | undefined;
    if (!s || typeof s !== 'object' || !Array.isArray(s._sd) || s._sd.length === 0 || Object.keys(s).length !== 1) {
      throw new ProtocolError('SCHEMA_INVALID', `data.${category.slice(0, 32)} must hold only a non-empty _sd array`);
    }
    if (s._sd.some((d) => typeof d !== 'string')) throw new ProtocolError('SCHEMA_INVALID', 'Expected an _sd array');
    if (new Set(s._sd).size !== s._sd.length) throw new ProtocolError('DISCLOSURE_INVALID', 'Duplicate digest');
    data[category] = {};
    if (CATEGORY_SET.has(category)) structural.push(category);
  }
  const header = {
    id: p.jti,
    type: p.type,
    from: p.iss,
    to: p.aud,
    created: epochToTimestamp(p.iat),
    expires: epochToTimestamp(p.exp),
    threadId: p.thread,
    agreementId: p.agreement,
    ...(p.consent !== undefined ? { consentId: p.consent } : {}),
    purpose: p.purpose,
    categories: p.categories,
  };
  if (!Array.isArray(header.categories) || !sameCategories(header.categories as string[], structural)) throw new ProtocolError('CATEGORIES_MISMATCH');
  const def = definitionOf(type);
  const valid = validateMessage(def, { header, body: p.body, data });
  if (def.requiresConsent && !valid.header.consentId) throw new ProtocolError('CONSENT_MISSING');
  if (p.consent_record !== undefined && typeof p.consent_record !== 'string') throw new ProtocolError('SCHEMA_INVALID', 'consent_record must be a compact JWS');
  return {
    type,
    header: valid.header,
    body: valid.body,
    payload: p,
    kid: checked.kid,
    ...(typeof p.consent_record === 'string' ? { consentRecord: p.consent_record } : {}),
  };
}

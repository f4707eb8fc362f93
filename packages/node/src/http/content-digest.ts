/**
 * `Content-Digest` (RFC 9530 §2) restricted to sha-256. The field is one of the components every
 * node-to-node request signs (RFC 9421), so this is what binds the signature to the body bytes.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { ProtocolError } from '@passerelle/protocol';
import { parseDictionary } from './structured-fields.js';

export const CONTENT_DIGEST_ALGORITHM = 'sha-256';

/** Bound on the field value; a sha-256 member is 55 characters, room is left for a few others. */
export const MAX_CONTENT_DIGEST_LENGTH = 1024;

const SHA256_BYTES = 32;

function sha256(body: Uint8Array): Buffer {
  return createHash('sha256').update(body).digest();
}

/** The field value for `body`: `sha-256=:<base64>:` (an RFC 8941 byte sequence). */
export function contentDigest(body: Uint8Array): string {
  return `${CONTENT_DIGEST_ALGORITHM}=:${sha256(body).toString('base64')}:`;
}

/**
 * Checks a received `Content-Digest` against the body. Members for other algorithms are
 * ignored (RFC 9530 §2 lets a recipient pick the algorithm it supports) but only beside a
 * sha-256 member: nothing else is ever accepted as the binding to the body.
 *
 * Throws REQUEST_UNAUTHENTICATED when the field is absent (requests between nodes must carry
 * it), MALFORMED or TOO_LARGE for a field that does not parse, CONTENT_DIGEST_MISMATCH when
 * there is no sha-256 member or it differs from the body's digest.
 */
export function verifyContentDigest(header: string | undefined, body: Uint8Array): void {
  if (header === undefined || header.trim() === '') {
    throw new ProtocolError('REQUEST_UNAUTHENTICATED', 'Content-Digest is required');
  }
  const dict = parseDictionary(header, MAX_CONTENT_DIGEST_LENGTH);
  const member = dict.get(CONTENT_DIGEST_ALGORITHM);
  if (member === undefined) {
    throw new ProtocolError('CONTENT_DIGEST_MISMATCH', 'Content-Digest carries no sha-256 member');
  }
  if (member.kind !== 'item' || member.value.type !== 'bytes' || member.value.value.length !== SHA256_BYTES) {
    throw new ProtocolError('MALFORMED', 'Content-Digest sha-256 member must be a 32-byte byte sequence');
  }
  if (!timingSafeEqual(member.value.value, sha256(body))) {
    throw new ProtocolError('CONTENT_DIGEST_MISMATCH');
  }
}

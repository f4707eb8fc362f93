/**
 * One error class with a stable `code` (spec/errors.md). Messages are deliberately generic for
 * verification failures so that an attacker learns nothing from which check failed first.
 */

export const ERROR_CODES = {
  // Input and encoding
  MALFORMED: 'The input is not well-formed (encoding, compact serialisation or JSON).',
  TOO_LARGE: 'The input exceeds a size or nesting bound.',
  SCHEMA_INVALID: 'The object does not match its schema.',
  WRONG_TYPE: 'The object has another type than expected (typ, message type, JWS where JWE is required or the reverse).',
  // JOSE policy
  UNSUPPORTED_ALGORITHM: 'An algorithm outside the allow-list (only EdDSA with Ed25519; ECDH-ES+A256KW with X25519 and A256GCM).',
  FORBIDDEN_HEADER: 'A JOSE header parameter outside the allow-list (embedded keys, key URLs, zip, b64, crit, unknown).',
  SIGNATURE_INVALID: 'Signature verification failed.',
  DECRYPTION_FAILED: 'Decryption failed.',
  KEY_INVALID: 'Key material is invalid (wrong type or curve, small order, private part where a public key is expected).',
  KEY_UNKNOWN: 'No key with this identifier is known for the signer.',
  KEY_NOT_VALID: 'The key was not valid at the time of use (not yet valid, expired or revoked).',
  // Envelope claims
  SENDER_MISMATCH: 'The inner signer is not the expected (authenticated) sender.',
  AUDIENCE_MISMATCH: 'The message is not addressed to this node.',
  CLOCK_SKEW: 'A timestamp lies in the future beyond the allowed clock skew.',
  EXPIRED: 'The object has expired.',
  CATEGORIES_MISMATCH: 'The data categories carried differ from the declared ones.',
  DISCLOSURE_INVALID: 'A selective disclosure is malformed, duplicated or matches no digest.',
  PROVENANCE_INVALID: 'The provenance of an onward message does not verify.',
  // Node documents and trust
  NODE_DOCUMENT_INVALID: 'The node document is invalid or not signed by its keys.',
  NODE_DOCUMENT_STALE: 'The node document is older than the version already known.',
  NODE_DOCUMENT_EXPIRED: 'The node document has expired.',
  ROTATION_INVALID: 'A node document rotation is not signed by the previous key.',
  PEER_UNKNOWN: 'The peer is not in the trust store.',
  FINGERPRINT_MISMATCH: 'The peer does not hold the pinned key fingerprint.',
  // Receipts
  RECEIPT_INVALID: 'The receipt is missing, signed by the wrong key or does not match the message.',
  // Consent
  CONSENT_MISSING: 'The message needs a consent record and carries none (or another one than it names).',
  CONSENT_INVALID: 'The consent record is malformed or not signed by its controller.',
  CONSENT_SIGNER_INVALID: 'The consent record is not signed by the sender or, for an onward referral, by the original controller.',
  CONSENT_NOT_YET_VALID: 'The consent was collected after the message was created.',
  CONSENT_EXPIRED: 'The consent has expired.',
  CONSENT_WITHDRAWN: 'The consent (or the purpose used) has been withdrawn.',
  CONSENT_RECIPIENT_NOT_COVERED: 'The consent does not name the recipient.',
  CONSENT_PURPOSE_NOT_COVERED: 'The consent does not cover the purpose of the message.',
  CONSENT_CATEGORY_NOT_COVERED: 'The consent does not cover a data category the message carries.',
  CONSENT_SPECIAL_CATEGORY_NOT_EXPLICIT: 'A special category is carried without explicit consent for it.',
  CONSENT_MINOR_WITHOUT_GUARDIAN: 'Consent for a minor lacks the guardian or the best-interests determination.',
  // Agreements
  AGREEMENT_MISSING: 'No agreement with this id is known.',
  AGREEMENT_INVALID: 'The agreement is malformed or a signature does not verify.',
  AGREEMENT_NOT_IN_FORCE: 'The agreement is not signed by every party, not yet valid, expired or terminated.',
  AGREEMENT_FLOW_NOT_ALLOWED: 'The agreement has no flow from sender to recipient allowing this message type, purpose and categories.',
  ONWARD_NOT_ALLOWED: 'Onward referral to this organisation is not allowed by the consent or the agreement.',
  // Audit log
  AUDIT_PROOF_INVALID: 'A Merkle inclusion or consistency proof does not verify.',
  AUDIT_CHECKPOINT_INVALID: 'An audit-log checkpoint is malformed, not signed by its origin, or not from the expected log.',
  AUDIT_LOG_INCONSISTENT: 'Two signed checkpoints of one log contradict each other (a fork or a shrunk log): evidence of rewritten history.',
  AUDIT_BUNDLE_INCONSISTENT: 'A record of an audit bundle disagrees with the log record, receipt, attestation or scope that should attest it (altered, missing or unattested).',
  // Node edge (HTTP, storage)
  REQUEST_UNAUTHENTICATED: 'The request has no valid HTTP message signature from a pinned peer.',
  CONTENT_DIGEST_MISMATCH: 'The Content-Digest does not match the body.',
  DUPLICATE_CONFLICT: 'A message with this id was already received with different content.',
  RATE_LIMITED: 'Too many requests from this peer.',
  UNAUTHORIZED: 'A valid bearer token is required.',
  FORBIDDEN: 'The token does not have the required role.',
  NOT_FOUND: 'No such resource.',
  STORE_UNAVAILABLE: 'The store cannot be written; nothing was accepted.',
  PEER_UNREACHABLE: 'The peer could not be reached.',
  PEER_RESPONSE_INVALID: 'The peer answered with something that is not a valid protocol response.',
  INTERNAL: 'An unexpected internal error.',
} as const satisfies Record<string, string>;

export type ErrorCode = keyof typeof ERROR_CODES;

export const errorCodes = Object.keys(ERROR_CODES) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_CODES, value);
}

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  readonly code: ErrorCode;
  /** Machine-readable extra facts safe to show a peer (for example the server time on CLOCK_SKEW). */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message?: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message ?? ERROR_CODES[code], options);
    this.code = code;
    this.details = details;
  }
}

export function isProtocolError(value: unknown, code?: ErrorCode): value is ProtocolError {
  return value instanceof ProtocolError && (code === undefined || value.code === code);
}

/** Throws a ProtocolError unless `condition` holds. */
export function ensure(condition: unknown, code: ErrorCode, message?: string, details?: Record<string, unknown>): asserts condition {
  if (!condition) throw new ProtocolError(code, message, details);
}

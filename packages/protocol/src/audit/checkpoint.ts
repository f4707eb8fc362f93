/**
 * Signed checkpoints of a node's audit log: "my log held `size` entries with Merkle root `root` at
 * time `at`", signed with the node's Ed25519 key. Two checkpoints of one log are reconciled with a
 * consistency proof (RFC 9162 §2.1.4); two signed checkpoints that cannot both be true are
 * themselves the evidence that the log's history was rewritten.
 */
import { z } from 'zod';
import type { NodeKeyResolver } from '../agreement.js';
import { b64u, fromB64u } from '../encoding.js';
import { ProtocolError, type ErrorCode } from '../errors.js';
import { peekCompactPayload, signCompact, verifyCompact } from '../jws.js';
import type { SigningKeyPair } from '../keys.js';
import { NodeId, Timestamp, toTimestamp } from '../vocabulary.js';
import { MAX_PROOF_LENGTH, assertConsistency, assertInclusion, emptyRoot } from './merkle.js';

export const CHECKPOINT_TYP = 'passerelle-checkpoint+jwt';

// 43 characters whose last one carries no stray bits (RFC 4648 §3.5): exactly one spelling per hash,
// so equal hashes always compare equal as strings.
const B64U_32_CANONICAL = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;

export const MerkleHash = z
  .string()
  .regex(B64U_32_CANONICAL, 'must be 32 bytes, canonical base64url')
  .meta({ id: 'MerkleHash', description: 'A SHA-256 Merkle tree hash (RFC 9162 §2.1.1), canonical base64url without padding.' });
export type MerkleHash = z.infer<typeof MerkleHash>;

export const ProofPath = z
  .array(MerkleHash)
  .max(MAX_PROOF_LENGTH)
  .meta({ id: 'ProofPath', description: 'An RFC 9162 inclusion or consistency proof: Merkle hashes in proof order.' });
export type ProofPath = z.infer<typeof ProofPath>;

const EMPTY_ROOT_B64U = b64u(emptyRoot());

export const Checkpoint = z
  .object({
    /** The node whose log this is, and whose key signs the checkpoint. */
    origin: NodeId,
    /** Number of leaves in the log. */
    size: z.number().int().min(0),
    /** MTH of those leaves. */
    root: MerkleHash,
    /** When the node signed it. */
    at: Timestamp,
  })
  .strict()
  .refine((cp) => cp.size !== 0 || cp.root === EMPTY_ROOT_B64U, {
    path: ['root'],
    message: 'an empty log has the empty-tree root',
  })
  .meta({
    id: 'Checkpoint',
    description: 'Payload of a signed audit-log checkpoint (compact JWS, typ passerelle-checkpoint+jwt).',
  });
export type Checkpoint = z.infer<typeof Checkpoint>;

export interface CheckpointInput {
  origin: string;
  size: number;
  root: Uint8Array;
  at?: Date;
}

/** Builds a checkpoint from a root in bytes (for example MerkleTree.root()); SCHEMA_INVALID if it is not one. */
export function buildCheckpoint(input: CheckpointInput): Checkpoint {
  if (!(input.root instanceof Uint8Array) || input.root.length !== 32) {
    throw new ProtocolError('SCHEMA_INVALID', 'A checkpoint root is 32 bytes');
  }
  return parseCheckpoint(
    { origin: input.origin, size: input.size, root: b64u(input.root), at: toTimestamp(input.at ?? new Date()) },
    'SCHEMA_INVALID',
  );
}

function parseCheckpoint(value: unknown, code: ErrorCode): Checkpoint {
  const parsed = Checkpoint.safeParse(value);
  if (!parsed.success) {
    throw new ProtocolError(code, 'Checkpoint is malformed', { issues: parsed.error.issues.map((i) => i.path.join('.')) });
  }
  return parsed.data;
}

/** Signs a checkpoint with a signing key of its origin node. */
export async function signCheckpoint(checkpoint: Checkpoint, key: SigningKeyPair): Promise<string> {
  return signCompact(parseCheckpoint(checkpoint, 'SCHEMA_INVALID'), key, CHECKPOINT_TYP);
}

// Failures of the object itself; anything else (a resolver's own error, a store outage) passes through.
const VERIFICATION_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'MALFORMED',
  'TOO_LARGE',
  'WRONG_TYPE',
  'UNSUPPORTED_ALGORITHM',
  'FORBIDDEN_HEADER',
  'SIGNATURE_INVALID',
  'KEY_UNKNOWN',
  'KEY_INVALID',
  'KEY_NOT_VALID',
  'AUDIT_CHECKPOINT_INVALID',
]);

export interface VerifyCheckpointOptions {
  /** The log we expect: a checkpoint of another node's log is refused. */
  origin?: string;
}

/**
 * Verifies a signed checkpoint: policy-checked JWS of the checkpoint type, signed by a key its
 * origin held at `at`, strict schema, expected origin. Any failure of the object is
 * AUDIT_CHECKPOINT_INVALID, with the underlying code in `details.reason`.
 */
export async function verifyCheckpoint(
  jws: string,
  resolveKey: NodeKeyResolver,
  options: VerifyCheckpointOptions = {},
): Promise<Checkpoint> {
  try {
    // The origin is read before verification only to choose whose key to ask for; the signed
    // payload is parsed again below from the verified bytes.
    const claimed = parseCheckpoint(peekCompactPayload(jws), 'AUDIT_CHECKPOINT_INVALID');
    if (options.origin !== undefined && claimed.origin !== options.origin) {
      throw new ProtocolError('AUDIT_CHECKPOINT_INVALID', 'Checkpoint of another log');
    }
    const verified = await verifyCompact(jws, CHECKPOINT_TYP, (kid) => resolveKey(claimed.origin, kid, new Date(claimed.at)));
    return parseCheckpoint(verified.payload, 'AUDIT_CHECKPOINT_INVALID');
  } catch (e) {
    if (e instanceof ProtocolError && e.code === 'AUDIT_CHECKPOINT_INVALID') throw e;
    if (e instanceof ProtocolError && VERIFICATION_CODES.has(e.code)) {
      throw new ProtocolError('AUDIT_CHECKPOINT_INVALID', 'Checkpoint does not verify', { reason: e.code }, { cause: e });
    }
    throw e;
  }
}

/**
 * Checks that `newer` (a later checkpoint of the same log, already verified) extends `older`.
 *  - not the same origin, or `newer` signed before `older`: AUDIT_CHECKPOINT_INVALID (the pair
 *    cannot be compared as given);
 *  - `newer` smaller than `older`, or the same size with another root: AUDIT_LOG_INCONSISTENT. Both
 *    are signed by the origin, so the pair proves that its history was rewritten;
 *  - a consistency proof that does not verify: AUDIT_PROOF_INVALID (the proof may be damaged; on
 *    its own this proves nothing against the origin).
 */
export function assertConsistentCheckpoints(olderCheckpoint: Checkpoint, newerCheckpoint: Checkpoint, proof: readonly Uint8Array[]): void {
  const older = parseCheckpoint(olderCheckpoint, 'AUDIT_CHECKPOINT_INVALID');
  const newer = parseCheckpoint(newerCheckpoint, 'AUDIT_CHECKPOINT_INVALID');
  if (older.origin !== newer.origin) {
    throw new ProtocolError('AUDIT_CHECKPOINT_INVALID', 'Checkpoints of different logs', { older: older.origin, newer: newer.origin });
  }
  if (Date.parse(newer.at) < Date.parse(older.at)) {
    throw new ProtocolError('AUDIT_CHECKPOINT_INVALID', 'Checkpoints out of order', { older: older.at, newer: newer.at });
  }
  if (newer.size < older.size) {
    throw new ProtocolError('AUDIT_LOG_INCONSISTENT', 'The log shrank', { origin: older.origin, olderSize: older.size, newerSize: newer.size });
  }
  const oldRoot = fromB64u(older.root);
  const newRoot = fromB64u(newer.root);
  if (newer.size === older.size && older.root !== newer.root) {
    throw new ProtocolError('AUDIT_LOG_INCONSISTENT', 'Two roots for one log size', { origin: older.origin, size: older.size });
  }
  assertConsistency(older.size, newer.size, oldRoot, newRoot, proof);
}

/** Checks that `leafHash` is leaf `index` of the log described by a (verified) checkpoint. */
export function assertCheckpointIncludes(
  checkpoint: Checkpoint,
  leafHash: Uint8Array,
  index: number,
  proof: readonly Uint8Array[],
): void {
  const { size, root } = parseCheckpoint(checkpoint, 'AUDIT_CHECKPOINT_INVALID');
  assertInclusion(leafHash, index, size, proof, fromB64u(root));
}

/** Proof elements as they travel in JSON (base64url). */
export function encodeProof(proof: readonly Uint8Array[]): ProofPath {
  return proof.map((h) => b64u(h));
}

/** Decodes a proof from JSON; anything that is not a ProofPath is AUDIT_PROOF_INVALID. */
export function decodeProof(value: unknown): Uint8Array[] {
  const parsed = ProofPath.safeParse(value);
  if (!parsed.success) throw new ProtocolError('AUDIT_PROOF_INVALID', 'Proof is malformed');
  return parsed.data.map((h) => fromB64u(h));
}

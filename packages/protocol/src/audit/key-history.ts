/**
 * Key histories for an offline audit (spec/audit.md §5.1): each node's documents are verified as a
 * chain, oldest first, exactly as a peer follows rotations (node-document.ts), and the last
 * document that verifies says which signing key was valid when. Objects are then checked against
 * the key valid at their own signing time, not at the time of the audit.
 */
import { ProtocolError } from '../errors.js';
import { fromB64u, fromUtf8, parseJsonObject } from '../encoding.js';
import type { GeneralJws } from '../jws.js';
import type { PublicSigningJwk } from '../keys.js';
import { verifyNodeDocument, type NodeDocument, type NodeSigningKey, type VerifiedNodeDocument } from '../node-document.js';
import { assertCanonicalSignatures } from './jws-check.js';

export interface NodeChainFailure {
  /** Position of the document in the exported chain. */
  position: number;
  version: number | undefined;
  error: ProtocolError;
}

export interface NodeChain {
  id: string;
  /** The documents that verified, oldest first; the chain stops at the first that does not. */
  verified: VerifiedNodeDocument[];
  failure?: NodeChainFailure;
}

function claimed(jws: unknown): Record<string, unknown> {
  const payload = (jws as { payload?: unknown } | null)?.payload;
  if (typeof payload !== 'string') throw new ProtocolError('MALFORMED', 'Expected a general JWS JSON object');
  return parseJsonObject(fromUtf8(fromB64u(payload)));
}

function claimedIssuedAt(jws: unknown): Date {
  const doc = claimed(jws);
  const t = typeof doc.issuedAt === 'string' ? Date.parse(doc.issuedAt) : Number.NaN;
  if (Number.isNaN(t)) throw new ProtocolError('SCHEMA_INVALID', 'Invalid node document');
  return new Date(t);
}

/** The version a document claims, to name it in a report even when it does not verify. */
function claimedVersion(jws: unknown): number | undefined {
  try {
    const v = claimed(jws).version;
    return Number.isSafeInteger(v) ? (v as number) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Verifies one node's documents as a chain. Each document is judged at its own `issuedAt`, as the
 * peers that fetched it did; the first one stands on its own signatures, or on `pinned` when the
 * auditor holds the node's fingerprints.
 */
export async function verifyNodeChain(id: string, documents: readonly unknown[], pinned?: readonly string[]): Promise<NodeChain> {
  const verified: VerifiedNodeDocument[] = [];
  for (let position = 0; position < documents.length; position++) {
    const jws = documents[position];
    let version = claimedVersion(jws);
    try {
      assertCanonicalSignatures(jws as GeneralJws);
      const now = claimedIssuedAt(jws);
      const known = verified[verified.length - 1];
      const result = await verifyNodeDocument(jws, {
        now,
        expectedId: id,
        ...(known ? { known } : pinned ? { pinnedFingerprints: pinned } : {}),
      });
      version = result.document.version;
      if (known && result.document.version <= known.document.version) {
        throw new ProtocolError('NODE_DOCUMENT_STALE', 'Documents must be listed oldest first, each version once', {
          knownVersion: known.document.version,
          version,
        });
      }
      verified.push(result);
    } catch (e) {
      if (!(e instanceof ProtocolError)) throw e;
      return { id, verified, failure: { position, version, error: e } };
    }
  }
  return { id, verified };
}

/** Which signing key each node held when; built from verified chains. */
export class KeyHistory {
  readonly #latest = new Map<string, NodeDocument>();

  /** From each node's latest verified document (the first listed wins for a repeated id). */
  constructor(latest: Iterable<{ id: string; document: NodeDocument }>) {
    for (const { id, document } of latest) if (!this.#latest.has(id)) this.#latest.set(id, document);
  }

  static fromChains(chains: Iterable<NodeChain>): KeyHistory {
    const latest: { id: string; document: NodeDocument }[] = [];
    for (const chain of chains) {
      const last = chain.verified[chain.verified.length - 1];
      if (last) latest.push({ id: chain.id, document: last.document });
    }
    return new KeyHistory(latest);
  }

  /** Node ids with at least one verified document. */
  nodes(): string[] {
    return [...this.#latest.keys()];
  }

  /** The latest verified document of a node: its key list carries every key with its window. */
  document(nodeId: string): NodeDocument | undefined {
    return this.#latest.get(nodeId);
  }

  #entry(nodeId: string, kid: string): NodeSigningKey | undefined {
    return this.#latest.get(nodeId)?.keys.find((k): k is NodeSigningKey => k.use === 'sig' && k.kid === kid);
  }

  /**
   * The signing key `kid` of `nodeId` valid at `at`. KEY_UNKNOWN when the node or the key is not
   * known; KEY_NOT_VALID when the key is listed but was not valid then (not yet, expired, revoked).
   */
  signingKey(nodeId: string, kid: string, at: Date): PublicSigningJwk {
    const entry = this.#entry(nodeId, kid);
    if (!entry) throw new ProtocolError('KEY_UNKNOWN', undefined, { node: nodeId, kid });
    const t = at.getTime();
    const valid =
      Number.isFinite(t) &&
      Date.parse(entry.notBefore) <= t &&
      (entry.notAfter === undefined || t < Date.parse(entry.notAfter)) &&
      (entry.revokedAt === undefined || t < Date.parse(entry.revokedAt));
    if (!valid) throw new ProtocolError('KEY_NOT_VALID', 'The key was not valid at signing time', { node: nodeId, kid, ...(Number.isFinite(t) ? { at: at.toISOString() } : {}) });
    return entry.jwk;
  }

  /**
   * In the shape of agreement.ts's NodeKeyResolver: undefined for a key the node never listed (so
   * that a co-signed object can try each party), KEY_NOT_VALID thrown for one it listed but did not
   * hold at `at`.
   */
  readonly resolver = (nodeId: string, kid: string, at: Date): PublicSigningJwk | undefined => {
    if (!this.#entry(nodeId, kid)) return undefined;
    return this.signingKey(nodeId, kid, at);
  };
}

/**
 * The trust store (spec/node.md §3): peers pinned by an administrator by node id and signing-key
 * fingerprints, and the latest verified node document of each. No trust on first use: a
 * document is accepted only if a pinned key (or, after that, the chain from the known version)
 * signed it; an older version than the one known is refused (NODE_DOCUMENT_STALE).
 */
import {
  isNodeId,
  ProtocolError,
  resolveSigningKey,
  verifyNodeDocument,
  type NodeDocument,
  type PublicSigningJwk,
  type VerifiedNodeDocument,
} from '@passerelle/protocol';
import type { Logger } from 'pino';
import type { PeerRecord, Store } from '../store/types.js';
import type { DocumentFetcher } from './document-fetcher.js';

const FINGERPRINT = /^[A-Za-z0-9_-]{43}$/;
/** Refresh a document this long before it expires, so deliveries never wait on an expired one. */
const EXPIRY_MARGIN_MS = 24 * 3600_000;

export interface TrustStoreOptions {
  store: Store;
  fetchDocument: DocumentFetcher;
  logger: Logger;
  /** At most one fetch per peer per interval when triggered by an unknown key. */
  refreshIntervalMs: number;
  now?: () => Date;
}

interface PeerState {
  record: PeerRecord;
  verified?: VerifiedNodeDocument;
  lastFetchAt?: number;
}

export class TrustStore {
  readonly #options: TrustStoreOptions;
  readonly #peers = new Map<string, PeerState>();
  readonly #kidIndex = new Map<string, string>();
  readonly #inflight = new Map<string, Promise<VerifiedNodeDocument>>();

  constructor(options: TrustStoreOptions) {
    this.#options = options;
  }

  #now(): Date {
    return this.#options.now?.() ?? new Date();
  }

  /** Loads pinned peers and their stored documents. */
  async load(): Promise<void> {
    for (const record of await this.#options.store.listPeers()) {
      const state: PeerState = { record };
      if (record.document) {
        try {
          state.verified = await this.#reverifyStored(record);
        } catch (e) {
          this.#options.logger.warn({ peer: record.nodeId, code: (e as ProtocolError).code }, 'stored peer document no longer verifies');
        }
      }
      this.#peers.set(record.nodeId, state);
      this.#index(state);
    }
  }

  /** A stored document was verified on arrival; here it is checked again against its own issue time. */
  async #reverifyStored(record: PeerRecord): Promise<VerifiedNodeDocument> {
    const jws = JSON.parse(record.document!) as { payload: string };
    const payload = JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8')) as NodeDocument;
    return verifyNodeDocument(jws, { pinnedFingerprints: record.fingerprints, expectedId: record.nodeId, now: new Date(payload.issuedAt) });
  }

  #index(state: PeerState): void {
    for (const fp of state.record.fingerprints) this.#kidIndex.set(fp, state.record.nodeId);
    for (const key of state.verified?.document.keys ?? []) if (key.use === 'sig') this.#kidIndex.set(key.kid, state.record.nodeId);
  }

  /** Pins a peer (or replaces its pins). Its document is fetched separately (`refresh`). */
  async addPeer(nodeId: string, fingerprints: readonly string[]): Promise<PeerRecord> {
    if (!isNodeId(nodeId)) throw new ProtocolError('SCHEMA_INVALID', 'nodeId must be an https origin (http only on loopback)');
    if (fingerprints.length === 0 || fingerprints.length > 16 || fingerprints.some((f) => !FINGERPRINT.test(f))) {
      throw new ProtocolError('SCHEMA_INVALID', 'fingerprints must be 1 to 16 RFC 7638 SHA-256 thumbprints');
    }
    const at = this.#now().toISOString();
    const existing = this.#peers.get(nodeId);
    const record: PeerRecord = existing
      ? { ...existing.record, fingerprints: [...new Set(fingerprints)], updatedAt: at }
      : { nodeId, fingerprints: [...new Set(fingerprints)], addedAt: at, updatedAt: at };
    await this.#options.store.putPeer(record);
    const state: PeerState = { ...existing, record };
    this.#peers.set(nodeId, state);
    this.#index(state);
    return record;
  }

  isPinned(nodeId: string): boolean {
    return this.#peers.has(nodeId);
  }

  listPeers(): { record: PeerRecord; document?: NodeDocument }[] {
    return [...this.#peers.values()].map((s) => ({ record: s.record, ...(s.verified ? { document: s.verified.document } : {}) }));
  }

  /** The pinned peer a request's keyid belongs to, if any (no I/O). */
  peerForKeyid(kid: string): string | undefined {
    return this.#kidIndex.get(kid);
  }

  cachedDocument(nodeId: string): VerifiedNodeDocument | undefined {
    return this.#peers.get(nodeId)?.verified;
  }

  /** A peer's signing key `kid` valid at `at`, from the document we hold (no I/O). */
  signingKey(nodeId: string, kid: string, at: Date | string): PublicSigningJwk | undefined {
    const doc = this.#peers.get(nodeId)?.verified?.document;
    if (!doc) return undefined;
    try {
      return resolveSigningKey(doc, kid, at);
    } catch {
      return undefined;
    }
  }

  /**
   * Like `signingKey`, but when the kid is not in the document we hold, refreshes the document
   * once (rate-limited per peer) in case the peer rotated.
   */
  async signingKeyWithRefresh(nodeId: string, kid: string, at: Date | string): Promise<PublicSigningJwk | undefined> {
    const key = this.signingKey(nodeId, kid, at);
    if (key) return key;
    const doc = this.#peers.get(nodeId)?.verified?.document;
    if (!this.isPinned(nodeId) || doc?.keys.some((k) => k.kid === kid)) return undefined;
    // A kid known to be another node's is not a sign that this one rotated.
    const owner = this.#kidIndex.get(kid);
    if (owner !== undefined && owner !== nodeId) return undefined;
    try {
      await this.refresh(nodeId, { rateLimited: true });
    } catch (e) {
      this.#options.logger.debug({ peer: nodeId, code: (e as ProtocolError).code }, 'peer document refresh failed');
      return undefined;
    }
    return this.signingKey(nodeId, kid, at);
  }

  /** The peer's current document, fetched when missing, expired or about to expire. */
  async document(nodeId: string): Promise<VerifiedNodeDocument> {
    const state = this.#peers.get(nodeId);
    if (!state) throw new ProtocolError('PEER_UNKNOWN', undefined, { nodeId });
    const doc = state.verified;
    if (doc && Date.parse(doc.document.expiresAt) - this.#now().getTime() > EXPIRY_MARGIN_MS) return doc;
    try {
      // An early refresh of a still valid document is rate-limited like a key-triggered one.
      return await this.refresh(nodeId, { rateLimited: doc !== undefined && Date.parse(doc.document.expiresAt) > this.#now().getTime() });
    } catch (e) {
      // A document still valid is good enough when its early refresh fails.
      if (doc && Date.parse(doc.document.expiresAt) > this.#now().getTime()) return doc;
      throw e;
    }
  }

  /**
   * Fetches and verifies the peer's document. With `rateLimited`, a fetch happens at most once per
   * refresh interval per peer; otherwise concurrent callers share one fetch.
   */
  async refresh(nodeId: string, options: { rateLimited?: boolean } = {}): Promise<VerifiedNodeDocument> {
    const state = this.#peers.get(nodeId);
    if (!state) throw new ProtocolError('PEER_UNKNOWN', undefined, { nodeId });
    const running = this.#inflight.get(nodeId);
    if (running) return running;
    const now = this.#now().getTime();
    if (options.rateLimited && state.lastFetchAt !== undefined && now - state.lastFetchAt < this.#options.refreshIntervalMs) {
      if (state.verified) return state.verified;
      throw new ProtocolError('PEER_UNREACHABLE', 'The peer document was fetched recently and is not available', { nodeId });
    }
    state.lastFetchAt = now;
    const task = this.#fetchAndAccept(state).finally(() => this.#inflight.delete(nodeId));
    this.#inflight.set(nodeId, task);
    return task;
  }

  async #fetchAndAccept(state: PeerState): Promise<VerifiedNodeDocument> {
    const { nodeId } = state.record;
    const candidate = await this.#options.fetchDocument(nodeId);
    const verified = await verifyNodeDocument(candidate, {
      pinnedFingerprints: state.record.fingerprints,
      ...(state.verified ? { known: state.verified } : {}),
      expectedId: nodeId,
      now: this.#now(),
    });
    if (state.verified && verified.document.version === state.verified.document.version) {
      return state.verified;
    }
    const record: PeerRecord = {
      ...state.record,
      document: JSON.stringify(verified.jws),
      documentVersion: verified.document.version,
      updatedAt: this.#now().toISOString(),
    };
    await this.#options.store.putPeer(record);
    // Every version accepted is kept: audit bundles carry the peer's key history (spec/audit.md §4.1).
    await this.#options.store.putNodeDocument({ nodeId, version: verified.document.version, jws: record.document! });
    state.record = record;
    state.verified = verified;
    this.#index(state);
    this.#options.logger.info({ peer: nodeId, version: verified.document.version }, 'peer document accepted');
    return verified;
  }
}

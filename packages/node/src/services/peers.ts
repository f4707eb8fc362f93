/** Peers as an administrator manages them (spec/node.md §3): pin, list, refresh. */
import { ProtocolError, type NodeDocument } from '@passerelle/protocol';
import type { Store } from '../store/types.js';
import type { TrustStore } from '../trust/trust-store.js';

export interface PeerView {
  nodeId: string;
  fingerprints: string[];
  addedAt: string;
  updatedAt: string;
  document?: {
    version: number;
    name: string;
    country: string;
    roles: NodeDocument['roles'];
    inbox: string;
    expiresAt: string;
    messageTypes: string[];
    languages: string[];
  };
  /** Why the document could not be fetched, when it could not. */
  documentError?: string;
}

export class PeerDirectory {
  readonly #trust: TrustStore;
  readonly #store: Store;
  readonly #now: () => Date;

  constructor(trust: TrustStore, store: Store, now: () => Date) {
    this.#trust = trust;
    this.#store = store;
    this.#now = now;
  }

  #view(nodeId: string, documentError?: string): PeerView {
    const found = this.#trust.listPeers().find((p) => p.record.nodeId === nodeId);
    if (!found) throw new ProtocolError('NOT_FOUND', 'No such peer');
    const { record, document: d } = found;
    return {
      nodeId: record.nodeId,
      fingerprints: record.fingerprints,
      addedAt: record.addedAt,
      updatedAt: record.updatedAt,
      ...(d
        ? { document: { version: d.version, name: d.name, country: d.country, roles: d.roles, inbox: d.inbox, expiresAt: d.expiresAt, messageTypes: d.messageTypes, languages: d.languages } }
        : {}),
      ...(documentError ? { documentError } : {}),
    };
  }

  /** Pins the peer, then fetches its document (unless told not to); a fetch failure leaves the pin in place. */
  async add(nodeId: string, fingerprints: readonly string[], options: { fetchDocument?: boolean } = {}): Promise<PeerView> {
    await this.#trust.addPeer(nodeId, fingerprints);
    await this.#store.appendAudit({ kind: 'peer.pinned', fields: { peer: nodeId, fingerprints: [...fingerprints] }, at: this.#now().toISOString() });
    if (options.fetchDocument === false) return this.#view(nodeId);
    try {
      await this.#trust.refresh(nodeId);
      return this.#view(nodeId);
    } catch (e) {
      return this.#view(nodeId, e instanceof ProtocolError ? e.code : 'INTERNAL');
    }
  }

  list(): PeerView[] {
    return this.#trust.listPeers().map((p) => this.#view(p.record.nodeId));
  }

  async refresh(nodeId: string): Promise<PeerView> {
    await this.#trust.refresh(nodeId);
    return this.#view(nodeId);
  }
}

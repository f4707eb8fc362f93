/**
 * "Which signing key with this kid did node N hold at time T", answered from our own document or
 * a pinned peer's, for messages, consent records, agreements and receipts alike.
 */
import type { NodeKeyResolver, PublicSigningJwk, SenderKeyResolver } from '@passerelle/protocol';
import type { NodeIdentity } from '../identity/node-identity.js';
import type { TrustStore } from './trust-store.js';

export function keyAt(identity: NodeIdentity, trust: TrustStore) {
  return async (nodeId: string, kid: string, at: Date | string): Promise<PublicSigningJwk | undefined> => {
    const when = typeof at === 'string' ? new Date(at) : at;
    if (nodeId === identity.id) return identity.ownSigningKey(kid, when);
    if (identity.document.keys.some((k) => k.kid === kid)) return undefined;
    return trust.signingKeyWithRefresh(nodeId, kid, when);
  };
}

export function senderKeyResolver(identity: NodeIdentity, trust: TrustStore): SenderKeyResolver {
  const resolve = keyAt(identity, trust);
  return (issuer, kid, signedAt) => resolve(issuer, kid, signedAt);
}

export function nodeKeyResolver(identity: NodeIdentity, trust: TrustStore): NodeKeyResolver {
  const resolve = keyAt(identity, trust);
  return (nodeId, kid, at) => resolve(nodeId, kid, at);
}

/**
 * Key rotation (spec/protocol.md §3): new keys are generated and written first, then the next
 * document version is signed by the old and the new signing keys, so peers that know the old
 * version follow the chain. Old keys stay valid for an overlap so that messages already signed or
 * sealed with them are still accepted.
 */
import {
  DEFAULT_KEY_OVERLAP_SECONDS,
  generateEncryptionKey,
  generateSigningKey,
  nodeKeyEntry,
  revokeKey,
  rotateNodeDocument,
  toTimestamp,
  verifyNodeDocument,
  type NodeKey,
} from '@passerelle/protocol';
import type { ResolvedConfig } from '../config.js';
import { writeKeyFile } from './key-files.js';
import { writeDocumentFile, type NodeIdentity } from './node-identity.js';

export interface RotateKeysOptions {
  signing?: boolean;
  encryption?: boolean;
  overlapSeconds?: number;
  now?: Date;
}

export interface RotatedKeys {
  version: number;
  signingKid?: string;
  encryptionKid?: string;
  /** The new fingerprints to give peers (their pins follow the chain without it). */
  fingerprints: string[];
}

export async function rotateKeys(identity: NodeIdentity, config: ResolvedConfig, options: RotateKeysOptions = {}): Promise<RotatedKeys> {
  const now = options.now ?? new Date();
  const overlap = options.overlapSeconds ?? DEFAULT_KEY_OVERLAP_SECONDS;
  const rotateSigning = options.signing ?? true;
  const rotateEncryption = options.encryption ?? true;
  const oldSigning = identity.currentSigningKeys(now);
  const newSigning = rotateSigning ? await generateSigningKey() : undefined;
  const newEncryption = rotateEncryption ? await generateEncryptionKey() : undefined;
  if (newSigning) await writeKeyFile(config.dataDir, newSigning);
  if (newEncryption) await writeKeyFile(config.dataDir, newEncryption);

  const previous = identity.verified;
  const issuedAt = new Date(Math.max(now.getTime(), Date.parse(previous.document.issuedAt)));
  let keys: NodeKey[] = [...previous.document.keys];
  if (newEncryption) {
    const until = toTimestamp(issuedAt.getTime() + overlap * 1000);
    for (const k of previous.document.keys) {
      if (k.use === 'enc' && k.revokedAt === undefined) keys = revokeKey(keys, k.kid, { at: until, reason: 'superseded' });
    }
    keys.push(nodeKeyEntry(newEncryption, { notBefore: issuedAt }));
  }
  const jws = await rotateNodeDocument(previous, { keys }, {
    oldKeys: oldSigning,
    newKeys: newSigning ? [newSigning] : oldSigning,
    now: issuedAt,
    overlapSeconds: overlap,
  });
  const next = await verifyNodeDocument(jws, { known: previous, now: issuedAt });
  await writeDocumentFile(config.dataDir, jws);
  identity.addKeys([...(newSigning ? [newSigning] : []), ...(newEncryption ? [newEncryption] : [])]);
  identity.replaceDocument(next);
  return {
    version: next.document.version,
    ...(newSigning ? { signingKid: newSigning.kid } : {}),
    ...(newEncryption ? { encryptionKid: newEncryption.kid } : {}),
    fingerprints: identity.fingerprints(),
  };
}
